"""Training throughput of the SDCL backbone: forward + backward of one mixed RGB + IR batch.

The official SYSU-MM01 step feeds 256 RGB (128 images x 2 views) and 128 IR images of
288x144 through ViT-B/16 ICS in one forward (``ShallowDeepViT.forward_mixed``). This script
times that step in float32 and under ``torch.autocast`` bfloat16 and prints images/s (and
peak memory on CUDA). The loss is a stand-in (mean square of the four feature blocks): the
backbone's cost does not depend on it.

Examples::

    python benchmarks/backbone_speed.py                  # CPU: tiny config, 32 RGB + 16 IR
    python benchmarks/backbone_speed.py --device cuda    # vit_base, 256 RGB + 128 IR
    python benchmarks/backbone_speed.py --device cuda --gradient-checkpointing
    python benchmarks/backbone_speed.py --config vit_base --rgb-batch 4 --ir-batch 2 --iters 2

Results go to ``benchmarks/results/backbone_speed.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdcl_toolkit.models import ShallowDeepViT, get_config

DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)"
    )
    parser.add_argument(
        "--config", default=None, help="vit_base or tiny (default: vit_base on CUDA, tiny on CPU)"
    )
    parser.add_argument(
        "--rgb-batch",
        type=int,
        default=None,
        help="RGB images per step (default 256 CUDA / 32 CPU)",
    )
    parser.add_argument(
        "--ir-batch", type=int, default=None, help="IR images per step (default 128 CUDA / 16 CPU)"
    )
    parser.add_argument(
        "--dtypes", default="float32,bfloat16", help="comma list of float32, bfloat16, float16"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per dtype")
    parser.add_argument("--iters", type=int, default=5, help="timed steps per dtype")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--output", default=str(Path(__file__).resolve().parent / "results" / "backbone_speed.json")
    )
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(
    model: ShallowDeepViT, rgb: torch.Tensor, ir: torch.Tensor, dtype: Optional[torch.dtype]
) -> float:
    enabled = dtype is not None
    with torch.autocast(rgb.device.type, dtype=dtype or torch.float32, enabled=enabled):
        out = model.forward_mixed(rgb, ir)
        loss = sum(feature.float().square().mean() for part in out for feature in part)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return float(loss.detach())


def measure(
    model: ShallowDeepViT,
    rgb: torch.Tensor,
    ir: torch.Tensor,
    dtype_name: str,
    warmup: int,
    iters: int,
) -> dict[str, object]:
    device = rgb.device
    dtype = DTYPES[dtype_name]
    row: dict[str, object] = {"dtype": dtype_name}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(warmup):
            train_step(model, rgb, ir, dtype)
        synchronize(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            loss = train_step(model, rgb, ir, dtype)
            synchronize(device)
            times.append(time.perf_counter() - start)
    except torch.cuda.OutOfMemoryError:
        row["error"] = "out of memory"
        return row
    n_images = rgb.shape[0] + ir.shape[0]
    median = sorted(times)[len(times) // 2]
    row.update(
        seconds_per_step_median=median,
        seconds_per_step_min=min(times),
        images_per_second=n_images / median,
        loss_finite=bool(torch.isfinite(torch.tensor(loss))),
    )
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    on_cuda = device.type == "cuda"
    config_name = args.config or ("vit_base" if on_cuda else "tiny")
    n_rgb = args.rgb_batch if args.rgb_batch is not None else (256 if on_cuda else 32)
    n_ir = args.ir_batch if args.ir_batch is not None else (128 if on_cuda else 16)
    dtype_names = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in dtype_names if d not in DTYPES]
    if unknown:
        raise SystemExit(f"unknown dtype(s) {unknown}; choose from {sorted(DTYPES)}")
    if args.iters < 1 or args.warmup < 0:
        raise SystemExit("--iters must be >= 1 and --warmup >= 0")

    config = get_config(config_name)
    torch.manual_seed(0)
    model = (
        ShallowDeepViT(config, gradient_checkpointing=args.gradient_checkpointing)
        .to(device)
        .train()
    )
    gen = torch.Generator(device="cpu").manual_seed(0)
    rgb = torch.randn(n_rgb, 3, *config.img_size, generator=gen).to(device)
    ir = torch.randn(n_ir, 3, *config.img_size, generator=gen).to(device)

    rows = [measure(model, rgb, ir, name, args.warmup, args.iters) for name in dtype_names]

    device_name = (
        torch.cuda.get_device_name(device)
        if on_cuda
        else (platform.processor() or platform.machine())
    )
    meta = {
        "config": config_name,
        "img_size": list(config.img_size),
        "rgb_batch": n_rgb,
        "ir_batch": n_ir,
        "gradient_checkpointing": args.gradient_checkpointing,
        "device": str(device),
        "device_name": device_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "warmup": args.warmup,
        "iters": args.iters,
    }
    print(
        f"backbone_speed: {config_name} {config.img_size[0]}x{config.img_size[1]}, "
        f"{n_rgb} RGB + {n_ir} IR per step, forward+backward, device {device} ({device_name}), "
        f"{meta['threads']} threads, checkpointing={args.gradient_checkpointing}"
    )
    header = f"{'dtype':<10}{'s/step (median)':>17}{'s/step (min)':>14}{'images/s':>11}"
    if on_cuda:
        header += f"{'peak GiB':>10}"
    print(header)
    for row in rows:
        if "error" in row:
            print(f"{row['dtype']:<10}{row['error']:>17}")
            continue
        line = (
            f"{row['dtype']:<10}{row['seconds_per_step_median']:>17.3f}"
            f"{row['seconds_per_step_min']:>14.3f}{row['images_per_second']:>11.1f}"
        )
        if on_cuda:
            line += f"{row['peak_memory_gib']:>10.2f}"
        print(line)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
