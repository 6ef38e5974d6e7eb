"""A tiny generated SYSU-MM01 tree and a fast training configuration for engine tests."""

import dataclasses

import pytest

from sdcl_toolkit.data.synthetic import write_synthetic_sysu
from sdcl_toolkit.engine import TrainConfig


@pytest.fixture(scope="session")
def tiny_sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine") / "SYSU-MM01"
    write_synthetic_sysu(
        root,
        identities=16,
        images_per_camera=3,
        nuisance=0.1,
        seed=3,
        test_fraction=0.25,
        val_fraction=0.0,
    )
    return root


@pytest.fixture
def tiny_config(tiny_sysu_root, tmp_path):
    """Two short epochs (the second in stage 2) on the tiny tree: seconds on a CPU."""
    return dataclasses.replace(
        TrainConfig.demo(),
        data_dir=str(tiny_sysu_root),
        output_dir=str(tmp_path / "run"),
        epochs=2,
        cmlabel=1,
        heterogeneous_start=1,
        iters_stage1=2,
        iters_stage2=2,
        batch_ir=8,
        batch_rgb=8,
        num_instances=2,
        k1=6,
        k2=2,
        stage2_rgb_k1=5,
        cra_topk=5,
        cra_smooth_k=3,
        eps=0.7,
        pretrain_steps=0,
        eval_before=False,
        trials=2,
        eval_batch_size=64,
        workers=0,
        progress=False,
    )
