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

from sdcl_toolkit import PseudoLabeler, cluster_centroids, dbscan_pseudo_labels, jaccard_distance

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


def test_eps_one_on_the_dense_matrix_matches_sklearn(jaccard):
    # issue 13 item 10: eps=1.0 on a dense matrix used to put everything in one cluster
    dense = jaccard.toarray()
    dense[dense == 0] = 1.0
    np.fill_diagonal(dense, 0.0)
    dense[:5, :5] = 1.5  # stored distances above 1 are not neighbours at eps=1
    np.fill_diagonal(dense, 0.0)
    for eps in (1.0, 1.2, 2.0):
        reference = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(dense)
        np.testing.assert_array_equal(dbscan_pseudo_labels(dense, eps, 4), reference)


def test_eps_at_or_above_missing_distance_is_rejected_for_sparse_input(jaccard):
    with pytest.raises(ValueError, match="eps=1.0 must be smaller than missing_distance=1.0"):
        dbscan_pseudo_labels(jaccard, 1.0)
    with pytest.raises(ValueError, match="missing_distance"):
        dbscan_pseudo_labels(jaccard, 0.5, missing_distance=0.5)


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


@pytest.mark.parametrize("eps", [0.0, -0.1])
def test_eps_must_be_positive(jaccard, eps):
    with pytest.raises(ValueError, match=r"^eps must be > 0"):
        dbscan_pseudo_labels(jaccard, eps)


def test_other_bad_inputs(jaccard):
    with pytest.raises(ValueError, match="^min_samples must be >= 1"):
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


# ----------------------------------------------------------------------------- issue 13 classes


def _pair(value, dtype=np.float64):
    return np.array([[0.0, value], [value, 0.0]], dtype=dtype)


def _sklearn(distance, eps, min_samples):
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distance)


def test_float64_distances_are_not_rounded_to_float32():
    # issue 13 item 16: nextafter(0.6, 1) counted as a neighbour at eps=0.6
    just_above = np.nextafter(0.6, 1.0)
    dense = _pair(just_above)
    assert (_sklearn(dense, 0.6, 2) == -1).all()
    inputs = {
        "numpy dense": dense,
        "torch dense": torch.from_numpy(dense),
        "scipy sparse": sp.csr_matrix(dense),
        "torch sparse csr": torch.from_numpy(dense).to_sparse_csr(),
        "torch sparse coo": torch.from_numpy(dense).to_sparse(),
    }
    for name, distance in inputs.items():
        labels = dbscan_pseudo_labels(distance, 0.6, 2)
        assert (np.asarray(labels) == -1).all(), name
        # and exactly eps is a neighbour
    assert (dbscan_pseudo_labels(_pair(0.6), 0.6, 2) == 0).all()


def test_float32_distances_compare_like_sklearn():
    # float32(0.6) > 0.6: numpy (hence scikit-learn) compares in float32, eps rounded to it
    dense = _pair(0.6, np.float32)
    expected = _sklearn(dense, 0.6, 2)
    np.testing.assert_array_equal(dbscan_pseudo_labels(dense, 0.6, 2), expected)
    np.testing.assert_array_equal(dbscan_pseudo_labels(sp.csr_matrix(dense), 0.6, 2), expected)


@pytest.mark.parametrize(
    "distance",
    [_pair(0.1, np.complex128), torch.tensor([[0, 0.1j], [0.1j, 0]]), _pair(1, np.bool_)],
)
def test_complex_and_bool_distances_are_a_type_error(distance):
    # issue 13 item 13: complex input used to drop its imaginary part silently
    with pytest.raises(TypeError, match="distance must hold real numbers"):
        dbscan_pseudo_labels(distance, 0.5, 2)
    if isinstance(distance, np.ndarray):
        with pytest.raises(TypeError, match="distance must hold real numbers"):
            dbscan_pseudo_labels(sp.csr_matrix(distance), 0.5, 2)


def test_negative_and_asymmetric_distances_are_rejected():
    with pytest.raises(ValueError, match="negative"):
        dbscan_pseudo_labels(_pair(-0.1), 0.5, 2)
    asymmetric = np.array([[0.0, 0.1], [0.9, 0.0]])
    with pytest.raises(ValueError, match="symmetric"):
        dbscan_pseudo_labels(asymmetric, 0.5, 2)


def test_the_input_matrix_is_not_modified(jaccard):
    before = jaccard.copy()
    dbscan_pseudo_labels(jaccard, 0.3, 4)
    assert (jaccard != before).nnz == 0 and jaccard.nnz == before.nnz


@pytest.mark.parametrize(
    "kwargs,error,pattern",
    [
        ({"eps": np.float32(0.5)}, None, None),
        ({"min_samples": np.int64(3)}, None, None),
        ({"eps": "0.5"}, TypeError, "^eps must be a real number"),
        ({"eps": float("nan")}, ValueError, "^eps must be a number"),
        ({"min_samples": 3.0}, TypeError, "^min_samples must be an integer"),
        ({"min_samples": True}, TypeError, "^min_samples must be an integer"),
        ({"missing_distance": None}, TypeError, "^missing_distance must be a real number"),
    ],
)
def test_scalar_arguments(jaccard, kwargs, error, pattern):
    args = {"eps": 0.5, "min_samples": 4, **kwargs}
    if error is None:
        labels = dbscan_pseudo_labels(jaccard, **args)
        assert labels.shape == (jaccard.shape[0],)
        return
    with pytest.raises(error, match=pattern):
        dbscan_pseudo_labels(jaccard, **args)


def test_pseudo_labeler_keeps_the_jaccard_eps_rule():
    # the eps < 1 rule belongs to Jaccard distances, i.e. to PseudoLabeler (issue 13 item 10)
    for eps in (1.0, 1.5, 0.0):
        with pytest.raises(ValueError, match="^eps must be"):
            PseudoLabeler(eps=eps)
    assert PseudoLabeler(eps=np.float64(0.5)).eps == 0.5


DIST_DTYPES = [np.float16, np.float32, np.float64, np.int64, "torch_bf16", "torch_f64"]


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(0, 25),
    eps=st.one_of(
        st.floats(0.01, 3.0),
        st.sampled_from([0.0, -1.0, np.inf, np.nan, True, "0.5", np.float32(0.4), 1]),
    ),
    min_samples=st.one_of(st.integers(0, 6), st.sampled_from([np.int64(2), 2.0, None])),
    dtype=st.sampled_from(DIST_DTYPES),
    layout=st.sampled_from(["dense", "scipy", "torch_sparse"]),
    poison=st.sampled_from([None, np.nan, np.inf, -0.5]),
    seed=st.integers(0, 10**6),
)
def test_fuzz_dbscan_matches_sklearn_or_raises_clearly(
    n, eps, min_samples, dtype, layout, poison, seed
):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 2)) * 1.5
    dense = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    if poison is not None and n > 1:
        dense[0, 1] = dense[1, 0] = poison
    if dtype == "torch_bf16":
        values = torch.from_numpy(dense.astype(np.float32)).to(torch.bfloat16)
        reference_input = values.float().numpy()  # bfloat16 values are exact in float32
    elif dtype == "torch_f64":
        values = torch.from_numpy(dense)
        reference_input = dense
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            values = dense.astype(dtype)
        reference_input = values
    if layout == "scipy":  # scipy has no float16/bfloat16: those become float32 matrices
        if dtype in ("torch_bf16", np.float16):
            reference_input = np.asarray(reference_input, dtype=np.float32)
            values = reference_input
        distance = sp.csr_matrix(values.numpy() if isinstance(values, torch.Tensor) else values)
    elif layout == "torch_sparse":
        tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(values)
        distance = tensor.to_sparse_csr()
    else:
        distance = values
    try:
        labels = dbscan_pseudo_labels(distance, eps, min_samples, missing_distance=math.inf)
    except (TypeError, ValueError) as error:
        message = str(error)
        assert message.startswith(("eps", "min_samples", "missing_distance", "distance")), message
        return
    labels = np.asarray(labels)
    if dtype in ("torch_bf16", np.float16) and layout != "scipy":
        # half precision is compared in its own dtype (eps rounded to it), like numpy does
        half = torch.bfloat16 if dtype == "torch_bf16" else torch.float16
        eps_cmp = float(torch.tensor(float(eps), dtype=half))
        neighbours = reference_input <= eps_cmp
        reference_input = np.where(neighbours & (reference_input > 0), float(eps) / 2, 0.0)
        reference_input[~neighbours] = 10.0 * (1 + float(eps))
        np.fill_diagonal(reference_input, 0.0)
    if layout != "dense":  # absent pairs (zeros dropped by the sparse formats) are not pairs
        reference_input = sp.csr_matrix(reference_input)
    expected = DBSCAN(
        eps=float(eps), min_samples=int(min_samples), metric="precomputed"
    ).fit_predict(reference_input)
    np.testing.assert_array_equal(labels, expected)


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
