"""End-to-end training on a tiny generated tree: outputs, resume, error paths."""

import dataclasses
import json

import pytest
import torch

from sdcl_toolkit.data.sysu_mm01 import DatasetLayoutError
from sdcl_toolkit.engine import CheckpointLoadError, SDCLTrainer
from sdcl_toolkit.models.checkpoint import CheckpointError


@pytest.mark.slow
def test_short_run_trains_both_stages_and_writes_its_outputs(tiny_config, tmp_path):
    history = SDCLTrainer(tiny_config).fit()
    epochs = history["epochs"]
    assert [e["stage"] for e in epochs] == [1, 2]
    assert epochs[1]["associated_fraction"] is not None
    assert all(e["steps"] == 2 for e in epochs)
    assert all(torch.isfinite(torch.tensor(e["losses"]["loss"])) for e in epochs)
    assert epochs[1]["losses"]["heterogeneous"] > 0  # heterogeneous CNL from epoch 1
    assert set(history["final"]) == {"all", "indoor"}
    assert len(history["final"]["all"]["trials"]) == 2
    out = tmp_path / "run"
    assert {"last.pth", "log.jsonl", "results.json", "config.json"} <= {
        p.name for p in out.iterdir()
    }
    events = [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert events.count("epoch") == 2 and events.count("eval") == 1
    saved = torch.load(out / "last.pth", weights_only=False)
    assert saved["epoch"] == 1 and saved["config"]["epochs"] == 2


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(tiny_config, tmp_path):
    full = SDCLTrainer(dataclasses.replace(tiny_config, output_dir=str(tmp_path / "full")))
    full.fit()
    split = dataclasses.replace(tiny_config, output_dir=str(tmp_path / "split"))
    first = SDCLTrainer(dataclasses.replace(split, stop_after=1))
    first.fit()
    assert "final" not in first.history  # interrupted after epoch 0
    resumed = SDCLTrainer(dataclasses.replace(split, resume=True))
    assert resumed.start_epoch == 0
    resumed.fit()
    assert resumed.start_epoch == 1
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.history["final"]["all"]["mean"] == full.history["final"]["all"]["mean"]


def test_resume_without_checkpoint_is_a_clear_error(tiny_config):
    trainer = SDCLTrainer(dataclasses.replace(tiny_config, resume=True))
    with pytest.raises(CheckpointLoadError, match="nothing to resume from"):
        trainer.fit()


def test_corrupt_checkpoint_is_a_clear_error(tiny_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointLoadError, match="corrupt or truncated"):
        SDCLTrainer(dataclasses.replace(tiny_config, resume=True)).fit()


def test_wrong_data_layout_lists_what_is_missing(tiny_config, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="cam1"):
        SDCLTrainer(dataclasses.replace(tiny_config, data_dir=str(tmp_path / "empty")))


def test_pretrained_file_with_foreign_keys(tiny_config, tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 2048)}, path)
    with pytest.raises(CheckpointError):
        SDCLTrainer(dataclasses.replace(tiny_config, pretrained=str(path)))


@pytest.mark.slow
def test_pretraining_stage_runs_and_is_reported(tiny_config, tmp_path):
    config = dataclasses.replace(
        tiny_config,
        epochs=1,
        cmlabel=5,
        pretrain_steps=2,
        pretrain_identities=8,
        eval_before=True,
        cache_dir=str(tmp_path / "cache"),
    )
    history = SDCLTrainer(config).fit()
    assert {"before", "pretrained", "final"} <= set(history)


def test_bfloat16_autocast_run(tiny_config):
    history = SDCLTrainer(dataclasses.replace(tiny_config, amp=True, epochs=1, cmlabel=5)).fit()
    assert torch.isfinite(torch.tensor(history["epochs"][0]["losses"]["loss"]))


def test_injected_model_optimizer_and_scheduler_are_used(tiny_config):
    from sdcl_toolkit.engine import build_model

    config = dataclasses.replace(tiny_config, epochs=1, cmlabel=5)
    model = build_model(config)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = SDCLTrainer(config, model, optimizer, scheduler)
    assert trainer.model is model and trainer.optimizer is optimizer
    history = trainer.fit()
    assert history["epochs"][0]["lr"] == pytest.approx(5e-4)  # the injected schedule ran
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_trainer_does_not_create_a_process_group(tiny_config, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="setup_distributed"):
        SDCLTrainer(tiny_config)
    assert not dist.is_initialized()


@pytest.mark.slow
def test_official_batch_norm_groups_run(tiny_config):
    config = dataclasses.replace(tiny_config, norm_groups=2)
    history = SDCLTrainer(config).fit()
    assert [e["stage"] for e in history["epochs"]] == [1, 2]
    losses = history["epochs"][1]["losses"]
    assert set(losses) >= {
        "loss",
        "contrast",
        "homogeneous",
        "heterogeneous",
        "contrast_rgb_deep",
        "heterogeneous_ir_to_rgb_deep",
    }
    assert losses["heterogeneous_ir_to_rgb_deep"] > 0  # epoch 1 is odd: IR -> RGB


def test_sysu_preset_without_pretrained_is_refused(tiny_sysu_root, tmp_path):
    from sdcl_toolkit.engine import TrainConfig

    with pytest.raises(ValueError, match="--pretrained none"):
        SDCLTrainer(TrainConfig.sysu(data_dir=str(tiny_sysu_root), output_dir=str(tmp_path / "x")))


class _CountingAugment:
    """Wraps the trainer's on-device augmentation and records what it was given."""

    def __init__(self, augment):
        self.augment, self.calls, self.dtypes = augment, 0, set()

    def __call__(self, batch_rgb, batch_ir, device, generator=None):
        self.calls += 1
        self.dtypes |= {batch_rgb[0].dtype, batch_ir[0].dtype}
        assert generator is not None and generator.device == device
        return self.augment(batch_rgb, batch_ir, device, generator=generator)


@pytest.mark.slow
def test_device_augmentation_run_resumes_to_the_same_weights(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, device_augmentation=True)
    full = SDCLTrainer(dataclasses.replace(config, output_dir=str(tmp_path / "full")))
    full.batch_augment = counting = _CountingAugment(full.batch_augment)
    full.fit()
    assert counting.calls == 4 and counting.dtypes == {torch.uint8}  # 2 epochs x 2 steps
    split = dataclasses.replace(config, output_dir=str(tmp_path / "split"))
    SDCLTrainer(dataclasses.replace(split, stop_after=1)).fit()
    resumed = SDCLTrainer(dataclasses.replace(split, resume=True))
    resumed.fit()
    assert resumed.start_epoch == 1
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.history["final"]["all"]["mean"] == full.history["final"]["all"]["mean"]


def test_augmentation_generator_depends_on_seed_epoch_and_rank_only(tiny_config):
    trainer = SDCLTrainer(dataclasses.replace(tiny_config, device_augmentation=True))
    draw = [torch.rand(4, generator=trainer.augmentation_generator(e)) for e in (0, 0, 1)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    torch.rand(10)  # the global stream does not enter
    assert torch.equal(torch.rand(4, generator=trainer.augmentation_generator(0)), draw[0])
    other = SDCLTrainer(dataclasses.replace(tiny_config, device_augmentation=True, seed=1))
    assert not torch.equal(torch.rand(4, generator=other.augmentation_generator(0)), draw[0])
