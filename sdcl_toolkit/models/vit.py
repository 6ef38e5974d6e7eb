"""Vision Transformer with an optional ICS convolutional stem (TransReID-SSL / official SDCL).

The module layout and parameter names equal those of the TransReID / TransReID-SSL
checkpoints (``vit_base_ics_cfs_lup.pth``) and of timm ViTs, so loading a checkpoint is a
key match (see :mod:`sdcl_toolkit.models.checkpoint`)::

    cls_token                       [1, 1, D]
    pos_embed                       [1, 1 + gh * gw, D]
    patch_embed.conv.{0,1,3,4,6,7}  ICS stem only (indices 2, 5, 8 are the ReLUs)
    patch_embed.proj.{weight,bias}  [D, C, k, k]
    blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}
    norm

ICS stem (``stem="ics"``): conv7x7 stride 2 (3 -> c, no bias), IBN, ReLU, conv3x3 (c -> c,
no bias), IBN, ReLU, conv3x3 (c -> c, no bias), BatchNorm, ReLU, then a ``p/2 x p/2``
stride ``p/2`` projection to ``D`` channels, so one token covers ``p x p`` pixels. IBN is an
affine InstanceNorm on the first ``c // 2`` channels and a BatchNorm on the rest
(sub-modules ``IN`` and ``BN``). ``stem="linear"`` is the plain ``p x p`` stride ``p``
projection of timm / the original ViT.

Mixed precision: every normalisation layer (LayerNorm, InstanceNorm, BatchNorm) computes
in its parameters' dtype (float32 unless the whole model was cast) and returns the
input's dtype, so ``torch.autocast`` with bfloat16 or float16 keeps the statistics in
float32; attention uses :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _activation_checkpoint

from .._validation import check_bool, check_choice, check_int, check_real
from ..recipe import OFFICIAL_SYSU

logger = logging.getLogger(__name__)

__all__ = [
    "ViTConfig",
    "VIT_BASE",
    "VIT_TINY",
    "CONFIGS",
    "get_config",
    "ViT",
    "PatchEmbed",
    "IBN",
    "Attention",
    "Mlp",
    "Block",
    "DropPath",
    "LayerNorm32",
    "BatchNorm1d32",
    "BatchNorm2d32",
    "InstanceNorm2d32",
]

STEMS = ("ics", "linear")


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a :class:`ViT` (and of :class:`~sdcl_toolkit.models.ShallowDeepViT`).

    Attributes
    ----------
    img_size: input ``(height, width)`` in pixels; both divisible by ``patch_size``.
    patch_size: pixels per token side (16 for ViT-B/16).
    embed_dim: token width ``D``.
    depth: number of transformer blocks.
    num_heads: attention heads (``embed_dim`` must be divisible by it).
    mlp_ratio: MLP hidden width = ``int(embed_dim * mlp_ratio)``.
    qkv_bias: bias on the fused qkv projection.
    stem: ``"ics"`` (convolutional stem of TransReID-SSL) or ``"linear"`` (plain patchify).
    stem_channels: width of the ICS stem (64 in the checkpoint; even).
    drop_rate: dropout after adding ``pos_embed`` and inside attention-proj / MLP.
    attn_drop_rate: dropout on the attention weights.
    drop_path_rate: stochastic depth; block ``i`` uses ``drop_path_rate * i / (depth - 1)``.
    layer_norm_eps: epsilon of every LayerNorm (1e-6 as in TransReID).
    """

    img_size: tuple[int, int] = (OFFICIAL_SYSU.height, OFFICIAL_SYSU.width)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    stem: str = "ics"
    stem_channels: int = 64
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = OFFICIAL_SYSU.drop_path_rate
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        img_size = self.img_size
        if isinstance(img_size, (int, np.integer)) and not isinstance(img_size, (bool, np.bool_)):
            img_size = (img_size, img_size)
        if not _is_pair(img_size):
            raise ValueError(f"img_size must be a (height, width) pair, got {self.img_size!r}")
        size = (
            check_int(img_size[0], "img_size[0]", minimum=1),
            check_int(img_size[1], "img_size[1]", minimum=1),
        )
        object.__setattr__(self, "img_size", size)
        for name in ("patch_size", "embed_dim", "depth", "num_heads", "stem_channels"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, minimum=1))
        object.__setattr__(self, "qkv_bias", check_bool(self.qkv_bias, "qkv_bias"))
        check_choice(self.stem, "stem", STEMS)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        for side, name in zip(size, ("height", "width")):
            if side < self.patch_size or side % self.patch_size:
                raise ValueError(
                    f"image {name} {side} must be a positive multiple of patch_size "
                    f"{self.patch_size}; got img_size={size}"
                )
        if self.stem == "ics":
            if self.patch_size % 2:
                raise ValueError(
                    f"the ICS stem halves the image first, so patch_size must be even, "
                    f"got {self.patch_size}"
                )
            if self.stem_channels % 2:
                raise ValueError(f"stem_channels must be even (IBN), got {self.stem_channels}")
        real = check_real(self.mlp_ratio, "mlp_ratio", minimum=0.0, min_inclusive=False)
        object.__setattr__(self, "mlp_ratio", real)
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            real = check_real(
                getattr(self, name), name, minimum=0.0, maximum=1.0, max_inclusive=False
            )
            object.__setattr__(self, name, real)
        real = check_real(self.layer_norm_eps, "layer_norm_eps", minimum=0.0, min_inclusive=False)
        object.__setattr__(self, "layer_norm_eps", real)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid ``(gh, gw)`` = ``img_size / patch_size``."""
        return (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def replace(self, **changes: Any) -> ViTConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _is_pair(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2


VIT_BASE = ViTConfig()
"""Official SDCL backbone: ViT-B/16 with the ICS stem at 288x144, drop path 0.1."""

VIT_TINY = ViTConfig(
    img_size=(64, 32),
    patch_size=8,
    embed_dim=128,
    depth=4,
    num_heads=4,
    mlp_ratio=4.0,
    qkv_bias=True,
    stem="ics",
    stem_channels=32,
    drop_path_rate=0.0,
)
"""CPU-sized model for tests and the demo: 64x32 input, 8x4 tokens, width 128, 4 blocks."""

CONFIGS: dict[str, ViTConfig] = {"vit_base": VIT_BASE, "tiny": VIT_TINY}


def get_config(config: Union[str, ViTConfig], **overrides: Any) -> ViTConfig:
    """Resolve a config name ("vit_base", "tiny") or a :class:`ViTConfig`, with overrides."""
    if isinstance(config, ViTConfig):
        resolved = config
    elif isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown config {config!r}; expected one of {sorted(CONFIGS)}")
        resolved = CONFIGS[config]
    else:
        raise TypeError(f"config must be a name or a ViTConfig, got {type(config).__name__}")
    return resolved.replace(**overrides) if overrides else resolved


# --------------------------------------------------------------------------- norms


class LayerNorm32(nn.LayerNorm):
    """LayerNorm in its parameters' dtype (float32 under autocast); keeps the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute = self.weight.dtype if self.weight is not None else torch.float32
        out = F.layer_norm(x.to(compute), self.normalized_shape, self.weight, self.bias, self.eps)
        return out.to(x.dtype)


class BatchNorm2d32(nn.BatchNorm2d):
    """BatchNorm2d computed in its parameters' dtype; returns the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype)).to(x.dtype)


class BatchNorm1d32(nn.BatchNorm1d):
    """BatchNorm1d computed in its parameters' dtype; returns the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype)).to(x.dtype)


class InstanceNorm2d32(nn.InstanceNorm2d):
    """Affine InstanceNorm2d computed in its parameters' dtype; returns the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype)).to(x.dtype)


class IBN(nn.Module):
    """Instance-batch normalisation: affine InstanceNorm on the first ``channels // 2``
    channels (``IN``), BatchNorm on the rest (``BN``). Input/output ``[B, channels, H, W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.split = channels // 2  # channels [0, split) -> IN, [split, channels) -> BN
        self.IN = InstanceNorm2d32(self.split, affine=True)
        self.BN = BatchNorm2d32(channels - self.split)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x[:, : self.split], x[:, self.split :]
        return torch.cat((self.IN(first.contiguous()), self.BN(second.contiguous())), dim=1)


# --------------------------------------------------------------------------- patch embedding


class PatchEmbed(nn.Module):
    """Images ``[B, 3, H, W]`` -> patch tokens ``[B, (H/p)(W/p), D]``.

    ``stem="ics"`` builds ``conv`` (the 9-layer ICS stem, indices 0..8) followed by ``proj``
    (kernel = stride = ``p/2``); ``stem="linear"`` only ``proj`` (kernel = stride = ``p``).
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 768,
        stem: str = "ics",
        stem_channels: int = 64,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        self.stem = stem
        self.patch_size = patch_size
        self.conv: Optional[nn.Sequential]
        if stem == "ics":
            c = stem_channels
            self.conv = nn.Sequential(
                nn.Conv2d(in_chans, c, kernel_size=7, stride=2, padding=3, bias=False),
                IBN(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, bias=False),
                IBN(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, bias=False),
                BatchNorm2d32(c),
                nn.ReLU(inplace=True),
            )
            kernel = patch_size // 2
            proj_in = c
        else:
            self.conv = None
            kernel = patch_size
            proj_in = in_chans
        self.proj = nn.Conv2d(proj_in, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images if self.conv is None else self.conv(images)
        x = self.proj(x)  # [B, D, gh, gw]
        return x.flatten(2).transpose(1, 2)


# --------------------------------------------------------------------------- transformer block


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples with probability ``rate``, rescale the rest."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Module wrapper of :func:`drop_path` (identity in eval mode or with ``rate=0``)."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection and an output ``proj``.

    ``softmax(q k^T / sqrt(d_head)) v`` per head via ``scaled_dot_product_attention``.
    With ``num_queries=n`` only the first ``n`` tokens are used as queries (keys and values
    still come from all tokens); the output then has ``n`` tokens.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, num_queries: Optional[int] = None) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, head_dim]
        if num_queries is not None:
            q = q[:, :, :num_queries]
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(batch, q.shape[2], dim)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` with dropout after the activation and after ``fc2``."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    ``forward(x, cls_only=True)`` returns only the first (class) token ``[B, 1, D]``; it is
    exactly the first row of the full output (a token's output depends on its own query
    and on all keys/values) at a fraction of the cost.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path_rate: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(dim, eps=eps)
        self.attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop
        )
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = LayerNorm32(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        if cls_only:
            attended = self.attn(self.norm1(x), num_queries=1)
            x = x[:, :1] + self.drop_path(attended)
        else:
            x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def run_checkpointed(
    module: nn.Module, x: torch.Tensor, enabled: bool, **kwargs: Any
) -> torch.Tensor:
    """``module(x, **kwargs)``, with activation checkpointing when ``enabled`` and grads are on."""
    if enabled and torch.is_grad_enabled():
        return _activation_checkpoint(module, x, use_reentrant=False, **kwargs)
    return module(x, **kwargs)


# --------------------------------------------------------------------------- the ViT


class ViT(nn.Module):
    """Vision Transformer (ViT-B/16 of the official SDCL), checkpoint-compatible with
    TransReID-SSL and timm.

    Parameters
    ----------
    patch_size, embed_dim, depth, num_heads, mlp_ratio, qkv_bias:
        Architecture (ViT-B/16: 16, 768, 12, 12, 4.0, True).
    img_size:
        Input ``(H, W)``; fixes the ``pos_embed`` grid ``(H/p, W/p)`` (18x9 for 288x144).
    stem:
        ``"ics"`` (TransReID-SSL convolutional stem) or ``"linear"``.
    stem_channels:
        ICS stem width (64 in the checkpoint).
    drop_rate, attn_drop_rate, drop_path_rate:
        Dropouts; stochastic depth grows linearly from 0 to ``drop_path_rate`` over the blocks.
    layer_norm_eps:
        LayerNorm epsilon (1e-6).
    gradient_checkpointing:
        Recompute each block's activations in backward (less memory, ~30% more compute).

    ``forward(images)`` maps ``[B, 3, H, W]`` float images (ImageNet-normalised) to the
    final-normed tokens ``[B, 1 + gh*gw, D]`` (index 0 = class token). The pieces
    (:meth:`embed`, :meth:`run_blocks`) are public so that wrappers such as
    :class:`~sdcl_toolkit.models.ShallowDeepViT` can reuse them.
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        img_size: tuple[int, int] = (OFFICIAL_SYSU.height, OFFICIAL_SYSU.width),
        stem: str = "ics",
        drop_path_rate: float = OFFICIAL_SYSU.drop_path_rate,
        gradient_checkpointing: bool = False,
        *,
        stem_channels: int = 64,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        layer_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.config = ViTConfig(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            stem=stem,
            stem_channels=stem_channels,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            layer_norm_eps=layer_norm_eps,
        )
        cfg = self.config
        self.gradient_checkpointing = bool(gradient_checkpointing)
        self.embed_dim = embed_dim
        self.patch_embed = self.new_patch_embed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        # stochastic depth grows linearly over the blocks: 0, ..., drop_path_rate
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList(self.new_block(rate) for rate in rates)
        self.norm = LayerNorm32(embed_dim, eps=layer_norm_eps)
        self.reset_parameters()

    @classmethod
    def from_config(
        cls,
        config: Union[str, ViTConfig],
        *,
        gradient_checkpointing: bool = False,
        **overrides: Any,
    ) -> ViT:
        """Build from a :class:`ViTConfig` or a config name (``"vit_base"``, ``"tiny"``);
        ``overrides`` change config fields, e.g. ``stem="linear"``."""
        cfg = get_config(config, **overrides)
        return cls(**dataclasses.asdict(cfg), gradient_checkpointing=gradient_checkpointing)

    # -- construction helpers (also used by ShallowDeepViT for its extra copies)

    def new_patch_embed(self) -> PatchEmbed:
        """A freshly initialised patch embedding of this model's architecture."""
        cfg = self.config
        return PatchEmbed(cfg.patch_size, cfg.embed_dim, cfg.stem, cfg.stem_channels)

    def new_block(self, drop_path_rate: float) -> Block:
        """A freshly initialised transformer block of this model's architecture."""
        cfg = self.config
        return Block(
            cfg.embed_dim,
            cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias,
            drop=cfg.drop_rate,
            attn_drop=cfg.attn_drop_rate,
            drop_path_rate=drop_path_rate,
            eps=cfg.layer_norm_eps,
        )

    def reset_parameters(self) -> None:
        """TransReID initialisation: truncated normal (std 0.02) for linear weights,
        ``cls_token`` and ``pos_embed``; zero biases; LayerNorm 1/0; convolutions keep
        PyTorch's default."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_transformer_weights)

    # -- geometry

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid ``(gh, gw)``."""
        return self.config.grid_size

    @property
    def num_patches(self) -> int:
        return self.config.num_patches

    @property
    def img_size(self) -> tuple[int, int]:
        return self.config.img_size

    def check_images(self, images: Any, name: str = "images") -> torch.Tensor:
        """Raise ``TypeError``/``ValueError`` unless ``images`` is a float ``[B, 3, H, W]``
        tensor of the model's ``img_size``."""
        if not isinstance(images, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor [B, 3, H, W], got {type(images).__name__}"
            )
        if not images.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {images.dtype}")
        expected = (3, *self.config.img_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"{name} must have shape [B, {expected[0]}, {expected[1]}, {expected[2]}] "
                f"(the model's img_size), got {tuple(images.shape)}"
            )
        return images

    # -- forward pieces

    def add_cls_and_pos(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, D]`` -> ``[cls; patches] + pos_embed`` ``[B, 1 + N, D]``,
        then ``pos_drop``."""
        cls = self.cls_token.expand(patch_tokens.shape[0], -1, -1)
        tokens = torch.cat((cls, patch_tokens), dim=1)  # promotes to float32 under autocast
        return self.pos_drop(tokens + self.pos_embed)

    def embed(self, images: torch.Tensor, patch_embed: Optional[nn.Module] = None) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` -> embedding-level tokens ``[B, 1 + N, D]`` (before any block).

        ``patch_embed`` overrides the model's own (e.g. the IR embedding of ShallowDeepViT).
        """
        self.check_images(images)
        embedder = self.patch_embed if patch_embed is None else patch_embed
        return self.add_cls_and_pos(embedder(images))

    def run_blocks(
        self, tokens: torch.Tensor, start: int = 0, stop: Optional[int] = None
    ) -> torch.Tensor:
        """Apply ``blocks[start:stop]`` to tokens ``[B, T, D]`` (checkpointed if enabled)."""
        for block in self.blocks[start:stop]:
            tokens = run_checkpointed(block, tokens, self.gradient_checkpointing and self.training)
        return tokens

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``norm(blocks(embed(images)))`` ``[B, 1 + gh*gw, D]``."""
        return self.norm(self.run_blocks(self.embed(images)))


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights with zero bias; LayerNorm weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
