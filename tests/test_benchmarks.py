"""Smoke runs of the association benchmarks at tiny sizes (they must not rot)."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_association_speed_smoke(tmp_path, capsys):
    bench = load("association_speed")
    out = tmp_path / "speed.json"
    payload = bench.main(
        ["--sysu-rgb", "700", "--sysu-ir", "400", "--sizes", "500", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "toolkit / kNN floor" in printed and "dense baseline / toolkit" in printed
    assert "SYSU-MM01 size" not in printed  # 700 + 400 is not SYSU-MM01 size
    data = json.loads(out.read_text())
    assert data["sysu"]["summary"]["toolkit_over_floor"] > 0
    stages = data["sysu"]["toolkit_rgb"]["stages"]
    assert set(stages) == {
        "knn",
        "reciprocal_expansion",
        "weights",
        "query_expansion",
        "jaccard",
        "dbscan",
    }
    assert payload["pipeline"]["summary"]["stage"] == 2


@pytest.mark.slow
def test_association_quality_smoke(tmp_path):
    bench = load("association_quality")
    table = bench.main(
        [
            "--gaps",
            "0.5",
            "--noises",
            "1.0",
            "--identities",
            "12",
            "--rgb-per-id",
            "8",
            "--ir-per-id",
            "6",
            "--seeds",
            "0",
            "--out",
            str(tmp_path / "quality.json"),
        ]
    )
    entry = table[0]
    for method in bench.METHODS:
        assert 0 <= entry[method]["accuracy"] <= 1
        assert 0 <= entry[method]["associated"] <= 1


def test_association_speed_titles_name_the_actual_sizes():
    bench = load("association_speed")
    assert bench.size_title(bench.SYSU_RGB, bench.SYSU_IR).startswith("SYSU-MM01 size")
    quick = bench.size_title(2000, 1000)  # the --quick sizes
    assert "SYSU-MM01 size" not in quick and quick.startswith("RGB 2000 + IR 1000")


def test_memory_step_speed_docstring_states_the_default_repeats():
    bench = load("memory_step_speed")
    default = bench.parse_args([]).repeats
    assert default == bench.DEFAULT_REPEATS
    doc = " ".join(bench.__doc__.split())
    assert f"(default {default})" in doc
    assert re.findall(r"--repeats (\d+)", doc) == []  # no other figure to drift from


def _fake_run(directory, association, bidirectional, rank1, accuracies):
    directory.mkdir()
    (directory / "config.json").write_text(
        json.dumps({"association": association, "bidirectional": bidirectional})
    )
    final = {"all": {"mean": {"rank1": rank1, "mAP": rank1 + 0.1}}}
    (directory / "results.json").write_text(json.dumps({"final": final}))
    records = [{"event": "epoch", "epoch": 0, "stage": 1, "label_quality": {}}]
    for epoch, accuracy in enumerate(accuracies, start=1):
        quality = {"association": {"accuracy": accuracy, "coverage": 0.5}}
        records.append({"event": "epoch", "epoch": epoch, "stage": 2, "label_quality": quality})
    (directory / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_association_demo_table_reads_finished_runs(tmp_path, capsys):
    bench = load("association_demo_table")
    _fake_run(tmp_path / "a", "cra", False, 0.2, [0.1, 0.3])
    _fake_run(tmp_path / "b", "ot", True, 0.25, [0.5, 0.75])
    bench.main([str(tmp_path / "a"), str(tmp_path / "b")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| association | R1 | mAP | acc (cov) ep 1 | acc (cov) ep 2 |"
    assert lines[2] == "| cra | 20.00 | 30.00 | 10.0 (50) | 30.0 (50) |"
    assert lines[3] == "| ot + bidirectional | 25.00 | 35.00 | 50.0 (50) | 75.0 (50) |"
    (tmp_path / "c").mkdir()
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path / "c")])
