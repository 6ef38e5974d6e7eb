"""One-command GPU check (``make gpu-check``): every CUDA path of the toolkit, timed, in one run.

Steps, in this order; each is guarded (a failure is recorded with its traceback and the
next step runs), and the exit status is 1 if any step failed:

1. ``cuda_tests``: the CUDA test subset, ``pytest -m cuda`` with ``TEST_DEVICE=<device>``;
2. ``association``: Jaccard + DBSCAN of both modalities at SYSU-MM01 size (RGB 22,258 + IR
   11,909, 1536-d) and the whole stage-2 ``PseudoLabeler`` step (768 + 768-d), with the
   torch and the faiss backends, against the kNN floor (the exact float32 kNN searches
   alone, ``sdcl_toolkit.knn_search.knn_tensors``) on the same features in the same run;
   target: stage-2 step < 1 s on a GPU;
3. ``million``: Jaccard + DBSCAN of 1,000,000 samples (target < 60 s; peak GPU memory);
4. ``vit_step``: the official training step, ``vit_base`` 288x144 with 256 RGB views + 128 IR
   (``SDCLRecipe.sysu()``), bf16 autocast: s/step and peak memory; then feature extraction
   (eval forward, bf16 autocast) in images/s;
5. ``data_pipeline``: views/s of the training data pipeline with the official augmentations
   (``benchmarks/data_pipeline_speed.py``: per-sample worker path, batched path on the
   device);
6. ``sharded_association``: Jaccard + DBSCAN and the stage-2 pseudo-labelling step with
   the kNN searches sharded over the ranks of a process group (one NCCL process per GPU
   when more than one GPU is present; ``--shard-world W`` gloo processes sharing the CPU's
   cores), against one process: time, peak memory, labels identical; otherwise recorded as
   skipped with the reason.

Writes ``docs/results/gpu_check.json`` (``--out``) and a Markdown table beside it (same
name, ``.md``). ``--quick`` shrinks every size (tiny ViT, 1,000-sample association) so the
whole check runs on a CPU in a few minutes: ``make gpu-check DEVICE=cpu QUICK=1``, which
the test suite runs (``tests/test_gpu_check.py``).

    python benchmarks/gpu_check.py                         # CUDA, full sizes (<= 8 min)
    python benchmarks/gpu_check.py --device cpu --quick    # the same steps, small, on CPU
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from _measure import environment, fmt, measure, write_json  # noqa: E402

from sdcl_toolkit.recipe import SDCLRecipe  # noqa: E402

TARGET_STAGE2_SECONDS = 1.0
TARGET_MILLION_SECONDS = 60.0


class Check:
    """Runs the steps, each guarded, and collects ``{name: record}``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.steps: dict[str, dict[str, Any]] = {}

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        record: dict[str, Any]
        try:
            result = fn()
            if "skipped" in result:
                record = {"status": "skipped", "reason": result["skipped"]}
            else:
                record = {"status": "failed" if result.get("failed") else "ok", "result": result}
        except Exception as error:  # guarded: record and go on with the next step
            record = {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
            print(record["traceback"], flush=True)
        record["seconds"] = time.perf_counter() - start
        self.steps[name] = record
        print(f"-- {name}: {record['status']} ({record['seconds']:.1f} s)", flush=True)
        self.release()

    def release(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# ----------------------------------------------------------------------------- 1. CUDA tests


def cuda_tests(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    command += args.pytest_args.split() if args.pytest_args else []
    env = {**os.environ, "TEST_DEVICE": str(args.device)}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.tests_timeout
    )
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    print("\n".join(tail))
    counts = {
        word: int(number)
        for number, word in re.findall(
            r"(\d+) (passed|failed|skipped|errors?|deselected)", tail[-1] if tail else ""
        )
    }
    return {
        "command": " ".join(command[1:]),
        "returncode": done.returncode,
        "counts": counts,
        "summary": tail[-1] if tail else "",
        "failed": done.returncode != 0,
    }


# ----------------------------------------------------------------------------- 2./3. association


def _backends(args: argparse.Namespace) -> list[str]:
    from sdcl_toolkit.knn_search import faiss_available

    names = ["torch"]
    if not faiss_available():
        print("  faiss: skipped (faiss not installed)")
        return names
    if args.device.type == "cuda":
        import faiss

        if not hasattr(faiss, "StandardGpuResources"):
            print("  faiss: skipped (faiss-gpu not installed: the faiss build has no GPU support)")
            return names
    return names + ["faiss"]


def _jaccard_dbscan(
    x: torch.Tensor,
    backend: str,
    device: torch.device,
    group: Optional[str] = None,
    keep_labels: bool = False,
) -> dict[str, Any]:
    from sdcl_toolkit import dbscan_pseudo_labels
    from sdcl_toolkit.reranking import jaccard_distance_tensors

    recipe = SDCLRecipe.sysu()
    out: dict[str, Any] = {}
    sharding = {} if group is None else {"group": group}
    with measure(device, out, "total"):
        distance = jaccard_distance_tensors(x, recipe.k1, recipe.k2, backend=backend, **sharding)
        with measure(device, out, "dbscan"):
            labels = dbscan_pseudo_labels(distance.to_scipy(), recipe.eps, recipe.min_samples)
    return {
        "seconds": out["total"]["seconds"],
        "dbscan_seconds": out["dbscan"]["seconds"],
        "peak_mb": out["total"]["peak_mb"],
        "clusters": int(labels.max()) + 1,
        **_label_record(np.asarray(labels), keep_labels),
    }


def _label_record(labels: np.ndarray, keep: bool) -> dict[str, Any]:
    """The labels' SHA-256, and the labels themselves (int64) when ``keep``."""
    labels = np.asarray(labels, dtype=np.int64)
    record: dict[str, Any] = {"labels_sha": hashlib.sha256(labels.tobytes()).hexdigest()}
    if keep:
        record["labels"] = labels
    return record


def _disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """How far two labelings of the same samples are from being one renamed (0 exactly
    then): the larger, over both directions, of the fraction of samples whose label in one
    is not the one most samples of their cluster in the other have (-1 counts as a label;
    a split or a merge of clusters counts)."""
    if a.size == 0:
        return 0.0
    pairs, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    worst = 0
    for side in (0, 1):
        best: dict[int, int] = {}
        for label, count in zip(pairs[side].tolist(), counts.tolist()):
            best[label] = max(best.get(label, 0), count)
        worst = max(worst, a.size - sum(best.values()))
    return worst / a.size


def _floor(x: torch.Tensor, k: int, device: torch.device, candidates: str = "float32") -> float:
    """Seconds of the exact kNN search alone (``knn_tensors``, torch backend)."""
    from sdcl_toolkit.knn_search import knn_tensors

    out: dict[str, Any] = {}
    with measure(device, out, "knn"):
        knn_tensors(x, x, k, candidates=candidates, backend="torch")
    return out["knn"]["seconds"]


def association(args: argparse.Namespace) -> dict[str, Any]:
    import association_speed as speed

    from sdcl_toolkit import PseudoLabeler

    device, recipe = args.device, SDCLRecipe.sysu()
    sizes = {"rgb": args.sysu_rgb, "ir": args.sysu_ir}
    out: dict[str, Any] = {"sizes": sizes, "backends": {}}
    features = {
        m: speed.clustered(n, 1536, seed=1 if m == "rgb" else 2, device=device)
        for m, n in sizes.items()
    }
    out["floor_seconds"] = sum(_floor(x, recipe.k1, device) for x in features.values())
    backends = _backends(args)
    for backend in backends:
        runs = {m: _jaccard_dbscan(x, backend, device) for m, x in features.items()}
        total = sum(r["seconds"] for r in runs.values())
        out["backends"][backend] = {
            "jaccard_dbscan": runs,
            "jaccard_dbscan_seconds": total,
            "over_floor": total / out["floor_seconds"],
        }
        print(f"  {backend}: Jaccard + DBSCAN of both modalities {total:.2f} s")
    del features
    # stage 2: the whole pseudo-labelling step (both Jaccards and DBSCANs, CRA, centroids)
    parts = _stage2_parts(args.sysu_rgb, args.sysu_ir, device)
    norm = torch.nn.functional.normalize
    joint = {
        "rgb": norm(torch.cat([norm(parts[0], dim=1), norm(parts[1], dim=1)], 1), dim=1),
        "ir": norm(torch.cat([norm(parts[2], dim=1), norm(parts[3], dim=1)], 1), dim=1),
    }
    stage2_floor = _floor(joint["rgb"], recipe.stage2_rgb_k1, device) + _floor(
        joint["ir"], recipe.k1, device
    )
    del joint
    out["stage2_floor_seconds"] = stage2_floor
    for backend in backends:
        labeler = PseudoLabeler.for_dataset("sysu", backend=backend)
        labeler(*parts, stage=2)  # warm-up: CUDA context, kernels, allocator
        timed: dict[str, Any] = {}
        with measure(device, timed, "stage2"):
            result = labeler(*parts, stage=2)
        seconds = timed["stage2"]["seconds"]
        out["backends"][backend]["stage2"] = {
            "seconds": seconds,
            "peak_mb": timed["stage2"]["peak_mb"],
            "over_floor": seconds / stage2_floor,
            "steps": result.seconds,
            "summary": result.summary(),
            "target_met": seconds < TARGET_STAGE2_SECONDS,
        }
        print(f"  {backend}: stage-2 step {seconds:.2f} s (floor {stage2_floor:.2f} s)")
    if "faiss" not in backends:
        out["faiss"] = "skipped: faiss-gpu not installed"
    return out


def _stage2_parts(num_rgb: int, num_ir: int, device: torch.device) -> list[torch.Tensor]:
    """Deep and shallow (768-d each) features of ``num_rgb`` RGB and ``num_ir`` IR samples
    (SYSU-MM01-like identities and cameras): ``[deep_rgb, shallow_rgb, deep_ir, shallow_ir]``."""
    import association_speed as speed

    from sdcl_toolkit.data.clustered_features import make_two_modality_features

    ids = max(4, round(speed.SYSU_IDS * num_rgb / speed.SYSU_RGB))
    f = make_two_modality_features(
        ids, -(-num_rgb // ids), -(-num_ir // ids), dim=768, seed=5, num_cameras=4
    )
    return [
        t[: num_rgb if i < 2 else num_ir].to(device)
        for i, t in enumerate((f.deep_rgb, f.shallow_rgb, f.deep_ir, f.shallow_ir))
    ]


def _stage2_step(
    parts: list[torch.Tensor],
    device: torch.device,
    group: Optional[str] = None,
    keep_labels: bool = False,
) -> dict[str, Any]:
    """One stage-2 ``PseudoLabeler`` step (torch backend): seconds, peak, labels' SHA-256."""
    from sdcl_toolkit import PseudoLabeler

    labeler = PseudoLabeler.for_dataset("sysu", backend="torch", group=group)
    out: dict[str, Any] = {}
    with measure(device, out, "stage2"):
        result = labeler(*parts, stage=2)
    labels = torch.cat([result.rgb.labels, result.ir.labels]).cpu().numpy()
    return {
        "seconds": out["stage2"]["seconds"],
        "peak_mb": out["stage2"]["peak_mb"],
        "clusters": int(result.ir.labels.max()) + 1,
        **_label_record(labels, keep_labels),
    }


def million(args: argparse.Namespace) -> dict[str, Any]:
    """Jaccard + DBSCAN of ``--million`` samples; features drawn on the device directly."""
    device, n = args.device, args.million
    generator = torch.Generator(device=device).manual_seed(0)
    identities = max(2, n // 56)  # SYSU-MM01 has ~56 images per identity
    centres = torch.randn(identities, args.million_dim, generator=generator, device=device)
    ids = torch.randint(0, identities, (n,), generator=generator, device=device)
    noise = torch.randn(n, args.million_dim, generator=generator, device=device)
    x = torch.nn.functional.normalize(centres[ids] + 0.9 * noise, dim=1)
    del noise, centres, ids
    # at 1M the float32 score matrix alone is ~3e15 flop (~50 s of a GPU's fp32 units), so
    # the floor here uses the toolkit's own candidate precision ("auto": verified bfloat16
    # candidates on CUDA), still an exact search
    floor = _floor(x, SDCLRecipe.sysu().k1, device, candidates="auto")
    run = _jaccard_dbscan(x, "torch", device)
    run.update(
        n=n,
        dim=args.million_dim,
        floor_seconds=floor,
        floor_candidates="auto",
        over_floor=run["seconds"] / floor,
        target_met=run["seconds"] < TARGET_MILLION_SECONDS,
    )
    print(
        f"  N={n}: {run['seconds']:.1f} s (floor {floor:.1f} s), peak {fmt(run['peak_mb'], 0)} MB"
    )
    return run


# ----------------------------------------------------------------------------- 4. ViT step


def vit_step(args: argparse.Namespace) -> dict[str, Any]:
    import backbone_speed

    from sdcl_toolkit.models import ShallowDeepViT, get_config

    device, recipe = args.device, SDCLRecipe.sysu()
    config = get_config(args.vit_config)
    if not args.quick:
        assert tuple(config.img_size) == (recipe.height, recipe.width), config.img_size
    n_rgb, n_ir = args.vit_rgb, args.vit_ir
    torch.manual_seed(0)
    model = ShallowDeepViT(config).to(device).train()
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randn(n_rgb, 3, *config.img_size, generator=generator).to(device)
    ir = torch.randn(n_ir, 3, *config.img_size, generator=generator).to(device)
    train = backbone_speed.measure(
        model, rgb, ir, "bfloat16", warmup=args.vit_warmup, iters=args.vit_iters
    )
    if "error" in train:
        return {"train": train, "failed": True}
    model.eval()
    images = torch.cat([rgb, ir])
    del rgb, ir

    def extract() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            model(images, "rgb")

    extract()
    timed: dict[str, Any] = {}
    with measure(device, timed, "extract"):
        for _ in range(args.vit_iters):
            extract()
    per_pass = timed["extract"]["seconds"] / args.vit_iters
    result = {
        "config": args.vit_config,
        "img_size": list(config.img_size),
        "rgb_views": n_rgb,
        "ir_views": n_ir,
        "train": train,
        "extract_images_per_s": images.shape[0] / per_pass,
        "extract_peak_mb": timed["extract"]["peak_mb"],
    }
    print(
        f"  train step {train['seconds_per_step_median']:.3f} s/step "
        f"({n_rgb} RGB + {n_ir} IR), extraction {result['extract_images_per_s']:.0f} img/s"
    )
    return result


# ----------------------------------------------------------------------------- 5. data pipeline


def data_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import data_pipeline_speed as pipeline

    recipe = SDCLRecipe.sysu()
    size = (recipe.height, recipe.width) if not args.quick else (64, 32)
    payload = pipeline.measure_all(
        images=args.pipeline_images,
        height=size[0],
        width=size[1],
        source_height=2 * size[0] * 8 // 9,
        source_width=2 * size[1] * 8 // 9,
        repeats=2,
        device=args.device,
        torchvision_python=None,
    )
    pipeline.print_rows(payload)
    return payload


# ----------------------------------------------------------------------------- 6. sharded kNN


def sharded_association(args: argparse.Namespace) -> dict[str, Any]:
    """Jaccard + DBSCAN of ``shard_n`` samples, and the stage-2 pseudo-labelling step at
    SYSU-MM01 size (both Jaccards, CRA's three searches), with the kNN searches sharded over
    ``W`` processes (one per GPU, NCCL; or ``--shard-world W`` gloo processes on the CPU) vs
    the same in one process: time, peak memory, and whether the labels are identical."""
    from sdcl_toolkit.reranking import jaccard_distance_tensors

    if "group" not in inspect.signature(jaccard_distance_tensors).parameters:
        return {"skipped": "the toolkit has no sharded kNN (no group argument)"}
    if args.device.type == "cuda":
        world = torch.cuda.device_count()
        if world < 2:
            return {"skipped": "needs more than one GPU"}
    else:
        world = args.shard_world
        if world < 2:
            return {"skipped": "CPU run: pass --shard-world 2 (gloo processes) to include it"}
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        outputs = [Path(folder) / f"rank{rank}.json" for rank in range(world)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--shard-worker",
                    str(rank),
                    str(world),
                    str(port),
                    str(args.device.type),
                    str(args.shard_n),
                    str(args.sysu_rgb),
                    str(args.sysu_ir),
                    str(outputs[rank]),
                ],
                cwd=REPO,
            )
            for rank in range(world)
        ]
        codes = [p.wait(timeout=args.tests_timeout) for p in procs]
        if any(codes):
            return {"failed": True, "returncodes": codes}
        ranks = [json.loads(o.read_text()) for o in outputs]
        for rank, output in enumerate(outputs):
            for key in ("jaccard_dbscan", "stage2"):
                ranks[rank][key]["labels"] = np.load(f"{output}.{key}.npy")
    features = _shard_features(args.shard_n, args.device)
    single = _jaccard_dbscan(features, "torch", args.device, keep_labels=True)
    del features
    parts = _stage2_parts(args.sysu_rgb, args.sysu_ir, args.device)
    _stage2_step(parts, args.device)  # warm-up, as in the workers
    single_stage2 = _stage2_step(parts, args.device, keep_labels=True)
    del parts
    result: dict[str, Any] = {"world": world, "n": args.shard_n}
    for key, alone in (("jaccard_dbscan", single), ("stage2", single_stage2)):
        runs = [r[key] for r in ranks]
        part = {
            "single_seconds": alone["seconds"],
            "single_peak_mb": alone["peak_mb"],
            "sharded_seconds": max(r["seconds"] for r in runs),
            "sharded_peak_mb": max((r["peak_mb"] or 0) for r in runs),
            "labels_identical": all(r["labels_sha"] == alone["labels_sha"] for r in runs),
            "disagreement": max(_disagreement(alone["labels"], r["labels"]) for r in runs),
        }
        part["speedup"] = part["single_seconds"] / part["sharded_seconds"]
        result[key] = part
        print(
            f"  {key}, {world} ranks: {part['sharded_seconds']:.2f} s vs one process "
            f"{part['single_seconds']:.2f} s; labels identical: {part['labels_identical']} "
            f"(disagreement after renaming {part['disagreement']:.2%})"
        )
    result["stage2"]["sizes"] = {"rgb": args.sysu_rgb, "ir": args.sysu_ir}
    result["labels_identical"] = all(
        result[k]["labels_identical"] for k in ("jaccard_dbscan", "stage2")
    )
    if args.device.type == "cuda":
        # the float index_add_ of the Jaccard accumulation may add in another order in each
        # CUDA process (the trainer compares hashes and falls back to rank 0's labels); a
        # wrong shard gives wrong neighbours, i.e. far more than rounding-level differences
        worst = max(result[k]["disagreement"] for k in ("jaccard_dbscan", "stage2"))
        result["failed"] = worst > CUDA_LABEL_DISAGREEMENT
    else:
        result["failed"] = not result["labels_identical"]
    return result


CUDA_LABEL_DISAGREEMENT = 0.01
"""Largest fraction of samples whose sharded label may differ (after renaming) from the
single-process one on CUDA before the sharded step counts as failed; on a CPU the labels must
be identical."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shard_features(n: int, device: torch.device) -> torch.Tensor:
    import association_speed as speed

    return speed.clustered(n, 1536, seed=11, device=device)


def shard_worker(
    rank: int, world: int, port: int, kind: str, n: int, num_rgb: int, num_ir: int, out: str
) -> None:
    """One rank of :func:`sharded_association` (run as ``gpu_check.py --shard-worker ...``)."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if kind == "cuda":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the cores, shared
    dist.init_process_group("nccl" if kind == "cuda" else "gloo", rank=rank, world_size=world)
    try:
        x = _shard_features(n, device)
        _jaccard_dbscan(x, "torch", device, group="world")  # warm-up
        dist.barrier()
        runs = {
            "jaccard_dbscan": _jaccard_dbscan(x, "torch", device, group="world", keep_labels=True)
        }
        del x
        parts = _stage2_parts(num_rgb, num_ir, device)
        _stage2_step(parts, device, group="world")  # warm-up
        dist.barrier()
        runs["stage2"] = _stage2_step(parts, device, group="world", keep_labels=True)
        for key, run in runs.items():
            np.save(f"{out}.{key}.npy", run.pop("labels"))
        Path(out).write_text(json.dumps(runs))
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- report


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    lines = [
        f"# GPU check on {env.get('gpu', env['device'])}",
        "",
        f"`{payload['command']}`: torch {env['torch']}, device {env['device']}, "
        f"quick={payload['quick']}, {payload['seconds']:.0f} s in all.",
        "",
        "| step | status | seconds | figures |",
        "|---|---|---|---|",
    ]
    for name, record in payload["steps"].items():
        lines.append(
            f"| {name} | {record['status']} | {record['seconds']:.1f} | {_figures(name, record)} |"
        )
    return "\n".join(lines) + "\n"


def _figures(name: str, record: dict[str, Any]) -> str:
    if record["status"] == "skipped":
        return record["reason"]
    if "error" in record:
        return record["error"].replace("|", "/")[:200]
    r = record["result"]
    if name == "cuda_tests":
        return r["summary"]
    if name == "association":
        cells = [f"kNN floor {r['floor_seconds']:.2f} s"]
        for backend, b in r["backends"].items():
            cells.append(
                f"{backend}: Jaccard+DBSCAN {b['jaccard_dbscan_seconds']:.2f} s "
                f"({b['over_floor']:.1f}x floor)"
            )
            if "stage2" in b:
                cells.append(
                    f"{backend}: stage-2 step {b['stage2']['seconds']:.2f} s "
                    f"(target < {TARGET_STAGE2_SECONDS:.0f} s: "
                    f"{'met' if b['stage2']['target_met'] else 'not met'})"
                )
        if "faiss" in r:
            cells.append(r["faiss"])
        return "; ".join(cells)
    if name == "million":
        return (
            f"N={r['n']}: {r['seconds']:.1f} s (floor {r['floor_seconds']:.1f} s), "
            f"peak {fmt(r['peak_mb'], 0)} MB (target < {TARGET_MILLION_SECONDS:.0f} s: "
            f"{'met' if r['target_met'] else 'not met'})"
        )
    if name == "vit_step":
        t = r["train"]
        peak = t.get("peak_memory_gib")
        return (
            f"{r['config']} {r['rgb_views']}+{r['ir_views']} bf16: "
            f"{t['seconds_per_step_median']:.3f} s/step"
            + (f", peak {peak:.1f} GiB" if peak is not None else "")
            + f"; extraction {r['extract_images_per_s']:.0f} img/s"
        )
    if name == "sharded_association":
        j, s2 = r["jaccard_dbscan"], r["stage2"]
        return (
            f"{r['world']} ranks; Jaccard + DBSCAN N={r['n']}: {j['sharded_seconds']:.2f} s vs "
            f"{j['single_seconds']:.2f} s in one process ({j['speedup']:.1f}x); stage-2 step: "
            f"{s2['sharded_seconds']:.2f} s vs {s2['single_seconds']:.2f} s "
            f"({s2['speedup']:.1f}x); labels identical: {r['labels_identical']} (largest "
            f"disagreement after renaming {max(j['disagreement'], s2['disagreement']):.2%})"
        )
    if name == "data_pipeline":
        res = r["results"]
        cells = [
            f"per-sample {res['per_sample']['views_per_s']:.0f} views/s/core",
            f"batched CPU {res['batched_cpu']['views_per_s']:.0f} views/s/core",
        ]
        for key, row in res.items():
            if key.startswith("batched_") and key != "batched_cpu":
                cells.append(
                    f"batched {row['device']} augment {row['augment_views_per_s']:.0f} views/s"
                )
        return "; ".join(cells)
    return ""


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (.md beside it)")
    parser.add_argument("--steps", default="", help="comma list of steps to run (default all)")
    parser.add_argument(
        "--pytest-args", default=None, help="extra pytest arguments of the cuda_tests step"
    )
    parser.add_argument("--tests-timeout", type=float, default=240.0)
    parser.add_argument(
        "--shard-world", type=int, default=1, help="CPU: gloo processes of the sharded step"
    )
    parser.add_argument(
        "--shard-n",
        type=int,
        default=None,
        help="samples of the sharded Jaccard + DBSCAN (default: 200,000; 600 with --quick)",
    )
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    shard_n = args.shard_n
    recipe = SDCLRecipe.sysu()
    if args.quick:
        args.sysu_rgb, args.sysu_ir, args.million, args.million_dim = 600, 400, 3000, 64
        args.vit_config, args.vit_rgb, args.vit_ir = "tiny", 4, 2
        args.vit_warmup, args.vit_iters, args.pipeline_images = 1, 1, 8
        args.shard_n = 600
        if args.pytest_args is None:
            args.pytest_args = "tests/test_devices.py -k test_knn"
    else:
        import association_speed as speed

        args.sysu_rgb, args.sysu_ir, args.million, args.million_dim = (
            speed.SYSU_RGB,
            speed.SYSU_IR,
            1_000_000,
            1536,
        )
        args.vit_config, args.vit_rgb, args.vit_ir = (
            recipe.model,
            2 * recipe.batch_rgb,
            recipe.batch_ir,
        )
        args.vit_warmup, args.vit_iters, args.pipeline_images = 2, 5, 128
        args.shard_n = 200_000
    if shard_n is not None:
        args.shard_n = shard_n
    if args.out is None:
        suffix = "" if args.device.type == "cuda" and not args.quick else f"_{args.device.type}"
        suffix += "_quick" if args.quick else ""
        args.out = REPO / "docs" / "results" / f"gpu_check{suffix}.json"
    return args


STEPS = {
    "cuda_tests": cuda_tests,
    "association": association,
    "million": million,
    "vit_step": vit_step,
    "data_pipeline": data_pipeline,
    "sharded_association": sharded_association,
}


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but CUDA is not available (use --device cpu --quick)")
        return 2
    selected = [s.strip() for s in args.steps.split(",") if s.strip()] or list(STEPS)
    unknown = sorted(set(selected) - set(STEPS))
    if unknown:
        print(f"gpu_check: unknown step(s) {unknown}; choose from {list(STEPS)}")
        return 2
    check = Check(args.device)
    start = time.perf_counter()
    for name in selected:
        check.step(name, lambda fn=STEPS[name]: fn(args))
    payload = {
        "command": "python benchmarks/gpu_check.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(args.device),
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "steps": check.steps,
        "failed": [n for n, r in check.steps.items() if r["status"] == "failed"],
    }
    path = write_json("gpu_check", payload, args.out)
    table = markdown(payload)
    path.with_suffix(".md").write_text(table)
    print("\n" + table)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 1 if payload["failed"] else 0


if __name__ == "__main__":
    if len(sys.argv) == 10 and sys.argv[1] == "--shard-worker":
        rank, world, port, kind, n, num_rgb, num_ir, out = sys.argv[2:]
        shard_worker(int(rank), int(world), int(port), kind, int(n), int(num_rgb), int(num_ir), out)
    else:
        raise SystemExit(main())
