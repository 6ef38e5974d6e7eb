"""Collaborative Ranking Association (CRA; Yang et al., CVPR 2024).

CRA gives every source-modality sample (RGB in the paper) a cluster label of the target
modality (IR), using the agreement of the deep and the shallow feature rankings (the CRA
block of the official ``cluster_contrast_vit_sysu.py``, yangbincv/SDCL):

1. ``A`` = target labels of the ``topk`` nearest target samples by deep similarity (in rank
   order); ``S`` = the same by shallow similarity.
2. ``count[l] = #{m : S[m] == A[l]}``; the ranking label is ``A[l*]`` for the position with
   the largest count (ties: the earliest position, i.e. the nearest deep neighbour).
   Labels of unclustered target samples (-1) take part like any label, as in the official
   code, so a ranking label may be -1.
3. Smoothing: each source sample takes the most frequent ranking label among its
   ``smooth_k`` most similar source samples (itself included) by ``d.d' + s.s'``; ties go
   to the smallest label (-1 first), like ``argmax`` over one-hot sums in the official code.

All searches are exact top-k searches (:func:`sdcl_toolkit.knn`), and the counts of steps
2 and 3 are taken by sorting each row and binary search (``searchsorted``): memory is
O(N K), never a dense cross-modality or self-similarity matrix nor an ``[N, K, K]``
comparison.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from .._arrays import ArrayLike
from .._timing import StageTimer
from .._validation import check_int
from ..knn_search import Backend, Candidates, knn_tensors
from ..knn_sharded import check_group
from ..recipe import OFFICIAL_SYSU
from .protocol import Association, check_feature_shapes, prepare_inputs

__all__ = ["CollaborativeRankingAssociation", "CRA", "CRAResult"]


@dataclass
class CRAResult:
    """Everything CRA computed for the source samples (arrays of the caller's type/device).

    Attributes
    ----------
    labels: ``[N_src]`` int64 target-cluster label after smoothing (-1 = unassigned).
    ranking_labels: ``[N_src]`` int64 label before smoothing (step 2).
    votes: ``[N_src]`` int64 winning count of step 2: how many of the ``topk`` shallow
        neighbours carry the ranking label (0..topk).
    seconds: time per step (``"search"``, ``"ranking"``, ``"smoothing"``).
    """

    labels: ArrayLike
    ranking_labels: ArrayLike
    votes: ArrayLike
    seconds: dict[str, float]

    @property
    def scores(self) -> ArrayLike:
        """The winning counts (``votes``), CRA's confidence (the protocol's ``scores``)."""
        return self.votes


def _occurrences(values: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """``[N, K]`` int64: how often ``values[n, l]`` occurs in row ``pool[n]`` (``[N, M]``).

    Sort each row of ``pool`` and binary-search both ends: O(N (K + M) log M) time and
    O(N (K + M)) memory, instead of an ``[N, K, M]`` comparison.
    """
    ordered = torch.sort(pool, dim=1).values.contiguous()
    values = values.contiguous()
    upper = torch.searchsorted(ordered, values, right=True)
    lower = torch.searchsorted(ordered, values, right=False)
    return upper - lower


def _ranking_labels(deep_labels: torch.Tensor, shallow_labels: torch.Tensor):
    """Step 2 for ``[N, K]`` label lists: (ranking label, winning count)."""
    counts = _occurrences(deep_labels, shallow_labels)  # [N, K]
    best = torch.argmax(counts, dim=1)  # first maximum = earliest deep position
    rows = torch.arange(deep_labels.shape[0], device=deep_labels.device)
    return deep_labels[rows, best], counts[rows, best]


def _smoothed_labels(ranking: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """Step 3: most frequent label among ``ranking[neighbours[i]]``, ties -> smallest label."""
    votes = ranking[neighbours]  # [N, k]
    counts = _occurrences(votes, votes)  # [N, k]
    # prefer the largest count, then the smallest label; labels >= -1, so shift by 1
    span = int(votes.max()) + 2
    score = counts * span - (votes + 1)
    best = torch.argmax(score, dim=1)
    return votes[torch.arange(votes.shape[0], device=votes.device), best]


class CollaborativeRankingAssociation(Association):
    """Map source-modality samples to target-modality clusters (CRA).

    Parameters
    ----------
    topk:
        Ranking depth ``K`` of the deep and shallow cross-modality searches (official: 20
        on SYSU-MM01, 10 on RegDB; :class:`~sdcl_toolkit.SDCLRecipe`).
    smooth_k:
        Source neighbours (self included) voting in the smoothing step (official: 5).
    backend, candidates:
        kNN backend and candidate precision, see :func:`sdcl_toolkit.knn`.
    group:
        ``None`` (search in this process), ``"world"`` or a ``torch.distributed`` process
        group: shard the three kNN searches (deep and shallow cross-modality, joint
        smoothing) over its ranks (:mod:`sdcl_toolkit.knn_sharded`; every rank passes the same
        features and gets the same labels, identical to one process).

    Example
    -------
    >>> cra = CRA(topk=20, smooth_k=5)
    >>> rgb_in_ir = cra(deep_rgb, shallow_rgb, deep_ir, shallow_ir, ir_labels)  # doctest: +SKIP
    >>> result = cra.associate(deep_rgb, shallow_rgb, deep_ir, shallow_ir, y_ir)  # doctest: +SKIP

    Calling the object returns the labels alone; :meth:`associate` returns the full
    :class:`CRAResult`; :meth:`associate_tensors` is the same on prepared tensors without
    the input conversion and the label checks (what :class:`~sdcl_toolkit.PseudoLabeler` uses).
    ``src_labels`` (the association protocol's last argument) is accepted and ignored: CRA
    works on samples.
    """

    name = "cra"
    needs_src_labels = False

    def __init__(
        self,
        topk: int = OFFICIAL_SYSU.cra_topk,
        smooth_k: int = OFFICIAL_SYSU.cra_smooth_k,
        *,
        backend: Backend = "auto",
        candidates: Candidates = "auto",
        group: Optional[Any] = None,
    ) -> None:
        self.topk = check_int(topk, "topk", minimum=1)
        self.smooth_k = check_int(smooth_k, "smooth_k", minimum=1)
        self.backend = backend
        self.candidates = candidates
        self.group = check_group(group)

    def __repr__(self) -> str:
        return f"CollaborativeRankingAssociation(topk={self.topk}, smooth_k={self.smooth_k})"

    def __call__(  # type: ignore[override]
        self,
        deep_src: ArrayLike,
        shallow_src: ArrayLike,
        deep_tgt: ArrayLike,
        shallow_tgt: ArrayLike,
        tgt_labels: ArrayLike,
        src_labels: Optional[ArrayLike] = None,
        *,
        return_details: bool = False,
    ) -> Union[ArrayLike, CRAResult]:
        """Associate source samples with target clusters; return their labels.

        Parameters
        ----------
        deep_src, shallow_src:
            ``[N_src, D_deep]`` and ``[N_src, D_shallow]`` source features (raw or
            normalised; they are L2-normalised here).
        deep_tgt, shallow_tgt:
            ``[N_tgt, D_deep]`` and ``[N_tgt, D_shallow]`` target features.
        tgt_labels:
            ``[N_tgt]`` target cluster labels (``-1`` = unclustered).
        src_labels:
            Ignored (accepted for the association protocol).
        return_details:
            Deprecated (removed in the next version): use :meth:`associate`, which always
            returns the :class:`CRAResult`. ``True`` still returns it, with a
            ``DeprecationWarning``.

        Returns
        -------
        ``[N_src]`` int64 target-space labels (-1 = unassigned), numpy or torch like the
        inputs, on their device (a :class:`CRAResult` with the deprecated
        ``return_details=True``).
        """
        if return_details:
            warnings.warn(
                "CRA(...)(..., return_details=True) is deprecated and will be removed in the "
                "next version; use cra.associate(...), which returns the CRAResult",
                DeprecationWarning,
                stacklevel=2,
            )
            return self.associate(
                deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels
            )
        return self.associate(
            deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels
        ).labels

    def associate(
        self,
        deep_src: ArrayLike,
        shallow_src: ArrayLike,
        deep_tgt: ArrayLike,
        shallow_tgt: ArrayLike,
        tgt_labels: ArrayLike,
        src_labels: Optional[ArrayLike] = None,
    ) -> CRAResult:
        """Associate source samples with target clusters; return everything computed.

        Parameters are those of :meth:`__call__` (numpy or torch, raw or normalised).

        Returns
        -------
        CRAResult
            Labels, pre-smoothing labels, winning counts (arrays of the inputs' type, on
            their device) and the time per step.
        """
        p = prepare_inputs(deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels)
        self._check_shapes(p.deep_src, p.shallow_src, p.deep_tgt, p.shallow_tgt)
        result = self._associate(p.deep_src, p.shallow_src, p.deep_tgt, p.shallow_tgt, p.tgt_labels)
        kind = p.kind
        return CRAResult(
            kind.to_caller(result.labels),
            kind.to_caller(result.ranking_labels),
            kind.to_caller(result.votes),
            result.seconds,
        )

    def _check_shapes(self, ds, ss, dt, st) -> None:
        check_feature_shapes(ds, ss, dt, st)
        if self.topk > dt.shape[0]:
            raise ValueError(f"topk={self.topk} is larger than the {dt.shape[0]} target samples")
        if self.smooth_k > ds.shape[0]:
            raise ValueError(
                f"smooth_k={self.smooth_k} is larger than the {ds.shape[0]} source samples"
            )

    def associate_tensors(
        self,
        deep_src: torch.Tensor,
        shallow_src: torch.Tensor,
        deep_tgt: torch.Tensor,
        shallow_tgt: torch.Tensor,
        tgt_labels: torch.Tensor,
        src_labels: Optional[torch.Tensor] = None,
    ) -> CRAResult:
        """Tensor-level :meth:`associate` for inputs the caller has already prepared.

        The inputs must be floating-point ``torch`` tensors on one device (features) and an
        int64 ``[N_tgt]`` label tensor on that device with values ``>= -1`` and at least one
        cluster. Only the shapes are checked (no host synchronisation, no copies); the
        label checks and conversions of :meth:`associate` are skipped, so a pipeline that
        validated its features once pays nothing twice. ``src_labels`` is ignored.

        Returns
        -------
        CRAResult
            With ``torch`` tensors on the inputs' device.
        """
        self._check_shapes(deep_src, shallow_src, deep_tgt, shallow_tgt)
        if tgt_labels.shape != (deep_tgt.shape[0],):
            raise ValueError(
                f"tgt_labels has shape {tuple(tgt_labels.shape)}, expected "
                f"({deep_tgt.shape[0]},) (one label per target sample)"
            )
        return self._associate(deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels)

    def _associate(self, ds, ss, dt, st, y) -> CRAResult:
        """Tensor-level association on validated float32 tensors of one device."""
        timer = StageTimer(device=ds.device)
        normalize = torch.nn.functional.normalize
        ds, ss, dt, st = (normalize(t.float(), dim=1) for t in (ds, ss, dt, st))
        search = functools.partial(
            knn_tensors, backend=self.backend, candidates=self.candidates, group=self.group
        )
        with timer.stage("search"):
            _, deep_nn = search(ds, dt, self.topk)
            _, shallow_nn = search(ss, st, self.topk)
        with timer.stage("ranking"):
            ranking, votes = _ranking_labels(y[deep_nn], y[shallow_nn])
        with timer.stage("smoothing"):
            # d.d' + s.s' is the inner product of the concatenated normalised features
            joint = torch.cat([ds, ss], dim=1)
            _, self_nn = search(joint, joint, self.smooth_k)
            labels = _smoothed_labels(ranking, self_nn)
        return CRAResult(labels, ranking, votes, dict(timer.seconds))


CRA = CollaborativeRankingAssociation
"""Short alias of :class:`CollaborativeRankingAssociation`."""
