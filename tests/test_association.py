"""Collaborative Ranking Association: fidelity, invariants, bad input."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit import CRA, CollaborativeRankingAssociation, CRAResult
from sdcl_toolkit.data.clustered_features import make_two_modality_features

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def fx():
    return np.load(FIXTURES / "cra.npz")


def args(fx):
    return fx["deep_rgb"], fx["shallow_rgb"], fx["deep_ir"], fx["shallow_ir"], fx["ir_labels"]


def test_alias():
    assert CRA is CollaborativeRankingAssociation


def test_matches_official_fixture_exactly(fx):
    result = CRA(topk=20, smooth_k=5).associate(*args(fx))
    assert isinstance(result, CRAResult)
    np.testing.assert_array_equal(result.ranking_labels, fx["ranking_labels"])
    np.testing.assert_array_equal(result.labels, fx["cra_labels"])
    kept = (fx["rgb_labels"] != -1) & (result.labels != -1)
    np.testing.assert_array_equal(kept, fx["kept"])
    assert result.labels.dtype == np.int64


def test_plain_call_returns_labels(fx):
    labels = CRA()(*args(fx))
    np.testing.assert_array_equal(labels, fx["cra_labels"])


def test_torch_in_torch_out(fx):
    tensors = [torch.from_numpy(a) for a in args(fx)]
    result = CRA().associate(*tensors)
    assert isinstance(result.labels, torch.Tensor)
    np.testing.assert_array_equal(result.labels.numpy(), fx["cra_labels"])
    np.testing.assert_array_equal(result.ranking_labels.numpy(), fx["ranking_labels"])


def test_bfloat16_inputs_are_accepted(fx):
    tensors = [torch.from_numpy(a) for a in args(fx)]
    tensors[:4] = [t.bfloat16() for t in tensors[:4]]
    labels = CRA()(*tensors)
    assert labels.shape == (600,)


def test_votes_are_the_winning_counts(fx):
    result = CRA().associate(*args(fx))
    assert ((result.votes >= 1) & (result.votes <= 20)).all()
    # recompute the count of one sample by hand
    deep = fx["deep_rgb"] / np.linalg.norm(fx["deep_rgb"], axis=1, keepdims=True)
    shal = fx["shallow_rgb"] / np.linalg.norm(fx["shallow_rgb"], axis=1, keepdims=True)
    dir_ = fx["deep_ir"] / np.linalg.norm(fx["deep_ir"], axis=1, keepdims=True)
    sir = fx["shallow_ir"] / np.linalg.norm(fx["shallow_ir"], axis=1, keepdims=True)
    for i in (0, 123, 599):
        a = fx["ir_labels"][np.argsort(-(deep[i] @ dir_.T), kind="stable")[:20]]
        s = fx["ir_labels"][np.argsort(-(shal[i] @ sir.T), kind="stable")[:20]]
        counts = [(s == label).sum() for label in a]
        assert result.votes[i] == max(counts)
        assert result.ranking_labels[i] == a[int(np.argmax(counts))]


def test_direction_agnostic(fx):
    # IR -> RGB: associate IR samples with RGB clusters
    labels = CRA()(
        fx["deep_ir"], fx["shallow_ir"], fx["deep_rgb"], fx["shallow_rgb"], fx["rgb_labels"]
    )
    assert labels.shape == (400,)
    assert set(np.unique(labels)) <= set(np.unique(fx["rgb_labels"]))


def test_association_is_mostly_correct_on_the_fixture(fx):
    labels = CRA()(*args(fx))
    ir_ids, rgb_ids = fx["true_ir_ids"], fx["true_rgb_ids"]
    majority = {
        c: np.bincount(ir_ids[fx["ir_labels"] == c]).argmax()
        for c in np.unique(fx["ir_labels"])
        if c >= 0
    }
    assigned = labels >= 0
    correct = np.array([majority[c] == t for c, t in zip(labels[assigned], rgb_ids[assigned])])
    assert correct.mean() > 0.8


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    ids=st.integers(3, 8),
    topk=st.integers(1, 8),
    smooth_k=st.integers(1, 6),
)
def test_permutation_equivariance(seed, ids, topk, smooth_k):
    f = make_two_modality_features(ids, 6, 5, dim=16, seed=seed)
    rng = np.random.default_rng(seed)
    tgt_labels = f.ids_ir.numpy().copy()
    tgt_labels[rng.random(len(tgt_labels)) < 0.2] = -1
    tgt_labels[0] = 0
    cra = CRA(topk=topk, smooth_k=smooth_k)
    base = cra(
        f.deep_rgb.numpy(),
        f.shallow_rgb.numpy(),
        f.deep_ir.numpy(),
        f.shallow_ir.numpy(),
        tgt_labels,
    )
    ps = rng.permutation(len(f.deep_rgb))
    pt = rng.permutation(len(f.deep_ir))
    permuted = cra(
        f.deep_rgb.numpy()[ps],
        f.shallow_rgb.numpy()[ps],
        f.deep_ir.numpy()[pt],
        f.shallow_ir.numpy()[pt],
        tgt_labels[pt],
    )
    # equal up to tie-breaking between exactly equal similarities (measure-zero here)
    np.testing.assert_array_equal(permuted, base[ps])
    assert ((base >= -1) & (base <= tgt_labels.max())).all()


# ----------------------------------------------------------------------------- errors


def test_mismatched_deep_and_shallow_sample_counts(fx):
    a = list(args(fx))
    a[1] = a[1][:-1]
    with pytest.raises(ValueError, match="deep_src has 600 samples but shallow_src has 599"):
        CRA()(*a)
    a = list(args(fx))
    a[3] = a[3][:-2]
    with pytest.raises(ValueError, match="deep_tgt has 400 samples but shallow_tgt has 398"):
        CRA()(*a)


def test_mismatched_widths(fx):
    a = list(args(fx))
    a[2] = a[2][:, :32]
    with pytest.raises(ValueError, match="deep_src has width 64 but deep_tgt has width 32"):
        CRA()(*a)
    a = list(args(fx))
    a[1] = a[1][:, :10]
    with pytest.raises(ValueError, match="shallow_src has width 10"):
        CRA()(*a)


def test_target_labels_of_wrong_length(fx):
    a = list(args(fx))
    a[4] = a[4][:-1]
    with pytest.raises(ValueError, match="tgt_labels has length 399, expected 400"):
        CRA()(*a)


def test_all_target_labels_unclustered(fx):
    a = list(args(fx))
    a[4] = np.full(400, -1)
    with pytest.raises(ValueError, match="nothing to associate"):
        CRA()(*a)


def test_topk_and_smooth_k_larger_than_available(fx):
    with pytest.raises(ValueError, match="topk=401 is larger than the 400 target samples"):
        CRA(topk=401)(*args(fx))
    with pytest.raises(ValueError, match="smooth_k=601 is larger than the 600 source samples"):
        CRA(smooth_k=601)(*args(fx))
    with pytest.raises(ValueError, match="topk must be >= 1, got 0"):
        CRA(topk=0)
    with pytest.raises(TypeError, match="smooth_k must be an integer"):
        CRA(smooth_k=5.0)
    with pytest.raises(TypeError, match="topk must be an integer"):
        CRA(topk=True)
    assert CRA(topk=np.int64(7)).topk == 7 and type(CRA(topk=np.int64(7)).topk) is int


def test_nan_and_mixed_types(fx):
    a = list(args(fx))
    a[0] = a[0].copy()
    a[0][3] = np.nan
    with pytest.raises(ValueError, match="deep_src contains NaN"):
        CRA()(*a)
    a = list(args(fx))
    a[4] = torch.from_numpy(a[4])
    with pytest.raises(TypeError, match="cannot be mixed"):
        CRA()(*a)
    a = list(args(fx))
    a[4] = a[4].copy()
    a[4][0] = -3
    with pytest.raises(ValueError, match=">= -1"):
        CRA()(*a)


def test_associate_returns_the_result_and_call_the_labels(fx):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CRA().associate(*args(fx))
        labels = CRA()(*args(fx))
    assert isinstance(result, CRAResult)
    np.testing.assert_array_equal(result.labels, labels)


def test_deprecated_return_details_still_works_and_warns(fx):
    with pytest.warns(DeprecationWarning, match="associate") as record:
        result = CRA()(*args(fx), return_details=True)
    assert record[0].filename == __file__
    assert isinstance(result, CRAResult)
    np.testing.assert_array_equal(result.labels, fx["cra_labels"])
    np.testing.assert_array_equal(result.ranking_labels, fx["ranking_labels"])


def test_associate_tensors_matches_associate(fx):
    tensors = [torch.from_numpy(a) for a in args(fx)]
    features, labels = [t.float() for t in tensors[:4]], tensors[4].long()
    direct = CRA().associate_tensors(*features, labels)
    np.testing.assert_array_equal(direct.labels.numpy(), fx["cra_labels"])
    np.testing.assert_array_equal(direct.votes.numpy(), CRA().associate(*tensors).votes.numpy())
    with pytest.raises(ValueError, match="tgt_labels has shape"):
        CRA().associate_tensors(*features, labels[:-1])
    with pytest.raises(ValueError, match="same samples"):
        CRA().associate_tensors(features[0][:-1], *features[1:], labels)


# ----------------------------------------------------------------------------- memory


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    rows=st.integers(1, 6),
    k=st.integers(1, 9),
    m=st.integers(1, 9),
    labels=st.integers(1, 5),
)
def test_counting_by_binary_search_equals_the_dense_comparison(seed, rows, k, m, labels):
    from sdcl_toolkit.association.cra import _occurrences, _ranking_labels, _smoothed_labels

    g = torch.Generator().manual_seed(seed)
    values = torch.randint(-1, labels, (rows, k), generator=g)
    pool = torch.randint(-1, labels, (rows, m), generator=g)
    dense = (values[:, :, None] == pool[:, None, :]).sum(-1)  # the former [N, K, M] count
    assert torch.equal(_occurrences(values, pool), dense)
    if m == k:
        label, count = _ranking_labels(values, pool)
        best = torch.argmax(dense, dim=1)
        assert torch.equal(label, values[torch.arange(rows), best])
        assert torch.equal(count, dense[torch.arange(rows), best])
    neighbours = torch.randint(0, rows, (rows, k), generator=g)
    ranking = torch.randint(-1, labels, (rows,), generator=g)
    votes = ranking[neighbours]
    score = (votes[:, :, None] == votes[:, None, :]).sum(-1) * (labels + 2) - (votes + 1)
    expected = votes[torch.arange(rows), torch.argmax(score, dim=1)]
    assert torch.equal(_smoothed_labels(ranking, neighbours), expected)


_PEAK_SCRIPT = """
import resource, sys, numpy as np, torch
from sdcl_toolkit import CRA
n_src, n_tgt, k = (int(v) for v in sys.argv[1:4])
rng = np.random.default_rng(0)
x = [rng.normal(size=(n, 8)).astype(np.float32) for n in (n_src, n_src, n_tgt, n_tgt)]
y = rng.integers(-1, 50, n_tgt)
torch.set_num_threads(1)
CRA(topk=2, smooth_k=2)(x[0][:50], x[1][:50], *x[2:], y)  # warm up (allocator, kernels)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
CRA(topk=k, smooth_k=k)(*x, y)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)  # MiB (ru_maxrss is in KiB on Linux)
"""


@pytest.mark.slow
def test_peak_memory_is_linear_in_n_times_k(tmp_path):
    # N = 1000 source samples, topk = smooth_k = 1000: an [N, K, K] count needs 1 GB of
    # booleans and 8 GB of int64 (the former behaviour, 8.9 GB reported); the [N, K] work
    # arrays are ~8 MB each
    import subprocess
    import sys

    script = tmp_path / "peak.py"
    script.write_text(_PEAK_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), "1000", "1000", "1000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    grown_mib = float(out.stdout.strip().splitlines()[-1])
    assert grown_mib < 300, out.stdout
