"""Session fixtures for the console-script tests: generated trees and a short real run.

``trained_run`` trains the tiny model for two short epochs on a generated SYSU-MM01 tree
(evaluating after each, so its ``log.jsonl`` has epoch and eval records) and returns the run
folder with ``last.pth``; about half a minute on a CPU, once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sdcl_toolkit.data.synthetic import write_synthetic_llcm, write_synthetic_regdb
from sdcl_toolkit.engine import SDCLTrainer


def pytest_collection_modifyitems(config, items):
    """Tests that need the trained run (half a minute, once) or start a console script in a
    new interpreter are ``slow`` (``-m "not slow"`` skips them)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent != here:
            continue
        if "trained_run" in getattr(item, "fixturenames", ()) or "installed_script" in item.name:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sysu_root(tiny_sysu_root) -> Path:
    """The suite's tiny generated SYSU-MM01 tree (``tests/conftest.py``); read only."""
    return tiny_sysu_root


@pytest.fixture(scope="session")
def regdb_root(tmp_path_factory) -> Path:
    return write_synthetic_regdb(
        tmp_path_factory.mktemp("tools") / "RegDB",
        identities=6,
        images_per_modality=2,
        seed=4,
        trials=2,
    )


@pytest.fixture(scope="session")
def llcm_root(tmp_path_factory) -> Path:
    return write_synthetic_llcm(
        tmp_path_factory.mktemp("tools") / "LLCM", identities=8, images_per_camera=1, seed=5
    )


@pytest.fixture(scope="session")
def trained_run(sysu_root, tiny_train_config, tmp_path_factory):
    """``(run folder, history)`` of a two-epoch run of the tiny model."""
    run = tmp_path_factory.mktemp("tools") / "run"
    history = SDCLTrainer(tiny_train_config(sysu_root, run, eval_every=1)).fit()
    assert (run / "last.pth").is_file()
    return run, history
