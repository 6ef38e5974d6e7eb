"""``sdcl-extract``: test features of an image folder or a dataset split, to ``.npy``.

::

    sdcl-extract last.pth --images photos/ --modality ir --out feats.npy
    sdcl-extract last.pth --dataset sysu --data-dir /data/SYSU-MM01 --split query --out q.npy

Writes ``OUT`` (``float32 [N, 2D]``: the L2-normalised, flip-averaged ``[deep; shallow]``
test feature of :meth:`sdcl_toolkit.ShallowDeepViT.extract`, rank by inner product) and
``OUT`` with ``.csv`` instead of ``.npy``: one row per feature row, ``path,pid,camid,modality``
(``pid`` / ``camid`` are -1 for a plain image folder).

Splits: ``train``, ``query``, ``gallery`` (SYSU-MM01: ``--mode`` / ``--trial``; LLCM:
``--direction`` / ``--trial``) and ``test-rgb`` / ``test-ir`` (RegDB: ``--trial``; LLCM).
Exit codes as ``sdcl-evaluate``.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..data.records import IR, RGB, ImageRecord
from ..data.sysu_mm01 import IMAGE_EXTENSIONS
from ..data.transforms import test_transform
from ..engine.features import extract_test_features
from ._cli import (
    EXIT_OK,
    EXIT_USAGE,
    ToolError,
    add_device_arguments,
    check_positive,
    progress,
    resolve_device,
    run_tool,
)
from .evaluate import add_model_arguments, load_model_from_args

__all__ = ["main", "build_parser", "folder_records", "split_records", "write_features"]

_SPLITS = ("train", "query", "gallery", "test-rgb", "test-ir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdcl-extract",
        description="Extract SDCL test features of an image folder or a dataset split to .npy "
        "(+ a .csv record list).",
    )
    parser.add_argument("checkpoint", help="last.pth of a run, or an official SDCL checkpoint")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="a folder of images (searched recursively)")
    source.add_argument("--dataset", choices=("sysu", "regdb", "llcm"))
    parser.add_argument("--modality", choices=(RGB, IR), help="modality of --images")
    parser.add_argument("--data-dir", help="the raw dataset tree (with --dataset)")
    parser.add_argument("--split", choices=_SPLITS, default="query")
    parser.add_argument("--mode", choices=("all", "indoor"), default="all", help="SYSU gallery")
    parser.add_argument(
        "--trial", type=int, default=None, help="gallery draw (SYSU, LLCM: 0..9) or RegDB trial"
    )
    parser.add_argument(
        "--direction", choices=("ir_to_rgb", "rgb_to_ir"), default="ir_to_rgb", help="LLCM"
    )
    parser.add_argument("--out", required=True, help="output .npy file")
    add_model_arguments(parser)
    add_device_arguments(parser)
    return parser


def folder_records(folder: Path, modality: str) -> list[ImageRecord]:
    """Every image under ``folder`` (sorted paths) as records with ``pid = camid = -1``."""
    if not folder.is_dir():
        raise ToolError(f"--images {folder}: no such folder", EXIT_USAGE)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ToolError(
            f"--images {folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})", EXIT_USAGE
        )
    return [ImageRecord(str(p), -1, -1, modality) for p in paths]


def split_records(args: argparse.Namespace) -> list[ImageRecord]:
    """The records of ``--dataset`` / ``--split`` (see the module docstring)."""
    root = Path(args.data_dir)
    split = args.split
    dataset: Any
    if args.dataset == "sysu":
        from ..data.sysu_mm01 import SYSUMM01

        dataset = SYSUMM01(root)
        if split.startswith("test-"):
            raise ToolError("SYSU-MM01 splits are train, query and gallery", EXIT_USAGE)
        if split == "gallery":
            return dataset.gallery(args.mode, args.trial or 0)
        return dataset.train() if split == "train" else dataset.query()
    if args.dataset == "regdb":
        from ..data.regdb import RegDB

        dataset = RegDB(root, trial=args.trial or 1)
        if split == "train":
            return dataset.train()
        if split in ("query", "gallery"):
            raise ToolError("RegDB splits are train, test-rgb and test-ir", EXIT_USAGE)
        return dataset.test(RGB if split == "test-rgb" else IR)
    from ..data.llcm import LLCM

    dataset = LLCM(root)
    if split == "train":
        return dataset.train()
    if split == "query":
        return dataset.query(args.direction, args.trial or 0)
    if split == "gallery":
        return dataset.gallery(args.direction, args.trial or 0)
    return dataset.test(RGB if split == "test-rgb" else IR)


def write_features(out: Path, features: np.ndarray, records: Sequence[ImageRecord]) -> Path:
    """``out`` (.npy) and its ``.csv`` record list; returns the csv path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, features)
    listing = out.with_suffix(".csv")
    with listing.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ImageRecord._fields)
        writer.writerows(records)
    return listing


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``sdcl-extract``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_positive(parser, batch_size=args.batch_size)
    if args.images is not None and args.modality is None:
        parser.error("--images needs --modality rgb or ir (the patch embedding differs)")
    if args.dataset is not None and args.data_dir is None:
        parser.error("--dataset needs --data-dir")
    if not args.out.endswith(".npy"):
        parser.error(f"--out must end in .npy, got {args.out!r}")

    def body() -> int:
        device = resolve_device(args.device)
        if args.images is not None:
            records = folder_records(Path(args.images), args.modality)
        else:
            records = split_records(args)
        loaded = load_model_from_args(args, args.checkpoint, device)
        print(f"loaded {loaded.summary}", flush=True)
        transform = test_transform(*loaded.img_size)
        parts, order = [], []
        for modality in (RGB, IR):
            chosen = [r for r in records if r.modality == modality]
            if chosen:
                parts.append(
                    extract_test_features(
                        loaded.model,
                        chosen,
                        modality,
                        transform,
                        device=device,
                        batch_size=args.batch_size,
                        num_workers=args.workers,
                        progress=progress(not args.no_progress, f"features {modality}"),
                    ).numpy()
                )
                order += chosen
        features = np.concatenate(parts).astype(np.float32)
        listing = write_features(Path(args.out), features, order)
        print(f"wrote {args.out} (float32 {list(features.shape)}) and {listing}")
        return EXIT_OK

    return run_tool(parser, body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
