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


# ----------------------------------------------------------------------------- issue 13 classes


def near_duplicates(num_groups=30, per_group=20, dim=256, spread=1e-4, seed=0):
    """Consecutive "video frames": groups of features within ``spread`` of each other."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(num_groups, dim))
    x = np.repeat(base, per_group, axis=0) + spread * rng.normal(size=(num_groups * per_group, dim))
    return unit(x).astype(np.float32)


@pytest.mark.parametrize("spread", [1e-4, 1e-6])
def test_every_path_gives_the_same_neighbours_on_near_duplicates(spread):
    # the bfloat16 candidates, chunking and exclude_self must not move an index, even where
    # neighbours' scores agree to ~1e-7 (issue 13 item 15)
    x = near_duplicates(spread=spread)
    ref_s, ref_i = knn(x, x, 30, candidates="float32")
    for options in (
        {"candidates": "bfloat16"},
        {"candidates": "float32", "chunk_size": 37},
        {"candidates": "bfloat16", "chunk_size": 1},
        {"candidates": "auto"},
    ):
        s, i = knn(x, x, 30, **options)
        np.testing.assert_array_equal(i, ref_i, err_msg=str(options))
        np.testing.assert_array_equal(s, ref_s, err_msg=str(options))
    ref_x = knn(x, x, 12, candidates="float32", exclude_self=True)
    got_x = knn(x, x, 12, candidates="bfloat16", exclude_self=True, chunk_size=41)
    np.testing.assert_array_equal(got_x[1], ref_x[1])


def test_ranking_is_exact_up_to_the_float32_scores():
    # the kept k-th score is at least the true (float64) k-th score minus float32 rounding
    x = near_duplicates(spread=1e-3, seed=4)
    s, i = knn(x, x, 25)
    ref_s, _ = brute_force(x, x, 25)
    exact = np.einsum("nd,nkd->nk", x.astype(np.float64), x[i].astype(np.float64))
    np.testing.assert_allclose(s, exact, atol=2e-7)
    assert (exact[:, -1] >= ref_s[:, -1] - 5e-7).all()


@pytest.mark.parametrize("scale", [1e25, 1e-25, 1e30, 1e-30])
def test_extreme_feature_scales_keep_the_ranking(data, scale):
    # |x| > ~1e19 overflows, |x| < ~1e-19 underflows float32 scores (issue 13 item 13)
    big = (data * np.float64(scale)).astype(np.float32)
    assert np.isfinite(big).all() and (np.abs(big).max(1) > 0).all()
    _, idx = knn(big, big, 7)
    _, ref = knn(data, data, 7)
    np.testing.assert_array_equal(idx, ref)


@pytest.mark.parametrize("chunk_size", [0, -5])
def test_chunk_size_below_one_is_rejected(data, chunk_size):
    # chunk_size=-5 used to return uninitialised memory (issue 13 item 8)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        knn(data, data, 3, chunk_size=chunk_size)


@pytest.mark.parametrize("chunk_size", [2.0, True, "8"])
def test_chunk_size_must_be_an_integer(data, chunk_size):
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        knn(data, data, 3, chunk_size=chunk_size)


@pytest.mark.parametrize("k", [np.int64(4), np.int32(4), np.uint8(4)])
def test_numpy_integers_are_accepted(data, k):
    np.testing.assert_array_equal(knn(data, data, k)[1], knn(data, data, 4)[1])
    np.testing.assert_array_equal(
        knn(data, data, 3, chunk_size=np.int64(50))[1], knn(data, data, 3)[1]
    )


@pytest.mark.parametrize("k", [4.0, True, np.float64(4), None])
def test_non_integer_k_is_a_type_error_naming_k(data, k):
    with pytest.raises(TypeError, match="^k must be an integer"):
        knn(data, data, k)


def test_exclude_self_must_be_a_bool(data):
    with pytest.raises(TypeError, match="exclude_self must be True or False"):
        knn(data, data, 3, exclude_self=1)


def test_unknown_candidates(data):
    with pytest.raises(ValueError, match="candidates must be one of"):
        knn(data, data, 3, candidates="int8")


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
def test_faiss_ties_follow_the_documented_order_with_exclude_self():
    # binary features: thousands of exact ties, the query itself among them
    x = np.random.default_rng(0).integers(0, 2, size=(3000, 4)).astype(np.float32)
    for exclude_self in (False, True):
        _, idx = knn(x, x, 10, backend="faiss", exclude_self=exclude_self)
        _, ref = knn(x, x, 10, backend="torch", exclude_self=exclude_self)
        np.testing.assert_array_equal(idx, ref)


# ----------------------------------------------------------------------------- fuzzing

INT_TYPES = [int, np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint64]
DTYPES = [np.float16, np.float32, np.float64, "bfloat16", np.int32]


def _make(values: np.ndarray, dtype):
    if dtype == "bfloat16":
        return torch.from_numpy(values.astype(np.float32)).to(torch.bfloat16)
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype)


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(0, 12),
    d=st.integers(0, 6),
    k=st.one_of(
        st.builds(lambda t, v: t(v), st.sampled_from(INT_TYPES), st.integers(0, 14)),
        st.sampled_from([-1, 2.0, True, None, "3", np.float32(2)]),
    ),
    dtype=st.sampled_from(DTYPES),
    poison=st.sampled_from([None, np.nan, np.inf, -np.inf, 1e30, 1e-30]),
    exclude_self=st.sampled_from([False, True, 0, np.bool_(True)]),
    chunk_size=st.sampled_from([None, 1, 3, np.int64(2), 0, -5, 2.5]),
    candidates=st.sampled_from(["float32", "bfloat16", "auto", "fp8"]),
    seed=st.integers(0, 10**6),
)
def test_fuzz_knn_gives_a_correct_result_or_a_clear_error(
    n, d, k, dtype, poison, exclude_self, chunk_size, candidates, seed
):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, d)) * 4
    if poison is not None and values.size:
        values.flat[rng.integers(values.size)] = poison
    x = _make(values, dtype)
    try:
        scores, idx = knn(
            x, x, k, exclude_self=exclude_self, chunk_size=chunk_size, candidates=candidates
        )
    except (TypeError, ValueError) as error:
        message = str(error)
        named = ("k", "chunk_size", "exclude_self", "candidates", "queries", "keys")
        assert message.startswith(named) or "queries" in message, message
        return
    scores, idx = (
        np.asarray(scores.float() if isinstance(scores, torch.Tensor) else scores),
        (np.asarray(idx)),
    )
    as_float = x.float().numpy() if isinstance(x, torch.Tensor) else x.astype(np.float32)
    kk = int(k)
    assert idx.shape == (n, kk) and scores.shape == (n, kk)
    assert ((idx >= 0) & (idx < n)).all()
    if exclude_self:
        assert not (idx == np.arange(n)[:, None]).any()
    for row in range(n):
        assert len(set(idx[row].tolist())) == kk  # distinct keys
    exact = np.einsum("nd,nkd->nk", as_float.astype(np.float64), as_float[idx].astype(np.float64))
    _, ref_idx = brute_force(as_float, as_float, kk, exclude_self=bool(exclude_self))
    ref = np.take_along_axis(
        as_float.astype(np.float64) @ as_float.astype(np.float64).T, ref_idx, 1
    )
    scale = np.abs(as_float).max() ** 2 * max(d, 1)
    finite = np.isfinite(scores)
    np.testing.assert_allclose(scores[finite], exact[finite], atol=1e-5 * scale + 1e-30)
    assert (np.diff(exact, axis=1) <= 1e-5 * scale).all()  # best first
    assert (exact[:, -1] >= ref[:, -1] - 1e-5 * scale).all()  # the k-th is a true k-th
