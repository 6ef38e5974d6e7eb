"""Training checkpoints that never lose work: atomic writes, RNG states, clear errors.

A checkpoint is written to a temporary file in the target folder, flushed to disk and then
renamed over the target (``os.replace`` is atomic on POSIX and Windows), so an interrupted
write leaves the previous checkpoint intact. It holds everything needed to continue a run
bit for bit: model, optimizer and scheduler states, the finished epoch, the random number
generator states (Python, numpy, torch CPU and CUDA) and the configuration.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

__all__ = [
    "CheckpointLoadError",
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
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


_REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng", "config")


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> dict[str, Any]:
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
        state = torch.load(path, map_location=map_location, weights_only=False)
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
