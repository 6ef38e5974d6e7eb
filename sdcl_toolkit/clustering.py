"""DBSCAN pseudo-labels on a sparse distance graph, and cluster centroids.

``dbscan_pseudo_labels`` gives the labels scikit-learn's
``DBSCAN(eps, min_samples, metric="precomputed").fit_predict`` gives on the same distances
(identical labels, not only up to renaming), computed without Python loops:

- neighbours of ``i``: every ``j`` with ``d(i, j) <= eps`` (``i`` itself when
  ``d(i, i) <= eps``; an absent diagonal entry of a sparse matrix counts as 0);
- core points: at least ``min_samples`` neighbours;
- clusters: connected components of the core points (edges ``d <= eps``), numbered in the
  order of their lowest core index (scikit-learn grows clusters from ``i = 0, 1, ...``);
- border points (non-core with a core neighbour) join the lowest-numbered adjacent
  cluster (the cluster scikit-learn's depth-first expansion reaches first); the rest are
  noise, ``-1``.

``d <= eps`` is evaluated in the input's floating dtype (``eps`` rounded to it), as NumPy
and therefore scikit-learn do: float64 distances are never rounded to float32.
Pairs absent from a sparse matrix have distance ``missing_distance`` (1.0 for the Jaccard
distances of :func:`sdcl_toolkit.jaccard_distance`, which stores every pair below 1), so
the result equals DBSCAN on the dense matrix the official code builds; ``eps`` must then
be below ``missing_distance`` (else every absent pair would be a neighbour: pass the dense
matrix instead). The neighbour relation must be symmetric (distances are).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch

from ._arrays import ArrayLike, array_kind, as_features, as_labels
from ._validation import check_int, check_real
from .recipe import OFFICIAL_SYSU

__all__ = ["dbscan_pseudo_labels", "cluster_centroids"]

logger = logging.getLogger(__name__)


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _check_values(values: Any, where: str) -> None:
    """Reject non-real dtypes, NaN/inf and negative distances (numpy or torch values)."""
    if isinstance(values, torch.Tensor):
        if values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f"distance must hold real numbers, got dtype {values.dtype}")
        finite = bool(torch.isfinite(values).all()) if values.is_floating_point() else True
        negative = bool((values < 0).any()) if values.numel() else False
    else:
        if values.dtype.kind not in "iuf":
            raise TypeError(f"distance must hold real numbers, got dtype {values.dtype}")
        finite = bool(np.isfinite(values).all())
        negative = bool((values < 0).any()) if values.size else False
    if not finite:
        raise ValueError(f"distance contains NaN or inf{where}")
    if negative:
        raise ValueError(f"distance contains negative values{where}; distances must be >= 0")


def _within(values: Any, eps: float) -> np.ndarray:
    """``values <= eps`` in the values' floating dtype (integers: float64), as numpy bool."""
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point():
            values = values.to(torch.float64)
        limit = torch.tensor(eps, dtype=values.dtype, device=values.device)
        return (values <= limit).cpu().numpy()
    array = values if values.dtype.kind == "f" else values.astype(np.float64)
    with np.errstate(over="ignore"):
        threshold = np.asarray(eps, dtype=array.dtype)
    return array <= threshold


def _neighbour_graph(distance: Any, eps: float, missing_distance: float):
    """Return ``(graph, caller_is_numpy, device)``; ``graph`` a scipy CSR int8 0/1 matrix of
    the relation ``d(i, j) <= eps``."""
    import scipy.sparse as sp

    if sp.issparse(distance):
        matrix = sp.csr_matrix(distance)
        shape, is_numpy, device = matrix.shape, True, torch.device("cpu")
        values: Any = matrix.data
        structure = (matrix.indices, matrix.indptr)
        dense = False
    elif isinstance(distance, torch.Tensor):
        is_numpy, device = False, distance.device
        dense = distance.layout == torch.strided
        if not dense:
            if distance.dim() != 2:
                raise ValueError(f"distance must be 2-D, got shape {tuple(distance.shape)}")
            csr = (
                distance.detach().to_sparse_csr()
                if distance.layout != torch.sparse_csr
                else (distance.detach())
            )
            shape = tuple(csr.shape)
            values = csr.values()
            structure = (csr.col_indices().cpu().numpy(), csr.crow_indices().cpu().numpy())
        else:
            values = distance.detach()
            shape = tuple(values.shape)
    elif isinstance(distance, np.ndarray):
        is_numpy, device, dense = True, torch.device("cpu"), True
        values = distance
        shape = distance.shape
    else:
        raise TypeError(
            "distance must be a scipy sparse matrix, a torch tensor (sparse or dense) or a "
            f"numpy array, got {_type_name(distance)}"
        )
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"distance must be a square [N, N] matrix, got shape {tuple(shape)}")
    n = shape[0]
    if n == 0:
        raise ValueError("distance is empty (0 samples)")
    _check_values(values, "" if dense else " among its stored values")

    if dense:
        rows, cols = np.nonzero(_within(values, eps))
        graph = sp.csr_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(n, n))
        return graph, is_numpy, device
    if eps >= missing_distance:
        raise ValueError(
            f"eps={eps} must be smaller than missing_distance={missing_distance}: with a "
            "sparse matrix every absent pair would be a neighbour. Pass the dense matrix, "
            "or missing_distance=math.inf for scikit-learn's sparse semantics"
        )
    indices, indptr = (np.array(a, copy=True) for a in structure)  # never alter the input
    within = _within(values, eps).astype(np.int8)
    graph = sp.csr_matrix((within, indices, indptr), shape=(n, n))
    # the diagonal: stored entries are compared like the others, absent ones are 0 <= eps
    diagonal = graph.diagonal()
    stored = sp.csr_matrix((np.ones_like(within), indices, indptr), shape=(n, n)).diagonal()
    graph.setdiag(np.where(stored > 0, diagonal, 1).astype(np.int8))
    graph = graph.tocsr()
    graph.eliminate_zeros()
    return graph, is_numpy, device


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
        ``[N, N]`` non-negative symmetric distances: a scipy sparse matrix, a torch sparse
        (CSR/COO) tensor on any device, or a dense numpy array / torch tensor (float16 to
        float64, or integers). For sparse input, absent pairs have distance
        ``missing_distance`` and absent diagonal entries distance 0.
    eps:
        Neighbourhood radius, ``eps > 0`` (SDCL: 0.6 on SYSU-MM01, 0.3 on RegDB); for sparse
        input ``eps < missing_distance``.
    min_samples:
        Neighbours (self included) that make a core point (SDCL: 4).
    missing_distance:
        Distance of pairs not stored in a sparse matrix (1.0 for Jaccard distances; use
        ``math.inf`` for scikit-learn's sparse semantics).

    Returns
    -------
    ``[N]`` int64 labels ``0..C-1`` or ``-1``: numpy for numpy/scipy input, a torch tensor on
    the input's device for torch input. Identical to scikit-learn's ``DBSCAN`` labels.

    Raises
    ------
    TypeError
        ``distance`` of another type, or complex/bool values; non-real ``eps`` /
        ``missing_distance``; non-integer ``min_samples``.
    ValueError
        ``eps <= 0``, NaN or inf, ``min_samples < 1``, non-square or empty ``distance``, NaN/inf
        or negative distances, ``eps >= missing_distance`` for sparse input, or an
        asymmetric neighbour relation.
    """
    from scipy.sparse.csgraph import connected_components

    eps = check_real(eps, "eps", minimum=0.0, min_inclusive=False)
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    missing_distance = check_real(
        missing_distance, "missing_distance", minimum=0.0, min_inclusive=False, allow_inf=True
    )
    graph, is_numpy, device = _neighbour_graph(distance, eps, missing_distance)
    n = graph.shape[0]
    if (graph != graph.T).nnz:
        raise ValueError(
            "distance must be symmetric: d(i, j) <= eps and d(j, i) <= eps disagree for "
            f"{(graph != graph.T).nnz} pairs"
        )

    neighbour_counts = np.diff(graph.indptr)
    core = neighbour_counts >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    num_components = 0
    if core.any():
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
        "dbscan: N=%d eps=%s clusters=%d noise=%d",
        n,
        f"{eps:.3f}",
        num_components,
        int((labels == -1).sum()),
    )
    return labels if is_numpy else torch.from_numpy(labels).to(device)


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
