"""Cluster and instance memories of SDCL (official ``clustercontrast/models/cm.py``).

:class:`ClusterMemory` holds one L2-normalised centroid per pseudo-identity and gives the
cluster-contrastive loss ``CE(L2norm(f) @ M^T / temp, y)``; :class:`InstanceMemory` holds one
L2-normalised row per training sample (the banks used by collaborative neighbour learning).

Unlike the official code, which moves its memories inside autograd's backward pass, the
loss here has no side effects and the momentum update is an explicit ``@torch.no_grad()``
``update`` call. Its result equals the official sequential per-sample update in batch order
(renormalising after every step), but it loops over the *occurrence rank* of a row in the
batch (at most the number of instances per identity), never over samples; ``update_many``
advances several memories that share a batch's labels or indices (deep and shallow) in one
pass. Under ``torch.distributed`` ``update`` first gathers the batch from every rank in rank
order, so all ranks keep identical memories.

Memories are stored in float32 buffers (``state_dict`` round-trips) and move to the device of
the features they are given. Similarities are computed in float32 even under bf16/fp16
autocast.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._arrays import ArrayLike, array_kind, as_features, as_index, as_labels
from ._normalize import l2_normalize, l2_normalize_float32, row_divisor
from ._validation import check_choice, check_int, check_real
from .clustering import cluster_centroids
from .distributed import all_gather_cat
from .recipe import OFFICIAL_SYSU

logger = logging.getLogger(__name__)

__all__ = ["ClusterMemory", "InstanceMemory"]

_MODES = ("mean", "hard")
_NORM_EPS = 1e-12


# --------------------------------------------------------------------------------------
# validation shared with sdcl_toolkit.losses
# --------------------------------------------------------------------------------------


def float32_context(device: torch.device) -> contextlib.AbstractContextManager:
    """Context that disables autocast on ``device`` so matmuls run in the tensors' dtype."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # device type without autocast support
        return contextlib.nullcontext()


def check_features(features: torch.Tensor, name: str, width: int, finite: bool = True) -> None:
    """Validate a ``[B, width]`` floating batch without copying it (autograd is kept).

    Raises ``TypeError`` for non-tensors / non-floating dtypes and ``ValueError`` for a wrong
    rank, an empty batch, a width other than ``width`` (both widths are named) or, when
    ``finite``, NaN/inf entries.
    """
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(features).__name__}")
    if not features.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {features.dtype}")
    if features.dim() != 2:
        raise ValueError(f"{name} must be 2-D [batch, features], got shape {tuple(features.shape)}")
    if features.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (0 rows); expected at least one sample")
    if features.shape[1] != width:
        raise ValueError(
            f"{name} has feature width {features.shape[1]} but the memory holds {width}-d features"
        )
    if not finite:
        return
    detached = features.detach()
    # fast path (one reduction): a finite sum implies finite entries; a sum that overflows
    # falls through to the exact check
    accumulate = torch.float64 if detached.dtype == torch.float64 else torch.float32
    if not bool(torch.isfinite(detached.sum(dtype=accumulate))):
        _raise_if_nonfinite(detached, name)


def check_class_labels(
    labels: ArrayLike,
    num_classes: int,
    batch: int,
    device: torch.device,
    rows_of: str = "features",
) -> torch.Tensor:
    """Return ``labels`` as an int64 tensor on ``device`` after checking ``0 <= y < num_classes``
    and one label per sample (:func:`sdcl_toolkit._arrays.as_index`, the toolkit's one rule).

    Raises ``TypeError`` for a non-integer dtype and ``ValueError`` naming the offending labels
    (``-1`` outliers included, with a hint) or a length other than ``batch``.
    """
    return as_index(
        labels,
        "labels",
        upper=num_classes,
        length=batch,
        device=device,
        outlier_hint=True,
        rows_of=rows_of,
    )


def check_indices(
    indices: ArrayLike,
    num_samples: int,
    batch: int,
    device: torch.device,
    rows_of: str = "features",
) -> torch.Tensor:
    """Return sample ``indices`` as int64 on ``device`` after checking ``0 <= i < num_samples``
    and one index per sample (same rule and errors as :func:`check_class_labels`)."""
    return as_index(
        indices, "indices", upper=num_samples, length=batch, device=device, rows_of=rows_of
    )


def _check_momentum(momentum: Any) -> float:
    return check_real(momentum, "momentum", minimum=0.0, maximum=1.0)


MIN_TEMPERATURE = 1e-30
"""Smallest softmax temperature accepted: cosine logits lie in [-1, 1], so ``1 / temp`` must
stay far from the float32 limit (3.4e38) for the logits and their gradients to be finite."""


def check_temperature(value: Any, name: str = "temp") -> float:
    """``value`` as a float ``>= MIN_TEMPERATURE`` (TypeError / ValueError naming ``name``)."""
    return check_real(value, name, minimum=MIN_TEMPERATURE)


def _legacy_positional(
    cls_name: str,
    args: tuple[Any, ...],
    order: Sequence[str],
    given: dict[str, Any],
    defaults: dict[str, Any],
) -> dict[str, Any]:
    """Resolve the deprecated positional constructor form of a memory.

    ``args`` are the positional arguments in the old ``order``; ``given`` the keyword
    values (``None`` = not given for the sizes, the default otherwise). Returns ``given``
    with the positional values filled in, after a ``DeprecationWarning`` naming the
    keywords to use. Raises ``TypeError`` for too many or doubly given arguments, or a
    missing size.
    """
    if len(args) > len(order):
        raise TypeError(
            f"{cls_name}() takes at most {len(order)} positional arguments (deprecated), "
            f"got {len(args)}"
        )
    resolved = dict(given)
    if args:
        for name, value in zip(order, args):
            if given[name] is not None and given[name] != defaults.get(name):
                raise TypeError(f"{cls_name}() got multiple values for argument {name!r}")
            resolved[name] = value
        sizes = [name for name in order if name.startswith("num_")]
        keywords = ", ".join(f"{name}=..." for name in sorted(sizes, key=_rows_first))
        warnings.warn(
            f"positional arguments to {cls_name}({', '.join(order[: len(args)])}) are "
            f"deprecated and will be removed in the next version; use "
            f"{cls_name}({keywords}) with keyword arguments",
            DeprecationWarning,
            stacklevel=3,
        )
    missing = [name for name in order if name.startswith("num_") and resolved[name] is None]
    if missing:
        raise TypeError(
            f"{cls_name}() missing required keyword argument(s): "
            + ", ".join(repr(name) for name in missing)
        )
    return resolved


def _rows_first(name: str) -> int:
    """Sort key putting the row count (``num_clusters``/``num_samples``) before the width."""
    return 1 if name == "num_features" else 0


def _check_count(value: Any, name: str) -> int:
    return check_int(value, name, minimum=1, maximum=_MAX_ROWS)


_MAX_ROWS = 2**40  # a size beyond this cannot be a memory (4 TiB per float32 column)


def _zeros_bank(rows: int, cols: int, rows_name: str) -> torch.Tensor:
    """``[rows, cols]`` float32 zeros; ``MemoryError`` naming the sizes when they do not fit."""
    try:
        return torch.zeros(rows, cols)
    except RuntimeError as error:  # the allocator's "can't allocate memory" / size overflow
        raise MemoryError(
            f"cannot allocate a [{rows_name}={rows}, num_features={cols}] float32 memory "
            f"({rows * cols * 4} bytes): {error}"
        ) from error


# --------------------------------------------------------------------------------------
# sequential momentum update, vectorised by occurrence rank
# --------------------------------------------------------------------------------------


def _normalize_rows_(rows: torch.Tensor) -> torch.Tensor:
    """Divide each row (last dim) by its L2 norm in place, exact for any finite scale.

    Rows whose largest absolute entry lies outside ``[1e-15, 1e15]`` are first divided by it
    (so the squares neither overflow above ~1e19 nor underflow below ~1e-19 in float32); all
    rows are then divided by their norm (clamped at 1e-12: all-zero rows stay zero). For
    ordinary features this is exactly the official ``x /= x.norm()``, bit for bit. Same rule
    as :func:`sdcl_toolkit._normalize.l2_normalize`.
    """
    if rows.numel():
        rows.div_(row_divisor(rows.abs().amax(dim=-1, keepdim=True)))  # 1 for ordinary rows
    return rows.div_(torch.linalg.vector_norm(rows, dim=-1, keepdim=True).clamp_min_(_NORM_EPS))


def _occurrence_layout(
    rows: torch.Tensor,
) -> tuple[torch.Tensor, Optional[torch.Tensor], list[int]]:
    """Arrange a batch by occurrence rank so sequential per-row updates can be vectorised.

    Parameters
    ----------
    rows:
        ``[B]`` int64 row indices (cluster labels or sample indices), repeats allowed.

    Returns
    -------
    targets:
        ``[U]`` distinct rows, ordered by how often they occur (most frequent first).
    slots:
        ``[U, K]`` batch positions: ``slots[u, r]`` is the position of the ``r``-th
        occurrence (0-based, batch order) of ``targets[u]``; ``K`` is the largest repeat
        count. Entries with ``r >= count(targets[u])`` are padding (the last occurrence).
        ``None`` when every row occurs once: then ``targets`` is ``rows`` itself (batch
        order) and no rearrangement is needed.
    active:
        ``K`` host integers: at rank ``r`` exactly the first ``active[r]`` targets occur.
    """
    sorted_rows, order = torch.sort(rows, stable=True)
    unique, counts = torch.unique_consecutive(sorted_rows, return_counts=True)
    counts_host = counts.tolist()  # the one host synchronisation
    largest, smallest = max(counts_host), min(counts_host)
    if largest == 1:  # distinct rows (e.g. an IR batch of an instance memory)
        return rows, None, [len(counts_host)]
    if largest == smallest:  # every row occurs equally often (PK batches, distinct indices)
        return unique, order.view(len(counts_host), largest), [len(counts_host)] * largest
    by_count = torch.argsort(counts, descending=True, stable=True)
    counts_desc = counts[by_count]
    first = (torch.cumsum(counts, 0) - counts)[by_count]
    ranks = torch.arange(largest, device=rows.device).unsqueeze(0)
    slots = order[first.unsqueeze(1) + torch.minimum(ranks, counts_desc.unsqueeze(1) - 1)]
    ascending = sorted(counts_host)
    active = [len(ascending) - bisect.bisect_right(ascending, r) for r in range(largest)]
    return unique[by_count], slots, active


def _sequential_momentum_update_(
    banks: Sequence[torch.Tensor],
    rows: torch.Tensor,
    values: Sequence[torch.Tensor],
    momentum: float,
    normalize_values: bool,
    names: Sequence[str],
) -> None:
    """``bank[r] <- L2norm(momentum * bank[r] + (1 - momentum) * v)`` for each (r, v) in order.

    Applied to every ``banks[m]`` with its own ``values[m]`` (``[B, D]`` float32, one ``D``)
    and the shared ``rows`` (``[B]``). ``v`` is the L2-normalised value when
    ``normalize_values`` (cluster memories) and the raw value otherwise (instance memories).

    Exact sequential semantics for repeated rows: the Python loop runs over the occurrence
    rank (at most the largest repeat count), each iteration updating every row of every bank
    at once. Between steps a row carries ``w = u / (1 - momentum)``, ``u`` its un-normalised
    value, so one step is ``w <- v + momentum / (1 - momentum) * w / ||w||`` (two kernels)
    and rows are normalised once at the end: the sequential rule with the scale and the
    division moved, not an approximation.

    Values are not checked for NaN/inf beforehand: a non-finite value makes the result
    non-finite, which is detected on the final norms; nothing is written back then and a
    ``ValueError`` names the bad rows (``names[m]`` is the argument name of ``values[m]``).
    """
    targets, slots, active = _occurrence_layout(rows)
    copies, everyone, width = len(banks), targets.shape[0], values[0].shape[1]
    current = torch.empty((copies, everyone, width), device=rows.device)
    for m, bank in enumerate(banks):
        torch.index_select(bank, 0, targets, out=current[m])
    if momentum == 1.0:  # rows are only renormalised; still refuse non-finite values
        for value, name in zip(values, names):
            _raise_if_nonfinite(value, name)
    else:
        ratio = momentum / (1.0 - momentum)
        ranks = 1 if slots is None else slots.shape[1]
        if slots is None and not normalize_values:  # one raw value per row, batch order
            steps: Sequence[torch.Tensor] = []
            for m, value in enumerate(values):
                torch.add(value, current[m], alpha=ratio, out=current[m])
        else:
            # rank-major per memory, [M, K, U, D], so that each step's rows are contiguous
            gathered = torch.empty((copies, ranks * everyone, width), device=rows.device)
            rank_major = None if slots is None else slots.t().flatten()
            for m, value in enumerate(values):
                if rank_major is None:
                    gathered[m].copy_(value)
                else:
                    torch.index_select(value, 0, rank_major, out=gathered[m])
            if normalize_values:
                _normalize_rows_(gathered)
            steps = gathered.view(copies, ranks, everyone, width).unbind(1)  # K x [M, U, D]
            # first occurrence: the stored row is mixed in as it is (not renormalised first)
            torch.add(steps[0], current, alpha=ratio, out=current)
        for step, count in zip(steps[1:], active[1:]):
            if count == everyone:
                rows_now, step_now = current, step
            else:
                rows_now, step_now = current[:, :count], step[:, :count]
            norm = torch.linalg.vector_norm(rows_now, dim=-1, keepdim=True)
            torch.addcdiv(step_now, rows_now, norm, value=ratio, out=rows_now)
    norms = torch.linalg.vector_norm(current, dim=-1, keepdim=True)
    if not bool(torch.isfinite(norms.sum())):
        for value, name in zip(values, names):
            _raise_if_nonfinite(value, name)
        # finite values: an intermediate row was exactly zero (e.g. a zero feature mixed
        # into a zero row); redo step by step with every norm clamped, as F.normalize does
        current = _guarded_steps(banks, targets, values, slots, active, momentum, normalize_values)
        norms = torch.linalg.vector_norm(current, dim=-1, keepdim=True)
        if not bool(torch.isfinite(norms.sum())):
            raise ValueError("the memory holds NaN or inf in the rows this batch updates")
    _normalize_rows_(current)
    for bank, rows_m in zip(banks, current):
        bank.index_copy_(0, targets, rows_m)


def _raise_if_nonfinite(value: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming the rows of ``value`` that hold NaN or inf, if any."""
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad_rows = (~finite).reshape(finite.shape[0], -1).any(dim=1).nonzero().flatten()
        shown = ", ".join(str(int(i)) for i in bad_rows[:5])
        more = ", ..." if bad_rows.numel() > 5 else ""
        raise ValueError(
            f"{name} contains NaN or inf in {bad_rows.numel()} of {value.shape[0]} rows "
            f"(rows {shown}{more})"
        )


def _guarded_steps(
    banks: Sequence[torch.Tensor],
    targets: torch.Tensor,
    values: Sequence[torch.Tensor],
    slots: Optional[torch.Tensor],
    active: list[int],
    momentum: float,
    normalize_values: bool,
) -> torch.Tensor:
    """Slow path of :func:`_sequential_momentum_update_`: the literal rule per rank with every
    norm clamped at 1e-12. Returns the ``[M, U, D]`` rows (normalised)."""
    if slots is None:
        slots = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1)
    current = torch.stack([bank.index_select(0, targets) for bank in banks])
    for m, value in enumerate(values):
        rows_m = current[m]
        if normalize_values:
            value = l2_normalize(value, dim=1)
        for rank, count in enumerate(active):
            mixed = rows_m[:count]
            step = value.index_select(0, slots[:count, rank])
            mixed.mul_(momentum).add_(step, alpha=1.0 - momentum)
            _normalize_rows_(mixed)
    return current


def _check_many(memories, features, kind, size_attribute):
    """Validate the ``update_many`` arguments; returns them as lists."""
    memories, features = list(memories), list(features)
    if not memories:
        raise ValueError("update_many needs at least one memory")
    if len(features) != len(memories):
        raise ValueError(
            f"got {len(memories)} memories but {len(features)} feature batches; give one each"
        )
    for memory in memories:
        if not isinstance(memory, kind):
            raise TypeError(
                f"memories must be {kind.__name__} objects, got {type(memory).__name__}"
            )
    if len({id(memory) for memory in memories}) != len(memories):
        raise ValueError("a memory appears twice in update_many; update it in separate calls")
    sizes = {getattr(memory, size_attribute) for memory in memories}
    if len(sizes) > 1:
        raise ValueError(
            f"memories must share {size_attribute} to share labels, got {sorted(sizes)}"
        )
    for m, batch in enumerate(features):
        first = features[0]
        if m and all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in (batch, first)):
            if batch.shape[0] != features[0].shape[0] or batch.device != features[0].device:
                raise ValueError(
                    f"features[{m}] has {batch.shape[0]} rows on {batch.device} but features[0] "
                    f"has {features[0].shape[0]} on {features[0].device}; batches must match"
                )
    return memories, features


def _float32_rows(batch: torch.Tensor, name: str, direction_only: bool) -> torch.Tensor:
    """The detached batch in float32. float64 rows beyond the float32 range (|x| > 3.4e38)
    are L2-normalised first when only their direction counts (cluster memories), else a
    ``ValueError`` names ``name`` (instance memories mix the raw values)."""
    rows = batch.detach()
    if rows.dtype == torch.float64 and rows.numel():
        largest = float(rows.abs().max())
        if math.isfinite(largest) and largest > torch.finfo(torch.float32).max:
            if not direction_only:
                raise ValueError(
                    f"{name} holds values beyond the float32 range (largest |x| = "
                    f"{largest:.3g}); the memories compute in float32, rescale them first"
                )
            rows = l2_normalize(rows, dim=1)
    return rows.float()


def _feature_names(count: int) -> list[str]:
    return ["features"] if count == 1 else [f"features[{m}]" for m in range(count)]


def _fusable_groups(memories, values, momentum, fusable):
    """Split memory positions into groups updated together: same width and momentum, and
    ``fusable(memory)``; others form groups of one. Yields ``(positions, momentum)``."""
    groups: dict[tuple[Any, Any], tuple[list[int], Any]] = {}
    for m, memory in enumerate(memories):
        mu = memory.momentum if momentum is None else _check_momentum(momentum)
        key = (values[m].shape[1], mu) if fusable(memory) else ("alone", m)
        groups.setdefault(key, ([], mu))[0].append(m)
    return list(groups.values())


def follow_device(module: nn.Module, name: str, device: torch.device) -> torch.Tensor:
    """Move buffer ``name`` of ``module`` to ``device`` (kept float32) and return it."""
    buffer = getattr(module, name)
    if buffer.device != device:
        logger.debug("moving %s.%s to %s", type(module).__name__, name, device)
        buffer = buffer.to(device)
        setattr(module, name, buffer)
    return buffer


# --------------------------------------------------------------------------------------
# ClusterMemory
# --------------------------------------------------------------------------------------


class ClusterMemory(nn.Module):
    """Cluster-centroid memory and its contrastive loss (official ``CM``).

    Loss for a batch of features ``f`` ``[B, D]`` with labels ``y`` in ``[0, C)``::

        L = CE(L2norm(f) @ M^T / temp, y)

    Update after the optimiser step (``update``), with ``x = L2norm(f)``:

    * ``mode="mean"``: for every sample in batch order ``M[y] <- mu M[y] + (1 - mu) x``,
      then ``M[y] <- M[y] / ||M[y]||`` (official ``CM``).
    * ``mode="hard"``: every class present moves once, toward its least similar batch
      member ``argmin_i x_i . M[y]`` (first in batch order on ties; official ``CM_Hard``).

    All arguments are keyword-only: ``ClusterMemory(num_clusters=C, num_features=D)``
    (rows first, like :class:`InstanceMemory`). The old positional form
    ``ClusterMemory(num_features, num_clusters, temp, momentum, mode)`` still works but is
    deprecated (``DeprecationWarning``) and will be removed in the next version.

    Parameters
    ----------
    num_clusters:
        Number of centroids ``C``.
    num_features:
        Feature width ``D``.
    temp:
        Softmax temperature (0.05 in the official runs).
    momentum:
        ``mu``, the weight kept by the old centroid (0.1 on SYSU-MM01; the official script
        default is 0.2 and the authors suggest 0.9-0.99 in the first epoch if it collapses).
    mode:
        ``"mean"`` (official default) or ``"hard"``.

    Attributes
    ----------
    centroids:
        ``[C, D]`` float32 buffer (zeros until filled by :meth:`from_features`,
        :meth:`from_centroids` or ``load_state_dict``).
    """

    centroids: torch.Tensor

    def __init__(
        self,
        *args: Any,
        num_clusters: Optional[int] = None,
        num_features: Optional[int] = None,
        temp: float = OFFICIAL_SYSU.temp,
        momentum: float = OFFICIAL_SYSU.memory_momentum,
        mode: str = OFFICIAL_SYSU.memory_mode,
    ) -> None:
        super().__init__()
        values = _legacy_positional(
            "ClusterMemory",
            args,
            ("num_features", "num_clusters", "temp", "momentum", "mode"),
            {
                "num_features": num_features,
                "num_clusters": num_clusters,
                "temp": temp,
                "momentum": momentum,
                "mode": mode,
            },
            {
                "temp": OFFICIAL_SYSU.temp,
                "momentum": OFFICIAL_SYSU.memory_momentum,
                "mode": OFFICIAL_SYSU.memory_mode,
            },
        )
        mode = values["mode"]
        self.num_clusters = _check_count(values["num_clusters"], "num_clusters")
        self.num_features = _check_count(values["num_features"], "num_features")
        self.temp = check_temperature(values["temp"], "temp")
        self.momentum = _check_momentum(values["momentum"])
        self.mode = check_choice(mode, "mode", _MODES)
        self.register_buffer(
            "centroids", _zeros_bank(self.num_clusters, self.num_features, "num_clusters")
        )

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_features(
        cls,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        num_clusters: Optional[int] = None,
        temp: float = OFFICIAL_SYSU.temp,
        momentum: float = OFFICIAL_SYSU.memory_momentum,
        mode: str = OFFICIAL_SYSU.memory_mode,
    ) -> ClusterMemory:
        """Build a memory whose centroids are the L2-normalised means of the raw features.

        Parameters
        ----------
        features:
            ``[N, D]`` raw (un-normalised) features, numpy or torch, any float dtype.
        labels:
            ``[N]`` integer pseudo-labels; ``-1`` (outliers) is skipped.
        num_clusters:
            ``C``; defaults to ``max(labels) + 1``. Every label in ``[0, C)`` must occur.

        Returns
        -------
        ClusterMemory
            On the features' device (CPU for numpy).
        """
        kind = array_kind(features=features, labels=labels)
        if num_clusters is not None:
            num_clusters = check_int(num_clusters, "num_clusters", minimum=1)
        x = as_features(features, "features").to(kind.device)
        means = cluster_centroids(
            x, as_labels(labels, "labels", device=x.device), num_clusters, normalize=False
        )
        return cls.from_centroids(means, temp=temp, momentum=momentum, mode=mode)

    @classmethod
    def from_centroids(
        cls,
        centroids: ArrayLike,
        *,
        temp: float = OFFICIAL_SYSU.temp,
        momentum: float = OFFICIAL_SYSU.memory_momentum,
        mode: str = OFFICIAL_SYSU.memory_mode,
    ) -> ClusterMemory:
        """Build a memory from ``[C, D]`` centroids, which are L2-normalised row-wise."""
        c = as_features(centroids, "centroids")
        memory = cls(
            num_clusters=c.shape[0],
            num_features=c.shape[1],
            temp=temp,
            momentum=momentum,
            mode=mode,
        )
        memory.centroids = l2_normalize(c, dim=1).to(c.device)
        return memory

    # ---------------------------------------------------------------- loss
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` float32 ``L2norm(features) @ centroids^T / temp`` (differentiable)."""
        check_features(features, "features", self.num_features)
        return self._logits(features)

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        centroids = follow_device(self, "centroids", features.device)
        with float32_context(features.device):
            x = l2_normalize_float32(features, dim=1)
            return x.mm(centroids.float().t()).div_(self.temp)

    def forward(self, features: torch.Tensor, labels: ArrayLike) -> torch.Tensor:
        """Cluster-contrastive loss (scalar float32 tensor); no side effects.

        Parameters
        ----------
        features:
            ``[B, D]`` raw features (any float dtype; autocast is overridden to float32).
        labels:
            ``[B]`` integer labels in ``[0, C)``; outliers (``-1``) must be removed first.
        """
        check_features(features, "features", self.num_features)
        targets = check_class_labels(labels, self.num_clusters, features.shape[0], features.device)
        return self._loss(features, targets)

    def _loss(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on already checked features and int64 targets."""
        return F.cross_entropy(self._logits(features), targets)

    # ---------------------------------------------------------------- update
    @torch.no_grad()
    def update(
        self, features: torch.Tensor, labels: ArrayLike, momentum: Optional[float] = None
    ) -> None:
        """Momentum update of the centroids with a batch (see the class docstring).

        Parameters
        ----------
        features:
            ``[B, D]`` raw features of the batch (L2-normalised here, as in the loss).
        labels:
            ``[B]`` labels in ``[0, C)``.
        momentum:
            Overrides ``self.momentum`` for this call (e.g. a larger value in epoch 0).

        Under ``torch.distributed`` the batch of every rank is gathered (rank order) first.
        """
        ClusterMemory.update_many([self], [features], labels, momentum=momentum)

    @staticmethod
    @torch.no_grad()
    def update_many(
        memories: Sequence[ClusterMemory],
        features: Sequence[torch.Tensor],
        labels: ArrayLike,
        momentum: Optional[float] = None,
    ) -> None:
        """Update several memories whose batches share ``labels`` (e.g. deep and shallow).

        The result is that of ``memories[m].update(features[m], labels)`` for every ``m``;
        mean-mode memories of one width and momentum are advanced together, which saves
        most of the per-call overhead.

        Parameters
        ----------
        memories:
            Distinct :class:`ClusterMemory` objects with the same number of clusters.
        features:
            One ``[B, D_m]`` raw feature batch per memory (same ``B``).
        labels:
            ``[B]`` labels in ``[0, C)``, shared by all batches.
        momentum:
            Overrides every memory's ``momentum`` for this call.
        """
        memories, features = _check_many(memories, features, ClusterMemory, "num_clusters")
        names = _feature_names(len(memories))
        for memory, batch, name in zip(memories, features, names):
            # NaN/inf: checked here for "hard" memories, on the result for "mean" ones
            check_features(batch, name, memory.num_features, finite=memory.mode == "hard")
        device = features[0].device
        for memory in memories:
            follow_device(memory, "centroids", device)
        targets = check_class_labels(labels, memories[0].num_clusters, features[0].shape[0], device)
        targets = all_gather_cat(targets)
        gathered = [all_gather_cat(_float32_rows(b, n, True)) for b, n in zip(features, names)]
        # (no autocast-affected op below: index_select, add, addcdiv, norms, divisions)
        groups = _fusable_groups(memories, gathered, momentum, lambda m: m.mode == "mean")
        for members, mu in groups:
            banks = [memories[m].centroids for m in members]
            if memories[members[0]].mode == "mean":
                _sequential_momentum_update_(
                    banks,
                    targets,
                    [gathered[m] for m in members],
                    mu,
                    normalize_values=True,
                    names=[names[m] for m in members],
                )
            else:
                ClusterMemory._hard_update_(
                    banks[0], targets, l2_normalize(gathered[members[0]], dim=1), mu
                )

    @staticmethod
    def _hard_update_(
        centroids: torch.Tensor, targets: torch.Tensor, x: torch.Tensor, mu: float
    ) -> None:
        n = x.shape[0]
        similarity = (x * centroids.index_select(0, targets)).sum(dim=1)
        lowest = torch.full(
            (centroids.shape[0],), float("inf"), device=x.device, dtype=similarity.dtype
        ).scatter_reduce_(0, targets, similarity, reduce="amin")
        positions = torch.arange(n, device=x.device)
        beyond = torch.full_like(positions, n)
        candidate = torch.where(similarity == lowest[targets], positions, beyond)
        chosen = torch.full((centroids.shape[0],), n, device=x.device, dtype=positions.dtype)
        chosen.scatter_reduce_(0, targets, candidate, reduce="amin")
        classes = torch.unique(targets)
        picked = chosen[classes]
        mixed = centroids.index_select(0, classes).mul_(mu)
        mixed.add_(x.index_select(0, picked), alpha=1.0 - mu)
        centroids.index_copy_(0, classes, _normalize_rows_(mixed))

    def extra_repr(self) -> str:
        return (
            f"num_clusters={self.num_clusters}, num_features={self.num_features}, "
            f"temp={self.temp}, momentum={self.momentum}, mode={self.mode!r}"
        )


# --------------------------------------------------------------------------------------
# InstanceMemory
# --------------------------------------------------------------------------------------


class InstanceMemory(nn.Module):
    """One L2-normalised feature per training sample (official ``Memory_wise_v3``).

    Update for every ``(i, f)`` of a batch in batch order (official ``Memory_wise_v3``)::

        B[i] <- momentum * B[i] + (1 - momentum) * f      # f raw, not normalised
        B[i] <- B[i] / ||B[i]||

    A batch may hold the same index several times (each RGB image appears twice per SDCL
    batch); the result equals the sequential loop.

    All arguments are keyword-only: ``InstanceMemory(num_samples=N, num_features=D)``. The
    old positional form ``InstanceMemory(num_samples, num_features, momentum)`` still works
    but is deprecated (``DeprecationWarning``) and will be removed in the next version.

    Parameters
    ----------
    num_samples:
        ``N``, number of training samples of the modality.
    num_features:
        Feature width ``D``.
    momentum:
        Weight kept by the old row (0.9 in the official code).

    Attributes
    ----------
    bank:
        ``[N, D]`` float32 buffer (zeros until filled by :meth:`from_features` or
        ``load_state_dict``).
    """

    bank: torch.Tensor

    def __init__(
        self,
        *args: Any,
        num_samples: Optional[int] = None,
        num_features: Optional[int] = None,
        momentum: float = OFFICIAL_SYSU.instance_momentum,
    ) -> None:
        super().__init__()
        values = _legacy_positional(
            "InstanceMemory",
            args,
            ("num_samples", "num_features", "momentum"),
            {"num_samples": num_samples, "num_features": num_features, "momentum": momentum},
            {"momentum": OFFICIAL_SYSU.instance_momentum},
        )
        self.num_samples = _check_count(values["num_samples"], "num_samples")
        self.num_features = _check_count(values["num_features"], "num_features")
        self.momentum = _check_momentum(values["momentum"])
        self.register_buffer(
            "bank", _zeros_bank(self.num_samples, self.num_features, "num_samples")
        )

    @classmethod
    def from_features(
        cls, features: ArrayLike, *, momentum: float = OFFICIAL_SYSU.instance_momentum
    ) -> InstanceMemory:
        """Build a memory from ``[N, D]`` features (numpy or torch), L2-normalised row-wise."""
        x = as_features(features, "features")
        memory = cls(num_samples=x.shape[0], num_features=x.shape[1], momentum=momentum)
        memory.bank = l2_normalize(x, dim=1)
        return memory

    def rows(self, indices: ArrayLike) -> torch.Tensor:
        """``[B, D]`` copy of the memory rows of ``indices`` (no gradient)."""
        idx = as_index(indices, "indices", upper=self.num_samples, device=self.bank.device)
        return self.bank.index_select(0, idx)

    @torch.no_grad()
    def update(
        self, features: torch.Tensor, indices: ArrayLike, momentum: Optional[float] = None
    ) -> None:
        """Sequential momentum update with a batch of raw features.

        Parameters
        ----------
        features:
            ``[B, D]`` raw (un-normalised) features.
        indices:
            ``[B]`` sample indices in ``[0, N)``, repeats allowed.
        momentum:
            Overrides ``self.momentum`` for this call.

        Under ``torch.distributed`` the batch of every rank is gathered (rank order) first.
        """
        InstanceMemory.update_many([self], [features], indices, momentum=momentum)

    @staticmethod
    @torch.no_grad()
    def update_many(
        memories: Sequence[InstanceMemory],
        features: Sequence[torch.Tensor],
        indices: ArrayLike,
        momentum: Optional[float] = None,
    ) -> None:
        """Update several memories whose batches share ``indices`` (e.g. deep and shallow).

        The result is that of ``memories[m].update(features[m], indices)`` for every ``m``;
        memories of one width and momentum are advanced together.

        Parameters
        ----------
        memories:
            Distinct :class:`InstanceMemory` objects with the same number of samples.
        features:
            One ``[B, D_m]`` raw feature batch per memory (same ``B``).
        indices:
            ``[B]`` sample indices in ``[0, N)``, shared by all batches; repeats allowed.
        momentum:
            Overrides every memory's ``momentum`` for this call.
        """
        memories, features = _check_many(memories, features, InstanceMemory, "num_samples")
        names = _feature_names(len(memories))
        for memory, batch, name in zip(memories, features, names):
            # NaN/inf are detected on the result (one pass fewer), before anything is written
            check_features(batch, name, memory.num_features, finite=False)
        device = features[0].device
        for memory in memories:
            follow_device(memory, "bank", device)
        idx = check_indices(indices, memories[0].num_samples, features[0].shape[0], device)
        idx = all_gather_cat(idx)
        gathered = [all_gather_cat(_float32_rows(b, n, False)) for b, n in zip(features, names)]
        for members, mu in _fusable_groups(memories, gathered, momentum, lambda m: True):
            _sequential_momentum_update_(
                [memories[m].bank for m in members],
                idx,
                [gathered[m] for m in members],
                mu,
                normalize_values=False,
                names=[names[m] for m in members],
            )

    def extra_repr(self) -> str:
        return (
            f"num_samples={self.num_samples}, num_features={self.num_features}, "
            f"momentum={self.momentum}"
        )
