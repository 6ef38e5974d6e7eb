"""Feature extraction over image records, sharded across ranks and gathered in order."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Optional, cast

import torch
import torch.nn.functional as F

from ..data.loaders import make_test_loader
from ..data.records import ImageRecord
from ..distributed import all_gather_cat, get_rank, get_world_size

if TYPE_CHECKING:
    from ..models.shallow_deep import ShallowDeepViT

__all__ = [
    "extract_features",
    "extract_test_features",
    "shard_bounds",
    "autocast_context",
    "BranchForward",
]


def shard_bounds(total: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous, balanced ``[start, stop)`` of ``total`` items for ``rank`` of ``world``."""
    base, extra = divmod(total, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def autocast_context(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


BranchForward = Callable[[torch.Tensor, str], tuple[torch.Tensor, torch.Tensor]]
"""``forward(images [B, 3, H, W], modality) -> (deep [B, D], shallow [B, D])``."""


def extract_features(
    model: torch.nn.Module,
    records: Sequence[ImageRecord],
    modality: str,
    transform: Callable,
    *,
    device: torch.device,
    batch_size: int = 128,
    flip: bool = True,
    normalized: bool = False,
    amp: bool = False,
    num_workers: Optional[int] = None,
    progress: Optional[Callable] = None,
    forward: Optional[BranchForward] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deep and shallow features of every record, in record order, on every rank.

    Each rank extracts a contiguous shard of ``records``; the shards are gathered in rank
    order (:func:`sdcl_toolkit.distributed.all_gather_cat`), so all ranks end with the same
    ``[N, D]`` float32 CPU tensors.

    Parameters
    ----------
    model: a :class:`~sdcl_toolkit.ShallowDeepViT` (unwrapped from DDP), or any module when
        ``forward`` is given; it is put in eval mode for the extraction.
    records, modality: the images and their modality (``"rgb"``/``"ir"``).
    transform: the test transform (resize + normalise).
    flip: average with the horizontally flipped image (``(f(x) + f(flip(x))) / 2``).
    normalized: deprecated (removed in the next version), use
        :func:`extract_test_features`. ``True`` still returns the L2-normalised test feature
        ``L2norm([deep; shallow])`` in the ``deep`` slot (and an empty ``shallow``), with a
        ``DeprecationWarning``.
    amp: bfloat16 autocast.
    progress: optional ``tqdm``-like wrapper for the batch iterator.
    forward: ``forward(images, modality) -> (deep, shallow)`` for a backbone of your own
        (default: ``model.extract_branches``).
    """
    if normalized:
        warnings.warn(
            "extract_features(normalized=True) is deprecated and will be removed in the next "
            "version; use extract_test_features(...), which returns the [N, 2D] test feature",
            DeprecationWarning,
            stacklevel=2,
        )
    return _extract(
        model,
        records,
        modality,
        transform,
        device=device,
        batch_size=batch_size,
        flip=flip,
        normalized=normalized,
        amp=amp,
        num_workers=num_workers,
        progress=progress,
        forward=forward,
    )


def extract_test_features(
    model: torch.nn.Module,
    records: Sequence[ImageRecord],
    modality: str,
    transform: Callable,
    *,
    device: torch.device,
    batch_size: int = 128,
    flip: bool = True,
    amp: bool = False,
    num_workers: Optional[int] = None,
    progress: Optional[Callable] = None,
    forward: Optional[BranchForward] = None,
) -> torch.Tensor:
    """Test features ``L2norm([deep; shallow])`` of every record, in record order.

    The retrieval feature of SDCL: the deep and shallow branch features (flip-averaged when
    ``flip``) concatenated and L2-normalised, as a ``[N, 2D]`` float32 CPU tensor, identical
    on every rank. The arguments are those of :func:`extract_features`.
    """
    deep, _ = _extract(
        model,
        records,
        modality,
        transform,
        device=device,
        batch_size=batch_size,
        flip=flip,
        normalized=True,
        amp=amp,
        num_workers=num_workers,
        progress=progress,
        forward=forward,
    )
    return deep


@torch.no_grad()
def _extract(
    model: torch.nn.Module,
    records: Sequence[ImageRecord],
    modality: str,
    transform: Callable,
    *,
    device: torch.device,
    batch_size: int,
    flip: bool,
    normalized: bool,
    amp: bool,
    num_workers: Optional[int],
    progress: Optional[Callable],
    forward: Optional[BranchForward],
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_features`; with ``normalized`` the test feature is in the first slot."""
    world, rank = get_world_size(), get_rank()
    start, stop = shard_bounds(len(records), rank, world)
    loader = make_test_loader(
        list(records[start:stop]), transform, batch_size=batch_size, num_workers=num_workers
    )
    deep_parts, shallow_parts = [], []
    batches = progress(loader) if progress is not None else loader
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            images = batch[0].to(device, non_blocking=True)
            with autocast_context(device, amp):
                if forward is None:
                    sdvit = cast("ShallowDeepViT", model)
                    deep, shallow = sdvit.extract_branches(images, modality, flip=flip)
                else:
                    deep, shallow = (f.float() for f in forward(images, modality))
                    if flip:
                        deep_f, shallow_f = (f.float() for f in forward(images.flip(-1), modality))
                        deep, shallow = (deep + deep_f) / 2, (shallow + shallow_f) / 2
            deep, shallow = deep.float(), shallow.float()
            if normalized:
                deep_parts.append(F.normalize(torch.cat([deep, shallow], dim=1), dim=1).cpu())
            else:
                deep_parts.append(deep.cpu())
                shallow_parts.append(shallow.cpu())
    finally:
        model.train(was_training)
    if not deep_parts and forward is not None and world == 1:
        raise ValueError(f"no {modality} records to extract features from")
    width = getattr(model, "feature_dim", 0)
    deep = (
        torch.cat(deep_parts) if deep_parts else torch.zeros(0, 2 * width if normalized else width)
    )
    shallow = torch.cat(shallow_parts) if shallow_parts else torch.zeros(0, width)
    if world > 1:
        gather_device = device if device.type == "cuda" else torch.device("cpu")
        deep = all_gather_cat(deep.to(gather_device)).cpu()
        if not normalized:
            shallow = all_gather_cat(shallow.to(gather_device)).cpu()
    return deep, shallow
