"""sdcl-plot-run: PNGs of a real (short) run's log.jsonl; clear errors otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sdcl_toolkit.tools.plot_run import main, read_run_log

pytest.importorskip("matplotlib")


def _not_blank(path) -> Image.Image:
    image = Image.open(path)
    assert np.asarray(image.convert("L")).std() > 10
    return image


def test_plots_a_finished_run(trained_run, tmp_path, capsys):
    run, _ = trained_run
    out = tmp_path / "plots"
    assert main([str(run), "--out-dir", str(out)]) == 0
    assert "run_curves.png" in capsys.readouterr().out
    assert _not_blank(out / "run_curves.png").size == (1100, 700)
    events = read_run_log(run / "log.jsonl")
    if any("label_quality" in e for e in events if e.get("event") == "epoch"):
        assert _not_blank(out / "label_quality.png").width > 100


def test_default_folder_is_output_dir_plots(trained_run, tmp_path):
    run, _ = trained_run
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "log.jsonl").write_text((run / "log.jsonl").read_text())
    assert main([str(copy)]) == 0
    assert (copy / "plots" / "run_curves.png").is_file()


def test_a_resumed_epoch_is_drawn_once(trained_run, tmp_path):
    run, _ = trained_run
    lines = (run / "log.jsonl").read_text().splitlines()
    first_epoch = next(line for line in lines if json.loads(line)["event"] == "epoch")
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(lines + [first_epoch]) + "\n")
    epochs = [e["epoch"] for e in read_run_log(log) if e["event"] == "epoch"]
    assert epochs == sorted(set(epochs))


def test_missing_folder_log_and_bad_line(tmp_path, capsys):
    assert main([str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no run log" in capsys.readouterr().err
    (tmp_path / "log.jsonl").write_text('{"event": "epoch", "epoch": 0}\n{oops\n')
    assert main([str(tmp_path)]) == 2
    assert "log.jsonl:2 is not JSON" in capsys.readouterr().err


def test_log_without_epochs_exits_1(tmp_path, capsys):
    (tmp_path / "log.jsonl").write_text('{"event": "eval", "epoch": -1, "results": {}}\n')
    assert main([str(tmp_path)]) == 1
    assert "no epoch record" in capsys.readouterr().err
