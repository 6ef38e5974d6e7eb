"""Checkpoint loading (SPEC section 2): real TransReID-SSL key layout, unwrapping, pos_embed
resizing with the explicit 16x8 grid, head dropping, reports and clear errors."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit.models import (
    CheckpointError,
    CheckpointReport,
    ShallowDeepViT,
    ViT,
    adapt_state_dict,
    load_pretrained,
    normalize_state_dict,
    resize_pos_embed,
    unwrap_state_dict,
)

# --------------------------------------------------------------------------- helpers


def ics_vit_checkpoint_shapes(
    dim: int = 768,
    depth: int = 12,
    grid: tuple[int, int] = (16, 8),
    stem: int = 64,
    patch: int = 16,
) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of ``vit_base_ics_cfs_lup.pth`` (defaults), written out from
    SPEC section 2 -- independent of the model code under test."""
    half = stem // 2
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + grid[0] * grid[1], dim),
        "patch_embed.conv.0.weight": (stem, 3, 7, 7),
        "patch_embed.conv.3.weight": (stem, stem, 3, 3),
        "patch_embed.conv.6.weight": (stem, stem, 3, 3),
        "patch_embed.conv.7.weight": (stem,),
        "patch_embed.conv.7.bias": (stem,),
        "patch_embed.conv.7.running_mean": (stem,),
        "patch_embed.conv.7.running_var": (stem,),
        "patch_embed.conv.7.num_batches_tracked": (),
        "patch_embed.proj.weight": (dim, stem, patch // 2, patch // 2),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    for ibn in ("patch_embed.conv.1", "patch_embed.conv.4"):
        for name in (
            "IN.weight",
            "IN.bias",
            "BN.weight",
            "BN.bias",
            "BN.running_mean",
            "BN.running_var",
        ):
            shapes[f"{ibn}.{name}"] = (half,)
        shapes[f"{ibn}.BN.num_batches_tracked"] = ()
    for i in range(depth):
        p = f"blocks.{i}."
        shapes.update(
            {
                p + "norm1.weight": (dim,),
                p + "norm1.bias": (dim,),
                p + "attn.qkv.weight": (3 * dim, dim),
                p + "attn.qkv.bias": (3 * dim,),
                p + "attn.proj.weight": (dim, dim),
                p + "attn.proj.bias": (dim,),
                p + "norm2.weight": (dim,),
                p + "norm2.bias": (dim,),
                p + "mlp.fc1.weight": (4 * dim, dim),
                p + "mlp.fc1.bias": (4 * dim,),
                p + "mlp.fc2.weight": (dim, 4 * dim),
                p + "mlp.fc2.bias": (dim,),
            }
        )
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif (
            key.endswith("running_var")
            or key.endswith("norm1.weight")
            or key.endswith("norm2.weight")
        ):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.02
    return state


def dino_wrap(backbone: dict[str, torch.Tensor], dim: int) -> dict:
    """``{"teacher": {"backbone.<key>": ..., "head.*": ...}, ...}`` like a DINO checkpoint."""
    teacher = {"backbone." + k: v for k, v in backbone.items()}
    teacher["head.mlp.0.weight"] = torch.randn(16, dim)
    teacher["head.last_layer.weight_g"] = torch.randn(1, 16)
    return {
        "teacher": teacher,
        "student": {"module.backbone.cls_token": torch.zeros(1)},
        "epoch": 100,
    }


TINY_CKPT_GRID = (4, 2)  # the tiny config's checkpoint-like grid (32x16 images)


def tiny_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    return random_state(
        ics_vit_checkpoint_shapes(dim=128, depth=4, grid=TINY_CKPT_GRID, stem=32, patch=8), seed
    )


# --------------------------------------------------------------------------- vit_base, real layout


@pytest.fixture(scope="module")
def vit_base_loaded():
    shapes = ics_vit_checkpoint_shapes()
    backbone = random_state(shapes, seed=1)
    model = ShallowDeepViT("vit_base")
    report = load_pretrained(model, dino_wrap(backbone, 768))
    return model, backbone, report


@pytest.mark.slow
def test_every_vit_base_ics_key_loads(vit_base_loaded):
    model, backbone, report = vit_base_loaded
    assert report.missing == ()
    assert report.unexpected == ()
    assert report.mismatched == ()
    assert set(report.loaded) == set(backbone)
    assert report.loaded_fraction == 1.0
    assert report.resized == ("pos_embed",)
    assert set(report.dropped) == {"head.mlp.0.weight", "head.last_layer.weight_g"}
    vit_state = model.vit.state_dict()
    for key, value in backbone.items():
        if key != "pos_embed":
            torch.testing.assert_close(vit_state[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_pos_embed_resized_from_16x8_to_18x9(vit_base_loaded):
    model, backbone, _ = vit_base_loaded
    pos = model.vit.pos_embed.detach()
    assert tuple(pos.shape) == (1, 163, 768)
    old = backbone["pos_embed"]
    torch.testing.assert_close(pos[:, :1], old[:, :1], rtol=0, atol=0)  # cls kept
    grid = old[0, 1:].reshape(16, 8, 768).permute(2, 0, 1)[None]
    expected = F.interpolate(grid, size=(18, 9), mode="bilinear", align_corners=False)
    torch.testing.assert_close(pos[0, 1:], expected[0].permute(1, 2, 0).reshape(162, 768))


@pytest.mark.slow
def test_both_patch_embeddings_and_branches_hold_the_checkpoint(vit_base_loaded):
    model, backbone, report = vit_base_loaded
    assert len(report.copied) == 3
    for name, value in model.patch_embed2.state_dict().items():
        torch.testing.assert_close(value, backbone["patch_embed." + name], rtol=0, atol=0, msg=name)
    for branch in (model.b1, model.b2):
        for name, value in branch[0].state_dict().items():
            torch.testing.assert_close(value, backbone["blocks.11." + name], rtol=0, atol=0)
        torch.testing.assert_close(
            branch[1].weight.detach(), backbone["norm.weight"], rtol=0, atol=0
        )
    # copies, not shared storage
    assert model.patch_embed2.proj.weight.data_ptr() != model.vit.patch_embed.proj.weight.data_ptr()
    assert model.b1[0].attn.qkv.weight.data_ptr() != model.b2[0].attn.qkv.weight.data_ptr()


@pytest.mark.slow
def test_vit_base_outputs_are_finite(vit_base_loaded):
    model = vit_base_loaded[0]
    images = torch.randn(2, 3, 288, 144, generator=torch.Generator().manual_seed(0))
    feature = model.extract(images, "ir", flip=False)
    assert feature.shape == (2, 1536)
    assert torch.isfinite(feature).all()
    torch.testing.assert_close(feature.norm(dim=1), torch.ones(2))


# --------------------------------------------------------------------------- pos_embed resizing


def test_resize_uses_explicit_non_square_grid():
    """Rows of a 16x8 grid hold their row index: after resizing every row is constant.

    Reading the 128 tokens as any other grid (e.g. 8x16 or 'square-ish') breaks this."""
    rows = torch.arange(16.0).repeat_interleave(8)  # row-major 16x8
    pos = torch.cat((torch.full((1,), -1.0), rows)).reshape(1, 129, 1).repeat(1, 1, 3)
    out = resize_pos_embed(pos, new_grid=(18, 9), old_grid=(16, 8))
    grid = out[0, 1:, 0].reshape(18, 9)
    assert out[0, 0, 0] == -1.0
    assert torch.allclose(grid, grid[:, :1].expand(18, 9))  # constant along each row
    assert bool((grid[1:, 0] >= grid[:-1, 0]).all()) and grid[0, 0] == 0 and grid[-1, 0] == 15
    wrong = resize_pos_embed(pos, new_grid=(18, 9), old_grid=(8, 16))[0, 1:, 0].reshape(18, 9)
    assert not torch.allclose(wrong, wrong[:, :1].expand(18, 9))


@settings(max_examples=25, deadline=None)
@given(
    old=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    new=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    dim=st.integers(1, 5),
    value=st.floats(-3, 3),
)
def test_resize_invariants(old, new, dim, value):
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(1, 1 + old[0] * old[1], dim, generator=gen)
    out = resize_pos_embed(pos, new, old)
    assert out.shape == (1, 1 + new[0] * new[1], dim)
    torch.testing.assert_close(out[:, :1], pos[:, :1], rtol=0, atol=0)
    if new == old:  # identity on the same grid
        torch.testing.assert_close(out, pos)
    constant = torch.full((1, 1 + old[0] * old[1], dim), value)
    torch.testing.assert_close(resize_pos_embed(constant, new, old), torch.full_like(out, value))


def test_resize_drops_extra_prefix_tokens_and_rejects_wrong_grid():
    pos = torch.randn(1, 2 + 16 * 8, 4)  # cls + dist token + 16x8
    out = resize_pos_embed(pos, (16, 8), (16, 8))
    torch.testing.assert_close(out, torch.cat((pos[:, :1], pos[:, 2:]), dim=1))
    with pytest.raises(CheckpointError, match="checkpoint_grid"):
        resize_pos_embed(torch.randn(1, 1 + 14 * 14, 4), (18, 9), (16, 16))
    with pytest.raises(ValueError, match="old_grid"):
        resize_pos_embed(pos, (18, 9), (16,))  # type: ignore[arg-type]


def test_timm_style_224_checkpoint_needs_its_grid():
    model = ViT.from_config("tiny", stem="linear")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes["pos_embed"] = (1, 1 + 7 * 7, 128)
    state = random_state(shapes)
    state["head.weight"] = torch.randn(1000, 128)
    state["head.bias"] = torch.randn(1000)
    with pytest.raises(CheckpointError, match=r"49 patches|7x7|checkpoint_grid"):
        load_pretrained(model, state)  # default grid 16x8 does not fit 50 tokens
    report = load_pretrained(model, state, checkpoint_grid=(7, 7))
    assert report.resized == ("pos_embed",) and report.missing == ()
    assert set(report.dropped) == {"head.weight", "head.bias"}
    assert tuple(model.pos_embed.shape) == (1, 1 + 8 * 4, 128)


# --------------------------------------------------------------------------- unwrapping / names


def test_unwrap_order_and_nesting():
    inner = {"cls_token": torch.zeros(1)}
    assert unwrap_state_dict({"model": inner, "epoch": 3}) == inner
    assert unwrap_state_dict({"state_dict": {"model": inner}}) == inner
    assert unwrap_state_dict({"teacher": inner, "student": {"x": torch.ones(1)}}) == inner
    # a stray tensor next to the wrapper (e.g. a metric) does not stop the descent
    assert unwrap_state_dict({"state_dict": inner, "best_map": torch.tensor(0.5)}) == inner
    with pytest.raises(CheckpointError, match="no tensors"):
        unwrap_state_dict({"epoch": 3, "args": "x"})


def test_normalize_strips_prefixes_and_drops_only_heads():
    state = {
        "module.backbone.blocks.0.mlp.fc1.weight": torch.zeros(1),
        "module.fc.weight": torch.zeros(1),
        "head.weight": torch.zeros(1),
        "backbone.head_dist.bias": torch.zeros(1),
        "dist_token": torch.zeros(1),
        "pre_logits.fc.weight": torch.zeros(1),
        "fc_norm.weight": torch.zeros(1),
    }
    out, dropped = normalize_state_dict(state)
    assert set(out) == {"blocks.0.mlp.fc1.weight", "fc_norm.weight"}
    assert set(dropped) == {
        "fc.weight",
        "head.weight",
        "head_dist.bias",
        "dist_token",
        "pre_logits.fc.weight",
    }
    with pytest.raises(CheckpointError, match="both become"):
        normalize_state_dict({"module.norm.weight": torch.zeros(1), "norm.weight": torch.zeros(1)})


def test_load_from_path_with_namespace_args(tmp_path):
    state = tiny_checkpoint()
    wrapped = {
        "model": {"module.backbone." + k: v for k, v in state.items()},
        "args": argparse.Namespace(lr=0.1),
        "epoch": 5,
    }
    path = tmp_path / "tiny.pth"
    torch.save(wrapped, path)
    model = ShallowDeepViT("tiny")
    report = load_pretrained(model, path, checkpoint_grid=TINY_CKPT_GRID)
    assert report.source == str(path)
    assert report.missing == () and report.mismatched == () and report.loaded_fraction == 1.0
    torch.testing.assert_close(
        model.patch_embed2.conv[0].weight.detach(), state["patch_embed.conv.0.weight"]
    )
    with pytest.raises(FileNotFoundError):
        load_pretrained(model, tmp_path / "absent.pth")


def test_load_into_plain_vit_and_report_is_logged(caplog):
    state = tiny_checkpoint(seed=3)
    model = ViT.from_config("tiny")
    with caplog.at_level(logging.INFO, logger="sdcl_toolkit.models.checkpoint"):
        report = load_pretrained(model, state, checkpoint_grid=TINY_CKPT_GRID)
    assert isinstance(report, CheckpointReport)
    assert report.copied == ()
    assert "loaded" in caplog.text and "pos_embed" in caplog.text
    torch.testing.assert_close(
        model.blocks[3].mlp.fc2.weight.detach(), state["blocks.3.mlp.fc2.weight"]
    )


def test_partial_checkpoint_reports_missing_and_mismatched():
    state = tiny_checkpoint()
    del state["norm.weight"]
    state["norm.bias"] = torch.zeros(7)
    state["extra.thing"] = torch.zeros(2)
    model = ViT.from_config("tiny")
    report = load_pretrained(model, state, checkpoint_grid=TINY_CKPT_GRID)
    assert report.missing == ("norm.weight",)
    assert report.unexpected == ("extra.thing",)
    assert len(report.mismatched) == 1 and report.mismatched[0].startswith("norm.bias")
    assert 0.9 < report.loaded_fraction < 1.0
    with pytest.raises(CheckpointError):
        load_pretrained(model, state, checkpoint_grid=TINY_CKPT_GRID, min_loaded_fraction=1.0)


# --------------------------------------------------------------------------- errors


def test_wrong_file_raises_clear_error():
    resnet_like = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "bn1.weight": torch.zeros(64),
        "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
    }
    model = ShallowDeepViT("tiny")
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model, {"state_dict": resnet_like})
    message = str(info.value)
    assert "0 of" in message
    assert "cls_token" in message and "patch_embed.conv.0.weight" in message  # expected keys
    assert "conv1.weight" in message and "layer1.0.conv1.weight" in message  # found keys


def test_linear_stem_checkpoint_into_ics_model_is_rejected():
    """A timm (linear patchify) checkpoint lacks the ICS stem: most keys load, the stem does not."""
    linear = ViT.from_config("tiny", stem="linear")
    state = {k: v.clone() for k, v in linear.state_dict().items()}
    model = ViT.from_config("tiny")
    with pytest.raises(CheckpointError, match="proj.weight"):
        load_pretrained(model, state)


def test_bad_arguments():
    with pytest.raises(TypeError, match="ViT or a ShallowDeepViT"):
        load_pretrained(torch.nn.Linear(2, 2), {"w": torch.zeros(1)})
    with pytest.raises(TypeError, match="path or a state dict"):
        load_pretrained(ViT.from_config("tiny"), 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_loaded_fraction"):
        adapt_state_dict(
            {"a": torch.zeros(1)}, {"a": torch.zeros(1)}, model_grid=(1, 1), min_loaded_fraction=2
        )


# --------------------------------------------------------------------------- full-model checkpoints


def _perturbed_tiny(seed: int) -> ShallowDeepViT:
    torch.manual_seed(seed)
    model = ShallowDeepViT("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.deep_neck.running_mean.normal_()
    return model.eval()


def test_full_shallow_deep_state_dict_round_trip():
    source = _perturbed_tiny(0)
    target = ShallowDeepViT("tiny").eval()
    report = load_pretrained(target, {"state_dict": source.state_dict()})
    assert report.copied == () and report.missing == () and report.unexpected == ()
    images = torch.randn(3, 3, 64, 32)
    for got, want in zip(target(images, "ir"), source(images, "ir")):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_official_sdcl_model_names_are_mapped():
    """A trained official SDCL model: ``module.base.*``, ``base.patch_embed2``,
    ``bottleneck(s)``."""
    source = _perturbed_tiny(1)
    renames = [
        ("patch_embed2.", "base.patch_embed2."),
        ("vit.", "base."),
        ("deep_neck.", "bottleneck."),
        ("shallow_neck.", "bottlenecks."),
    ]
    official = {}
    for key, value in source.state_dict().items():
        for ours, theirs in renames:
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
                break
        official["module." + key] = value
    official["module.base.fc.weight"] = torch.zeros(1000, 128)  # TransReID's unused classifier
    official["module.base.decoder_norm.weight"] = torch.zeros(1)
    target = ShallowDeepViT("tiny").eval()
    report = load_pretrained(target, {"state_dict": official})
    assert report.missing == () and report.copied == ()
    assert "vit.decoder_norm.weight" in report.unexpected
    images = torch.randn(2, 3, 64, 32)
    got = target.extract(images, "rgb")
    want = source.extract(images, "rgb")
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# ------------------------------------------------------------------ failure modes (issue 13)


def test_224_checkpoint_with_the_default_grid_is_refused_not_truncated():
    # 1 + 14*14 = 197 tokens read as 16x8 (128 patches) left 69 "prefix" tokens that were
    # silently dropped; now the error names checkpoint_grid.
    model = ViT.from_config("tiny", stem="linear")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes["pos_embed"] = (1, 1 + 14 * 14, shapes["pos_embed"][-1])
    state = random_state(shapes)
    with pytest.raises(CheckpointError, match=r"197 tokens.*checkpoint_grid=\(rows, cols\)"):
        load_pretrained(model, state)
    report = load_pretrained(model, state, checkpoint_grid=(14, 14))
    assert report.resized == ("pos_embed",)
    with pytest.raises(CheckpointError, match="checkpoint_grid"):
        resize_pos_embed(torch.randn(1, 1 + 14 * 14, 4), (8, 4), (16, 8))
    # a few prefix tokens (class + distillation / registers) are still inferred
    pos = torch.randn(1, 5 + 16 * 8, 4)
    torch.testing.assert_close(
        resize_pos_embed(pos, (16, 8)), torch.cat((pos[:, :1], pos[:, 5:]), 1)
    )


@pytest.mark.parametrize(
    "content", [b"hello world, not a checkpoint\n", b"eeeee", b"", b"PK\x03\x04broken zip"]
)
def test_non_checkpoint_files_raise_checkpoint_error(tmp_path, content):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="as a torch checkpoint"):
        load_pretrained(ViT.from_config("tiny"), path)


def test_checkpoint_arguments_follow_the_scalar_rules(tmp_path):
    model = ViT.from_config("tiny")
    state = tiny_checkpoint()
    with pytest.raises(TypeError, match=r"checkpoint_grid\[0\] must be an integer"):
        load_pretrained(model, state, checkpoint_grid=(16.0, 8))
    with pytest.raises(ValueError, match="checkpoint_grid must be a pair"):
        load_pretrained(model, state, checkpoint_grid=(16,))
    with pytest.raises(TypeError, match="weights_only must be True or False"):
        load_pretrained(model, state, weights_only="yes")
    with pytest.raises(ValueError, match="min_loaded_fraction must be <= 1"):
        load_pretrained(model, state, min_loaded_fraction=1.5)
    report = load_pretrained(model, state, checkpoint_grid=(np.int64(4), np.int64(2)))
    assert report.loaded_fraction == 1.0


def _training_checkpoint(path, model: torch.nn.Module) -> None:
    """What the trainer's end-of-epoch save writes (sdcl_toolkit.engine.trainer.SDCLTrainer.save),
    through the real writer."""
    from sdcl_toolkit.engine.builders import build_optimizer, build_scheduler
    from sdcl_toolkit.engine.checkpoint import capture_rng_state, save_checkpoint
    from sdcl_toolkit.engine.config import TrainConfig

    config = TrainConfig(model="tiny", pretrained="none")
    optimizer = build_optimizer(config, model)
    deep, shallow = model(torch.randn(2, 3, *model.img_size), "rgb")
    (deep.sum() + shallow.sum()).backward()
    optimizer.step()  # momentum buffers in the optimizer state
    scheduler = build_scheduler(config, optimizer)
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": 3,
            "rng": capture_rng_state(),  # holds numpy's RNG state, a uint32 array
            "config": config.to_dict(),
            "history": {"epoch_3": {"loss": 1.5}},
        },
    )


def test_own_training_checkpoint_loads_as_pretrained_with_weights_only(tmp_path):
    path = tmp_path / "last.pth"
    trained = ShallowDeepViT("tiny")
    _training_checkpoint(path, trained)
    fresh = ShallowDeepViT("tiny")
    report = load_pretrained(fresh, path)  # weights_only=True (the default)
    assert report.loaded_fraction == 1.0 and report.missing == () and report.copied == ()
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)


def test_arbitrary_globals_are_still_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": tiny_checkpoint(), "hook": ValueError("not allow-listed")}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_pretrained(ViT.from_config("tiny"), path)
    report = load_pretrained(
        ViT.from_config("tiny"), path, checkpoint_grid=TINY_CKPT_GRID, weights_only=False
    )
    assert report.loaded_fraction == 1.0
