"""CSR helpers: segment enumeration with empty segments, transpose, conversions."""

import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit._sparse import Csr, expand_segments, segment_ids


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=30))
def test_segment_ids_match_repeat_interleave_with_empty_segments(counts):
    c = torch.tensor(counts, dtype=torch.int64)
    expected = torch.repeat_interleave(torch.arange(len(counts)), c)
    assert torch.equal(segment_ids(c, int(c.sum())), expected)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 4)), min_size=1, max_size=20))
def test_expand_segments(pairs):
    starts = torch.tensor([p[0] for p in pairs])
    counts = torch.tensor([p[1] for p in pairs])
    seg, pos = expand_segments(starts, counts)
    exp_seg = [s for s, (_, n) in enumerate(pairs) for _ in range(n)]
    exp_pos = [a + t for a, n in pairs for t in range(n)]
    assert seg.tolist() == exp_seg and pos.tolist() == exp_pos


def test_transpose_and_row_ids_with_empty_rows_and_columns():
    dense = np.array([[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 0]], np.float32)
    m = Csr.from_scipy(sp.csr_matrix(dense), torch.device("cpu"))
    assert m.row_ids().tolist() == [0, 0, 2]
    t = m.transpose()
    np.testing.assert_array_equal(t.to_scipy().toarray(), dense.T)
    assert t.row_ids().tolist() == [0, 1, 3]
    np.testing.assert_array_equal(m.to_torch().to_dense().numpy(), dense)
