"""Hungarian (PGM-style) cluster matching: hand-computed cases, unequal counts, errors."""

import numpy as np
import pytest
import torch

from sdcl_toolkit.association import HungarianAssociation
from sdcl_toolkit.association.hungarian import match_clusters


def test_more_source_than_target_clusters_leaves_the_worst_unmatched(at_angles):
    # target clusters 4 (0 deg) and 9 (90 deg); source clusters 0 (10), 1 (80), 2 (45)
    tgt, y_t = at_angles([0, 0, 90, 90]), np.array([4, 4, 9, 9])
    src, y_s = at_angles([10, 10, 80, 45, 45, 30]), np.array([0, 0, 1, 2, 2, -1])
    # S = 2 cos: {0-4: 10 deg, 0-9: 80, 1-4: 80, 1-9: 10, 2-4: 45, 2-9: 45}; the best
    # one-to-one sum is 0->4 + 1->9 (2 * 2cos 10); cluster 2 and the outlier get -1
    result = HungarianAssociation().associate(src, src, tgt, tgt, y_t, y_s)
    np.testing.assert_array_equal(result.labels, [4, 4, 9, -1, -1, -1])
    np.testing.assert_allclose(result.scores[:3], 2 * np.cos(np.deg2rad([10, 10, 10])), atol=1e-6)
    assert np.isnan(result.scores[3:]).all()
    assert result.details == {"source_clusters": 3, "target_clusters": 2, "matched_clusters": 2}


def test_fewer_source_than_target_clusters(at_angles):
    tgt, y_t = at_angles([0, 45, 90]), np.array([0, 1, 2])
    src, y_s = at_angles([80, 85]), np.array([5, 5])
    labels = HungarianAssociation()(src, src, tgt, tgt, y_t, y_s)
    np.testing.assert_array_equal(labels, [2, 2])


def test_many_more_rgb_clusters_than_ir_do_not_crash(problem):
    # the PGM failure mode: the RGB -> IR map has no entry for unmatched RGB clusters
    ds, ss, dt, st, yt, _ = problem(4, ids=8)
    ys = np.arange(len(ds)) % 40  # 40 RGB clusters vs <= 8 IR clusters
    labels = HungarianAssociation()(ds, ss, dt, st, yt, ys)
    matched = np.unique(ys[labels >= 0])
    assert len(matched) == len(np.unique(yt[yt >= 0]))
    # one-to-one: each target cluster receives exactly one source cluster
    pairs = {(int(a), int(b)) for a, b in zip(ys[labels >= 0], labels[labels >= 0])}
    assert len({b for _, b in pairs}) == len(pairs)


def test_match_clusters_is_the_optimal_assignment():
    similarity = torch.tensor([[0.9, 0.8, 0.1], [0.85, 0.1, 0.0]])
    # greedy would take (0, 0) = 0.9 then (1, 1) = 0.1: 1.0; optimal (0, 1) + (1, 0) = 1.65
    np.testing.assert_array_equal(match_clusters(similarity).numpy(), [1, 0])
    np.testing.assert_array_equal(match_clusters(similarity.T).numpy(), [1, 0, -1])


def test_torch_matches_numpy(problem):
    arrays = problem(5)
    tensors = [torch.from_numpy(a) for a in arrays]
    out = HungarianAssociation()(*tensors)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), HungarianAssociation()(*arrays))


def test_errors(problem):
    ds, ss, dt, st, yt, ys = problem(6)
    with pytest.raises(ValueError, match="pass src_labels"):
        HungarianAssociation()(ds, ss, dt, st, yt)
    with pytest.raises(ValueError, match="all src_labels are -1"):
        HungarianAssociation()(ds, ss, dt, st, yt, np.full_like(ys, -1))
    with pytest.raises(ValueError, match="src_labels has length"):
        HungarianAssociation()(ds, ss, dt, st, yt, ys[:-1])
    with pytest.raises(ValueError, match="src_labels must be >= -1"):
        HungarianAssociation()(ds, ss, dt, st, yt, ys - 5)
