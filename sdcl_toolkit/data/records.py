"""Plain image records shared by dataset readers, samplers and loaders."""

from __future__ import annotations

from typing import NamedTuple

from ..modality import IR, RGB

__all__ = ["ImageRecord", "RGB", "IR"]


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
