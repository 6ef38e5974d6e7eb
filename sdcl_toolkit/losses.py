"""SDCL losses: shallow-deep contrast and collaborative neighbour learning (Yang et al.,
CVPR 2024; official ``clustercontrast/trainers.py``), plus the official loss weights and
heterogeneous schedule as data.

A training step of the official SYSU-MM01 recipe composes them like this::

    sdc = ShallowDeepContrast()
    cnl = CNL()
    weights = SDCLLossWeights.official(stage=1)          # stage=2 from the CRA epoch on

    contrast = [sdc(d_ir, s_ir, y_ir, mem_ir, mem_ir_s),
                sdc(d_rgb, s_rgb, y_rgb, mem_rgb, mem_rgb_s)]
    homogeneous = [cnl(d_ir, s_ir, idx_ir, bank_ir, bank_ir_s),
                   cnl(d_rgb, s_rgb, idx_rgb, bank_rgb, bank_rgb_s)]
    direction = heterogeneous_direction(epoch)            # None before epoch 10
    heterogeneous = None
    if direction is Direction.RGB_TO_IR:
        heterogeneous = cnl(d_rgb, s_rgb, idx_rgb, bank_rgb, bank_rgb_s,
                            target_deep=bank_ir, target_shallow=bank_ir_s)
    elif direction is Direction.IR_TO_RGB:
        heterogeneous = cnl(d_ir, s_ir, idx_ir, bank_ir, bank_ir_s,
                            target_deep=bank_rgb, target_shallow=bank_rgb_s)
    loss = weights.combine(contrast, homogeneous, heterogeneous, direction)
    loss.backward(); optimizer.step()
    # then update the instance memories (InstanceMemory.update_many per modality) and the
    # cluster memories (sdc.update per modality); see docs/losses.md for the order.

Memories must not be updated between a loss and its ``backward``: the loss saved the memory
tensors for the gradient, and autograd raises if they were modified in place.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, NamedTuple, Optional, Union, cast

import torch
import torch.nn.functional as F
from torch import nn

from ._arrays import ArrayLike, as_index
from ._normalize import l2_normalize_float32
from ._validation import check_int, check_real
from .memory import (
    ClusterMemory,
    InstanceMemory,
    check_class_labels,
    check_features,
    check_indices,
    check_temperature,
    float32_context,
    follow_device,
)
from .modality import Direction, parse_direction
from .recipe import OFFICIAL_SYSU, SDCLRecipe

__all__ = [
    "ShallowDeepContrast",
    "ShallowDeepContrastResult",
    "ShallowDeepLoss",
    "CollaborativeNeighborLearning",
    "CNL",
    "NeighborLossResult",
    "NeighborLoss",
    "Direction",
    "heterogeneous_direction",
    "SDCLLossWeights",
]


def _check_same_batch(deep: torch.Tensor, shallow: torch.Tensor) -> None:
    if deep.shape[0] != shallow.shape[0]:
        raise ValueError(
            f"deep_features has {deep.shape[0]} rows but shallow_features has "
            f"{shallow.shape[0]}; they must describe the same batch"
        )


# --------------------------------------------------------------------------------------
# shallow-deep contrast
# --------------------------------------------------------------------------------------


def _warn_deprecated(message: str) -> None:
    """``DeprecationWarning`` attributed to the first caller outside ``torch`` (the user
    code that called the module, not ``nn.Module.__call__``)."""
    frame: Optional[FrameType] = sys._getframe(2)  # the caller of the deprecated function
    level = 3
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("torch."):
        frame = frame.f_back
        level += 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


_POSITIONAL_TARGETS = (
    "passing target_deep/target_shallow to CNL positionally is deprecated and will be "
    "removed in the next version; use cnl(..., target_deep=..., target_shallow=...)"
)


def _positional_targets(
    method: str,
    fixed: int,
    args: tuple[Any, ...],
    target_deep: Optional[InstanceMemory],
    target_shallow: Optional[InstanceMemory],
) -> tuple[Optional[InstanceMemory], Optional[InstanceMemory], bool]:
    """The target memories of a CNL call whose ``fixed`` leading arguments are followed by
    ``args`` (the deprecated positional targets): ``(target_deep, target_shallow,
    given_positionally)``."""
    if not args:
        return target_deep, target_shallow, False
    if len(args) > 2:
        raise TypeError(
            f"CNL.{method}() takes at most {fixed + 2} positional arguments, got "
            f"{fixed + len(args)}"
        )
    if target_deep is not None or (len(args) == 2 and target_shallow is not None):
        raise TypeError(f"CNL.{method}() got multiple values for a target memory")
    return args[0], (args[1] if len(args) == 2 else target_shallow), True


class ShallowDeepContrastResult(NamedTuple):
    """Result of :class:`ShallowDeepContrast`: ``total = deep + lambda_shallow * shallow``."""

    total: torch.Tensor
    deep: torch.Tensor
    shallow: torch.Tensor


ShallowDeepLoss = ShallowDeepContrastResult
"""Deprecated alias of :class:`ShallowDeepContrastResult` (removed in the next version)."""


class ShallowDeepContrast(nn.Module):
    """Shallow-deep contrastive loss for one modality (Yang et al., CVPR 2024).

    ``L_sdc = CE_deep + lambda_shallow * CE_shallow`` where ``CE_deep`` is the
    :class:`ClusterMemory` loss of the deep features against the deep memory and
    ``CE_shallow`` that of the shallow features against the shallow memory. Sum the
    ``total`` of both modalities for the paper's sum over modalities. In stage 1 each
    modality has its own pair of memories; in stage 2 both modalities pass the same shared
    pair.

    Parameters
    ----------
    lambda_shallow:
        Weight of the shallow term (``lambda_sd = 1`` in the official code).
    """

    def __init__(self, lambda_shallow: float = OFFICIAL_SYSU.lambda_shallow) -> None:
        super().__init__()
        self.lambda_shallow = check_real(lambda_shallow, "lambda_shallow", minimum=0.0)

    def forward(
        self,
        deep_features: torch.Tensor,
        shallow_features: torch.Tensor,
        labels: ArrayLike,
        deep_memory: ClusterMemory,
        shallow_memory: ClusterMemory,
    ) -> ShallowDeepContrastResult:
        """Return ``ShallowDeepContrastResult(total, deep, shallow)`` (scalar float32 tensors).

        Parameters
        ----------
        deep_features, shallow_features:
            ``[B, D_deep]`` and ``[B, D_shallow]`` raw features of the same batch.
        labels:
            ``[B]`` pseudo-labels in ``[0, C)`` (outliers removed).
        deep_memory, shallow_memory:
            :class:`ClusterMemory` of each depth (same number of clusters).
        """
        _check_memory_pair(deep_memory, shallow_memory)
        check_features(deep_features, "deep_features", deep_memory.num_features)
        check_features(shallow_features, "shallow_features", shallow_memory.num_features)
        _check_same_batch(deep_features, shallow_features)
        targets = check_class_labels(
            labels,
            deep_memory.num_clusters,
            deep_features.shape[0],
            deep_features.device,
            rows_of="deep_features",
        )
        deep = deep_memory._loss(deep_features, targets)
        shallow = shallow_memory._loss(shallow_features, targets)
        return ShallowDeepContrastResult(deep + self.lambda_shallow * shallow, deep, shallow)

    @torch.no_grad()
    def update(
        self,
        deep_features: torch.Tensor,
        shallow_features: torch.Tensor,
        labels: ArrayLike,
        deep_memory: ClusterMemory,
        shallow_memory: ClusterMemory,
    ) -> None:
        """Momentum-update both memories with the batch (:meth:`ClusterMemory.update`).

        Call it after the losses of every modality have been computed (the official code
        updates inside backward, i.e. after all forward passes of the step).
        """
        _check_memory_pair(deep_memory, shallow_memory)
        if deep_memory is shallow_memory:
            deep_memory.update(deep_features, labels)
            shallow_memory.update(shallow_features, labels)
        else:  # one fused pass; same result as two update calls
            ClusterMemory.update_many(
                [deep_memory, shallow_memory], [deep_features, shallow_features], labels
            )

    def extra_repr(self) -> str:
        return f"lambda_shallow={self.lambda_shallow}"


def _check_memory_pair(deep_memory: ClusterMemory, shallow_memory: ClusterMemory) -> None:
    for name, memory in (("deep_memory", deep_memory), ("shallow_memory", shallow_memory)):
        if not isinstance(memory, ClusterMemory):
            raise TypeError(f"{name} must be a ClusterMemory, got {type(memory).__name__}")
    if deep_memory.num_clusters != shallow_memory.num_clusters:
        raise ValueError(
            f"deep_memory has {deep_memory.num_clusters} clusters but shallow_memory has "
            f"{shallow_memory.num_clusters}; both must be built from the same pseudo-labels"
        )


# --------------------------------------------------------------------------------------
# collaborative neighbour learning
# --------------------------------------------------------------------------------------


class NeighborLossResult(NamedTuple):
    """Result of :class:`CollaborativeNeighborLearning`.

    Attributes
    ----------
    deep, shallow:
        Unweighted scalar float32 losses ``L_d`` and ``L_s``.
    mask:
        ``[B, N_target]`` bool neighbour mask (deep AND shallow neighbourhoods), no gradient.
    num_neighbors:
        ``[B]`` int64 ``n = mask.sum(1) + 1``.
    """

    deep: torch.Tensor
    shallow: torch.Tensor
    mask: torch.Tensor
    num_neighbors: torch.Tensor

    def weighted(self, deep_weight: float, shallow_weight: float) -> torch.Tensor:
        """``deep_weight * deep + shallow_weight * shallow``."""
        return deep_weight * self.deep + shallow_weight * self.shallow


NeighborLoss = NeighborLossResult
"""Deprecated alias of :class:`NeighborLossResult` (removed in the next version)."""


class CollaborativeNeighborLearning(nn.Module):
    """Collaborative neighbour learning loss (Yang et al., CVPR 2024); alias :data:`CNL`.

    For a batch of the query modality ``q`` with sample indices ``idx`` and target
    instance memories ``Bd_t``, ``Bs_t`` (``t = q``: homogeneous, otherwise heterogeneous)::

        Sd = Bd_q[idx] @ Bd_t^T,   Ss = Bs_q[idx] @ Bs_t^T          (memory rows, no grad)
        M  = (Sd > threshold * max_row(Sd)) AND (Ss > threshold * max_row(Ss))
        n  = M.sum(1) + 1
        P_d = clamp_min(softmax(L2norm(f_deep) @ Bd_t^T / temp), 1e-8)
        L_d = mean_batch( -sum(M * log P_d, 1) / n )                  (same for shallow)

    The masks come from the memory rows of the batch *before* this step's instance-memory
    update, so compute the loss before :meth:`InstanceMemory.update`. Loss weights are not
    applied here: see :class:`SDCLLossWeights`.

    Parameters
    ----------
    threshold:
        Relative similarity threshold of a neighbour (0.9 in the official code).
    temp:
        Softmax temperature (0.05 in the official code).
    """

    def __init__(
        self, threshold: float = OFFICIAL_SYSU.cnl_threshold, temp: float = OFFICIAL_SYSU.cnl_temp
    ) -> None:
        super().__init__()
        self.threshold = check_real(threshold, "threshold")
        self.temp = check_temperature(temp, "temp")

    @torch.no_grad()
    def neighbor_mask(
        self,
        indices: ArrayLike,
        query_deep: InstanceMemory,
        query_shallow: InstanceMemory,
        *args: Any,
        target_deep: Optional[InstanceMemory] = None,
        target_shallow: Optional[InstanceMemory] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the ``[B, N_target]`` bool mask ``M`` and ``[B]`` int64 ``n = M.sum(1) + 1``.

        ``target_deep`` and ``target_shallow`` are keyword-only, as in :meth:`forward`;
        passing them positionally is deprecated (``DeprecationWarning``)."""
        target_deep, target_shallow, positional = _positional_targets(
            "neighbor_mask", 3, args, target_deep, target_shallow
        )
        if positional:
            _warn_deprecated(_POSITIONAL_TARGETS)
        target_deep, target_shallow = self._targets(
            query_deep, query_shallow, target_deep, target_shallow
        )
        device = query_deep.bank.device
        for memory in (query_shallow, target_deep, target_shallow):
            follow_device(memory, "bank", device)
        idx = as_index(indices, "indices", upper=query_deep.num_samples, device=device)
        return self._mask(idx, query_deep, query_shallow, target_deep, target_shallow)

    def forward(
        self,
        deep_features: torch.Tensor,
        shallow_features: torch.Tensor,
        indices: ArrayLike,
        query_deep: InstanceMemory,
        query_shallow: InstanceMemory,
        *args: Any,
        target_deep: Optional[InstanceMemory] = None,
        target_shallow: Optional[InstanceMemory] = None,
    ) -> NeighborLossResult:
        """Neighbour losses of a batch.

        ``target_deep`` and ``target_shallow`` are keyword-only; passing them positionally
        (after ``query_shallow``) is deprecated (``DeprecationWarning``) and will be removed
        in the next version.

        Parameters
        ----------
        deep_features, shallow_features:
            ``[B, D]`` raw online features of the query-modality batch (any float dtype;
            computed in float32).
        indices:
            ``[B]`` rows of the batch samples in the query memories.
        query_deep, query_shallow:
            Deep and shallow :class:`InstanceMemory` of the query modality.
        target_deep, target_shallow:
            Those of the target modality; omit both for the homogeneous loss.

        Returns
        -------
        NeighborLossResult
            ``(deep, shallow, mask, num_neighbors)``, unweighted.
        """
        target_deep, target_shallow, positional = _positional_targets(
            "forward", 5, args, target_deep, target_shallow
        )
        if positional:
            _warn_deprecated(_POSITIONAL_TARGETS)
        target_deep, target_shallow = self._targets(
            query_deep, query_shallow, target_deep, target_shallow
        )
        check_features(deep_features, "deep_features", target_deep.num_features)
        check_features(shallow_features, "shallow_features", target_shallow.num_features)
        _check_same_batch(deep_features, shallow_features)
        device = deep_features.device
        for memory in (query_deep, query_shallow, target_deep, target_shallow):
            follow_device(memory, "bank", device)
        idx = check_indices(
            indices, query_deep.num_samples, deep_features.shape[0], device, "deep_features"
        )
        mask, count = self._mask(idx, query_deep, query_shallow, target_deep, target_shallow)
        deep = self._masked_nll(deep_features, target_deep.bank, mask, count)
        shallow = self._masked_nll(shallow_features, target_shallow.bank, mask, count)
        return NeighborLossResult(deep, shallow, mask, count)

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _targets(
        query_deep: InstanceMemory,
        query_shallow: InstanceMemory,
        target_deep: Optional[InstanceMemory],
        target_shallow: Optional[InstanceMemory],
    ) -> tuple[InstanceMemory, InstanceMemory]:
        if (target_deep is None) != (target_shallow is None):
            raise ValueError(
                "give both target_deep and target_shallow (heterogeneous) or neither (homogeneous)"
            )
        if target_deep is None or target_shallow is None:  # both None (checked above)
            target_deep, target_shallow = query_deep, query_shallow
        named = {
            "query_deep": query_deep,
            "query_shallow": query_shallow,
            "target_deep": target_deep,
            "target_shallow": target_shallow,
        }
        for name, memory in named.items():
            if not isinstance(memory, InstanceMemory):
                raise TypeError(f"{name} must be an InstanceMemory, got {type(memory).__name__}")
        for side, deep, shallow in (
            ("query", query_deep, query_shallow),
            ("target", target_deep, target_shallow),
        ):
            if deep.num_samples != shallow.num_samples:
                raise ValueError(
                    f"{side}_deep has {deep.num_samples} rows but {side}_shallow has "
                    f"{shallow.num_samples}; both must index the same samples"
                )
        for depth, query, target in (
            ("deep", query_deep, target_deep),
            ("shallow", query_shallow, target_shallow),
        ):
            if query.num_features != target.num_features:
                raise ValueError(
                    f"query_{depth} has width {query.num_features} but target_{depth} has "
                    f"width {target.num_features}"
                )
        return target_deep, target_shallow

    def _mask(
        self,
        idx: torch.Tensor,
        query_deep: InstanceMemory,
        query_shallow: InstanceMemory,
        target_deep: InstanceMemory,
        target_shallow: InstanceMemory,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad(), float32_context(idx.device):
            mask = self._relative_neighbors(query_deep.bank[idx], target_deep.bank)
            mask &= self._relative_neighbors(query_shallow.bank[idx], target_shallow.bank)
        return mask, mask.sum(dim=1) + 1

    def _relative_neighbors(self, rows: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        similarity = rows.float().mm(bank.float().t())
        nearest = similarity.max(dim=1, keepdim=True).values
        return similarity > nearest * self.threshold

    def _masked_nll(
        self,
        features: torch.Tensor,
        bank: torch.Tensor,
        mask: torch.Tensor,
        count: torch.Tensor,
    ) -> torch.Tensor:
        with float32_context(features.device):
            logits = l2_normalize_float32(features, dim=1).mm(bank.float().t()).div_(self.temp)
            log_prob = F.log_softmax(logits, dim=1).clamp_min(_LOG_PROB_FLOOR)
            per_sample = -torch.where(mask, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
            return (per_sample / count.to(per_sample.dtype)).mean()

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, temp={self.temp}"


_LOG_PROB_FLOOR = math.log(1e-8)  # official: softmax(...).clamp_min(1e-8).log()

#: Short alias used in the paper.
CNL = CollaborativeNeighborLearning


# --------------------------------------------------------------------------------------
# official weights and schedule
# --------------------------------------------------------------------------------------


def heterogeneous_direction(
    epoch: int, start_epoch: int = OFFICIAL_SYSU.heterogeneous_start
) -> Optional[Direction]:
    """Which heterogeneous CNL runs in ``epoch`` (0-based), following the official schedule.

    ``None`` before ``start_epoch`` (10 in the official SYSU-MM01 and RegDB scripts), then
    :attr:`Direction.RGB_TO_IR` on even epochs and :attr:`Direction.IR_TO_RGB` on odd ones.
    (The homogeneous CNL runs from epoch 0 on SYSU-MM01 and from epoch 1 on RegDB.)
    """
    epoch = check_int(epoch, "epoch", minimum=0)
    start_epoch = check_int(start_epoch, "start_epoch", minimum=0)
    if epoch < start_epoch:
        return None
    return Direction.RGB_TO_IR if epoch % 2 == 0 else Direction.IR_TO_RGB


@dataclass(frozen=True)
class SDCLLossWeights:
    """Weights of the SDCL training objective (official ``trainers.py``).

    ``total = contrast * sum(L_sdc)
    + homogeneous * sum_modality(homogeneous_deep * L_d + homogeneous_shallow * L_s)
    + heterogeneous * (w_deep(direction) * L_d + w_shallow(direction) * L_s)``

    The defaults are the official stage-1 values; :meth:`official` gives stage 1 or 2.

    Attributes
    ----------
    contrast:
        Weight of the shallow-deep contrast terms (1).
    homogeneous, heterogeneous:
        Stage-level scales: 1.0 and 0.5 in stage 1, 0.1 and 0.1 in stage 2.
    homogeneous_deep, homogeneous_shallow:
        Per-depth weights of the homogeneous loss (1 and 0.5).
    rgb_to_ir_deep, rgb_to_ir_shallow:
        Per-depth weights of the RGB -> IR loss (0.1 and 0.05).
    ir_to_rgb_deep, ir_to_rgb_shallow:
        Per-depth weights of the IR -> RGB loss (1 and 0.5).
    """

    contrast: float = 1.0
    homogeneous: float = OFFICIAL_SYSU.stage1_homogeneous
    heterogeneous: float = OFFICIAL_SYSU.stage1_heterogeneous
    homogeneous_deep: float = OFFICIAL_SYSU.homogeneous_deep
    homogeneous_shallow: float = OFFICIAL_SYSU.homogeneous_shallow
    rgb_to_ir_deep: float = OFFICIAL_SYSU.rgb_to_ir_deep
    rgb_to_ir_shallow: float = OFFICIAL_SYSU.rgb_to_ir_shallow
    ir_to_rgb_deep: float = OFFICIAL_SYSU.ir_to_rgb_deep
    ir_to_rgb_shallow: float = OFFICIAL_SYSU.ir_to_rgb_shallow

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = check_real(getattr(self, field.name), field.name, minimum=0.0)
            object.__setattr__(self, field.name, value)

    @classmethod
    def official(cls, stage: int = 1, recipe: Optional[SDCLRecipe] = None) -> SDCLLossWeights:
        """Official weights of ``recipe`` (default: SYSU-MM01; RegDB has the same):
        ``stage=1`` before the CRA epoch, ``stage=2`` from it on."""
        stage = check_int(stage, "stage", minimum=1, maximum=2)
        recipe = OFFICIAL_SYSU if recipe is None else recipe
        homogeneous, heterogeneous = recipe.group_weights(stage)
        return cls(
            homogeneous=homogeneous,
            heterogeneous=heterogeneous,
            homogeneous_deep=recipe.homogeneous_deep,
            homogeneous_shallow=recipe.homogeneous_shallow,
            rgb_to_ir_deep=recipe.rgb_to_ir_deep,
            rgb_to_ir_shallow=recipe.rgb_to_ir_shallow,
            ir_to_rgb_deep=recipe.ir_to_rgb_deep,
            ir_to_rgb_shallow=recipe.ir_to_rgb_shallow,
        )

    def heterogeneous_weights(self, direction: Union[Direction, str]) -> tuple[float, float]:
        """``(deep, shallow)`` weights of the heterogeneous loss in ``direction``."""
        direction = parse_direction(direction)
        if direction is Direction.RGB_TO_IR:
            return self.rgb_to_ir_deep, self.rgb_to_ir_shallow
        return self.ir_to_rgb_deep, self.ir_to_rgb_shallow

    def combine(
        self,
        contrast: Sequence[ShallowDeepContrastResult],
        homogeneous: Sequence[NeighborLossResult] = (),
        heterogeneous: Optional[NeighborLossResult] = None,
        direction: Optional[Union[Direction, str]] = None,
    ) -> torch.Tensor:
        """Total training loss of one step.

        Parameters
        ----------
        contrast:
            One :class:`ShallowDeepContrastResult` per modality.
        homogeneous:
            One homogeneous :class:`NeighborLossResult` per modality (empty before it starts).
        heterogeneous:
            The heterogeneous :class:`NeighborLossResult` of this epoch, or ``None``.
        direction:
            Its :class:`Direction` (required when ``heterogeneous`` is given).
        """
        if len(contrast) == 0:
            raise ValueError("combine needs at least one ShallowDeepContrastResult in contrast")
        total = self.contrast * cast(torch.Tensor, sum(part.total for part in contrast))
        for loss in homogeneous:
            total = total + self.homogeneous * loss.weighted(
                self.homogeneous_deep, self.homogeneous_shallow
            )
        if heterogeneous is not None:
            if direction is None:
                raise ValueError("direction is required with a heterogeneous loss")
            total = total + self.heterogeneous * heterogeneous.weighted(
                *self.heterogeneous_weights(direction)
            )
        return total
