"""One epoch of SDCL pseudo-labelling for two modalities (Yang et al., CVPR 2024;
official ``cluster_contrast_vit_sysu.py`` epoch loop).

``PseudoLabeler(...)(deep_rgb, shallow_rgb, deep_ir, shallow_ir, stage=1 | 2)`` runs:

1. per modality: ``z = L2norm(concat(f_deep, f_shallow))``; sparse Jaccard distance
   (``k1``, ``k2``; RGB uses ``stage2_rgb_k1`` in stage 2); DBSCAN (``eps``, ``min_samples``);
2. stage 1: per-modality cluster centroids (mean of the raw deep / shallow features of each
   cluster, then L2-normalised) for the deep and shallow cluster memories;
3. stage 2: the cross-modality association (CRA by default; any method of
   :mod:`sdcl_toolkit.association` by name, optionally bidirectional) maps every RGB sample
   to an IR cluster; RGB samples are trained with those IR-space labels; one shared deep
   and one shared shallow centroid set is built from the RGB (associated labels) and IR
   (own labels) features together, as the official code does;
4. the "kept" masks: a sample is trained on only if it has a label != -1 from its own
   clustering and (stage 2, RGB) after the association.

The result is one :class:`PseudoLabels` object with labels, masks, centroids, the
association details and statistics for logging; :meth:`PseudoLabels.quality` scores them
against ground-truth identities where those are known (diagnostics only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Union, cast

import torch

from ._arrays import ArrayLike, array_kind, as_features
from ._timing import StageTimer
from ._validation import check_bool, check_real
from .association import (
    Association,
    BidirectionalAssociation,
    CollaborativeRankingAssociation,
    make_association,
)
from .association.protocol import result_to_caller
from .clustering import cluster_centroids, dbscan_pseudo_labels
from .knn_search import Backend, Candidates
from .knn_sharded import check_group
from .label_quality import pseudo_label_quality
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
    association: the association result of stage 2 (``None`` in stage 1): a
        :class:`~sdcl_toolkit.CRAResult` for CRA, an
        :class:`~sdcl_toolkit.association.AssociationResult` for the other methods; its
        ``labels`` are ``rgb.labels``.
    seconds: wall-clock seconds per step.
    method: name of the association method (e.g. ``"cra"``, ``"ot+bidirectional"``).
    """

    stage: int
    rgb: ModalityLabels
    ir: ModalityLabels
    deep_centroids: dict[str, ArrayLike]
    shallow_centroids: dict[str, ArrayLike]
    association: Optional[Any] = None
    seconds: dict[str, float] = field(default_factory=dict)
    method: str = "cra"

    @property
    def cra(self) -> Optional[Any]:
        """The stage-2 association result (named for SDCL's default method, CRA)."""
        return self.association

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
        """Stage 2: fraction of RGB samples associated with an IR cluster (else NaN)."""
        if self.association is None:
            return float("nan")
        labels = self.association.labels
        return float((labels != -1).sum()) / max(1, len(labels))

    def summary(self) -> dict[str, Any]:
        """Plain numbers for logging (JSON-serialisable)."""
        out: dict[str, Any] = {"stage": self.stage}
        for name, part in (("rgb", self.rgb), ("ir", self.ir)):
            out[f"{name}_clusters"] = part.num_clusters
            out[f"{name}_outliers"] = part.num_outliers
            out[f"{name}_classes"] = part.num_classes
            out[f"{name}_kept"] = int(part.kept.sum())
        if self.association is not None:
            out["association"] = self.method
            out["associated_fraction"] = round(self.associated_fraction, 4)
        out["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return out

    def quality(self, rgb_ids: ArrayLike, ir_ids: ArrayLike) -> dict[str, Any]:
        """Label-quality diagnostics against ground-truth identities (never for training).

        ``rgb_ids``, ``ir_ids``: ``[N_rgb]``, ``[N_ir]`` true identities (numpy or torch).
        Returns :func:`sdcl_toolkit.label_quality.pseudo_label_quality` of this epoch's
        own clusterings (``rgb.cluster_labels``, ``ir.cluster_labels``) and, in stage 2,
        of the association (``rgb.labels`` into the IR clusters).
        """
        return pseudo_label_quality(
            self.rgb.cluster_labels,
            rgb_ids,
            self.ir.cluster_labels,
            ir_ids,
            associated=self.rgb.labels if self.association is not None else None,
        )


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
        DBSCAN radius, ``0 < eps < 1``: Jaccard distances lie in ``[0, 1]`` and the pairs
        the sparse Jaccard matrix leaves out are at distance 1, so ``eps >= 1`` would make
        every pair a neighbour.
    min_samples:
        DBSCAN core size.
    k1, k2:
        Jaccard distance parameters.
    stage2_rgb_k1:
        ``k1`` of the RGB Jaccard distance in stage 2.
    cra:
        The :class:`~sdcl_toolkit.CollaborativeRankingAssociation` of stage 2
        (default ``CRA(recipe.cra_topk, recipe.cra_smooth_k)``); shorthand for
        ``association=cra``.
    association:
        The stage-2 association: a name of :data:`~sdcl_toolkit.association.ASSOCIATION_METHODS`
        (``"cra"``, ``"centroid"``, ``"hungarian"``, ``"ot"``; CRA with the default depth
        and smoothing) or an association object (see :mod:`sdcl_toolkit.association`).
        The RGB samples' own DBSCAN labels are passed as ``src_labels``.
    bidirectional:
        Keep an RGB -> IR association only where the IR -> RGB association agrees
        (:class:`~sdcl_toolkit.association.BidirectionalAssociation`).

    The defaults are the official SYSU-MM01 values (:meth:`SDCLRecipe.sysu`: eps 0.6,
    min_samples 4, k1 30, k2 6, stage-2 RGB k1 15, CRA depth 20 with 5 smoothing
    neighbours); :meth:`for_dataset` / :meth:`from_recipe` give another dataset's.
    backend, candidates:
        kNN backend and candidate precision for every search (see :func:`sdcl_toolkit.knn`).
    group:
        ``None``, ``"world"`` or a ``torch.distributed`` process group: shard the kNN
        searches over its ranks: the Jaccard searches and, for CRA built here (by name or
        from the recipe), CRA's three searches (every rank must call the labeler with the
        same features; all ranks get the same labels, identical to one process). An
        association object passed in shards only if it was built with ``group=``.

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
        association: Union[str, Association] = "cra",
        bidirectional: bool = False,
        backend: Backend = "auto",
        candidates: Candidates = "auto",
        group: Optional[Any] = None,
    ) -> None:
        bidirectional = check_bool(bidirectional, "bidirectional")
        self.eps = check_real(  # Jaccard distances: absent pairs are at 1
            eps, "eps", minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False
        )
        self.group = check_group(group)
        self.min_samples = min_samples
        self.k1 = k1
        self.k2 = k2
        self.stage2_rgb_k1 = stage2_rgb_k1
        self.backend = backend
        self.candidates = candidates
        if cra is not None and not (isinstance(association, str) and association == "cra"):
            raise ValueError("pass either cra= or association=, not both")
        method: Association
        if cra is not None:
            method = cra
        elif isinstance(association, str):
            method = make_association(
                association, backend=backend, candidates=candidates, group=self.group
            )
        elif callable(getattr(association, "associate_tensors", None)):
            method = association
        else:
            raise TypeError(
                "association must be a method name "
                f"('cra', 'centroid', 'hungarian', 'ot') or an association object, got "
                f"{type(association).__name__}"
            )
        if bidirectional and not isinstance(method, BidirectionalAssociation):
            method = BidirectionalAssociation(method)
        self.association = method

    @property
    def cra(self) -> Optional[CollaborativeRankingAssociation]:
        """The CRA in use (also inside a bidirectional wrapper), else ``None``."""
        method = getattr(self.association, "base", self.association)
        return method if isinstance(method, CollaborativeRankingAssociation) else None

    @classmethod
    def from_recipe(cls, recipe: SDCLRecipe, **overrides: Any) -> PseudoLabeler:
        """The pseudo-labelling settings of ``recipe`` (eps, min_samples, k1, k2,
        stage2_rgb_k1, CRA depth and smoothing), with optional keyword overrides
        (``association="ot"``, ``bidirectional=True``, ...)."""
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
        name = overrides.get("association", "cra")
        if "cra" not in overrides and isinstance(name, str) and name == "cra":
            values["cra"] = CollaborativeRankingAssociation(
                recipe.cra_topk, recipe.cra_smooth_k, group=overrides.get("group"), **options
            )
            overrides.pop("association", None)
        return cls(**{**values, **overrides}, **options)

    @classmethod
    def for_dataset(cls, name: str, **overrides: Any) -> PseudoLabeler:
        """The official settings of ``"sysu"``, ``"regdb"`` or ``"sysu_4gpu"``
        (:meth:`SDCLRecipe.for_dataset`), with optional keyword overrides."""
        return cls.from_recipe(SDCLRecipe.for_dataset(name), **overrides)

    def __repr__(self) -> str:
        return (
            f"PseudoLabeler(eps={self.eps}, min_samples={self.min_samples}, k1={self.k1}, "
            f"k2={self.k2}, stage2_rgb_k1={self.stage2_rgb_k1}, "
            f"association={self.association!r})"
        )

    # ------------------------------------------------------------------ steps

    def cluster(
        self, deep: torch.Tensor, shallow: torch.Tensor, k1: int, timer: StageTimer, name: str
    ) -> torch.Tensor:
        """Jaccard + DBSCAN labels of one modality (tensors in, int64 tensor out)."""
        with timer.stage(f"jaccard_{name}"):
            z = torch.cat([deep, shallow], dim=1)
            distance = jaccard_distance_tensors(
                z, k1, self.k2, backend=self.backend, candidates=self.candidates, group=self.group
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
        stage: 1 (per-modality) or 2 (association + shared memories).
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

        association_result: Optional[Any] = None
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
            with timer.stage("cra" if self.association.name == "cra" else "association"):
                association_result = self.association.associate_tensors(
                    d_rgb, s_rgb, d_ir, s_ir, ir_own, rgb_own
                )
            rgb_labels = cast(torch.Tensor, association_result.labels)  # tensor-level
            ir_labels = ir_own
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
            association=None
            if association_result is None
            else result_to_caller(kind, association_result),
            seconds=dict(timer.seconds),
            method=self.association.name,
        )
        logger.info("pseudo-labels: %s", result.summary())
        return result
