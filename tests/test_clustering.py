"""DBSCAN pseudo-labels on sparse graphs, and cluster centroids."""

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from sdcl_toolkit import cluster_centroids, dbscan_pseudo_labels, jaccard_distance

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def fixture():
    return np.load(FIXTURES / "jaccard.npz")


@pytest.fixture(scope="module")
def jaccard(fixture):
    return jaccard_distance(fixture["features"], 30, 6)


@pytest.mark.parametrize("eps,key", [(0.6, "dbscan_eps06_min4"), (0.3, "dbscan_eps03_min4")])
def test_labels_match_fixture(fixture, jaccard, eps, key):
    labels = dbscan_pseudo_labels(jaccard, eps, 4)
    assert labels.dtype == np.int64 and labels.shape == (800,)
    assert adjusted_rand_score(labels, fixture[key]) == 1.0
    np.testing.assert_array_equal(labels == -1, fixture[key] == -1)


@pytest.mark.parametrize("eps", [0.3, 0.45, 0.6, 0.8])
def test_identical_to_sklearn_on_the_dense_matrix(fixture, jaccard, eps):
    dense = jaccard.toarray()
    dense[jaccard.toarray() == 0] = 1.0
    np.fill_diagonal(dense, 0.0)
    reference = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(dbscan_pseudo_labels(jaccard, eps, 4), reference)


def test_torch_sparse_in_torch_labels_out(fixture):
    jac = jaccard_distance(torch.from_numpy(fixture["features"]), 30, 6)
    labels = dbscan_pseudo_labels(jac, 0.6)
    assert isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
    assert adjusted_rand_score(labels.numpy(), fixture["dbscan_eps06_min4"]) == 1.0


def test_dense_inputs_are_accepted(jaccard):
    dense = jaccard.toarray()
    dense[dense == 0] = 1.0
    np.fill_diagonal(dense, 0.0)
    a = dbscan_pseudo_labels(dense, 0.6)
    b = dbscan_pseudo_labels(torch.from_numpy(dense), 0.6)
    np.testing.assert_array_equal(a, dbscan_pseudo_labels(jaccard, 0.6))
    np.testing.assert_array_equal(b.numpy(), a)


def test_eps_one_connects_everything_like_the_dense_matrix(jaccard):
    labels = dbscan_pseudo_labels(jaccard, 1.0)
    assert (labels == 0).all()
    tiny = sp.csr_matrix(np.eye(3, dtype=np.float32) * 0)
    assert (dbscan_pseudo_labels(tiny, 1.0, min_samples=4) == -1).all()


def test_missing_distance_inf_gives_sklearn_sparse_semantics():
    rng = np.random.default_rng(0)
    d = sp.random(60, 60, density=0.2, random_state=1, format="csr", dtype=np.float64)
    d = ((d + d.T) * 0.5).tocsr()
    d.data = rng.random(d.nnz).astype(np.float64)
    d = ((d + d.T) * 0.5).tocsr()
    ours = dbscan_pseudo_labels(d, 1.0, 3, missing_distance=math.inf)
    ref = DBSCAN(eps=1.0, min_samples=3, metric="precomputed").fit_predict(d)
    np.testing.assert_array_equal(ours, ref)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    density=st.floats(0.02, 0.6),
    eps=st.floats(0.05, 0.95),
    min_samples=st.integers(1, 6),
    seed=st.integers(0, 10**6),
)
def test_identical_to_sklearn_on_random_symmetric_graphs(n, density, eps, min_samples, seed):
    rng = np.random.default_rng(seed)
    values = rng.random((n, n))
    keep = rng.random((n, n)) < density
    values = np.triu(values, 1)
    keep = np.triu(keep, 1)
    dense = np.where(keep, values, 1.0)
    dense = np.minimum(dense, dense.T)
    np.fill_diagonal(dense, 0.0)
    rows, cols = np.nonzero(dense < 1)
    sparse = sp.csr_matrix((dense[rows, cols], (rows, cols)), shape=(n, n))
    reference = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(dbscan_pseudo_labels(sparse, eps, min_samples), reference)


@pytest.mark.parametrize("eps", [0.0, -0.1, 1.5])
def test_eps_outside_unit_interval(jaccard, eps):
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        dbscan_pseudo_labels(jaccard, eps)


def test_other_bad_inputs(jaccard):
    with pytest.raises(ValueError, match="min_samples"):
        dbscan_pseudo_labels(jaccard, 0.5, 0)
    with pytest.raises(ValueError, match="square"):
        dbscan_pseudo_labels(sp.csr_matrix((3, 4), dtype=np.float32), 0.5)
    with pytest.raises(ValueError, match="empty"):
        dbscan_pseudo_labels(sp.csr_matrix((0, 0), dtype=np.float32), 0.5)
    with pytest.raises(TypeError, match="distance must be"):
        dbscan_pseudo_labels([[0.0]], 0.5)
    bad = jaccard.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dbscan_pseudo_labels(bad, 0.5)


# ----------------------------------------------------------------------------- centroids


def test_centroids_are_normalised_cluster_means():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    labels = rng.integers(-1, 5, 50)
    labels[:5] = np.arange(5)
    out = cluster_centroids(x, labels)
    for c in range(5):
        mean = x[labels == c].mean(0)
        np.testing.assert_allclose(out[c], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    raw = cluster_centroids(torch.from_numpy(x), torch.from_numpy(labels), normalize=False)
    assert isinstance(raw, torch.Tensor)
    np.testing.assert_allclose(raw[2].numpy(), x[labels == 2].mean(0), rtol=1e-5, atol=1e-6)


def test_centroids_errors():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"1 of 3 clusters have no sample \(labels 1\)"):
        cluster_centroids(x, np.array([0, 2, 2, -1]))
    with pytest.raises(ValueError, match="all labels are -1"):
        cluster_centroids(x, np.full(4, -1))
    with pytest.raises(ValueError, match="length"):
        cluster_centroids(x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="num_clusters=2"):
        cluster_centroids(x, np.array([0, 1, 2, 2]), num_clusters=2)
    with pytest.raises(ValueError, match=">= -1"):
        cluster_centroids(x, np.array([0, -2, 0, 0]))
