"""One run per output folder: the lock, its holder in the error, stale locks, overwrite."""

import subprocess
import sys
import textwrap

import pytest

from sdcl_toolkit.engine.run_dir import (
    OutputDirInUseError,
    OutputDirLock,
    OutputDirLockedError,
    prepare_output_dir,
)

pytest.importorskip("fcntl")

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from sdcl_toolkit.engine.run_dir import OutputDirLock
    lock = OutputDirLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_a_second_run_names_the_holder_and_the_folder(tmp_path):
    import os
    import socket

    with OutputDirLock(tmp_path / "run"):
        with pytest.raises(OutputDirLockedError) as error:
            OutputDirLock(tmp_path / "run").acquire()
    message = str(error.value)
    assert f"PID {os.getpid()}" in message and socket.gethostname() in message
    assert str(tmp_path / "run") in message
    OutputDirLock(tmp_path / "run").acquire().release()  # released with the block


def test_the_lock_of_a_killed_process_does_not_block(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputDirLockedError, match=f"PID {holder.pid} "):
            OutputDirLock(tmp_path).acquire()
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays
        holder.wait()
    assert (tmp_path / ".lock").exists()
    OutputDirLock(tmp_path).acquire().release()


def test_a_fresh_run_never_replaces_another_run(tmp_path):
    assert prepare_output_dir(tmp_path, resume=False, overwrite=False) is None  # empty
    for name in ("last.pth", "log.jsonl", "results.json", "notes.txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(OutputDirInUseError, match="--resume --output-dir .*--overwrite"):
        prepare_output_dir(tmp_path, resume=False, overwrite=False)
    assert prepare_output_dir(tmp_path, resume=True, overwrite=False) is None
    assert (tmp_path / "last.pth").exists()
    message = prepare_output_dir(tmp_path, resume=False, overwrite=True)
    assert "last.pth" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # only the run's files


def test_the_trainer_holds_the_folder_and_refuses_to_replace_a_run(tiny_config, tmp_path):
    import dataclasses

    from sdcl_toolkit.engine import SDCLTrainer

    folder = tmp_path / "run"
    with OutputDirLock(folder):
        with pytest.raises(OutputDirLockedError, match="in use by another run"):
            SDCLTrainer(tiny_config).fit()
    (folder / "last.pth").write_bytes(b"a previous run")
    with pytest.raises(OutputDirInUseError, match="already holds a run"):
        SDCLTrainer(tiny_config).fit()
    # --overwrite clears it; a temporary of a killed checkpoint write is removed too
    (folder / ".last.pth.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    trainer = SDCLTrainer(dataclasses.replace(tiny_config, overwrite=True))
    trainer.claim_output_dir()
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "log.txt"]
    assert "deleted the previous run's last.pth" in (folder / "log.txt").read_text()
