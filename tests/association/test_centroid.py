"""Nearest target centroid: hand-computed cases and errors."""

import numpy as np
import pytest
import torch

from sdcl_toolkit.association import AssociationResult, NearestCentroidAssociation


def test_hand_computed_case_with_label_gaps(at_angles):
    # target cluster 3 at 0 and 10 degrees (centroid 5 deg), cluster 7 at 90 degrees
    tgt = at_angles([0, 10, 90])
    src = at_angles([20, 60, 45])
    result = NearestCentroidAssociation().associate(src, src, tgt, tgt, np.array([3, 3, 7]), None)
    assert isinstance(result, AssociationResult)
    # 20 deg: 15 from 5 deg, 70 from 90 -> 3; 60: 55 vs 30 -> 7; 45: 40 vs 45 -> 3
    np.testing.assert_array_equal(result.labels, [3, 7, 3])
    # score = d.mu^d + s.mu^s = 2 cos(angle to the chosen centroid)
    expected = 2 * np.cos(np.deg2rad([15, 30, 40]))
    np.testing.assert_allclose(result.scores, expected, atol=1e-6)
    assert result.labels.dtype == np.int64


def test_centroid_is_the_mean_of_raw_features(at_angles):
    # cluster 0: a long vector at 0 deg and a short one at 60 deg; raw mean at
    # atan2(sin 60, 10 + cos 60) = 4.7 deg (the mean of normalised vectors would be 30 deg)
    tgt = at_angles([0, 60]) * np.array([[10.0], [1.0]], dtype=np.float32)
    tgt = np.concatenate([tgt, at_angles([90])])
    src = at_angles([50])  # 45.3 deg from 4.7, 40 from 90 (but 20 from 30)
    labels = NearestCentroidAssociation()(src, src, tgt, tgt, np.array([0, 0, 1]))
    np.testing.assert_array_equal(labels, [1])


def test_ignores_outliers_and_assigns_every_sample(problem):
    ds, ss, dt, st, yt, ys = problem(1)
    labels = NearestCentroidAssociation()(ds, ss, dt, st, yt)
    assert (labels >= 0).all()
    assert set(labels) <= set(yt[yt >= 0])


def test_torch_in_torch_out(problem):
    arrays = problem(2)
    numpy_labels = NearestCentroidAssociation()(*arrays)
    tensors = [torch.from_numpy(a) for a in arrays]
    torch_labels = NearestCentroidAssociation()(*tensors)
    assert isinstance(torch_labels, torch.Tensor)
    np.testing.assert_array_equal(torch_labels.numpy(), numpy_labels)


def test_errors(problem):
    ds, ss, dt, st, yt, ys = problem(3)
    with pytest.raises(ValueError, match="nothing to associate"):
        NearestCentroidAssociation()(ds, ss, dt, st, np.full_like(yt, -1))
    with pytest.raises(ValueError, match="deep_src has width 12 but deep_tgt has width 5"):
        NearestCentroidAssociation()(ds, ss, dt[:, :5], st, yt)
    with pytest.raises(ValueError, match="tgt_labels has length"):
        NearestCentroidAssociation()(ds, ss, dt, st, yt[:-1])
