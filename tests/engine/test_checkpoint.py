"""Atomic checkpoints, RNG state capture, and clear errors for bad files."""

import random

import numpy as np
import pytest
import torch

from sdcl_toolkit.engine import CheckpointLoadError, load_checkpoint, save_checkpoint
from sdcl_toolkit.engine.checkpoint import capture_rng_state, restore_rng_state


def state(**extra):
    return {
        "model": {"w": torch.ones(2)},
        "optimizer": {},
        "scheduler": {},
        "epoch": 3,
        "rng": capture_rng_state(),
        "config": {},
        **extra,
    }


def test_round_trip_and_no_temporary_left(tmp_path):
    path = save_checkpoint(tmp_path / "last.pth", state())
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "last.pth", state())

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, state(bad=Unpicklable()))
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_rng_state_round_trip():
    saved = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointLoadError, match="no checkpoint at .*nothing to resume from"):
        load_checkpoint(tmp_path / "last.pth")


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "last.pth", state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointLoadError, match=r"last.pth is corrupt or truncated"):
        load_checkpoint(path)


def test_not_a_training_checkpoint(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointLoadError, match="not a training checkpoint"):
        load_checkpoint(path)
