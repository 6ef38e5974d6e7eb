"""Shared inputs of the association tests (session fixtures returning builders)."""

from __future__ import annotations

import numpy as np
import pytest

from sdcl_toolkit.data.clustered_features import make_two_modality_features


def _at_angles(degrees) -> np.ndarray:
    """``[N, 2]`` float32 unit vectors at ``degrees``."""
    theta = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(theta), np.sin(theta)], axis=1).astype(np.float32)


def _problem(seed: int, ids: int = 6, rgb_per_id: int = 6, ir_per_id: int = 5, drop=0.15):
    """A random problem whose cluster labels have gaps, outliers and unequal counts:
    ``(deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels)`` (numpy)."""
    f = make_two_modality_features(ids, rgb_per_id, ir_per_id, dim=12, seed=seed)
    rng = np.random.default_rng(seed)
    tgt = rng.permutation(3 * ids)[:ids][f.ids_ir.numpy()]  # relabelled, with gaps
    src = f.ids_rgb.numpy() * 2 + (rng.random(len(f.ids_rgb)) < 0.3)  # identities split
    tgt[rng.random(len(tgt)) < drop] = -1
    src[rng.random(len(src)) < drop] = -1
    if not (tgt >= 0).any():
        tgt[0] = 0
    if not (src >= 0).any():
        src[0] = 0
    return (
        f.deep_rgb.numpy(),
        f.shallow_rgb.numpy(),
        f.deep_ir.numpy(),
        f.shallow_ir.numpy(),
        tgt.astype(np.int64),
        src.astype(np.int64),
    )


@pytest.fixture(scope="session")
def at_angles():
    return _at_angles


@pytest.fixture(scope="session")
def problem():
    return _problem
