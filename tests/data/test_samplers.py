"""Tests of the identity-balanced PK sampler and the fixed-iteration batch sampler."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit.data.records import ImageRecord
from sdcl_toolkit.data.samplers import IdentityBalancedSampler, IterationBatchSampler

# identity 0: 5 images on cameras 1,1,2,2,3   identity 1: 3 images, all camera 1
# identity 2: a single image                   identity 3: 6 images on six cameras
# two outliers (-1)
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, -1, -1])
CAMIDS = np.array([1, 1, 2, 2, 3, 1, 1, 1, 4, 1, 2, 3, 4, 5, 6, 1, 2])
K = 4


def _groups(indices, labels):
    """Split a pass into identity groups (each identity appears once per pass)."""
    groups, current = [], []
    for index in indices.tolist():
        if current and labels[index] != labels[current[0]]:
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    return groups


def _official_pass(labels, camids, num_instances, rnd, nprng, use_cameras=True):
    """Straightforward re-implementation of the official RandomMultipleGallerySampler(NoCam)."""
    pid_index, pid_cam = defaultdict(list), defaultdict(list)
    for index, (pid, cam) in enumerate(zip(labels.tolist(), camids.tolist())):
        if pid < 0:
            continue
        pid_index[pid].append(index)
        pid_cam[pid].append(cam)
    pids = list(pid_index)
    out = []
    for k in nprng.permutation(len(pids)):
        members, cams = pid_index[pids[k]], pid_cam[pids[k]]
        anchor = rnd.choice(members)
        out.append(anchor)
        anchor_cam = camids[anchor]
        others = [p for p, c in enumerate(cams) if c != anchor_cam] if use_cameras else []
        if not others:
            others = [p for p, m in enumerate(members) if m != anchor]
            if not others:
                continue
        replace = len(others) < num_instances
        picks = nprng.choice(others, size=num_instances - 1, replace=replace)
        out.extend(members[p] for p in picks)
    return np.array(out)


# ----------------------------------------------------------------------------- structure


def test_every_identity_once_per_pass_and_outliers_never():
    sampler = IdentityBalancedSampler(LABELS, CAMIDS, K, seed=0)
    assert sampler.num_identities == 4
    for pass_index in range(20):
        indices = sampler.indices(pass_index)
        groups = _groups(indices, LABELS)
        assert sorted(LABELS[g[0]] for g in groups) == [0, 1, 2, 3]
        assert all(len(set(LABELS[g])) == 1 for g in groups)
        assert sorted(len(g) for g in groups) == [1, K, K, K]  # the single image: anchor only
        assert np.all(LABELS[indices] >= 0)
    assert len(sampler) == 3 * K + 1
    assert list(iter(sampler)) == sampler.indices(0).tolist()


def test_other_cameras_are_preferred_and_anchor_excluded_otherwise():
    sampler = IdentityBalancedSampler(LABELS, CAMIDS, K, seed=1)
    seen_duplicates = False
    for pass_index in range(200):
        for group in _groups(sampler.indices(pass_index), LABELS):
            anchor, picks = group[0], group[1:]
            label = LABELS[anchor]
            if label in (0, 3):  # other cameras exist: picks only from them
                assert all(CAMIDS[p] != CAMIDS[anchor] for p in picks)
            if label == 1:  # one camera only: any image but the anchor, with replacement
                assert anchor not in picks
                seen_duplicates |= len(set(picks)) < len(picks)
            if label == 3:  # 5 other-camera candidates >= K: without replacement
                assert len(set(picks)) == len(picks)
    assert seen_duplicates


def test_official_replacement_threshold():
    # Identity 0 with a camera-1 anchor has exactly K - 1 = 3 other-camera candidates; the
    # official rule draws with replacement unless there are at least K candidates.
    sampler = IdentityBalancedSampler(LABELS, CAMIDS, K, seed=2)
    duplicates = 0
    for pass_index in range(300):
        for group in _groups(sampler.indices(pass_index), LABELS):
            if LABELS[group[0]] == 0 and CAMIDS[group[0]] == 1:
                duplicates += len(set(group[1:])) < K - 1
    assert duplicates > 0


def test_no_camera_variant_draws_any_other_image():
    sampler = IdentityBalancedSampler(LABELS, None, K, seed=3)
    assert not sampler.use_cameras
    same_camera_picks = 0
    for pass_index in range(100):
        for group in _groups(sampler.indices(pass_index), LABELS):
            assert group[0] not in group[1:] or LABELS[group[0]] != 3
            same_camera_picks += sum(CAMIDS[p] == CAMIDS[group[0]] for p in group[1:])
    assert same_camera_picks > 0


@pytest.mark.parametrize("use_cameras", [True, False])
def test_draw_distribution_matches_the_official_sampler(use_cameras):
    passes = 3000
    ours = IdentityBalancedSampler(LABELS, CAMIDS if use_cameras else None, K, seed=5)
    rnd, nprng = random.Random(5), np.random.RandomState(5)
    ours_counts, official_counts = Counter(), Counter()
    ours_pairs, official_pairs = Counter(), Counter()
    # (anchor, number of distinct picks): tells sampling with and without replacement apart
    ours_distinct, official_distinct = Counter(), Counter()
    for pass_index in range(passes):
        mine = ours.indices(pass_index)
        theirs = _official_pass(LABELS, CAMIDS, K, rnd, nprng, use_cameras)
        ours_counts.update(mine.tolist())
        official_counts.update(theirs.tolist())
        for group in _groups(mine, LABELS):
            ours_pairs.update((group[0], p) for p in group[1:])
            ours_distinct[group[0], len(set(group[1:]))] += 1
        for group in _groups(theirs, LABELS):
            official_pairs.update((group[0], p) for p in group[1:])
            official_distinct[group[0], len(set(group[1:]))] += 1
    assert sum(ours_counts.values()) == sum(official_counts.values())
    for table_ours, table_official in (
        (ours_counts, official_counts),
        (ours_pairs, official_pairs),
        (ours_distinct, official_distinct),
    ):
        assert set(table_ours) == set(table_official)
        for key in table_official:
            a, b = table_ours[key], table_official[key]
            # two counts of the same expected value: difference within 5 standard deviations
            assert abs(a - b) <= 5 * np.sqrt(a + b) + 1, key


# ----------------------------------------------------------------------------- determinism


def test_deterministic_under_seed_epoch_and_pass():
    a = IdentityBalancedSampler(LABELS, CAMIDS, K, seed=7)
    b = IdentityBalancedSampler(torch.from_numpy(LABELS), list(CAMIDS), K, seed=7)
    assert np.array_equal(a.indices(0), b.indices(0))
    passes = {tuple(a.indices(p)) for p in range(10)}
    assert len(passes) > 5
    first = a.indices(0)
    a.set_epoch(1)
    assert not np.array_equal(a.indices(0), first) or not np.array_equal(a.indices(1), b.indices(1))
    b.set_epoch(1)
    assert np.array_equal(a.indices(3), b.indices(3))
    c = IdentityBalancedSampler(LABELS, CAMIDS, K, seed=8)
    assert {tuple(c.indices(p)) for p in range(10)} != passes


def test_order_of_identities_is_a_uniform_permutation():
    labels = np.repeat(np.arange(4), 2)
    sampler = IdentityBalancedSampler(labels, None, 2, seed=0)
    firsts = Counter()
    for pass_index in range(2000):
        firsts[int(labels[sampler.indices(pass_index)[0]])] += 1
    assert all(abs(count - 500) < 5 * np.sqrt(2000 * 0.25 * 0.75) for count in firsts.values())


# ----------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_shards_are_disjoint_equal_and_identity_balanced(replicas):
    rng = np.random.default_rng(replicas)
    labels = rng.integers(-1, 23, 400)
    camids = rng.integers(1, 7, 400)
    assert min(Counter(labels[labels >= 0].tolist()).values()) > 1
    full = IdentityBalancedSampler(labels, camids, 8, seed=4)
    shards = [
        IdentityBalancedSampler(labels, camids, 8, seed=4, num_replicas=replicas, rank=r)
        for r in range(replicas)
    ]
    for pass_index in range(3):
        parts = [s.indices(pass_index) for s in shards]
        assert len({p.size for p in parts}) == 1
        # no single-image identities here: every rank gets floor(K / R) whole groups
        assert parts[0].size == 8 * (full.num_identities // replicas)
        for r in range(replicas):
            for other in range(r + 1, replicas):
                assert not set(parts[r].tolist()) & set(parts[other].tolist())
            groups = _groups(parts[r], labels)
            assert all(len(g) == 8 and len(set(labels[g])) == 1 for g in groups)
        # every share is cut from the same pass: its groups appear in the unsharded pass
        full_groups = {tuple(g) for g in _groups(full.indices(pass_index), labels)}
        for part in parts:
            assert {tuple(g) for g in _groups(part, labels)} <= full_groups
    if replicas == 1:
        assert np.array_equal(shards[0].indices(0), full.indices(0))


def test_sharding_errors():
    with pytest.raises(ValueError, match="rank"):
        IdentityBalancedSampler(LABELS, CAMIDS, K, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="cannot be shared"):
        IdentityBalancedSampler(LABELS, CAMIDS, K, num_replicas=5, rank=0)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(data=st.data(), num_instances=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_pass_invariants(data, num_instances, seed):
    n = data.draw(st.integers(1, 60))
    labels = np.array(data.draw(st.lists(st.integers(-1, 8), min_size=n, max_size=n)))
    camids = np.array(data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    if not np.any(labels >= 0):
        with pytest.raises(ValueError, match="no labelled images"):
            IdentityBalancedSampler(labels, camids, num_instances, seed=seed)
        return
    sampler = IdentityBalancedSampler(labels, camids, num_instances, seed=seed)
    indices = sampler.indices(0)
    sizes = Counter(labels[labels >= 0].tolist())
    expected_length = sum(1 if size == 1 else num_instances for size in sizes.values())
    assert indices.size == expected_length == len(sampler)
    groups = _groups(indices, labels)
    assert sorted(labels[g[0]] for g in groups) == sorted(sizes)
    for group in groups:
        anchor, picks = group[0], group[1:]
        members = np.flatnonzero(labels == labels[anchor])
        assert set(group) <= set(members.tolist())
        other_cams = members[camids[members] != camids[anchor]]
        if other_cams.size:
            assert set(picks) <= set(other_cams.tolist())
        elif picks:
            assert anchor not in picks


# ----------------------------------------------------------------------------- construction


def test_from_records_uses_pseudo_labels_and_cameras():
    records = [ImageRecord(f"{i}.jpg", 100 + i, int(c), "ir") for i, c in enumerate(CAMIDS)]
    sampler = IdentityBalancedSampler.from_records(records, LABELS, K, seed=3)
    direct = IdentityBalancedSampler(LABELS, CAMIDS, K, seed=3)
    assert np.array_equal(sampler.indices(2), direct.indices(2))
    by_pid = IdentityBalancedSampler.from_records(records, None, 2, use_cameras=False)
    assert by_pid.num_identities == len(records) and not by_pid.use_cameras


def test_bad_inputs():
    with pytest.raises(ValueError, match="camids has"):
        IdentityBalancedSampler(LABELS, CAMIDS[:-1])
    with pytest.raises(ValueError, match="num_instances"):
        IdentityBalancedSampler(LABELS, CAMIDS, 0)
    with pytest.raises(ValueError, match="non-integral"):
        IdentityBalancedSampler(LABELS + 0.5, CAMIDS)
    with pytest.raises(ValueError, match="1-D"):
        IdentityBalancedSampler(LABELS.reshape(1, -1), None)
    with pytest.raises(ValueError, match="no labelled"):
        IdentityBalancedSampler(-np.ones(4, dtype=int), None)
    with pytest.raises(ValueError, match="epoch"):
        IdentityBalancedSampler(LABELS, CAMIDS).set_epoch(-1)


# ----------------------------------------------------------------------------- batches


def test_iteration_batch_sampler_re_iterates_and_drops_each_pass_tail():
    labels = np.repeat(np.arange(5), 4)  # 5 identities x 4 images -> passes of 20 indices
    sampler = IdentityBalancedSampler(labels, None, 4, seed=0)
    batches = IterationBatchSampler(sampler, batch_size=8, num_iterations=7)
    assert len(batches) == 7
    out = list(batches)
    assert len(out) == 7 and all(len(b) == 8 for b in out)
    expected = []
    for pass_index in range(4):  # 2 full batches per pass of 20; 4 of the pass dropped
        stream = sampler.indices(pass_index)
        expected += [stream[:8].tolist(), stream[8:16].tolist()]
    assert out == expected[:7]
    assert list(batches) == out  # deterministic
    batches.set_epoch(1)
    assert sampler.epoch == 1 and batches.epoch == 1
    assert list(batches) != out
    for batch in out:  # each batch holds two complete identities
        assert sorted(Counter(labels[batch].tolist()).values()) == [4, 4]


def test_iteration_batch_sampler_with_a_plain_sampler():
    batches = IterationBatchSampler(torch.utils.data.SequentialSampler(range(5)), 2, 5)
    assert list(batches) == [[0, 1], [2, 3], [0, 1], [2, 3], [0, 1]]


def test_iteration_batch_sampler_joins_passes_shorter_than_a_batch():
    sampler = IdentityBalancedSampler(np.repeat(np.arange(2), 3), None, 3)  # 6 per pass
    batches = list(IterationBatchSampler(sampler, batch_size=7, num_iterations=3))
    passes = [list(sampler.indices(k)) for k in range(6)]
    assert batches == [
        (passes[0] + passes[1])[:7],
        (passes[2] + passes[3])[:7],
        (passes[4] + passes[5])[:7],
    ]


def test_iteration_batch_sampler_errors():
    sampler = IdentityBalancedSampler(np.repeat(np.arange(2), 3), None, 3)
    with pytest.raises(ValueError, match="no index"):
        IterationBatchSampler(torch.utils.data.SequentialSampler(range(0)), 2, 1)
    with pytest.raises(ValueError, match="num_iterations"):
        IterationBatchSampler(sampler, batch_size=2, num_iterations=0)
