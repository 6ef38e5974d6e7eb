"""The dataset tree and the evaluation split are checked when the run starts, not in the
first epoch or after the last one."""

import dataclasses
import shutil
from pathlib import Path

import pytest

from sdcl_toolkit.data import DatasetLayoutError
from sdcl_toolkit.data.synthetic import write_synthetic_sysu
from sdcl_toolkit.engine import EvaluationSplitError, SDCLTrainer


@pytest.fixture
def own_tree(tmp_path):
    root = tmp_path / "SYSU-MM01"
    write_synthetic_sysu(
        root, identities=12, images_per_camera=2, seed=4, test_fraction=0.25, val_fraction=0.0
    )
    return root


def _test_ids(root):
    return [int(t) for t in (root / "exp" / "test_id.txt").read_text().split(",")]


def test_test_identities_without_visible_images_fail_at_start(tiny_config, own_tree):
    for pid in _test_ids(own_tree):
        for cam in (1, 2, 4, 5):
            shutil.rmtree(own_tree / f"cam{cam}" / f"{pid:04d}", ignore_errors=True)
    with pytest.raises(EvaluationSplitError, match="empty all-search gallery of trial 0"):
        SDCLTrainer(dataclasses.replace(tiny_config, data_dir=str(own_tree)))


def test_a_corrupt_test_image_fails_at_start(tiny_config, own_tree):
    folders = [own_tree / f"cam{c}" / f"{p:04d}" for p in _test_ids(own_tree) for c in (3, 6)]
    victim = sorted(next(f for f in folders if f.is_dir()).iterdir())[0]  # an IR query
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    with pytest.raises(
        EvaluationSplitError, match=f"(?s)1 of .* test images.*{victim.parent.name}/{victim.name}"
    ):
        SDCLTrainer(dataclasses.replace(tiny_config, data_dir=str(own_tree)))


def test_training_identities_without_infrared_images_fail_at_start(tiny_config, own_tree):
    """The reader opens such a tree; the dataset check names the empty modality before
    anything is trained or written."""
    train_ids = [int(t) for t in (own_tree / "exp" / "train_id.txt").read_text().split(",")]
    for pid in train_ids:
        for cam in (3, 6):
            shutil.rmtree(own_tree / f"cam{cam}" / f"{pid:04d}", ignore_errors=True)
    config = dataclasses.replace(tiny_config, data_dir=str(own_tree))
    with pytest.raises(DatasetLayoutError, match="the train split holds no ir image") as caught:
        SDCLTrainer(config)
    assert caught.value.problems == ["the train split holds no ir image"]
    assert not Path(config.output_dir).exists()


def test_a_missing_split_file_and_camera_fail_at_start_with_every_problem(tiny_config, own_tree):
    (own_tree / "exp" / "test_id.txt").unlink()
    shutil.rmtree(own_tree / "cam6")
    with pytest.raises(DatasetLayoutError) as caught:
        SDCLTrainer(dataclasses.replace(tiny_config, data_dir=str(own_tree)))
    assert caught.value.problems == ["missing folder cam6/", "missing file exp/test_id.txt"]
    assert "docs/datasets.md" in str(caught.value)
