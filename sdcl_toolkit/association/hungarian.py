"""One-to-one matching of source and target clusters (Hungarian algorithm), PGM-style.

Progressive Graph Matching (Wu & Ye, "Unsupervised Visible-Infrared Person
Re-Identification via Progressive Graph Matching and Alternate Learning", CVPR 2023)
associates the two modalities' clusters by a bipartite matching of their centroids. Here,
with L2-normalised centroids ``mu^d, mu^s`` (mean of the raw features of each cluster,
normalised) of source cluster ``a`` and target cluster ``b``::

    S[a, b] = mu^d_a . mu^d_b + mu^s_a . mu^s_b
    M = argmax_{one-to-one M} sum_{(a, b) in M} S[a, b]      (scipy linear_sum_assignment)
    y_i = M(src_label_i)   (-1 if sample i is unclustered or its cluster is unmatched)

Unequal cluster counts are not an error: with ``C_src > C_tgt`` the ``C_src - C_tgt`` least
compatible source clusters stay unmatched (their samples get -1), and with ``C_src < C_tgt``
some target clusters receive no source sample. Memory O(C_src C_tgt); the assignment runs on
the CPU (scipy), the rest on the inputs' device.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .._timing import StageTimer
from ._centroids import branch_centroids
from .protocol import Association, AssociationResult

__all__ = ["HungarianAssociation", "match_clusters"]


def match_clusters(similarity: torch.Tensor) -> torch.Tensor:
    """``[C_src]`` int64: the target column matched to each row of ``similarity``
    ``[C_src, C_tgt]`` by a maximum-weight one-to-one assignment, -1 for unmatched rows."""
    rows, cols = linear_sum_assignment(similarity.detach().cpu().double().numpy(), maximize=True)
    match = np.full(similarity.shape[0], -1, dtype=np.int64)
    match[rows] = cols
    return torch.from_numpy(match).to(similarity.device)


class HungarianAssociation(Association):
    """Source clusters matched one-to-one to target clusters; samples inherit the match.

    Needs ``src_labels`` (the source modality's own clusters).

    Example
    -------
    >>> labels = HungarianAssociation()(deep_rgb, shallow_rgb, deep_ir, shallow_ir,
    ...                                 ir_labels, rgb_labels)  # doctest: +SKIP

    ``scores`` of the :class:`AssociationResult` are the matched pair's similarity
    ``S[a, b]`` (NaN where unassigned).
    """

    name = "hungarian"
    needs_src_labels = True

    def __repr__(self) -> str:
        return "HungarianAssociation()"

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
        assert src_labels is not None  # needs_src_labels
        timer = StageTimer(device=deep_src.device)
        with timer.stage("centroids"):
            source = branch_centroids(deep_src, shallow_src, src_labels)
            target = branch_centroids(deep_tgt, shallow_tgt, tgt_labels)
            similarity = source.deep @ target.deep.T + source.shallow @ target.shallow.T
        with timer.stage("matching"):
            match = match_clusters(similarity)  # [C_src] column or -1
        with timer.stage("labels"):
            clustered = source.rows >= 0
            column = torch.full_like(source.rows, -1)
            column[clustered] = match[source.rows[clustered]]
            assigned = column >= 0
            labels = torch.full_like(column, -1)
            labels[assigned] = target.labels[column[assigned]]
            scores = torch.full(labels.shape, float("nan"), device=labels.device)
            scores[assigned] = similarity[source.rows[assigned], column[assigned]]
        details = {
            "source_clusters": int(source.labels.numel()),
            "target_clusters": int(target.labels.numel()),
            "matched_clusters": int((match >= 0).sum()),
        }
        return AssociationResult(labels, scores, dict(timer.seconds), details)
