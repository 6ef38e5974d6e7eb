"""sdcl-extract: features of a folder or a split, equal to the model's own test features."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from sdcl_toolkit.data import load_image
from sdcl_toolkit.data.transforms import test_transform
from sdcl_toolkit.tools.extract import main
from sdcl_toolkit.tools.loading import load_model

FAST = ["--workers", "0", "--no-progress", "--device", "cpu"]


def test_folder_features_equal_the_models_extract(trained_run, sysu_root, tmp_path, capsys):
    run, _ = trained_run
    folder = sysu_root / "cam3"  # infrared images, nested in identity folders
    out = tmp_path / "feats" / "ir.npy"
    argv = [str(run / "last.pth"), "--images", str(folder), "--modality", "ir"]
    assert main(argv + ["--out", str(out)] + FAST) == 0
    assert "wrote" in capsys.readouterr().out
    features = np.load(out)
    with (out.with_suffix(".csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    assert [r["path"] for r in rows] == paths
    assert {r["pid"] for r in rows} == {"-1"} and {r["modality"] for r in rows} == {"ir"}
    assert features.dtype == np.float32 and features.shape == (len(paths), 256)
    model = load_model(run / "last.pth").model
    transform = test_transform(*model.img_size)
    images = torch.stack([transform(load_image(p)) for p in paths[:5]])
    expected = model.extract(images, "ir")
    np.testing.assert_allclose(features[:5], expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_split_query_lists_identities_and_cameras(trained_run, sysu_root, tmp_path):
    run, _ = trained_run
    out = tmp_path / "query.npy"
    argv = [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
    assert main(argv + ["--split", "query", "--out", str(out)] + FAST) == 0
    with out.with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == np.load(out).shape[0] > 0
    assert {int(r["camid"]) for r in rows} <= {3, 6} and all(int(r["pid"]) > 0 for r in rows)


def test_llcm_and_regdb_splits(trained_run, llcm_root, regdb_root, tmp_path):
    run, _ = trained_run
    ckpt = str(run / "last.pth")
    for dataset, root, split in (("llcm", llcm_root, "gallery"), ("regdb", regdb_root, "test-ir")):
        out = tmp_path / f"{dataset}.npy"
        argv = [ckpt, "--dataset", dataset, "--data-dir", str(root), "--split", split]
        assert main(argv + ["--out", str(out)] + FAST) == 0
        assert np.load(out).shape[0] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--images", "x", "--out", "f.npy"], "--images needs --modality"),
        (["--dataset", "sysu", "--out", "f.npy"], "--dataset needs --data-dir"),
        (["--images", "x", "--modality", "ir", "--out", "f.txt"], "must end in .npy"),
        (["--out", "f.npy"], "one of the arguments --images --dataset is required"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ckpt.pth"] + argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_empty_folder_and_wrong_split_exit_2(trained_run, sysu_root, tmp_path, capsys):
    run, _ = trained_run
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [str(run / "last.pth"), "--images", str(empty), "--modality", "rgb"]
    assert main(argv + ["--out", str(tmp_path / "f.npy")] + FAST) == 2
    assert "no image files" in capsys.readouterr().err
    argv = [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
    assert main(argv + ["--split", "test-ir", "--out", str(tmp_path / "f.npy")] + FAST) == 2
    assert "SYSU-MM01 splits are" in capsys.readouterr().err
