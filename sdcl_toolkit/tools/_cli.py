"""Shared pieces of the console scripts: exit codes, error reporting, device and progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any, Callable, Optional

EXIT_OK = 0
"""Success."""
EXIT_FAILURE = 1
"""The work could not be done (a checkpoint that does not fit, a failed check ...)."""
EXIT_USAGE = 2
"""Bad arguments, missing files or an unusable dataset tree (argparse's own code)."""


class ToolError(Exception):
    """A failure the console scripts report as ``<prog>: error: <message>`` (no traceback).

    ``code`` is the exit status: :data:`EXIT_USAGE` for what the user can fix on the command
    line (paths, layout), :data:`EXIT_FAILURE` otherwise."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def fail(parser: argparse.ArgumentParser, error: BaseException, code: int) -> int:
    """Print ``prog: error: message`` to stderr and return ``code``."""
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return code


def run_tool(parser: argparse.ArgumentParser, body: Callable[[], int]) -> int:
    """Run ``body``; turn :class:`ToolError` (and the usual data errors) into exit codes."""
    from ..data.images import ImageDecodeError
    from ..data.sysu_mm01 import DatasetLayoutError

    try:
        return body()
    except ToolError as error:
        return fail(parser, error, error.code)
    except (DatasetLayoutError, FileNotFoundError) as error:
        return fail(parser, error, EXIT_USAGE)
    except ImageDecodeError as error:
        return fail(parser, error, EXIT_FAILURE)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--batch-size``, ``--workers``, ``--no-progress``."""
    parser.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda:0' ..."
    )
    parser.add_argument("--batch-size", type=int, default=128, help="images per forward pass")
    parser.add_argument(
        "--workers", type=int, default=None, help="data-loading processes (default: automatic)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar / progress lines"
    )


def resolve_device(name: str) -> Any:
    """``torch.device`` of ``name`` (``"auto"``: CUDA when available); a clear error for a
    device that does not exist here."""
    import torch

    from ..engine.builders import resolve_device as resolve

    try:
        device = resolve(name)
    except RuntimeError as error:
        raise ToolError(f"--device {name!r}: {error}", EXIT_USAGE) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ToolError(f"--device {name!r}: CUDA is not available on this machine", EXIT_USAGE)
    return device


def progress(enabled: bool, desc: str) -> Optional[Callable[[Iterable], Iterable]]:
    """A wrapper for batch iterators: a tqdm bar on a terminal, plain lines otherwise."""
    if not enabled:
        return None
    from ..engine.run_log import progress_bar

    def wrap(iterable: Iterable) -> Iterable:
        return progress_bar(iterable, enabled=True, desc=desc)

    return wrap


def check_positive(parser: argparse.ArgumentParser, **values: Optional[int]) -> None:
    """``parser.error`` for any value below 1 (``None`` skipped); names use ``--flag`` form."""
    for name, value in values.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
