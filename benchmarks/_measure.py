"""Measurement helpers shared by the benchmarks: peak memory, tables, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _proc_status(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process' peak RSS (Linux ``clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> Optional[int]:
    return _proc_status("VmHWM:")


def current_rss_bytes() -> Optional[int]:
    return _proc_status("VmRSS:")


class PeakMemory:
    """Peak memory of a block: process RSS on CPU, allocator peak on CUDA (bytes)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak: Optional[int] = None
        self.baseline: Optional[int] = None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            reset_peak_rss()
            self.baseline = current_rss_bytes()

    def stop(self) -> Optional[int]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = peak_rss_bytes()
        return self.peak


@contextmanager
def measure(device: torch.device, out: dict[str, Any], key: str) -> Iterator[None]:
    """Record ``{key: {"seconds", "peak_mb"}}`` for the block."""
    mem = PeakMemory(device)
    mem.start()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        peak = mem.stop()
        out[key] = {"seconds": seconds, "peak_mb": None if peak is None else peak / 2**20}


class StagePeaks:
    """Stage observer for :func:`sdcl_toolkit._timing.set_stage_observer`: peak memory per
    stage of the toolkit's own timed stages."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb: dict[str, float] = {}
        self._mem: dict[str, PeakMemory] = {}

    def __call__(self, name: str, event: str) -> None:
        if event == "start":
            self._mem[name] = PeakMemory(self.device)
            self._mem[name].start()
        else:
            peak = self._mem.pop(name).stop()
            if peak is not None:
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), peak / 2**20)


def environment(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def print_table(title: str, header: Sequence[str], rows: list[Sequence[Any]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print()
    print(title)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def write_json(name: str, payload: dict[str, Any], path: Optional[Path] = None) -> Path:
    target = path or (RESULTS_DIR / f"{name}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, default=str))
    return target
