"""Pseudo-label diagnostics: hand-computed cases, scikit-learn agreement, plotting."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit.label_quality import (
    adjusted_rand_index,
    association_quality,
    cluster_purity,
    clustering_quality,
    normalized_mutual_info,
    plot_label_quality,
    pseudo_label_quality,
    read_label_quality,
)


def test_hand_computed_clustering_quality():
    labels = np.array([0, 0, 0, 1, 1, -1, 5, 5])
    ids = np.array([7, 7, 8, 8, 8, 9, 9, 9])
    # clustered: cluster 0 = {7, 7, 8}, 1 = {8, 8}, 5 = {9, 9}: purity (2 + 2 + 2) / 7
    q = clustering_quality(labels, ids)
    assert q["purity"] == pytest.approx(6 / 7)
    assert q["clusters"] == 3 and q["identities"] == 3
    assert q["outlier_fraction"] == pytest.approx(1 / 8)
    # pairs: tp = (4 + 1 + 4 + 4) - 7 = 6; identity sizes 2, 3, 2 -> fp = 17 - 13 = 4;
    # cluster sizes 3, 2, 2 -> fn = 17 - 13 = 4; tn = 49 - 4 - 4 - 13 = 28
    # ARI = 2 (6 * 28 - 16) / ((6 + 4)(4 + 28) + (6 + 4)(4 + 28)) = 304 / 640
    assert q["ari"] == pytest.approx(304 / 640)


def test_perfect_and_trivial_cases():
    ids = np.array([3, 3, 4, 4, 5])
    assert clustering_quality(np.array([1, 1, 0, 0, 2]), ids)["ari"] == 1.0
    assert clustering_quality(np.array([1, 1, 0, 0, 2]), ids)["nmi"] == pytest.approx(1.0)
    everything = clustering_quality(np.zeros(5, dtype=int), ids)
    assert everything["nmi"] == 0.0 and everything["purity"] == pytest.approx(2 / 5)
    none = clustering_quality(np.full(5, -1), ids)
    assert math.isnan(none["purity"]) and math.isnan(none["ari"]) and none["clusters"] == 0
    assert none["outlier_fraction"] == 1.0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 80),
    clusters=st.integers(1, 9),
    ids=st.integers(1, 9),
)
def test_ari_and_nmi_match_scikit_learn(seed, n, clusters, ids):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, clusters, n)
    truth = rng.integers(0, ids, n) * 10  # identities need not be contiguous
    kept = labels >= 0
    if not kept.any():
        assert math.isnan(adjusted_rand_index(labels, truth))
        return
    ari = sklearn_metrics.adjusted_rand_score(truth[kept], labels[kept])
    nmi = sklearn_metrics.normalized_mutual_info_score(truth[kept], labels[kept])
    assert adjusted_rand_index(labels, truth) == pytest.approx(ari, abs=1e-12)
    assert normalized_mutual_info(labels, truth) == pytest.approx(nmi, abs=1e-12)
    # purity against a direct count
    direct = sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels[kept]))
    assert cluster_purity(labels, truth) == pytest.approx(direct / kept.sum())


def test_association_accuracy_and_coverage():
    tgt_labels = np.array([0, 0, 0, 1, 1, 2, -1])
    tgt_ids = np.array([5, 5, 6, 6, 7, 7, 5])
    # majority: cluster 0 -> 5; cluster 1 -> tie {6, 7} -> 6; cluster 2 -> 7
    associated = np.array([0, 0, 1, 2, -1, 1])
    src_ids = np.array([5, 6, 6, 7, 5, 7])
    q = association_quality(associated, src_ids, tgt_labels, tgt_ids)
    # correct: 0/5 yes, 0/6 no, 1/6 yes, 2/7 yes, 1/7 no -> 3 of 5 associated
    assert q["accuracy"] == pytest.approx(3 / 5)
    assert q["coverage"] == pytest.approx(5 / 6)
    nothing = association_quality(np.full(6, -1), src_ids, tgt_labels, tgt_ids)
    assert math.isnan(nothing["accuracy"]) and nothing["coverage"] == 0.0


def test_torch_inputs_and_the_epoch_report():
    labels = torch.tensor([0, 0, 1, -1])
    ids = torch.tensor([1, 1, 2, 2])
    report = pseudo_label_quality(labels, ids, labels, ids, associated=labels)
    assert report["rgb"]["purity"] == 1.0 and report["association"]["accuracy"] == 1.0
    assert set(pseudo_label_quality(labels, ids, labels, ids)) == {"rgb", "ir"}
    json.dumps(report)


def test_bad_inputs():
    with pytest.raises(ValueError, match="labels has 3 entries but ids has 2"):
        cluster_purity(np.array([0, 1, 1]), np.array([0, 1]))
    with pytest.raises(TypeError, match="must hold integers"):
        cluster_purity(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="must be 1-D"):
        cluster_purity(np.zeros((2, 2), dtype=int), np.array([0, 1]))


def test_read_and_plot(tmp_path):
    log = tmp_path / "log.jsonl"
    events = [{"event": "pretrain", "loss": 1.0}]
    for epoch in range(3):
        quality = pseudo_label_quality(
            np.array([0, 0, 1, -1]),
            np.array([1, 1, 2, 2]),
            np.array([0, 1, 1, 1]),
            np.array([1, 2, 2, 2]),
            associated=np.array([0, 1, 1, -1]) if epoch else None,
        )
        events.append(
            {"event": "epoch", "epoch": epoch, "stage": 1 + (epoch > 0), "label_quality": quality}
        )
    log.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    records = read_label_quality(log)
    assert [r["epoch"] for r in records] == [0, 1, 2]
    pytest.importorskip("matplotlib")
    out = plot_label_quality(records, tmp_path / "quality.png")
    assert out.stat().st_size > 0
