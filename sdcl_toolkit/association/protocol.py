"""The cross-modality association interface shared by every method.

An association gives each *source*-modality sample (RGB in SDCL) a cluster label of the
*target* modality (IR), or ``-1`` (unassigned)::

    result = method.associate(deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels,
                              src_labels)      # .labels [N_src] int64, .seconds
    labels = method(deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels)

``src_labels`` (the source modality's own clusters) is needed by the cluster-level methods
(Hungarian matching, cluster-level optimal transport, the bidirectional check) and ignored
by the sample-level ones. Inputs are numpy arrays or torch tensors (never mixed, one
device); results have the inputs' type and device. Features may be raw: every method
L2-normalises them. float16/bfloat16 features are computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch

from .._arrays import ArrayKind, ArrayLike, array_kind, as_features, as_labels

__all__ = [
    "Association",
    "AssociationResult",
    "PreparedInputs",
    "prepare_inputs",
    "check_feature_shapes",
    "check_cluster_labels",
    "result_to_caller",
]


@dataclass
class AssociationResult:
    """What an association computed for the source samples (caller's type and device).

    Attributes
    ----------
    labels: ``[N_src]`` int64 target-cluster labels (-1 = unassigned).
    scores: ``[N_src]`` float32 method-specific confidence of the chosen cluster (NaN where
        unassigned): a similarity for the centroid and Hungarian methods, the transport
        plan's row-normalised mass for optimal transport.
    seconds: wall-clock seconds per step.
    details: further per-method values (plain numbers, e.g. Sinkhorn iterations).
    """

    labels: ArrayLike
    scores: Optional[ArrayLike]
    seconds: dict[str, float]
    details: dict[str, Any]


class PreparedInputs(NamedTuple):
    """Validated float32 features and int64 labels on one device, plus the caller's kind."""

    kind: ArrayKind
    deep_src: torch.Tensor
    shallow_src: torch.Tensor
    deep_tgt: torch.Tensor
    shallow_tgt: torch.Tensor
    tgt_labels: torch.Tensor
    src_labels: Optional[torch.Tensor]


def check_feature_shapes(
    ds: torch.Tensor, ss: torch.Tensor, dt: torch.Tensor, st: torch.Tensor
) -> None:
    """Same sample counts within a modality, same widths across modalities (else ValueError)."""
    if ds.shape[0] != ss.shape[0]:
        raise ValueError(
            f"deep_src has {ds.shape[0]} samples but shallow_src has "
            f"{ss.shape[0]}; they must describe the same samples"
        )
    if dt.shape[0] != st.shape[0]:
        raise ValueError(
            f"deep_tgt has {dt.shape[0]} samples but shallow_tgt has "
            f"{st.shape[0]}; they must describe the same samples"
        )
    if ds.shape[1] != dt.shape[1]:
        raise ValueError(
            f"deep_src has width {ds.shape[1]} but deep_tgt has width "
            f"{dt.shape[1]}; deep features of both modalities must match"
        )
    if ss.shape[1] != st.shape[1]:
        raise ValueError(
            f"shallow_src has width {ss.shape[1]} but shallow_tgt has width "
            f"{st.shape[1]}; shallow features of both modalities must match"
        )


def check_cluster_labels(labels: torch.Tensor, name: str, modality: str) -> None:
    """Labels ``>= -1`` with at least one cluster (else ValueError naming ``name``)."""
    if bool((labels < -1).any()):
        raise ValueError(
            f"{name} must be >= -1 (-1 = unclustered), got "
            f"{sorted({int(v) for v in labels[labels < -1][:5]})}"
        )
    if not bool((labels >= 0).any()):
        raise ValueError(
            f"all {name} are -1: the {modality} modality has no cluster, so "
            "there is nothing to associate"
        )


def prepare_inputs(
    deep_src: ArrayLike,
    shallow_src: ArrayLike,
    deep_tgt: ArrayLike,
    shallow_tgt: ArrayLike,
    tgt_labels: ArrayLike,
    src_labels: Optional[ArrayLike] = None,
    *,
    needs_src_labels: bool = False,
    method: str = "this association",
) -> PreparedInputs:
    """Convert and validate the public inputs of :meth:`Association.associate`.

    Raises
    ------
    TypeError
        numpy mixed with torch, several devices, non-array input.
    ValueError
        NaN/inf features, mismatched counts or widths, labels of the wrong length or below
        -1, no target cluster, or ``src_labels`` missing (or without a cluster) when
        ``needs_src_labels``.
    """
    kind = array_kind(
        deep_src=deep_src,
        shallow_src=shallow_src,
        deep_tgt=deep_tgt,
        shallow_tgt=shallow_tgt,
        tgt_labels=tgt_labels,
        src_labels=src_labels,
    )
    device = kind.device
    ds = as_features(deep_src, "deep_src").to(device)
    ss = as_features(shallow_src, "shallow_src").to(device)
    dt = as_features(deep_tgt, "deep_tgt").to(device)
    st = as_features(shallow_tgt, "shallow_tgt").to(device)
    check_feature_shapes(ds, ss, dt, st)
    y_t = as_labels(tgt_labels, "tgt_labels", length=dt.shape[0], device=device)
    check_cluster_labels(y_t, "tgt_labels", "target")
    y_s = None
    if src_labels is not None:
        y_s = as_labels(src_labels, "src_labels", length=ds.shape[0], device=device)
        if needs_src_labels:
            check_cluster_labels(y_s, "src_labels", "source")
        elif bool((y_s < -1).any()):
            check_cluster_labels(y_s, "src_labels", "source")
    elif needs_src_labels:
        raise ValueError(
            f"{method} matches source clusters: pass src_labels (the source modality's own "
            "cluster labels, -1 = unclustered)"
        )
    return PreparedInputs(kind, ds, ss, dt, st, y_t, y_s)


class Association:
    """Base class of the cross-modality associations (the protocol every method follows).

    Subclasses set :attr:`name` and :attr:`needs_src_labels` and implement
    :meth:`associate_tensors`; this class supplies the input conversion (:meth:`associate`)
    and the label-only call.
    """

    name: str = "association"
    needs_src_labels: bool = False

    def __call__(
        self,
        deep_src: ArrayLike,
        shallow_src: ArrayLike,
        deep_tgt: ArrayLike,
        shallow_tgt: ArrayLike,
        tgt_labels: ArrayLike,
        src_labels: Optional[ArrayLike] = None,
    ) -> ArrayLike:
        """``[N_src]`` int64 target-space labels (-1 = unassigned), of the inputs' type."""
        result = self.associate(
            deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels
        )
        return result.labels

    def associate(
        self,
        deep_src: ArrayLike,
        shallow_src: ArrayLike,
        deep_tgt: ArrayLike,
        shallow_tgt: ArrayLike,
        tgt_labels: ArrayLike,
        src_labels: Optional[ArrayLike] = None,
    ) -> Any:
        """Associate source samples with target clusters; return the full result.

        Parameters
        ----------
        deep_src, shallow_src: ``[N_src, D_deep]``, ``[N_src, D_shallow]`` source features.
        deep_tgt, shallow_tgt: ``[N_tgt, D_deep]``, ``[N_tgt, D_shallow]`` target features.
        tgt_labels: ``[N_tgt]`` target cluster labels (-1 = unclustered).
        src_labels: ``[N_src]`` source cluster labels (-1 = unclustered); required by the
            cluster-level methods (:attr:`needs_src_labels`).
        """
        p = prepare_inputs(
            deep_src,
            shallow_src,
            deep_tgt,
            shallow_tgt,
            tgt_labels,
            src_labels,
            needs_src_labels=self.needs_src_labels,
            method=type(self).__name__,
        )
        result = self.associate_tensors(
            p.deep_src, p.shallow_src, p.deep_tgt, p.shallow_tgt, p.tgt_labels, p.src_labels
        )
        return result_to_caller(p.kind, result)

    def associate_tensors(
        self,
        deep_src: torch.Tensor,
        shallow_src: torch.Tensor,
        deep_tgt: torch.Tensor,
        shallow_tgt: torch.Tensor,
        tgt_labels: torch.Tensor,
        src_labels: Optional[torch.Tensor] = None,
    ) -> Any:
        """:meth:`associate` on prepared float32 tensors and int64 labels of one device."""
        raise NotImplementedError

    def check_tensor_inputs(
        self,
        deep_src: torch.Tensor,
        shallow_src: torch.Tensor,
        deep_tgt: torch.Tensor,
        shallow_tgt: torch.Tensor,
        tgt_labels: torch.Tensor,
        src_labels: Optional[torch.Tensor],
    ) -> None:
        """The checks every :meth:`associate_tensors` starts with: matching shapes, target
        labels ``>= -1`` with a cluster, and, where :attr:`needs_src_labels`, source labels
        that are given, ``>= -1`` and with a cluster (ValueError naming the argument)."""
        check_feature_shapes(deep_src, shallow_src, deep_tgt, shallow_tgt)
        check_cluster_labels(tgt_labels, "tgt_labels", "target")
        if not self.needs_src_labels:
            return
        if src_labels is None:
            raise ValueError(
                f"{self!r} matches source clusters: pass src_labels (the source modality's "
                "own cluster labels, -1 = unclustered)"
            )
        check_cluster_labels(src_labels, "src_labels", "source")


def result_to_caller(kind: ArrayKind, result: Any) -> Any:
    """A copy of a result dataclass with every tensor (also inside dict fields) in the
    caller's type."""

    def convert(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return kind.to_caller(value)
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        return value

    return type(result)(**{key: convert(value) for key, value in vars(result).items()})
