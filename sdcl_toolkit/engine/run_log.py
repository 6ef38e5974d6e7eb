"""Run logging for training: one line per epoch on screen, JSON lines on disk, TensorBoard.

Only rank 0 writes. ``log.jsonl`` in the output folder gets one JSON object per event
(``{"event": "epoch", ...}``, ``{"event": "eval", ...}``), appended, so a resumed run
continues the same file. TensorBoard scalars are written when ``tensorboard`` is requested
and the ``tensorboard`` package is installed.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

__all__ = ["RunLog", "progress_bar"]

logger = logging.getLogger("sdcl_toolkit.train")


def progress_bar(
    iterable: Iterable,
    *,
    enabled: bool,
    desc: str,
    total: Optional[int] = None,
    leave: bool = False,
):
    """A tqdm bar when ``enabled``, tqdm is installed and stderr is a terminal (bars are
    left out of logs redirected to files), else the plain iterable."""
    if not enabled:
        return iterable
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
        self, output_dir: Path, *, enabled: bool = True, tensorboard: bool = False
    ) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "log.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
                except ImportError:
                    logger.warning(
                        "--tensorboard: the tensorboard package is not installed; "
                        "writing JSON lines only"
                    )

    def info(self, message: str) -> None:
        if self.enabled:
            print(message, flush=True)

    def event(self, kind: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = _plain({"event": kind, **fields})
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = fields.get("epoch", 0)
            for key, value in _flatten(record).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
            self._tb.flush()

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
