"""RegDB read from its raw directory tree and the standard ``idx`` split files.

Protocol: visible->thermal and thermal->visible on each of the 10 trials, means reported
(see ``docs/datasets.md`` and ``docs/evaluation.md``).

Expected layout (as distributed, with the 10-trial index files used by VI-ReID papers)::

    root/Visible/<id>/<file>.bmp
    root/Thermal/<id>/<file>.bmp
    root/idx/train_visible_<t>.txt, train_thermal_<t>.txt,
             test_visible_<t>.txt,  test_thermal_<t>.txt      for trials t = 1 .. 10

Each index line is ``<path relative to root> <label>``, e.g.
``Visible/1/male_front_v_00007_1.bmp 0``. Visible images get camera id 1 and modality
``"rgb"``, thermal images camera id 2 and modality ``"ir"``; ``pid`` is the label of the
index file. Evaluation runs in both directions (visible -> thermal and thermal -> visible),
with the whole test set of the other modality as gallery, and reports the mean over trials.

Example::

    from sdcl_toolkit.data.regdb import RegDB

    regdb = RegDB("/data/RegDB", trial=1)
    train = regdb.train()
    query = regdb.query("visible_to_thermal")
    gallery = regdb.gallery("visible_to_thermal")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .._validation import check_int
from ..modality import parse_direction
from .records import IR, RGB, ImageRecord, read_labelled_list
from .sysu_mm01 import DatasetLayoutError

__all__ = [
    "RegDB",
    "REGDB_TRIALS",
    "REGDB_DIRECTIONS",
    "REGDB_VISIBLE_CAMERA",
    "REGDB_THERMAL_CAMERA",
]

REGDB_TRIALS = tuple(range(1, 11))
"""The ten standard trials."""
REGDB_VISIBLE_CAMERA = 1
REGDB_THERMAL_CAMERA = 2
REGDB_DIRECTIONS: dict[str, tuple[str, str]] = {
    name: (parse_direction(name).query, parse_direction(name).target)
    for name in ("visible_to_thermal", "thermal_to_visible", "v2t", "t2v")
}
"""Search directions: name -> (query modality, gallery modality); the names are those of
:func:`sdcl_toolkit.modality.parse_direction`, which also accepts ``"rgb_to_ir"`` etc."""

_MISSING_SHOWN = 10

PathLike = Union[str, "os.PathLike[str]"]

_REGDB_LAYOUT = """Expected RegDB layout:
  <root>/Visible/<id>/<file>.bmp and <root>/Thermal/<id>/<file>.bmp
  <root>/idx/{train,test}_{visible,thermal}_<trial>.txt
      (trials 1..10; lines "<relative path> <label>")"""

_FILES = {
    ("train", RGB): "train_visible",
    ("train", IR): "train_thermal",
    ("test", RGB): "test_visible",
    ("test", IR): "test_thermal",
}


class RegDB:
    """RegDB reader for one trial: training records and the test sets of both modalities.

    The constructor reads the four index files of the trial and checks that every listed
    image exists, raising one :class:`~sdcl_toolkit.data.sysu_mm01.DatasetLayoutError`
    that lists everything missing.

    Parameters
    ----------
    root:
        The RegDB directory (containing ``Visible``, ``Thermal`` and ``idx``).
    trial:
        Which split, 1..10 on the real dataset (any positive number whose files exist).
    """

    def __init__(self, root: PathLike, trial: int = 1) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        trial = check_int(trial, "trial")
        if trial < 1:
            raise ValueError(f"trial must be >= 1 (RegDB trials are numbered 1..10), got {trial}")
        self.root = Path(root).expanduser().resolve()
        self.trial = trial
        problems: list[str] = []
        if not self.root.is_dir():
            problems.append(f"root folder {self.root} does not exist")
            raise DatasetLayoutError("RegDB", self.root, problems, _REGDB_LAYOUT)
        for folder in ("Visible", "Thermal", "idx"):
            if not (self.root / folder).is_dir():
                problems.append(f"missing folder {folder}/")

        self._records: dict[tuple[str, str], list[ImageRecord]] = {}
        missing_images: list[str] = []
        for (split, modality), stem in _FILES.items():
            path = self.root / "idx" / f"{stem}_{trial}.txt"
            if not path.is_file():
                problems.append(f"missing file idx/{path.name}")
                continue
            entries = read_labelled_list(path, problems)
            if entries is None:
                continue
            camera = REGDB_VISIBLE_CAMERA if modality == RGB else REGDB_THERMAL_CAMERA
            records = []
            for relative, label in entries:
                image = self.root / relative
                if not image.is_file():
                    missing_images.append(relative)
                records.append(ImageRecord(str(image), label, camera, modality))
            self._records[(split, modality)] = records
        if missing_images:
            shown = ", ".join(missing_images[:_MISSING_SHOWN])
            more = len(missing_images) - _MISSING_SHOWN
            problems.append(
                f"{len(missing_images)} image(s) listed in idx/*_{trial}.txt do not exist: "
                f"{shown}{f' and {more} more' if more > 0 else ''}"
            )
        if problems:
            raise DatasetLayoutError("RegDB", self.root, problems, _REGDB_LAYOUT)

    def train(self, modality: Optional[str] = None) -> list[ImageRecord]:
        """Training records of the trial: visible then thermal (or one ``modality``)."""
        return [r for m in _modalities(modality) for r in self._records[("train", m)]]

    def test(self, modality: str) -> list[ImageRecord]:
        """Test records of one modality (``"rgb"`` = visible, ``"ir"`` = thermal)."""
        (m,) = _modalities(modality, allow_none=False)
        return list(self._records[("test", m)])

    def query(self, direction: str = "visible_to_thermal") -> list[ImageRecord]:
        """Query set of a search direction (``"visible_to_thermal"``/``"v2t"`` or
        ``"thermal_to_visible"``/``"t2v"``): the test images of the query modality."""
        return self.test(_direction(direction)[0])

    def gallery(self, direction: str = "visible_to_thermal") -> list[ImageRecord]:
        """Gallery set of a search direction: the test images of the other modality."""
        return self.test(_direction(direction)[1])

    def __repr__(self) -> str:
        return (
            f"RegDB(root={str(self.root)!r}, trial={self.trial}, "
            f"train={len(self.train())}, test={len(self.test(RGB)) + len(self.test(IR))})"
        )


def _direction(direction: str) -> tuple[str, str]:
    try:
        parsed = parse_direction(direction)
    except (ValueError, TypeError):
        raise ValueError(
            f"direction must be one of {sorted(REGDB_DIRECTIONS)}, got {direction!r}"
        ) from None
    return parsed.query, parsed.target


def _modalities(modality: Optional[str], allow_none: bool = True) -> tuple[str, ...]:
    if modality is None and allow_none:
        return (RGB, IR)
    if modality in (RGB, IR):
        return (modality,)
    allowed = f"None, {RGB!r} or {IR!r}" if allow_none else f"{RGB!r} or {IR!r}"
    raise ValueError(f"modality must be {allowed}, got {modality!r}")
