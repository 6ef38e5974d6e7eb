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
