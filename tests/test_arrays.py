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


# --------------------------------------------------------------------------- one label rule


@pytest.mark.parametrize(
    "values",
    [
        np.array([9.3e18, 9.4e18]),  # beyond int64: would both wrap to -2**63
        np.array([1.0, np.inf]),
        np.array([-1e19, 0.0]),
        np.array([2.0**63]),
        torch.tensor([1e30], dtype=torch.float32),
    ],
)
def test_float_labels_beyond_int64_are_refused(values):
    with pytest.raises(ValueError, match=r"^y holds values beyond the int64 range"):
        as_labels(values, "y")


def test_float_labels_at_the_int64_edge_stay_exact():
    values = np.array([-(2.0**63), 2.0**62, 9.2e18])
    out = as_labels(values, "y")
    assert out.tolist() == [int(v) for v in values]


@pytest.mark.parametrize("values", [np.array([np.nan, 1.0]), np.array([0.5])])
def test_nan_and_fractions_are_non_integral(values):
    with pytest.raises(ValueError, match=r"^y must hold integers"):
        as_labels(values, "y")


@pytest.mark.parametrize(
    "values",
    [
        np.array([True, False]),
        torch.tensor([True]),
        np.array(["a"]),
        np.array([1 + 2j]),
        np.array([object()], dtype=object),
    ],
)
def test_non_numeric_label_dtypes_are_type_errors(values):
    with pytest.raises(TypeError, match=r"^y "):
        as_labels(values, "y")


def test_uint64_labels():
    assert as_labels(np.array([3, 2**63 - 1], dtype=np.uint64), "y").tolist() == [3, 2**63 - 1]
    with pytest.raises(ValueError, match="int64 range"):
        as_labels(np.array([2**63], dtype=np.uint64), "y")


def test_labels_must_be_one_dimensional():
    with pytest.raises(ValueError, match=r"^y must be 1-D"):
        as_labels(np.zeros((2, 2), np.int64), "y")
    with pytest.raises(ValueError, match=r"^y must be 1-D"):
        as_labels(np.array(3), "y")


def test_index_range_names_the_argument_and_hints_at_outliers():
    with pytest.raises(ValueError, match=r"^labels must lie in \[0, 3\).*\(2 of 3 entries\)"):
        as_index(np.array([0, 3, 4]), "labels", upper=3)
    with pytest.raises(ValueError, match="DBSCAN outliers"):
        as_index(np.array([0, -1]), "labels", upper=3, outlier_hint=True)
    with pytest.raises(ValueError, match="length 2, expected 3"):
        as_index(np.array([0, 1]), "labels", upper=3, length=3)
