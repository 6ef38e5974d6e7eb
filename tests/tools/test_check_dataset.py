"""sdcl-check-dataset: printed counts, JSON, exit codes (mismatch, unreadable image, bad args)."""

from __future__ import annotations

import json
import shutil

import pytest

from sdcl_toolkit.tools.check_dataset import main


def test_generated_tree_passes_without_the_official_comparison(sysu_root, capsys):
    assert main([str(sysu_root), "--dataset", "sysu", "--no-official", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train identities" in out and "query ir images" in out and out.endswith("OK\n")
    assert "cam3:" in out and "exp/test_id.txt" in out and "0 unreadable" in out


def test_official_comparison_fails_on_a_miniature(sysu_root, capsys):
    assert main([str(sysu_root), "--dataset", "sysu", "--no-decode"]) == 1
    out = capsys.readouterr().out
    assert "train identities: found 12, official 395" in out
    assert "query ir images: found 18, official 3803" in out and "NOT OK" in out


def test_json_report(regdb_root, capsys):
    assert main([str(regdb_root), "--dataset", "regdb", "--no-official", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["counts"]["identities"] == 6
    assert report["counts"]["trials found"] == 2 and report["decoded"] == 24


def test_unreadable_image_exits_1_and_is_named(sysu_root, tmp_path, capsys):
    root = tmp_path / "SYSU-MM01"
    shutil.copytree(sysu_root, root)
    broken = sorted((root / "cam1").rglob("*.jpg"))[0]
    broken.write_bytes(broken.read_bytes()[:40])
    assert main([str(root), "--dataset", "sysu", "--no-official", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 unreadable" in out and broken.name in out


def test_missing_tree_reports_layout_problems(tmp_path, capsys):
    assert main([str(tmp_path / "none"), "--dataset", "llcm"]) == 1
    assert "does not exist" in capsys.readouterr().out


def test_unknown_dataset_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["root", "--dataset", "market"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
