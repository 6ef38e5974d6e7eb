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


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from sdcl_toolkit.engine import CheckpointSaveError

    path = save_checkpoint(tmp_path / "last.pth", state())

    def disk_full(obj, handle, *args, **kwargs):  # what torch.save raises on ENOSPC
        handle.write(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0: "
            "PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointSaveError, match=r"could not write the checkpoint .*last.pth"):
        save_checkpoint(path, state(epoch=4))
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    import os
    import stat

    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save_checkpoint(tmp_path / "last.pth", state())
    assert synced == [False, True]  # the file's data, then the folder's entry


def test_temporaries_of_a_killed_write_are_removed(tmp_path):
    import subprocess
    import sys
    import textwrap

    from sdcl_toolkit.engine.checkpoint import remove_stale_temporaries

    path = save_checkpoint(tmp_path / "last.pth", state())
    # a process killed (SIGKILL) in the middle of torch.save leaves its temporary behind
    writer = textwrap.dedent(
        """
        import os, signal, sys, torch
        from sdcl_toolkit.engine import save_checkpoint
        def killed(obj, handle, *a, **k):
            handle.write(b"half a checkpoint"); handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = killed
        save_checkpoint(sys.argv[1], {})
        """
    )
    result = subprocess.run([sys.executable, "-c", writer, str(path)], check=False)
    assert result.returncode == -9
    (stale,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert stale.name.startswith(".last.pth.")
    assert remove_stale_temporaries(path) == [stale]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]
    assert load_checkpoint(path)["epoch"] == 3
