"""The numpy/torch boundary adapter."""

import numpy as np
import pytest
import torch

from sdcl_toolkit._arrays import array_kind, as_features, as_index, as_labels, as_tensor


def test_numpy_kind_round_trip():
    kind = array_kind(a=np.zeros(3), b=None)
    assert kind.is_numpy and kind.device.type == "cpu"
    out = kind.to_caller((torch.ones(2), [torch.zeros(1)], 5))
    assert isinstance(out[0], np.ndarray) and isinstance(out[1][0], np.ndarray) and out[2] == 5


def test_torch_kind_keeps_device():
    kind = array_kind(a=torch.zeros(3))
    assert not kind.is_numpy
    assert isinstance(kind.to_caller(torch.ones(1)), torch.Tensor)


def test_mixing_is_rejected_with_names():
    with pytest.raises(TypeError, match="a is numpy, b is torch"):
        array_kind(a=np.zeros(1), b=torch.zeros(1))
    with pytest.raises(
        TypeError, match="x must be a numpy.ndarray or a torch.Tensor, got builtins.list"
    ):
        array_kind(x=[1, 2])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int32])
def test_as_tensor_casts_to_float32(dtype):
    t = as_tensor(torch.ones(2, 2, dtype=dtype), "x")
    assert t.dtype == torch.float32 and t.is_contiguous()


def test_as_tensor_copies_read_only_and_negative_stride_numpy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::-1]
    assert torch.equal(as_tensor(a, "a"), torch.tensor([[2.0, 1, 0], [5, 4, 3]]))
    b = np.ones(3, np.float32)
    b.setflags(write=False)
    assert as_tensor(b, "b").sum() == 3


def test_as_tensor_rejects_bool_and_object():
    with pytest.raises(TypeError, match="bool"):
        as_tensor(np.ones(2, bool), "m")
    with pytest.raises(TypeError, match="object"):
        as_tensor(np.array([None]), "o")


def test_as_features_errors():
    with pytest.raises(ValueError, match="2-D"):
        as_features(np.ones(3), "f")
    with pytest.raises(ValueError, match="empty"):
        as_features(np.ones((0, 3)), "f")
    with pytest.raises(ValueError, match="at least 3 rows"):
        as_features(np.ones((2, 3)), "f", min_rows=3)
    with pytest.raises(ValueError, match="zero feature width"):
        as_features(np.ones((2, 0)), "f")
    with pytest.raises(ValueError, match="width 3, expected 4"):
        as_features(np.ones((2, 3)), "f", width=4)
    x = np.ones((10, 2))
    x[[1, 4, 6, 7, 8, 9], 0] = np.nan
    with pytest.raises(
        ValueError, match=r"NaN or inf in 6 of 10 rows \(rows 1, 4, 6, 7, 8, \.\.\.\)"
    ):
        as_features(x, "f")


def test_labels_and_indices():
    assert as_labels(np.array([1.0, -1.0]), "y").dtype == torch.int64
    with pytest.raises(ValueError, match="non-integral"):
        as_labels(np.array([0.5]), "y")
    with pytest.raises(ValueError, match="length 2, expected 3"):
        as_labels(np.zeros(2, np.int64), "y", length=3)
    with pytest.raises(
        ValueError, match=r"must lie in \[0, 5\), got out-of-range values \[-1, 7\]"
    ):
        as_index(np.array([0, 7, -1]), "idx", upper=5)
