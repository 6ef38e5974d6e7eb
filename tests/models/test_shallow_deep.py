"""ShallowDeepViT (SPEC section 2): branch wiring, shallow-branch isolation, modality-specific
embeddings, mixed batches, test-feature extraction and mixed precision (tiny config)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sdcl_toolkit.models import ShallowDeepViT, build_shallow_deep_vit

H, W, D = 64, 32, 128


def make_model(seed: int = 0, **overrides) -> ShallowDeepViT:
    """Tiny model whose IR embedding and b1/b2 differ from their sources (as after training)."""
    torch.manual_seed(seed)
    model = ShallowDeepViT("tiny", **overrides)
    with torch.no_grad():
        for module in (model.patch_embed2, model.b1, model.b2):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        for neck in (model.deep_neck, model.shallow_neck):
            neck.running_mean.normal_(0, 0.1)
            neck.weight.uniform_(0.5, 1.5)
    return model


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, H, W, generator=torch.Generator().manual_seed(seed))


def grads_of(model: ShallowDeepViT, prefix: str) -> list:
    return [p.grad for n, p in model.named_parameters() if n.startswith(prefix) and p.requires_grad]


def has_grad(model: ShallowDeepViT, prefix: str) -> bool:
    return any(g is not None and bool(g.abs().sum() > 0) for g in grads_of(model, prefix))


# --------------------------------------------------------------------------- shapes, copies


def test_shapes_of_every_entry_point():
    model = make_model().eval()
    x = images(3, 0)
    deep, shallow = model(x, "rgb")
    assert deep.shape == shallow.shape == (3, D)
    mixed = model.forward_mixed(x, images(2, 1))
    assert mixed.rgb.deep.shape == (3, D) and mixed.ir.shallow.shape == (2, D)
    assert model.extract(x, "ir").shape == (3, 2 * D) == (3, model.test_feature_dim)
    assert model.extract_branches(x, "ir").deep.shape == (3, D)


def test_branches_start_as_copies_and_necks_have_frozen_bias():
    torch.manual_seed(0)
    model = ShallowDeepViT("tiny")
    for a, b in zip(
        model.patch_embed2.state_dict().values(), model.vit.patch_embed.state_dict().values()
    ):
        assert torch.equal(a, b)
    for branch in (model.b1, model.b2):
        for a, b in zip(
            branch[0].state_dict().values(), model.vit.blocks[-1].state_dict().values()
        ):
            assert torch.equal(a, b)
        assert torch.equal(branch[1].weight, model.vit.norm.weight)
    assert model.b1[0].attn.qkv.weight.data_ptr() != model.vit.blocks[-1].attn.qkv.weight.data_ptr()
    for neck in (model.deep_neck, model.shallow_neck):
        assert not neck.bias.requires_grad and neck.weight.requires_grad
        assert (
            float(neck.bias.detach().abs().max()) == 0.0
            and float(neck.weight.detach().min()) == 1.0
        )


# --------------------------------------------------------------------------- gradients


def test_gradients_flow_to_the_right_modules():
    model = make_model().train()
    gen = torch.Generator().manual_seed(5)
    w_deep, w_shallow = torch.randn(4, D, generator=gen), torch.randn(4, D, generator=gen)

    deep, _ = model(images(4, 0), "rgb")
    (deep * w_deep).sum().backward()
    assert (
        has_grad(model, "b1.")
        and has_grad(model, "deep_neck.")
        and has_grad(model, "vit.blocks.0.")
    )
    assert has_grad(model, "vit.patch_embed.") and has_grad(model, "vit.cls_token")
    assert not has_grad(model, "b2.") and not has_grad(model, "shallow_neck.")
    assert not has_grad(model, "patch_embed2.")
    model.zero_grad(set_to_none=True)

    _, shallow = model(images(4, 0), "ir")
    (shallow * w_shallow).sum().backward()
    assert has_grad(model, "b2.") and has_grad(model, "shallow_neck.")
    assert has_grad(model, "patch_embed2.") and has_grad(
        model, "vit.blocks.2."
    )  # via the cls token
    assert not has_grad(model, "b1.") and not has_grad(model, "deep_neck.")
    assert not has_grad(model, "vit.patch_embed.")
    # the checkpoint's last block and norm are only the source of b1/b2
    assert not has_grad(model, "vit.blocks.3.") and not has_grad(model, "vit.norm.")


def test_shallow_gradient_reaches_the_deep_path_only_through_the_cls_token():
    model = make_model().eval()
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["h"] = output

    handle = model.vit.blocks[-2].register_forward_hook(keep)  # output = h (end of deep path)
    try:
        _, shallow = model(images(3, 0), "rgb")
        shallow.square().sum().backward()
    finally:
        handle.remove()
    grad_h = captured["h"].grad
    assert float(grad_h[:, 1:].abs().max()) == 0.0
    assert bool((grad_h[:, 0] != 0).any())


def _perturb_h(model: ShallowDeepViT, x: torch.Tensor, rows: slice):
    def hook(module, args, output):
        out = output.clone()
        out[:, rows] += torch.randn_like(out[:, rows])
        return out

    handle = model.vit.blocks[-2].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(x, "rgb")
    finally:
        handle.remove()


def test_perturbing_deep_patch_tokens_leaves_the_shallow_feature_unchanged():
    model = make_model().eval()
    x = images(3, 0)
    with torch.no_grad():
        deep, shallow = model(x, "rgb")
    torch.manual_seed(1)
    deep_p, shallow_p = _perturb_h(model, x, slice(1, None))
    assert torch.equal(shallow_p, shallow)
    assert not torch.allclose(deep_p, deep, atol=1e-3)
    torch.manual_seed(2)
    deep_c, shallow_c = _perturb_h(model, x, slice(0, 1))
    assert not torch.allclose(shallow_c, shallow, atol=1e-3)


def test_perturbing_blocks_changes_shallow_feature_only_through_the_cls_token():
    """After perturbing blocks 1..depth-1, the shallow feature equals b2 applied to
    [new deep cls token; the *unchanged* embedding-level patch tokens] (full block, no shortcut)."""
    model = make_model().eval()
    x = images(3, 0)
    with torch.no_grad():
        tokens = model.vit.embed(x, model.vit.patch_embed)
        _, shallow_before = model(x, "rgb")
        for block in model.vit.blocks[:-1]:
            for p in block.parameters():
                p.add_(torch.randn_like(p) * 0.2)
        _, shallow_after = model(x, "rgb")
        assert torch.equal(model.vit.embed(x, model.vit.patch_embed), tokens)
        h = tokens
        for block in model.vit.blocks[:-1]:
            h = block(h)
        expected = model.shallow_neck(model.b2(torch.cat((h[:, :1], tokens[:, 1:]), dim=1))[:, 0])
        wrong = model.shallow_neck(model.b2(h)[:, 0])  # a branch that used the deep patch tokens
    assert not torch.allclose(shallow_after, shallow_before, atol=1e-3)
    torch.testing.assert_close(shallow_after, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(wrong, expected, atol=1e-3)  # the check above can tell them apart


# ---------------------------------------------------------------------- modalities, mixed batches


def test_modality_selects_the_patch_embedding():
    model = make_model().eval()
    x = images(2, 0)
    with torch.no_grad():
        rgb, ir = model(x, "rgb"), model(x, "IR")
        visible = model(x, "visible")
    assert not torch.allclose(rgb.deep, ir.deep, atol=1e-4)
    assert torch.equal(visible.deep, rgb.deep)
    tokens = model.vit.embed(x, model.patch_embed2)
    torch.testing.assert_close(model.branches(tokens).deep, ir.deep)


def test_mixed_forward_equals_separate_forwards_in_eval():
    model = make_model().eval()
    rgb, ir = images(3, 0), images(2, 1)
    with torch.no_grad():
        mixed = model.forward_mixed(rgb, ir)
        a, b = model(rgb, "rgb"), model(ir, "ir")
    for got, want in ((mixed.rgb, a), (mixed.ir, b)):
        torch.testing.assert_close(got.deep, want.deep, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.shallow, want.shallow, rtol=1e-5, atol=1e-5)


def test_mixed_forward_normalises_both_modalities_together_in_training():
    model = make_model().train()
    seen = {}

    def keep_input(module, args, output):
        seen["x"] = args[0]

    handle = model.deep_neck.register_forward_hook(keep_input)
    before = model.deep_neck.running_mean.clone()
    rgb, ir = images(4, 0), images(2, 1)
    with torch.no_grad():
        mixed = model.forward_mixed(rgb, ir)
    handle.remove()
    raw = seen["x"]
    assert raw.shape == (6, D)
    momentum = model.deep_neck.momentum
    expected = (1 - momentum) * before + momentum * raw.mean(0)
    torch.testing.assert_close(model.deep_neck.running_mean, expected)
    joint = torch.cat((mixed.rgb.deep, mixed.ir.deep))
    normalised = (raw - raw.mean(0)) / torch.sqrt(raw.var(0, unbiased=False) + model.deep_neck.eps)
    torch.testing.assert_close(
        joint, normalised * model.deep_neck.weight.detach(), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("train", [False, True])
def test_per_sample_modality_matches_the_mixed_path(train):
    model = make_model().train(train)
    rgb, ir = images(3, 0), images(2, 1)
    order = torch.tensor([3, 0, 4, 1, 2])  # interleave: ir, rgb, ir, rgb, rgb
    batch = torch.cat((rgb, ir))[order]
    flags = order >= 3
    with torch.no_grad():
        mixed = model.forward_mixed(rgb, ir)
        per_sample = model(batch, flags)
        by_name = model(batch, ["ir" if f else "rgb" for f in flags.tolist()])
    want_deep = torch.cat((mixed.rgb.deep, mixed.ir.deep))[order]
    want_shallow = torch.cat((mixed.rgb.shallow, mixed.ir.shallow))[order]
    torch.testing.assert_close(per_sample.deep, want_deep, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_sample.shallow, want_shallow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(by_name.deep, per_sample.deep)


def test_bad_modalities_and_images():
    model = make_model().eval()
    x = images(2, 0)
    with pytest.raises(ValueError, match="unknown modality"):
        model(x, "depth")
    with pytest.raises(TypeError, match="bool or integer"):
        model(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        model(x, torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="0 \\(RGB\\) or 1 \\(IR\\)"):
        model(x, torch.tensor([0, 2]))
    with pytest.raises(TypeError):
        model(x, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="img_size"):
        model(torch.randn(2, 3, 32, 32), "rgb")
    with pytest.raises(ValueError, match="batch_size"):
        model.extract(x, "rgb", batch_size=0)


# --------------------------------------------------------------------------- extraction


def test_extract_is_the_normalised_flip_average():
    model = make_model().eval()
    x = images(3, 0)
    with torch.no_grad():
        a = torch.cat(model(x, "ir"), dim=1)
        b = torch.cat(model(x.flip(-1), "ir"), dim=1)
    expected = F.normalize((a + b) / 2, dim=1)
    got = model.extract(x, "ir")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.extract(x.flip(-1), "ir"), got, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        model.extract(x, "ir", flip=False), F.normalize(a, dim=1), rtol=1e-5, atol=1e-6
    )
    deep, shallow = model.extract_branches(x, "ir")
    torch.testing.assert_close(torch.cat((deep, shallow), 1), (a + b) / 2, rtol=1e-5, atol=1e-5)


def test_extract_conventions():
    model = make_model().train()
    x = images(5, 0)
    reference = model.extract(x, "rgb")
    assert model.training  # mode restored
    assert not reference.requires_grad and reference.dtype == torch.float32
    torch.testing.assert_close(reference.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(
        model.extract(x, "rgb", batch_size=2), reference, rtol=1e-5, atol=1e-6
    )
    as_numpy = model.extract(x.numpy(), "rgb")
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (5, 2 * D)
    np.testing.assert_allclose(as_numpy, reference.numpy(), rtol=1e-5, atol=1e-6)
    mixed_flags = torch.tensor([True, False, False, True, False])
    per_sample = model.extract(x, mixed_flags)
    torch.testing.assert_close(
        per_sample[~mixed_flags], reference[~mixed_flags], rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        per_sample[mixed_flags], model.extract(x[mixed_flags], "ir"), rtol=1e-5, atol=1e-6
    )
    # running statistics are untouched by extraction
    before = model.deep_neck.running_mean.clone()
    model.extract(x, "ir")
    assert torch.equal(before, model.deep_neck.running_mean)


# --------------------------------------------------------------------------- precision, memory


def test_autocast_bfloat16_mixed_step_is_finite_and_close():
    model = make_model().train()
    rgb, ir = images(4, 0), images(4, 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = model.forward_mixed(rgb, ir)
    model.load_state_dict(state)  # undo the running-stat update
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model.forward_mixed(rgb, ir)
        loss = sum(f.float().square().mean() for part in low for f in part)
    loss.backward()
    for got, want in zip((f for p in low for f in p), (f for p in reference for f in p)):
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        cosine = F.cosine_similarity(got.detach(), want.detach(), dim=1)
        assert float(cosine.min()) > 0.995
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_gradient_checkpointing_matches_plain_training():
    plain = make_model()
    ckpt = make_model(gradient_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.gradient_checkpointing
    rgb, ir = images(3, 0), images(2, 1)
    for model in (plain, ckpt):
        model.train()
        out = model.forward_mixed(rgb, ir)
        (out.rgb.deep.square().mean() + out.ir.shallow.cos().mean()).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        if a.grad is None:
            assert b.grad is None, name
        else:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_factory_with_pretrained_state_dict():
    torch.manual_seed(3)
    donor = ShallowDeepViT("tiny")
    backbone = {"module.backbone." + k: v for k, v in donor.vit.state_dict().items()}
    model = build_shallow_deep_vit("tiny", {"model": backbone}, drop_path_rate=0.05)
    assert model.config.drop_path_rate == 0.05
    assert torch.equal(model.patch_embed2.proj.weight, donor.vit.patch_embed.proj.weight)
    assert torch.equal(model.b2[0].mlp.fc1.weight, donor.vit.blocks[-1].mlp.fc1.weight)


def _official_data_parallel_reference(model, rgb, ir, groups):
    """What torch.nn.DataParallel on ``groups`` devices computes: each replica forwards its
    chunk of ``rgb`` and of ``ir`` (its own batch-norm batch); replica 0's running statistics
    are the ones kept."""
    import copy

    replicas = [copy.deepcopy(model) for _ in range(groups)]
    outputs = [
        r.forward_mixed(x, y) for r, x, y in zip(replicas, rgb.chunk(groups), ir.chunk(groups))
    ]
    deep = torch.cat([o.rgb.deep for o in outputs] + [o.ir.deep for o in outputs])
    shallow = torch.cat([o.rgb.shallow for o in outputs] + [o.ir.shallow for o in outputs])
    return deep, shallow, replicas[0].state_dict()


@pytest.mark.parametrize("groups", [2, 3])
def test_norm_groups_is_data_parallel_batch_norm(groups):
    torch.manual_seed(0)
    model = ShallowDeepViT("tiny").double().train()
    rgb = torch.randn(8, 3, 64, 32, dtype=torch.float64)
    ir = torch.randn(6, 3, 64, 32, dtype=torch.float64)
    ref_deep, ref_shallow, ref_state = _official_data_parallel_reference(model, rgb, ir, groups)
    out = model.forward_mixed(rgb, ir, norm_groups=groups)
    torch.testing.assert_close(torch.cat([out.rgb.deep, out.ir.deep]), ref_deep)
    torch.testing.assert_close(torch.cat([out.rgb.shallow, out.ir.shallow]), ref_shallow)
    state = model.state_dict()
    for key, value in ref_state.items():  # running statistics: group 0's only
        torch.testing.assert_close(state[key], value, msg=key)
    assert all(
        m.track_running_stats
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    )


def test_norm_groups_one_is_the_joint_batch_and_eval_ignores_groups():
    torch.manual_seed(1)
    model = ShallowDeepViT("tiny").double().train()
    rgb = torch.randn(4, 3, 64, 32, dtype=torch.float64)
    ir = torch.randn(4, 3, 64, 32, dtype=torch.float64)
    joint = model.forward_mixed(rgb, ir)
    grouped = model.forward_mixed(rgb, ir, norm_groups=2)
    assert not torch.allclose(joint.rgb.deep, grouped.rgb.deep)  # groups change the batch
    model.eval()
    torch.testing.assert_close(
        model.forward_mixed(rgb, ir, norm_groups=2).rgb.deep, model.forward_mixed(rgb, ir).rgb.deep
    )
    with pytest.raises(ValueError, match="norm_groups"):
        model.forward_mixed(rgb, ir, norm_groups=0)


def test_norm_groups_backpropagates_like_data_parallel():
    import copy

    torch.manual_seed(2)
    model = ShallowDeepViT("tiny").double().train()
    reference = copy.deepcopy(model)
    rgb = torch.randn(4, 3, 64, 32, dtype=torch.float64)
    ir = torch.randn(2, 3, 64, 32, dtype=torch.float64)
    out = model.forward_mixed(rgb, ir, norm_groups=2)
    (out.rgb.deep.sum() + out.ir.shallow.square().sum()).backward()
    # DataParallel sums the replicas' gradients into the shared parameters
    for x, y, frozen in ((rgb[:2], ir[:1], False), (rgb[2:], ir[1:], True)):
        from sdcl_toolkit.models.shallow_deep import _running_stats_frozen

        with _running_stats_frozen(reference, frozen=frozen):
            part = reference.forward_mixed(x, y)
        (part.rgb.deep.sum() + part.ir.shallow.square().sum()).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            torch.testing.assert_close(p.grad, q.grad, msg=name)
