"""``make gpu-check`` (benchmarks/gpu_check.py) must not rot before a GPU is at hand: its CPU
variant (``make gpu-check DEVICE=cpu QUICK=1``) runs here end to end, and a failing step is
recorded without stopping the others."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
STEPS = ("cuda_tests", "association", "million", "vit_step", "data_pipeline")


def _load_gpu_check():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARKS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _make_command(out: Path) -> list[str]:
    """The command ``make gpu-check DEVICE=cpu QUICK=1 OUT=...`` runs (``make -n``: printed,
    not run, so the venv stamp is left alone), with this interpreter."""
    printed = subprocess.run(
        ["make", "-n", "gpu-check", "DEVICE=cpu", "QUICK=1", f"OUT={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in printed.splitlines() if "benchmarks/gpu_check.py" in line]
    assert len(lines) == 1, printed
    command = shlex.split(lines[0])
    assert command[1:] == [
        "benchmarks/gpu_check.py",
        "--device",
        "cpu",
        "--quick",
        "--out",
        str(out),
    ]
    return [sys.executable, *command[1:]]


@pytest.mark.slow
def test_make_gpu_check_on_cpu_quick(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(_make_command(out), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    payload = json.loads(out.read_text())
    steps = payload["steps"]
    assert list(steps)[: len(STEPS)] == list(STEPS)
    assert payload["failed"] == []
    for name in STEPS:
        assert steps[name]["status"] == "ok", (name, steps[name])
    assert steps["sharded_association"]["status"] in ("ok", "skipped")
    tests = steps["cuda_tests"]["result"]
    assert tests["returncode"] == 0 and tests["counts"].get("passed", 0) > 0
    association = steps["association"]["result"]
    torch_run = association["backends"]["torch"]
    assert association["floor_seconds"] > 0 and torch_run["jaccard_dbscan_seconds"] > 0
    assert torch_run["stage2"]["summary"]["stage"] == 2
    assert steps["million"]["result"]["clusters"] > 1
    train = steps["vit_step"]["result"]["train"]
    assert train["loss_finite"] and train["seconds_per_step_median"] > 0
    pipeline = steps["data_pipeline"]["result"]["results"]
    assert pipeline["per_sample"]["views_per_s"] > 0 and pipeline["batched_cpu"]["views_per_s"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| step | status | seconds | figures |" in table
    assert all(f"| {name} | ok |" in table for name in STEPS)


@pytest.mark.slow
@pytest.mark.distributed
def test_sharded_step_with_two_gloo_processes(tmp_path):
    """``--shard-world 2`` on the CPU: both parts run sharded and give one process' labels."""
    out = tmp_path / "shard.json"
    command = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick"]
    command += ["--steps", "sharded_association", "--shard-world", "2", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())["steps"]["sharded_association"]["result"]
    assert result["world"] == 2 and result["labels_identical"] is True
    for part in ("jaccard_dbscan", "stage2"):
        assert result[part]["labels_identical"] is True
        assert result[part]["sharded_seconds"] > 0 and result[part]["single_seconds"] > 0
    assert result["stage2"]["sizes"] == {"rgb": 600, "ir": 400}


def test_a_failing_step_is_recorded_and_the_rest_run(tmp_path, monkeypatch):
    gpu_check = _load_gpu_check()

    def broken(args):
        raise RuntimeError("no kernel image is available")

    monkeypatch.setattr(
        gpu_check,
        "STEPS",
        {
            "first": broken,
            "second": lambda args: {"value": 3},
            "third": lambda args: {"skipped": "faiss-gpu not installed"},
        },
    )
    out = tmp_path / "check.json"
    status = gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)])
    assert status == 1
    payload = json.loads(out.read_text())
    assert payload["failed"] == ["first"]
    first, second, third = (payload["steps"][n] for n in ("first", "second", "third"))
    assert first["status"] == "failed" and "no kernel image" in first["error"]
    assert "RuntimeError" in first["traceback"]
    assert second == {"status": "ok", "result": {"value": 3}, "seconds": second["seconds"]}
    assert third["status"] == "skipped" and third["reason"] == "faiss-gpu not installed"
    assert "| first | failed |" in out.with_suffix(".md").read_text()


def test_unknown_step_and_missing_cuda_are_refused(tmp_path, monkeypatch, capsys):
    gpu_check = _load_gpu_check()
    assert (
        gpu_check.main(["--device", "cpu", "--steps", "nope", "--out", str(tmp_path / "x.json")])
        == 2
    )
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path / "y.json")]) == 2
    assert "CUDA is not available" in capsys.readouterr().out


def test_label_disagreement_is_zero_for_renamed_labels():
    gpu_check = _load_gpu_check()
    a = np.array([0, 0, 1, 1, 2, -1, -1])
    assert gpu_check._disagreement(a, a) == 0.0
    assert gpu_check._disagreement(a, np.array([5, 5, 3, 3, 9, -1, -1])) == 0.0  # renamed
    assert gpu_check._disagreement(a, np.array([5, 5, 3, 4, 9, -1, -1])) == 1 / 7  # a split
    assert gpu_check._disagreement(a, np.array([5, 5, 5, 5, 9, -1, -1])) == 2 / 7  # a merge
    assert gpu_check._disagreement(a[:0], a[:0]) == 0.0
