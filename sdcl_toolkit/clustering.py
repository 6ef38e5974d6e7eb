"""DBSCAN pseudo-labels on a sparse distance graph, and cluster centroids.

``dbscan_pseudo_labels`` gives the labels scikit-learn's
``DBSCAN(eps, min_samples, metric="precomputed").fit_predict`` gives on the same distances
(identical labels, not only up to renaming), computed without Python loops:

- neighbours of ``i``: every ``j`` with ``d(i, j) <= eps``, ``i`` itself included;
- core points: at least ``min_samples`` neighbours;
- clusters: connected components of the core points (edges ``d <= eps``), numbered in the
  order of their lowest core index (scikit-learn grows clusters from ``i = 0, 1, ...``);
- border points (non-core with a core neighbour) join the lowest-numbered adjacent
  cluster (the cluster scikit-learn's depth-first expansion reaches first); the rest are
  noise, ``-1``.

Pairs absent from a sparse matrix have distance ``missing_distance`` (1.0 for the Jaccard
distances of :func:`sdcl_toolkit.jaccard_distance`, which stores every pair below 1), so
the result equals DBSCAN on the dense matrix the official code builds.
Distances are assumed symmetric (Jaccard distances are).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch

from ._arrays import ArrayLike, array_kind, as_features, as_labels
from .recipe import OFFICIAL_SYSU

__all__ = ["dbscan_pseudo_labels", "cluster_centroids"]

logger = logging.getLogger(__name__)


def _to_scipy_csr(distance) -> tuple[Any, bool, torch.device, bool]:
    """Return (scipy CSR, caller_is_numpy, device, was_dense)."""
    import scipy.sparse as sp

    if sp.issparse(distance):
        return sp.csr_matrix(distance), True, torch.device("cpu"), False
    if isinstance(distance, torch.Tensor):
        device = distance.device
        if distance.layout == torch.strided:
            return None, False, device, True
        if distance.layout != torch.sparse_csr:
            distance = distance.to_sparse_csr()
        matrix = sp.csr_matrix(
            (
                distance.values().detach().float().cpu().numpy(),
                distance.col_indices().cpu().numpy(),
                distance.crow_indices().cpu().numpy(),
            ),
            shape=tuple(distance.shape),
        )
        return matrix, False, device, False
    if isinstance(distance, np.ndarray):
        return None, True, torch.device("cpu"), True
    raise TypeError(
        "distance must be a scipy sparse matrix, a torch tensor (sparse or dense) or a numpy "
        f"array, got {type(distance).__module__}.{type(distance).__qualname__}"
    )


def _dense_to_csr(distance, eps: float):
    import scipy.sparse as sp

    d = (
        distance.detach().float().cpu().numpy()
        if isinstance(distance, torch.Tensor)
        else np.asarray(distance, dtype=np.float32)
    )
    if d.ndim != 2:
        raise ValueError(f"distance must be 2-D, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("distance contains NaN or inf")
    rows, cols = np.nonzero(d <= eps)
    return sp.csr_matrix((np.zeros(rows.size, np.float32), (rows, cols)), shape=d.shape)


def dbscan_pseudo_labels(
    distance,
    eps: float,
    min_samples: int = OFFICIAL_SYSU.min_samples,
    *,
    missing_distance: float = 1.0,
):
    """DBSCAN labels from precomputed (sparse) distances; ``-1`` marks noise.

    Parameters
    ----------
    distance:
        ``[N, N]`` distances: a scipy sparse matrix, a torch sparse (CSR/COO) tensor on any
        device, or a dense numpy array / torch tensor. For sparse input, absent pairs have
        distance ``missing_distance``; stored values must be finite.
    eps:
        Neighbourhood radius, ``0 < eps <= 1`` (SDCL: 0.6 on SYSU-MM01, 0.3 on RegDB).
    min_samples:
        Neighbours (self included) that make a core point (SDCL: 4).
    missing_distance:
        Distance of pairs not stored in a sparse matrix (1.0 for Jaccard distances; use
        ``math.inf`` for scikit-learn's sparse semantics).

    Returns
    -------
    ``[N]`` int64 labels ``0..C-1`` or ``-1``: numpy for numpy/scipy input, a torch tensor on
    the input's device for torch input. Identical to scikit-learn's ``DBSCAN`` labels.
    """
    from scipy.sparse.csgraph import connected_components

    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)):
        raise TypeError(f"eps must be a number, got {type(eps).__name__}")
    if not (0 < float(eps) <= 1):
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if (
        isinstance(min_samples, bool)
        or not isinstance(min_samples, (int, np.integer))
        or min_samples < 1
    ):
        raise ValueError(f"min_samples must be a positive int, got {min_samples!r}")
    eps = float(eps)

    matrix, is_numpy, device, dense = _to_scipy_csr(distance)
    if dense:
        matrix = _dense_to_csr(distance, eps)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"distance must be a square [N, N] matrix, got shape {matrix.shape}")
    n = matrix.shape[0]
    if n == 0:
        raise ValueError("distance is empty (0 samples)")
    if not dense and not np.isfinite(matrix.data).all():
        raise ValueError("distance contains NaN or inf among its stored values")

    def finish(labels: np.ndarray):
        if is_numpy:
            return labels
        return torch.from_numpy(labels).to(device)

    if eps >= missing_distance:
        # every pair is a neighbour: one cluster if a point has enough neighbours
        return finish(np.zeros(n, np.int64) if n >= min_samples else np.full(n, -1, np.int64))

    # neighbourhood graph: stored entries within eps, plus self
    graph = matrix.copy()
    graph.data = (graph.data <= eps).astype(np.int8)
    graph.eliminate_zeros()
    graph.setdiag(1)
    graph = graph.tocsr()
    graph.eliminate_zeros()
    neighbour_counts = np.diff(graph.indptr)
    core = neighbour_counts >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return finish(labels)

    core_index = np.flatnonzero(core)
    core_graph = graph[core_index][:, core_index]
    num_components, component = connected_components(core_graph, directed=False)
    # number components by their lowest core index (scikit-learn's visiting order)
    first_member = np.full(num_components, n, dtype=np.int64)
    np.minimum.at(first_member, component, core_index)
    order = np.argsort(first_member, kind="stable")
    cluster_of_component = np.empty(num_components, dtype=np.int64)
    cluster_of_component[order] = np.arange(num_components)
    labels[core_index] = cluster_of_component[component]

    # border points: the lowest cluster among their core neighbours
    coo = graph.tocoo()
    border_edge = ~core[coo.row] & core[coo.col]
    if border_edge.any():
        rows = coo.row[border_edge]
        cluster = labels[coo.col[border_edge]]
        best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(best, rows, cluster)
        reached = best != np.iinfo(np.int64).max
        labels[reached] = best[reached]
    logger.debug(
        "dbscan: N=%d eps=%.3f clusters=%d noise=%d",
        n,
        eps,
        num_components,
        int((labels == -1).sum()),
    )
    return finish(labels)


def cluster_centroids(
    features: ArrayLike,
    labels: ArrayLike,
    num_clusters: Optional[int] = None,
    *,
    normalize: bool = True,
):
    """Per-cluster mean of the raw features, optionally L2-normalised.

    This is how SDCL initialises its cluster memories (official ``generate_cluster_features``
    in ``cluster_contrast_vit_sysu.py``; see ``docs/association.md``).

    Parameters
    ----------
    features:
        ``[N, D]`` raw features (numpy or torch; float16/bfloat16 computed in float32).
    labels:
        ``[N]`` integer labels in ``[0, num_clusters)`` or ``-1`` (skipped).
    num_clusters:
        Number of clusters ``C``; default ``labels.max() + 1``. Every cluster must have at
        least one sample (an empty cluster raises ``ValueError`` naming it).
    normalize:
        L2-normalise each centroid (what SDCL's memories are initialised with).

    Returns
    -------
    ``[C, D]`` float32 centroids, row ``c`` for label ``c``, in the caller's type and device.
    """
    kind = array_kind(features=features, labels=labels)
    x = as_features(features, "features").to(kind.device)
    y = as_labels(labels, "labels", length=x.shape[0], device=kind.device)
    if bool((y < -1).any()):
        bad = sorted({int(v) for v in y[y < -1][:5]})
        raise ValueError(f"labels must be >= -1 (-1 = unlabelled), got {bad}")
    valid = y >= 0
    if num_clusters is None:
        if not bool(valid.any()):
            raise ValueError(
                "all labels are -1: every label is -1 (outlier), so there is no cluster to average"
            )
        num_clusters = int(y.max()) + 1
    if bool((y >= num_clusters).any()):
        raise ValueError(
            f"labels go up to {int(y.max())} but num_clusters is {num_clusters}; "
            f"labels must be < num_clusters={num_clusters}"
        )
    counts = torch.bincount(y[valid], minlength=num_clusters)
    empty = (counts == 0).nonzero().flatten()
    if empty.numel():
        shown = ", ".join(str(int(c)) for c in empty[:10])
        raise ValueError(
            f"{empty.numel()} of {num_clusters} clusters have no sample (labels {shown}"
            f"{', ...' if empty.numel() > 10 else ''}): clusters {empty[:10].tolist()} have no "
            "member; relabel to consecutive ids 0..C-1 first"
        )
    sums = torch.zeros(num_clusters, x.shape[1], dtype=torch.float32, device=x.device)
    sums.index_add_(0, y[valid], x[valid])
    centroids = sums / counts[:, None].to(sums.dtype)
    if normalize:
        centroids = torch.nn.functional.normalize(centroids, dim=1)
    return kind.to_caller(centroids)
