"""The per-epoch pseudo-labelling pipeline (SPEC section 3)."""

import json

import numpy as np
import pytest
import torch

from sdcl_toolkit import (
    CRA,
    PseudoLabeler,
    PseudoLabels,
    SDCLRecipe,
    cluster_centroids,
    dbscan_pseudo_labels,
    jaccard_distance,
)
from sdcl_toolkit.data.clustered_features import make_two_modality_features


@pytest.fixture(scope="module")
def feats():
    f = make_two_modality_features(30, 12, 8, dim=32, modality_gap=0.4, noise=0.5, seed=3)
    return f.deep_rgb.numpy(), f.shallow_rgb.numpy(), f.deep_ir.numpy(), f.shallow_ir.numpy()


def own_labels(deep, shallow, k1, eps=0.6):
    z = np.concatenate([deep, shallow], 1)
    return dbscan_pseudo_labels(jaccard_distance(z, k1, 6), eps, 4)


@pytest.mark.slow
def test_stage1_equals_composing_the_parts(feats):
    d_rgb, s_rgb, d_ir, s_ir = feats
    result = PseudoLabeler()(d_rgb, s_rgb, d_ir, s_ir, stage=1)
    assert isinstance(result, PseudoLabels) and result.stage == 1 and not result.shared
    rgb = own_labels(d_rgb, s_rgb, 30)
    ir = own_labels(d_ir, s_ir, 30)
    np.testing.assert_array_equal(result.rgb.labels, rgb)
    np.testing.assert_array_equal(result.ir.labels, ir)
    np.testing.assert_array_equal(result.rgb.kept, rgb != -1)
    assert result.rgb.num_clusters == rgb.max() + 1 == result.rgb.num_classes
    assert result.ir.num_outliers == (ir == -1).sum()
    np.testing.assert_allclose(
        result.deep_centroids["rgb"], cluster_centroids(d_rgb, rgb), atol=1e-6
    )
    np.testing.assert_allclose(
        result.shallow_centroids["ir"], cluster_centroids(s_ir, ir), atol=1e-6
    )
    assert result.cra is None and np.isnan(result.associated_fraction)


@pytest.mark.slow
def test_stage2_uses_cra_and_shared_centroids(feats):
    d_rgb, s_rgb, d_ir, s_ir = feats
    result = PseudoLabeler()(d_rgb, s_rgb, d_ir, s_ir, stage=2)
    ir = own_labels(d_ir, s_ir, 30)
    rgb_own = own_labels(d_rgb, s_rgb, 15)  # official stage-2 RGB k1
    cra = CRA(20, 5)(d_rgb, s_rgb, d_ir, s_ir, ir)
    np.testing.assert_array_equal(result.ir.labels, ir)
    np.testing.assert_array_equal(result.rgb.cluster_labels, rgb_own)
    np.testing.assert_array_equal(result.rgb.labels, cra)
    np.testing.assert_array_equal(result.rgb.kept, (cra != -1) & (rgb_own != -1))
    num_ir = ir.max() + 1
    assert result.rgb.num_classes == result.ir.num_classes == num_ir
    shared = cluster_centroids(np.concatenate([d_rgb, d_ir]), np.concatenate([cra, ir]), num_ir)
    np.testing.assert_allclose(result.deep_centroids["rgb"], shared, atol=1e-6)
    assert result.deep_centroids["rgb"] is result.deep_centroids["ir"]
    assert result.shallow_centroids["rgb"] is result.shallow_centroids["ir"]
    assert result.shared
    assert 0 < result.associated_fraction <= 1
    summary = result.summary()
    json.dumps(summary)
    assert {"rgb_clusters", "ir_outliers", "associated_fraction", "seconds"} <= set(summary)
    assert {"jaccard_rgb", "dbscan_ir", "cra", "centroids"} <= set(summary["seconds"])


@pytest.mark.slow
def test_torch_inputs_give_torch_outputs(feats):
    tensors = [torch.from_numpy(a) for a in feats]
    result = PseudoLabeler()(*tensors, stage=2)
    assert isinstance(result.rgb.labels, torch.Tensor)
    assert isinstance(result.deep_centroids["ir"], torch.Tensor)
    assert isinstance(result.cra.labels, torch.Tensor)
    numpy_result = PseudoLabeler()(*feats, stage=2)
    np.testing.assert_array_equal(result.rgb.labels.numpy(), numpy_result.rgb.labels)


def _settings(labeler):
    return (
        labeler.eps,
        labeler.min_samples,
        labeler.k1,
        labeler.k2,
        labeler.stage2_rgb_k1,
        labeler.cra.topk,
        labeler.cra.smooth_k,
    )


def test_for_dataset_uses_official_values():
    # official SYSU-MM01: eps 0.6, min_samples 4, k1 30, k2 6, RGB k1 15 in stage 2, CRA 20/5
    assert _settings(PseudoLabeler.for_dataset("sysu")) == (0.6, 4, 30, 6, 15, 20, 5)
    assert _settings(PseudoLabeler.for_dataset("SYSU-MM01")) == (0.6, 4, 30, 6, 15, 20, 5)
    assert _settings(PseudoLabeler()) == (0.6, 4, 30, 6, 15, 20, 5)
    # official RegDB: eps 0.3, RGB k1 stays 30 in stage 2, CRA depth 10
    assert _settings(PseudoLabeler.for_dataset("regdb")) == (0.3, 4, 30, 6, 30, 10, 5)
    regdb = PseudoLabeler.for_dataset("regdb", k1=20)
    assert regdb.eps == 0.3 and regdb.k1 == 20 and regdb.stage2_rgb_k1 == 30
    assert regdb.cra.topk == 10
    assert _settings(PseudoLabeler.from_recipe(SDCLRecipe.sysu_4gpu())) == (
        0.6,
        4,
        30,
        6,
        15,
        20,
        5,
    )
    with pytest.raises(ValueError, match="unknown dataset"):
        PseudoLabeler.for_dataset("market")


def test_bad_inputs(feats):
    d_rgb, s_rgb, d_ir, s_ir = feats
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        PseudoLabeler()(d_rgb, s_rgb, d_ir, s_ir, stage=3)
    with pytest.raises(ValueError, match="deep_rgb has 360 samples but shallow_rgb has 359"):
        PseudoLabeler()(d_rgb, s_rgb[:-1], d_ir, s_ir)
    with pytest.raises(ValueError, match="shallow_rgb has width 32 but shallow_ir has width 16"):
        PseudoLabeler()(d_rgb, s_rgb, d_ir, s_ir[:, :16])
    noise = np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="DBSCAN found no cluster"):
        PseudoLabeler(eps=0.05)(noise, noise, d_ir, s_ir)


# --------------------------------------------------------------------------------------
# test features (engine.features): extract_test_features and the deprecated normalized=True
# --------------------------------------------------------------------------------------
def _tiny_images(tmp_path):
    from PIL import Image

    from sdcl_toolkit.data.records import ImageRecord

    rng = np.random.default_rng(0)
    records = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 8, 3), dtype=np.uint8)).save(path)
        records.append(ImageRecord(str(path), i, 1, "rgb"))
    return records


def _branches(images, modality):
    # a stand-in backbone with 3-d deep and shallow features (not flip-invariant)
    return images.mean(dim=(2, 3)) + images[..., 0].mean(-1)[:, :3], images.amax(dim=(2, 3))


def test_extract_test_features_is_normalized_concatenation(tmp_path):
    import warnings

    from sdcl_toolkit.data.transforms import test_transform
    from sdcl_toolkit.engine.features import extract_features, extract_test_features

    records, model = _tiny_images(tmp_path), torch.nn.Identity()
    kwargs = dict(device=torch.device("cpu"), num_workers=0, forward=_branches, batch_size=2)
    transform = test_transform(16, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = extract_test_features(model, records, "rgb", transform, **kwargs)
        deep, shallow = extract_features(model, records, "rgb", transform, **kwargs)
    assert test.shape == (5, 6)
    torch.testing.assert_close(test, torch.nn.functional.normalize(torch.cat([deep, shallow], 1)))
    with pytest.warns(DeprecationWarning, match="extract_test_features") as record:
        old, empty = extract_features(model, records, "rgb", transform, normalized=True, **kwargs)
    assert record[0].filename == __file__
    assert torch.equal(old, test) and empty.numel() == 0


# --------------------------------------------------------------------------------------
# the association by name, bidirectional, label-quality diagnostics
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_stage2_with_another_association_by_name(feats):
    from sdcl_toolkit.association import BidirectionalAssociation, HungarianAssociation

    d_rgb, s_rgb, d_ir, s_ir = feats
    ir = own_labels(d_ir, s_ir, 30)
    rgb_own = own_labels(d_rgb, s_rgb, 15)
    result = PseudoLabeler(association="hungarian", bidirectional=True)(*feats, stage=2)
    expected = BidirectionalAssociation(HungarianAssociation())(
        d_rgb, s_rgb, d_ir, s_ir, ir, rgb_own
    )
    np.testing.assert_array_equal(result.rgb.labels, expected)
    np.testing.assert_array_equal(result.association.labels, expected)
    assert result.method == "hungarian+bidirectional"
    assert result.summary()["association"] == "hungarian+bidirectional"
    assert "association" in result.seconds
    np.testing.assert_array_equal(result.rgb.kept, (expected != -1) & (rgb_own != -1))


@pytest.mark.slow
def test_quality_against_true_identities(feats):
    f = make_two_modality_features(30, 12, 8, dim=32, modality_gap=0.4, noise=0.5, seed=3)
    result = PseudoLabeler(association="centroid")(*feats, stage=2)
    report = result.quality(f.ids_rgb, f.ids_ir)
    json.dumps(report)
    assert set(report) == {"rgb", "ir", "association"}
    assert report["rgb"]["identities"] == 30 and report["association"]["coverage"] == 1.0
    assert 0 <= report["association"]["accuracy"] <= 1
    stage1 = PseudoLabeler()(*feats, stage=1).quality(f.ids_rgb.numpy(), f.ids_ir.numpy())
    assert set(stage1) == {"rgb", "ir"} and 0 < stage1["ir"]["purity"] <= 1


def test_association_settings():
    from sdcl_toolkit.association import (
        BidirectionalAssociation,
        NearestCentroidAssociation,
        OptimalTransportAssociation,
    )

    assert PseudoLabeler().association.name == "cra"
    assert isinstance(PseudoLabeler(association="ot").association, OptimalTransportAssociation)
    assert PseudoLabeler(association="ot").cra is None
    regdb = PseudoLabeler.for_dataset("regdb", bidirectional=True)
    assert isinstance(regdb.association, BidirectionalAssociation)
    assert regdb.cra.topk == 10  # the recipe's CRA inside the wrapper
    custom = NearestCentroidAssociation()
    assert PseudoLabeler.for_dataset("sysu", association=custom).association is custom
    with pytest.raises(ValueError, match="association must be one of"):
        PseudoLabeler(association="pgm")
    with pytest.raises(ValueError, match="either cra= or association="):
        PseudoLabeler(cra=CRA(), association="ot")
    with pytest.raises(TypeError, match="bidirectional must be True or False"):
        PseudoLabeler(bidirectional="yes")
    with pytest.raises(TypeError, match="association must be a method name"):
        PseudoLabeler(association=3)


def test_training_flags_choose_the_association():
    from sdcl_toolkit.engine.config import TrainConfig, build_parser

    args = build_parser(TrainConfig.demo()).parse_args(["--association", "ot", "--bidirectional"])
    assert (args.association, args.bidirectional) == ("ot", True)
    assert (TrainConfig.demo().association, TrainConfig.demo().bidirectional) == ("cra", False)
    with pytest.raises(ValueError, match="association must be 'cra', 'centroid'"):
        TrainConfig.demo(association="pgm").validate()
