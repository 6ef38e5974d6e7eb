"""Exact kNN sharded over the ranks of a ``torch.distributed`` process group.

Every rank holds the same ``[Q, D]`` queries and ``[N, D]`` keys. Rank ``r`` of ``W``
searches the contiguous query rows ``[r * s, min((r + 1) * s, Q))`` with
``s = ceil(Q / W)`` against all keys, and the ``[s, k]`` results of all ranks are
all-gathered (padded to ``s`` rows, so one ``all_gather`` of equal shapes serves gloo and
NCCL alike) and concatenated in rank order. The search of one query row does not depend
on the other rows in its chunk (see :mod:`sdcl_toolkit.knn_search`: the ranking is by
float64 scores, proven per row), so the result is identical to the single-process search,
on every rank. Wall time and peak score memory both divide by ``W``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.distributed as dist

__all__ = ["check_group", "resolve_group", "sharded_knn", "shard_bounds"]


def check_group(group: Any, name: str = "group") -> Any:
    """``group`` itself if it is ``None``, ``"world"`` or a ``torch.distributed`` process
    group; a ``TypeError`` naming ``name`` otherwise. Whether ``torch.distributed`` is
    initialised is checked when the group is used (:func:`resolve_group`), so a labeler can be
    built before ``init_process_group``."""
    if group is None or (isinstance(group, str) and group == "world"):
        return group
    if dist.is_available() and isinstance(group, dist.ProcessGroup):
        return group
    shown = (
        repr(group)
        if isinstance(group, str)
        else (f"{type(group).__module__}.{type(group).__qualname__}")
    )
    raise TypeError(
        f"{name} must be None, 'world' or a torch.distributed ProcessGroup, got {shown}"
    )


def resolve_group(group: Any) -> Optional[Any]:
    """The process group to shard over, or ``None`` to search in this process.

    ``group`` is ``"world"`` (the default group) or a ``torch.distributed`` process group.
    ``None`` is returned when the group has a single rank.

    Raises
    ------
    ValueError
        ``"world"``/a group without an initialised ``torch.distributed``.
    TypeError
        Anything else (e.g. an int or another string).
    """
    if isinstance(group, str):
        if group != "world":
            raise TypeError(f"group must be None, 'world' or a ProcessGroup, got {group!r}")
        resolved = None  # torch's default group
    elif isinstance(group, dist.ProcessGroup):
        resolved = group
    else:
        raise TypeError(
            "group must be None, 'world' or a torch.distributed ProcessGroup, got "
            f"{type(group).__module__}.{type(group).__qualname__}"
        )
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "group needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group); pass group=None to search locally"
        )
    if dist.get_world_size(resolved) == 1:
        return None
    return dist.group.WORLD if resolved is None else resolved


def shard_bounds(num_rows: int, world: int, rank: int) -> tuple[int, int, int]:
    """``(start, stop, share)``: rank ``rank``'s rows of ``num_rows`` split over ``world``."""
    share = math.ceil(num_rows / world)
    start = min(rank * share, num_rows)
    return start, min(start + share, num_rows), share


def sharded_knn(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    group: Any,
    *,
    backend: str,
    exclude_self: bool,
    chunk_size: Optional[int],
    candidates: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~sdcl_toolkit.knn_search.knn_tensors` with the queries split over ``group``.

    Options must already be validated (same on every rank). Returns the full ``[Q, k]``
    scores and indices on every rank.
    """
    from .knn_search import local_knn

    world, rank = dist.get_world_size(group), dist.get_rank(group)
    num_q = queries.shape[0]
    start, stop, share = shard_bounds(num_q, world, rank)
    values = torch.zeros(share, k, dtype=torch.float32, device=queries.device)
    indices = torch.zeros(share, k, dtype=torch.int64, device=queries.device)
    if stop > start:
        v, i = local_knn(
            queries[start:stop],
            keys,
            k,
            backend,
            exclude_self,
            chunk_size,
            candidates,
            self_offset=start,
        )
        values[: stop - start], indices[: stop - start] = v, i
    gathered_v = [torch.empty_like(values) for _ in range(world)]
    gathered_i = [torch.empty_like(indices) for _ in range(world)]
    dist.all_gather(gathered_v, values, group=group)
    dist.all_gather(gathered_i, indices, group=group)
    return torch.cat(gathered_v)[:num_q], torch.cat(gathered_i)[:num_q]
