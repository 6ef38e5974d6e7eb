"""Per-epoch health checks: diverged features, collapsed clustering, zero losses."""

import pytest
import torch

from sdcl_toolkit.engine import TrainConfig
from sdcl_toolkit.engine.health import (
    ClusterCollapseError,
    TrainingDivergedError,
    check_clustering,
    check_features_finite,
    loader_starvation,
    zero_loss_parts,
)


def _summary(rgb_clusters=10, ir_clusters=10, kept=80, outliers=20):
    out = {}
    for modality, clusters in (("rgb", rgb_clusters), ("ir", ir_clusters)):
        out.update(
            {
                f"{modality}_clusters": clusters,
                f"{modality}_classes": clusters,
                f"{modality}_kept": kept,
                f"{modality}_outliers": outliers,
            }
        )
    return out


def test_nan_features_name_the_epoch_and_what_to_change():
    good = torch.randn(5, 4)
    bad = good.clone()
    bad[2, 1] = float("nan")
    check_features_finite({"rgb": (good, good), "ir": (good, good)}, 3)
    with pytest.raises(TrainingDivergedError, match=r"epoch 3: 1 of 5 ir shallow .*epoch 2.*--lr"):
        check_features_finite({"rgb": (good, good), "ir": (good, bad)}, 3)


@pytest.mark.parametrize(("stage", "rgb", "ir"), [(1, 1, 1), (1, 0, 1), (2, 10, 1), (2, 1, 1)])
def test_no_memory_with_two_classes_stops_the_run(stage, rgb, ir):
    with pytest.raises(ClusterCollapseError, match="cannot recover.*--eps"):
        check_clustering({**_summary(rgb, ir), "stage": stage}, 4, TrainConfig.demo())


@pytest.mark.parametrize(("stage", "rgb", "ir"), [(1, 1, 10), (1, 10, 1), (2, 1, 10)])
def test_one_collapsed_modality_is_a_loud_warning(stage, rgb, ir):
    (warning,) = check_clustering({**_summary(rgb, ir), "stage": stage}, 4, TrainConfig.demo())
    assert "collapsed to 1 cluster" in warning and "--eps" in warning


def test_nearly_all_outliers_is_a_warning():
    config = TrainConfig.demo()
    assert check_clustering(_summary(), 0, config) == []
    warnings = check_clustering(_summary(kept=5, outliers=95), 0, config)
    assert len(warnings) == 2 and "only 5 of 100 RGB samples" in warnings[0]


def test_identically_zero_loss_parts():
    losses = {"loss": 1.0, "contrast": 0.0, "contrast_rgb_deep": 0.0, "heterogeneous": 0.0}
    assert zero_loss_parts(losses, steps=3) == ["contrast", "contrast_rgb_deep"]
    assert zero_loss_parts(losses, steps=0) == []


def test_loader_starvation_is_judged_on_gpus_only():
    message = loader_starvation(4.0, 10.0, "cuda", 4, False)
    assert "waited 4.0 s of 10.0 s (40%)" in message
    assert "--workers (now 4)" in message and "--device-augmentation" in message
    assert "--device-augmentation" not in loader_starvation(4.0, 10.0, "cuda", 4, True)
    assert loader_starvation(2.0, 10.0, "cuda", 4, False) == ""  # 20%: fine
    assert loader_starvation(9.0, 10.0, "cpu", 2, False) == ""  # cores shared: not judged
    assert loader_starvation(3.0, 4.0, "cuda", 4, False) == ""  # too short to judge


def test_the_epoch_record_holds_the_data_wait(tiny_config):
    from sdcl_toolkit.engine import SDCLTrainer

    history = SDCLTrainer(tiny_config).fit()
    for epoch in history["epochs"]:
        seconds = epoch["seconds"]
        assert 0.0 < seconds["data_wait"] <= seconds["train"]


def test_a_diverged_model_stops_with_the_trainers_message(tiny_config):
    from sdcl_toolkit.engine import SDCLTrainer

    trainer = SDCLTrainer(tiny_config)
    with torch.no_grad():
        trainer.model.vit.pos_embed.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="training diverged.*--lr"):
        trainer.fit()  # before pseudo-labelling's own "contains NaN" error


def test_collapsed_clustering_stops_the_run(tiny_config):
    from sdcl_toolkit.engine import SDCLTrainer

    trainer = SDCLTrainer(tiny_config)
    label = trainer.pseudo_label

    def one_cluster(features, stage):  # both modalities in one cluster each
        labels = label(features, stage)
        summary = {**labels.summary(), "ir_clusters": 1, "ir_classes": 1}
        summary.update(rgb_clusters=1, rgb_classes=1)
        labels.summary = lambda: summary
        return labels

    trainer.pseudo_label = one_cluster
    with pytest.raises(ClusterCollapseError, match="epoch 0: .*IR features collapsed to 1 "):
        trainer.fit()
    assert not (trainer.output_dir / "last.pth").exists()  # stopped before training on it
