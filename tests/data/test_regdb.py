"""Tests of the RegDB reader on generated trees and its error paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdcl_toolkit.data.records import IR, RGB
from sdcl_toolkit.data.regdb import RegDB
from sdcl_toolkit.data.sysu_mm01 import DatasetLayoutError


def folder_id(record) -> int:
    return int(Path(record.path).parent.name)


def read_index(root: Path, name: str):
    lines = (root / "idx" / name).read_text().split("\n")
    return [(line.split(" ")[0], int(line.split(" ")[1])) for line in lines if line]


def test_reader_on_generated_tree(synthetic_regdb_root):
    regdb = RegDB(synthetic_regdb_root, trial=2)
    train = regdb.train()
    visible, thermal = regdb.train(RGB), regdb.train(IR)
    assert train == visible + thermal
    assert {(r.camid, r.modality) for r in visible} == {(1, RGB)}
    assert {(r.camid, r.modality) for r in thermal} == {(2, IR)}
    assert all(Path(r.path).is_file() for r in train)
    # records follow the index files line by line: path relative to root, label as pid
    expected = read_index(synthetic_regdb_root, "train_visible_2.txt")
    assert [(str(Path(r.path).relative_to(regdb.root)), r.pid) for r in visible] == expected

    test_ids = {folder_id(r) for r in regdb.test(RGB)}
    assert test_ids.isdisjoint({folder_id(r) for r in train})
    assert {folder_id(r) for r in regdb.test(IR)} == test_ids


def test_directions(synthetic_regdb_root):
    regdb = RegDB(synthetic_regdb_root, trial=1)
    assert regdb.query("visible_to_thermal") == regdb.test(RGB) == regdb.query("v2t")
    assert regdb.gallery("visible_to_thermal") == regdb.test(IR) == regdb.gallery("v2t")
    assert regdb.query("thermal_to_visible") == regdb.test(IR) == regdb.query("t2v")
    assert regdb.gallery("t2v") == regdb.test(RGB)
    # labels agree across modalities: the same person has the same pid in both
    by_folder = {folder_id(r): r.pid for r in regdb.test(RGB)}
    assert all(by_folder[folder_id(r)] == r.pid for r in regdb.test(IR))


def test_trials_are_different_splits(synthetic_regdb_root):
    splits = {
        trial: frozenset(folder_id(r) for r in RegDB(synthetic_regdb_root, trial).train())
        for trial in (1, 2, 3)
    }
    assert len(set(splits.values())) > 1
    assert "trial=3" in repr(RegDB(synthetic_regdb_root, 3))


@pytest.fixture
def regdb_copy(synthetic_regdb_root, tmp_path):
    return Path(shutil.copytree(synthetic_regdb_root, tmp_path / "RegDB"))


def test_missing_root(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist") as info:
        RegDB(tmp_path / "none")
    assert "Expected RegDB layout" in str(info.value)


def test_missing_index_files_are_listed_together(regdb_copy):
    (regdb_copy / "idx" / "train_thermal_1.txt").unlink()
    (regdb_copy / "idx" / "test_visible_1.txt").unlink()
    shutil.rmtree(regdb_copy / "Thermal")
    with pytest.raises(DatasetLayoutError) as info:
        RegDB(regdb_copy, trial=1)
    message = str(info.value)
    for needle in ("idx/train_thermal_1.txt", "idx/test_visible_1.txt", "Thermal/", "image(s)"):
        assert needle in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_trial(regdb_copy):
    with pytest.raises(DatasetLayoutError, match="train_visible_7.txt"):
        RegDB(regdb_copy, trial=7)


def test_missing_images_are_counted_and_named(regdb_copy):
    entries = read_index(regdb_copy, "test_visible_1.txt")
    for relative, _ in entries[:12]:
        (regdb_copy / relative).unlink()
    with pytest.raises(DatasetLayoutError, match="12 image") as info:
        RegDB(regdb_copy, trial=1)
    assert entries[0][0] in str(info.value) and "and 2 more" in str(info.value)


@pytest.mark.parametrize("line", ["Visible/1/a.bmp", "Visible/1/a.bmp x", "a b c"])
def test_malformed_index_lines(regdb_copy, line):
    path = regdb_copy / "idx" / "train_visible_1.txt"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DatasetLayoutError, match="malformed line"):
        RegDB(regdb_copy, trial=1)


def test_empty_index_file(regdb_copy):
    (regdb_copy / "idx" / "test_thermal_1.txt").write_text("")
    with pytest.raises(DatasetLayoutError, match="lists no images"):
        RegDB(regdb_copy, trial=1)


def test_bad_arguments(synthetic_regdb_root):
    with pytest.raises(ValueError, match="trial"):
        RegDB(synthetic_regdb_root, trial=0)
    with pytest.raises(TypeError, match="trial"):
        RegDB(synthetic_regdb_root, trial="1")
    with pytest.raises(TypeError, match="root"):
        RegDB(None)
    regdb = RegDB(synthetic_regdb_root)
    with pytest.raises(ValueError, match="direction"):
        regdb.query("up")
    with pytest.raises(ValueError, match="modality"):
        regdb.test(None)
    with pytest.raises(ValueError, match="modality"):
        regdb.train("thermal")
