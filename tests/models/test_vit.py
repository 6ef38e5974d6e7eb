"""ViT backbone (SPEC section 2): checkpoint-compatible names, ICS stem layout, attention,
stochastic depth, gradient checkpointing, mixed precision and input validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sdcl_toolkit.models import VIT_BASE, ViT, ViTConfig, get_config
from sdcl_toolkit.models.vit import IBN, Attention, Block, LayerNorm32, drop_path


@pytest.fixture(scope="module")
def meta_vit_base() -> ViT:
    with torch.device("meta"):  # shapes only, no memory or init cost
        return ViT.from_config("vit_base")


def tiny(**overrides) -> ViT:
    torch.manual_seed(0)
    return ViT.from_config("tiny", **overrides)


# --------------------------------------------------------------------------- layout


def test_vit_base_names_and_shapes_match_the_checkpoint(meta_vit_base):
    state = meta_vit_base.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["cls_token"] == (1, 1, 768)
    assert shapes["pos_embed"] == (1, 1 + 18 * 9, 768)
    assert shapes["patch_embed.conv.0.weight"] == (64, 3, 7, 7)
    assert shapes["patch_embed.conv.3.weight"] == (64, 64, 3, 3)
    assert shapes["patch_embed.conv.6.weight"] == (64, 64, 3, 3)
    for ibn in ("patch_embed.conv.1", "patch_embed.conv.4"):
        for name in (
            "IN.weight",
            "IN.bias",
            "BN.weight",
            "BN.bias",
            "BN.running_mean",
            "BN.running_var",
        ):
            assert shapes[f"{ibn}.{name}"] == (32,)
    assert shapes["patch_embed.conv.7.running_var"] == (64,)
    assert shapes["patch_embed.proj.weight"] == (768, 64, 8, 8)
    assert shapes["blocks.11.attn.qkv.weight"] == (2304, 768)
    assert shapes["blocks.11.mlp.fc1.weight"] == (3072, 768)
    assert shapes["norm.bias"] == (768,)
    stem = {k for k in state if k.startswith("patch_embed.conv.")}
    assert {k.split(".")[2] for k in stem} == {"0", "1", "3", "4", "6", "7"}  # ReLUs at 2, 5, 8
    assert not any(k.startswith(("head", "fc")) for k in state)
    n_blocks = {k.split(".")[1] for k in state if k.startswith("blocks.")}
    assert n_blocks == {str(i) for i in range(12)}
    per_block = {k.split(".", 2)[2] for k in state if k.startswith("blocks.0.")}
    assert per_block == {
        f"{m}.{p}"
        for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
        for p in ("weight", "bias")
    }


def test_ics_stem_layers(meta_vit_base):
    conv = meta_vit_base.patch_embed.conv
    kinds = [type(m).__name__ for m in conv]
    assert kinds == [
        "Conv2d",
        "IBN",
        "ReLU",
        "Conv2d",
        "IBN",
        "ReLU",
        "Conv2d",
        "BatchNorm2d32",
        "ReLU",
    ]
    first = conv[0]
    assert (first.kernel_size, first.stride, first.padding, first.bias) == (
        (7, 7),
        (2, 2),
        (3, 3),
        None,
    )
    assert conv[3].bias is None and conv[6].bias is None and conv[3].kernel_size == (3, 3)
    assert conv[1].IN.affine and conv[1].IN.num_features == 32 and conv[1].BN.num_features == 32
    proj = meta_vit_base.patch_embed.proj
    assert proj.kernel_size == (8, 8) and proj.stride == (8, 8)
    assert meta_vit_base.grid_size == (18, 9)
    assert VIT_BASE.drop_path_rate == 0.1 and VIT_BASE.layer_norm_eps == 1e-6
    assert meta_vit_base.blocks[0].drop_path.rate == 0.0
    assert meta_vit_base.blocks[-1].drop_path.rate == pytest.approx(0.1)


def test_linear_stem_is_plain_patchify():
    model = tiny(stem="linear")
    assert model.patch_embed.conv is None
    assert model.patch_embed.proj.kernel_size == (8, 8) and model.patch_embed.proj.stride == (8, 8)
    out = model(torch.randn(2, 3, 64, 32))
    assert out.shape == (2, 1 + 8 * 4, 128)


@settings(max_examples=8, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), stem=st.sampled_from(["ics", "linear"]))
def test_token_count_follows_the_grid(rows, cols, stem):
    torch.manual_seed(0)
    model = ViT(
        patch_size=4,
        embed_dim=16,
        depth=1,
        num_heads=2,
        img_size=(4 * rows, 4 * cols),
        stem=stem,
        stem_channels=8,
    ).eval()
    out = model(torch.randn(2, 3, 4 * rows, 4 * cols))
    assert out.shape == (2, 1 + rows * cols, 16)
    assert model.grid_size == (rows, cols)


# --------------------------------------------------------------------------- blocks


def test_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(dim=12, num_heads=3, qkv_bias=True).eval()
    x = torch.randn(2, 5, 12)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 3, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


def test_cls_only_block_is_the_first_row_of_the_full_block():
    torch.manual_seed(0)
    block = Block(32, 4, drop_path_rate=0.0).eval()
    x = torch.randn(3, 9, 32, requires_grad=True)
    full = block(x)[:, :1]
    fast = block(x, cls_only=True)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    (g_full,) = torch.autograd.grad(full.sum(), x)
    (g_fast,) = torch.autograd.grad(fast.sum(), x)
    torch.testing.assert_close(g_fast, g_full, rtol=1e-5, atol=1e-6)


def test_drop_path_is_per_sample_and_unbiased():
    x = torch.ones(4000, 3, 2)
    assert drop_path(x, 0.3, training=False) is x
    torch.manual_seed(0)
    out = drop_path(x, 0.3, training=True)
    per_sample = out.reshape(4000, -1)
    assert bool(((per_sample == 0).all(1) | (per_sample == 1 / 0.7).all(1)).all())
    assert abs(float(out.mean()) - 1.0) < 0.05


def test_gradient_checkpointing_gives_identical_results():
    plain, ckpt = tiny(), tiny()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.gradient_checkpointing = True
    images = torch.randn(3, 3, 64, 32)
    outs = []
    for model in (plain, ckpt):
        model.train()
        out = model(images)
        out.square().mean().backward()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1])
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


# --------------------------------------------------------------------------- precision


def test_norms_compute_in_float32_and_return_input_dtype():
    torch.manual_seed(0)
    x = (torch.randn(2, 6, 16) * 50 + 300).to(
        torch.bfloat16
    )  # large mean: bf16 stats would be poor
    ln = LayerNorm32(16)
    out = ln(x)
    assert out.dtype == torch.bfloat16
    reference = F.layer_norm(x.float(), (16,), eps=ln.eps).to(torch.bfloat16)
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    ibn = IBN(8).train()
    feat = (torch.randn(2, 8, 5, 5) * 20 + 100).to(torch.bfloat16)
    y = ibn(feat)
    assert y.dtype == torch.bfloat16 and ibn.BN.running_mean.dtype == torch.float32
    ref_in = F.instance_norm(feat[:, :4].float(), eps=1e-5).to(torch.bfloat16)
    torch.testing.assert_close(y[:, :4], ref_in, rtol=0, atol=0)


def test_autocast_bfloat16_forward_backward_is_finite_and_close():
    model = tiny().eval()
    images = torch.randn(4, 3, 64, 32)
    reference = model(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(images)
    assert low.dtype == torch.float32  # residual stream and final norm stay float32
    assert torch.isfinite(low).all()
    cosine = F.cosine_similarity(low[:, 0].detach(), reference[:, 0].detach(), dim=1)
    assert float(cosine.min()) > 0.995
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(images)[:, 0].float().square().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --------------------------------------------------------------------------- validation


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTConfig(img_size=(100, 50))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ViTConfig(embed_dim=100, num_heads=12)
    with pytest.raises(ValueError, match="stem must be"):
        ViTConfig(stem="conv")
    with pytest.raises(ValueError, match="patch_size must be even"):
        ViTConfig(img_size=(45, 45), patch_size=15)
    with pytest.raises(ValueError, match="drop_path_rate"):
        ViTConfig(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="unknown config"):
        get_config("vit_huge")
    with pytest.raises(TypeError):
        get_config(3)  # type: ignore[arg-type]
    assert ViTConfig(img_size=64, patch_size=16).grid_size == (4, 4)
    assert get_config("vit_base", img_size=(256, 128)).grid_size == (16, 8)


def test_bad_images_are_rejected():
    model = tiny()
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 32\]"):
        model(torch.randn(2, 3, 32, 64))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 3, 64, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])  # type: ignore[arg-type]


def test_initialisation_matches_transreid():
    model = tiny()
    assert float(model.pos_embed.detach().std()) == pytest.approx(0.02, rel=0.2)
    assert float(model.blocks[0].attn.qkv.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    assert float(model.blocks[0].attn.qkv.bias.detach().abs().max()) == 0.0
    assert isinstance(model.norm, nn.LayerNorm) and float(model.norm.weight.detach().min()) == 1.0
