"""Tests of sdcl_toolkit.metrics: fixture fidelity, invariants, reference agreement, errors."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit.metrics import (
    RankResult,
    evaluate_rank,
    mean_rank_results,
    query_gallery_distance,
)

FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------------------
# A straightforward per-query reference, written from the definitions in SPEC section 9
# (loops on purpose: it is the readable statement the vectorised code must agree with).
# --------------------------------------------------------------------------------------
def reference_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, protocol):
    cmc_sum = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        pids = g_pids[order]
        if protocol == "sysu":
            keep = ~((q_cams[i] == 3) & (g_cams[order] == 2))
        elif protocol == "market":
            keep = ~((pids == q_pids[i]) & (g_cams[order] == q_cams[i]))
        else:
            keep = np.ones(len(order), dtype=bool)
        pids = pids[keep]
        hits = pids == q_pids[i]
        if not hits.any():
            continue
        if protocol == "sysu":
            seen, deduplicated = set(), []
            for pid in pids:
                if pid not in seen:
                    seen.add(pid)
                    deduplicated.append(pid)
            first = deduplicated.index(q_pids[i])
        else:
            first = int(np.argmax(hits))
        cmc_sum[first:] += 1
        positions = np.nonzero(hits)[0]
        aps.append(np.mean([(k + 1) / (p + 1) for k, p in enumerate(positions)]))
        inps.append(len(positions) / (positions[-1] + 1))
    n = len(aps)
    if n == 0:
        return None, None, None, 0
    return cmc_sum / n, float(np.mean(aps)), float(np.mean(inps)), n


def random_problem(seed, num_q, num_g, num_ids, protocol):
    """Random tie-free distances and ids/cams in SYSU style (IR queries 3/6, RGB gallery)."""
    rng = np.random.default_rng(seed)
    dist = rng.permutation(num_q * num_g).reshape(num_q, num_g).astype(np.float64)
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    g_pids[: min(num_g, num_ids)] = np.arange(min(num_g, num_ids))
    if protocol == "market":
        q_cams = rng.integers(1, 4, num_q)
        g_cams = rng.integers(1, 4, num_g)
    else:
        q_cams = rng.choice([3, 6], num_q)
        g_cams = rng.choice([1, 2, 4, 5], num_g)
    return dist, q_pids, g_pids, q_cams, g_cams


# ------------------------------------------------------------------ fixture fidelity
@pytest.fixture(scope="module")
def eval_fixture():
    return np.load(FIXTURES / "eval.npz")


@pytest.mark.parametrize("as_torch", [False, True])
def test_sysu_fixture(eval_fixture, as_torch):
    f = eval_fixture
    names = ["sysu_distmat", "sysu_q_pids", "sysu_g_pids", "sysu_q_cams", "sysu_g_cams"]
    args = [f[name] for name in names]
    if as_torch:
        args = [torch.from_numpy(a) for a in args]
    result = evaluate_rank(*args, protocol="sysu")
    np.testing.assert_allclose(result.cmc, f["sysu_cmc"], rtol=0, atol=1e-6)
    assert abs(result.mAP - float(f["sysu_mAP"])) < 1e-6
    assert abs(result.mINP - float(f["sysu_mINP"])) < 1e-6
    assert result.num_valid_queries == len(f["sysu_q_pids"])
    assert result.num_skipped_queries == 0


@pytest.mark.parametrize("as_torch", [False, True])
def test_regdb_fixture(eval_fixture, as_torch):
    f = eval_fixture
    args = [f["regdb_distmat"], f["regdb_q_pids"], f["regdb_g_pids"]]
    if as_torch:
        args = [torch.from_numpy(a) for a in args]
    result = evaluate_rank(*args, protocol="regdb")
    np.testing.assert_allclose(result.cmc, f["regdb_cmc"], rtol=0, atol=1e-6)
    assert abs(result.mAP - float(f["regdb_mAP"])) < 1e-6
    assert abs(result.mINP - float(f["regdb_mINP"])) < 1e-6


def test_sysu_rule_changes_the_fixture_result(eval_fixture):
    """The cam-3/cam-2 rule and the deduplicated CMC both matter on the fixture."""
    f = eval_fixture
    sysu = evaluate_rank(
        f["sysu_distmat"], f["sysu_q_pids"], f["sysu_g_pids"], f["sysu_q_cams"], f["sysu_g_cams"]
    )
    plain = evaluate_rank(f["sysu_distmat"], f["sysu_q_pids"], f["sysu_g_pids"], protocol="regdb")
    assert sysu.mAP != pytest.approx(plain.mAP, abs=1e-6)
    assert not np.allclose(sysu.cmc, plain.cmc, atol=1e-6)


# ------------------------------------------------------------------ reference agreement
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_q=st.integers(1, 30),
    num_g=st.integers(1, 40),
    num_ids=st.integers(1, 12),
    protocol=st.sampled_from(["sysu", "regdb", "market"]),
    max_rank=st.integers(1, 25),
)
def test_matches_per_query_reference(seed, num_q, num_g, num_ids, protocol, max_rank):
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(seed, num_q, num_g, num_ids, protocol)
    cmc, m_ap, m_inp, n = reference_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank, protocol)
    if n == 0:
        with pytest.raises(ValueError, match="valid positive"):
            evaluate_rank(
                dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, protocol=protocol
            )
        return
    result = evaluate_rank(
        dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, protocol=protocol
    )
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(m_ap, abs=1e-12)
    assert result.mINP == pytest.approx(m_inp, abs=1e-12)
    assert result.num_valid_queries == n
    assert result.num_skipped_queries == num_q - n
    assert len(result.cmc) == max_rank


def test_chunked_evaluation_matches_single_chunk(monkeypatch):
    metrics = importlib.import_module("sdcl_toolkit.metrics")
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(3, 57, 23, 9, "sysu")
    whole = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 23 * 4)  # 4 queries per chunk
    chunked = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    assert chunked.cmc == whole.cmc
    assert chunked.num_valid_queries == whole.num_valid_queries
    assert chunked.mAP == pytest.approx(whole.mAP, abs=1e-12)
    assert chunked.mINP == pytest.approx(whole.mINP, abs=1e-12)


# ------------------------------------------------------------------ invariants
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_ids=st.integers(1, 8),
    per_id=st.integers(1, 4),
    protocol=st.sampled_from(["sysu", "regdb"]),
)
def test_perfect_distance_gives_all_ones(seed, num_ids, per_id, protocol):
    rng = np.random.default_rng(seed)
    g_pids = np.repeat(np.arange(num_ids), per_id)
    g_cams = rng.choice([1, 4, 5], len(g_pids))  # no camera-2 images: nothing is removed
    q_pids = rng.permutation(np.repeat(np.arange(num_ids), 2))
    q_cams = rng.choice([3, 6], len(q_pids))
    positive = q_pids[:, None] == g_pids[None, :]
    dist = np.where(positive, 0.0, 1.0) + rng.uniform(0, 0.1, positive.shape)
    result = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
    assert result.cmc == (1.0,) * 20
    assert result.mAP == pytest.approx(1.0)
    assert result.mINP == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_ids=st.integers(2, 8),
    per_id=st.integers(1, 4),
    protocol=st.sampled_from(["sysu", "regdb"]),
)
def test_reversed_distance_gives_worst_case(seed, num_ids, per_id, protocol):
    """Positives ranked last: closed-form CMC, AP and INP."""
    rng = np.random.default_rng(seed)
    g_pids = np.repeat(np.arange(num_ids), per_id)
    g_cams = rng.choice([1, 4, 5], len(g_pids))
    q_pids = rng.permutation(np.arange(num_ids))
    q_cams = rng.choice([3, 6], len(q_pids))
    positive = q_pids[:, None] == g_pids[None, :]
    dist = np.where(positive, 1.0, 0.0) + rng.uniform(0, 0.1, positive.shape)
    result = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=30, protocol=protocol)
    n, p = len(g_pids), per_id
    # every query has p positives at positions n-p+1..n
    expected_ap = np.mean([(i + 1) / (n - p + i + 1) for i in range(p)])
    assert result.mAP == pytest.approx(expected_ap)
    assert result.mINP == pytest.approx(p / n)
    if protocol == "sysu":
        first = num_ids - 1  # all other identities come first in the deduplicated ranking
    else:
        first = n - p
    expected_cmc = (np.arange(30) >= first).astype(float)
    np.testing.assert_array_equal(result.cmc, expected_cmc)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    protocol=st.sampled_from(["sysu", "regdb", "market"]),
)
def test_invariant_to_gallery_order(seed, protocol):
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(seed, 20, 35, 7, protocol)
    perm = np.random.default_rng(seed + 1).permutation(dist.shape[1])
    base = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol=protocol)
    permuted = evaluate_rank(
        dist[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm], protocol=protocol
    )
    np.testing.assert_allclose(permuted.cmc, base.cmc, atol=1e-12)
    assert permuted.mAP == pytest.approx(base.mAP, abs=1e-12)
    assert permuted.mINP == pytest.approx(base.mINP, abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_invariant_to_query_order_and_monotone_transform(seed):
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(seed, 25, 30, 6, "sysu")
    perm = np.random.default_rng(seed + 2).permutation(dist.shape[0])
    base = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    moved = evaluate_rank(
        np.exp(dist[perm] / dist.size), q_pids[perm], g_pids, q_cams[perm], g_cams
    )
    np.testing.assert_allclose(moved.cmc, base.cmc, atol=1e-12)
    assert moved.mAP == pytest.approx(base.mAP, abs=1e-12)


# ------------------------------------------------------------------ the SYSU rule itself
def test_sysu_cam3_queries_ignore_cam2_gallery():
    # gallery: id 0 in cam 2 (closest), id 1 in cam 1, id 0 in cam 4 (farthest)
    g_pids, g_cams = np.array([0, 1, 0]), np.array([2, 1, 4])
    dist = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    q_pids, q_cams = np.array([0, 0]), np.array([3, 6])
    from_cam3 = evaluate_rank(dist[:1], q_pids[:1], g_pids, q_cams[:1], g_cams, max_rank=3)
    from_cam6 = evaluate_rank(dist[1:], q_pids[1:], g_pids, q_cams[1:], g_cams, max_rank=3)
    assert from_cam3.cmc == (0.0, 1.0, 1.0)  # cam-2 hit removed: id 1 comes first
    assert from_cam3.mAP == pytest.approx(0.5) and from_cam3.mINP == pytest.approx(0.5)
    assert from_cam6.cmc == (1.0, 1.0, 1.0)
    assert from_cam6.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert from_cam6.mINP == pytest.approx(2 / 3)


def test_sysu_cmc_is_deduplicated_but_map_is_not():
    # ranking: id1, id1, id1, id0  -> deduplicated: id1, id0 (Rank-2 hit); mAP on 4 entries
    g_pids, g_cams = np.array([1, 1, 1, 0]), np.array([1, 4, 5, 1])
    dist = np.array([[0.0, 0.1, 0.2, 0.3]])
    sysu = evaluate_rank(dist, [0], g_pids, [6], g_cams, max_rank=4)
    regdb = evaluate_rank(dist, [0], g_pids, max_rank=4, protocol="regdb")
    assert sysu.cmc == (0.0, 1.0, 1.0, 1.0)
    assert regdb.cmc == (0.0, 0.0, 0.0, 1.0)
    assert sysu.mAP == pytest.approx(0.25) and regdb.mAP == pytest.approx(0.25)


def test_market_drops_same_identity_same_camera():
    g_pids, g_cams = np.array([0, 1, 0]), np.array([1, 2, 2])
    dist = np.array([[0.0, 1.0, 2.0]])
    result = evaluate_rank(dist, [0], g_pids, [1], g_cams, max_rank=2, protocol="market")
    assert result.cmc == (0.0, 1.0)
    assert result.mAP == pytest.approx(0.5)


# ------------------------------------------------------------------ skipped queries
def test_skipped_queries_are_counted_and_do_not_corrupt_averages():
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(11, 30, 40, 6, "sysu")
    valid = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    # add 5 queries whose identity is absent from the gallery and 2 from cam 3 whose only
    # positive is in camera 2
    extra_pid = 1000
    g_pids2 = np.concatenate([g_pids, [extra_pid + 1]])
    g_cams2 = np.concatenate([g_cams, [2]])
    dist2 = np.concatenate([dist, np.full((30, 1), dist.max() + 1)], axis=1)
    rng = np.random.default_rng(0)
    extra = rng.uniform(0, dist.max(), (7, 41))
    dist2 = np.concatenate([dist2, extra], axis=0)
    q_pids2 = np.concatenate([q_pids, [extra_pid] * 5, [extra_pid + 1] * 2])
    q_cams2 = np.concatenate([q_cams, [6] * 5, [3] * 2])
    result = evaluate_rank(dist2, q_pids2, g_pids2, q_cams2, g_cams2)
    assert result.num_skipped_queries == valid.num_skipped_queries + 7
    assert result.num_valid_queries == valid.num_valid_queries
    np.testing.assert_allclose(result.cmc, valid.cmc, atol=1e-12)
    assert result.mAP == pytest.approx(valid.mAP, abs=1e-12)
    assert result.mINP == pytest.approx(valid.mINP, abs=1e-12)


def test_all_queries_skipped_raises():
    with pytest.raises(ValueError, match="none of the 2 queries"):
        evaluate_rank(np.zeros((2, 3)), [5, 6], [0, 1, 2], protocol="regdb")


# ------------------------------------------------------------------ array types
def test_torch_numpy_and_dtypes_agree():
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(5, 40, 50, 8, "sysu")
    dist = dist / dist.max()
    reference = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    as_torch = evaluate_rank(
        torch.from_numpy(dist),
        torch.from_numpy(q_pids),
        torch.from_numpy(g_pids),
        torch.from_numpy(q_cams),
        torch.from_numpy(g_cams),
    )
    assert as_torch == reference
    mixed = evaluate_rank(torch.from_numpy(dist), list(q_pids), g_pids, q_cams, g_cams)
    assert mixed == reference
    as_float32 = evaluate_rank(dist.astype(np.float32), q_pids, g_pids, q_cams, g_cams)
    assert as_float32 == reference  # distinct values stay distinct in float32 here
    ranks = evaluate_rank(dist.argsort(1).argsort(1), q_pids, g_pids, q_cams, g_cams)
    assert ranks == reference  # integer distances (ranks) sort exactly
    half = evaluate_rank(torch.from_numpy(dist).half(), q_pids, g_pids, q_cams, g_cams)
    assert half.num_valid_queries == reference.num_valid_queries
    assert 0.0 <= half.mAP <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():  # pragma: no cover - run where a GPU exists
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(7, 300, 200, 30, "sysu")
    cpu = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    cuda = evaluate_rank(torch.from_numpy(dist).cuda(), q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(cuda.cmc, cpu.cmc, atol=1e-12)
    assert cuda.mAP == pytest.approx(cpu.mAP, abs=1e-12)


def test_ties_are_broken_by_gallery_order():
    dist = np.zeros((1, 3))
    first = evaluate_rank(dist, [0], [0, 1, 1], protocol="regdb", max_rank=3)
    last = evaluate_rank(dist, [0], [1, 1, 0], protocol="regdb", max_rank=3)
    assert first.cmc == (1.0, 1.0, 1.0)
    assert last.cmc == (0.0, 0.0, 1.0)


# ------------------------------------------------------------------ result object
def test_result_helpers_and_mean():
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(9, 20, 30, 5, "sysu")
    a = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    b = evaluate_rank(-dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    assert isinstance(a, RankResult)
    assert a.rank(1) == a.rank1 == a.cmc[0]
    with pytest.raises(ValueError):
        a.rank(11)
    d = a.as_dict()
    assert set(d) >= {"rank1", "rank5", "rank10", "mAP", "mINP", "cmc"} and "rank20" not in d
    json.dumps(d)
    text = str(a)
    assert "Rank-1:" in text and "mAP:" in text and "mINP:" in text and "sysu" in text
    mean = mean_rank_results([a, b])
    assert mean.mAP == pytest.approx((a.mAP + b.mAP) / 2)
    np.testing.assert_allclose(mean.cmc, (np.array(a.cmc) + np.array(b.cmc)) / 2)
    assert mean.num_valid_queries == a.num_valid_queries + b.num_valid_queries
    with pytest.raises(ValueError):
        mean_rank_results([])
    with pytest.raises(ValueError, match="lengths"):
        mean_rank_results([a, evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)])
    with pytest.raises(AttributeError):
        a.mAP = 1.0  # frozen


def test_max_rank_beyond_gallery_keeps_final_value():
    result = evaluate_rank(np.array([[0.3, 0.1]]), [0], [0, 1], protocol="regdb", max_rank=5)
    assert result.cmc == (0.0, 1.0, 1.0, 1.0, 1.0)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(distmat=np.zeros(3)), ValueError, "2-D"),
        (dict(distmat=np.zeros((0, 3)), q_pids=[]), ValueError, "empty"),
        (dict(q_pids=[0, 1, 2]), ValueError, "q_pids has length 3, expected 2"),
        (dict(g_pids=[0, 1]), ValueError, "g_pids has length 2, expected 3"),
        (dict(q_camids=None), ValueError, "needs q_camids and g_camids"),
        (dict(g_camids=[[1, 1, 1]]), ValueError, "1-D"),
        (dict(protocol="viper"), ValueError, "protocol must be one of"),
        (dict(max_rank=0), ValueError, "max_rank"),
        (dict(distmat=np.array([[0.1, np.nan, 0.2], [0.1, 0.2, 0.3]])), ValueError, "NaN"),
        (dict(distmat=[[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]), TypeError, "distmat"),
        (dict(q_pids=np.array(["a", "b"])), TypeError, "q_pids"),
        (dict(q_pids=np.array([0.5, 1.0])), ValueError, "non-integral"),
        (dict(distmat=np.zeros((2, 3), dtype=bool)), TypeError, "real numbers"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = dict(
        distmat=np.zeros((2, 3)),
        q_pids=[0, 1],
        g_pids=[0, 1, 1],
        q_camids=[3, 6],
        g_camids=[1, 2, 4],
        protocol="sysu",
    )
    args.update(kwargs)
    with pytest.raises(error, match=match):
        evaluate_rank(
            args["distmat"],
            args["q_pids"],
            args["g_pids"],
            args["q_camids"],
            args["g_camids"],
            max_rank=args.get("max_rank", 20),
            protocol=args["protocol"],
        )


# ------------------------------------------------------------------ query_gallery_distance
def test_distance_is_negative_cosine_in_callers_type():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 8)).astype(np.float32)
    g = rng.normal(size=(7, 8)).astype(np.float32)
    d = query_gallery_distance(q, g)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    assert isinstance(d, np.ndarray) and d.shape == (5, 7) and d.dtype == np.float32
    np.testing.assert_allclose(d, -(qn @ gn.T), atol=1e-6)
    dt = query_gallery_distance(torch.from_numpy(q).bfloat16(), torch.from_numpy(g).bfloat16())
    assert isinstance(dt, torch.Tensor) and dt.dtype == torch.float32
    np.testing.assert_allclose(dt.numpy(), d, atol=2e-2)


def test_distance_bad_input():
    q = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="width"):
        query_gallery_distance(q, np.ones((3, 5), np.float32))
    with pytest.raises(TypeError, match="mixed"):
        query_gallery_distance(q, torch.ones(3, 4))
    if _rerank_function() is not None:
        with pytest.raises(ValueError, match="k1"):
            query_gallery_distance(q, q, rerank=True, k1=0)
        with pytest.raises(ValueError, match="lambda_value"):
            query_gallery_distance(q, q, rerank=True, k1=2, k2=2, lambda_value=1.5)


def _rerank_function():
    try:
        module = importlib.import_module("sdcl_toolkit.reranking")
    except ImportError:
        return None
    return getattr(module, "k_reciprocal_rerank_features", None)


def test_rerank_option_matches_official_fixture():
    rerank = _rerank_function()
    if rerank is None:
        pytest.skip("sdcl_toolkit.reranking.k_reciprocal_rerank_features is not implemented yet")
    f = np.load(FIXTURES / "rerank.npz")
    d = query_gallery_distance(f["query"], f["gallery"], rerank=True, k1=20, k2=6, lambda_value=0.3)
    # fixture features are already L2-normalised, so this is the official re-ranking;
    # 1e-4 is the fixture README's tolerance for k-reciprocal distances
    np.testing.assert_allclose(d, f["reranked_k1_20_k2_6_l03"], atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------
# ids and features at the edge of the number range (issue 13)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["q_pids", "g_pids", "q_camids", "g_camids"])
def test_float_ids_beyond_int64_are_refused(name):
    # 9.3e18 and 9.4e18 are distinct identities but both wrap to one int64; before, every
    # query then matched every gallery image (100% CMC).
    args = dict(
        q_pids=np.array([9.3e18, 9.4e18]),
        g_pids=np.array([9.4e18, 9.3e18]),
        q_camids=np.array([1.0, 1.0]),
        g_camids=np.array([2.0, 2.0]),
    )
    args = {
        k: (v if k == name else np.array([1.0, 2.0]) if "pids" in k else v) for k, v in args.items()
    }
    args[name] = np.array([9.3e18, 9.4e18])
    with pytest.raises(ValueError, match=rf"^{name} holds values beyond the int64 range"):
        evaluate_rank(np.array([[0.1, 0.2], [0.3, 0.4]]), protocol="market", **args)


def test_integral_float_ids_give_the_integer_result():
    rng = np.random.default_rng(3)
    dist = rng.random((6, 9))
    q, g = rng.integers(0, 3, 6), rng.integers(0, 3, 9)
    qc, gc = rng.integers(1, 3, 6), rng.integers(1, 3, 9)
    expected = evaluate_rank(dist, q, g, qc, gc, protocol="market", max_rank=5)
    big = 2**62  # exactly representable as float64; ids stay distinct
    got = evaluate_rank(
        dist,
        (q * big).astype(np.float64),
        (g * big).astype(np.float64),
        qc.astype(np.float32),
        gc.astype(np.float32),
        protocol="market",
        max_rank=5,
    )
    assert got == expected


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_query_gallery_distance_is_scale_invariant(scale):
    rng = np.random.default_rng(0)
    query = rng.standard_normal((4, 8)).astype(np.float32)
    gallery = rng.standard_normal((5, 8)).astype(np.float32)
    expected = query_gallery_distance(query, gallery)
    scaled = query_gallery_distance(query * np.float32(scale), gallery * np.float32(scale))
    np.testing.assert_allclose(scaled, expected, rtol=0, atol=1e-6)
    assert np.abs(scaled).max() > 0.5  # F.normalize made these zero vectors: all distances 0


def test_rank_k_follows_the_integer_rule():
    result = evaluate_rank(
        np.array([[0.1, 0.9]]), np.array([1]), np.array([1, 2]), protocol="regdb", max_rank=2
    )
    assert result.rank(np.int64(1)) == result.rank1
    with pytest.raises(TypeError, match=r"^k must be an integer"):
        result.rank(1.0)
    with pytest.raises(ValueError, match=r"^k must be <= 2"):
        result.rank(3)
    with pytest.raises(ValueError, match=r"^protocol must be one of"):
        evaluate_rank(np.array([[0.1]]), np.array([1]), np.array([1]), protocol="viper")
