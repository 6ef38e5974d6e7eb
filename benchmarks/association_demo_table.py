#!/usr/bin/env python
"""One table comparing finished training runs that differ in their association method.

    python benchmarks/association_demo_table.py outputs/demo_cra outputs/demo_ot ...

For each run directory (written by ``examples/train_sysu.py``) it reads ``config.json``
(association method, bidirectional), ``results.json`` (final all-search Rank-1 / mAP) and the
``label_quality.association`` diagnostics of the stage-2 epoch records in ``log.jsonl``, and
prints a markdown table: method -> final R1/mAP, association accuracy (coverage) per epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _read_run(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / "config.json").read_text())
    results = json.loads((directory / "results.json").read_text())
    after = results["final"]["all"]["mean"]
    epochs = []
    for line in (directory / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        quality = record.get("label_quality", {}).get("association")
        if record.get("event") == "epoch" and record.get("stage") == 2 and quality:
            epochs.append((record["epoch"], quality["accuracy"], quality["coverage"]))
    name = config["association"] + (" + bidirectional" if config.get("bidirectional") else "")
    return {"name": name, "rank1": after["rank1"], "mAP": after["mAP"], "epochs": epochs}


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """Render the runs as a markdown table (percentages, one column per stage-2 epoch)."""
    epoch_ids = sorted({epoch for run in runs for epoch, _, _ in run["epochs"]})
    header = ["association", "R1", "mAP"] + [f"acc (cov) ep {e}" for e in epoch_ids]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        per_epoch = {epoch: (acc, cov) for epoch, acc, cov in run["epochs"]}
        cells = [run["name"], f"{100 * run['rank1']:.2f}", f"{100 * run['mAP']:.2f}"]
        for epoch in epoch_ids:
            acc, cov = per_epoch.get(epoch, (float("nan"), float("nan")))
            cells.append(f"{100 * acc:.1f} ({100 * cov:.0f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories")
    args = parser.parse_args(argv)
    for directory in args.runs:
        if not (directory / "results.json").is_file():
            parser.error(f"{directory} has no results.json (run not finished?)")
    print(markdown_table([_read_run(directory) for directory in args.runs]))


if __name__ == "__main__":
    main()
