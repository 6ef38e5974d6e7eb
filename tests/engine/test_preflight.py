"""The evaluation split is checked when the run starts, not after the last epoch."""

import dataclasses
import shutil

import pytest

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
