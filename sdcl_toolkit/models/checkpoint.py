"""Checkpoint loading for the ViT backbones (TransReID-SSL / official SDCL keys): the public entry.

:func:`load_pretrained` loads a path or a state dict into a :class:`~sdcl_toolkit.models.ViT`
or a :class:`~sdcl_toolkit.models.ShallowDeepViT`. The generic state-dict functions
(``read_checkpoint``, ``unwrap_state_dict``, ``normalize_state_dict``, ``resize_pos_embed``,
``adapt_state_dict``, ``CheckpointReport``, ``CheckpointError``) live in
:mod:`sdcl_toolkit.models.state_dict` (a leaf that imports no model class) and are re-exported
here; the SDCL-specific key renames and the "full model or backbone only" decision live next
to the model, in :func:`sdcl_toolkit.models.shallow_deep.checkpoint_filter_fn`.

Import graph: ``state_dict`` <- ``vit`` <- ``shallow_deep`` <- ``checkpoint`` (no cycle).
"""

from __future__ import annotations

from torch import nn

from .shallow_deep import ShallowDeepViT, checkpoint_filter_fn
from .state_dict import (  # HEAD_NAMES .. logger: re-exported, formerly defined here
    DEFAULT_CHECKPOINT_GRID,
    DEFAULT_MIN_LOADED_FRACTION,
    HEAD_NAMES,  # noqa: F401
    STRIPPED_PREFIXES,  # noqa: F401
    WRAPPER_KEYS,  # noqa: F401
    CheckpointError,
    CheckpointReport,
    Source,
    adapt_state_dict,
    load_into,
    logger,  # noqa: F401
    normalize_state_dict,
    read_checkpoint,
    resize_pos_embed,
    unwrap_state_dict,
)
from .vit import ViT

__all__ = [
    "DEFAULT_CHECKPOINT_GRID",
    "CheckpointError",
    "CheckpointReport",
    "read_checkpoint",
    "unwrap_state_dict",
    "normalize_state_dict",
    "resize_pos_embed",
    "adapt_state_dict",
    "load_pretrained",
]


def load_pretrained(
    model: nn.Module,
    checkpoint: Source,
    *,
    checkpoint_grid: tuple[int, int] = DEFAULT_CHECKPOINT_GRID,
    min_loaded_fraction: float = DEFAULT_MIN_LOADED_FRACTION,
    weights_only: bool = True,
) -> CheckpointReport:
    """Load a checkpoint (path or state dict) into a :class:`ViT` or :class:`ShallowDeepViT`.

    - Backbone checkpoints (TransReID-SSL ``vit_base_ics_cfs_lup.pth``, timm ViTs, DINO
      ``teacher``) go into the ViT; for a ShallowDeepViT the IR patch embedding and the
      ``b1``/``b2`` branches are then copied from it
      (:meth:`ShallowDeepViT.copy_backbone_to_branches`).
    - Full ShallowDeepViT checkpoints (this module's ``state_dict()``, or an official SDCL
      model with ``base.`` / ``bottleneck(s).`` names) load into every sub-module, no copies.

    ``checkpoint_grid`` is the checkpoint's token grid for ``pos_embed`` resizing (16x8 for
    256x128 with 16 px patches). Returns the :class:`CheckpointReport` (also logged);
    raises :class:`CheckpointError` if fewer than ``min_loaded_fraction`` of the tensors fit.
    """
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    if not isinstance(model, (ViT, ShallowDeepViT)):
        raise TypeError(f"model must be a ViT or a ShallowDeepViT, got {type(model).__name__}")
    return load_into(
        model,
        checkpoint,
        model_grid=model.config.grid_size,
        filter_fn=checkpoint_filter_fn if isinstance(model, ShallowDeepViT) else None,
        checkpoint_grid=checkpoint_grid,
        min_loaded_fraction=min_loaded_fraction,
        weights_only=weights_only,
    )
