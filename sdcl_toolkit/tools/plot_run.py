"""``sdcl-plot-run OUTPUT_DIR``: a training run's curves from its ``log.jsonl``.

::

    sdcl-plot-run outputs/sdcl_sysu              # writes outputs/sdcl_sysu/plots/*.png

Reads the run's event log (:class:`sdcl_toolkit.engine.run_log.RunLog`: one JSON object per
line, ``{"event": "epoch", "epoch", "losses": {...}, "clusters": {"rgb", "ir"},
"outliers": {...}, "associated_fraction", "lr", ...}`` and ``{"event": "eval", "epoch",
"results": {setting: {"setting", "mean": {"rank1", "mAP", "mINP", ...}}}}``) and draws
``run_curves.png``: four panels over epochs: the loss and its groups (contrast,
homogeneous, heterogeneous), clusters and outliers per modality, the associated fraction
and learning rate, and Rank-1 / mAP of every evaluation (evaluations before training,
``epoch = -1``, are drawn at -1). When the epochs carry pseudo-label diagnostics
(``label_quality``), :func:`sdcl_toolkit.label_quality.plot_label_quality` also writes
``label_quality.png``. Needs matplotlib (``pip install sdcl-toolkit[plot]``).

Exit codes: 0 success; 1 matplotlib missing or nothing to plot; 2 no such folder / no
``log.jsonl`` / a line that is not JSON (the message names the line).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from ._cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ToolError, run_tool

__all__ = ["main", "build_parser", "read_run_log", "plot_run_curves", "LOSS_GROUPS"]

LOSS_GROUPS = ("loss", "contrast", "homogeneous", "heterogeneous")
"""The loss entries drawn (the total and its groups, as the trainer logs them)."""


def read_run_log(path: Path) -> list[dict[str, Any]]:
    """The events of a ``log.jsonl``; a record logged twice for one epoch (a resumed run)
    keeps its last occurrence. Raises :class:`ToolError` (exit code 2) naming a bad line."""
    if not path.is_file():
        raise ToolError(f"no run log at {path} (is this a training output folder?)", EXIT_USAGE)
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as error:
            raise ToolError(f"{path}:{number} is not JSON ({error.msg})", EXIT_USAGE) from None
        if isinstance(event, dict):
            events.append(event)
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for event in events:
        key = (event.get("event"), event.get("epoch"), event.get("title"))
        latest.pop(key, None)
        latest[key] = event

    def epoch(event: dict[str, Any]) -> int:
        value = event.get("epoch")
        return value if isinstance(value, int) else -1

    return sorted(latest.values(), key=epoch)


def _value(x: Any) -> float:
    return math.nan if x is None else float(x)


def plot_run_curves(events: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Draw the four panels of the module docstring into ``path``; returns it.

    Raises ``ValueError`` when ``events`` hold no epoch record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = [e for e in events if e.get("event") == "epoch"]
    evals = [e for e in events if e.get("event") == "eval"]
    if not epochs:
        raise ValueError("the log holds no epoch record")
    xs = [e["epoch"] for e in epochs]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=100)
    losses, clusters, association, metrics = axes.ravel()

    for name in LOSS_GROUPS:
        ys = [_value(e.get("losses", {}).get(name)) for e in epochs]
        if any(not math.isnan(y) for y in ys):
            losses.plot(xs, ys, marker="o", label=name)
    losses.set_title("losses (mean over the epoch's steps)")

    for modality, style in (("rgb", "-"), ("ir", "--")):
        for field, colour in (("clusters", "tab:blue"), ("outliers", "tab:red")):
            ys = [_value(e.get(field, {}).get(modality)) for e in epochs]
            clusters.plot(xs, ys, style, marker="o", color=colour, label=f"{field} {modality}")
    clusters.set_title("pseudo-label clusters and outliers")

    fraction = [_value(e.get("associated_fraction")) for e in epochs]
    association.plot(xs, [100 * f for f in fraction], marker="o", label="associated (%)")
    association.set_ylim(0, 105)
    association.set_title("cross-modality association and learning rate")
    rate = association.twinx()
    rate.plot(xs, [_value(e.get("lr")) for e in epochs], color="tab:gray", label="lr")
    rate.set_ylabel("learning rate")
    rate.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))

    settings: dict[str, list[tuple[int, float, float]]] = {}
    for e in evals:
        for key, result in (e.get("results") or {}).items():
            mean = result.get("mean", {})
            settings.setdefault(result.get("setting", key), []).append(
                (e.get("epoch", -1), 100 * _value(mean.get("rank1")), 100 * _value(mean.get("mAP")))
            )
    for name, rows in settings.items():
        rows.sort()
        metrics.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label=f"{name} R-1")
        metrics.plot(
            [r[0] for r in rows], [r[2] for r in rows], "--", marker="s", label=f"{name} mAP"
        )
    metrics.set_title("evaluation (%)" if settings else "evaluation (none logged)")
    metrics.set_ylim(0, 100)

    for ax in (losses, clusters, association, metrics):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdcl-plot-run",
        description="Plot a training run's losses, clusters, association and metrics from "
        "its log.jsonl.",
    )
    parser.add_argument("output_dir", help="the run's --output-dir (holding log.jsonl)")
    parser.add_argument(
        "--out-dir", default=None, help="where the PNGs go (default: OUTPUT_DIR/plots)"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``sdcl-plot-run``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        run = Path(args.output_dir)
        if not run.is_dir():
            raise ToolError(f"{run} is not a folder", EXIT_USAGE)
        events = read_run_log(run / "log.jsonl")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ToolError(
                "sdcl-plot-run needs matplotlib: pip install sdcl-toolkit[plot]", EXIT_FAILURE
            ) from None
        out = Path(args.out_dir) if args.out_dir else run / "plots"
        try:
            written = [plot_run_curves(events, out / "run_curves.png", title=str(run))]
        except ValueError as error:
            raise ToolError(f"{run / 'log.jsonl'}: {error}", EXIT_FAILURE) from None
        from ..label_quality import plot_label_quality, read_label_quality

        quality = read_label_quality(run / "log.jsonl")
        if quality:
            written.append(plot_label_quality(quality, out / "label_quality.png"))
        for path in written:
            print(f"wrote {path}")
        return EXIT_OK

    return run_tool(parser, body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
