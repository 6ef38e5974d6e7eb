"""Row normalisation: exactly F.normalize on ordinary features (the official call), and
still unit rows for features far outside float32's comfortable range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit._normalize import l2_normalize, l2_normalize_float32, needs_rescaling
from sdcl_toolkit.memory import _normalize_rows_


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    exponent=st.integers(-14, 14),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_ordinary_rows_are_f_normalize_bit_for_bit(seed, exponent, dtype):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(17, 33, generator=generator) * 10.0**exponent).to(dtype)
    x[3] = 0  # an all-zero row stays zero, as with F.normalize
    x.requires_grad_(True)
    reference = x.detach().clone().requires_grad_(True)
    ours, official = l2_normalize(x), F.normalize(reference, dim=1)
    assert torch.equal(ours, official)
    weights = torch.randn(17, 33, generator=generator).to(dtype)
    (ours * weights).sum().backward()
    (official * weights).sum().backward()
    assert torch.equal(x.grad, reference.grad)


def test_in_place_memory_normalisation_is_the_official_division():
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(64, 128, generator=generator)
    expected = rows / rows.norm(dim=1, keepdim=True)  # official: x /= x.norm()
    assert torch.equal(_normalize_rows_(rows.clone()), expected)


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_extreme_rows_keep_their_direction(scale):
    base = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    expected = torch.tensor([[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    x = base * scale
    assert needs_rescaling(x.abs().amax(dim=1, keepdim=True))
    torch.testing.assert_close(l2_normalize(x), expected)
    torch.testing.assert_close(_normalize_rows_(x.clone()), expected)


def test_float64_beyond_float32_range_is_normalised_before_the_cast():
    x = torch.tensor([[3e300, 4e300]], dtype=torch.float64)
    out = l2_normalize_float32(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), [[0.6, 0.8]], rtol=1e-6)
