"""Entropic optimal transport (Sinkhorn, uniform prior): hand cases, marginals, errors."""

import math

import numpy as np
import pytest
import torch

from sdcl_toolkit.association import NearestCentroidAssociation, OptimalTransportAssociation
from sdcl_toolkit.association.optimal_transport import sinkhorn_log


def test_uniform_prior_sends_one_sample_to_each_cluster(at_angles):
    # both sources are nearest to cluster 0 (0 deg), but with a uniform prior over two
    # clusters the transport is a permutation: cost 1 - cos = [[0, 1], [0.134, 0.5]]
    # (s0->0, s1->1) costs 0.5, (s0->1, s1->0) costs 1.134
    tgt, y_t = at_angles([0, 90]), np.array([0, 1])
    src = at_angles([0, 30])
    np.testing.assert_array_equal(NearestCentroidAssociation()(src, src, tgt, tgt, y_t), [0, 0])
    result = OptimalTransportAssociation(epsilon=0.01).associate(src, src, tgt, tgt, y_t)
    np.testing.assert_array_equal(result.labels, [0, 1])
    # near-hard transport: each sample sends (almost) all its mass to its cluster
    assert (result.scores > 0.99).all()
    assert result.details["marginal_error"] < 1e-4


def test_sinkhorn_matches_plain_sinkhorn_in_float64():
    rng = np.random.default_rng(0)
    cost = rng.random((7, 4))
    a, b, eps = np.full(7, 1 / 7), np.full(4, 1 / 4), 0.1
    kernel = np.exp(-cost / eps)
    u, v = np.ones(7), np.ones(4)
    for _ in range(5000):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    plan = u[:, None] * kernel * v[None, :]
    log_plan, iterations, error = sinkhorn_log(
        torch.tensor(cost, dtype=torch.float32),
        torch.log(torch.tensor(a, dtype=torch.float32)),
        torch.log(torch.tensor(b, dtype=torch.float32)),
        eps,
        1000,
        1e-6,
    )
    assert error < 1e-6 and iterations < 1000
    np.testing.assert_allclose(log_plan.exp().numpy(), plan, atol=1e-6)
    np.testing.assert_allclose(log_plan.exp().sum(0).numpy(), b, atol=1e-6)


def test_small_epsilon_stays_finite_and_reaches_the_exact_transport():
    # exp(-cost / 1e-3) underflows float32 (exp(-2000)); the log domain does not. The exact
    # transport (a = 1/3 each, b = 1/2 each) splits row 2 evenly: [[1/3, 0], [0, 1/3],
    # [1/6, 1/6]]
    cost = torch.tensor([[0.0, 2.0], [2.0, 0.0], [1.0, 1.5]])
    log_a = torch.full((3,), -math.log(3))
    log_b = torch.full((2,), -math.log(2))
    log_plan, iterations, error = sinkhorn_log(cost, log_a, log_b, 1e-3, 2000, 1e-4)
    assert error < 1e-4 and iterations < 2000
    expected = np.array([[1 / 3, 0], [0, 1 / 3], [1 / 6, 1 / 6]])
    np.testing.assert_allclose(log_plan.exp().numpy(), expected, atol=1e-4)


def test_cluster_level(at_angles):
    tgt, y_t = at_angles([0, 0, 90, 90]), np.array([2, 2, 5, 5])
    # source clusters 0 (at 10 deg, 3 samples) and 1 (at 40 deg, 1 sample) both lean to 2;
    # the uniform prior moves the smaller cluster's mass... only partly: it gets the
    # cluster whose share of its mass is largest
    src, y_s = at_angles([10, 10, 10, 40, 20]), np.array([0, 0, 0, 1, -1])
    method = OptimalTransportAssociation(epsilon=0.01, level="cluster")
    result = method.associate(src, src, tgt, tgt, y_t, y_s)
    # masses 3/4 and 1/4, targets 1/2 each: cluster 1 (1/4) must go to 5 entirely, cluster
    # 0 sends 1/2 to 2 and 1/4 to 5 -> its argmax is 2
    np.testing.assert_array_equal(result.labels, [2, 2, 2, 5, -1])
    np.testing.assert_allclose(result.scores[:4], [2 / 3, 2 / 3, 2 / 3, 1.0], atol=1e-3)
    assert np.isnan(result.scores[4])


def test_torch_matches_numpy_and_keeps_dtype_rules(problem):
    arrays = problem(7)
    tensors = [torch.from_numpy(a) for a in arrays]
    out = OptimalTransportAssociation()(*tensors)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), OptimalTransportAssociation()(*arrays))
    half = [t.bfloat16() for t in tensors[:4]] + tensors[4:]
    assert OptimalTransportAssociation()(*half).shape == out.shape


def test_errors(problem):
    ds, ss, dt, st, yt, ys = problem(8)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        OptimalTransportAssociation(epsilon=0)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        OptimalTransportAssociation(max_iter=10.0)
    with pytest.raises(ValueError, match="level must be one of"):
        OptimalTransportAssociation(level="pixel")
    with pytest.raises(ValueError, match="epsilon must be a number, got NaN"):
        OptimalTransportAssociation(epsilon=float("nan"))
    with pytest.raises(ValueError, match="pass src_labels"):
        OptimalTransportAssociation(level="cluster")(ds, ss, dt, st, yt)


def test_forced_ties_go_to_the_most_similar_cluster():
    from sdcl_toolkit.association.optimal_transport import plan_argmax

    # row 0: an exact tie between columns 0 and 1 (column 2 is cheapest but not tied);
    # row 1: a clear maximum at column 2 despite its higher cost
    plan = torch.tensor([[0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])
    cost = torch.tensor([[0.3, 0.2, 0.0], [0.0, 0.1, 0.9]])
    np.testing.assert_array_equal(plan_argmax(plan.log(), cost).numpy(), [1, 2])
    # the same tie with the columns swapped: the same cluster wins
    np.testing.assert_array_equal(plan_argmax(plan[:, [1, 0, 2]].log(), cost[:, [1, 0, 2]]), [0, 2])
