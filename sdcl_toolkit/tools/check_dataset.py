"""``sdcl-check-dataset ROOT --dataset sysu|regdb|llcm``: is this tree ready for training?

Prints identities, images per split / modality / camera, the split files found, every
image that fails to decode and the differences from the official counts
(:func:`sdcl_toolkit.data.dataset_check.check_dataset`). ``--json`` prints the report as
JSON instead. ``--no-decode`` skips the decoding pass; ``--no-official`` skips the
comparison (e.g. for the generated miniature trees).

Exit codes: 0 the tree passed; 1 a layout problem, an unreadable image or a count that
differs from the official one; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Optional

from ..data.dataset_check import DATASETS, check_dataset
from ._cli import EXIT_FAILURE, EXIT_OK, progress, run_tool

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdcl-check-dataset",
        description="Check a SYSU-MM01 / RegDB / LLCM tree: layout, counts per split, "
        "modality and camera, unreadable images, official counts.",
    )
    parser.add_argument("root", help="the dataset tree")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--no-decode", action="store_true", help="do not decode every image")
    parser.add_argument(
        "--no-official", action="store_true", help="do not compare with the official counts"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar / lines")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``sdcl-check-dataset``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        report = check_dataset(
            args.root,
            args.dataset,
            decode=not args.no_decode,
            compare_official=not args.no_official,
            progress=progress(not (args.no_progress or args.json), "decoding"),
        )
        print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
        return EXIT_OK if report.ok else EXIT_FAILURE

    return run_tool(parser, body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
