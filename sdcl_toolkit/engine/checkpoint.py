"""Training checkpoints that never lose work: atomic writes, RNG states, clear errors.

A checkpoint is written to a temporary file in the target folder, flushed to disk and then
renamed over the target (``os.replace`` is atomic on POSIX and Windows), and the folder is
fsynced after the rename (POSIX), so an interrupted write or a power loss leaves the previous
checkpoint intact. A write that fails (disk full, permissions) raises
:class:`CheckpointSaveError` naming the file; the temporary file is removed, and temporaries
left by a killed process are removed by :func:`remove_stale_temporaries` when the next run
takes the folder. It holds everything needed to continue a run
bit for bit: model, optimizer and scheduler states, the finished epoch, the random number
generator states (Python, numpy, torch CPU and CUDA) and the configuration.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

__all__ = [
    "CheckpointLoadError",
    "CheckpointSaveError",
    "read_checkpoint_config",
    "remove_stale_temporaries",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "LAST_CHECKPOINT",
]

LAST_CHECKPOINT = "last.pth"
"""File name of the end-of-epoch checkpoint in the output folder."""

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointLoadError(ValueError):
    """A training checkpoint is missing, unreadable or not a training checkpoint."""


class CheckpointSaveError(OSError):
    """A checkpoint could not be written (disk full, permissions ...); the previous one is
    intact. The message names the file."""


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Delete the temporary files a killed :func:`save_checkpoint` left beside ``path``
    (``.last.pth.*.tmp``); returns them. Call it only while no other process writes there
    (the trainer does, holding the output folder's lock)."""
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for stale in path.parent.glob(f"{_temporary_prefix(path)}*.tmp"):
            try:
                stale.unlink()
                removed.append(stale)
            except OSError:
                pass
    return removed


def _fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def capture_rng_state() -> dict[str, Any]:
    """States of every random number generator a training step draws from."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(path: PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename, fsync of the
    folder).

    Raises
    ------
    CheckpointSaveError
        If the file system refuses the write (disk full, quota, permissions); the message
        names ``path`` and the free space left, and the previous checkpoint is intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(error, OSError) or (
            isinstance(error, RuntimeError) and _is_write_failure(error)
        ):
            raise CheckpointSaveError(
                f"could not write the checkpoint {path} ({type(error).__name__}: {error}); "
                f"{_free_space(path.parent)} free in {path.parent}. The previous checkpoint "
                "is intact; free space (or fix permissions) and continue with --resume"
            ) from error
        raise
    _fsync_directory(path.parent)
    return path


def _is_write_failure(error: RuntimeError) -> bool:
    """torch.save reports a failed write as ``RuntimeError`` (``file write failed``,
    ``PytorchStreamWriter failed writing file ...``)."""
    text = str(error).lower()
    return "write" in text and ("fail" in text or "error" in text)


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    return f"{free / 2**20:.1f} MiB"


def read_checkpoint_config(path: PathLike) -> dict[str, Any]:
    """The ``config`` record of the training checkpoint at ``path`` (memory-mapped, so the
    weights are not read). Raises :class:`CheckpointLoadError` as :func:`load_checkpoint`."""
    return load_checkpoint(path, mmap=True)["config"]


_REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng", "config")


def load_checkpoint(
    path: PathLike, map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    CheckpointLoadError
        If the file is missing, truncated/corrupt, or lacks the training-state keys
        (the message names the file and what was wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointLoadError(
            f"no checkpoint at {path}: nothing to resume from (run without --resume to start "
            "a new run, or point --output-dir at the run to continue)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
    ) as error:
        raise CheckpointLoadError(
            f"checkpoint {path} is corrupt or truncated ({type(error).__name__}: {error}); "
            "delete it to start over, or restore a copy"
        ) from error
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED_KEYS):
        found = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointLoadError(
            f"{path} is not a training checkpoint of this toolkit: expected keys "
            f"{list(_REQUIRED_KEYS)}, found {found}"
        )
    return state
