"""Plain image records shared by dataset readers, samplers and loaders."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional

from ..modality import IR, RGB

__all__ = ["ImageRecord", "RGB", "IR", "read_labelled_list"]


class ImageRecord(NamedTuple):
    """One image on disk.

    Attributes
    ----------
    path: absolute or dataset-relative path of the image file.
    pid: person identity (dataset label; pseudo-labels are kept separately).
    camid: camera number as in the dataset (SYSU-MM01: 1..6; RegDB: 1 visible, 2 thermal).
    modality: ``"rgb"`` or ``"ir"``.
    """

    path: str
    pid: int
    camid: int
    modality: str


def read_labelled_list(path: Path, problems: list[str]) -> Optional[list[tuple[str, int]]]:
    """``(relative path, label)`` pairs of an index file of ``<path> <label>`` lines (RegDB's
    and LLCM's ``idx/*.txt``); blank lines are skipped. Problems (unreadable file, malformed
    lines, no entries) are appended to ``problems``, so that a reader reports all at once;
    ``None`` when the file cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        problems.append(f"cannot read idx/{path.name}: {error.strerror or error}")
        return None
    entries, bad = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            bad.append(f"{number}: {line.strip()[:60]!r}")
            continue
        entries.append((parts[0], int(parts[1])))
    if bad:
        problems.append(
            f"idx/{path.name} has {len(bad)} malformed line(s) (expected '<path> <label>'), "
            f"first {bad[0]}"
        )
    if not entries and not bad:
        problems.append(f"idx/{path.name} lists no images")
    return entries
