"""Nearest target centroid: each source sample takes the most similar target cluster.

The simplest cross-modality association, and the base of most unsupervised VI-ReID label
transfers (e.g. the cluster-memory look-ups of cluster-contrast / SpCL applied across
modalities). With L2-normalised features ``d_i, s_i`` and target cluster centroids
``mu^d_c, mu^s_c`` (normalised means of the raw target features of cluster ``c``)::

    y_i = argmax_c ( d_i . mu^d_c + s_i . mu^s_c )

Every source sample is assigned (no -1). Memory and time O(N_src C_tgt); ties (equal
similarities) go to the smallest cluster label.
"""

from __future__ import annotations

from typing import Optional

import torch

from .._timing import StageTimer
from ._centroids import branch_centroids, joint_similarity
from .protocol import Association, AssociationResult

__all__ = ["NearestCentroidAssociation"]


class NearestCentroidAssociation(Association):
    """Source sample -> the target cluster whose deep + shallow centroid is most similar.

    Example
    -------
    >>> labels = NearestCentroidAssociation()(deep_rgb, shallow_rgb, deep_ir, shallow_ir,
    ...                                       ir_labels)  # doctest: +SKIP

    ``associate`` returns an :class:`AssociationResult` whose ``scores`` are the winning
    similarities (in ``[-2, 2]``).
    """

    name = "centroid"
    needs_src_labels = False

    def __repr__(self) -> str:
        return "NearestCentroidAssociation()"

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
        timer = StageTimer(device=deep_src.device)
        normalize = torch.nn.functional.normalize
        with timer.stage("centroids"):
            target = branch_centroids(deep_tgt, shallow_tgt, tgt_labels)
        with timer.stage("assignment"):
            similarity = joint_similarity(
                normalize(deep_src.float(), dim=1), normalize(shallow_src.float(), dim=1), target
            )
            best = torch.argmax(similarity, dim=1)  # first maximum: smallest label
            scores = similarity.gather(1, best[:, None]).squeeze(1)
        return AssociationResult(target.labels[best], scores, dict(timer.seconds), {})
