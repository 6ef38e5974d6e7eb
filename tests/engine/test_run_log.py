"""Run log: run ids, log.txt, dropped records of unsaved epochs, plain progress lines."""

import io
import json

from sdcl_toolkit.engine.run_log import RunLog, plain_progress, progress_bar


def test_records_carry_the_run_id_and_messages_reach_log_txt(tmp_path, capsys):
    log = RunLog(tmp_path, run_id="abc")
    log.open()
    log.info("hello")
    log.event("epoch", epoch=0)
    log.warning("careful")
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["run_id"] for r in records] == ["abc", "abc"]
    assert records[1] == {"event": "warning", "run_id": "abc", "message": "careful"}
    assert (tmp_path / "log.txt").read_text() == "hello\nWARNING: careful\n"
    assert "WARNING: careful" in capsys.readouterr().out


def test_drop_after_keeps_other_runs_and_saved_epochs(tmp_path):
    other = RunLog(tmp_path, run_id="old")
    other.open()
    other.event("epoch", epoch=5)
    log = RunLog(tmp_path, run_id="new")
    for epoch in range(4):
        log.event("epoch", epoch=epoch)
    log.event("eval", epoch=3)
    assert log.drop_after(1) == 3
    kept = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["run_id"], r["epoch"]) for r in kept] == [("old", 5), ("new", 0), ("new", 1)]


def test_plain_progress_lines_without_a_terminal(monkeypatch):
    lines = []
    assert list(plain_progress(range(4), desc="epoch 0", total=4, every=0, write=lines.append))
    assert lines[0] == "epoch 0: 1/4 (25%), 0s" and lines[-1].endswith("done")
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a batch job: stderr is a file
    assert not hasattr(progress_bar(range(3), enabled=True, desc="x", total=3), "set_postfix")
    assert list(progress_bar(range(3), enabled=True, desc="x", total=3)) == [0, 1, 2]
