"""Bidirectional consistency wrapper: hand case, subset property, Hungarian fixed point."""

import numpy as np
import pytest
import torch

from sdcl_toolkit import CRA
from sdcl_toolkit.association import (
    BidirectionalAssociation,
    HungarianAssociation,
    NearestCentroidAssociation,
)
from sdcl_toolkit.association.bidirectional import majority_source_cluster


def test_hand_computed_case(at_angles):
    # source clusters 0 (0 deg) and 1 (20 deg); target clusters 0 (5 deg) and 1 (90 deg)
    src, y_s = at_angles([0, 0, 20, 20]), np.array([0, 0, 1, 1])
    tgt, y_t = at_angles([5, 5, 90, 90]), np.array([0, 0, 1, 1])
    # forward (nearest centroid): 0 deg -> 5, 20 deg -> 5 (15 apart vs 70)
    forward = NearestCentroidAssociation()(src, src, tgt, tgt, y_t)
    np.testing.assert_array_equal(forward, [0, 0, 0, 0])
    # reverse: 5 deg -> source 0 (5 apart vs 15); 90 deg -> source 1; back(0) = 0
    result = BidirectionalAssociation(NearestCentroidAssociation()).associate(
        src, src, tgt, tgt, y_t, y_s
    )
    np.testing.assert_array_equal(result.details["reverse"], [0, 0, 1, 1])
    np.testing.assert_array_equal(result.labels, [0, 0, -1, -1])
    assert result.details["kept_fraction"] == 0.5
    assert np.isnan(result.scores[2:]).all() and np.isfinite(result.scores[:2]).all()


def test_majority_source_cluster():
    tgt = torch.tensor([0, 0, 0, 1, 1, 2, -1])
    rev = torch.tensor([2, 2, 1, 0, 1, -1, 0])
    # cluster 0: votes {2, 2, 1} -> 2; cluster 1: {0, 1} tie -> 0; cluster 2: no vote -> -1
    np.testing.assert_array_equal(majority_source_cluster(tgt, rev, 3, 3).numpy(), [2, 0, -1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bidirectional_hungarian_is_hungarian(problem, seed):
    # the reverse matching is the transpose of the forward one (a unique optimum here)
    args = problem(seed)
    forward = HungarianAssociation()(*args)
    both = BidirectionalAssociation(HungarianAssociation())(*args)
    np.testing.assert_array_equal(both, forward)


def test_wraps_cra_and_is_a_subset(problem):
    args = problem(3)
    forward = CRA(topk=5, smooth_k=3)(*args)
    both = BidirectionalAssociation(CRA(topk=5, smooth_k=3))(*args)
    assert ((both == forward) | (both == -1)).all()
    assert (both[args[5] == -1] == -1).all()  # unclustered source samples are dropped


def test_torch_matches_numpy(problem):
    args = problem(4)
    method = BidirectionalAssociation(NearestCentroidAssociation())
    out = method(*(torch.from_numpy(a) for a in args))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), method(*args))
    result = method.associate(*(torch.from_numpy(a) for a in args))
    assert isinstance(result.details["forward"], torch.Tensor)


def test_errors(problem):
    ds, ss, dt, st, yt, ys = problem(5)
    with pytest.raises(TypeError, match="associate_tensors"):
        BidirectionalAssociation("cra")
    with pytest.raises(TypeError, match="already bidirectional"):
        BidirectionalAssociation(BidirectionalAssociation(CRA()))
    with pytest.raises(ValueError, match="pass src_labels"):
        BidirectionalAssociation(CRA(topk=5, smooth_k=3))(ds, ss, dt, st, yt)
    assert BidirectionalAssociation(CRA()).name == "cra+bidirectional"
