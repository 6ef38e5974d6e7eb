"""One SDCL training step's losses + memory updates at SYSU-MM01 scale.

Runs training steps on random data of the official shapes and times, per step:

* the losses: shallow-deep contrast for both modalities, homogeneous CNL for both
  modalities and the RGB -> IR heterogeneous CNL (the larger direction), combined with the
  official stage-1 weights; forward + backward w.r.t. the online features;
* the memory updates: 4 instance memories (RGB 22,258 x 768 and IR 11,909 x 768, deep and
  shallow) and 4 cluster memories (deep and shallow per modality), either with the toolkit
  (``InstanceMemory.update_many`` per modality, ``ShallowDeepContrast.update`` per modality,
  as a training loop calls them) or with a naive per-sample Python loop written here (the
  official update rule, one sample at a time in batch order).

The batch is 128 IR images (8 identities x 16) and 128 RGB images used twice (two views, so
256 RGB rows in which every index and every label repeats), 768-d deep and shallow features.
Both update paths are first checked to agree. Steps run back to back as in training (the
loss step leaves the memory rows out of cache, as a real step does); the first step is a
warm-up. The updates are also timed alone, back to back (warm caches).

Usage::

    python benchmarks/memory_step_speed.py [--device cpu|cuda] [--repeats N] [--threads N]

Each figure is the median of ``--repeats`` timed steps (default 30). Prints a table and
writes benchmarks/results/memory_step_speed.json. On a shared machine timings are
approximate; ``--threads 1`` keeps other processes from stalling torch's intra-op thread
pool.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from sdcl_toolkit.losses import CNL, SDCLLossWeights, ShallowDeepContrast
from sdcl_toolkit.memory import ClusterMemory, InstanceMemory

RESULTS = Path(__file__).resolve().parent / "results" / "memory_step_speed.json"
MODALITIES = ("ir", "rgb")
DEFAULT_REPEATS = 30  # the module docstring states it too (tests/test_benchmarks.py checks)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--repeats",
        type=int,
        default=DEFAULT_REPEATS,
        help="timed steps, the median is reported (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--rgb-samples", type=int, default=22258)
    parser.add_argument("--ir-samples", type=int, default=11909)
    parser.add_argument("--rgb-clusters", type=int, default=450)
    parser.add_argument("--ir-clusters", type=int, default=350)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------
# the naive reference: the official per-sample loop (written here, not in the library)
# --------------------------------------------------------------------------------------
def naive_update(
    bank: torch.Tensor, inputs: torch.Tensor, rows: torch.Tensor, momentum: float
) -> None:
    for x, y in zip(inputs, rows):
        bank[y] = momentum * bank[y] + (1.0 - momentum) * x
        bank[y] /= bank[y].norm()


def naive_updates(setup: dict, parts: dict[str, float], sync: Callable[[], None]) -> None:
    banks, clusters, batch = setup["banks"], setup["clusters"], setup["batch"]
    with torch.no_grad():
        for modality in MODALITIES:
            start = time.perf_counter()
            for key in (modality, f"{modality}_s"):  # official: raw features mixed in
                memory = banks[key]
                naive_update(memory.bank, batch[key], batch[f"{modality}_index"], memory.momentum)
            sync()
            middle = time.perf_counter()
            for key in (modality, f"{modality}_s"):  # official CM: inputs normalised in forward
                naive_update(
                    clusters[key].centroids,
                    F.normalize(batch[key], dim=1),
                    batch[f"{modality}_labels"],
                    clusters[key].momentum,
                )
            sync()
            end = time.perf_counter()
            parts[f"instance {modality} (deep+shallow)"] = middle - start
            parts[f"cluster {modality} (deep+shallow)"] = end - middle


def toolkit_updates(setup: dict, parts: dict[str, float], sync: Callable[[], None]) -> None:
    banks, clusters, batch = setup["banks"], setup["clusters"], setup["batch"]
    sdc = setup["sdc"]
    for modality in MODALITIES:
        deep, shallow = batch[modality], batch[f"{modality}_s"]
        start = time.perf_counter()
        InstanceMemory.update_many(
            [banks[modality], banks[f"{modality}_s"]], [deep, shallow], batch[f"{modality}_index"]
        )
        sync()
        middle = time.perf_counter()
        labels = batch[f"{modality}_labels"]
        sdc.update(deep, shallow, labels, clusters[modality], clusters[f"{modality}_s"])
        sync()
        end = time.perf_counter()
        parts[f"instance {modality} (deep+shallow)"] = middle - start
        parts[f"cluster {modality} (deep+shallow)"] = end - middle


# --------------------------------------------------------------------------------------
# synthetic step at SYSU-MM01 scale
# --------------------------------------------------------------------------------------
def make_setup(args: argparse.Namespace, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)

    def unit(n: int) -> torch.Tensor:
        return F.normalize(torch.randn(n, args.width, generator=g), dim=1).to(device)

    banks = {
        "rgb": InstanceMemory.from_features(unit(args.rgb_samples)),
        "rgb_s": InstanceMemory.from_features(unit(args.rgb_samples)),
        "ir": InstanceMemory.from_features(unit(args.ir_samples)),
        "ir_s": InstanceMemory.from_features(unit(args.ir_samples)),
    }
    clusters = {
        "rgb": ClusterMemory.from_centroids(unit(args.rgb_clusters), momentum=0.1),
        "rgb_s": ClusterMemory.from_centroids(unit(args.rgb_clusters), momentum=0.1),
        "ir": ClusterMemory.from_centroids(unit(args.ir_clusters), momentum=0.1),
        "ir_s": ClusterMemory.from_centroids(unit(args.ir_clusters), momentum=0.1),
    }
    ids, per_id = 8, 16
    ir_labels = torch.randperm(args.ir_clusters, generator=g)[:ids].repeat_interleave(per_id)
    rgb_labels = torch.randperm(args.rgb_clusters, generator=g)[:ids].repeat_interleave(per_id)
    ir_index = torch.randperm(args.ir_samples, generator=g)[: ids * per_id]
    rgb_index = torch.randperm(args.rgb_samples, generator=g)[: ids * per_id]
    batch = {
        "ir_labels": ir_labels.to(device),
        "rgb_labels": torch.cat([rgb_labels, rgb_labels]).to(device),  # two views
        "ir_index": ir_index.to(device),
        "rgb_index": torch.cat([rgb_index, rgb_index]).to(device),
        "ir": torch.randn(128, args.width, generator=g).to(device),
        "ir_s": torch.randn(128, args.width, generator=g).to(device),
        "rgb": torch.randn(256, args.width, generator=g).to(device),
        "rgb_s": torch.randn(256, args.width, generator=g).to(device),
    }
    return {
        "banks": banks,
        "clusters": clusters,
        "batch": batch,
        "sdc": ShallowDeepContrast(),
        "cnl": CNL(),
        "weights": SDCLLossWeights.official(1),
    }


def loss_step(setup: dict) -> float:
    banks, clusters, batch = setup["banks"], setup["clusters"], setup["batch"]
    sdc, cnl = setup["sdc"], setup["cnl"]
    f = {k: batch[k].clone().requires_grad_() for k in ("ir", "ir_s", "rgb", "rgb_s")}
    contrast = [
        sdc(f["ir"], f["ir_s"], batch["ir_labels"], clusters["ir"], clusters["ir_s"]),
        sdc(f["rgb"], f["rgb_s"], batch["rgb_labels"], clusters["rgb"], clusters["rgb_s"]),
    ]
    homogeneous = [
        cnl(f["ir"], f["ir_s"], batch["ir_index"], banks["ir"], banks["ir_s"]),
        cnl(f["rgb"], f["rgb_s"], batch["rgb_index"], banks["rgb"], banks["rgb_s"]),
    ]
    heterogeneous = cnl(
        f["rgb"],
        f["rgb_s"],
        batch["rgb_index"],
        banks["rgb"],
        banks["rgb_s"],
        banks["ir"],
        banks["ir_s"],
    )
    loss = setup["weights"].combine(contrast, homogeneous, heterogeneous, "rgb_to_ir")
    loss.backward()
    return float(loss.detach())


def memory_tensors(setup: dict) -> list[torch.Tensor]:
    banks = [m.bank for m in setup["banks"].values()]
    return banks + [m.centroids for m in setup["clusters"].values()]


def training_steps(setup: dict, update, device: torch.device, repeats: int):
    """``repeats + 1`` steps of (losses forward/backward, then ``update``); drops the first."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    loss_times, update_times, parts = [], [], {}
    for repeat in range(repeats + 1):
        sync()
        start = time.perf_counter()
        loss_step(setup)
        sync()
        middle = time.perf_counter()
        step_parts: dict[str, float] = {}
        update(setup, step_parts, sync)
        sync()
        end = time.perf_counter()
        if repeat:
            loss_times.append(middle - start)
            update_times.append(end - middle)
            for name, seconds in step_parts.items():
                parts.setdefault(name, []).append(seconds)
    medians = {name: statistics.median(values) for name, values in parts.items()}
    return statistics.median(loss_times), statistics.median(update_times), medians


def updates_alone(setup: dict, update, device: torch.device, repeats: int):
    """``repeats + 1`` back-to-back calls of ``update`` (warm caches); drops the first."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    for repeat in range(repeats + 1):
        sync()
        start = time.perf_counter()
        update(setup, {}, sync)
        sync()
        if repeat:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    setup = make_setup(args, device)

    def no_sync() -> None:
        return None

    # correctness first: both update paths agree
    initial = [t.clone() for t in memory_tensors(setup)]
    toolkit_updates(setup, {}, no_sync)
    fast_state = [t.clone() for t in memory_tensors(setup)]
    for tensor, state in zip(memory_tensors(setup), initial):
        tensor.copy_(state)
    naive_updates(setup, {}, no_sync)
    max_diff = max(float((a - b).abs().max()) for a, b in zip(fast_state, memory_tensors(setup)))
    if max_diff > 1e-5:
        raise SystemExit(f"toolkit and naive updates disagree by {max_diff:.3g}")

    loss_s, fast_s, fast_parts = training_steps(setup, toolkit_updates, device, args.repeats)
    _, slow_s, slow_parts = training_steps(setup, naive_updates, device, args.repeats)
    step_s = loss_s + fast_s
    warm_fast_s = updates_alone(setup, toolkit_updates, device, args.repeats)
    warm_slow_s = updates_alone(setup, naive_updates, device, args.repeats)

    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (platform.processor() or platform.machine()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "shapes": {
            "instance_rgb": [args.rgb_samples, args.width],
            "instance_ir": [args.ir_samples, args.width],
            "clusters_rgb": args.rgb_clusters,
            "clusters_ir": args.ir_clusters,
            "batch_ir": 128,
            "batch_rgb": 256,
        },
        "loss_forward_backward_s": loss_s,
        "update_toolkit_s": fast_s,
        "update_naive_loop_s": slow_s,
        "update_speedup": slow_s / fast_s,
        "updates_alone_toolkit_s": warm_fast_s,
        "updates_alone_naive_loop_s": warm_slow_s,
        "updates_alone_speedup": warm_slow_s / warm_fast_s,
        "update_share_of_step": fast_s / step_s,
        "parts_toolkit_s": fast_parts,
        "parts_naive_s": slow_parts,
        "max_abs_diff_naive_vs_toolkit": max_diff,
        "note": "medians over training steps; shared machine, timings are approximate",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))

    print(
        f"device {report['device']} ({report['device_name']}), torch {report['torch']}, "
        f"{report['threads']} threads, median of {args.repeats} steps"
    )
    print(f"{'part of one step':<40}{'toolkit (ms)':>14}{'naive loop (ms)':>17}{'ratio':>8}")
    print("-" * 79)
    print(f"{'losses: forward + backward':<40}{loss_s * 1e3:>14.2f}{'':>17}{'':>8}")
    for name in fast_parts:
        fast, slow = fast_parts[name], slow_parts[name]
        print(f"{'  update ' + name:<40}{fast * 1e3:>14.2f}{slow * 1e3:>17.2f}{slow / fast:>7.1f}x")
    print(
        f"{'memory updates, total':<40}{fast_s * 1e3:>14.2f}"
        f"{slow_s * 1e3:>17.2f}{slow_s / fast_s:>7.1f}x"
    )
    print(
        f"{'updates alone, back to back (warm)':<40}{warm_fast_s * 1e3:>14.2f}"
        f"{warm_slow_s * 1e3:>17.2f}{warm_slow_s / warm_fast_s:>7.1f}x"
    )
    print("-" * 79)
    print(f"update share of a step (losses + update): {100 * fast_s / step_s:.1f}%")
    print(f"naive vs toolkit max |difference| after one update: {max_diff:.2e}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
