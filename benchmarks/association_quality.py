"""Cross-modality label accuracy of every association method, under a modality gap.

Synthetic two-modality deep and shallow features with known identities
(:func:`sdcl_toolkit.data.clustered_features.make_two_modality_features`), each modality
clustered with the toolkit's Jaccard + DBSCAN (eps 0.6) exactly as an SDCL epoch does. For
a sweep of modality gap and noise, in two settings -- ``one_cluster`` (camera spread 0.3, 2
cameras: about one cluster per identity and modality) and ``camera_split`` (camera spread
1.2, 4 cameras: identities split into per-camera clusters, and RGB has more clusters than
IR) -- every RGB sample gets an IR cluster from:

- ``cra``: Collaborative Ranking Association (SDCL, CVPR 2024);
- ``deep_only``: CRA with the shallow ranking replaced by the deep one (no agreement);
- ``no_smoothing``: CRA's ranking labels before the neighbour smoothing;
- ``centroid``: the nearest IR cluster centroid (deep + shallow similarity);
- ``hungarian``: RGB clusters matched one-to-one to IR clusters (PGM, CVPR 2023);
- ``ot``: entropic optimal transport of the RGB samples to the IR clusters with a uniform
  prior (Sinkhorn, epsilon 0.05);
- ``<method>+bi``: the same, kept only where the IR -> RGB association agrees.

Reported per method (:func:`sdcl_toolkit.label_quality.association_quality`):
**accuracy** = fraction of associated RGB samples whose IR cluster's majority identity is
their own, and **associated** (coverage) = fraction of RGB samples with a label. Prints a
table, writes ``benchmarks/results/association_quality.json`` and, if matplotlib is
installed, ``association_quality.png`` (accuracy vs modality gap).

    python benchmarks/association_quality.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import RESULTS_DIR, print_table, write_json

from sdcl_toolkit import CRA, dbscan_pseudo_labels, jaccard_distance
from sdcl_toolkit.association import BidirectionalAssociation, make_association
from sdcl_toolkit.data.clustered_features import make_two_modality_features
from sdcl_toolkit.label_quality import association_quality

BASE_METHODS = ("cra", "centroid", "hungarian", "ot")
METHODS = (
    "cra",
    "deep_only",
    "no_smoothing",
    "centroid",
    "hungarian",
    "ot",
    *(f"{m}+bi" for m in BASE_METHODS),
)
SETTINGS = {"one_cluster": (0.3, 2), "camera_split": (1.2, 4)}
"""Setting name -> (camera spread, cameras) of the generated features."""


def own_clusters(deep: np.ndarray, shallow: np.ndarray, eps: float = 0.6) -> np.ndarray:
    z = np.concatenate([deep, shallow], axis=1)
    return dbscan_pseudo_labels(jaccard_distance(z, 30, 6), eps, 4)


Method = Callable[..., np.ndarray]


def methods() -> dict[str, Method]:
    """name -> f(d_rgb, s_rgb, d_ir, s_ir, ir_labels, rgb_labels) -> RGB labels in IR space."""
    cra = CRA(topk=20, smooth_k=5)
    out: dict[str, Method] = {
        "deep_only": lambda d, s, di, si, y, ys: cra(d, d, di, di, y),
        "no_smoothing": lambda d, s, di, si, y, ys: cra.associate(d, s, di, si, y).ranking_labels,
    }
    for name in BASE_METHODS:
        method = make_association(name) if name != "cra" else cra
        both = BidirectionalAssociation(method)
        out[name] = lambda d, s, di, si, y, ys, m=method: m(d, s, di, si, y, ys)
        out[f"{name}+bi"] = lambda d, s, di, si, y, ys, m=both: m(d, s, di, si, y, ys)
    return {name: out[name] for name in METHODS}


def score(assigned, rgb_ids, ir_labels, ir_ids) -> dict[str, float]:
    """Accuracy (majority identity of the assigned IR cluster == own) and associated fraction."""
    quality = association_quality(assigned, rgb_ids, ir_labels, ir_ids)
    return {"accuracy": quality["accuracy"], "associated": quality["coverage"]}


def run(
    gaps: list[float],
    noises: list[float],
    identities: int,
    rgb_per_id: int,
    ir_per_id: int,
    dim: int,
    seeds: list[int],
    settings: tuple[str, ...] = ("one_cluster",),
) -> list[dict[str, Any]]:
    table = []
    fns = methods()
    for setting in settings:
        camera_spread, num_cameras = SETTINGS[setting]
        for noise in noises:
            for gap in gaps:
                acc: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
                clusters: dict[str, list[int]] = {"rgb": [], "ir": []}
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
                    rgb_labels = own_clusters(d_rgb, s_rgb)
                    clusters["ir"].append(int(ir_labels.max()) + 1)
                    clusters["rgb"].append(int(rgb_labels.max()) + 1)
                    for name in METHODS:
                        assigned = np.asarray(
                            fns[name](d_rgb, s_rgb, d_ir, s_ir, ir_labels, rgb_labels)
                        )
                        acc[name].append(
                            score(assigned, f.ids_rgb.numpy(), ir_labels, f.ids_ir.numpy())
                        )
                entry: dict[str, Any] = {
                    "setting": setting,
                    "gap": gap,
                    "noise": noise,
                    "ir_clusters": float(np.mean(clusters["ir"])),
                    "rgb_clusters": float(np.mean(clusters["rgb"])),
                }
                for name in METHODS:
                    entry[name] = {
                        k: float(np.nanmean([a[k] for a in acc[name]]))
                        for k in ("accuracy", "associated")
                    }
                table.append(entry)
                print(
                    f"  {setting} noise={noise} gap={gap}: "
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
    panels = sorted({(e["setting"], e["noise"]) for e in table})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    for ax, (setting, noise) in zip(axes[0], panels):
        rows = [e for e in table if e["setting"] == setting and e["noise"] == noise]
        for name in METHODS:
            ax.plot(
                [e["gap"] for e in rows],
                [e[name]["accuracy"] for e in rows],
                marker="o",
                linestyle="--" if name.endswith("+bi") else "-",
                label=name,
            )
        ax.set_title(f"{setting}, noise {noise}")
        ax.set_xlabel("modality gap")
        ax.set_ylabel("cross-modality label accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
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
        "--settings",
        default="one_cluster,camera_split",
        help="comma list of "
        + ", ".join(SETTINGS)
        + " (camera spread, cameras: "
        + ", ".join(f"{k} {v}" for k, v in SETTINGS.items())
        + ")",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = tuple(s for s in args.settings.split(",") if s)
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    table = run(
        [float(g) for g in args.gaps.split(",")],
        [float(n) for n in args.noises.split(",")],
        args.identities,
        args.rgb_per_id,
        args.ir_per_id,
        args.dim,
        [int(s) for s in args.seeds.split(",")],
        settings,
    )
    rows = [
        [
            e["setting"],
            e["noise"],
            e["gap"],
            f"{e['rgb_clusters']:.0f}/{e['ir_clusters']:.0f}",
            *(f"{e[m]['accuracy']:.3f} / {e[m]['associated']:.2f}" for m in METHODS),
        ]
        for e in table
    ]
    print_table(
        "Cross-modality label accuracy / fraction associated (RGB -> IR clusters)",
        ["setting", "noise", "gap", "clusters RGB/IR", *METHODS],
        rows,
    )
    out = args.out or RESULTS_DIR / "association_quality.json"
    write_json("association_quality", {"args": vars(args) | {"out": str(out)}, "table": table}, out)
    png = plot(table, out.with_suffix(".png"))
    print(f"\nwrote {out}" + (f" and {png}" if png else ""))
    return table


if __name__ == "__main__":
    main()
