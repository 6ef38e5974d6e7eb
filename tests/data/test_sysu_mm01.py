"""Tests of the SYSU-MM01 reader on generated trees, the official gallery rule and error paths."""

from __future__ import annotations

import logging
import os
import pickle
import random
import shutil
from pathlib import Path

import pytest

from sdcl_toolkit.data.records import IR, RGB, ImageRecord
from sdcl_toolkit.data.sysu_mm01 import (
    SYSU_GALLERY_CAMERAS,
    SYSUMM01,
    DatasetLayoutError,
)


def official_rule_gallery(root, mode, trial):
    """Straightforward re-statement of the official gallery rule (SPEC section 9):
    seed Python's global ``random`` with the trial, then for each test id in sorted
    4-digit form and each camera in order, ``random.choice`` over the sorted file list of
    ``cam/id`` if that folder exists."""
    cameras = {"all": ["cam1", "cam2", "cam4", "cam5"], "indoor": ["cam1", "cam2"]}[mode]
    with open(os.path.join(root, "exp", "test_id.txt")) as handle:
        ids = [f"{int(x):04d}" for x in handle.read().splitlines()[0].split(",")]
    state = random.getstate()
    try:
        random.seed(trial)
        chosen = []
        for pid in sorted(ids):
            for cam in cameras:
                folder = os.path.join(root, cam, pid)
                if os.path.isdir(folder):
                    files = sorted(folder + "/" + name for name in os.listdir(folder))
                    chosen.append(random.choice(files))
    finally:
        random.setstate(state)
    return [os.path.normpath(p) for p in chosen]


def make_tree(root: Path, folders, splits=None) -> Path:
    """A hand-made tree with empty placeholder image files: folders = {(cam, id): count}."""
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    for (cam, pid), count in folders.items():
        folder = root / f"cam{cam}" / f"{pid:04d}"
        folder.mkdir(parents=True)
        for k in range(count):
            (folder / f"{k + 1:04d}.jpg").write_bytes(b"")
    (root / "exp").mkdir(exist_ok=True)
    splits = splits or {"train": [1], "val": [2], "test": [3, 4]}
    for name, ids in splits.items():
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return root


@pytest.fixture
def small_tree(tmp_path):
    folders = {(c, p): 2 for p in (1, 2, 3, 4) for c in (1, 3, 4, 6)}
    return make_tree(tmp_path / "SYSU", folders)


# ------------------------------------------------------------------ records
def test_reader_on_generated_tree(synthetic_sysu_root):
    sysu = SYSUMM01(synthetic_sysu_root)
    assert set(sysu.train_ids).isdisjoint(sysu.test_ids)
    assert set(sysu.val_ids).isdisjoint(sysu.test_ids)
    assert len(sysu.train_ids) + len(sysu.val_ids) + len(sysu.test_ids) == 14

    train = sysu.train()
    assert all(isinstance(r, ImageRecord) for r in train)
    assert {r.pid for r in train} == set(sysu.train_ids) | set(sysu.val_ids)
    for record in train:
        assert Path(record.path).is_file()
        assert record.modality == (IR if record.camid in (3, 6) else RGB)
        assert Path(record.path).parent.name == f"{record.pid:04d}"
        assert Path(record.path).parent.parent.name == f"cam{record.camid}"
    on_disk = sum(
        len(os.listdir(synthetic_sysu_root / f"cam{c}" / f"{p:04d}"))
        for c in range(1, 7)
        for p in sysu.train_ids + sysu.val_ids
        if (synthetic_sysu_root / f"cam{c}" / f"{p:04d}").is_dir()
    )
    assert len(train) == on_disk
    rgb, ir = sysu.train(RGB), sysu.train(IR)
    assert len(rgb) + len(ir) == len(train)
    assert {r.camid for r in rgb} <= {1, 2, 4, 5} and {r.camid for r in ir} <= {3, 6}

    query = sysu.query()
    assert {r.pid for r in query} == set(sysu.test_ids)
    assert {r.camid for r in query} <= {3, 6} and all(r.modality == IR for r in query)
    assert len(query) == len({r.path for r in query})


def test_gallery_is_one_image_per_identity_and_camera(synthetic_sysu_root):
    sysu = SYSUMM01(synthetic_sysu_root)
    for mode, cameras in SYSU_GALLERY_CAMERAS.items():
        gallery = sysu.gallery(mode, trial=0)
        pairs = [(r.pid, r.camid) for r in gallery]
        assert len(pairs) == len(set(pairs))
        expected = {
            (p, c)
            for p in sysu.test_ids
            for c in cameras
            if (synthetic_sysu_root / f"cam{c}" / f"{p:04d}").is_dir()
        }
        assert set(pairs) == expected
        assert all(r.modality == RGB and Path(r.path).is_file() for r in gallery)


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_gallery_matches_official_rule_on_generated_tree(synthetic_sysu_root, mode):
    sysu = SYSUMM01(synthetic_sysu_root)
    for trial in range(10):
        ours = [r.path for r in sysu.gallery(mode, trial)]
        assert ours == official_rule_gallery(str(synthetic_sysu_root), mode, trial)


def test_gallery_matches_official_rule_with_uneven_folders(tmp_path):
    # uneven file counts and missing (camera, id) folders exercise the random stream
    folders = {}
    for pid in range(1, 31):
        for cam in (1, 2, 3, 4, 5, 6):
            if (pid * 7 + cam * 3) % 5:
                folders[(cam, pid)] = 1 + (pid * cam) % 9
    splits = {"train": list(range(1, 9)), "val": [9, 10], "test": list(range(30, 10, -1))}
    root = make_tree(tmp_path / "SYSU", folders, splits)
    sysu = SYSUMM01(root)
    assert sysu.test_ids == tuple(range(11, 31))
    galleries = set()
    for mode in ("all", "indoor"):
        for trial in (0, 1, 2, 5, 9, 123):
            ours = [r.path for r in sysu.gallery(mode, trial)]
            assert ours == official_rule_gallery(str(root), mode, trial)
            galleries.add(tuple(ours))
    assert len(galleries) == 12  # trials really differ


def test_gallery_leaves_global_random_state_alone(small_tree):
    sysu = SYSUMM01(small_tree)
    random.seed(42)
    expected = random.random()
    random.seed(42)
    sysu.gallery("all", 3)
    assert random.random() == expected


def test_query_order_is_official(small_tree):
    query = SYSUMM01(small_tree).query()
    assert [(r.pid, r.camid, Path(r.path).name) for r in query] == [
        (pid, cam, f"{k:04d}.jpg") for pid in (3, 4) for cam in (3, 6) for k in (1, 2)
    ]


def test_non_image_files_are_ignored_with_a_warning(small_tree, caplog):
    (small_tree / "cam1" / "0003" / "Thumbs.db").write_bytes(b"x")
    (small_tree / "cam1" / "0001" / "notes.txt").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="sdcl_toolkit.data.sysu_mm01"):
        sysu = SYSUMM01(small_tree)
    assert "not images" in caplog.text
    assert all(r.path.endswith(".jpg") for r in sysu.train() + sysu.gallery("all", 0))


def test_repr_and_path_types(small_tree):
    sysu = SYSUMM01(str(small_tree))
    assert "test_ids=2" in repr(sysu)
    assert SYSUMM01(small_tree).root == sysu.root


# ------------------------------------------------------------------ errors
def test_missing_root(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist") as info:
        SYSUMM01(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "Expected SYSU-MM01 layout" in str(info.value)


def test_everything_missing_is_listed_in_one_error(small_tree):
    shutil.rmtree(small_tree / "cam2")
    shutil.rmtree(small_tree / "cam5")
    (small_tree / "exp" / "val_id.txt").unlink()
    (small_tree / "exp" / "test_id.txt").unlink()
    with pytest.raises(DatasetLayoutError) as info:
        SYSUMM01(small_tree)
    message = str(info.value)
    for needle in ("cam2/", "cam5/", "exp/val_id.txt", "exp/test_id.txt", "Expected SYSU-MM01"):
        assert needle in message
    assert len(info.value.problems) == 4


def test_identity_without_any_folder(small_tree):
    (small_tree / "exp" / "test_id.txt").write_text("3,4,77\n")
    expected = r"identity 0077 \(exp/test_id.txt\) has no folder"
    with pytest.raises(DatasetLayoutError, match=expected):
        SYSUMM01(small_tree)


def test_empty_identity_folder(small_tree):
    for f in (small_tree / "cam4" / "0003").iterdir():
        f.unlink()
    with pytest.raises(DatasetLayoutError, match="cam4/0003/ holds no image files"):
        SYSUMM01(small_tree)


@pytest.mark.parametrize(
    "content, match",
    [
        ("3,x,4\n", "non-integer ids"),
        ("\n", "lists no identities"),
        ("3,4,3\n", "more than once"),
    ],
)
def test_malformed_id_file(small_tree, content, match):
    (small_tree / "exp" / "test_id.txt").write_text(content)
    with pytest.raises(DatasetLayoutError, match=match):
        SYSUMM01(small_tree)


def test_empty_validation_split_is_allowed_but_training_needs_ids(small_tree):
    (small_tree / "exp" / "val_id.txt").write_text("")
    assert SYSUMM01(small_tree).val_ids == ()
    (small_tree / "exp" / "train_id.txt").write_text("\n")
    with pytest.raises(DatasetLayoutError, match="list no identities"):
        SYSUMM01(small_tree)


def test_identity_in_two_splits(small_tree):
    (small_tree / "exp" / "val_id.txt").write_text("2,3\n")
    with pytest.raises(DatasetLayoutError, match="listed in both"):
        SYSUMM01(small_tree)


def test_parent_folder_hint(small_tree):
    with pytest.raises(DatasetLayoutError, match="looks like a SYSU-MM01 root"):
        SYSUMM01(small_tree.parent)


def test_layout_error_pickles(small_tree):
    shutil.rmtree(small_tree / "cam2")
    with pytest.raises(DatasetLayoutError) as info:
        SYSUMM01(small_tree)
    clone = pickle.loads(pickle.dumps(info.value))
    assert str(clone) == str(info.value)


def test_bad_arguments(small_tree):
    sysu = SYSUMM01(small_tree)
    with pytest.raises(ValueError, match="mode"):
        sysu.gallery("outdoor")
    with pytest.raises(TypeError, match="trial"):
        sysu.gallery("all", trial=1.5)
    with pytest.raises(ValueError, match="modality"):
        sysu.train("thermal")
    with pytest.raises(TypeError, match="root"):
        SYSUMM01(3)
