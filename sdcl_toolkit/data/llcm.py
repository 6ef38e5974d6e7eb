"""LLCM read from its raw directory tree, with the evaluation protocol of its authors.

LLCM (Zhang and Wang, *Diverse Embedding Expansion Network and Low-Light Cross-Modality
Benchmark for Visible-Infrared Person Re-identification*, CVPR 2023) is a low-light
visible / near-infrared benchmark of 1,064 identities filmed by 9 dual-mode cameras. The
layout and protocol below follow the authors' code (repository ``ZYK100/LLCM``,
``DEEN/data_manager.py``, ``DEEN/data_loader.py`` and ``DEEN/test.py``); see
``docs/datasets.md`` for what was assumed.

Expected layout::

    root/idx/train_vis.txt, train_nir.txt     lines "<path relative to root> <label>"
    root/idx/test_id.txt                      one line of comma-separated test ids
    root/test_vis/cam1 ... cam9/<4-digit id>/<image>            visible test images
    root/test_nir/cam1, cam2, cam4 ... cam9/<4-digit id>/<image> near-infrared test images

(the training images live wherever the ``idx`` lists point, ``train_vis/camN/<id>/...`` and
``train_nir/camN/<id>/...`` in the distributed archive). Camera numbers are shared by the two
modalities (one dual-mode camera records both), so ``camid`` is the number in ``camN``.

Protocol (both directions, 10 trials ``0..9``, as ``DEEN/test.py``):

* ``"ir_to_rgb"`` (``test_mode = [1, 2]``): queries are every near-infrared test image
  (identities sorted, cameras 1, 2, 4 .. 9, sorted file names); the gallery of trial ``t``
  is drawn with ``random.seed(t)``: for each test identity (sorted) and each visible camera
  1 .. 9 whose ``camN/<id>`` folder exists, one ``random.choice`` over its sorted files.
* ``"rgb_to_ir"`` (``test_mode = [2, 1]``): the authors' code draws one near-infrared image
  per (identity, camera) the same way and ranks the *whole visible test set* for each of them
  (``eval_llcm(-distmat, gall_label, query_label, gall_cam, query_cam)``): the drawn
  near-infrared images are the ranked queries, the visible test set the gallery.
* Scoring: ``evaluate_rank(..., protocol="llcm")``: gallery images with the query's identity
  and camera are removed, CMC over distinct identities (the authors' ``eval_llcm``).

SDCL (Yang, Chen, Ye, CVPR 2024) publishes no LLCM recipe; :func:`llcm_recipe` is a
starting point of this toolkit, **not from the official SDCL code**.

Example::

    from sdcl_toolkit.data.llcm import LLCM

    llcm = LLCM("/data/LLCM")
    train = llcm.train()
    query, gallery = llcm.query("ir_to_rgb"), llcm.gallery("ir_to_rgb", trial=0)
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Optional, Union

from ..modality import parse_direction
from ..recipe import SDCLRecipe
from .records import IR, RGB, ImageRecord, read_labelled_list
from .sysu_mm01 import IMAGE_EXTENSIONS, DatasetLayoutError

__all__ = [
    "LLCM",
    "LLCM_VISIBLE_CAMERAS",
    "LLCM_INFRARED_CAMERAS",
    "LLCM_NUM_TRIALS",
    "LLCM_DIRECTIONS",
    "llcm_recipe",
]

LLCM_VISIBLE_CAMERAS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9)
"""Cameras of the visible test folders (``test_vis/camN``), in the authors' order."""
LLCM_INFRARED_CAMERAS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 8, 9)
"""Cameras of the near-infrared test folders (``test_nir/camN``; no camera 3)."""
LLCM_NUM_TRIALS = 10
"""Number of gallery trials reported (``trial = 0 .. 9``)."""
LLCM_DIRECTIONS = ("ir_to_rgb", "rgb_to_ir")
"""The two evaluation directions (see the module docstring)."""

_FOLDERS = {RGB: "test_vis", IR: "test_nir"}
_CAMERAS = {RGB: LLCM_VISIBLE_CAMERAS, IR: LLCM_INFRARED_CAMERAS}
_TRAIN_LISTS = {RGB: "train_vis.txt", IR: "train_nir.txt"}
_CAMERA_IN_PATH = re.compile(r"(?:^|/)cam(\d+)(?:/|$)")
_MISSING_SHOWN = 10

PathLike = Union[str, "os.PathLike[str]"]

_LLCM_LAYOUT = """Expected LLCM layout:
  <root>/idx/train_vis.txt, train_nir.txt (lines "<relative path> <label>")
  <root>/idx/test_id.txt (one line of comma-separated ids)
  <root>/test_vis/cam1 ... cam9/<4-digit id>/<image>
  <root>/test_nir/cam1, cam2, cam4 ... cam9/<4-digit id>/<image>"""


def llcm_recipe() -> SDCLRecipe:
    """An SDCL recipe for LLCM: **not from the official SDCL code** (which has no LLCM
    setting). It takes the official SYSU-MM01 values (LLCM, like SYSU-MM01, is a multi-camera,
    unpaired benchmark), named ``"llcm-unofficial"`` so that logs and results say so."""
    return SDCLRecipe.sysu().replace(name="llcm-unofficial", dataset="llcm")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _camera_of(relative: str) -> Optional[int]:
    match = _CAMERA_IN_PATH.search(relative.replace("\\", "/"))
    return int(match.group(1)) if match else None


def _read_test_ids(path: Path, problems: list[str]) -> list[int]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        problems.append(f"cannot read idx/{path.name}: {error.strerror or error}")
        return []
    tokens = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        problems.append(f"idx/{path.name} holds non-integer ids {bad[:5]}")
        return []
    if not tokens:
        problems.append(f"idx/{path.name} lists no identities")
    return sorted({int(t) for t in tokens})


class LLCM:
    """LLCM reader: training records, queries and per-trial galleries as ImageRecords.

    The constructor reads the index files and the test folders once and raises one
    :class:`~sdcl_toolkit.data.sysu_mm01.DatasetLayoutError` listing every problem (missing
    files or folders, malformed lines, listed training images that do not exist, test
    identities without images).

    Parameters
    ----------
    root:
        The LLCM directory (containing ``idx``, ``test_vis`` and ``test_nir``).
    """

    def __init__(self, root: PathLike) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        self.root = Path(root).expanduser().resolve()
        problems: list[str] = []
        if not self.root.is_dir():
            problems.append(f"root folder {self.root} does not exist")
            raise DatasetLayoutError("LLCM", self.root, problems, _LLCM_LAYOUT)
        for folder in ("idx", *_FOLDERS.values()):
            if not (self.root / folder).is_dir():
                problems.append(f"missing folder {folder}/")

        self._train: dict[str, list[ImageRecord]] = {}
        missing: list[str] = []
        for modality, name in _TRAIN_LISTS.items():
            path = self.root / "idx" / name
            if not path.is_file():
                problems.append(f"missing file idx/{name}")
                continue
            records = []
            for relative, label in read_labelled_list(path, problems) or []:
                camera = _camera_of(relative)
                if camera is None:
                    problems.append(f"idx/{name}: no camN folder in path {relative!r}")
                    break
                image = self.root / relative
                if not image.is_file():
                    missing.append(relative)
                records.append(ImageRecord(str(image), label, camera, modality))
            self._train[modality] = records
        if missing:
            more = len(missing) - _MISSING_SHOWN
            problems.append(
                f"{len(missing)} training image(s) listed in idx/ do not exist: "
                + ", ".join(missing[:_MISSING_SHOWN])
                + (f" and {more} more" if more > 0 else "")
            )

        ids_path = self.root / "idx" / "test_id.txt"
        self.test_ids: tuple[int, ...] = ()
        if ids_path.is_file():
            self.test_ids = tuple(_read_test_ids(ids_path, problems))
        else:
            problems.append("missing file idx/test_id.txt")
        # index: (modality, camera, pid) -> sorted image names
        self._files: dict[tuple[str, int, int], list[str]] = {}
        for modality, folder in _FOLDERS.items():
            if not (self.root / folder).is_dir():
                continue
            seen = set()
            for camera in _CAMERAS[modality]:
                for pid in self.test_ids:
                    directory = self.root / folder / f"cam{camera}" / f"{pid:04d}"
                    if directory.is_dir():
                        names = sorted(n for n in os.listdir(directory) if _is_image(n))
                        if names:
                            self._files[(modality, camera, pid)] = names
                            seen.add(pid)
            absent = [pid for pid in self.test_ids if pid not in seen]
            if absent:
                problems.append(
                    f"{len(absent)} test identities have no image in {folder}/ "
                    f"(e.g. {absent[0]:04d})"
                )
        if problems:
            raise DatasetLayoutError("LLCM", self.root, problems, _LLCM_LAYOUT)

    # ------------------------------------------------------------------ records
    def train(self, modality: Optional[str] = None) -> list[ImageRecord]:
        """Training records from ``idx/train_vis.txt`` then ``idx/train_nir.txt`` (or one
        ``modality``, ``"rgb"`` = visible, ``"ir"`` = near-infrared); ``pid`` is the list's
        label, ``camid`` the ``camN`` of the path."""
        modalities = (RGB, IR) if modality is None else (_check_modality(modality),)
        return [r for m in modalities for r in self._train[m]]

    def test(self, modality: str) -> list[ImageRecord]:
        """Every test image of one modality: identities sorted, then cameras in the
        authors' order, then sorted file names (their ``process_query_llcm``)."""
        modality = _check_modality(modality)
        folder = self.root / _FOLDERS[modality]
        return [
            ImageRecord(str(folder / f"cam{cam}" / f"{pid:04d}" / name), pid, cam, modality)
            for pid in self.test_ids
            for cam in _CAMERAS[modality]
            for name in self._files.get((modality, cam, pid), ())
        ]

    def sample(self, modality: str, trial: int = 0) -> list[ImageRecord]:
        """One image per (test identity, camera) of ``modality``, drawn as the authors'
        ``process_gallery_llcm`` with ``random.seed(trial)`` (a ``random.Random(trial)``)."""
        modality = _check_modality(modality)
        if isinstance(trial, bool) or not isinstance(trial, int):
            raise TypeError(f"trial must be an int, got {type(trial).__name__}")
        draw = random.Random(trial)
        folder = self.root / _FOLDERS[modality]
        records = []
        for pid in self.test_ids:
            for cam in _CAMERAS[modality]:
                names = self._files.get((modality, cam, pid))
                if names:
                    path = folder / f"cam{cam}" / f"{pid:04d}" / draw.choice(names)
                    records.append(ImageRecord(str(path), pid, cam, modality))
        return records

    def query(self, direction: str = "ir_to_rgb", trial: int = 0) -> list[ImageRecord]:
        """The ranked queries of ``direction`` in ``trial``: all near-infrared test images
        for ``"ir_to_rgb"``; the drawn near-infrared images for ``"rgb_to_ir"`` (see the
        module docstring)."""
        if _direction(direction) == "ir_to_rgb":
            return self.test(IR)
        return self.sample(IR, trial)

    def gallery(self, direction: str = "ir_to_rgb", trial: int = 0) -> list[ImageRecord]:
        """The gallery of ``direction`` in ``trial``: drawn visible images for
        ``"ir_to_rgb"``; all visible test images for ``"rgb_to_ir"``."""
        if _direction(direction) == "ir_to_rgb":
            return self.sample(RGB, trial)
        return self.test(RGB)

    def __repr__(self) -> str:
        return (
            f"LLCM(root={str(self.root)!r}, train={len(self.train())}, "
            f"test_ids={len(self.test_ids)})"
        )


def _check_modality(modality: str) -> str:
    if modality not in (RGB, IR):
        raise ValueError(f"modality must be {RGB!r} or {IR!r}, got {modality!r}")
    return modality


def _direction(direction: str) -> str:
    try:
        parsed = parse_direction(direction)
    except (ValueError, TypeError):
        raise ValueError(
            f"direction must be one of {list(LLCM_DIRECTIONS)} (or an alias such as "
            f"'thermal_to_visible'), got {direction!r}"
        ) from None
    return "ir_to_rgb" if parsed.query == IR else "rgb_to_ir"
