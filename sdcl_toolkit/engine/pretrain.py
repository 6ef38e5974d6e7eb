"""Supervised pretraining on labelled identities: a stand-in for a pretrained checkpoint.

SDCL fine-tunes a backbone that already matches people across modalities somewhat better
than chance (the official run starts from TransReID-SSL's LUPerson checkpoint): its
cross-modality association (CRA, heterogeneous CNL) needs that signal to bootstrap, and a
randomly initialised network does not have it (measured on the generated data: CRA's
association accuracy stays at chance, and cross-modality retrieval does not improve).
Where no such checkpoint is available -- the CPU demo, tests -- this module trains the
backbone with identity labels on a *different* set of people (a generated tree with other
identities), after which SDCL learns on the target set without any label.

The objective is a softmax classifier over ``concat(deep, shallow)`` shared by both
modalities (the sum of the RGB and the IR cross-entropy, one forward per modality), on the
official augmentations, optimised with AdamW. The classifier is discarded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..data.loaders import make_train_loader
from ..data.records import IR, RGB, ImageRecord
from ..data.transforms import (
    ir_train_transform,
    rgb_train_transform,
    rgb_train_transform_second_view,
)
from ..recipe import OFFICIAL_SYSU
from .features import autocast_context

__all__ = ["pretrain_on_identities"]

# Standard deviation of the identity classifier's initial weights (bias starts at zero).
_CLASSIFIER_INIT_STD = 0.01
# The returned first_loss / last_loss are means over the first / last 1/N of the steps.
_LOSS_SUMMARY_PARTS = 10


def pretrain_on_identities(
    model: torch.nn.Module,
    records: dict[str, Sequence[ImageRecord]],
    *,
    steps: int,
    device: torch.device,
    lr: float = 1e-3,
    weight_decay: float = OFFICIAL_SYSU.weight_decay,
    batch_size: int = 32,
    num_instances: int,
    augmentation: Optional[dict[str, float]] = None,
    seed: int = 0,
    amp: bool = False,
    num_workers: Optional[int] = None,
    progress: Optional[Callable] = None,
) -> dict[str, float]:
    """Train ``model`` (a :class:`~sdcl_toolkit.ShallowDeepViT`) to classify identities.

    Parameters
    ----------
    records: ``{"rgb": [...], "ir": [...]}`` labelled records; ``pid`` is the class (the same
        person in both modalities is one class).
    steps: optimisation steps, each on ``batch_size`` RGB images (two views) and
        ``batch_size`` IR images, PK-sampled with ``num_instances`` per identity.
    augmentation: strengths passed to the official pipelines (``jitter``, ``hue``,
        ``padding``, ``erasing``).

    Returns the mean loss of the first and the last tenth of the steps.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    pids = sorted({r.pid for m in (RGB, IR) for r in records[m]})
    index = {p: i for i, p in enumerate(pids)}
    labels = {m: np.array([index[r.pid] for r in records[m]]) for m in (RGB, IR)}
    height, width = cast("tuple[int, int]", model.img_size)
    feature_dim = cast(int, model.feature_dim)
    strengths = augmentation or {}
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        num_iterations=steps,
        num_instances=num_instances,
        seed=seed,
        num_workers=num_workers,
    )
    loaders = {
        IR: make_train_loader(
            records[IR], ir_train_transform(height, width, **strengths), labels=labels[IR], **common
        ),
        RGB: make_train_loader(
            records[RGB],
            rgb_train_transform(height, width, **strengths),
            labels=labels[RGB],
            second_transform=rgb_train_transform_second_view(height, width, **strengths),
            **common,
        ),
    }
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(2 * feature_dim, len(pids)).to(device)
    with torch.no_grad():
        head.weight.copy_(
            torch.randn(head.weight.shape, generator=generator) * _CLASSIFIER_INIT_STD
        )
        head.bias.zero_()
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    batches = zip(loaders[IR], loaders[RGB])
    if progress is not None:
        batches = progress(batches)
    for batch_ir, batch_rgb in batches:
        images_ir, labels_ir = batch_ir[0].to(device), batch_ir[1].to(device)
        view1, view2, labels_rgb = (t.to(device) for t in batch_rgb[:3])
        loss = torch.zeros((), device=device)
        for images, targets, modality in (
            (torch.cat([view1, view2]), torch.cat([labels_rgb, labels_rgb]), RGB),
            (images_ir, labels_ir, IR),
        ):
            with autocast_context(device, amp):
                deep, shallow = model(images, modality)
            logits = head(torch.cat([deep, shallow], dim=1).float())
            loss = loss + F.cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    tenth = max(1, len(losses) // _LOSS_SUMMARY_PARTS)
    return {
        "first_loss": float(np.mean(losses[:tenth])),
        "last_loss": float(np.mean(losses[-tenth:])),
        "steps": len(losses),
        "classes": len(pids),
    }
