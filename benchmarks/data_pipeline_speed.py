"""Training data pipeline speed: augmented views per second of the official SDCL augmentations.

One official SYSU-MM01 step takes 128 RGB images (two augmented views each) and 128 IR
images (one view): 384 views of 288x144 from 256 decoded files. This script times that mix,
side by side in one run, on the same JPEG files:

(a) ``per_sample``: the per-sample torch transforms of ``sdcl_toolkit.data.transforms`` as a
    loader worker runs them (decode, jitter, resize, pad + crop, flip, normalise, erase,
    channel op), one process, one thread: views/s per worker (= per core);
(b) ``batched_cpu``: the batched path: the worker decodes and resizes to uint8
    (``ResizedUint8``), ``BatchAugment`` augments the whole batch on the CPU, one thread;
    views/s per core counts both parts;
(c) ``batched_<device>``: the same with ``BatchAugment`` on a GPU (``--device cuda``): the
    worker part (decode + resize, per core) and the GPU augmentation (views/s of the GPU)
    are reported separately: a loader needs ``target / worker_rate`` workers;
(d) ``torchvision``: torchvision's v2 transforms with the same augmentations (PIL decode,
    ``ColorJitter(.5, .5, .5, .5)``, ``Resize``, ``Pad(10)``, ``RandomCrop``, flip,
    ``Normalize``, ``RandomErasing`` + the channel operations as plain callables), run by
    another interpreter (``--torchvision-python``, a venv with torchvision; torchvision is
    never a dependency of sdcl-toolkit) as ``python data_pipeline_speed.py
    --torchvision-worker FILES``; skipped with a note when that interpreter is absent.

    python benchmarks/data_pipeline_speed.py                          # CPU: (a), (b), (d)
    python benchmarks/data_pipeline_speed.py --device cuda            # + (c)
    python benchmarks/data_pipeline_speed.py --torchvision-python /tmp/tv-venv/bin/python

Results: ``benchmarks/results/data_pipeline_speed.json`` (``--out``). Only the standard
library, numpy, PIL and torch are imported at module level, so that the torchvision
interpreter can run the ``--torchvision-worker`` part without sdcl-toolkit installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_TV_PYTHON = "/tmp/tv-venv/bin/python"
# official augmentation constants for the torchvision reference (the toolkit side reads
# them from sdcl_toolkit.data.transforms / SDCLRecipe; the reference interpreter cannot)
TV_MEAN, TV_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TV_ERASING_FILL = (0.4914, 0.4822, 0.4465)
TV_GRAY = (0.2989, 0.5870, 0.1140)


# ----------------------------------------------------------------------------- input files


def write_images(folder: Path, count: int, height: int, width: int, seed: int = 0) -> list[str]:
    """``count`` smooth random JPEGs of ``height x width`` (person-crop sized) in ``folder``."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        coarse = rng.random((height // 16 + 1, width // 16 + 1, 3)) * 255
        image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BILINEAR)
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (height, width, 3))
        path = folder / f"{index:04d}.jpg"
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def _split(paths: list[str]) -> tuple[list[str], list[str]]:
    """First half: RGB images (two views each), second half: IR images (one view)."""
    half = len(paths) // 2
    return paths[:half], paths[half:]


def _views(paths: list[str]) -> int:
    rgb, ir = _split(paths)
    return 2 * len(rgb) + len(ir)


def _best_seconds(run: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    run()  # warm-up (allocations, lazy imports)
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _no_sync() -> None:
    return None


def _faster(row: dict[str, Any], best: dict[str, Any]) -> bool:
    key = "views_per_s" if "views_per_s" in row else "augment_views_per_s"
    return key in row and row[key] > best.get(key, 0.0)


# ----------------------------------------------------------------------------- (a), (b), (c)


def per_sample_path(paths: list[str], height: int, width: int, repeats: int) -> dict[str, Any]:
    """(a) decode + the per-sample official pipelines, one thread."""
    from sdcl_toolkit.data import load_image
    from sdcl_toolkit.data.transforms import (
        ir_train_transform,
        rgb_train_transform,
        rgb_train_transform_second_view,
    )

    first, second = (
        rgb_train_transform(height, width),
        rgb_train_transform_second_view(height, width),
    )
    infrared = ir_train_transform(height, width)
    rgb, ir = _split(paths)
    generator = torch.Generator().manual_seed(0)

    def run() -> None:
        for path in rgb:
            image = load_image(path)
            first(image, generator=generator)
            second(image, generator=generator)
        for path in ir:
            infrared(load_image(path), generator=generator)

    seconds = _best_seconds(run, repeats, _no_sync)
    return {"seconds": seconds, "views": _views(paths), "views_per_s": _views(paths) / seconds}


def decode_resize(paths: list[str], height: int, width: int) -> torch.Tensor:
    """The batched path's worker part: decode + resize to uint8, collated ``[N, 3, H, W]``."""
    from sdcl_toolkit.data import load_image
    from sdcl_toolkit.data.batch_augment import ResizedUint8

    resize = ResizedUint8(height, width)  # uint8 decode + uint8 resize, as the loaders do
    return torch.stack([resize(load_image(path, dtype=resize.input_dtype)) for path in paths])


def batched_path(
    paths: list[str], height: int, width: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """(b) / (c): worker decode + resize (one thread), then ``BatchAugment`` on ``device``."""
    from sdcl_toolkit.data.batch_augment import BatchAugment

    rgb, ir = _split(paths)
    views = {v: BatchAugment(height, width, v) for v in ("rgb", "rgb_exchange", "ir")}
    decoded: dict[str, torch.Tensor] = {}

    def worker() -> None:
        decoded["rgb"] = decode_resize(rgb, height, width)
        decoded["ir"] = decode_resize(ir, height, width)

    worker_seconds = _best_seconds(worker, repeats, _no_sync)
    on_device = {m: t.to(device) for m, t in decoded.items()}
    generator = torch.Generator(device=device).manual_seed(0)

    def augment() -> None:
        views["rgb"](on_device["rgb"], generator)
        views["rgb_exchange"](on_device["rgb"], generator)
        views["ir"](on_device["ir"], generator)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    augment_seconds = _best_seconds(augment, repeats, sync)
    n_views = _views(paths)
    out = {
        "device": str(device),
        "worker_seconds": worker_seconds,
        "augment_seconds": augment_seconds,
        "views": n_views,
        "worker_views_per_s": n_views / worker_seconds,
        "augment_views_per_s": n_views / augment_seconds,
    }
    if device.type == "cpu":  # one core does both parts
        out["views_per_s"] = n_views / (worker_seconds + augment_seconds)
    return out


# ----------------------------------------------------------------------------- (d) torchvision


def torchvision_worker(paths: list[str], height: int, width: int, repeats: int) -> dict[str, Any]:
    """(d), run inside the torchvision interpreter: PIL decode + torchvision v2 transforms."""
    import torchvision
    from torchvision.transforms import v2

    torch.set_num_threads(1)
    weights = torch.tensor(TV_GRAY).view(3, 1, 1)

    def core() -> list:
        return [
            v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5),
            v2.Resize((height, width)),
            v2.Pad(10),
            v2.RandomCrop((height, width)),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(TV_MEAN, TV_STD),
            v2.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=TV_ERASING_FILL),
        ]

    def channel_exchange(image: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 3, (1,)))
        return image[k : k + 1].expand_as(image).clone()

    def adap_gray(image: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 4, (1,)))
        if k < 3:
            return image[k : k + 1].expand_as(image).clone()
        if float(torch.rand(1)) > 0.5:
            return image
        return (image * weights).sum(0, keepdim=True).expand_as(image).clone()

    first = v2.Compose(core())
    second = v2.Compose([*core(), channel_exchange])
    infrared = v2.Compose([*core(), adap_gray])
    rgb, ir = _split(paths)

    def load(path: str):
        with Image.open(path) as image:
            return image.convert("RGB")

    def run() -> None:
        for path in rgb:
            image = load(path)
            first(image)
            second(image)
        for path in ir:
            infrared(load(path))

    seconds = _best_seconds(run, repeats, _no_sync)
    return {
        "seconds": seconds,
        "views": _views(paths),
        "views_per_s": _views(paths) / seconds,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


def run_torchvision(
    python: str, paths: list[str], height: int, width: int, repeats: int
) -> dict[str, Any]:
    """(d) in the torchvision interpreter; ``{"skipped": reason}`` when it cannot run."""
    if not python or not Path(python).exists():
        return {"skipped": f"no torchvision interpreter at {python!r} (see --torchvision-python)"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as listing:
        json.dump({"paths": paths, "height": height, "width": width, "repeats": repeats}, listing)
    try:
        done = subprocess.run(
            [python, str(Path(__file__).resolve()), "--torchvision-worker", listing.name],
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    finally:
        os.unlink(listing.name)
    if done.returncode != 0:
        return {"skipped": f"torchvision run failed: {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main


def measure_all(
    *,
    images: int,
    height: int,
    width: int,
    source_height: int,
    source_width: int,
    repeats: int,
    device: torch.device,
    torchvision_python: Optional[str],
) -> dict[str, Any]:
    """All paths on the same files; returns the JSON payload (rows and ratios)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-core figures
    try:
        with tempfile.TemporaryDirectory() as folder:
            paths = write_images(Path(folder), images, source_height, source_width)
            runs: dict[str, Callable[[], dict[str, Any]]] = {
                "per_sample": lambda: per_sample_path(paths, height, width, 1),
                "batched_cpu": lambda: batched_path(paths, height, width, 1, torch.device("cpu")),
            }
            if device.type != "cpu":
                runs[f"batched_{device.type}"] = lambda: batched_path(
                    paths, height, width, 1, device
                )
            if torchvision_python is not None:
                runs["torchvision"] = lambda: run_torchvision(
                    torchvision_python, paths, height, width, 1
                )
            # rounds interleave the paths, so that a change of machine load hits all alike;
            # each path keeps its fastest round
            results: dict[str, Any] = {}
            for _ in range(repeats):
                for name, run in runs.items():
                    row = run()
                    if name not in results or _faster(row, results[name]):
                        results[name] = row
    finally:
        torch.set_num_threads(threads)
    per_sample = results["per_sample"]["views_per_s"]
    ratios = {"batched_cpu_over_per_sample": results["batched_cpu"]["views_per_s"] / per_sample}
    tv = results.get("torchvision", {})
    if "views_per_s" in tv:
        ratios["per_sample_over_torchvision"] = per_sample / tv["views_per_s"]
    return {
        "setup": {
            "images": images,
            "views": _views(paths),
            "size": [height, width],
            "source_size": [source_height, source_width],
            "repeats": repeats,
            "threads": 1,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "device": str(device),
        },
        "results": results,
        "ratios": ratios,
    }


def print_rows(payload: dict[str, Any]) -> None:
    results = payload["results"]
    print(f"{'path':<28}{'views/s':>10}  note")
    print(f"{'(a) per-sample, 1 core':<28}{results['per_sample']['views_per_s']:>10.1f}")
    cpu = results["batched_cpu"]
    print(
        f"{'(b) batched on CPU, 1 core':<28}{cpu['views_per_s']:>10.1f}  worker decode+resize "
        f"{cpu['worker_views_per_s']:.0f}/s, augment {cpu['augment_views_per_s']:.0f}/s"
    )
    for name, row in results.items():
        if name.startswith("batched_") and name != "batched_cpu":
            print(
                f"{'(c) batched on ' + row['device']:<28}{row['augment_views_per_s']:>10.1f}  "
                f"(GPU augment); worker decode+resize {row['worker_views_per_s']:.0f}/s per core"
            )
    tv = results.get("torchvision")
    if tv is not None:
        if "views_per_s" in tv:
            print(
                f"{'(d) torchvision v2, 1 core':<28}{tv['views_per_s']:>10.1f}  "
                f"torchvision {tv['torchvision']}"
            )
        else:
            print(f"{'(d) torchvision v2':<28}{'-':>10}  {tv['skipped']}")
    for name, value in payload["ratios"].items():
        print(f"  {name} = {value:.2f}")


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of (c), e.g. cuda")
    parser.add_argument("--images", type=int, default=128, help="files: half RGB, half IR")
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--source-height", type=int, default=256, help="height of the JPEGs")
    parser.add_argument("--source-width", type=int, default=128, help="width of the JPEGs")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved rounds (each path's best is kept)"
    )
    parser.add_argument(
        "--torchvision-python",
        default=DEFAULT_TV_PYTHON,
        help="interpreter with torchvision for (d); '' to skip",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "data_pipeline_speed.json")
    args = parser.parse_args(argv)
    if args.images < 2 or args.repeats < 1:
        parser.error("--images must be >= 2 and --repeats >= 1")
    sys.path.insert(0, str(HERE.parent))
    payload = measure_all(
        images=args.images,
        height=args.height,
        width=args.width,
        source_height=args.source_height,
        source_width=args.source_width,
        repeats=args.repeats,
        device=torch.device(args.device),
        torchvision_python=args.torchvision_python or None,
    )
    print_rows(payload)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--torchvision-worker":
        spec = json.loads(Path(sys.argv[2]).read_text())
        row = torchvision_worker(spec["paths"], spec["height"], spec["width"], spec["repeats"])
        print(json.dumps(row))
    else:
        main()
