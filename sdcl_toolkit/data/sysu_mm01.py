"""SYSU-MM01 read from its raw, unmodified directory tree.

The query and gallery follow the dataset authors' evaluation protocol, the one SDCL (Yang,
Chen, Ye, CVPR 2024) reports (see ``docs/datasets.md``).

Expected layout (as distributed by the dataset authors)::

    root/cam1 ... cam6/<4-digit id>/<image>.jpg   visible: cam1, cam2, cam4, cam5
                                                 infrared: cam3, cam6
    root/exp/train_id.txt, val_id.txt, test_id.txt   one line of comma-separated ids

* Training set: every image of the ``train`` and ``val`` identities (395 on the real
  dataset), both modalities.
* Query: every infrared image (cam3, cam6) of the ``test`` identities (3,803 images).
* Gallery, per trial: one image per (test identity, visible camera); all-search uses cams
  1, 2, 4, 5 and indoor-search cams 1, 2. The choice reproduces the evaluation script of
  the dataset authors used by SDCL and most VI-ReID papers *exactly*: a Python
  ``random.Random(trial)`` (the same stream as ``random.seed(trial)``), then for each test
  identity in sorted order and each camera in that order, one ``choice`` over the sorted
  file list of that ``cam/id`` folder when the folder exists. Galleries are therefore
  identical, file for file, to those behind published SYSU-MM01 numbers (trials 0..9).

Example::

    from sdcl_toolkit.data.sysu_mm01 import SYSUMM01
    from sdcl_toolkit import evaluate_rank, mean_rank_results

    sysu = SYSUMM01("/data/SYSU-MM01")
    train = sysu.train()                       # list of ImageRecord(path, pid, camid, modality)
    query = sysu.query()
    gallery = sysu.gallery(mode="all", trial=0)
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

from .._validation import check_int
from .records import IR, RGB, ImageRecord

__all__ = [
    "DatasetLayoutError",
    "SYSUMM01",
    "SYSU_RGB_CAMERAS",
    "SYSU_IR_CAMERAS",
    "SYSU_GALLERY_CAMERAS",
    "SYSU_NUM_TRIALS",
    "IMAGE_EXTENSIONS",
]

logger = logging.getLogger(__name__)

SYSU_RGB_CAMERAS: tuple[int, ...] = (1, 2, 4, 5)
"""Visible cameras of SYSU-MM01."""
SYSU_IR_CAMERAS: tuple[int, ...] = (3, 6)
"""Infrared cameras of SYSU-MM01."""
SYSU_GALLERY_CAMERAS: dict[str, tuple[int, ...]] = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
"""Gallery cameras of the two search modes, in the order the official sampler visits them."""
SYSU_NUM_TRIALS = 10
"""Number of gallery trials reported (``trial = 0 .. 9``)."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
"""File name endings taken as images (case-insensitive)."""

_SPLITS = ("train", "val", "test")
_MAX_LISTED = 25

PathLike = Union[str, "os.PathLike[str]"]

_SYSU_LAYOUT = """Expected SYSU-MM01 layout:
  <root>/cam1 ... cam6/<4-digit id>/<image>.jpg
      (visible: cam1, cam2, cam4, cam5; infrared: cam3, cam6)
  <root>/exp/train_id.txt, val_id.txt, test_id.txt (one line of comma-separated ids)"""


class DatasetLayoutError(FileNotFoundError, ValueError):
    """A dataset tree is missing folders or files, or an index file is malformed.

    Raised once per tree with every problem found (``problems``) and the expected layout
    in the message. Subclasses :class:`FileNotFoundError` and :class:`ValueError`.
    """

    def __init__(self, dataset: str, root: Path, problems: Sequence[str], layout: str) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.problems = list(problems)
        self.layout = layout
        shown = [f"  - {p}" for p in self.problems[:_MAX_LISTED]]
        if len(self.problems) > _MAX_LISTED:
            shown.append(f"  ... and {len(self.problems) - _MAX_LISTED} more")
        message = (
            f"{dataset} tree at {self.root} is not usable ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}):\n" + "\n".join(shown) + "\n" + layout
        )
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # OSError would format its args as (errno, strerror)
        return self.message

    def __reduce__(self):
        return (type(self), (self.dataset, self.root, self.problems, self.layout))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _folder_name(pid: int) -> str:
    return f"{pid:04d}"  # the official scripts format ids this way


def _parse_ids(path: Path, problems: list[str]) -> Optional[list[int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        problems.append(f"cannot read exp/{path.name}: {error.strerror or error}")
        return None
    tokens = [t.strip() for t in text.replace("\n", ",").split(",")]
    tokens = [t for t in tokens if t]
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        problems.append(
            f"exp/{path.name} holds non-integer ids {bad[:5]}; expected one line of "
            "comma-separated integers such as 1,2,4"
        )
        return None
    ids = [int(t) for t in tokens]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        problems.append(f"exp/{path.name} lists identities more than once: {duplicates[:10]}")
    return ids


def _hint(root: Path) -> Optional[str]:
    """Suggest a sub-folder that looks like the dataset root (a common mistake)."""
    try:
        for child in sorted(root.iterdir()):
            if child.is_dir() and (child / "cam1").is_dir() and (child / "exp").is_dir():
                return f"{child} looks like a SYSU-MM01 root; pass that path instead"
    except OSError:
        return None
    return None


class SYSUMM01:
    """SYSU-MM01 reader: training records, query and per-trial galleries as ImageRecords.

    The constructor checks the whole tree once and raises a single
    :class:`DatasetLayoutError` listing every missing folder/file; after that the record
    lists are built from an in-memory index (no further directory walks).

    Parameters
    ----------
    root:
        The SYSU-MM01 directory (containing ``cam1`` ... ``cam6`` and ``exp``).

    Attributes
    ----------
    root:
        Absolute path of the tree; record paths are ``root/camN/<id>/<file>``.
    train_ids, val_ids, test_ids:
        Identities listed in ``exp/*.txt``, sorted.
    """

    def __init__(self, root: PathLike) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        self.root = Path(root).expanduser().resolve()
        problems: list[str] = []
        if not self.root.is_dir():
            problems.append(f"root folder {self.root} does not exist")
            raise DatasetLayoutError("SYSU-MM01", self.root, problems, _SYSU_LAYOUT)

        cameras: dict[int, set] = {}
        for cam in range(1, 7):
            folder = self.root / f"cam{cam}"
            if folder.is_dir():
                cameras[cam] = {e.name for e in os.scandir(folder) if e.is_dir()}
            else:
                problems.append(f"missing folder cam{cam}/")
        split_ids: dict[str, list[int]] = {}
        for split in _SPLITS:
            path = self.root / "exp" / f"{split}_id.txt"
            if not path.is_file():
                problems.append(f"missing file exp/{split}_id.txt")
                continue
            ids = _parse_ids(path, problems)
            if ids is not None:
                split_ids[split] = ids
        if "test" in split_ids and not split_ids["test"]:
            problems.append("exp/test_id.txt lists no identities")
        if {"train", "val"} <= set(split_ids) and not split_ids["train"] + split_ids["val"]:
            problems.append("exp/train_id.txt and exp/val_id.txt list no identities")
        owner: dict[int, str] = {}
        for split, ids in split_ids.items():
            for pid in set(ids):
                if pid in owner:
                    problems.append(
                        f"identity {_folder_name(pid)} is listed in both exp/{owner[pid]}_id.txt "
                        f"and exp/{split}_id.txt"
                    )
                owner[pid] = split

        # index: (camera, pid) -> sorted image file names
        self._files: dict[tuple[int, int], list[str]] = {}
        non_images: list[str] = []
        for split, ids in split_ids.items():
            for pid in sorted(set(ids)):
                name = _folder_name(pid)
                found = False
                for cam, entries in cameras.items():
                    if name not in entries:
                        continue
                    found = True
                    listing = sorted(os.listdir(self.root / f"cam{cam}" / name))
                    images = [f for f in listing if _is_image(f)]
                    if not images:
                        problems.append(f"cam{cam}/{name}/ holds no image files")
                    if len(images) != len(listing) and split == "test":
                        non_images.append(f"cam{cam}/{name}")
                    self._files[(cam, pid)] = images
                if not found and len(cameras) == 6:
                    problems.append(
                        f"identity {name} (exp/{split}_id.txt) has no folder in any camera "
                        f"(looked for cam1..cam6/{name}/)"
                    )
        if problems:
            hint = _hint(self.root) if len(cameras) == 0 else None
            if hint:
                problems.append(hint)
            raise DatasetLayoutError("SYSU-MM01", self.root, problems, _SYSU_LAYOUT)
        if non_images:
            logger.warning(
                "%d test folders hold files that are not images (e.g. %s); they are ignored, "
                "whereas the official script would also draw gallery images among them",
                len(non_images),
                non_images[0],
            )
        # sorted like the official scripts: by the 4-digit folder name
        key = _folder_name
        self.train_ids: tuple[int, ...] = tuple(sorted(split_ids["train"], key=key))
        self.val_ids: tuple[int, ...] = tuple(sorted(split_ids["val"], key=key))
        self.test_ids: tuple[int, ...] = tuple(sorted(split_ids["test"], key=key))

    # ------------------------------------------------------------------ records
    def _records(self, ids: Sequence[int], cameras: Sequence[int]) -> list[ImageRecord]:
        records = []
        for pid in ids:
            for cam in cameras:
                modality = IR if cam in SYSU_IR_CAMERAS else RGB
                folder = self.root / f"cam{cam}" / _folder_name(pid)
                for name in self._files.get((cam, pid), ()):
                    records.append(ImageRecord(str(folder / name), pid, cam, modality))
        return records

    def train(self, modality: Optional[str] = None) -> list[ImageRecord]:
        """Training records: all images of the train + val identities.

        Parameters
        ----------
        modality:
            ``None`` for both modalities, ``"rgb"`` (cams 1, 2, 4, 5) or ``"ir"`` (cams 3, 6).

        Returns
        -------
        list of ImageRecord
            Ordered by identity, then camera, then file name; ``pid`` is the dataset id.
        """
        cameras = _modality_cameras(modality)
        ids = sorted(self.train_ids + self.val_ids, key=_folder_name)
        return self._records(ids, cameras)

    def query(self) -> list[ImageRecord]:
        """Query records: every infrared image (cam3, cam6) of the test identities, in the
        official order (identity, camera 3 then 6, sorted file names). The same query set
        serves all-search and indoor-search."""
        return self._records(self.test_ids, SYSU_IR_CAMERAS)

    def gallery(self, mode: str = "all", trial: int = 0) -> list[ImageRecord]:
        """Gallery records of one trial: one random image per (test identity, camera).

        Parameters
        ----------
        mode:
            ``"all"`` (cams 1, 2, 4, 5) or ``"indoor"`` (cams 1, 2).
        trial:
            Seed of the draw; published results average trials ``0 .. 9``.

        Returns
        -------
        list of ImageRecord
            Identical to the official ``process_gallery_sysu(data_path, mode, trial)``.
        """
        if mode not in SYSU_GALLERY_CAMERAS:
            raise ValueError(f"mode must be 'all' or 'indoor', got {mode!r}")
        trial = check_int(trial, "trial")
        draw = random.Random(trial)  # same stream as the official random.seed(trial)
        records = []
        for pid in self.test_ids:
            for cam in SYSU_GALLERY_CAMERAS[mode]:
                files = self._files.get((cam, pid))
                if files:
                    name = draw.choice(files)
                    path = self.root / f"cam{cam}" / _folder_name(pid) / name
                    records.append(ImageRecord(str(path), pid, cam, RGB))
        return records

    def __repr__(self) -> str:
        return (
            f"SYSUMM01(root={str(self.root)!r}, train_ids={len(self.train_ids)}, "
            f"val_ids={len(self.val_ids)}, test_ids={len(self.test_ids)})"
        )


def _modality_cameras(modality: Optional[str]) -> tuple[int, ...]:
    if modality is None:
        return (1, 2, 3, 4, 5, 6)
    if modality == RGB:
        return SYSU_RGB_CAMERAS
    if modality == IR:
        return SYSU_IR_CAMERAS
    raise ValueError(f"modality must be None, {RGB!r} or {IR!r}, got {modality!r}")
