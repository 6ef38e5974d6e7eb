"""Sparse k-reciprocal Jaccard distance and evaluation re-ranking."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit import jaccard_distance, k_reciprocal_rerank, k_reciprocal_rerank_features
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
    with pytest.raises(TypeError, match="k1 must be an int"):
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
