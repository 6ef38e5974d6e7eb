"""Session fixtures for the data tests: tiny generated SYSU-MM01 and RegDB trees.

They are written once per test session into a temporary directory by the toolkit's own
generator (:mod:`sdcl_toolkit.data.synthetic`) and must be treated as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sdcl_toolkit.data.synthetic import write_synthetic_regdb, write_synthetic_sysu

SYSU_KWARGS = dict(
    identities=14, images_per_camera=3, height=32, width=16, seed=1, camera_presence=0.7
)
REGDB_KWARGS = dict(identities=8, images_per_modality=3, height=32, width=16, seed=2, trials=3)


@pytest.fixture(scope="session")
def synthetic_sysu_root(tmp_path_factory) -> Path:
    """A generated SYSU-MM01 tree: 14 identities, cameras missing at random, 3 images each."""
    return write_synthetic_sysu(tmp_path_factory.mktemp("synthetic") / "SYSU-MM01", **SYSU_KWARGS)


@pytest.fixture(scope="session")
def synthetic_regdb_root(tmp_path_factory) -> Path:
    """A generated RegDB tree: 8 identities, 3 frames per modality, trials 1..3."""
    return write_synthetic_regdb(tmp_path_factory.mktemp("synthetic") / "RegDB", **REGDB_KWARGS)
