"""One epoch of SDCL pseudo-labelling for two modalities (Yang et al., CVPR 2024;
official ``cluster_contrast_vit_sysu.py`` epoch loop).

``PseudoLabeler(...)(deep_rgb, shallow_rgb, deep_ir, shallow_ir, stage=1 | 2)`` runs:

1. per modality: ``z = L2norm(concat(f_deep, f_shallow))``; sparse Jaccard distance
   (``k1``, ``k2``; RGB uses ``stage2_rgb_k1`` in stage 2); DBSCAN (``eps``, ``min_samples``);
2. stage 1: per-modality cluster centroids (mean of the raw deep / shallow features of each
   cluster, then L2-normalised) for the deep and shallow cluster memories;
3. stage 2: CRA maps every RGB sample to an IR cluster; RGB samples are trained with those
   IR-space labels; one shared deep and one shared shallow centroid set is built from the
   RGB (CRA labels) and IR (own labels) features together, as the official code does;
4. the "kept" masks: a sample is trained on only if it has a label != -1 from its own
   clustering and (stage 2, RGB) after CRA.

The result is one :class:`PseudoLabels` object with labels, masks, centroids, the CRA
details and statistics for logging.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, cast

import torch

from ._arrays import ArrayLike, array_kind, as_features
from ._timing import StageTimer
from .association import CollaborativeRankingAssociation, CRAResult
from .clustering import cluster_centroids, dbscan_pseudo_labels
from .knn_search import Backend, Candidates
from .recipe import OFFICIAL_SYSU, SDCLRecipe
from .reranking import jaccard_distance_tensors

__all__ = ["PseudoLabeler", "PseudoLabels", "ModalityLabels"]

logger = logging.getLogger(__name__)


@dataclass
class ModalityLabels:
    """Pseudo-labels of one modality.

    Attributes
    ----------
    labels: ``[N]`` int64 training labels (stage 2 RGB: IR-space CRA labels); -1 = unused.
    cluster_labels: ``[N]`` int64 labels of this modality's own DBSCAN clustering.
    kept: ``[N]`` bool, the samples used for training (``labels != -1`` and
        ``cluster_labels != -1``).
    num_classes: size of this modality's cluster memories (stage 2: the shared IR clusters).
    num_clusters: clusters found by this modality's own DBSCAN.
    num_outliers: samples DBSCAN left unclustered (-1).
    """

    labels: ArrayLike
    cluster_labels: ArrayLike
    kept: ArrayLike
    num_classes: int
    num_clusters: int
    num_outliers: int

    def training_labels(self) -> ArrayLike:
        """``[N]`` labels to sample training batches from: ``labels`` where ``kept``, else -1
        (same array type and device as ``labels``)."""
        labels, kept = self.labels, self.kept
        if isinstance(labels, torch.Tensor):  # then ``kept`` is a tensor too
            return torch.where(cast(torch.Tensor, kept), labels, torch.full_like(labels, -1))
        import numpy as np

        return np.where(kept, labels, -1)


@dataclass
class PseudoLabels:
    """Result of one pseudo-labelling step (arrays in the caller's type and on its device).

    Attributes
    ----------
    stage: 1 (per-modality memories) or 2 (CRA + shared memories).
    rgb, ir: :class:`ModalityLabels` of each modality.
    deep_centroids, shallow_centroids: ``{"rgb": [C_rgb, D], "ir": [C_ir, D]}`` L2-normalised
        centroids to initialise the cluster memories; in stage 2 both keys hold the same
        shared ``[C_ir, D]`` tensor.
    cra: the :class:`~sdcl_toolkit.CRAResult` of stage 2 (``None`` in stage 1).
    seconds: wall-clock seconds per step.
    """

    stage: int
    rgb: ModalityLabels
    ir: ModalityLabels
    deep_centroids: dict[str, ArrayLike]
    shallow_centroids: dict[str, ArrayLike]
    cra: Optional[CRAResult] = None
    seconds: dict[str, float] = field(default_factory=dict)

    def training_labels(self) -> dict[str, ArrayLike]:
        """``{"rgb": ..., "ir": ...}`` labels to draw training batches from (-1 = not
        trained on), e.g. for :func:`sdcl_toolkit.data.make_sdcl_train_loaders`."""
        return {"rgb": self.rgb.training_labels(), "ir": self.ir.training_labels()}

    @property
    def shared(self) -> bool:
        """Whether both modalities train against one shared set of clusters (stage 2)."""
        return self.stage == 2

    @property
    def associated_fraction(self) -> float:
        """Stage 2: fraction of RGB samples CRA assigned to an IR cluster (else NaN)."""
        if self.cra is None:
            return float("nan")
        labels = self.cra.labels
        return float((labels != -1).sum()) / max(1, len(labels))

    def summary(self) -> dict[str, Any]:
        """Plain numbers for logging (JSON-serialisable)."""
        out: dict[str, Any] = {"stage": self.stage}
        for name, part in (("rgb", self.rgb), ("ir", self.ir)):
            out[f"{name}_clusters"] = part.num_clusters
            out[f"{name}_outliers"] = part.num_outliers
            out[f"{name}_classes"] = part.num_classes
            out[f"{name}_kept"] = int(part.kept.sum())
        if self.cra is not None:
            out["associated_fraction"] = round(self.associated_fraction, 4)
        out["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return out


def _to_caller_shared(kind, tensors: dict[str, torch.Tensor]) -> dict[str, ArrayLike]:
    """Convert a dict of tensors, keeping entries that are one tensor one object."""
    converted: dict[int, ArrayLike] = {}
    out = {}
    for key, value in tensors.items():
        if id(value) not in converted:
            converted[id(value)] = kind.to_caller(value)
        out[key] = converted[id(value)]
    return out


class PseudoLabeler:
    """Per-epoch pseudo-labelling of SDCL (Yang et al., CVPR 2024) with the official defaults.

    Parameters
    ----------
    eps:
        DBSCAN radius.
    min_samples:
        DBSCAN core size.
    k1, k2:
        Jaccard distance parameters.
    stage2_rgb_k1:
        ``k1`` of the RGB Jaccard distance in stage 2.
    cra:
        The :class:`~sdcl_toolkit.CollaborativeRankingAssociation` of stage 2
        (default ``CRA(recipe.cra_topk, recipe.cra_smooth_k)``).

    The defaults are the official SYSU-MM01 values (:meth:`SDCLRecipe.sysu`: eps 0.6,
    min_samples 4, k1 30, k2 6, stage-2 RGB k1 15, CRA depth 20 with 5 smoothing
    neighbours); :meth:`for_dataset` / :meth:`from_recipe` give another dataset's.
    backend, candidates:
        kNN backend and candidate precision for every search (see :func:`sdcl_toolkit.knn`).

    Example
    -------
    >>> labeler = PseudoLabeler.for_dataset("sysu")
    >>> result = labeler(deep_rgb, shallow_rgb, deep_ir, shallow_ir, stage=2)  # doctest: +SKIP
    >>> result.rgb.labels, result.deep_centroids["rgb"], result.summary()  # doctest: +SKIP
    """

    def __init__(
        self,
        eps: float = OFFICIAL_SYSU.eps,
        min_samples: int = OFFICIAL_SYSU.min_samples,
        k1: int = OFFICIAL_SYSU.k1,
        k2: int = OFFICIAL_SYSU.k2,
        stage2_rgb_k1: int = OFFICIAL_SYSU.stage2_rgb_k1,
        cra: Optional[CollaborativeRankingAssociation] = None,
        *,
        backend: Backend = "auto",
        candidates: Candidates = "auto",
    ) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.k1 = k1
        self.k2 = k2
        self.stage2_rgb_k1 = stage2_rgb_k1
        self.backend = backend
        self.candidates = candidates
        self.cra = (
            cra
            if cra is not None
            else CollaborativeRankingAssociation(backend=backend, candidates=candidates)
        )

    @classmethod
    def from_recipe(cls, recipe: SDCLRecipe, **overrides: Any) -> PseudoLabeler:
        """The pseudo-labelling settings of ``recipe`` (eps, min_samples, k1, k2,
        stage2_rgb_k1, CRA depth and smoothing), with optional keyword overrides."""
        if not isinstance(recipe, SDCLRecipe):
            raise TypeError(f"recipe must be an SDCLRecipe, got {type(recipe).__name__}")
        options = {key: overrides.pop(key) for key in ("backend", "candidates") if key in overrides}
        values: dict[str, Any] = dict(
            eps=recipe.eps,
            min_samples=recipe.min_samples,
            k1=recipe.k1,
            k2=recipe.k2,
            stage2_rgb_k1=recipe.stage2_rgb_k1,
        )
        if "cra" not in overrides:
            values["cra"] = CollaborativeRankingAssociation(
                recipe.cra_topk, recipe.cra_smooth_k, **options
            )
        return cls(**{**values, **overrides}, **options)

    @classmethod
    def for_dataset(cls, name: str, **overrides: Any) -> PseudoLabeler:
        """The official settings of ``"sysu"``, ``"regdb"`` or ``"sysu_4gpu"``
        (:meth:`SDCLRecipe.for_dataset`), with optional keyword overrides."""
        return cls.from_recipe(SDCLRecipe.for_dataset(name), **overrides)

    def __repr__(self) -> str:
        return (
            f"PseudoLabeler(eps={self.eps}, min_samples={self.min_samples}, k1={self.k1}, "
            f"k2={self.k2}, stage2_rgb_k1={self.stage2_rgb_k1}, cra={self.cra!r})"
        )

    # ------------------------------------------------------------------ steps

    def cluster(
        self, deep: torch.Tensor, shallow: torch.Tensor, k1: int, timer: StageTimer, name: str
    ) -> torch.Tensor:
        """Jaccard + DBSCAN labels of one modality (tensors in, int64 tensor out)."""
        with timer.stage(f"jaccard_{name}"):
            z = torch.cat([deep, shallow], dim=1)
            distance = jaccard_distance_tensors(
                z, k1, self.k2, backend=self.backend, candidates=self.candidates
            )
        with timer.stage(f"dbscan_{name}"):
            labels = dbscan_pseudo_labels(distance.to_scipy(), self.eps, self.min_samples)
        return torch.from_numpy(labels).to(deep.device)

    def __call__(
        self,
        deep_rgb: ArrayLike,
        shallow_rgb: ArrayLike,
        deep_ir: ArrayLike,
        shallow_ir: ArrayLike,
        stage: int = 1,
    ) -> PseudoLabels:
        """Pseudo-label one epoch.

        Parameters
        ----------
        deep_rgb, shallow_rgb: ``[N_rgb, D]`` raw deep and shallow RGB features.
        deep_ir, shallow_ir: ``[N_ir, D]`` raw deep and shallow IR features.
        stage: 1 (per-modality) or 2 (CRA + shared memories).
        """
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        kind = array_kind(
            deep_rgb=deep_rgb, shallow_rgb=shallow_rgb, deep_ir=deep_ir, shallow_ir=shallow_ir
        )
        device = kind.device
        d_rgb = as_features(deep_rgb, "deep_rgb").to(device)
        s_rgb = as_features(shallow_rgb, "shallow_rgb").to(device)
        d_ir = as_features(deep_ir, "deep_ir").to(device)
        s_ir = as_features(shallow_ir, "shallow_ir").to(device)
        for a, b, na, nb in (
            (d_rgb, s_rgb, "deep_rgb", "shallow_rgb"),
            (d_ir, s_ir, "deep_ir", "shallow_ir"),
        ):
            if a.shape[0] != b.shape[0]:
                raise ValueError(f"{na} has {a.shape[0]} samples but {nb} has {b.shape[0]}")
        for a, b, na, nb in (
            (d_rgb, d_ir, "deep_rgb", "deep_ir"),
            (s_rgb, s_ir, "shallow_rgb", "shallow_ir"),
        ):
            if a.shape[1] != b.shape[1]:
                raise ValueError(f"{na} has width {a.shape[1]} but {nb} has width {b.shape[1]}")

        timer = StageTimer(device=device)
        ir_own = self.cluster(d_ir, s_ir, self.k1, timer, "ir")
        rgb_k1 = self.stage2_rgb_k1 if stage == 2 else self.k1
        rgb_own = self.cluster(d_rgb, s_rgb, rgb_k1, timer, "rgb")
        num_ir = int(ir_own.max()) + 1 if bool((ir_own >= 0).any()) else 0
        num_rgb = int(rgb_own.max()) + 1 if bool((rgb_own >= 0).any()) else 0
        if num_ir == 0 or num_rgb == 0:
            empty = [n for n, c in (("RGB", num_rgb), ("IR", num_ir)) if c == 0]
            raise ValueError(
                f"DBSCAN found no cluster in {' and '.join(empty)} (eps={self.eps}, "
                f"min_samples={self.min_samples}): every sample is an outlier. Check the "
                "features, or raise eps"
            )

        cra_result: Optional[CRAResult] = None
        if stage == 1:
            rgb_labels, ir_labels = rgb_own, ir_own
            with timer.stage("centroids"):
                deep_c = {
                    "rgb": cluster_centroids(d_rgb, rgb_own, num_rgb),
                    "ir": cluster_centroids(d_ir, ir_own, num_ir),
                }
                shallow_c = {
                    "rgb": cluster_centroids(s_rgb, rgb_own, num_rgb),
                    "ir": cluster_centroids(s_ir, ir_own, num_ir),
                }
            classes = {"rgb": num_rgb, "ir": num_ir}
        else:
            with timer.stage("cra"):
                cra_result = self.cra.associate_tensors(d_rgb, s_rgb, d_ir, s_ir, ir_own)
            rgb_labels, ir_labels = cast(torch.Tensor, cra_result.labels), ir_own  # tensor-level
            with timer.stage("centroids"):
                all_labels = torch.cat([rgb_labels, ir_labels])
                shared_deep = cluster_centroids(torch.cat([d_rgb, d_ir]), all_labels, num_ir)
                shared_shallow = cluster_centroids(torch.cat([s_rgb, s_ir]), all_labels, num_ir)
            deep_c = {"rgb": shared_deep, "ir": shared_deep}
            shallow_c = {"rgb": shared_shallow, "ir": shared_shallow}
            classes = {"rgb": num_ir, "ir": num_ir}

        def part(labels, own, name, num_clusters):
            kept = (labels != -1) & (own != -1)
            return ModalityLabels(
                kind.to_caller(labels),
                kind.to_caller(own),
                kind.to_caller(kept),
                classes[name],
                num_clusters,
                int((own == -1).sum()),
            )

        result = PseudoLabels(
            stage=stage,
            rgb=part(rgb_labels, rgb_own, "rgb", num_rgb),
            ir=part(ir_labels, ir_own, "ir", num_ir),
            deep_centroids=_to_caller_shared(kind, deep_c),
            shallow_centroids=_to_caller_shared(kind, shallow_c),
            cra=None
            if cra_result is None
            else CRAResult(
                kind.to_caller(cra_result.labels),
                kind.to_caller(cra_result.ranking_labels),
                kind.to_caller(cra_result.votes),
                cra_result.seconds,
            ),
            seconds=dict(timer.seconds),
        )
        logger.info("pseudo-labels: %s", result.summary())
        return result
