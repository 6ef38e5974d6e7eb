"""Suite-wide fixtures: the device/dtype matrix of the ``cuda`` tests.

The matrix is chosen by environment variables, as pytest-metric-learning's test suite does:

* ``TEST_DEVICE``: the device the ``cuda``-marked component tests run on (default ``cpu``;
  ``cuda`` or ``cuda:1`` on a GPU machine). A CUDA device without CUDA skips those tests.
* ``TEST_DTYPES``: comma list of input dtypes (default ``float32,bfloat16,float16``).

Tests take the fixtures ``matrix_device`` and ``matrix_dtype`` (one test per dtype) and
compare with the CPU float32 result (tolerances per dtype: ``tests/test_devices.py``).

Also here, for every test that trains: ``tiny_sysu_root`` (a small generated SYSU-MM01 tree,
once per session) and ``tiny_train_config`` (the builder of the fast training
configuration on it).

    TEST_DEVICE=cuda pytest -m cuda                 # every component on the GPU
    TEST_DEVICE=cuda TEST_DTYPES=bfloat16 pytest -m cuda
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _matrix_device() -> torch.device:
    return torch.device(os.environ.get("TEST_DEVICE", "cpu"))


def _matrix_dtypes() -> list[str]:
    names = [n.strip() for n in os.environ.get("TEST_DTYPES", ",".join(DTYPES)).split(",")]
    unknown = [n for n in names if n and n not in DTYPES]
    if unknown:
        raise pytest.UsageError(f"TEST_DTYPES: unknown dtype(s) {unknown}; use {list(DTYPES)}")
    return [n for n in names if n]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "matrix_dtype" in metafunc.fixturenames:
        metafunc.parametrize("matrix_dtype", _matrix_dtypes(), indirect=True)


@pytest.fixture
def matrix_dtype(request) -> torch.dtype:
    """An input dtype of the matrix (``TEST_DTYPES``); ``request.param`` is its name."""
    return DTYPES[request.param]


@pytest.fixture
def matrix_device() -> torch.device:
    """The device of the matrix (``TEST_DEVICE``); skips when it is CUDA and none is present."""
    device = _matrix_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"TEST_DEVICE={device} but CUDA is not available")
    return device


# ----------------------------------------------------------------------------- tiny training run


@pytest.fixture(scope="session")
def tiny_sysu_root(tmp_path_factory) -> Path:
    """A generated SYSU-MM01 tree: 16 identities, 3 images per camera, a quarter for testing."""
    from sdcl_toolkit.data.synthetic import write_synthetic_sysu

    root = tmp_path_factory.mktemp("tiny") / "SYSU-MM01"
    return write_synthetic_sysu(
        root,
        identities=16,
        images_per_camera=3,
        nuisance=0.1,
        seed=3,
        test_fraction=0.25,
        val_fraction=0.0,
    )


@pytest.fixture(scope="session")
def tiny_train_config() -> Callable[..., Any]:
    """``tiny_train_config(data_dir, output_dir, **overrides)``: the tests' fast
    :class:`~sdcl_toolkit.engine.TrainConfig` (tiny model, two epochs of two iterations, the
    second in stage 2, no pretraining or evaluation during training, no workers): seconds on
    a CPU."""
    from sdcl_toolkit import SDCLRecipe
    from sdcl_toolkit.engine import TrainConfig

    def build(data_dir: Any, output_dir: Any, **overrides: Any) -> TrainConfig:
        settings: dict[str, Any] = dict(
            model="tiny",
            pretrained="none",
            seed=0,
            pretrain_steps=0,
            eval_every=0,
            eval_before=False,
            trials=2,
            eval_batch_size=64,
            workers=0,
            progress=False,
        )
        settings.update(overrides)
        return TrainConfig.from_recipe(
            SDCLRecipe.miniature(epochs=2, iters=2),
            data_dir=str(data_dir),
            output_dir=str(output_dir),
            **settings,
        )

    return build
