"""Per-stage wall-clock timing used by the association code and its benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, Optional

import torch

__all__ = ["StageTimer", "set_stage_observer"]

StageObserver = Callable[[str, str], None]
_observer: Optional[StageObserver] = None


def set_stage_observer(observer: Optional[StageObserver]) -> Optional[StageObserver]:
    """Install ``observer(stage_name, "start" | "end")``, called around every timed stage
    (benchmarks use it to measure per-stage peak memory). Returns the previous observer."""
    global _observer
    previous, _observer = _observer, observer
    return previous


class StageTimer:
    """Accumulates seconds per named stage into ``self.seconds`` (or a caller's dict).

    CUDA work is synchronised at stage boundaries so the figures are real.
    """

    def __init__(
        self, seconds: Optional[dict[str, float]] = None, device: Optional[torch.device] = None
    ) -> None:
        self.seconds: dict[str, float] = {} if seconds is None else seconds
        self.device = device

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        if _observer is not None:
            _observer(name, "start")
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            if _observer is not None:
                _observer(name, "end")
