"""Run logging for training: one line per epoch on screen, JSON lines on disk, TensorBoard.

Only rank 0 writes. ``log.jsonl`` in the output folder gets one JSON object per event
(``{"event": "epoch", "run_id": ..., ...}``, ``{"event": "eval", ...}``), appended, so a
resumed run continues the same file; every record carries the run's ``run_id``. On resume,
records of epochs after the checkpoint (logged by a process killed before it saved) are
dropped (:meth:`RunLog.drop_after`), so no epoch is recorded twice. ``log.txt`` gets every
message printed on screen. TensorBoard scalars are written when ``tensorboard`` is
requested and the ``tensorboard`` package is installed.

Progress: a tqdm bar on a terminal; otherwise (batch jobs, output redirected to a file)
plain lines ``desc: i/total (p%), elapsed`` at most every :data:`PLAIN_PROGRESS_SECONDS`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

__all__ = ["RunLog", "progress_bar", "plain_progress", "PLAIN_PROGRESS_SECONDS"]

PLAIN_PROGRESS_SECONDS = 60.0
"""Seconds between plain progress lines (non-terminal output)."""

logger = logging.getLogger("sdcl_toolkit.train")


def progress_bar(
    iterable: Iterable,
    *,
    enabled: bool,
    desc: str,
    total: Optional[int] = None,
    leave: bool = False,
):
    """A tqdm bar when ``enabled``, tqdm is installed and stderr is a terminal; when
    ``enabled`` but stderr is not a terminal, :func:`plain_progress` lines; else the
    plain iterable."""
    if not enabled:
        return iterable
    if not _is_terminal(sys.stderr):
        return plain_progress(iterable, desc=desc, total=total)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        leave=leave,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=None,
    )


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def plain_progress(
    iterable: Iterable,
    *,
    desc: str,
    total: Optional[int] = None,
    every: Optional[float] = None,
    write: Any = None,
):
    """Yield from ``iterable``, printing ``desc: i/total (p%), Ns`` at most every ``every``
    seconds (default :data:`PLAIN_PROGRESS_SECONDS`) and once at the end (when it took
    longer than that); ``write`` receives each line (default: ``print`` to stdout)."""
    every = PLAIN_PROGRESS_SECONDS if every is None else every
    emit = write if write is not None else (lambda line: print(line, flush=True))
    start = last = time.monotonic()
    count = 0
    for count, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= every:
            last = now
            emit(_progress_line(desc, count, total, now - start))
    if last != start:
        emit(_progress_line(desc, count, total, time.monotonic() - start) + " done")


def _progress_line(desc: str, count: int, total: Optional[int], seconds: float) -> str:
    share = f" ({100 * count / total:.0f}%)" if total else ""
    return f"{desc}: {count}/{total if total else '?'}{share}, {seconds:.0f}s"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            return str(value)
    return value


class RunLog:
    """Writes events of one training run (rank 0 only; other ranks get a silent log)."""

    def __init__(
        self,
        output_dir: Path,
        *,
        enabled: bool = True,
        tensorboard: bool = False,
        run_id: Optional[str] = None,
    ) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "log.jsonl"
        self.text_path = Path(output_dir) / "log.txt"
        self.run_id = run_id
        self._tb: Any = None
        self._tensorboard = tensorboard

    def open(self) -> None:
        """Create the folder and the TensorBoard writer (call once the folder is held)."""
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._tensorboard and self._tb is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))
                except ImportError:
                    logger.warning(
                        "--tensorboard: the tensorboard package is not installed; "
                        "writing JSON lines only"
                    )

    def info(self, message: str) -> None:
        """Print ``message`` and append it to ``log.txt`` (once the folder exists)."""
        if self.enabled:
            print(message, flush=True)
            if self.text_path.parent.is_dir():
                with self.text_path.open("a") as handle:
                    handle.write(message + "\n")

    def warning(self, message: str) -> None:
        """A loud message: ``WARNING`` prefix on screen and in ``log.txt``, and a
        ``warning`` record in ``log.jsonl``."""
        self.info(f"WARNING: {message}")
        self.event("warning", message=message)

    def event(self, kind: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = _plain({"event": kind, "run_id": self.run_id, **fields})
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._tb is not None:
            step = fields.get("epoch", 0)
            for key, value in _flatten(record).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
            self._tb.flush()

    def drop_after(self, last_epoch: int) -> int:
        """Remove this run's ``epoch`` / ``eval`` records of epochs after ``last_epoch`` (the
        checkpoint's), written by a process that died before saving; returns how many.
        The file is rewritten atomically."""
        if not self.enabled or not self.path.is_file():
            return 0
        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line cut by the kill
                dropped += 1
                continue
            stale = (
                record.get("run_id") == self.run_id
                and record.get("event") in ("epoch", "eval")
                and isinstance(record.get("epoch"), int)
                and record["epoch"] > last_epoch
            )
            if stale:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        return dropped

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out
