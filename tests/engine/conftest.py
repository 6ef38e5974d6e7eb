"""A tiny generated SYSU-MM01 tree and a fast training configuration for engine tests."""

import pytest

from sdcl_toolkit import SDCLRecipe
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
    return TrainConfig.from_recipe(
        SDCLRecipe.miniature(epochs=2, iters=2),
        model="tiny",
        pretrained="none",
        seed=0,
        data_dir=str(tiny_sysu_root),
        output_dir=str(tmp_path / "run"),
        pretrain_steps=0,
        eval_every=0,
        eval_before=False,
        trials=2,
        eval_batch_size=64,
        workers=0,
        progress=False,
    )


def _tiny(root, output_dir, **overrides):
    return TrainConfig.from_recipe(
        SDCLRecipe.miniature(epochs=2, iters=2),
        model="tiny",
        pretrained="none",
        seed=0,
        data_dir=str(root),
        output_dir=str(output_dir),
        pretrain_steps=0,
        eval_every=0,
        eval_before=False,
        trials=2,
        eval_batch_size=64,
        workers=0,
        progress=False,
        **overrides,
    )


@pytest.fixture(scope="session")
def _one_epoch_run(tiny_sysu_root, tmp_path_factory):
    """A run of ``tiny_config``'s settings stopped after epoch 0 (trained once per session)."""
    from sdcl_toolkit.engine import SDCLTrainer

    folder = tmp_path_factory.mktemp("one_epoch") / "run"
    SDCLTrainer(_tiny(tiny_sysu_root, folder, stop_after=1)).fit()
    return folder


@pytest.fixture
def stopped_run(_one_epoch_run, tiny_sysu_root, tmp_path):
    """``(config, folder)``: a private copy of a run stopped after epoch 0 of 2, and the
    configuration it was started with (``stop_after=1``)."""
    import shutil

    folder = tmp_path / "stopped"
    shutil.copytree(_one_epoch_run, folder)
    return _tiny(tiny_sysu_root, folder, stop_after=1), folder
