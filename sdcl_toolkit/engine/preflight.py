"""Checks a run makes before its first epoch, so that hours of training never end in an
error that was there from the start.

* :func:`check_evaluation_split`: the test split the run will be evaluated on has queries
  and a non-empty gallery for every setting and trial (SYSU-MM01: IR queries, visible
  galleries of ``all`` / ``indoor`` search; RegDB: both test modalities);
* :func:`check_images_readable`: every distinct test image decodes
  (:func:`sdcl_toolkit.data.images.load_image`); training images are read in the first
  epoch anyway.

Both raise :class:`EvaluationSplitError` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..data.images import ImageDecodeError, load_image
from ..data.records import IR, RGB, ImageRecord

__all__ = [
    "EvaluationSplitError",
    "check_evaluation_split",
    "check_images_readable",
    "evaluation_records",
]

_MAX_LISTED = 5


class EvaluationSplitError(ValueError):
    """The evaluation split cannot be evaluated (empty query / gallery, unreadable images)."""


def evaluation_records(dataset, dataset_name: str, trials: int) -> dict[str, list[ImageRecord]]:
    """``{part: records}`` of every test set the run's evaluation reads."""
    if dataset_name == "regdb":
        return {"visible test images": dataset.test(RGB), "thermal test images": dataset.test(IR)}
    parts = {"IR queries (cameras 3, 6)": dataset.query()}
    for mode in ("all", "indoor"):
        for trial in range(trials):
            parts[f"{mode}-search gallery of trial {trial}"] = dataset.gallery(mode, trial)
    return parts


def check_evaluation_split(dataset, dataset_name: str, trials: int) -> None:
    """Raise :class:`EvaluationSplitError` if a query or gallery set of the evaluation is
    empty (e.g. test identities without visible-camera images)."""
    empty = [
        name
        for name, records in evaluation_records(dataset, dataset_name, trials).items()
        if not records
    ]
    if empty:
        raise EvaluationSplitError(
            "the evaluation split cannot be evaluated, checked before training: empty "
            + ", ".join(empty[:_MAX_LISTED])
            + (f" (and {len(empty) - _MAX_LISTED} more)" if len(empty) > _MAX_LISTED else "")
            + ". Every test identity needs images of both modalities (SYSU-MM01: an IR "
            "camera 3/6 and a visible camera 1/2/4/5); check the tree's exp/test_id.txt"
        )


def check_images_readable(records: Iterable[ImageRecord]) -> int:
    """Decode every distinct image of ``records``; returns how many were read.

    Raises :class:`EvaluationSplitError` listing the unreadable files (up to 5)."""
    paths: Sequence[str] = list(dict.fromkeys(r.path for r in records))
    bad = []
    for path in paths:
        try:
            load_image(path)
        except ImageDecodeError as error:
            bad.append(str(error))
    if bad:
        raise EvaluationSplitError(
            f"{len(bad)} of {len(paths)} test images cannot be read, checked before "
            "training:\n  - " + "\n  - ".join(bad[:_MAX_LISTED])
        )
    return len(paths)
