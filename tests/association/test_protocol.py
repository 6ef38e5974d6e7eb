"""Invariants every association method keeps (hypothesis), and numpy/torch/device agreement."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit import CRA
from sdcl_toolkit.association import (
    BidirectionalAssociation,
    HungarianAssociation,
    NearestCentroidAssociation,
    OptimalTransportAssociation,
)


def methods():
    """Every method (CRA with smooth_k=1: its smoothing breaks vote ties by label value, as
    the official code does, so only then is it exactly equivariant to relabelling)."""
    base = {
        "cra": lambda: CRA(topk=4, smooth_k=1),
        "centroid": NearestCentroidAssociation,
        "hungarian": HungarianAssociation,
        "ot": OptimalTransportAssociation,
        "ot_cluster": lambda: OptimalTransportAssociation(level="cluster"),
    }
    out = dict(base)
    for name, make in base.items():
        out[f"{name}+bidirectional"] = lambda make=make: BidirectionalAssociation(make())
    return out


METHODS = methods()


@pytest.mark.parametrize("name", sorted(METHODS))
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), ids=st.integers(2, 7))
def test_labels_in_range_and_equivariant_to_target_relabelling(problem, name, seed, ids):
    ds, ss, dt, st_, yt, ys = problem(seed, ids=ids)
    method = METHODS[name]()
    base = method(ds, ss, dt, st_, yt, ys)
    assert base.dtype == np.int64 and base.shape == (len(ds),)
    assert set(np.unique(base)) <= set(np.unique(yt[yt >= 0])) | {-1}
    # relabel the target clusters by a random injective map (new gaps): outputs follow
    rng = np.random.default_rng(seed)
    mapping = rng.permutation(5 * (int(yt.max()) + 1))[: int(yt.max()) + 1]
    relabelled = np.where(yt >= 0, mapping[np.maximum(yt, 0)], -1)
    moved = method(ds, ss, dt, st_, relabelled, ys)
    expected = np.where(base >= 0, mapping[np.maximum(base, 0)], -1)
    np.testing.assert_array_equal(moved, expected)


@pytest.mark.parametrize("name", sorted(n for n in METHODS if "+" not in n))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_bidirectional_is_a_subset_of_unidirectional(problem, name, seed):
    args = problem(seed)
    forward = METHODS[name]()(*args)
    both = METHODS[f"{name}+bidirectional"]()(*args)
    assert ((both == forward) | (both == -1)).all()
    assert (both >= 0).sum() <= (forward >= 0).sum()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_numpy_and_torch_agree(problem, name):
    args = problem(11)
    numpy_labels = METHODS[name]()(*args)
    torch_labels = METHODS[name]()(*(torch.from_numpy(a) for a in args))
    assert isinstance(torch_labels, torch.Tensor) and torch_labels.dtype == torch.int64
    np.testing.assert_array_equal(torch_labels.numpy(), numpy_labels)


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(METHODS))
def test_on_the_matrix_device(problem, name, matrix_device, matrix_dtype):
    args = problem(12)
    tensors = [torch.from_numpy(a).to(matrix_device) for a in args]
    tensors[:4] = [t.to(matrix_dtype) for t in tensors[:4]]
    out = METHODS[name]().associate(*tensors)
    assert out.labels.device == matrix_device
    if matrix_dtype == torch.float32:
        reference = METHODS[name]()(*args)
        # exact on the CPU; on CUDA, float32 matmul rounding may only swap near-ties
        agree = (out.labels.cpu().numpy() == reference).mean()
        assert agree == 1.0 if matrix_device.type == "cpu" else agree > 0.95


def test_mixed_and_bad_inputs(problem):
    ds, ss, dt, st_, yt, ys = problem(13)
    for method in (NearestCentroidAssociation(), HungarianAssociation()):
        with pytest.raises(TypeError, match="cannot be mixed"):
            method(ds, ss, dt, st_, yt, torch.from_numpy(ys))
        bad = ds.copy()
        bad[2] = np.inf
        with pytest.raises(ValueError, match="deep_src contains NaN or inf"):
            method(bad, ss, dt, st_, yt, ys)
        with pytest.raises(ValueError, match="deep_tgt has 30 samples but shallow_tgt has 29"):
            method(ds, ss, dt, st_[:-1], yt, ys)
        with pytest.raises(ValueError, match="tgt_labels must be >= -1"):
            method(ds, ss, dt, st_, yt - 3, ys)
