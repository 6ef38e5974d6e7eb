"""Exact kNN search: brute-force agreement, tie order, backends, precision paths, errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit import knn
from sdcl_toolkit.knn_search import faiss_available


def brute_force(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool = False):
    scores = queries.astype(np.float64) @ keys.astype(np.float64).T
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    # sort by score descending, then index ascending
    order = np.lexsort((np.broadcast_to(np.arange(keys.shape[0]), scores.shape), -scores), axis=1)
    idx = order[:, :k]
    return np.take_along_axis(scores, idx, 1), idx


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return unit(rng.normal(size=(300, 48)).astype(np.float32))


def test_matches_brute_force_numpy(data):
    scores, idx = knn(data[:50], data, 7)
    ref_s, ref_i = brute_force(data[:50], data, 7)
    assert isinstance(scores, np.ndarray) and isinstance(idx, np.ndarray)
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(scores, ref_s, atol=1e-6)


def test_keys_none_searches_queries_against_themselves(data):
    _, idx = knn(data, None, 5)
    assert (idx[:, 0] == np.arange(len(data))).all()


def test_exclude_self(data):
    _, idx = knn(data, data, 5, exclude_self=True)
    ref_s, ref_i = brute_force(data, data, 5, exclude_self=True)
    np.testing.assert_array_equal(idx, ref_i)
    assert not (idx == np.arange(len(data))[:, None]).any()


def test_torch_input_gives_torch_output(data):
    q = torch.from_numpy(data)
    scores, idx = knn(q, q, 4)
    assert isinstance(scores, torch.Tensor) and isinstance(idx, torch.Tensor)
    assert idx.dtype == torch.int64 and scores.device == q.device
    _, ref = knn(data, data, 4)
    np.testing.assert_array_equal(idx.numpy(), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_reduced_and_double_precision_inputs_are_accepted(data, dtype):
    q = torch.from_numpy(data).to(dtype)
    scores, idx = knn(q, q, 3)
    assert scores.dtype == torch.float32
    assert (idx[:, 0] == torch.arange(len(data))).all()


def test_ties_prefer_lower_index_across_the_kth_position():
    # keys 2..9 are identical: all tie with the same score for every query
    keys = np.zeros((10, 4), np.float32)
    keys[:, 0] = 1.0
    keys[0] = [0, 1, 0, 0]
    keys[1] = [0, 0, 1, 0]
    query = np.array([[1.0, 0, 0, 0]], np.float32)
    _, idx = knn(query, keys, 3)
    np.testing.assert_array_equal(idx, [[2, 3, 4]])
    _, idx = knn(query, keys, 3, chunk_size=1)
    np.testing.assert_array_equal(idx, [[2, 3, 4]])


def test_ties_in_many_rows_are_ordered_by_index():
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=(20, 8)).astype(np.float32))
    keys = np.repeat(base, 5, axis=0)  # every key appears 5 times
    perm = rng.permutation(len(keys))
    keys = keys[perm]
    scores, idx = knn(base, keys, 7)
    ref_s, ref_i = brute_force(base, keys, 7)
    np.testing.assert_array_equal(idx, ref_i)


def test_chunking_does_not_change_results(data):
    a = knn(data, data, 9, chunk_size=7)[1]
    b = knn(data, data, 9)[1]
    np.testing.assert_array_equal(a, b)


def _close_up_to_near_ties(idx, ref_idx, ref_scores, tol=1e-5):
    """Indices equal except where neighbouring scores are within tol (float32 rounding)."""
    differ = idx != ref_idx
    if not differ.any():
        return True
    gaps = np.abs(np.diff(ref_scores, axis=1))
    near = np.zeros_like(differ)
    near[:, :-1] |= gaps < tol
    near[:, 1:] |= gaps < tol
    return bool((~differ | near).all())


def test_bfloat16_candidates_give_the_exact_float32_result():
    rng = np.random.default_rng(2)
    centres = unit(rng.normal(size=(30, 256)))
    x = unit(
        (centres[rng.integers(0, 30, 900)] + 0.8 * rng.normal(size=(900, 256)) / 16).astype(
            np.float32
        )
    )
    s32, i32 = knn(x, x, 12, candidates="float32")
    s16, i16 = knn(x, x, 12, candidates="bfloat16")
    np.testing.assert_allclose(s16, s32, atol=2e-6)
    assert _close_up_to_near_ties(i16, i32, s32)
    ref_s, ref_i = brute_force(x, x, 12)
    assert _close_up_to_near_ties(i16, ref_i, ref_s)


def test_bfloat16_fallback_handles_rows_that_cannot_be_proven():
    # all keys nearly equidistant from the query: no margin, every row falls back
    rng = np.random.default_rng(3)
    keys = np.zeros((400, 300), np.float32)
    keys[:, 0] = 1.0
    keys[:, 1:] = 1e-4 * rng.normal(size=(400, 299))
    keys = unit(keys)
    queries = np.zeros((5, 300), np.float32)
    queries[:, 0] = 1
    s16, i16 = knn(queries, keys, 10, candidates="bfloat16")
    ref_s, ref_i = brute_force(queries, keys, 10)
    np.testing.assert_allclose(s16, ref_s, atol=1e-6)
    assert _close_up_to_near_ties(i16, ref_i, ref_s, tol=1e-6)


def test_rescoring_fallback_without_sampled_addmm(monkeypatch):
    rng = np.random.default_rng(5)
    x = unit(rng.normal(size=(400, 300)).astype(np.float32))
    expected = knn(x, x, 8, candidates="bfloat16")

    def unavailable(*args, **kwargs):
        raise RuntimeError("sampled_addmm: not implemented for this device")

    monkeypatch.setattr(torch.sparse, "sampled_addmm", unavailable)
    got = knn(x, x, 8, candidates="bfloat16")
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)


def test_bfloat16_candidates_with_exclude_self(data):
    a = knn(data, data, 6, exclude_self=True, candidates="bfloat16")[1]
    b = knn(data, data, 6, exclude_self=True, candidates="float32")[1]
    assert not (a == np.arange(len(data))[:, None]).any()
    np.testing.assert_array_equal(np.sort(a, 1), np.sort(b, 1))


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
def test_faiss_backend_agrees_with_torch(data):
    s_f, i_f = knn(data, data, 8, backend="faiss")
    s_t, i_t = knn(data, data, 8, backend="torch")
    np.testing.assert_allclose(s_f, s_t, atol=1e-5)
    assert _close_up_to_near_ties(i_f, i_t, s_t)
    _, i_fx = knn(data, data, 8, backend="faiss", exclude_self=True)
    _, i_tx = knn(data, data, 8, backend="torch", exclude_self=True)
    assert _close_up_to_near_ties(i_fx, i_tx, s_t[:, 1:])


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
def test_faiss_backend_with_torch_tensors_returns_torch(data):
    q = torch.from_numpy(data)
    scores, idx = knn(q, q, 3, backend="faiss")
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64


@settings(max_examples=25, deadline=None)
@given(n=st.integers(5, 40), d=st.integers(1, 16), k=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_permuting_keys_permutes_indices(n, d, k, seed):
    rng = np.random.default_rng(seed)
    keys = rng.normal(size=(n, d)).astype(np.float32)
    queries = rng.normal(size=(3, d)).astype(np.float32)
    k = min(k, n)
    scores, idx = knn(queries, keys, k)
    perm = rng.permutation(n)
    scores_p, idx_p = knn(queries, keys[perm], k)
    np.testing.assert_allclose(scores_p, scores, atol=1e-5)
    # the same keys are found (map permuted indices back), up to near-ties
    assert _close_up_to_near_ties(perm[idx_p], idx, scores)
    assert (np.diff(scores, axis=1) <= 0).all()


# ----------------------------------------------------------------------------- errors


def test_mixed_numpy_and_torch_is_a_type_error(data):
    with pytest.raises(TypeError, match="cannot be mixed"):
        knn(data, torch.from_numpy(data), 3)


def test_nan_features_are_reported_with_row_count(data):
    bad = data.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf in 2 of 300 rows"):
        knn(bad, data, 3)


@pytest.mark.parametrize("k", [0, 301])
def test_k_out_of_range(data, k):
    with pytest.raises(ValueError, match="k must be in"):
        knn(data, data, k)


def test_k_equal_to_n_with_exclude_self_is_rejected(data):
    with pytest.raises(ValueError, match="excluding self"):
        knn(data, data, 300, exclude_self=True)


def test_width_mismatch(data):
    with pytest.raises(ValueError, match="width"):
        knn(data, data[:, :10], 3)


def test_not_2d():
    with pytest.raises(ValueError, match="2-D"):
        knn(np.ones(5, np.float32), None, 1)


def test_empty():
    with pytest.raises(ValueError, match="empty"):
        knn(np.ones((0, 3), np.float32), None, 1)


def test_unknown_backend(data):
    with pytest.raises(ValueError, match="backend"):
        knn(data, data, 3, backend="annoy")


def test_list_input_is_a_type_error():
    with pytest.raises(TypeError, match="numpy.ndarray or a torch.Tensor"):
        knn([[1.0, 2.0]], None, 1)
