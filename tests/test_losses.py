"""Tests of sdcl_toolkit.losses: CNL fixture fidelity, agreement with a literal statement of
SPEC section 7, shallow-deep contrast, official weights/schedule and bad input."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit.losses import (
    CNL,
    CollaborativeNeighborLearning,
    Direction,
    NeighborLoss,
    NeighborLossResult,
    SDCLLossWeights,
    ShallowDeepContrast,
    ShallowDeepContrastResult,
    ShallowDeepLoss,
    heterogeneous_direction,
)
from sdcl_toolkit.memory import ClusterMemory, InstanceMemory

FIXTURES = Path(__file__).parent / "fixtures"
RTOL = 1e-5  # fixture README: losses within 1e-5 relative
ATOL = 1e-7  # gradients entries near zero (max |grad| ~ 5e-2): float32 rounding


@pytest.fixture(scope="module")
def cnl_fixture():
    return dict(np.load(FIXTURES / "cnl.npz"))


def exact_memory(bank):
    """An InstanceMemory holding ``bank`` exactly (no renormalisation)."""
    memory = InstanceMemory(num_samples=bank.shape[0], num_features=bank.shape[1])
    memory.bank.copy_(torch.as_tensor(bank))
    return memory


@pytest.fixture(scope="module")
def banks(cnl_fixture):
    return {
        key: exact_memory(cnl_fixture[f"bank_{key}"])
        for key in ("src_deep", "src_shallow", "tgt_deep", "tgt_shallow")
    }


def online(cnl_fixture):
    deep = torch.from_numpy(cnl_fixture["online_deep"]).clone().requires_grad_()
    shallow = torch.from_numpy(cnl_fixture["online_shallow"]).clone().requires_grad_()
    return deep, shallow


# --------------------------------------------------------------------------------------
# A literal, per-sample statement of SPEC section 7 (loops on purpose).
# --------------------------------------------------------------------------------------
def reference_cnl(deep, shallow, indices, qd, qs, td, ts, threshold=0.9, temp=0.05):
    losses_d, losses_s, masks = [], [], []
    for b, i in enumerate(indices.tolist()):
        sd = qd[i] @ td.t()
        ss = qs[i] @ ts.t()
        mask = (sd > threshold * sd.max()) & (ss > threshold * ss.max())
        n = mask.sum() + 1
        masks.append(mask)
        for feature, bank, out in ((deep[b], td, losses_d), (shallow[b], ts, losses_s)):
            p = torch.softmax(F.normalize(feature, dim=0) @ bank.t() / temp, dim=0)
            out.append(-(torch.log(p.clamp_min(1e-8)) * mask).sum() / n)
    return torch.stack(losses_d).mean(), torch.stack(losses_s).mean(), torch.stack(masks)


# --------------------------------------------------------------------------------------
# fixture fidelity
# --------------------------------------------------------------------------------------
def test_homogeneous_losses_masks_and_gradients_match_official(cnl_fixture, banks):
    deep, shallow = online(cnl_fixture)
    result = CNL()(
        deep,
        shallow,
        torch.from_numpy(cnl_fixture["indices"]),
        banks["src_deep"],
        banks["src_shallow"],
    )
    np.testing.assert_allclose(
        result.deep.item(), float(cnl_fixture["homogeneous_deep"]), rtol=RTOL
    )
    np.testing.assert_allclose(
        result.shallow.item(), float(cnl_fixture["homogeneous_shallow"]), rtol=RTOL
    )
    np.testing.assert_array_equal(result.mask.numpy(), cnl_fixture["homogeneous_mask"])
    np.testing.assert_array_equal(
        result.num_neighbors.numpy(), cnl_fixture["homogeneous_mask"].sum(1) + 1
    )
    (result.deep + 0.5 * result.shallow).backward()
    np.testing.assert_allclose(
        deep.grad.numpy(), cnl_fixture["grad_deep_of_hom_d_plus_half_hom_s"], rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        shallow.grad.numpy(),
        cnl_fixture["grad_shallow_of_hom_d_plus_half_hom_s"],
        rtol=RTOL,
        atol=ATOL,
    )


def test_heterogeneous_losses_and_mask_match_official(cnl_fixture, banks):
    deep, shallow = online(cnl_fixture)
    result = CollaborativeNeighborLearning(threshold=0.9, temp=0.05)(
        deep,
        shallow,
        cnl_fixture["indices"],  # numpy indices are accepted
        banks["src_deep"],
        banks["src_shallow"],
        target_deep=banks["tgt_deep"],
        target_shallow=banks["tgt_shallow"],
    )
    np.testing.assert_allclose(
        result.deep.item(), float(cnl_fixture["heterogeneous_deep"]), rtol=RTOL
    )
    np.testing.assert_allclose(
        result.shallow.item(), float(cnl_fixture["heterogeneous_shallow"]), rtol=RTOL
    )
    np.testing.assert_array_equal(result.mask.numpy(), cnl_fixture["heterogeneous_mask"])


def test_fixture_masks_are_intersections_not_single_depth(cnl_fixture, banks):
    idx = torch.from_numpy(cnl_fixture["indices"])
    cnl = CNL()
    expected = torch.from_numpy(cnl_fixture["heterogeneous_mask"])
    for depth in ("deep", "shallow"):
        query, target = banks[f"src_{depth}"].bank[idx], banks[f"tgt_{depth}"].bank
        single = cnl._relative_neighbors(query, target)
        assert not torch.equal(single, expected)  # both neighbourhoods matter in this fixture
    mask, count = cnl.neighbor_mask(
        idx,
        banks["src_deep"],
        banks["src_shallow"],
        target_deep=banks["tgt_deep"],
        target_shallow=banks["tgt_shallow"],
    )
    assert torch.equal(mask, expected) and torch.equal(count, expected.sum(1) + 1)


def test_alias():
    assert CNL is CollaborativeNeighborLearning


# --------------------------------------------------------------------------------------
# agreement with the literal SPEC statement and invariants
# --------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(min_value=1, max_value=12),
    query_rows=st.integers(min_value=1, max_value=30),
    target_rows=st.integers(min_value=1, max_value=30),
    homogeneous=st.booleans(),
    threshold=st.sampled_from([0.5, 0.9]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_matches_literal_reference(batch, query_rows, target_rows, homogeneous, threshold, seed):
    g = torch.Generator().manual_seed(seed)

    def unit(n, d):
        return F.normalize(torch.randn(n, d, generator=g), dim=1)

    qd, qs = unit(query_rows, 8), unit(query_rows, 6)
    td, ts = (qd, qs) if homogeneous else (unit(target_rows, 8), unit(target_rows, 6))
    deep, shallow = torch.randn(batch, 8, generator=g) * 3, torch.randn(batch, 6, generator=g)
    indices = torch.randint(0, query_rows, (batch,), generator=g)
    memories = [exact_memory(qd), exact_memory(qs)]
    targets = {}
    if not homogeneous:
        targets = {"target_deep": exact_memory(td), "target_shallow": exact_memory(ts)}
    result = CNL(threshold=threshold)(deep, shallow, indices, *memories, **targets)
    ref_d, ref_s, ref_mask = reference_cnl(deep, shallow, indices, qd, qs, td, ts, threshold)
    assert torch.equal(result.mask, ref_mask)
    torch.testing.assert_close(result.deep, ref_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.shallow, ref_s, rtol=1e-5, atol=1e-6)
    assert bool((result.num_neighbors >= 1).all())
    if homogeneous:
        # a sample's own memory row is its most similar row, so it is always its neighbour
        assert bool(result.mask[torch.arange(batch), indices].all())


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(scale=st.floats(min_value=1e-2, max_value=1e2), seed=st.integers(0, 2**16))
def test_invariant_to_feature_scale_and_masks_ignore_online_features(scale, seed):
    g = torch.Generator().manual_seed(seed)
    qd = exact_memory(F.normalize(torch.randn(20, 8, generator=g), dim=1))
    qs = exact_memory(F.normalize(torch.randn(20, 5, generator=g), dim=1))
    deep, shallow = torch.randn(6, 8, generator=g), torch.randn(6, 5, generator=g)
    indices = torch.randint(0, 20, (6,), generator=g)
    base = CNL()(deep, shallow, indices, qd, qs)
    scaled = CNL()(deep * scale, shallow * scale, indices, qd, qs)
    torch.testing.assert_close(scaled.deep, base.deep, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scaled.shallow, base.shallow, rtol=1e-4, atol=1e-5)
    other = CNL()(torch.randn(6, 8, generator=g), torch.randn(6, 5, generator=g), indices, qd, qs)
    assert torch.equal(other.mask, base.mask)


def test_explicit_same_targets_equal_homogeneous(cnl_fixture, banks):
    deep, shallow = online(cnl_fixture)
    idx = torch.from_numpy(cnl_fixture["indices"])
    hom = CNL()(deep, shallow, idx, banks["src_deep"], banks["src_shallow"])
    explicit = CNL()(
        deep,
        shallow,
        idx,
        banks["src_deep"],
        banks["src_shallow"],
        target_deep=banks["src_deep"],
        target_shallow=banks["src_shallow"],
    )
    assert torch.equal(hom.deep, explicit.deep) and torch.equal(hom.mask, explicit.mask)


def test_no_gradient_reaches_memories_and_autocast_is_float32(cnl_fixture, banks):
    deep, shallow = online(cnl_fixture)
    idx = torch.from_numpy(cnl_fixture["indices"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = CNL()(deep, shallow, idx, banks["src_deep"], banks["src_shallow"])
    assert result.deep.dtype == torch.float32 and not result.mask.requires_grad
    expected = float(cnl_fixture["homogeneous_deep"])
    np.testing.assert_allclose(result.deep.item(), expected, rtol=RTOL)
    assert not banks["src_deep"].bank.requires_grad


def test_weighted():
    loss = NeighborLossResult(
        torch.tensor(2.0), torch.tensor(4.0), torch.ones(1, 1, dtype=torch.bool), torch.tensor([2])
    )
    assert loss.weighted(0.1, 0.05).item() == pytest.approx(0.4)


# --------------------------------------------------------------------------------------
# shallow-deep contrast
# --------------------------------------------------------------------------------------
def make_cluster_memories(seed=0, clusters=5):
    g = torch.Generator().manual_seed(seed)
    deep = ClusterMemory.from_centroids(torch.randn(clusters, 8, generator=g))
    shallow = ClusterMemory.from_centroids(torch.randn(clusters, 6, generator=g))
    return deep, shallow


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_shallow_deep_contrast_is_weighted_sum_of_memory_losses(lam):
    deep_memory, shallow_memory = make_cluster_memories()
    deep, shallow = torch.randn(10, 8), torch.randn(10, 6)
    labels = torch.arange(10) % 5
    sdc = ShallowDeepContrast(lambda_shallow=lam)
    result = sdc(deep, shallow, labels, deep_memory, shallow_memory)
    assert isinstance(result, ShallowDeepContrastResult)
    torch.testing.assert_close(result.deep, deep_memory(deep, labels))
    torch.testing.assert_close(result.shallow, shallow_memory(shallow, labels))
    torch.testing.assert_close(result.total, result.deep + lam * result.shallow)


def test_shallow_deep_contrast_matches_official_memory_loss(tmp_path):
    data = np.load(FIXTURES / "memory.npz")
    memory = ClusterMemory(
        num_clusters=10,
        num_features=32,
        temp=float(data["temp"]),
        momentum=float(data["momentum"]),
    )
    memory.centroids.copy_(torch.from_numpy(data["centroids"]))
    inputs = torch.from_numpy(data["inputs"])
    labels = torch.from_numpy(data["targets"])
    result = ShallowDeepContrast()(inputs, inputs, labels, memory, memory)
    np.testing.assert_allclose(result.deep.item(), float(data["loss"]), rtol=RTOL)
    np.testing.assert_allclose(result.total.item(), 2 * float(data["loss"]), rtol=RTOL)


def test_shallow_deep_update_moves_both_memories():
    deep_memory, shallow_memory = make_cluster_memories()
    reference_deep, reference_shallow = make_cluster_memories()
    deep, shallow = torch.randn(10, 8), torch.randn(10, 6)
    labels = torch.arange(10) % 5
    ShallowDeepContrast().update(deep, shallow, labels, deep_memory, shallow_memory)
    reference_deep.update(deep, labels)
    reference_shallow.update(shallow, labels)
    assert torch.equal(deep_memory.centroids, reference_deep.centroids)
    assert torch.equal(shallow_memory.centroids, reference_shallow.centroids)
    assert not torch.equal(deep_memory.centroids, make_cluster_memories()[0].centroids)


def test_shallow_deep_errors():
    deep_memory, shallow_memory = make_cluster_memories()
    sdc = ShallowDeepContrast()
    labels = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="3 rows but shallow_features has 2"):
        sdc(torch.randn(3, 8), torch.randn(2, 6), labels, deep_memory, shallow_memory)
    with pytest.raises(ValueError, match="width 6.*8-d"):
        sdc(torch.randn(3, 6), torch.randn(3, 6), labels, deep_memory, shallow_memory)
    with pytest.raises(ValueError, match=r"\[-1\]"):
        outlier = torch.tensor([0, -1, 2])
        sdc(torch.randn(3, 8), torch.randn(3, 6), outlier, deep_memory, shallow_memory)
    with pytest.raises(ValueError, match="5 clusters but shallow_memory has 4"):
        sdc(
            torch.randn(3, 8),
            torch.randn(3, 6),
            labels,
            deep_memory,
            ClusterMemory.from_centroids(torch.randn(4, 6)),
        )
    with pytest.raises(TypeError, match="ClusterMemory"):
        sdc(
            torch.randn(3, 8),
            torch.randn(3, 6),
            labels,
            deep_memory,
            InstanceMemory(num_samples=4, num_features=6),
        )


# --------------------------------------------------------------------------------------
# official weights and schedule
# --------------------------------------------------------------------------------------
def test_heterogeneous_schedule():
    assert [heterogeneous_direction(e) for e in range(10)] == [None] * 10
    assert heterogeneous_direction(10) is Direction.RGB_TO_IR
    assert heterogeneous_direction(11) is Direction.IR_TO_RGB
    assert heterogeneous_direction(48) == "rgb_to_ir"
    assert heterogeneous_direction(3, start_epoch=0) is Direction.IR_TO_RGB
    with pytest.raises(ValueError):
        heterogeneous_direction(-1)


def test_official_weights():
    stage1, stage2 = SDCLLossWeights.official(1), SDCLLossWeights.official(2)
    assert stage1 == SDCLLossWeights()
    assert (stage1.homogeneous, stage1.heterogeneous) == (1.0, 0.5)
    assert (stage2.homogeneous, stage2.heterogeneous) == (0.1, 0.1)
    assert (stage1.homogeneous_deep, stage1.homogeneous_shallow) == (1.0, 0.5)
    assert stage1.heterogeneous_weights(Direction.RGB_TO_IR) == (0.1, 0.05)
    assert stage1.heterogeneous_weights("ir_to_rgb") == (1.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage1.homogeneous = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="stage"):
        SDCLLossWeights.official(3)


@pytest.mark.parametrize("stage", [1, 2])
@pytest.mark.parametrize("direction", [Direction.RGB_TO_IR, Direction.IR_TO_RGB])
def test_combine_reproduces_official_total(stage, direction):
    # the official trainer's expression, with its per-term lambdas folded in
    def t(v):
        return torch.tensor(float(v))

    m = torch.ones(1, 1, dtype=torch.bool)
    loss_ir, loss_rgb, loss_ir_s, loss_rgb_s = t(1.1), t(1.3), t(1.7), t(1.9)
    ir_ir, ir_ir_s, rgb_rgb, rgb_rgb_s = t(2.0), t(3.0), t(5.0), t(7.0)
    het_d, het_s = t(11.0), t(13.0)
    lam_d, lam_s = 1.0, 0.5
    ir_ir_w, rgb_rgb_w = lam_d * ir_ir, lam_d * rgb_rgb
    ir_ir_s_w, rgb_rgb_s_w = lam_s * ir_ir_s, lam_s * rgb_rgb_s
    if direction is Direction.RGB_TO_IR:
        het_terms = 0.1 * lam_d * het_d + 0.1 * lam_s * het_s
    else:
        het_terms = lam_d * het_d + lam_s * het_s
    hom_scale, het_scale = (1.0, 0.5) if stage == 1 else (0.1, 0.1)
    official = (
        (loss_ir + loss_rgb + loss_rgb_s + loss_ir_s)
        + hom_scale * (ir_ir_w + rgb_rgb_w + ir_ir_s_w + rgb_rgb_s_w)
        + het_scale * het_terms
    )

    contrast = [
        ShallowDeepContrastResult(loss_ir + loss_ir_s, loss_ir, loss_ir_s),
        ShallowDeepContrastResult(loss_rgb + loss_rgb_s, loss_rgb, loss_rgb_s),
    ]
    homogeneous = [
        NeighborLossResult(ir_ir, ir_ir_s, m, m.sum(1)),
        NeighborLossResult(rgb_rgb, rgb_rgb_s, m, m.sum(1)),
    ]
    heterogeneous = NeighborLossResult(het_d, het_s, m, m.sum(1))
    total = SDCLLossWeights.official(stage).combine(contrast, homogeneous, heterogeneous, direction)
    torch.testing.assert_close(total, official)
    without = SDCLLossWeights.official(stage).combine(contrast, homogeneous)
    torch.testing.assert_close(without, official - het_scale * het_terms)
    with pytest.raises(ValueError, match="direction"):
        SDCLLossWeights().combine(contrast, homogeneous, heterogeneous)
    with pytest.raises(ValueError, match="at least one"):
        SDCLLossWeights().combine([], homogeneous)


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
def test_cnl_errors(banks):
    cnl = CNL()
    qd, qs = banks["src_deep"], banks["src_shallow"]
    td, ts = banks["tgt_deep"], banks["tgt_shallow"]
    deep, shallow = torch.randn(3, 64), torch.randn(3, 64)
    with pytest.raises(ValueError, match=r"\[0, 300\).*\[300\]"):
        cnl(deep, shallow, torch.tensor([0, 1, 300]), qd, qs)
    with pytest.raises(ValueError, match=r"\[-1\]"):
        cnl(deep, shallow, torch.tensor([0, -1, 2]), qd, qs, target_deep=td, target_shallow=ts)
    with pytest.raises(ValueError, match="length 2, expected 3"):
        cnl(deep, shallow, torch.tensor([0, 1]), qd, qs)
    with pytest.raises(ValueError, match="width 32.*64-d"):
        cnl(torch.randn(3, 32), shallow, torch.tensor([0, 1, 2]), qd, qs)
    bad = deep.clone()
    bad[2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        cnl(bad, shallow, torch.tensor([0, 1, 2]), qd, qs)
    with pytest.raises(ValueError, match="empty batch"):
        cnl(torch.randn(0, 64), torch.randn(0, 64), torch.tensor([], dtype=torch.int64), qd, qs)
    with pytest.raises(ValueError, match="3 rows but shallow_features has 2"):
        cnl(deep, torch.randn(2, 64), torch.tensor([0, 1, 2]), qd, qs)
    with pytest.raises(ValueError, match="both target_deep and target_shallow"):
        cnl(deep, shallow, torch.tensor([0, 1, 2]), qd, qs, target_deep=td)
    with pytest.raises(ValueError, match="query_deep has 300 rows but query_shallow has 200"):
        cnl(deep, shallow, torch.tensor([0, 1, 2]), qd, ts, target_deep=td, target_shallow=ts)
    with pytest.raises(ValueError, match="query_deep has width 64 but target_deep has width 16"):
        cnl(
            deep,
            shallow,
            torch.tensor([0, 1, 2]),
            qd,
            qs,
            target_deep=InstanceMemory(num_samples=200, num_features=16),
            target_shallow=ts,
        )
    with pytest.raises(TypeError, match="InstanceMemory"):
        cnl(
            deep,
            shallow,
            torch.tensor([0, 1, 2]),
            ClusterMemory(num_clusters=300, num_features=64),
            qs,
        )
    with pytest.raises(ValueError, match="temp"):
        CNL(temp=0.0)


def test_updating_a_memory_before_backward_is_refused_by_autograd():
    # documented order: backward first, then update (see docs/losses.md)
    bank = InstanceMemory.from_features(torch.randn(20, 8))
    bank_s = InstanceMemory.from_features(torch.randn(20, 8))
    deep = torch.randn(4, 8, requires_grad=True)
    result = CNL()(deep, torch.randn(4, 8), torch.tensor([1, 2, 3, 4]), bank, bank_s)
    bank.update(deep.detach(), torch.tensor([1, 2, 3, 4]))
    with pytest.raises(RuntimeError, match="inplace"):
        result.deep.backward()


# --------------------------------------------------------------------------------------
# deprecated forms (removed in the next version)
# --------------------------------------------------------------------------------------
def test_result_type_aliases_are_the_renamed_classes():
    assert ShallowDeepLoss is ShallowDeepContrastResult
    assert NeighborLoss is NeighborLossResult
    import sdcl_toolkit

    assert sdcl_toolkit.ShallowDeepLoss is ShallowDeepContrastResult
    assert sdcl_toolkit.NeighborLoss is NeighborLossResult


def test_positional_cnl_targets_still_work_and_warn(cnl_fixture, banks):
    deep, shallow = online(cnl_fixture)
    memories = (banks["src_deep"], banks["src_shallow"])
    idx = cnl_fixture["indices"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = CNL()(
            deep,
            shallow,
            idx,
            *memories,
            target_deep=banks["tgt_deep"],
            target_shallow=banks["tgt_shallow"],
        )
        homogeneous = CNL()(deep, shallow, idx, *memories)  # no targets: no warning
    assert homogeneous.mask.shape[1] == banks["src_deep"].num_samples
    with pytest.warns(DeprecationWarning, match="target_deep=.*target_shallow=") as record:
        old = CNL()(deep, shallow, idx, *memories, banks["tgt_deep"], banks["tgt_shallow"])
    assert record[0].filename == __file__  # attributed to the caller, not to torch
    torch.testing.assert_close(old.deep, expected.deep)
    torch.testing.assert_close(old.shallow, expected.shallow)
    assert torch.equal(old.mask, expected.mask)
    with pytest.raises(ValueError, match="both target_deep and target_shallow"):
        with pytest.warns(DeprecationWarning):
            CNL()(deep, shallow, idx, *memories, banks["tgt_deep"])
    with pytest.raises(TypeError, match="multiple values"):
        CNL()(deep, shallow, idx, *memories, banks["tgt_deep"], target_deep=banks["tgt_deep"])
    with pytest.raises(TypeError, match=r"forward\(\) takes at most 7 positional"):
        CNL()(deep, shallow, idx, *memories, banks["tgt_deep"], banks["tgt_shallow"], None)


def test_positional_neighbor_mask_targets_still_work_and_warn(banks):
    idx = torch.arange(5)
    memories = (banks["src_deep"], banks["src_shallow"])
    targets = {"target_deep": banks["tgt_deep"], "target_shallow": banks["tgt_shallow"]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = CNL().neighbor_mask(idx, *memories, **targets)
    with pytest.warns(DeprecationWarning, match="target_deep=.*target_shallow=") as record:
        old = CNL().neighbor_mask(idx, *memories, banks["tgt_deep"], banks["tgt_shallow"])
    assert record[0].filename == __file__
    assert all(torch.equal(a, b) for a, b in zip(old, expected))
    with pytest.raises(TypeError, match=r"neighbor_mask\(\) takes at most 5 positional"):
        CNL().neighbor_mask(idx, *memories, banks["tgt_deep"], banks["tgt_shallow"], None)
    with pytest.raises(TypeError, match="multiple values"):
        CNL().neighbor_mask(idx, *memories, banks["tgt_deep"], target_deep=banks["tgt_deep"])


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_extreme_feature_scales_give_the_unit_scale_losses(scale):
    # float32 squares overflow above ~1e19 and underflow below ~1e-19: F.normalize made such
    # rows zero vectors (uniform softmax) before; the losses are scale-invariant.
    g = torch.Generator().manual_seed(5)
    qd = exact_memory(F.normalize(torch.randn(20, 8, generator=g), dim=1))
    qs = exact_memory(F.normalize(torch.randn(20, 5, generator=g), dim=1))
    deep, shallow = torch.randn(6, 8, generator=g), torch.randn(6, 5, generator=g)
    indices = torch.randint(0, 20, (6,), generator=g)
    base = CNL()(deep, shallow, indices, qd, qs)
    scaled = CNL()(deep * scale, shallow * scale, indices, qd, qs)
    torch.testing.assert_close(scaled.deep, base.deep, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scaled.shallow, base.shallow, rtol=1e-5, atol=1e-5)
    memory = ClusterMemory.from_centroids(torch.randn(4, 8, generator=g))
    labels = torch.randint(0, 4, (6,), generator=g)
    contrast = ShallowDeepContrast()
    torch.testing.assert_close(
        contrast(deep * scale, deep * scale, labels, memory, memory).total,
        contrast(deep, deep, labels, memory, memory).total,
        rtol=1e-5,
        atol=1e-5,
    )
