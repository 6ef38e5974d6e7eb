"""The examples a user copies run as written (two short epochs on the generated dataset)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_custom_loop_trains_two_epochs_with_a_foreign_backbone(capsys):
    history = _load("custom_loop").main(["--epochs", "2", "--iters", "3"])
    assert [record["stage"] for record in history] == [1, 2]
    assert all(math.isfinite(record["loss"]) for record in history)
    assert history[1]["heterogeneous"] > 0 and history[1]["associated_fraction"] > 0
    assert "epoch 1 (stage 2)" in capsys.readouterr().out


def test_custom_loop_stays_short():
    assert len((EXAMPLES / "custom_loop.py").read_text().splitlines()) <= 150


@pytest.mark.slow
def test_lightning_module_trains_two_epochs():
    pytest.importorskip("pytorch_lightning")
    metrics = _load("lightning_sdcl").main(["--epochs", "2", "--iters", "3"])
    assert math.isfinite(metrics["loss/loss"])
    assert metrics["labels/stage"] == 2.0 and metrics["loss/heterogeneous"] > 0


@pytest.mark.parametrize("script", ["train_sysu", "train_regdb"])
def test_training_scripts_report_bad_settings_without_a_traceback(script, tmp_path):
    expected = f"(?s){script}.py: error: .*(no --data-dir|RegDB needs --data-dir)"
    with pytest.raises(SystemExit, match=expected):
        _load(script).main(["--pretrained", "none", "--output-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="nothing to resume from"):
        _load(script).main(["--resume", "--output-dir", str(tmp_path)])
