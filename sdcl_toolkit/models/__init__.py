"""Models: the ViT backbone (optional ICS stem), the shallow-deep SDCL wrapper, checkpoint loading.

Yang et al., CVPR 2024; official ``clustercontrast/model_vit_cmrefine``. ``ViT``,
``ShallowDeepViT`` and ``load_pretrained`` are also importable from the top-level package
(``from sdcl_toolkit import ShallowDeepViT``).
"""

from .checkpoint import (
    DEFAULT_CHECKPOINT_GRID,
    CheckpointError,
    CheckpointReport,
    adapt_state_dict,
    load_pretrained,
    normalize_state_dict,
    read_checkpoint,
    resize_pos_embed,
    unwrap_state_dict,
)
from .shallow_deep import (
    MixedFeatures,
    ShallowDeepFeatures,
    ShallowDeepViT,
    build_shallow_deep_vit,
    parse_modality,
)
from .vit import CONFIGS, VIT_BASE, VIT_TINY, ViT, ViTConfig, get_config

__all__ = [
    "ViT",
    "ViTConfig",
    "VIT_BASE",
    "VIT_TINY",
    "CONFIGS",
    "get_config",
    "ShallowDeepViT",
    "ShallowDeepFeatures",
    "MixedFeatures",
    "build_shallow_deep_vit",
    "parse_modality",
    "load_pretrained",
    "adapt_state_dict",
    "read_checkpoint",
    "unwrap_state_dict",
    "normalize_state_dict",
    "resize_pos_embed",
    "CheckpointReport",
    "CheckpointError",
    "DEFAULT_CHECKPOINT_GRID",
]
