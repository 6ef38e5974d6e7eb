"""Speed and memory of the pseudo-label association: toolkit vs kNN floor vs dense baseline.

Runs, in one process and on one device:

1. **Jaccard + DBSCAN at SYSU-MM01 size**: RGB 22,258 and IR 11,909 clustered 1536-d
   features, k1=30, k2=6, eps=0.6, per stage (kNN, reciprocal sets + expansion, weights,
   query expansion, Jaccard, DBSCAN): time and peak memory of
   - the toolkit (``sdcl_toolkit.jaccard_distance`` + ``dbscan_pseudo_labels``),
   - the exact float32 kNN searches alone (the floor any exact method pays),
   - a dense baseline following the official algorithm's data layout (dense N x N arrays,
     a Python loop per row, scikit-learn DBSCAN on the dense matrix).
2. **Size sweep** (default 2k, 10k, 34k, 100k samples; ``--sizes ...,200000`` for 200k):
   toolkit vs floor (vs dense where it fits in memory; ``--floor-max-n`` skips the floor
   above a size).
3. **Stage-2 pseudo-labelling step at SYSU-MM01 size** (768-d deep + 768-d shallow per
   modality: both Jaccards, both DBSCANs, CRA, shared centroids) vs the kNN searches it needs.

Prints one table per part with ratios and writes everything to
``benchmarks/results/association_speed.json``.

    python benchmarks/association_speed.py                  # everything (~30 min on 2 cores)
    python benchmarks/association_speed.py --quick          # small sizes, a smoke run
    python benchmarks/association_speed.py --device cuda    # the same on a GPU
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import StagePeaks, environment, fmt, measure, print_table, write_json

from sdcl_toolkit import PseudoLabeler, dbscan_pseudo_labels
from sdcl_toolkit._timing import set_stage_observer
from sdcl_toolkit.data.clustered_features import make_clustered_features, make_two_modality_features
from sdcl_toolkit.knn_search import default_chunk_size, knn_tensors
from sdcl_toolkit.reranking import JACCARD_STAGES, jaccard_distance_tensors

SYSU_RGB, SYSU_IR, SYSU_IDS = 22258, 11909, 395
STAGES = (*JACCARD_STAGES, "dbscan")


# ----------------------------------------------------------------------------- dense baseline


def dense_baseline(x: torch.Tensor, k1: int, k2: int, eps: float) -> dict[str, dict[str, Any]]:
    """The official algorithm's data layout: dense N x N float32 arrays, a loop per row.

    Written here for comparison only (SPEC section 4); uses the same exact kNN search.
    """
    from sklearn.cluster import DBSCAN

    out: dict[str, dict[str, Any]] = {}
    device = torch.device("cpu")
    n = x.shape[0]
    x = x.cpu()
    with measure(device, out, "knn"):
        _, rank_t = knn_tensors(x, x, k1, candidates="float32")
        rank = rank_t.numpy()

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, : k + 1]
        backward = rank[forward, : k + 1]
        return forward[np.where(backward == i)[0]]

    half = int(round(k1 / 2))
    with measure(device, out, "reciprocal_expansion"):
        sets_full = [reciprocal(i, k1) for i in range(n)]
        sets_half = [reciprocal(i, half) for i in range(n)]
        expanded = []
        for i in range(n):
            r = sets_full[i]
            e = r
            for c in r:
                rc = sets_half[c]
                if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                    e = np.append(e, rc)
            expanded.append(np.unique(e))
    with measure(device, out, "weights"):
        v = np.zeros((n, n), dtype=np.float32)
        for i in range(n):
            e = expanded[i]
            dist = 2 - 2 * (x[i : i + 1] @ x[e].T)
            v[i, e] = torch.softmax(-dist, dim=1).view(-1).numpy()
    with measure(device, out, "query_expansion"):
        if k2 != 1:
            v_qe = np.zeros_like(v)
            for i in range(n):
                v_qe[i] = v[rank[i, :k2]].mean(0)
            v = v_qe
            del v_qe
    with measure(device, out, "jaccard"):
        inverted = [np.where(v[:, i] != 0)[0] for i in range(n)]
        jaccard = np.zeros((n, n), dtype=np.float32)
        for i in range(n):
            acc = np.zeros(n, dtype=np.float32)
            support = np.where(v[i] != 0)[0]
            for col in support:
                rows = inverted[col]
                acc[rows] += np.minimum(v[i, col], v[rows, col])
            jaccard[i] = 1 - acc / (2 - acc)
        jaccard[jaccard < 0] = 0
        del v, inverted
    with measure(device, out, "dbscan"):
        DBSCAN(eps=eps, min_samples=4, metric="precomputed", n_jobs=-1).fit_predict(jaccard)
    del jaccard
    gc.collect()
    return out


def dense_fits(n: int, limit_gb: float) -> bool:
    return 3 * n * n * 4 / 2**30 <= limit_gb


# ----------------------------------------------------------------------------- toolkit runs


def toolkit_run(x: torch.Tensor, k1: int, k2: int, eps: float, candidates: str) -> dict[str, Any]:
    device = x.device
    peaks = StagePeaks(device)
    previous = set_stage_observer(peaks)
    timings: dict[str, float] = {}
    whole: dict[str, Any] = {}
    try:
        with measure(device, whole, "total"):
            distance = jaccard_distance_tensors(x, k1, k2, candidates=candidates, timings=timings)
            with measure(device, whole, "dbscan"):
                labels = dbscan_pseudo_labels(distance.to_scipy(), eps, 4)
    finally:
        set_stage_observer(previous)
    stages = {
        name: {"seconds": timings.get(name, 0.0), "peak_mb": peaks.peak_mb.get(name)}
        for name in JACCARD_STAGES
    }
    stages["dbscan"] = whole["dbscan"]
    # each stage observer resets the process peak, so the run's peak is the largest of them
    peaks = [whole["total"]["peak_mb"], *(s["peak_mb"] for s in stages.values())]
    return {
        "stages": stages,
        "seconds": whole["total"]["seconds"],
        "peak_mb": max(p for p in peaks if p is not None),
        "nnz_per_row": distance.nnz / x.shape[0],
        "clusters": int(labels.max()) + 1,
        "outliers": int((labels == -1).sum()),
    }


def plain_knn(queries: torch.Tensor, keys: torch.Tensor, k: int) -> None:
    """The floor: chunked float32 ``queries @ keys.T`` + ``topk``, nothing else."""
    chunk = default_chunk_size(keys.shape[0])
    for start in range(0, queries.shape[0], chunk):
        torch.topk(queries[start : start + chunk] @ keys.T, k, dim=1)


def floor_run(x: torch.Tensor, k: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with measure(x.device, out, "knn"):
        plain_knn(x, x, k)
    return out["knn"]


def size_title(rgb: int, ir: int) -> str:
    """How table titles name the Part 1 / Part 3 sizes: "SYSU-MM01 size" only when they are."""
    if (rgb, ir) == (SYSU_RGB, SYSU_IR):
        return f"SYSU-MM01 size (RGB {rgb} + IR {ir})"
    return f"RGB {rgb} + IR {ir} (SYSU-MM01 is {SYSU_RGB} + {SYSU_IR})"


def clustered(n: int, dim: int, seed: int, device: torch.device) -> torch.Tensor:
    ids = max(2, round(n * SYSU_IDS / SYSU_RGB))
    return make_clustered_features(n, ids, dim, seed=seed).features.to(device)


# ----------------------------------------------------------------------------- parts


def part_sysu(args, device) -> dict[str, Any]:
    sizes = {"rgb": args.sysu_rgb, "ir": args.sysu_ir}
    results: dict[str, Any] = {"sizes": sizes, "k1": 30, "k2": 6, "eps": 0.6, "dim": 1536}
    for modality, n in sizes.items():
        x = clustered(n, 1536, seed=1 if modality == "rgb" else 2, device=device)
        print(f"  [{modality}] N={n}: toolkit ...", flush=True)
        results[f"toolkit_{modality}"] = toolkit_run(x, 30, 6, 0.6, args.candidates)
        print(f"  [{modality}] N={n}: kNN floor ...", flush=True)
        results[f"floor_{modality}"] = floor_run(x, 30)
        if args.dense and device.type == "cpu" and dense_fits(n, args.dense_max_gb):
            print(f"  [{modality}] N={n}: dense baseline ...", flush=True)
            results[f"dense_{modality}"] = dense_baseline(x, 30, 6, 0.6)
        del x
        gc.collect()

    rows = []
    have_dense = all(f"dense_{m}" in results for m in sizes)
    totals = {"toolkit": 0.0, "dense": 0.0}
    peaks = {"toolkit": 0.0, "dense": 0.0}
    for stage in STAGES:
        t = sum(results[f"toolkit_{m}"]["stages"][stage]["seconds"] for m in sizes)
        tp = max((results[f"toolkit_{m}"]["stages"][stage]["peak_mb"] or 0) for m in sizes)
        totals["toolkit"] += t
        peaks["toolkit"] = max(peaks["toolkit"], tp)
        row = [stage, fmt(t), fmt(tp, 0)]
        if have_dense:
            d = sum(results[f"dense_{m}"][stage]["seconds"] for m in sizes)
            dp = max(results[f"dense_{m}"][stage]["peak_mb"] or 0 for m in sizes)
            totals["dense"] += d
            peaks["dense"] = max(peaks["dense"], dp)
            row += [fmt(d), fmt(dp, 0)]
        rows.append(row)
    floor = sum(results[f"floor_{m}"]["seconds"] for m in sizes)
    floor_peak = max(results[f"floor_{m}"]["peak_mb"] or 0 for m in sizes)
    wall = sum(results[f"toolkit_{m}"]["seconds"] for m in sizes)
    rows.append(
        ["total (sum of stages)", fmt(totals["toolkit"]), fmt(peaks["toolkit"], 0)]
        + ([fmt(totals["dense"]), fmt(peaks["dense"], 0)] if have_dense else [])
    )
    rows.append(
        ["kNN floor (float32 exact)", fmt(floor), fmt(floor_peak, 0)]
        + (["", ""] if have_dense else [])
    )
    header = ["stage", "toolkit s", "peak MB"] + (["dense s", "peak MB"] if have_dense else [])
    print_table(
        f"Jaccard + DBSCAN, {size_title(sizes['rgb'], sizes['ir'])}, 1536-d, "
        f"k1=30, k2=6, eps=0.6, on {device}, candidates={args.candidates}",
        header,
        rows,
    )
    summary = {
        "toolkit_seconds": wall,
        "floor_seconds": floor,
        "toolkit_over_floor": wall / floor,
        "toolkit_peak_mb": max(results[f"toolkit_{m}"]["peak_mb"] for m in sizes),
    }
    if have_dense:
        summary["dense_seconds"] = totals["dense"]
        summary["dense_over_toolkit"] = totals["dense"] / wall
        summary["dense_peak_mb"] = peaks["dense"]
    print(
        "  toolkit / kNN floor = {:.2f}   toolkit peak = {:.0f} MB{}".format(
            summary["toolkit_over_floor"],
            summary["toolkit_peak_mb"],
            f"   dense baseline / toolkit = {summary['dense_over_toolkit']:.1f}"
            if have_dense
            else "",
        )
    )
    for m in sizes:
        r = results[f"toolkit_{m}"]
        print(
            f"  {m}: {r['clusters']} clusters, {r['outliers']} outliers, "
            f"{r['nnz_per_row']:.0f} stored distances per row"
        )
    results["summary"] = summary
    return results


def part_sweep(args, device) -> list[dict[str, Any]]:
    rows, out = [], []
    for n in args.sizes:
        x = clustered(n, 1536, seed=n, device=device)
        print(f"  sweep N={n}: toolkit ...", flush=True)
        tk = toolkit_run(x, 30, 6, 0.6, args.candidates)
        fl: Optional[dict[str, Any]] = None
        if args.floor_max_n is None or n <= args.floor_max_n:
            print(f"  sweep N={n}: kNN floor ...", flush=True)
            fl = floor_run(x, 30)
        entry: dict[str, Any] = {"n": n, "toolkit": tk, "floor": fl}
        dense_cell = ["-", "-", "-"]
        if (
            args.dense
            and args.sweep_dense
            and device.type == "cpu"
            and dense_fits(n, args.dense_max_gb)
        ):
            print(f"  sweep N={n}: dense baseline ...", flush=True)
            dense = dense_baseline(x, 30, 6, 0.6)
            entry["dense"] = dense
            d_total = sum(s["seconds"] for s in dense.values())
            d_peak = max(s["peak_mb"] or 0 for s in dense.values())
            dense_cell = [fmt(d_total), fmt(d_peak, 0), fmt(d_total / tk["seconds"], 1)]
        rows.append(
            [
                n,
                fmt(tk["seconds"]),
                fmt(tk["peak_mb"], 0),
                fmt(fl["seconds"]) if fl else "-",
                fmt(tk["seconds"] / fl["seconds"]) if fl else "-",
                *dense_cell,
            ]
        )
        out.append(entry)
        del x
        gc.collect()
    print_table(
        f"Size sweep (1536-d, k1=30, k2=6) on {device}",
        [
            "N",
            "toolkit s",
            "peak MB",
            "floor s",
            "toolkit/floor",
            "dense s",
            "dense MB",
            "dense/toolkit",
        ],
        rows,
    )
    return out


def part_pipeline(args, device) -> dict[str, Any]:
    ids = max(4, round(SYSU_IDS * args.sysu_rgb / SYSU_RGB))
    per_id_rgb = -(-args.sysu_rgb // ids)
    per_id_ir = -(-args.sysu_ir // ids)
    f = make_two_modality_features(ids, per_id_rgb, per_id_ir, dim=768, seed=5, num_cameras=4)
    g = torch.Generator().manual_seed(0)
    pick_rgb = torch.randperm(f.deep_rgb.shape[0], generator=g)[: args.sysu_rgb].sort().values
    pick_ir = torch.randperm(f.deep_ir.shape[0], generator=g)[: args.sysu_ir].sort().values
    d_rgb, s_rgb = f.deep_rgb[pick_rgb].to(device), f.shallow_rgb[pick_rgb].to(device)
    d_ir, s_ir = f.deep_ir[pick_ir].to(device), f.shallow_ir[pick_ir].to(device)
    del f

    labeler = PseudoLabeler.for_dataset("sysu", candidates=args.candidates)
    whole: dict[str, Any] = {}
    print("  stage-2 pipeline: toolkit ...", flush=True)
    with measure(device, whole, "pipeline"):
        result = labeler(d_rgb, s_rgb, d_ir, s_ir, stage=2)

    print("  stage-2 pipeline: kNN floor of its searches ...", flush=True)
    norm = torch.nn.functional.normalize
    floors: dict[str, Any] = {}
    z_rgb = norm(torch.cat([d_rgb, s_rgb], 1), dim=1)
    z_ir = norm(torch.cat([d_ir, s_ir], 1), dim=1)
    with measure(device, floors, "jaccard_rgb_knn (k=15, 1536-d)"):
        plain_knn(z_rgb, z_rgb, 15)
    with measure(device, floors, "jaccard_ir_knn (k=30, 1536-d)"):
        plain_knn(z_ir, z_ir, 30)
    del z_rgb, z_ir
    with measure(device, floors, "cra_deep_rgb_to_ir (k=20, 768-d)"):
        plain_knn(norm(d_rgb, dim=1), norm(d_ir, dim=1), 20)
    with measure(device, floors, "cra_shallow_rgb_to_ir (k=20, 768-d)"):
        plain_knn(norm(s_rgb, dim=1), norm(s_ir, dim=1), 20)
    joint = torch.cat([norm(d_rgb, dim=1), norm(s_rgb, dim=1)], 1)
    with measure(device, floors, "cra_smoothing_rgb_self (k=5, 1536-d)"):
        plain_knn(joint, joint, 5)
    del joint
    floor = sum(v["seconds"] for v in floors.values())
    rows = [[name, fmt(sec)] for name, sec in result.seconds.items()]
    rows.append(["total (wall)", fmt(whole["pipeline"]["seconds"])])
    rows += [[f"floor: {name}", fmt(v["seconds"])] for name, v in floors.items()]
    rows.append(["floor total", fmt(floor)])
    print_table(
        f"Stage-2 pseudo-labelling step, {size_title(args.sysu_rgb, args.sysu_ir)}, "
        f"768-d deep + 768-d shallow, on {device}",
        ["step", "seconds"],
        rows,
    )
    ratio = whole["pipeline"]["seconds"] / floor
    print(
        f"  pipeline / kNN floor = {ratio:.2f}   pipeline peak = "
        f"{whole['pipeline']['peak_mb']:.0f} MB   {result.summary()}"
    )
    return {
        "steps": result.seconds,
        "wall": whole["pipeline"],
        "floors": floors,
        "floor_seconds": floor,
        "pipeline_over_floor": ratio,
        "summary": result.summary(),
    }


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--candidates",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="kNN candidate precision of the toolkit (exact either way)",
    )
    parser.add_argument(
        "--sizes",
        default="2000,10000,34000,100000",
        help="comma-separated sweep sizes ('' to skip the sweep)",
    )
    parser.add_argument(
        "--floor-max-n",
        type=int,
        default=None,
        help="measure the sweep's kNN floor only up to this N (it is quadratic in N)",
    )
    parser.add_argument("--sysu-rgb", type=int, default=SYSU_RGB)
    parser.add_argument("--sysu-ir", type=int, default=SYSU_IR)
    parser.add_argument("--skip-sysu", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument(
        "--no-dense", dest="dense", action="store_false", help="skip the dense baseline"
    )
    parser.add_argument(
        "--sweep-dense",
        action="store_true",
        help="also run the dense baseline in the sweep where it fits",
    )
    parser.add_argument(
        "--dense-max-gb",
        type=float,
        default=12.0,
        help="run the dense baseline only where its 3 N x N arrays fit",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke run (2,000 / 1,000; sweep 1,500)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)
    if args.quick:
        args.sysu_rgb, args.sysu_ir, args.sizes = 2000, 1000, "1500"
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    payload: dict[str, Any] = {
        "environment": environment(device),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    start = time.perf_counter()
    if not args.skip_sysu:
        print(f"Part 1: Jaccard + DBSCAN, {size_title(args.sysu_rgb, args.sysu_ir)}", flush=True)
        payload["sysu"] = part_sysu(args, device)
    if args.sizes:
        print("\nPart 2: size sweep", flush=True)
        payload["sweep"] = part_sweep(args, device)
    if not args.skip_pipeline:
        print(
            f"\nPart 3: stage-2 pseudo-labelling step, {size_title(args.sysu_rgb, args.sysu_ir)}",
            flush=True,
        )
        payload["pipeline"] = part_pipeline(args, device)
    payload["benchmark_seconds"] = time.perf_counter() - start
    path = write_json("association_speed", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
