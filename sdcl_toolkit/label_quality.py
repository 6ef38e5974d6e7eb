"""Pseudo-label diagnostics against ground-truth identities (never used for training).

Where the identities of the training images are known (the training sets of SYSU-MM01 and
RegDB, the generated data), these numbers say how good an epoch's pseudo-labels are. All
are O(N log N) on the host (one ``numpy.unique`` over (cluster, identity) pairs); inputs
are numpy arrays or torch tensors on any device; results are plain Python numbers.

Per modality, over the clustered samples (label ``!= -1``) with contingency counts
``n[c, k]`` (samples of cluster ``c`` with identity ``k``), ``a_c = sum_k n[c, k]``,
``b_k = sum_c n[c, k]``, ``n = sum n[c, k]``:

* **purity** ``= sum_c max_k n[c, k] / n``;
* **ARI**, the adjusted Rand index (Hubert & Arabie, 1985), from the pair counts
  ``tp = sum n[c, k]^2 - n``, ``fp = sum_k b_k^2 - sum n^2``, ``fn = sum_c a_c^2 - sum n^2``,
  ``tn = n^2 - fp - fn - sum n^2``:
  ``ARI = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn))`` (1 if
  ``fp = fn = 0``), as scikit-learn's ``adjusted_rand_score``;
* **NMI**, normalised mutual information with the arithmetic mean of the entropies,
  ``NMI = I(C; K) / ((H(C) + H(K)) / 2)`` (natural logarithms; 1 if both sides have one
  class, 0 if ``I = 0``), as scikit-learn's ``normalized_mutual_info_score``;
* **clusters** and **identities** (among the clustered samples), and the
  **outlier fraction** (label -1 over all samples).

For a cross-modality association of source samples to target clusters:

* **accuracy** = fraction of associated source samples (label ``!= -1``) whose target
  cluster's majority identity (ties: the smallest identity) is their own identity;
* **coverage** = fraction of source samples that are associated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

__all__ = [
    "cluster_purity",
    "adjusted_rand_index",
    "normalized_mutual_info",
    "clustering_quality",
    "association_quality",
    "pseudo_label_quality",
    "read_label_quality",
    "plot_label_quality",
]

Labels = Union[np.ndarray, torch.Tensor]


def _host(values: Labels, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if not isinstance(values, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or a torch.Tensor, got {type(values)}")
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    if values.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {values.dtype}")
    return values.astype(np.int64, copy=False)


def _pair(labels: Labels, ids: Labels) -> tuple[np.ndarray, np.ndarray]:
    y, t = _host(labels, "labels"), _host(ids, "ids")
    if y.shape != t.shape:
        raise ValueError(f"labels has {y.shape[0]} entries but ids has {t.shape[0]}")
    return y, t


class _Contingency:
    """Sparse contingency table of the clustered samples (cluster ``c``, identity ``k``)."""

    def __init__(self, labels: np.ndarray, ids: np.ndarray) -> None:
        keep = labels >= 0
        _, cluster = np.unique(labels[keep], return_inverse=True)
        _, identity = np.unique(ids[keep], return_inverse=True)
        self.n = int(keep.sum())
        self.num_clusters = int(cluster.max()) + 1 if self.n else 0
        self.num_ids = int(identity.max()) + 1 if self.n else 0
        codes, counts = np.unique(cluster * max(self.num_ids, 1) + identity, return_counts=True)
        self.cell_cluster = codes // max(self.num_ids, 1)
        self.cell_id = codes % max(self.num_ids, 1)
        self.counts = counts.astype(np.int64)
        self.cluster_sizes = np.bincount(cluster, minlength=self.num_clusters)
        self.id_sizes = np.bincount(identity, minlength=self.num_ids)


def cluster_purity(labels: Labels, ids: Labels) -> float:
    """``sum_c max_k n[c, k] / n`` over clustered samples (NaN if none is clustered)."""
    table = _Contingency(*_pair(labels, ids))
    if table.n == 0:
        return math.nan
    best = np.zeros(table.num_clusters, dtype=np.int64)
    np.maximum.at(best, table.cell_cluster, table.counts)
    return float(best.sum()) / table.n


def _ari(table: _Contingency) -> float:
    if table.n == 0:
        return math.nan
    n = table.n
    sum_squares = int((table.counts**2).sum())
    tp = sum_squares - n
    fp = int((table.id_sizes**2).sum()) - sum_squares
    fn = int((table.cluster_sizes**2).sum()) - sum_squares
    tn = n * n - fp - fn - sum_squares
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def adjusted_rand_index(labels: Labels, ids: Labels) -> float:
    """Adjusted Rand index of the clustered samples' labels vs their identities."""
    return _ari(_Contingency(*_pair(labels, ids)))


def _entropy(sizes: np.ndarray) -> float:
    sizes = sizes[sizes > 0].astype(np.float64)
    if sizes.size <= 1:
        return 0.0
    total = sizes.sum()
    return float(-np.sum((sizes / total) * (np.log(sizes) - math.log(total))))


def _nmi(table: _Contingency) -> float:
    if table.n == 0:
        return math.nan
    if table.num_clusters == table.num_ids == 1:
        return 1.0
    if table.num_clusters == 1 or table.num_ids == 1:
        return 0.0
    total = float(table.n)
    share = table.counts / total
    outer = table.cluster_sizes[table.cell_cluster].astype(np.float64) * table.id_sizes[
        table.cell_id
    ].astype(np.float64)
    terms = share * (np.log(table.counts) - math.log(total)) + share * (
        -np.log(outer) + 2 * math.log(total)
    )
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    mi = max(float(terms.sum()), 0.0)
    if mi == 0.0:
        return 0.0
    mean_entropy = (_entropy(table.cluster_sizes) + _entropy(table.id_sizes)) / 2
    return mi / max(mean_entropy, float(np.finfo(np.float64).eps))


def normalized_mutual_info(labels: Labels, ids: Labels) -> float:
    """Normalised mutual information (arithmetic mean) of the clustered samples."""
    return _nmi(_Contingency(*_pair(labels, ids)))


def clustering_quality(labels: Labels, ids: Labels) -> dict[str, float]:
    """``{"purity", "ari", "nmi", "clusters", "identities", "outlier_fraction"}`` of one
    modality's cluster labels (``[N]``, -1 = outlier) against identities (``[N]``).

    ``identities`` counts the distinct identities of all ``N`` samples (how many clusters
    a perfect clustering would find); purity/ARI/NMI are over the clustered samples.
    """
    y, t = _pair(labels, ids)
    table = _Contingency(y, t)
    purity = math.nan
    if table.n:
        best = np.zeros(table.num_clusters, dtype=np.int64)
        np.maximum.at(best, table.cell_cluster, table.counts)
        purity = float(best.sum()) / table.n
    return {
        "purity": purity,
        "ari": _ari(table),
        "nmi": _nmi(table),
        "clusters": table.num_clusters,
        "identities": int(np.unique(t).size),
        "outlier_fraction": float((y < 0).mean()) if y.size else math.nan,
    }


def association_quality(
    associated: Labels, src_ids: Labels, tgt_labels: Labels, tgt_ids: Labels
) -> dict[str, float]:
    """``{"accuracy", "coverage"}`` of source samples associated with target clusters.

    Parameters
    ----------
    associated: ``[N_src]`` target-cluster label per source sample (-1 = unassigned).
    src_ids: ``[N_src]`` true identities of the source samples.
    tgt_labels: ``[N_tgt]`` target cluster labels (-1 = outlier).
    tgt_ids: ``[N_tgt]`` true identities of the target samples.
    """
    u = _host(associated, "associated")
    s = _host(src_ids, "src_ids")
    y, t = _pair(tgt_labels, tgt_ids)
    if u.shape != s.shape:
        raise ValueError(f"associated has {u.shape[0]} entries but src_ids has {s.shape[0]}")
    keep = y >= 0
    codes_c, codes_k = y[keep], t[keep]
    # majority identity per target cluster: sort cells by (cluster, -count, identity)
    cells, counts = np.unique(np.stack([codes_c, codes_k]), axis=1, return_counts=True)
    order = np.lexsort((cells[1], -counts, cells[0]))
    cells = cells[:, order]
    first = np.ones(cells.shape[1], dtype=bool)
    first[1:] = cells[0, 1:] != cells[0, :-1]
    clusters, majority = cells[0, first], cells[1, first]
    assigned = u >= 0
    coverage = float(assigned.mean()) if u.size else math.nan
    if not assigned.any():
        return {"accuracy": math.nan, "coverage": coverage}
    chosen = u[assigned]
    if clusters.size == 0:
        correct = np.zeros(chosen.size, dtype=bool)
    else:
        where = np.minimum(np.searchsorted(clusters, chosen), clusters.size - 1)
        correct = (clusters[where] == chosen) & (majority[where] == s[assigned])
    return {"accuracy": float(correct.mean()), "coverage": coverage}


def pseudo_label_quality(
    rgb_labels: Labels,
    rgb_ids: Labels,
    ir_labels: Labels,
    ir_ids: Labels,
    associated: Optional[Labels] = None,
) -> dict[str, Any]:
    """One epoch's diagnostics: ``{"rgb": ..., "ir": ...}`` of :func:`clustering_quality`
    and, when ``associated`` (RGB -> IR-cluster labels, stage 2) is given, ``"association":``
    :func:`association_quality` against the IR clusters ``ir_labels``."""
    out: dict[str, Any] = {
        "rgb": clustering_quality(rgb_labels, rgb_ids),
        "ir": clustering_quality(ir_labels, ir_ids),
    }
    if associated is not None:
        out["association"] = association_quality(associated, rgb_ids, ir_labels, ir_ids)
    return out


def read_label_quality(log_path: Union[str, Path]) -> list[dict[str, Any]]:
    """The ``{"epoch", "stage", "label_quality"}`` records of a run's ``log.jsonl``."""
    records = []
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("event") == "epoch" and "label_quality" in event:
            records.append(
                {
                    "epoch": event["epoch"],
                    "stage": event.get("stage"),
                    "label_quality": event["label_quality"],
                }
            )
    return records


def plot_label_quality(records: list[dict[str, Any]], path: Union[str, Path]) -> Path:
    """Plot the diagnostics over epochs (``records`` as from :func:`read_label_quality`)
    into ``path`` (PNG/PDF/SVG by suffix). Needs matplotlib (``pip install
    'sdcl-toolkit[plot]'``); raises ``ImportError`` saying so otherwise."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as error:
        raise ImportError(
            "plot_label_quality needs matplotlib: pip install 'sdcl-toolkit[plot]'"
        ) from error
    if not records:
        raise ValueError("no records with label_quality to plot")

    def series(modality: str, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for record in records:
            section = record["label_quality"].get(modality)
            if section is not None and key in section:
                value = section[key]  # None: NaN written to JSON
                xs.append(record["epoch"])
                ys.append(math.nan if value is None else float(value))
        return xs, ys

    panels = [
        ("purity", "cluster purity"),
        ("ari", "adjusted Rand index"),
        ("nmi", "normalised mutual information"),
        ("clusters", "clusters (dashed: identities)"),
        ("outlier_fraction", "outlier fraction"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    epochs = [record["epoch"] for record in records]
    for ax, (key, title) in zip(axes.flat, panels):
        for modality in ("rgb", "ir"):
            ax.plot(*series(modality, key), marker="o", label=modality.upper())
            if key == "clusters":
                ax.plot(*series(modality, "identities"), linestyle="--", color="grey")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    ax = axes.flat[5]
    for key in ("accuracy", "coverage"):
        ax.plot(*series("association", key), marker="o", label=key)
    ax.set_title("RGB -> IR association")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_xlim(min(epochs) - 0.3, max(epochs) + 0.3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
