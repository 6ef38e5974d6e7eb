"""Small ``torch.distributed`` helpers shared by the toolkit.

Every helper is a no-op (returns its input, rank 0, world size 1) when ``torch.distributed``
is unavailable or no process group has been initialised, so library code can call them
unconditionally. They work with the ``gloo`` backend on CPU tensors and the ``nccl``
backend on CUDA tensors: temporary tensors are created on the input tensor's device.

None of these functions propagates gradients: they are meant for bookkeeping such as the
memory updates of :mod:`sdcl_toolkit.memory` (see ``docs/memory.md``), which run under
``torch.no_grad()``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "is_distributed",
    "get_rank",
    "get_world_size",
    "all_gather_cat",
    "broadcast_tensor",
    "broadcast_object",
]


def is_distributed() -> bool:
    """``True`` when ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process in the default group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, in rank order.

    Parameters
    ----------
    tensor:
        ``[n_r, *rest]`` tensor on this rank. ``n_r`` may differ between ranks; ``rest``
        and the dtype must be the same on every rank. A 0-d tensor is treated as ``[1]``.

    Returns
    -------
    torch.Tensor
        ``[sum_r n_r, *rest]`` on the input's device, rank 0's rows first. Without a
        process group (or with one process) the input itself is returned. The result is
        detached (no autograd through the gather).

    Raises
    ------
    ValueError
        If the trailing shapes or the number of dimensions differ between ranks (raised on
        every rank, so no rank is left waiting).
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"all_gather_cat expects a torch.Tensor, got {type(tensor).__name__}")
    if get_world_size() == 1:
        return tensor
    local = tensor.detach()
    if local.dim() == 0:
        local = local.reshape(1)
    original_dtype = local.dtype
    if original_dtype == torch.bool:  # not every backend reduces/gathers bool
        local = local.to(torch.uint8)
    local = local.contiguous()
    world = get_world_size()

    # 1) exchange shapes (padded to a fixed length so ranks with different ndim still meet)
    max_dims = 8
    if local.dim() > max_dims:
        raise ValueError(
            f"all_gather_cat supports at most {max_dims} dimensions, got {local.dim()}"
        )
    shape = torch.full((max_dims + 1,), -1, dtype=torch.int64, device=local.device)
    shape[0] = local.dim()
    shape[1 : local.dim() + 1] = torch.tensor(local.shape, dtype=torch.int64)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    shape_lists = [s.tolist() for s in shapes]
    dims = [int(s[0]) for s in shape_lists]
    per_rank = [tuple(int(v) for v in s[1 : d + 1]) for s, d in zip(shape_lists, dims)]
    trailing = {p[1:] for p in per_rank}
    if len(set(dims)) > 1 or len(trailing) > 1:
        listing = ", ".join(f"rank {r}: {p}" for r, p in enumerate(per_rank))
        raise ValueError(
            "all_gather_cat needs the same trailing shape on every rank, got " + listing
        )

    # 2) pad every rank's block to the largest first dimension, gather, trim
    counts = [p[0] for p in per_rank]
    largest = max(counts)
    if local.shape[0] < largest:
        padding = local.new_zeros((largest - local.shape[0], *local.shape[1:]))
        local = torch.cat([local, padding], dim=0)
    blocks: list[torch.Tensor] = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(blocks, local)
    gathered = torch.cat([block[:count] for block, count in zip(blocks, counts)], dim=0)
    return gathered.to(original_dtype)


def broadcast_tensor(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s values and return it.

    The tensor must have the same shape and dtype on every rank. No-op when not distributed.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"broadcast_tensor expects a torch.Tensor, got {type(tensor).__name__}")
    if get_world_size() == 1:
        return tensor
    if tensor.dtype == torch.bool:
        carrier = tensor.to(torch.uint8)
        dist.broadcast(carrier, src=src)
        tensor.copy_(carrier.to(torch.bool))
        return tensor
    if tensor.is_contiguous():
        dist.broadcast(tensor, src=src)
        return tensor
    carrier = tensor.contiguous()
    dist.broadcast(carrier, src=src)
    tensor.copy_(carrier)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Return rank ``src``'s picklable ``obj`` on every rank (``obj`` itself when not distributed).

    With the ``nccl`` backend the current CUDA device (``torch.cuda.set_device``) carries
    the pickled bytes.
    """
    if get_world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
