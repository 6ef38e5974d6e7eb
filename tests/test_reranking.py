"""Sparse k-reciprocal Jaccard distance and evaluation re-ranking."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from sdcl_toolkit import (
    dbscan_pseudo_labels,
    jaccard_distance,
    k_reciprocal_rerank,
    k_reciprocal_rerank_features,
)
from sdcl_toolkit.reranking import JACCARD_STAGES

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def jaccard_fixture():
    return np.load(FIXTURES / "jaccard.npz")


@pytest.fixture(scope="module")
def rerank_fixture():
    return np.load(FIXTURES / "rerank.npz")


def densify(matrix) -> np.ndarray:
    """Sparse Jaccard result -> dense matrix with absent pairs = 1."""
    if isinstance(matrix, torch.Tensor):
        crow, col, val = (
            matrix.crow_indices().numpy(),
            matrix.col_indices().numpy(),
            matrix.values().numpy(),
        )
        matrix = sp.csr_matrix((val, col, crow), shape=tuple(matrix.shape))
    coo = matrix.tocoo()
    dense = np.ones(matrix.shape, np.float32)
    dense[coo.row, coo.col] = coo.data
    return dense


def dense_reference(z: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """A direct, loop-based transcription of SPEC section 4 for small inputs."""
    n = len(z)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sims = z.astype(np.float64) @ z.T.astype(np.float64)
    order = np.lexsort((np.broadcast_to(np.arange(n), sims.shape), -sims), axis=1)
    rank = order[:, :k1]

    def reciprocal(i, k):
        width = min(k + 1, k1)
        return [j for j in rank[i, :width] if i in rank[j, :width]]

    half = int(round(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expanded |= set(rc)
        cols = sorted(expanded)
        logits = -(2 - 2 * sims[i, cols])
        w = np.exp(logits - logits.max())
        v[i, cols] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    m = np.minimum(v[:, None, :], v[None, :, :]).sum(-1)
    d = 1 - m / (2 - m)
    d[d < 0] = 0
    np.fill_diagonal(d, 0)
    return d


# ----------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize(
    "k1,k2,key", [(30, 6, "jaccard_k1_30_k2_6"), (20, 1, "jaccard_k1_20_k2_1")]
)
@pytest.mark.parametrize("candidates", ["float32", "bfloat16"])
def test_jaccard_matches_official_fixture(jaccard_fixture, k1, k2, key, candidates):
    result = jaccard_distance(jaccard_fixture["features"], k1, k2, candidates=candidates)
    assert isinstance(result, sp.csr_matrix) and result.dtype == np.float32
    reference = jaccard_fixture[key]
    np.testing.assert_allclose(densify(result), reference, atol=1e-4, rtol=0)
    # the sparse result holds exactly the pairs below 1 (+ the diagonal)
    below = reference < 1
    np.fill_diagonal(below, True)
    stored = np.zeros_like(below)
    coo = result.tocoo()
    stored[coo.row, coo.col] = True
    np.testing.assert_array_equal(stored, below)


def test_jaccard_torch_input_returns_torch_sparse_csr(jaccard_fixture):
    features = torch.from_numpy(jaccard_fixture["features"])
    result = jaccard_distance(features, 30, 6)
    assert isinstance(result, torch.Tensor) and result.layout == torch.sparse_csr
    assert result.device == features.device
    np.testing.assert_allclose(densify(result), jaccard_fixture["jaccard_k1_30_k2_6"], atol=1e-4)


def test_jaccard_numpy_and_torch_agree(jaccard_fixture):
    a = densify(jaccard_distance(jaccard_fixture["features"], 20, 6))
    b = densify(jaccard_distance(torch.from_numpy(jaccard_fixture["features"]), 20, 6))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_jaccard_accepts_reduced_precision(jaccard_fixture, dtype):
    features = torch.from_numpy(jaccard_fixture["features"]).to(dtype)
    result = jaccard_distance(features, 20, 6)
    reference = jaccard_distance(features.float(), 20, 6)
    np.testing.assert_array_equal(densify(result), densify(reference))


def test_jaccard_reports_stage_timings(jaccard_fixture):
    timings = {}
    jaccard_distance(jaccard_fixture["features"][:200], 20, 6, timings=timings)
    assert set(timings) == set(JACCARD_STAGES)
    assert all(t >= 0 for t in timings.values())


@pytest.mark.parametrize("k1,k2", [(10, 4), (7, 1), (12, 12)])
def test_jaccard_matches_dense_reference(k1, k2):
    rng = np.random.default_rng(k1 * 10 + k2)
    centres = rng.normal(size=(6, 16))
    x = (centres[rng.integers(0, 6, 90)] + 0.7 * rng.normal(size=(90, 16))).astype(np.float32)
    ours = densify(jaccard_distance(x, k1, k2))
    np.testing.assert_allclose(ours, dense_reference(x, k1, k2), atol=1e-5)


# ----------------------------------------------------------------------------- invariants


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(8, 60),
    d=st.integers(2, 12),
    seed=st.integers(0, 10**6),
    k1=st.integers(2, 7),
    k2=st.integers(1, 7),
)
def test_jaccard_invariants(n, d, seed, k1, k2):
    k2 = min(k2, k1)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    result = jaccard_distance(x, k1, k2)
    dense = densify(result)
    np.testing.assert_array_equal(dense, dense.T)  # symmetric (bitwise)
    assert (dense >= 0).all() and (dense <= 1).all()
    assert (result.data < 1).all()
    np.testing.assert_array_equal(np.diag(dense), 0)
    assert (result.diagonal() == 0).all() and result[np.arange(n), np.arange(n)].size == n
    # permuting the samples permutes the matrix
    perm = rng.permutation(n)
    permuted = densify(jaccard_distance(x[perm], k1, k2))
    np.testing.assert_allclose(permuted, dense[np.ix_(perm, perm)], atol=1e-5)


# ----------------------------------------------------------------------------- errors


def test_jaccard_nan_rows_are_counted(jaccard_fixture):
    x = jaccard_fixture["features"].copy()
    x[5, 0] = np.nan
    x[9, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf in 2 of 800 rows"):
        jaccard_distance(x)


@pytest.mark.parametrize("bad", [np.ones(10, np.float32), np.ones((2, 3, 4), np.float32)])
def test_jaccard_rejects_non_2d(bad):
    with pytest.raises(ValueError, match="2-D"):
        jaccard_distance(bad)


def test_jaccard_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        jaccard_distance(np.zeros((0, 8), np.float32))


def test_jaccard_rejects_k1_not_below_n():
    with pytest.raises(ValueError, match="k1=30 must be smaller than the number of samples"):
        jaccard_distance(np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))


def test_jaccard_rejects_k2_above_k1():
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="k2 must be in"):
        jaccard_distance(x, k1=5, k2=6)


def test_jaccard_rejects_non_integer_k():
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="k1 must be an integer"):
        jaccard_distance(x, k1=5.0)


def test_jaccard_rejects_lists():
    with pytest.raises(TypeError, match="numpy.ndarray or a torch.Tensor"):
        jaccard_distance([[0.0, 1.0]] * 40)


# ----------------------------------------------------------------------------- re-ranking


def test_rerank_matches_official_fixture(rerank_fixture):
    f = rerank_fixture
    out = k_reciprocal_rerank(f["q_g_dist"], f["q_q_dist"], f["g_g_dist"], 20, 6, 0.3)
    assert isinstance(out, np.ndarray) and out.shape == (100, 400) and out.dtype == np.float32
    np.testing.assert_allclose(out, f["reranked_k1_20_k2_6_l03"], atol=1e-5)


def test_rerank_from_features_matches_fixture(rerank_fixture):
    f = rerank_fixture
    out = k_reciprocal_rerank_features(f["query"], f["gallery"])
    np.testing.assert_allclose(out, f["reranked_k1_20_k2_6_l03"], atol=1e-5)


def test_rerank_torch_in_torch_out(rerank_fixture):
    f = rerank_fixture
    out = k_reciprocal_rerank(
        *(torch.from_numpy(f[k]) for k in ("q_g_dist", "q_q_dist", "g_g_dist"))
    )
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), f["reranked_k1_20_k2_6_l03"], atol=1e-5)


def test_rerank_lambda_one_is_the_normalised_original_distance(rerank_fixture):
    f = rerank_fixture
    out = k_reciprocal_rerank(f["q_g_dist"], f["q_q_dist"], f["g_g_dist"], lambda_value=1.0)
    sq = f["q_g_dist"].astype(np.float32) ** 2
    col_max = np.maximum((f["q_q_dist"] ** 2).max(0), sq.max(1))
    np.testing.assert_allclose(out, sq / col_max[:, None], rtol=1e-6)


def test_rerank_errors(rerank_fixture):
    f = rerank_fixture
    with pytest.raises(TypeError, match="cannot be mixed"):
        k_reciprocal_rerank(torch.from_numpy(f["q_g_dist"]), f["q_q_dist"], f["g_g_dist"])
    with pytest.raises(ValueError, match="shapes do not fit"):
        k_reciprocal_rerank(f["q_g_dist"], f["q_q_dist"][:5, :5], f["g_g_dist"])
    with pytest.raises(ValueError, match="lambda_value"):
        k_reciprocal_rerank(f["q_g_dist"], f["q_q_dist"], f["g_g_dist"], lambda_value=2)
    bad = f["q_g_dist"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        k_reciprocal_rerank(bad, f["q_q_dist"], f["g_g_dist"])
    with pytest.raises(ValueError, match="width"):
        k_reciprocal_rerank_features(f["query"], f["gallery"][:, :10])


def test_rerank_feature_and_distance_apis_agree():
    rng = np.random.default_rng(4)
    q = rng.normal(size=(30, 12)).astype(np.float32)
    g = rng.normal(size=(70, 12)).astype(np.float32)

    def euclid(a, b):
        return np.sqrt(np.maximum(((a[:, None] - b[None]) ** 2).sum(-1), 0)).astype(np.float32)

    a = k_reciprocal_rerank(euclid(q, g), euclid(q, q), euclid(g, g), k1=8, k2=3)
    b = k_reciprocal_rerank_features(q, g, k1=8, k2=3)
    np.testing.assert_allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- issue 13 classes


def near_duplicate_frames(num_groups, per_group, dim, spread, seed=0):
    """Re-ID-like features: identities, and within them runs of consecutive video frames
    that differ by ``spread``."""
    rng = np.random.default_rng(seed)
    identities = rng.normal(size=(num_groups, dim))
    runs = np.repeat(identities, per_group, axis=0)
    runs += 0.3 * rng.normal(size=runs.shape)
    frames = np.repeat(runs, 4, axis=0)
    frames += spread * rng.normal(size=frames.shape)
    return frames.astype(np.float32)


@pytest.mark.parametrize("spread", [1e-3, 1e-5])
def test_jaccard_default_candidates_equal_float32_on_near_duplicates(spread):
    # issue 13 item 15: the bfloat16 candidate path (the default "auto" on fast-bf16 CPUs)
    # must give the float32 path's neighbour sets, hence the same matrix and labels
    x = near_duplicate_frames(25, 6, 768, spread)  # 600 samples
    ref = jaccard_distance(x, 20, 6, candidates="float32")
    for candidates in ("bfloat16", "auto"):
        got = jaccard_distance(x, 20, 6, candidates=candidates)
        assert (got != ref).nnz == 0, candidates
        np.testing.assert_array_equal(
            dbscan_pseudo_labels(got, 0.6), dbscan_pseudo_labels(ref, 0.6)
        )


@pytest.mark.parametrize("k1", [np.int64(4), np.int32(4), np.uint8(4)])
def test_jaccard_accepts_numpy_integers(k1):
    # issue 13 item 7: np.int64(4) failed inside kNN with "k must be an int"
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    got = jaccard_distance(x, k1, np.int64(2))
    assert (got != jaccard_distance(x, 4, 2)).nnz == 0


@pytest.mark.parametrize(
    "kwargs,name", [({"k1": True}, "k1"), ({"k2": 2.0}, "k2"), ({"k1": np.float32(4)}, "k1")]
)
def test_jaccard_type_errors_name_the_callers_argument(kwargs, name):
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with pytest.raises(TypeError, match=f"^{name} must be an integer"):
        jaccard_distance(x, **{"k1": 4, "k2": 2, **kwargs})


def test_jaccard_k1_range_error_names_k1():
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="^k1 must be >= 1"):
        jaccard_distance(x, 0, 1)


@pytest.mark.parametrize(
    "scale,dtype",
    [(1e25, np.float32), (1e-25, np.float32), (1e35, np.float32), (1e300, np.float64)]
    + [(1e-50, np.float64), (1e-300, np.float64)],
)
def test_jaccard_is_scale_invariant_for_extreme_magnitudes(scale, dtype):
    # issue 13 item 13: |x| > ~1e19 or < ~1e-19 became zero vectors after normalisation;
    # float64 beyond float32's range must not become inf or zero either
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)) + 3 * rng.normal(size=(6, 8))[rng.integers(0, 6, 60)]
    x = x / np.abs(x).max(1, keepdims=True)  # rows exactly representable after scaling
    ref = jaccard_distance(x.astype(np.float32), 8, 3)
    scaled = (x * scale).astype(dtype)
    got = jaccard_distance(scaled, 8, 3)
    np.testing.assert_allclose(densify(got), densify(ref), atol=1e-6)


def test_jaccard_all_zero_rows_stay_zero_vectors_and_give_a_finite_result():
    x = np.random.default_rng(2).normal(size=(30, 5)).astype(np.float32)
    x[[3, 11]] = 0.0  # as F.normalize: no direction, score 0 with every sample
    dense = densify(jaccard_distance(x, 5, 2))
    assert np.isfinite(dense).all() and (dense >= 0).all() and (dense <= 1).all()


# ----------------------------------------------------------------------------- re-ranking issues


@pytest.mark.parametrize(
    "case", ["identical", "zero", "one_zero_column", "offset", "near_identical", "duplicates"]
)
def test_rerank_features_match_exact_float64_distances(case):
    # issue 13 items 9 and 17: all-NaN output for identical/zero features, and distances
    # |x|^2 + |y|^2 - 2 x.y in float32 that differ from exact ones by up to 0.89
    rng = np.random.default_rng(3)
    q = rng.normal(size=(25, 16))
    g = rng.normal(size=(60, 16))
    if case == "identical":
        q[:] = g[:] = rng.normal(size=16)
    elif case == "zero":
        q[:], g[:] = 0.0, 0.0
    elif case == "one_zero_column":
        g[7] = 0.0
        q[:], g[:7], g[8:] = 0.0, 0.0, 0.0
    elif case == "offset":
        q += 1000.0
        g += 1000.0
    elif case == "near_identical":
        q = 5.0 + 1e-3 * q
        g = 5.0 + 1e-3 * g
    elif case == "duplicates":
        g[10:20] = g[0]
        q[:5] = g[0]
    q, g = q.astype(np.float32), g.astype(np.float32)
    q64, g64 = q.astype(np.float64), g.astype(np.float64)
    expected = k_reciprocal_rerank(cdist(q64, g64), cdist(q64, q64), cdist(g64, g64), 8, 3, 0.3)
    got = k_reciprocal_rerank_features(q, g, 8, 3, 0.3)
    assert np.isfinite(got).all() and np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_rerank_of_identical_features_is_finite_and_uniform():
    x = np.ones((12, 4), np.float32)
    out = k_reciprocal_rerank_features(x[:4], x[4:], 3, 2)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, np.full_like(out, out[0, 0]))


@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_rerank_features_are_scale_invariant(scale):
    rng = np.random.default_rng(4)
    q = rng.normal(size=(20, 8)).astype(np.float32)
    g = rng.normal(size=(50, 8)).astype(np.float32)
    ref = k_reciprocal_rerank_features(q, g, 6, 3)
    got = k_reciprocal_rerank_features(q * np.float32(scale), g * np.float32(scale), 6, 3)
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        ({"k1": np.int64(6)}, None, None),
        ({"k1": 6.0}, TypeError, "^k1 must be an integer"),
        ({"k2": True}, TypeError, "^k2 must be an integer"),
        ({"lambda_value": np.float32(0.5)}, None, None),
        ({"lambda_value": float("nan")}, ValueError, "^lambda_value must be a number"),
        ({"lambda_value": "0.3"}, TypeError, "^lambda_value must be a real number"),
        ({"lambda_value": 1.5}, ValueError, "^lambda_value must be <= 1"),
    ],
)
def test_rerank_scalar_arguments(kwargs, error, pattern):
    rng = np.random.default_rng(5)
    q = rng.normal(size=(10, 4)).astype(np.float32)
    g = rng.normal(size=(20, 4)).astype(np.float32)
    args = {"k1": 6, "k2": 3, "lambda_value": 0.3, **kwargs}
    if error is None:
        out = k_reciprocal_rerank_features(q, g, **args)
        assert np.isfinite(out).all()
        return
    with pytest.raises(error, match=pattern):
        k_reciprocal_rerank_features(q, g, **args)
    with pytest.raises(error, match=pattern):
        k_reciprocal_rerank(cdist(q, g), cdist(q, q), cdist(g, g), **args)


# ----------------------------------------------------------------------------- fuzzing

INT_TYPES = [int, np.int16, np.int64, np.uint32]
SCALARS = [2.0, True, None, "3", np.float64(3), -1, 0]


def _int_or_junk():
    return st.one_of(
        st.builds(lambda t, v: t(v), st.sampled_from(INT_TYPES), st.integers(0, 12)),
        st.sampled_from(SCALARS),
    )


def _features(rng, n, d, dtype, poison, scale):
    values = rng.normal(size=(n, d)) * scale
    if poison is not None and values.size:
        values.flat[rng.integers(values.size)] = poison
    if dtype == "bfloat16":
        return torch.from_numpy(values.astype(np.float32)).to(torch.bfloat16)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return values.astype(dtype)


def _clear(error: Exception, names: tuple[str, ...]) -> bool:
    return str(error).startswith(names)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(0, 14),
    d=st.integers(0, 5),
    k1=_int_or_junk(),
    k2=_int_or_junk(),
    dtype=st.sampled_from([np.float16, np.float32, np.float64, "bfloat16"]),
    poison=st.sampled_from([None, np.nan, np.inf, 0.0]),
    scale=st.sampled_from([1.0, 1e-30, 1e30]),
    candidates=st.sampled_from(["float32", "bfloat16", "auto", "half"]),
    seed=st.integers(0, 10**6),
)
def test_fuzz_jaccard(n, d, k1, k2, dtype, poison, scale, candidates, seed):
    x = _features(np.random.default_rng(seed), n, d, dtype, poison, scale)
    try:
        result = jaccard_distance(x, k1, k2, candidates=candidates)
    except (TypeError, ValueError) as error:
        assert _clear(error, ("k1", "k2", "candidates", "features")), str(error)
        return
    dense = densify(result)
    assert dense.shape == (n, n)
    np.testing.assert_array_equal(dense, dense.T)
    assert (dense >= 0).all() and (dense <= 1).all()
    np.testing.assert_array_equal(np.diag(dense), 0)


@settings(max_examples=60, deadline=None)
@given(
    num_q=st.integers(0, 6),
    num_g=st.integers(0, 10),
    d=st.integers(1, 4),
    k1=_int_or_junk(),
    k2=_int_or_junk(),
    lam=st.sampled_from([0.0, 0.3, 1.0, np.float32(0.5), 1.2, -0.1, np.nan, True, "x"]),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    poison=st.sampled_from([None, np.nan, np.inf]),
    scale=st.sampled_from([1.0, 1e-20, 1e20]),
    identical=st.booleans(),
    seed=st.integers(0, 10**6),
)
def test_fuzz_rerank(num_q, num_g, d, k1, k2, lam, dtype, poison, scale, identical, seed):
    rng = np.random.default_rng(seed)
    x = _features(rng, num_q + num_g, d, dtype, poison, scale)
    if identical and x.size:
        x[:] = x[0]
    q, g = x[:num_q], x[num_q:]
    try:
        out = k_reciprocal_rerank_features(q, g, k1, k2, lam)
    except (TypeError, ValueError) as error:
        names = ("k1", "k2", "lambda_value", "query_features", "gallery_features")
        assert _clear(error, names), str(error)
        return
    assert out.shape == (num_q, num_g) and out.dtype == np.float32
    # The Jaccard part is 1 - m / (2 - m) (official re_ranking), with m the sum of the
    # element-wise minima of two float32 softmax rows: m <= 1 in exact arithmetic, but
    # rounding can put it one or two ulps above 1 (found: -2.4e-7 with lambda 0). Both
    # bounds therefore allow the same float32 rounding slack.
    assert np.isfinite(out).all() and (out >= -1e-6).all() and (out <= 1 + 1e-6).all()
