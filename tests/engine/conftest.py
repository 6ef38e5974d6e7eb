"""A tiny generated SYSU-MM01 tree and a fast training configuration for engine tests."""

import pytest


@pytest.fixture
def tiny_config(tiny_sysu_root, tiny_train_config, tmp_path):
    """Two short epochs (the second in stage 2) on the tiny tree: seconds on a CPU."""
    return tiny_train_config(tiny_sysu_root, tmp_path / "run")


@pytest.fixture(scope="session")
def _one_epoch_run(tiny_sysu_root, tiny_train_config, tmp_path_factory):
    """A run of ``tiny_config``'s settings stopped after epoch 0 (trained once per session)."""
    from sdcl_toolkit.engine import SDCLTrainer

    folder = tmp_path_factory.mktemp("one_epoch") / "run"
    SDCLTrainer(tiny_train_config(tiny_sysu_root, folder, stop_after=1)).fit()
    return folder


@pytest.fixture
def stopped_run(_one_epoch_run, tiny_sysu_root, tiny_train_config, tmp_path):
    """``(config, folder)``: a private copy of a run stopped after epoch 0 of 2, and the
    configuration it was started with (``stop_after=1``)."""
    import shutil

    folder = tmp_path / "stopped"
    shutil.copytree(_one_epoch_run, folder)
    return tiny_train_config(tiny_sysu_root, folder, stop_after=1), folder
