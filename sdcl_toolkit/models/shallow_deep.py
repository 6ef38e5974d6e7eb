"""ShallowDeepViT: deep and shallow re-ID features from one ViT (Yang et al., CVPR 2024;
official ``make_model.py``).

Shapes (``B`` images, ``N = gh*gw`` patches, ``D`` width; vit_base: N = 162, D = 768)::

    x       = [cls; patch_embed_m(images)] + pos_embed          [B, 1+N, D]   m = RGB or IR
    s       = x[:, 1:]                       (shallow tokens)     [B, N, D]
    h       = blocks[0 .. depth-2](x)        (all but the last)   [B, 1+N, D]
    f_deep    = deep_neck(   b1(h)[:, 0] )                        [B, D]
    f_shallow = shallow_neck(b2([h[:, :1]; s])[:, 0])             [B, D]

``b1`` and ``b2`` are two copies of (last block, final norm) made after the checkpoint is
loaded (:meth:`ShallowDeepViT.copy_backbone_to_branches`); the IR patch embedding
``patch_embed2`` is a copy of the RGB one ``vit.patch_embed``. Everything after the patch
embedding is shared by the modalities. Both necks are ``BatchNorm1d(D)`` with a frozen
bias, as in the official code. The test feature is ``l2norm((g(x) + g(flip(x))) / 2)`` with
``g = [f_deep; f_shallow]`` (``2D`` = 1536 for vit_base).

Module names follow the official SDCL model where it costs nothing (``b1``/``b2`` are
``Sequential(block, norm)``), so a trained official SDCL checkpoint maps onto this module
with a prefix rename (see :func:`checkpoint_filter_fn`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Optional, Union, cast

import torch
import torch.nn.functional as F
from torch import nn

from .._arrays import array_kind, as_tensor
from .._validation import check_bool, check_int
from ..modality import IR, RGB, parse_modality
from ..recipe import OFFICIAL_SYSU
from .state_dict import LoadPlan, load_into
from .vit import (
    BatchNorm1d32,
    Block,
    LayerNorm32,
    ViT,
    ViTConfig,
    get_config,
    run_checkpointed,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ShallowDeepFeatures",
    "MixedFeatures",
    "ShallowDeepViT",
    "build_shallow_deep_vit",
    "checkpoint_filter_fn",
    "parse_modality",
]

# Official SDCL model (make_model.build_transformer) -> ShallowDeepViT names; longest first.
_OFFICIAL_SDCL_RENAMES = (
    ("base.patch_embed2.", "patch_embed2."),
    ("base.", "vit."),
    ("bottlenecks.", "shallow_neck."),
    ("bottleneck.", "deep_neck."),
)
_FULL_MODEL_PREFIXES = ("vit.", "patch_embed2.", "b1.", "b2.", "deep_neck.", "shallow_neck.")

ModalityArg = Union[str, torch.Tensor, Sequence[str]]


class ShallowDeepFeatures(NamedTuple):
    """Features after the BatchNorm necks: ``deep`` and ``shallow``, each ``[B, D]``."""

    deep: torch.Tensor
    shallow: torch.Tensor


class MixedFeatures(NamedTuple):
    """Output of :meth:`ShallowDeepViT.forward_mixed`: the RGB part and the IR part."""

    rgb: ShallowDeepFeatures
    ir: ShallowDeepFeatures


def _norm_group_rows(
    n_rgb: int, n_ir: int, groups: int, device: torch.device
) -> list[torch.Tensor]:
    """Rows of the joint ``[rgb; ir]`` batch in each batch-norm group: RGB chunk ``g`` and
    IR chunk ``g`` of ``torch.chunk`` (DataParallel's scatter), RGB rows first."""
    rgb_rows = torch.arange(n_rgb, device=device).chunk(groups)
    ir_rows = torch.arange(n_rgb, n_rgb + n_ir, device=device).chunk(groups)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    out = []
    for g in range(groups):
        r = rgb_rows[g] if g < len(rgb_rows) else empty
        i = ir_rows[g] if g < len(ir_rows) else empty
        out.append(torch.cat((r, i)))
    return out


@contextmanager
def _running_stats_frozen(module: nn.Module, frozen: bool) -> Iterator[None]:
    """Batch norms of ``module`` normalise with batch statistics but leave their running
    statistics (and ``num_batches_tracked``) untouched while ``frozen``."""
    if not frozen:
        yield
        return
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _new_bn_neck(dim: int) -> BatchNorm1d32:
    neck = BatchNorm1d32(dim)
    nn.init.ones_(neck.weight)
    nn.init.zeros_(neck.bias)
    neck.bias.requires_grad_(False)
    return neck


class ShallowDeepViT(nn.Module):
    """The SDCL backbone: modality-specific patch embeddings, a deep and a shallow branch.

    Parameters
    ----------
    config:
        ``"vit_base"`` (official ViT-B/16 ICS, 288x144), ``"tiny"`` (CPU tests/demo) or a
        :class:`~sdcl_toolkit.models.ViTConfig`.
    gradient_checkpointing:
        Recompute block activations in backward (ViT blocks and ``b1``/``b2``).
    **overrides:
        Config fields to change, e.g. ``drop_path_rate=0.0`` or ``img_size=(256, 128)``.

    Sub-modules: ``vit`` (:class:`ViT`; ``vit.patch_embed`` embeds RGB), ``patch_embed2``
    (IR), ``b1``/``b2`` (``Sequential(Block, LayerNorm)``), ``deep_neck``/``shallow_neck``.
    ``vit.blocks[-1]`` and ``vit.norm`` hold the checkpoint's last block; they are the
    source of ``b1``/``b2`` and are not used in the forward pass.

    Example
    -------
    >>> model = ShallowDeepViT("tiny").eval()
    >>> deep, shallow = model(torch.randn(2, 3, 64, 32), "ir")
    >>> model.extract(torch.randn(2, 3, 64, 32), "rgb").shape
    torch.Size([2, 256])
    """

    def __init__(
        self,
        config: Union[str, ViTConfig] = "vit_base",
        *,
        gradient_checkpointing: bool = False,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = get_config(config, **overrides)
        self.vit = ViT.from_config(self.config, gradient_checkpointing=gradient_checkpointing)
        self.patch_embed2 = self.vit.new_patch_embed()
        last_block = cast(Block, self.vit.blocks[-1])
        last_rate = last_block.drop_path.rate
        dim = self.config.embed_dim
        eps = self.config.layer_norm_eps
        self.b1 = nn.Sequential(self.vit.new_block(last_rate), LayerNorm32(dim, eps=eps))
        self.b2 = nn.Sequential(self.vit.new_block(last_rate), LayerNorm32(dim, eps=eps))
        self.deep_neck = _new_bn_neck(dim)
        self.shallow_neck = _new_bn_neck(dim)
        # Like the official model, the branches start as copies even without a checkpoint.
        self.copy_backbone_to_branches()

    # ------------------------------------------------------------------ properties

    @property
    def gradient_checkpointing(self) -> bool:
        return self.vit.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        self.vit.gradient_checkpointing = bool(enabled)

    @property
    def feature_dim(self) -> int:
        """Width ``D`` of each of the deep and shallow features."""
        return self.config.embed_dim

    @property
    def test_feature_dim(self) -> int:
        """Width ``2D`` of :meth:`extract`'s output."""
        return 2 * self.config.embed_dim

    @property
    def patch_embed(self) -> nn.Module:
        """The RGB patch embedding (``vit.patch_embed``)."""
        return self.vit.patch_embed

    @property
    def img_size(self) -> tuple[int, int]:
        return self.config.img_size

    def patch_embed_for(self, modality: str) -> nn.Module:
        """``vit.patch_embed`` for ``"rgb"``, ``patch_embed2`` for ``"ir"``."""
        return self.patch_embed2 if parse_modality(modality) == IR else self.vit.patch_embed

    # ------------------------------------------------------------------ weights

    @torch.no_grad()
    def copy_backbone_to_branches(self) -> list[str]:
        """Copy the RGB patch embedding into ``patch_embed2`` and (last block, norm) into
        ``b1`` and ``b2`` (values, incl. BatchNorm buffers; storage stays separate).

        Call after loading backbone weights into ``self.vit``;
        :func:`~sdcl_toolkit.models.load_pretrained` does. Returns what was copied.
        """
        self.patch_embed2.load_state_dict(self.vit.patch_embed.state_dict())
        for branch in (self.b1, self.b2):
            branch[0].load_state_dict(self.vit.blocks[-1].state_dict())
            branch[1].load_state_dict(self.vit.norm.state_dict())
        last = len(self.vit.blocks) - 1
        return [
            "patch_embed2 <- vit.patch_embed",
            f"b1 <- (vit.blocks.{last}, vit.norm)",
            f"b2 <- (vit.blocks.{last}, vit.norm)",
        ]

    # ------------------------------------------------------------------ forward

    def branch_tokens(self, tokens: torch.Tensor) -> ShallowDeepFeatures:
        """Embedding-level tokens ``[B, 1+N, D]`` -> (deep, shallow) class tokens ``[B, D]``
        before the BatchNorm necks.

        ``tokens`` is ``[cls; patches] + pos_embed`` (:meth:`ViT.embed`). The shallow
        branch sees ``tokens[:, 1:]`` and the class token of the deep path ``h[:, :1]``.
        Only the class-token row of ``b1``/``b2`` is computed (identical to the full blocks'
        row 0).
        """
        shallow_tokens = tokens[:, 1:]
        h = self.vit.run_blocks(tokens, stop=len(self.vit.blocks) - 1)
        checkpointed = self.gradient_checkpointing and self.training
        deep = run_checkpointed(self.b1[0], h, checkpointed, cls_only=True)
        deep = self.b1[1](deep)[:, 0]
        shallow_input = torch.cat((h[:, :1], shallow_tokens.to(h.dtype)), dim=1)
        shallow = run_checkpointed(self.b2[0], shallow_input, checkpointed, cls_only=True)
        shallow = self.b2[1](shallow)[:, 0]
        return ShallowDeepFeatures(deep, shallow)

    def branches(self, tokens: torch.Tensor) -> ShallowDeepFeatures:
        """Embedding-level tokens ``[B, 1+N, D]`` -> (deep, shallow) features ``[B, D]`` after
        the necks (:meth:`branch_tokens` + ``deep_neck`` / ``shallow_neck``)."""
        deep, shallow = self.branch_tokens(tokens)
        return ShallowDeepFeatures(self.deep_neck(deep), self.shallow_neck(shallow))

    def forward(self, images: torch.Tensor, modality: ModalityArg) -> ShallowDeepFeatures:
        """Images ``[B, 3, H, W]`` -> ``(deep, shallow)`` features ``[B, D]`` after the necks.

        ``modality``: ``"rgb"`` / ``"ir"`` for the whole batch, or one per sample (a
        ``[B]`` bool/int tensor with ``True``/1 = IR, or a sequence of names). In training
        mode the necks' BatchNorm statistics are taken over the whole batch.
        """
        self.vit.check_images(images)
        if isinstance(modality, str):
            tokens = self.vit.embed(images, self.patch_embed_for(modality))
            return self.branches(tokens)
        is_ir = self._per_sample_modality(modality, images)
        rgb_index = torch.nonzero(~is_ir).flatten()
        ir_index = torch.nonzero(is_ir).flatten()
        patches = self._embed_patches([(images[rgb_index], RGB), (images[ir_index], IR)])
        order = torch.cat((rgb_index, ir_index))
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return self.branches(self.vit.add_cls_and_pos(patches[inverse]))

    def forward_mixed(
        self, rgb: torch.Tensor, ir: torch.Tensor, *, norm_groups: int = 1
    ) -> MixedFeatures:
        """One forward over an RGB batch and an IR batch (the official training step).

        ``rgb`` goes through ``vit.patch_embed``, ``ir`` through ``patch_embed2``; the
        tokens are concatenated (RGB first) and share everything after. Returns
        ``MixedFeatures(rgb=(deep, shallow), ir=(deep, shallow))`` with ``[B_rgb, D]`` and
        ``[B_ir, D]`` tensors.

        ``norm_groups``: how the batch-norm layers (ICS stems, necks) see the batch.

        * ``1``: the whole batch is one BatchNorm batch (the necks' statistics cover both
          modalities).
        * ``G > 1``: as ``torch.nn.DataParallel`` on ``G`` devices, which the official runs
          use: ``rgb`` and ``ir`` are each cut into ``G`` consecutive chunks
          (``torch.chunk``); group ``g`` = RGB chunk ``g`` + IR chunk ``g`` is normalised
          on its own, and only group 0 updates the running statistics (DataParallel keeps
          the buffers of the replica on the first device). With the official batch
          ``[view 1; view 2]`` of RGB and ``G = 2``, group 0 is RGB view 1 + the first half
          of IR. Everything but the batch norms is computed once for the whole batch.
        """
        self.vit.check_images(rgb, "rgb")
        self.vit.check_images(ir, "ir")
        norm_groups = check_int(norm_groups, "norm_groups", minimum=1)
        n_rgb = rgb.shape[0]
        if norm_groups == 1 or not self.training:
            patches = self._embed_patches([(rgb, RGB), (ir, IR)])
            deep, shallow = self.branches(self.vit.add_cls_and_pos(patches))
        else:
            groups = _norm_group_rows(n_rgb, ir.shape[0], norm_groups, rgb.device)
            rgb_parts = [rgb[rows[rows < n_rgb]] for rows in groups]
            ir_parts = [ir[rows[rows >= n_rgb] - n_rgb] for rows in groups]
            embedded = []
            for g, (r, i) in enumerate(zip(rgb_parts, ir_parts)):
                with _running_stats_frozen(self, frozen=g > 0):
                    embedded.append(
                        (
                            self.patch_embed_for(RGB)(r) if r.shape[0] else None,
                            self.patch_embed_for(IR)(i) if i.shape[0] else None,
                        )
                    )
            rgb_tokens = [e[0] for e in embedded if e[0] is not None]
            ir_tokens = [e[1] for e in embedded if e[1] is not None]
            dtype = torch.promote_types(rgb_tokens[0].dtype, ir_tokens[0].dtype)
            patches = torch.cat([t.to(dtype) for t in rgb_tokens + ir_tokens])
            deep_raw, shallow_raw = self.branch_tokens(self.vit.add_cls_and_pos(patches))
            deep = torch.empty_like(deep_raw)
            shallow = torch.empty_like(shallow_raw)
            for g, rows in enumerate(groups):
                if rows.numel() == 0:
                    continue
                with _running_stats_frozen(self, frozen=g > 0):
                    deep[rows] = self.deep_neck(deep_raw[rows]).to(deep.dtype)
                    shallow[rows] = self.shallow_neck(shallow_raw[rows]).to(shallow.dtype)
        return MixedFeatures(
            rgb=ShallowDeepFeatures(deep[:n_rgb], shallow[:n_rgb]),
            ir=ShallowDeepFeatures(deep[n_rgb:], shallow[n_rgb:]),
        )

    def _embed_patches(self, parts: Sequence[tuple[torch.Tensor, str]]) -> torch.Tensor:
        """Concatenated patch tokens of (images, modality) parts; empty parts are skipped."""
        embedded = [self.patch_embed_for(m)(x) for x, m in parts if x.shape[0] > 0]
        if not embedded:
            raise ValueError("no images given: every batch is empty")
        if len(embedded) == 1:
            return embedded[0]
        dtype = torch.promote_types(embedded[0].dtype, embedded[1].dtype)
        return torch.cat([e.to(dtype) for e in embedded], dim=0)

    @staticmethod
    def _per_sample_modality(modality: Any, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        if isinstance(modality, torch.Tensor):
            if modality.is_floating_point() or modality.is_complex():
                raise TypeError(
                    "a per-sample modality tensor must be bool or integer (1 = IR), "
                    f"got {modality.dtype}"
                )
            flags = modality.to(device=images.device)
            if flags.dtype != torch.bool:
                if bool(((flags != 0) & (flags != 1)).any()):
                    raise ValueError("a per-sample modality tensor must hold 0 (RGB) or 1 (IR)")
                flags = flags.bool()
        elif isinstance(modality, Sequence):
            names = [parse_modality(m) for m in modality]
            flags = torch.tensor([n == IR for n in names], dtype=torch.bool, device=images.device)
        else:
            raise TypeError(
                "modality must be 'rgb', 'ir', a [B] bool/int tensor (1 = IR) or a sequence "
                f"of names, got {type(modality).__name__}"
            )
        if flags.shape != (batch,):
            raise ValueError(
                f"per-sample modality must have shape [{batch}] (one per image), "
                f"got {tuple(flags.shape)}"
            )
        return flags

    # ------------------------------------------------------------------ inference

    @contextmanager
    def _inference(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def _prepare_images(self, images: Any) -> tuple[Any, torch.Tensor]:
        kind = array_kind(images=images)
        reference = next(self.parameters())
        tensor = as_tensor(images, "images", dtype=None)
        if not tensor.is_floating_point():
            raise TypeError(f"images must be floating point, got {tensor.dtype}")
        tensor = tensor.to(device=reference.device, dtype=reference.dtype)
        self.vit.check_images(tensor)
        return kind, tensor

    def _flip_averaged(
        self, images: torch.Tensor, modality: ModalityArg, flip: bool, batch_size: Optional[int]
    ) -> ShallowDeepFeatures:
        flip = check_bool(flip, "flip")
        chunk = (
            images.shape[0]
            if batch_size is None
            else check_int(batch_size, "batch_size", minimum=1)
        )
        per_sample = not isinstance(modality, str)
        if per_sample:
            flags = self._per_sample_modality(modality, images)
        deeps, shallows = [], []
        for start in range(0, images.shape[0], chunk):
            part = images[start : start + chunk]
            mod: ModalityArg = flags[start : start + chunk] if per_sample else modality
            if flip:
                n = part.shape[0]
                both = torch.cat((part, part.flip(-1)), dim=0)
                mod_both = torch.cat((mod, mod)) if per_sample else mod  # type: ignore[arg-type]
                deep, shallow = self(both, mod_both)
                deep = (deep[:n].float() + deep[n:].float()) / 2
                shallow = (shallow[:n].float() + shallow[n:].float()) / 2
            else:
                deep, shallow = (f.float() for f in self(part, mod))
            deeps.append(deep)
            shallows.append(shallow)
        return ShallowDeepFeatures(torch.cat(deeps), torch.cat(shallows))

    def extract_branches(
        self,
        images: Any,
        modality: ModalityArg,
        flip: bool = True,
        batch_size: Optional[int] = None,
    ) -> ShallowDeepFeatures:
        """Un-normalised ``(deep, shallow)`` float32 features ``[B, D]``, averaged with the
        horizontally flipped image when ``flip`` (what pseudo-labelling clusters).

        Runs in eval mode without gradients (the previous mode is restored). ``images``
        may be a tensor on any device or a numpy array; results come back in the caller's
        array type/device. ``batch_size`` bounds memory by processing chunks.
        """
        kind, tensor = self._prepare_images(images)
        with self._inference():
            feats = self._flip_averaged(tensor, modality, flip, batch_size)
        return ShallowDeepFeatures(*kind.to_caller(tuple(feats)))

    def extract(
        self,
        images: Any,
        modality: ModalityArg,
        flip: bool = True,
        batch_size: Optional[int] = None,
    ) -> Any:
        """Test feature ``[B, 2D]`` float32: ``l2norm((g(x) + g(flip(x))) / 2)`` with
        ``g = [f_deep; f_shallow]`` (official test feature; 1536-d for vit_base); rank by inner
        product.

        Same calling conventions as :meth:`extract_branches`.
        """
        kind, tensor = self._prepare_images(images)
        with self._inference():
            deep, shallow = self._flip_averaged(tensor, modality, flip, batch_size)
            feature = F.normalize(torch.cat((deep, shallow), dim=1), dim=1)
        return kind.to_caller(feature)


def build_shallow_deep_vit(
    config: Union[str, ViTConfig] = "vit_base",
    pretrained: Any = None,
    *,
    checkpoint_grid: tuple[int, int] = OFFICIAL_SYSU.checkpoint_grid,
    gradient_checkpointing: bool = False,
    **overrides: Any,
) -> ShallowDeepViT:
    """Build a :class:`ShallowDeepViT` and optionally load a backbone checkpoint.

    ``pretrained``: a path or a state dict (e.g. ``vit_base_ics_cfs_lup.pth``), loaded with
    :func:`~sdcl_toolkit.models.load_pretrained` (``checkpoint_grid`` = the checkpoint's
    token grid, 16x8 for 256x128), after which ``patch_embed2``, ``b1`` and ``b2`` are copies.
    """
    model = ShallowDeepViT(config, gradient_checkpointing=gradient_checkpointing, **overrides)
    if pretrained is not None:
        # what load_pretrained(model, pretrained, checkpoint_grid=...) does for this model
        load_into(
            model,
            pretrained,
            model_grid=model.config.grid_size,
            filter_fn=checkpoint_filter_fn,
            checkpoint_grid=checkpoint_grid,
        )
    return model


# --------------------------------------------------------------------------- checkpoints


def _rename_official_sdcl(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in _OFFICIAL_SDCL_RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> LoadPlan:
    """Decide where an unwrapped, normalised checkpoint goes in a :class:`ShallowDeepViT`.

    - A full model (this module's ``state_dict()`` or an official SDCL model, whose
      ``base.`` / ``base.patch_embed2.`` / ``bottleneck.`` / ``bottlenecks.`` names are renamed
      to ``vit.`` / ``patch_embed2.`` / ``deep_neck.`` / ``shallow_neck.``) loads into
      ``model`` as a whole.
    - Anything else is a backbone checkpoint: it loads into ``model.vit`` with its keys as
      they are, and ``patch_embed2``, ``b1``, ``b2`` are then copied from the backbone
      (:meth:`ShallowDeepViT.copy_backbone_to_branches`).
    """
    if not isinstance(model, ShallowDeepViT):
        raise TypeError(f"model must be a ShallowDeepViT, got {type(model).__name__}")
    renamed = _rename_official_sdcl(state_dict)
    if any(k.startswith(_FULL_MODEL_PREFIXES) for k in renamed):
        return LoadPlan(renamed, model)
    return LoadPlan(state_dict, model.vit, model.copy_backbone_to_branches)
