"""The default parts of a training run, built from a :class:`TrainConfig`: the device, the
shallow-deep ViT, the SGD optimiser and the step scheduler of the official recipe.

:class:`~sdcl_toolkit.engine.SDCLTrainer` uses them when no part is injected; a user who
brings their own model or optimiser builds the others with these functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import build_shallow_deep_vit, get_config
from .config import TrainConfig, parse_grid

__all__ = ["resolve_device", "build_model", "build_optimizer", "build_scheduler"]


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; other strings as ``torch.device``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def build_model(config: TrainConfig) -> nn.Module:
    """The :class:`~sdcl_toolkit.ShallowDeepViT` of ``config`` (``model``, ``height`` /
    ``width``, ``drop_path_rate``, ``stem``), loaded from ``config.pretrained_path`` when
    set (its ``pos_embed`` resized from ``config.checkpoint_grid``, default the official
    256x128 checkpoint's 16x8).

    ``vit.blocks[-1]`` and ``vit.norm`` only seed the ``b1`` / ``b2`` branches and get no
    gradient, so they are frozen (the official model leaves them out of the forward pass).
    """
    overrides: dict[str, Any] = {}
    if config.height is not None or config.width is not None:
        base = get_config(config.model)
        overrides["img_size"] = (
            config.height or base.img_size[0],
            config.width or base.img_size[1],
        )
    if config.drop_path_rate is not None:
        overrides["drop_path_rate"] = config.drop_path_rate
    if config.stem is not None:
        overrides["stem"] = config.stem
    if config.checkpoint_grid is not None:
        overrides["checkpoint_grid"] = parse_grid(config.checkpoint_grid)
    model = build_shallow_deep_vit(
        config.model,
        pretrained=config.pretrained_path,
        gradient_checkpointing=config.gradient_checkpointing,
        **overrides,
    )
    for module in (model.vit.blocks[-1], model.vit.norm):
        module.requires_grad_(False)
    return model


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD over the trainable parameters (``lr``, ``sgd_momentum``, ``weight_decay`` on every
    parameter, as the official script)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.sgd_momentum, weight_decay=config.weight_decay
    )


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """``StepLR(step_size, gamma)``, stepped once per epoch."""
    return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, gamma=config.gamma)
