"""Bidirectional consistency: keep an association only if the reverse direction agrees.

A wrapper around any association ``A`` (cycle consistency, as in the bidirectional
cross-modality label checks of recent unsupervised VI-ReID work, e.g. the cross-modality
cluster agreement of PGM, CVPR 2023, and MMM, ECCV 2024). With source clusters ``y^s``
and target clusters ``y^t``:

1. forward: ``u_i = A(src -> tgt)_i``, a target cluster for each source sample;
2. reverse: ``v_j = A(tgt -> src)_j``, a source cluster for each target sample;
3. ``back(c)`` = the most frequent ``v_j`` over the target samples of cluster ``c`` with
   ``v_j != -1`` (ties: the smallest source label; -1 if none);
4. keep ``y_i = u_i`` if ``back(u_i) == y^s_i``, else ``y_i = -1``.

So the result is a subset of the forward association (every label equals the forward one
or is -1), and source samples without a cluster get -1. Needs ``src_labels``. Memory: the
wrapped method's twice, plus O(C_src C_tgt) for the vote counts.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .._timing import StageTimer
from .protocol import Association, AssociationResult

__all__ = ["BidirectionalAssociation", "majority_source_cluster"]


def majority_source_cluster(
    tgt_labels: torch.Tensor, reverse: torch.Tensor, num_tgt: int, num_src: int
) -> torch.Tensor:
    """``[num_tgt]`` most frequent ``reverse`` label (in ``[0, num_src)``) per target cluster.

    ``tgt_labels`` and ``reverse`` are ``[N_tgt]`` int64 in ``[-1, num_tgt)`` and
    ``[-1, num_src)``; pairs with a -1 are skipped; a cluster without a vote gets -1; ties go
    to the smallest label. Memory O(num_tgt num_src).
    """
    valid = (tgt_labels >= 0) & (reverse >= 0)
    codes = tgt_labels[valid] * num_src + reverse[valid]
    counts = torch.bincount(codes, minlength=num_tgt * num_src).reshape(num_tgt, num_src)
    best = torch.argmax(counts, dim=1)  # first maximum: smallest source label
    has_vote = counts.sum(dim=1) > 0
    return torch.where(has_vote, best, torch.full_like(best, -1))


class BidirectionalAssociation(Association):
    """Keep a source -> target association only where the reverse association agrees.

    Parameters
    ----------
    base:
        Any association (:class:`~sdcl_toolkit.CRA`, nearest centroid, Hungarian, OT); it
        is run in both directions.

    ``associate`` returns an :class:`AssociationResult` whose ``details`` hold the forward
    and reverse results (``"forward"``, ``"reverse"``, tensors of the caller's type) and
    ``kept_fraction`` (kept / forward-assigned).
    """

    needs_src_labels = True

    def __init__(self, base: Any) -> None:
        if not callable(getattr(base, "associate_tensors", None)):
            raise TypeError(
                "base must be an association with an associate_tensors method (e.g. "
                f"sdcl_toolkit.CRA()), got {type(base).__name__}"
            )
        if isinstance(base, BidirectionalAssociation):
            raise TypeError("base is already bidirectional")
        self.base = base

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{getattr(self.base, 'name', type(self.base).__name__)}+bidirectional"

    def __repr__(self) -> str:
        return f"BidirectionalAssociation({self.base!r})"

    def associate_tensors(
        self,
        deep_src: torch.Tensor,
        shallow_src: torch.Tensor,
        deep_tgt: torch.Tensor,
        shallow_tgt: torch.Tensor,
        tgt_labels: torch.Tensor,
        src_labels: Optional[torch.Tensor] = None,
    ) -> AssociationResult:
        """Tensor-level association (see :meth:`Association.associate` for the arguments)."""
        self.check_tensor_inputs(
            deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels
        )
        assert src_labels is not None  # needs_src_labels: the reverse direction's targets
        timer = StageTimer(device=deep_src.device)
        with timer.stage("forward"):
            forward = self.base.associate_tensors(
                deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels
            )
        with timer.stage("reverse"):
            reverse = self.base.associate_tensors(
                deep_tgt, shallow_tgt, deep_src, shallow_src, src_labels, tgt_labels
            )
        with timer.stage("consistency"):
            u = forward.labels
            num_tgt = int(tgt_labels.max()) + 1
            num_src = int(src_labels.max()) + 1
            back = majority_source_cluster(tgt_labels, reverse.labels, num_tgt, num_src)
            back_of_u = torch.where(u >= 0, back[u.clamp(min=0)], torch.full_like(u, -1))
            keep = (u >= 0) & (src_labels >= 0) & (back_of_u == src_labels)
            labels = torch.where(keep, u, torch.full_like(u, -1))
            base_scores = getattr(forward, "scores", None)  # CRA: int64 votes
            scores = None
            if base_scores is not None:
                as_float = base_scores.float()
                scores = torch.where(keep, as_float, torch.full_like(as_float, float("nan")))
        assigned = int((u >= 0).sum())
        details = {
            "forward": forward.labels,
            "reverse": reverse.labels,
            "kept_fraction": float(keep.sum()) / assigned if assigned else float("nan"),
        }
        seconds = dict(timer.seconds)
        return AssociationResult(labels, scores, seconds, details)
