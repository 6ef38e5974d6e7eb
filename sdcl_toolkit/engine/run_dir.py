"""One run per output folder: an advisory lock for the run's lifetime, and no silent
overwrite of a previous run.

* :class:`OutputDirLock` holds ``fcntl.flock`` on ``output_dir/.lock`` while a run lives
  (rank 0). A second run on the same folder fails at once with
  :class:`OutputDirLockedError`, naming the holder's PID, host and the folder. The kernel
  drops the lock when its process dies, so a killed run never blocks ``--resume`` (the
  file stays, with the dead holder's details, and is simply taken over). Where ``fcntl``
  does not exist (Windows) no lock is taken. Network file systems honour ``flock`` only
  if they support it (NFSv4 and Lustre usually do).
* :func:`prepare_output_dir` refuses a fresh run into a folder that already holds a
  checkpoint unless ``resume`` or ``overwrite`` is set (:class:`OutputDirInUseError`);
  with ``overwrite`` the previous run's checkpoint and logs are deleted first.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "OutputDirLock",
    "OutputDirLockedError",
    "OutputDirInUseError",
    "prepare_output_dir",
    "new_run_id",
    "RUN_FILES",
]

LOCK_FILE = ".lock"
RUN_FILES = ("last.pth", "log.jsonl", "log.txt", "results.json", "config.json")
"""What a run writes into its folder (``--overwrite`` deletes these)."""

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class OutputDirLockedError(RuntimeError):
    """Another live process holds the output folder."""


class OutputDirInUseError(FileExistsError):
    """A fresh run was pointed at a folder that holds another run."""


def new_run_id() -> str:
    """A short random identifier tagging every log record of one run."""
    return uuid.uuid4().hex[:12]


class OutputDirLock:
    """``with OutputDirLock(folder):`` holds the folder for one run (see module docs)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._handle: Any = None

    def acquire(self) -> OutputDirLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            return self
        handle = open(self.path, "a+")  # held until release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise OutputDirLockedError(
                f"{self.folder} is in use by another run ({holder}); two runs in one "
                "--output-dir would interleave log.jsonl and replace each other's "
                "checkpoint. Wait for it, stop it, or choose another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            finally:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"PID {info['pid']} on host {info['host']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def prepare_output_dir(folder: Path, *, resume: bool, overwrite: bool) -> Optional[str]:
    """Check ``folder`` before a run writes into it (call it holding the lock).

    A fresh run (neither ``resume`` nor ``overwrite``) into a folder with a checkpoint
    raises :class:`OutputDirInUseError`; with ``overwrite`` the previous run's files
    (:data:`RUN_FILES`) are deleted. Returns a message describing what was deleted, if
    anything.
    """
    folder = Path(folder)
    checkpoint = folder / "last.pth"
    if resume or not checkpoint.exists():
        if not resume and overwrite:
            return _delete_run_files(folder)
        return None
    if not overwrite:
        raise OutputDirInUseError(
            f"{folder} already holds a run ({checkpoint}); continue it with --resume "
            f"--output-dir {folder}, start over with --overwrite, or choose another "
            "--output-dir"
        )
    return _delete_run_files(folder)


def _delete_run_files(folder: Path) -> Optional[str]:
    deleted = [name for name in RUN_FILES if (folder / name).exists()]
    for name in deleted:
        (folder / name).unlink()
    return f"--overwrite: deleted the previous run's {', '.join(deleted)}" if deleted else None
