"""``--resume`` continues the run recorded in the folder: configuration restored from the
checkpoint, per-field policy for changed flags, no duplicated log records, a working hint."""

import dataclasses
import json

import pytest
import torch

from sdcl_toolkit.engine import ResumeConflictError, SDCLTrainer, sysu_config_from_argv
from sdcl_toolkit.engine.trainer import resume_command


def _records(folder):
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def test_resume_from_the_readme_form_restores_the_recorded_run(stopped_run):
    config, folder = stopped_run
    restored = sysu_config_from_argv(["--resume", "--output-dir", str(folder)])
    # the data, the model and every setting come from the checkpoint, not the SYSU preset
    expected = dataclasses.replace(config, resume=True, stop_after=None)
    assert restored == expected
    assert restored.data_dir == config.data_dir and restored.model == "tiny"


def test_the_stop_after_hint_resumes_as_printed(stopped_run, capsys):
    config, folder = stopped_run
    log = (folder / "log.txt").read_text()
    hint = next(line for line in log.splitlines() if "continue with:" in line)
    command = hint.split("continue with: ", 1)[1]
    printed_folder = command.rsplit(" ", 1)[1]  # the run was trained in another folder
    assert command == resume_command(printed_folder)
    argv = command.split()[2:-1] + [str(folder)]  # drop "python script.py"; this copy
    assert argv[:2] == ["--resume", "--output-dir"]
    assert sysu_config_from_argv(argv) == dataclasses.replace(config, resume=True, stop_after=None)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--height", "128"), ("--model", "vit_small"), ("--eps", "0.5"), ("--seed", "3")],
)
def test_settings_that_shaped_the_run_are_refused(stopped_run, flag, value):
    _, folder = stopped_run
    with pytest.raises(ResumeConflictError, match=f"{flag}: .* in the checkpoint"):
        sysu_config_from_argv(["--resume", "--output-dir", str(folder), flag, value])


def test_refused_change_is_clear_in_the_trainer_too(stopped_run):
    config, _ = stopped_run
    trainer = SDCLTrainer(dataclasses.replace(config, resume=True, height=128))
    with pytest.raises(ResumeConflictError, match="--height: None in the checkpoint, 128 now"):
        trainer.fit()  # not a raw load_state_dict shape error


def test_changed_optimiser_settings_are_applied_and_recorded(stopped_run):
    config, folder = stopped_run
    argv = ["--resume", "--output-dir", str(folder), "--lr", "0.01", "--weight-decay", "0.001"]
    argv += ["--sgd-momentum", "0.5", "--step-size", "1", "--gamma", "0.5", "--epochs", "3"]
    changed = sysu_config_from_argv(argv)
    assert (changed.lr, changed.epochs, changed.model) == (0.01, 3, "tiny")
    trainer = SDCLTrainer(changed)
    trainer.claim_output_dir()
    trainer.resume()
    group = trainer.optimizer.param_groups[0]
    # the scheduler stepped once (epoch 0): lr = 0.01 * 0.5 ** (1 // 1)
    assert group["lr"] == pytest.approx(0.005)
    assert (group["weight_decay"], group["momentum"]) == (0.001, 0.5)
    trainer.scheduler.step()
    assert group["lr"] == pytest.approx(0.0025)  # StepLR now runs with step 1, gamma 0.5
    trainer.save(1)
    saved = torch.load(folder / "last.pth", weights_only=False)
    assert saved["config"]["lr"] == 0.01 and saved["config"]["gamma"] == 0.5
    assert saved["optimizer"]["param_groups"][0]["initial_lr"] == 0.01
    resume_event = [r for r in _records(folder) if r["event"] == "resume"][-1]
    assert resume_event["changed"]["lr"] == {"was": config.lr, "now": 0.01}


def test_a_kill_between_logging_and_saving_does_not_duplicate_an_epoch(stopped_run):
    config, folder = stopped_run
    records = _records(folder)
    run_id = records[0]["run_id"]
    assert run_id and all(r["run_id"] == run_id for r in records)
    # epoch 1 was logged, then the process died before its checkpoint (and mid-line)
    with (folder / "log.jsonl").open("a") as handle:
        handle.write(json.dumps({"event": "epoch", "run_id": run_id, "epoch": 1}) + "\n")
        handle.write('{"event": "eval", "run_')
    trainer = SDCLTrainer(dataclasses.replace(config, resume=True, stop_after=None))
    trainer.claim_output_dir()
    trainer.resume()  # epoch 1 is trained (and logged) again from here
    records = _records(folder)
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0]
    assert records[-1]["event"] == "resume"
    assert {r["run_id"] for r in records} == {run_id}  # a resumed run keeps its id
    assert trainer.start_epoch == 1


def test_resume_on_other_data_is_refused(stopped_run, tmp_path):
    from sdcl_toolkit.data.synthetic import write_synthetic_sysu

    config, _ = stopped_run
    other = tmp_path / "other"
    write_synthetic_sysu(other, identities=12, images_per_camera=2, seed=5, val_fraction=0.0)
    trainer = SDCLTrainer(dataclasses.replace(config, resume=True, data_dir=str(other)))
    with pytest.raises(ValueError, match="trained on .* training images"):
        trainer.fit()
