"""What each part of CRA buys: cross-modality label accuracy under a modality gap.

Synthetic two-modality deep and shallow features with known identities
(:func:`sdcl_toolkit.data.clustered_features.make_two_modality_features`), IR clustered
with the toolkit's Jaccard + DBSCAN (eps 0.6) exactly as an SDCL epoch does. For a sweep of
modality gap and noise, every RGB sample gets an IR cluster from:

- ``cra``: full Collaborative Ranking Association (deep x shallow agreement + smoothing);
- ``deep_only``: CRA with the shallow ranking replaced by the deep one (no agreement);
- ``no_smoothing``: CRA's ranking labels before the neighbour smoothing;
- ``nearest_centroid``: the IR cluster whose centroid is most similar;
- ``hungarian``: RGB clusters matched one-to-one to IR clusters by centroid similarity
  (``scipy.optimize.linear_sum_assignment``, the style of PGM, CVPR 2023); samples inherit
  their cluster's match.

Reported per method: **accuracy** = fraction of associated RGB samples whose IR cluster's
majority identity is their own, and **associated** = fraction of RGB samples with a label.
Prints a table, writes ``benchmarks/results/association_quality.json`` and, if matplotlib
is installed, ``association_quality.png`` (accuracy vs modality gap).

    python benchmarks/association_quality.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import RESULTS_DIR, print_table, write_json

from sdcl_toolkit import CRA, cluster_centroids, dbscan_pseudo_labels, jaccard_distance
from sdcl_toolkit.data.clustered_features import make_two_modality_features

METHODS = ("cra", "deep_only", "no_smoothing", "nearest_centroid", "hungarian")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _joint(deep: np.ndarray, shallow: np.ndarray) -> np.ndarray:
    return np.concatenate([_unit(deep), _unit(shallow)], axis=1)


def own_clusters(deep: np.ndarray, shallow: np.ndarray, eps: float = 0.6) -> np.ndarray:
    z = np.concatenate([deep, shallow], axis=1)
    return dbscan_pseudo_labels(jaccard_distance(z, 30, 6), eps, 4)


def nearest_centroid(d_rgb, s_rgb, d_ir, s_ir, ir_labels) -> np.ndarray:
    centroids = cluster_centroids(_joint(d_ir, s_ir), ir_labels)
    return np.argmax(_joint(d_rgb, s_rgb) @ centroids.T, axis=1)


def hungarian(d_rgb, s_rgb, d_ir, s_ir, ir_labels) -> np.ndarray:
    rgb_labels = own_clusters(d_rgb, s_rgb)
    out = np.full(len(d_rgb), -1, dtype=np.int64)
    if rgb_labels.max() < 0:
        return out
    rgb_c = cluster_centroids(_joint(d_rgb, s_rgb), rgb_labels)
    ir_c = cluster_centroids(_joint(d_ir, s_ir), ir_labels)
    rows, cols = linear_sum_assignment(-(rgb_c @ ir_c.T))
    match = np.full(rgb_c.shape[0], -1, dtype=np.int64)
    match[rows] = cols
    clustered = rgb_labels >= 0
    out[clustered] = match[rgb_labels[clustered]]
    return out


def methods() -> dict[str, Callable[..., np.ndarray]]:
    cra = CRA(topk=20, smooth_k=5)
    return {
        "cra": lambda d, s, di, si, y: cra(d, s, di, si, y),
        "deep_only": lambda d, s, di, si, y: cra(d, d, di, di, y),
        "no_smoothing": lambda d, s, di, si, y: cra.associate(d, s, di, si, y).ranking_labels,
        "nearest_centroid": nearest_centroid,
        "hungarian": hungarian,
    }


def score(
    assigned: np.ndarray, rgb_ids: np.ndarray, ir_labels: np.ndarray, ir_ids: np.ndarray
) -> dict[str, float]:
    """Accuracy (majority identity of the assigned IR cluster == own) and associated fraction."""
    majority = np.full(ir_labels.max() + 1, -2, dtype=np.int64)
    for c in range(ir_labels.max() + 1):
        majority[c] = np.bincount(ir_ids[ir_labels == c]).argmax()
    associated = assigned >= 0
    correct = majority[assigned[associated]] == rgb_ids[associated]
    return {
        "accuracy": float(correct.mean()) if associated.any() else float("nan"),
        "associated": float(associated.mean()),
    }


def run(
    gaps: list[float],
    noises: list[float],
    identities: int,
    rgb_per_id: int,
    ir_per_id: int,
    dim: int,
    seeds: list[int],
    camera_spread: float = 0.3,
    num_cameras: int = 2,
) -> list[dict[str, Any]]:
    table = []
    fns = methods()
    for noise in noises:
        for gap in gaps:
            acc: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
            clusters = []
            for seed in seeds:
                f = make_two_modality_features(
                    identities,
                    rgb_per_id,
                    ir_per_id,
                    dim=dim,
                    modality_gap=gap,
                    noise=noise,
                    seed=seed,
                    camera_spread=camera_spread,
                    num_cameras=num_cameras,
                )
                d_rgb, s_rgb = f.deep_rgb.numpy(), f.shallow_rgb.numpy()
                d_ir, s_ir = f.deep_ir.numpy(), f.shallow_ir.numpy()
                ir_labels = own_clusters(d_ir, s_ir)
                clusters.append(int(ir_labels.max()) + 1)
                for name in METHODS:
                    assigned = np.asarray(fns[name](d_rgb, s_rgb, d_ir, s_ir, ir_labels))
                    acc[name].append(
                        score(assigned, f.ids_rgb.numpy(), ir_labels, f.ids_ir.numpy())
                    )
            entry: dict[str, Any] = {
                "gap": gap,
                "noise": noise,
                "ir_clusters": float(np.mean(clusters)),
            }
            for name in METHODS:
                entry[name] = {
                    k: float(np.mean([a[k] for a in acc[name]])) for k in ("accuracy", "associated")
                }
            table.append(entry)
            print(
                f"  noise={noise} gap={gap}: "
                + ", ".join(f"{m} {entry[m]['accuracy']:.3f}" for m in METHODS),
                flush=True,
            )
    return table


def plot(table: list[dict[str, Any]], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'sdcl-toolkit[bench]')")
        return None
    noises = sorted({e["noise"] for e in table})
    fig, axes = plt.subplots(1, len(noises), figsize=(5 * len(noises), 4), squeeze=False)
    for ax, noise in zip(axes[0], noises):
        rows = [e for e in table if e["noise"] == noise]
        for name in METHODS:
            ax.plot(
                [e["gap"] for e in rows],
                [e[name]["accuracy"] for e in rows],
                marker="o",
                label=name,
            )
        ax.set_title(f"noise {noise}")
        ax.set_xlabel("modality gap")
        ax.set_ylabel("cross-modality label accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def main(argv: Optional[list[str]] = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gaps", default="0,0.8,1.6,2.4")
    parser.add_argument("--noises", default="1.0,1.4")
    parser.add_argument("--identities", type=int, default=80)
    parser.add_argument("--rgb-per-id", type=int, default=16)
    parser.add_argument("--ir-per-id", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--camera-spread",
        type=float,
        default=0.3,
        help="per-(identity, camera) offset; large values split identities "
        "into several clusters per modality",
    )
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    table = run(
        [float(g) for g in args.gaps.split(",")],
        [float(n) for n in args.noises.split(",")],
        args.identities,
        args.rgb_per_id,
        args.ir_per_id,
        args.dim,
        [int(s) for s in args.seeds.split(",")],
        args.camera_spread,
        args.cameras,
    )
    rows = [
        [
            e["noise"],
            e["gap"],
            f"{e['ir_clusters']:.0f}",
            *(f"{e[m]['accuracy']:.3f} / {e[m]['associated']:.2f}" for m in METHODS),
        ]
        for e in table
    ]
    print_table(
        "Cross-modality label accuracy / fraction associated (RGB -> IR clusters)",
        ["noise", "gap", "IR clusters", *METHODS],
        rows,
    )
    out = args.out or RESULTS_DIR / "association_quality.json"
    write_json("association_quality", {"args": vars(args) | {"out": str(out)}, "table": table}, out)
    png = plot(table, out.with_suffix(".png"))
    print(f"\nwrote {out}" + (f" and {png}" if png else ""))
    return table


if __name__ == "__main__":
    main()
