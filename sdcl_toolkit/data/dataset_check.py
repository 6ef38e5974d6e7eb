"""Check a dataset tree before training: layout, counts per split / modality / camera,
unreadable images, and the official counts of SYSU-MM01 and RegDB.

Two levels:

* :func:`quick_check` (cheap, no image decoding; what a trainer runs at start): opens the
  tree with its reader, which checks every folder, split file and listed image, and checks
  that every split holds images of both modalities. Raises one
  :class:`~sdcl_toolkit.data.sysu_mm01.DatasetLayoutError` listing every problem; returns
  the :class:`DatasetReport` otherwise.
* :func:`check_dataset` (``sdcl-check-dataset``): the same counts, plus a full decode of
  every image (``unreadable``) and, with ``compare_official``, a comparison with the
  official counts (``mismatches``). Never raises for a problem of the data: everything goes
  into the report, whose :attr:`DatasetReport.ok` says whether it passed.

Official counts (:data:`OFFICIAL_COUNTS`): SYSU-MM01 (Wu et al., ICCV 2017, the evaluation
protocol of the dataset authors): training 395 identities (``train`` + ``val``) with 22,258
visible and 11,909 infrared images; test 96 identities with 3,803 infrared queries. RegDB
(Nguyen et al., Sensors 2017): 412 identities with 10 visible and 10 thermal images each;
each trial splits them into 206 training and 206 test identities (2,060 images per modality
each). LLCM trees are counted but not compared (no official count is checked).

This module imports no plotting library (the engine may import it).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .images import ImageDecodeError, load_image
from .records import IR, RGB, ImageRecord
from .sysu_mm01 import DatasetLayoutError

__all__ = [
    "DATASETS",
    "OFFICIAL_COUNTS",
    "DatasetReport",
    "check_dataset",
    "quick_check",
]

DATASETS = ("sysu", "regdb", "llcm")
"""Dataset names accepted by :func:`check_dataset` and :func:`quick_check`."""

OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "sysu": {
        "train identities": 395,
        "train rgb images": 22258,
        "train ir images": 11909,
        "test identities": 96,
        "query ir images": 3803,
    },
    "regdb": {
        "identities": 412,
        "rgb images": 4120,
        "ir images": 4120,
        "train identities per trial": 206,
        "test identities per trial": 206,
        "train rgb images per trial": 2060,
        "train ir images per trial": 2060,
        "test rgb images per trial": 2060,
        "test ir images per trial": 2060,
    },
}
"""The published sizes compared by :func:`check_dataset` (see the module docstring)."""

PathLike = Union[str, "os.PathLike[str]"]
_REGDB_TRIALS = range(1, 11)


@dataclass
class DatasetReport:
    """What :func:`check_dataset` / :func:`quick_check` found in a tree.

    Attributes
    ----------
    dataset, root: what was checked.
    counts: ``{name: number}`` (identities and images per split and modality; names as in
        :data:`OFFICIAL_COUNTS`).
    cameras: ``{"<split> <modality>": {camera: images}}``.
    split_files: index / split files found, relative to ``root``.
    unreadable: ``"path: reason"`` of images that failed to decode (full check only).
    mismatches: ``"name: found X, official Y"`` (full check with ``compare_official``).
    problems: layout problems (the reader's :class:`DatasetLayoutError` list, or empty splits).
    decoded: number of images decoded (0 for the quick check).
    """

    dataset: str
    root: str
    counts: dict[str, int] = field(default_factory=dict)
    cameras: dict[str, dict[int, int]] = field(default_factory=dict)
    split_files: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    decoded: int = 0

    @property
    def ok(self) -> bool:
        """No layout problem, no unreadable image and no mismatch with the official counts."""
        return not (self.problems or self.unreadable or self.mismatches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "root": self.root,
            "ok": self.ok,
            "counts": dict(self.counts),
            "cameras": {k: {str(c): n for c, n in v.items()} for k, v in self.cameras.items()},
            "split_files": list(self.split_files),
            "unreadable": list(self.unreadable),
            "mismatches": list(self.mismatches),
            "problems": list(self.problems),
            "decoded": self.decoded,
        }

    def format(self) -> str:
        """A readable multi-line summary (what ``sdcl-check-dataset`` prints)."""
        lines = [f"{self.dataset} at {self.root}"]
        if self.problems:
            lines.append(f"layout problems ({len(self.problems)}):")
            lines += [f"  - {p}" for p in self.problems]
        if self.counts:
            lines.append("counts:")
            lines += [f"  {name:<30}{value:>8}" for name, value in self.counts.items()]
        if self.cameras:
            lines.append("images per camera:")
            for name, per_camera in self.cameras.items():
                shown = ", ".join(f"cam{c}: {n}" for c, n in sorted(per_camera.items()))
                lines.append(f"  {name:<14}{shown}")
        if self.split_files:
            lines.append(
                f"split files found ({len(self.split_files)}): " + _short(self.split_files)
            )
        if self.decoded:
            lines.append(f"decoded {self.decoded} images, {len(self.unreadable)} unreadable")
            lines += [f"  - {u}" for u in self.unreadable[:20]]
            if len(self.unreadable) > 20:
                lines.append(f"  ... and {len(self.unreadable) - 20} more")
        if self.mismatches:
            lines.append(f"differences from the official counts ({len(self.mismatches)}):")
            lines += [f"  - {m}" for m in self.mismatches]
        lines.append("OK" if self.ok else "NOT OK")
        return "\n".join(lines)


def _short(items: Sequence[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _check_dataset_name(dataset: str) -> str:
    if not isinstance(dataset, str) or dataset.lower() not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    return dataset.lower()


def _count(report: DatasetReport, split: str, records: Sequence[ImageRecord]) -> None:
    """Identities, images per modality and per camera of one split."""
    report.counts[f"{split} identities"] = len({r.pid for r in records})
    for modality in (RGB, IR):
        chosen = [r for r in records if r.modality == modality]
        report.counts[f"{split} {modality} images"] = len(chosen)
        if chosen:
            report.cameras[f"{split} {modality}"] = dict(
                sorted(Counter(r.camid for r in chosen).items())
            )
        else:
            report.problems.append(f"the {split} split holds no {modality} image")


def _relative_files(root: Path, folder: str) -> list[str]:
    directory = root / folder
    if not directory.is_dir():
        return []
    return sorted(f"{folder}/{p.name}" for p in directory.iterdir() if p.suffix == ".txt")


def _inspect(root: Path, dataset: str) -> tuple[DatasetReport, list[ImageRecord]]:
    """Open the tree with its reader and count; returns the report and every image record."""
    report = DatasetReport(dataset, str(root))
    records: list[ImageRecord] = []
    try:
        if dataset == "sysu":
            from .sysu_mm01 import SYSU_RGB_CAMERAS, SYSUMM01

            sysu = SYSUMM01(root)
            report.split_files = _relative_files(sysu.root, "exp")
            train, query = sysu.train(), sysu.query()
            candidates = sysu._records(sysu.test_ids, SYSU_RGB_CAMERAS)
            _count(report, "train", train)
            report.counts["test identities"] = len(sysu.test_ids)
            report.counts["query ir images"] = len(query)
            report.counts["gallery candidate rgb images"] = len(candidates)
            report.cameras["query ir"] = dict(sorted(Counter(r.camid for r in query).items()))
            if not query:
                report.problems.append("the test identities have no infrared image")
            records = train + query + candidates
        elif dataset == "regdb":
            records = _inspect_regdb(root, report)
        else:
            from .llcm import LLCM

            llcm = LLCM(root)
            report.split_files = _relative_files(llcm.root, "idx")
            train = llcm.train()
            _count(report, "train", train)
            test = llcm.test(RGB) + llcm.test(IR)
            _count(report, "test", test)
            records = train + test
    except DatasetLayoutError as error:
        report.problems.extend(error.problems)
    return report, records


def _inspect_regdb(root: Path, report: DatasetReport) -> list[ImageRecord]:
    from .regdb import RegDB

    trials = [t for t in _REGDB_TRIALS if (root / "idx" / f"train_visible_{t}.txt").is_file()]
    if not trials:
        RegDB(root, trial=1)  # raises the reader's full list of problems
    report.split_files = _relative_files(Path(root), "idx")
    records: dict[str, ImageRecord] = {}
    per_trial: dict[str, set[int]] = {}
    for trial in trials:
        regdb = RegDB(root, trial=trial)
        splits = {"train": regdb.train(), "test": regdb.test(RGB) + regdb.test(IR)}
        for split, split_records in splits.items():
            for r in split_records:
                records.setdefault(r.path, r)
            per_trial.setdefault(f"{split} identities per trial", set()).add(
                len({r.pid for r in split_records})
            )
            for modality in (RGB, IR):
                count = sum(r.modality == modality for r in split_records)
                per_trial.setdefault(f"{split} {modality} images per trial", set()).add(count)
                if count == 0:
                    report.problems.append(f"trial {trial}: the {split} split has no {modality}")
    visible = Path(root) / "Visible"
    report.counts["identities"] = sum(p.is_dir() for p in visible.iterdir())
    for modality, folder in ((RGB, "Visible"), (IR, "Thermal")):
        report.counts[f"{modality} images"] = sum(
            len(files) for _, _, files in os.walk(Path(root) / folder)
        )
    report.counts["trials found"] = len(trials)
    for name, values in per_trial.items():
        if len(values) == 1:
            report.counts[name] = values.pop()
        else:
            report.problems.append(f"{name} differs between trials: {sorted(values)}")
    return list(records.values())


def quick_check(root: PathLike, dataset: str) -> DatasetReport:
    """The cheap check a trainer runs at start: layout and non-empty splits, no decoding.

    Parameters
    ----------
    root: the dataset tree.
    dataset: ``"sysu"``, ``"regdb"`` or ``"llcm"``.

    Returns
    -------
    DatasetReport with ``counts``, ``cameras`` and ``split_files`` (``decoded`` = 0).

    Raises
    ------
    DatasetLayoutError
        Listing every problem found (missing folders or split files, malformed split files,
        listed images that do not exist, a split without images of one modality).
    ValueError
        ``dataset`` is not one of :data:`DATASETS`.
    """
    dataset = _check_dataset_name(dataset)
    report, _ = _inspect(Path(root).expanduser(), dataset)
    if report.problems:
        layout = "See docs/datasets.md for the expected layout."
        names = {"sysu": "SYSU-MM01", "regdb": "RegDB", "llcm": "LLCM"}
        raise DatasetLayoutError(names[dataset], Path(root), report.problems, layout)
    return report


def check_dataset(
    root: PathLike,
    dataset: str,
    *,
    decode: bool = True,
    compare_official: bool = True,
    progress: Optional[Callable] = None,
) -> DatasetReport:
    """The full check of ``sdcl-check-dataset``: counts, unreadable images, official counts.

    Parameters
    ----------
    root, dataset: as :func:`quick_check`.
    decode: decode every image (with :func:`sdcl_toolkit.data.load_image`) and list those
        that fail in ``unreadable``.
    compare_official: compare ``counts`` with :data:`OFFICIAL_COUNTS` (SYSU-MM01, RegDB) and
        list the differences in ``mismatches``.
    progress: optional ``tqdm``-like wrapper for the decoding loop.

    Returns
    -------
    DatasetReport; ``report.ok`` is False on any problem, unreadable image or mismatch.
    """
    dataset = _check_dataset_name(dataset)
    report, records = _inspect(Path(root).expanduser(), dataset)
    if decode and records:
        paths = sorted({r.path for r in records})
        for path in progress(paths) if progress is not None else paths:
            try:
                load_image(path)
            except ImageDecodeError as error:
                report.unreadable.append(str(error))
        report.decoded = len(paths)
    if compare_official and not report.problems:
        for name, official in OFFICIAL_COUNTS.get(dataset, {}).items():
            found = report.counts.get(name)
            if found != official:
                report.mismatches.append(f"{name}: found {found}, official {official}")
    return report
