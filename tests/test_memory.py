"""Tests of sdcl_toolkit.memory: fixture fidelity, agreement with the sequential per-sample
reference, invariants, device/dtype handling and bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit.memory import ClusterMemory, InstanceMemory, _occurrence_layout

FIXTURES = Path(__file__).parent / "fixtures"
RTOL = 1e-5  # fixture README: losses within 1e-5 relative
ATOL = 1e-6  # entries of unit-norm rows / gradients near zero: a few float32 ulps of 1


@pytest.fixture(scope="module")
def memory_fixture():
    return dict(np.load(FIXTURES / "memory.npz"))


def fixture_memory(data, mode):
    """A ClusterMemory holding the fixture's centroids exactly (no renormalisation)."""
    memory = ClusterMemory(
        num_clusters=data["centroids"].shape[0],
        num_features=data["centroids"].shape[1],
        temp=float(data["temp"]),
        momentum=float(data["momentum"]),
        mode=mode,
    )
    memory.centroids.copy_(torch.from_numpy(data["centroids"]))
    return memory


# --------------------------------------------------------------------------------------
# Readable per-sample references written from SPEC section 6 (loops on purpose).
# --------------------------------------------------------------------------------------
def reference_mean_update(centroids, features, labels, momentum):
    bank = centroids.clone()
    x = F.normalize(features.float(), dim=1)
    for i in range(x.shape[0]):
        y = int(labels[i])
        bank[y] = momentum * bank[y] + (1.0 - momentum) * x[i]
        bank[y] = bank[y] / bank[y].norm()
    return bank


def reference_hard_update(centroids, features, labels, momentum):
    bank = centroids.clone()
    x = F.normalize(features.float(), dim=1)
    for y in sorted({int(v) for v in labels}):
        members = [i for i in range(x.shape[0]) if int(labels[i]) == y]
        sims = [float(x[i] @ centroids[y]) for i in members]
        chosen = members[int(np.argmin(sims))]
        bank[y] = momentum * bank[y] + (1.0 - momentum) * x[chosen]
        bank[y] = bank[y] / bank[y].norm()
    return bank


def reference_instance_update(bank, features, indices, momentum):
    bank = bank.clone()
    for i in range(features.shape[0]):
        j = int(indices[i])
        bank[j] = momentum * bank[j] + (1.0 - momentum) * features[i].float()
        bank[j] = bank[j] / bank[j].norm()
    return bank


def random_unit(rows, width, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, width, generator=g), dim=1)


# --------------------------------------------------------------------------------------
# fixture fidelity
# --------------------------------------------------------------------------------------
def test_loss_and_gradient_match_official(memory_fixture):
    memory = fixture_memory(memory_fixture, "mean")
    inputs = torch.from_numpy(memory_fixture["inputs"]).requires_grad_()
    loss = memory(inputs, torch.from_numpy(memory_fixture["targets"]))
    loss.backward()
    np.testing.assert_allclose(loss.item(), float(memory_fixture["loss"]), rtol=RTOL)
    np.testing.assert_allclose(
        inputs.grad.numpy(), memory_fixture["grad_inputs"], rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("mode,key", [("mean", "updated_mean"), ("hard", "updated_hard")])
def test_update_matches_official(memory_fixture, mode, key):
    memory = fixture_memory(memory_fixture, mode)
    memory.update(
        torch.from_numpy(memory_fixture["inputs"]), torch.from_numpy(memory_fixture["targets"])
    )
    np.testing.assert_allclose(memory.centroids.numpy(), memory_fixture[key], rtol=RTOL, atol=ATOL)


def test_fixture_modes_differ(memory_fixture):
    # the two expected results must be distinguishable, else the tests above prove little
    assert np.abs(memory_fixture["updated_mean"] - memory_fixture["updated_hard"]).max() > 1e-2


def test_instance_update_matches_official(memory_fixture):
    indices = memory_fixture["instance_indices"]
    assert len(set(indices.tolist())) < len(indices)  # the fixture holds repeats
    num_samples, num_features = memory_fixture["instance_bank"].shape
    memory = InstanceMemory(
        num_samples=num_samples,
        num_features=num_features,
        momentum=float(memory_fixture["instance_momentum"]),
    )
    memory.bank.copy_(torch.from_numpy(memory_fixture["instance_bank"]))
    memory.update(torch.from_numpy(memory_fixture["instance_inputs"]), torch.from_numpy(indices))
    np.testing.assert_allclose(
        memory.bank.numpy(), memory_fixture["instance_updated"], rtol=RTOL, atol=ATOL
    )


def test_loss_from_numpy_built_memory(memory_fixture):
    memory = ClusterMemory.from_centroids(memory_fixture["centroids"], temp=0.05, momentum=0.2)
    loss = memory(torch.from_numpy(memory_fixture["inputs"]), memory_fixture["targets"])
    np.testing.assert_allclose(loss.item(), float(memory_fixture["loss"]), rtol=RTOL)


# --------------------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------------------
def test_from_features_is_normalised_mean_of_raw_features_skipping_outliers():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(30, 8, generator=g) * 3
    labels = torch.tensor([0, 1, 2, -1, 1] * 6)
    memory = ClusterMemory.from_features(features, labels, momentum=0.3, temp=0.1, mode="hard")
    expected = torch.stack([features[labels == c].mean(0) for c in range(3)])
    torch.testing.assert_close(memory.centroids, F.normalize(expected, dim=1))
    assert (memory.num_clusters, memory.num_features) == (3, 8)
    assert (memory.momentum, memory.temp, memory.mode) == (0.3, 0.1, "hard")


def test_from_features_numpy_and_num_clusters():
    features = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    memory = ClusterMemory.from_features(features, np.array([0, 0, 1, 1, 2, 2]), num_clusters=3)
    assert memory.centroids.shape == (3, 4)
    with pytest.raises(ValueError, match=r"clusters \[3\] have no member"):
        ClusterMemory.from_features(features, np.array([0, 0, 1, 1, 2, 2]), num_clusters=4)
    with pytest.raises(ValueError, match="num_clusters is 2"):
        ClusterMemory.from_features(features, np.array([0, 0, 1, 1, 2, 2]), num_clusters=2)
    with pytest.raises(ValueError, match=r"clusters \[1\] have no member"):
        ClusterMemory.from_features(features, np.array([0, 0, 2, 2, 2, -1]))
    with pytest.raises(ValueError, match="every label is -1"):
        ClusterMemory.from_features(features, -np.ones(6, dtype=np.int64))


def test_instance_from_features_normalises_rows():
    features = torch.randn(7, 5) * 4
    memory = InstanceMemory.from_features(features, momentum=0.5)
    torch.testing.assert_close(memory.bank, F.normalize(features, dim=1))
    assert memory.momentum == 0.5
    torch.testing.assert_close(memory.rows(torch.tensor([3, 1])), memory.bank[[3, 1]])


def test_state_dict_round_trips():
    source = ClusterMemory.from_centroids(torch.randn(5, 6))
    source.update(torch.randn(9, 6), torch.tensor([0, 1, 1, 4, 4, 4, 2, 3, 0]))
    target = ClusterMemory(num_clusters=5, num_features=6)
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.centroids, source.centroids)
    assert list(source.state_dict()) == ["centroids"]

    bank = InstanceMemory.from_features(torch.randn(10, 3))
    copy = InstanceMemory(num_samples=10, num_features=3)
    copy.load_state_dict(bank.state_dict())
    assert torch.equal(copy.bank, bank.bank)


# --------------------------------------------------------------------------------------
# loss behaviour
# --------------------------------------------------------------------------------------
def test_forward_has_no_side_effects():
    memory = ClusterMemory.from_centroids(torch.randn(4, 6))
    before = memory.centroids.clone()
    features = torch.randn(8, 6, requires_grad=True)
    memory(features, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])).backward()
    assert torch.equal(memory.centroids, before)


def test_forward_is_cross_entropy_of_normalised_similarities():
    memory = ClusterMemory.from_centroids(torch.randn(4, 6), temp=0.07)
    features = torch.randn(5, 6)
    labels = torch.tensor([3, 0, 1, 1, 2])
    logits = F.normalize(features, dim=1) @ memory.centroids.t() / 0.07
    torch.testing.assert_close(memory(features, labels), F.cross_entropy(logits, labels))
    torch.testing.assert_close(memory.logits(features), logits)


def test_autocast_bf16_computes_similarities_in_float32():
    memory = ClusterMemory.from_centroids(torch.randn(6, 16))
    features = torch.randn(12, 16)
    labels = torch.arange(12) % 6
    reference = memory(features, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = memory.logits(features)
        loss = memory(features, labels)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference)


def test_half_precision_inputs_get_gradients():
    memory = ClusterMemory.from_centroids(torch.randn(6, 16))
    features = torch.randn(12, 16).to(torch.bfloat16).requires_grad_()
    labels = torch.arange(12) % 6
    loss = memory(features, labels)
    loss.backward()
    assert features.grad.dtype == torch.bfloat16 and torch.isfinite(features.grad.float()).all()
    torch.testing.assert_close(loss, memory(features.detach().float(), labels))
    memory.update(features.detach(), labels)  # bf16 update works, memory stays float32
    assert memory.centroids.dtype == torch.float32


# --------------------------------------------------------------------------------------
# update semantics against the per-sample reference
# --------------------------------------------------------------------------------------
batches = st.integers(min_value=1, max_value=40)


@settings(max_examples=40, deadline=None)
@given(
    batch=batches,
    num_clusters=st.integers(min_value=1, max_value=6),
    momentum=st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9, 1.0]),
    mode=st.sampled_from(["mean", "hard"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_cluster_update_equals_sequential_reference(batch, num_clusters, momentum, mode, seed):
    g = torch.Generator().manual_seed(seed)
    centroids = random_unit(num_clusters, 8, seed)
    features = torch.randn(batch, 8, generator=g) * 2
    labels = torch.randint(0, num_clusters, (batch,), generator=g)
    memory = ClusterMemory.from_centroids(centroids.clone(), momentum=momentum, mode=mode)
    memory.centroids.copy_(centroids)
    memory.update(features, labels)
    reference = (reference_mean_update if mode == "mean" else reference_hard_update)(
        centroids, features, labels, momentum
    )
    torch.testing.assert_close(memory.centroids, reference, rtol=1e-5, atol=1e-6)
    norms = memory.centroids.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    untouched = torch.ones(num_clusters, dtype=torch.bool)
    untouched[labels] = False
    assert torch.equal(memory.centroids[untouched], centroids[untouched])


@settings(max_examples=40, deadline=None)
@given(
    batch=batches,
    num_samples=st.integers(min_value=1, max_value=12),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_instance_update_equals_sequential_reference(batch, num_samples, momentum, seed):
    g = torch.Generator().manual_seed(seed)
    bank = random_unit(num_samples, 6, seed)
    features = torch.randn(batch, 6, generator=g) * 3
    indices = torch.randint(0, num_samples, (batch,), generator=g)
    memory = InstanceMemory(num_samples=num_samples, num_features=6, momentum=momentum)
    memory.bank.copy_(bank)
    memory.update(features, indices)
    reference = reference_instance_update(bank, features, indices, momentum)
    torch.testing.assert_close(memory.bank, reference, rtol=1e-5, atol=1e-6)


def test_hard_update_takes_first_of_tied_least_similar_members():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    memory = ClusterMemory.from_centroids(centroids, momentum=0.5, mode="hard")
    # class 0: samples 0 and 2 tie as least similar (both orthogonal to it) but differ;
    # the first in batch order (sample 0) must be chosen, as numpy.argmin does officially
    features = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    memory.update(features, torch.tensor([0, 0, 0, 1]))
    expected0 = F.normalize(torch.tensor([[0.5, 0.5]]), dim=1)[0]
    torch.testing.assert_close(memory.centroids[0], expected0)
    torch.testing.assert_close(memory.centroids[1], F.normalize(torch.tensor([0.5, 0.5]), dim=0))


def test_momentum_override_and_extremes():
    centroids = random_unit(3, 4, 1)
    features = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    keep = ClusterMemory.from_centroids(centroids, momentum=0.1)
    keep.update(features, labels, momentum=1.0)  # momentum 1 keeps the centroids
    torch.testing.assert_close(keep.centroids, centroids)
    assert keep.momentum == 0.1
    replace = ClusterMemory.from_centroids(centroids, momentum=0.9)
    replace.update(features, labels, momentum=0.0)  # momentum 0: last member wins
    torch.testing.assert_close(replace.centroids, F.normalize(features[3:], dim=1))
    with pytest.raises(ValueError, match="momentum"):
        keep.update(features, labels, momentum=1.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=50))
def test_occurrence_layout_orders_every_rows_occurrences(values):
    rows = torch.tensor(values)
    targets, slots, active = _occurrence_layout(rows)
    counts = {v: values.count(v) for v in set(values)}
    if slots is None:  # all distinct: the batch is used as it is
        assert max(counts.values()) == 1
        assert torch.equal(targets, rows) and active == [len(values)]
        return
    assert sorted(targets.tolist()) == sorted(counts)
    assert slots.shape == (len(counts), max(counts.values()))
    assert active == [sum(c > r for c in counts.values()) for r in range(slots.shape[1])]
    for u, target in enumerate(targets.tolist()):
        occurrences = [i for i, v in enumerate(values) if v == target]
        # the first count(target) ranks hold its occurrences in batch order
        assert slots[u, : len(occurrences)].tolist() == occurrences
        # active rows are a prefix: target u is active exactly for its count's ranks
        assert all((u < active[r]) == (r < len(occurrences)) for r in range(slots.shape[1]))


def test_repeated_updates_over_many_repeats():
    # PK batches hold each identity 16 (IR) or 32 (RGB, two views) times
    centroids = random_unit(8, 32, 3)
    features = torch.randn(256, 32)
    labels = torch.arange(8).repeat_interleave(32)[torch.randperm(256)]
    memory = ClusterMemory.from_centroids(centroids, momentum=0.1)
    memory.centroids.copy_(centroids)
    for _ in range(3):
        memory.update(features, labels)
        centroids = reference_mean_update(centroids, features, labels, 0.1)
    torch.testing.assert_close(memory.centroids, centroids, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memories_follow_cuda_inputs():
    memory = ClusterMemory.from_centroids(torch.randn(4, 8))
    features = torch.randn(6, 8, device="cuda")
    labels = torch.tensor([0, 1, 2, 3, 0, 1], device="cuda")
    reference = reference_mean_update(memory.centroids.clone(), features.cpu(), labels.cpu(), 0.1)
    loss = memory(features, labels)
    assert loss.device.type == "cuda" and memory.centroids.device.type == "cuda"
    memory.update(features, labels)
    torch.testing.assert_close(memory.centroids.cpu(), reference, rtol=1e-5, atol=1e-6)
    bank = InstanceMemory.from_features(torch.randn(5, 8))
    bank.update(features, torch.tensor([0, 1, 1, 2, 3, 4], device="cuda"))
    assert bank.bank.device.type == "cuda"


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.fixture
def memory():
    return ClusterMemory.from_centroids(torch.randn(4, 6))


@pytest.mark.parametrize("method", ["forward", "update"])
def test_outlier_and_out_of_range_labels_are_named(memory, method):
    call = getattr(memory, method)
    features = torch.randn(3, 6)
    with pytest.raises(ValueError, match=r"\[0, 4\).*\[-1\].*outliers"):
        call(features, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"\[4, 7\]"):
        call(features, torch.tensor([4, 7, 2]))


@pytest.mark.parametrize("method", ["forward", "update"])
def test_feature_errors(memory, method):
    call = getattr(memory, method)
    with pytest.raises(ValueError, match="width 5.*6-d"):
        call(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    bad = torch.randn(3, 6)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf.*rows 1"):
        call(bad, torch.tensor([0, 1, 2]))
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        call(bad, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="empty batch"):
        call(torch.randn(0, 6), torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match="length 2, expected 3"):
        call(torch.randn(3, 6), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="2-D"):
        call(torch.randn(6), torch.tensor([0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        call(np.zeros((3, 6), dtype=np.float32), torch.tensor([0, 1, 2]))


def test_instance_memory_errors():
    bank = InstanceMemory.from_features(torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"\[0, 5\).*\[5, 9\]"):
        bank.update(torch.randn(3, 4), torch.tensor([0, 5, 9]))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        bank.update(torch.randn(2, 4), torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="width 3.*4-d"):
        bank.update(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN or inf"):
        bank.update(torch.tensor([[0.0, float("nan"), 1.0, 1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="empty batch"):
        bank.update(torch.randn(0, 4), torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match="length 1, expected 2"):
        bank.update(torch.randn(2, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        bank.rows(torch.tensor([7]))


def test_constructor_errors():
    with pytest.raises(ValueError, match="mode"):
        ClusterMemory(num_clusters=3, num_features=4, mode="median")
    with pytest.raises(ValueError, match="num_clusters"):
        ClusterMemory(num_clusters=0, num_features=4)
    with pytest.raises(ValueError, match="temp"):
        ClusterMemory(num_clusters=3, num_features=4, temp=0.0)
    with pytest.raises(ValueError, match="momentum"):
        InstanceMemory(num_samples=4, num_features=3, momentum=-0.1)
    with pytest.raises(TypeError, match="num_features"):
        ClusterMemory(num_clusters=3)
    with pytest.raises(TypeError, match="num_samples"):
        InstanceMemory(num_features=3)
    with pytest.raises(ValueError, match="NaN or inf"):
        ClusterMemory.from_centroids(torch.tensor([[float("inf"), 0.0]]))


def test_exactly_zero_intermediate_row_stays_finite():
    # mu * M + (1 - mu) * x == 0 exactly: the official code divides 0 by 0 (NaN); here the
    # norm is clamped as in F.normalize, the row passes through zero and continues
    memory = InstanceMemory(num_samples=3, num_features=2, momentum=0.5)
    memory.bank.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    features = torch.tensor([[-1.0, 0.0], [0.0, 3.0], [0.0, 0.0], [0.0, 2.0]])
    memory.update(features, torch.tensor([0, 0, 2, 1]))
    assert torch.isfinite(memory.bank).all()
    torch.testing.assert_close(memory.bank[0], torch.tensor([0.0, 1.0]))  # 0 -> 0.5*(0, 3)
    torch.testing.assert_close(memory.bank[1], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(memory.bank[2], torch.tensor([0.0, 0.0]))  # zero into zero


# --------------------------------------------------------------------------------------
# update_many: several memories sharing one batch's labels / indices
# --------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(min_value=1, max_value=40),
    widths=st.sampled_from([(8, 8), (8, 8, 8), (8, 5), (8, 5, 8)]),
    momenta=st.sampled_from([(0.1, 0.1, 0.1), (0.1, 0.5, 0.1), (0.9, 0.9, 0.2)]),
    modes=st.sampled_from([("mean", "mean", "mean"), ("mean", "hard", "mean")]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_cluster_update_many_equals_separate_updates(batch, widths, momenta, modes, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (batch,), generator=g)
    starts = [random_unit(4, w, seed + i) for i, w in enumerate(widths)]
    features = [torch.randn(batch, w, generator=g) for w in widths]

    def build():
        return [
            ClusterMemory.from_centroids(c.clone(), momentum=momenta[i], mode=modes[i])
            for i, c in enumerate(starts)
        ]

    fused, separate = build(), build()
    ClusterMemory.update_many(fused, features, labels)
    for memory, x in zip(separate, features):
        memory.update(x, labels)
    for a, b in zip(fused, separate):
        torch.testing.assert_close(a.centroids, b.centroids, rtol=1e-5, atol=1e-6)


def test_instance_update_many_equals_separate_updates_with_override():
    g = torch.Generator().manual_seed(5)
    indices = torch.tensor([3, 1, 3, 0, 1, 3, 7])
    starts = [random_unit(8, 6, 1), random_unit(8, 6, 2)]
    features = [torch.randn(7, 6, generator=g), torch.randn(7, 6, generator=g)]
    fused = [InstanceMemory.from_features(s) for s in starts]
    InstanceMemory.update_many(fused, features, indices, momentum=0.7)
    for start, memory, x in zip(starts, fused, features):
        reference = reference_instance_update(F.normalize(start, dim=1), x, indices, 0.7)
        torch.testing.assert_close(memory.bank, reference, rtol=1e-5, atol=1e-6)
        assert memory.momentum == 0.9


def test_update_many_errors():
    a = ClusterMemory.from_centroids(torch.randn(4, 6))
    b = ClusterMemory.from_centroids(torch.randn(4, 6))
    labels = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="appears twice"):
        ClusterMemory.update_many([a, a], [torch.randn(3, 6)] * 2, labels)
    with pytest.raises(ValueError, match="2 memories but 1 feature"):
        ClusterMemory.update_many([a, b], [torch.randn(3, 6)], labels)
    with pytest.raises(ValueError, match="share num_clusters"):
        ClusterMemory.update_many(
            [a, ClusterMemory(num_clusters=5, num_features=6)], [torch.randn(3, 6)] * 2, labels
        )
    with pytest.raises(ValueError, match="features\\[1\\] has 2 rows"):
        ClusterMemory.update_many([a, b], [torch.randn(3, 6), torch.randn(2, 6)], labels)
    with pytest.raises(ValueError, match="features\\[1\\] has feature width 5"):
        ClusterMemory.update_many([a, b], [torch.randn(3, 6), torch.randn(3, 5)], labels)
    with pytest.raises(TypeError, match="InstanceMemory"):
        InstanceMemory.update_many([a], [torch.randn(3, 6)], labels)
    with pytest.raises(ValueError, match="at least one"):
        InstanceMemory.update_many([], [], labels)
    before = a.centroids.clone()
    with pytest.raises(ValueError, match="NaN"):  # nothing is updated when one batch is bad
        bad = torch.full((3, 6), float("nan"))
        ClusterMemory.update_many([a, b], [torch.randn(3, 6), bad], labels)
    assert torch.equal(a.centroids, before)


# --------------------------------------------------------------------------------------
# deprecated positional constructors (removed in the next version)
# --------------------------------------------------------------------------------------
def test_keyword_constructors_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cluster = ClusterMemory(num_clusters=5, num_features=6, temp=0.1, momentum=0.2)
        instance = InstanceMemory(num_samples=10, num_features=3, momentum=0.5)
    assert cluster.centroids.shape == (5, 6) and cluster.temp == 0.1
    assert instance.bank.shape == (10, 3) and instance.momentum == 0.5


def test_deprecated_positional_cluster_memory_still_works_and_warns():
    with pytest.warns(
        DeprecationWarning, match=r"num_clusters=\.\.\., num_features=\.\.\."
    ) as record:
        memory = ClusterMemory(6, 5, 0.1, 0.2, "hard")
    assert record[0].filename == __file__  # attributed to the caller
    assert (memory.num_features, memory.num_clusters) == (6, 5)
    assert memory.centroids.shape == (5, 6)
    assert (memory.temp, memory.momentum, memory.mode) == (0.1, 0.2, "hard")
    with pytest.warns(DeprecationWarning):
        mixed = ClusterMemory(6, num_clusters=5, momentum=0.3)
    assert mixed.centroids.shape == (5, 6) and mixed.momentum == 0.3
    with pytest.raises(TypeError, match="multiple values"):
        ClusterMemory(6, 5, num_clusters=5)
    with pytest.raises(TypeError, match="at most 5"):
        ClusterMemory(6, 5, 0.1, 0.2, "mean", 1)


def test_deprecated_positional_instance_memory_still_works_and_warns():
    with pytest.warns(
        DeprecationWarning, match=r"num_samples=\.\.\., num_features=\.\.\."
    ) as record:
        memory = InstanceMemory(10, 3, 0.5)
    assert record[0].filename == __file__
    assert memory.bank.shape == (10, 3) and memory.momentum == 0.5
    with pytest.raises(TypeError, match="multiple values"):
        InstanceMemory(10, 3, num_features=3)


# --------------------------------------------------------------------------------------
# features at the edge of the float32 range, label dtypes (issue 13)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
@pytest.mark.parametrize("mode", ["mean", "hard"])
def test_cluster_memory_is_exact_at_extreme_feature_scales(scale, mode):
    g = torch.Generator().manual_seed(0)
    centroids = torch.randn(3, 6, generator=g)
    features = torch.randn(7, 6, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    base = ClusterMemory.from_centroids(centroids, mode=mode)
    scaled = ClusterMemory.from_centroids(centroids * scale, mode=mode)
    torch.testing.assert_close(scaled.centroids, base.centroids)
    torch.testing.assert_close(scaled(features * scale, labels), base(features, labels))
    base.update(features, labels)
    scaled.update(features * scale, labels)
    torch.testing.assert_close(scaled.centroids, base.centroids, rtol=1e-5, atol=1e-6)
    norms = torch.linalg.vector_norm(scaled.centroids, dim=1)
    torch.testing.assert_close(norms, torch.ones(3))


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_instance_memory_rows_stay_unit_at_extreme_feature_scales(scale):
    g = torch.Generator().manual_seed(1)
    features = torch.randn(5, 4, generator=g)
    memory = InstanceMemory.from_features(features * scale)
    torch.testing.assert_close(memory.bank, F.normalize(features, dim=1))
    # an empty (zero) bank mixed with tiny / huge raw features: the result is the direction
    empty = InstanceMemory(num_samples=5, num_features=4, momentum=0.5)
    empty.update(features * scale, torch.arange(5))
    torch.testing.assert_close(empty.bank, F.normalize(features, dim=1))


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (torch.tensor([True, False]), TypeError, "labels must be an integer array"),
        (np.array([0.5, 1.0]), ValueError, "labels must hold integers"),
        (np.array([1e19, 0.0]), ValueError, "labels holds values beyond the int64 range"),
        (np.array([[0, 1]]), ValueError, "labels must be 1-D"),
        (np.array([0, 1, 1]), ValueError, "labels has length 3, expected 2"),
        (np.array([0, 5]), ValueError, r"labels must lie in \[0, 3\)"),
        ([0, 1], TypeError, "labels must be a numpy.ndarray or a torch.Tensor"),
    ],
)
def test_label_errors_follow_one_rule(labels, error, match):
    memory = ClusterMemory(num_clusters=3, num_features=4)
    with pytest.raises(error, match=match):
        memory(torch.randn(2, 4), labels)
    with pytest.raises(error, match=match):
        memory.update(torch.randn(2, 4), labels)
    instance = InstanceMemory(num_samples=3, num_features=4)
    with pytest.raises(error, match=match.replace("labels", "indices")):
        instance.update(torch.randn(2, 4), labels)
