"""LLCM: the reader on a generated miniature of the raw layout, the authors' gallery draw,
both directions, the "llcm" ranking protocol and the (unofficial) SDCL preset."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdcl_toolkit import SDCLRecipe, evaluate_rank
from sdcl_toolkit.data.llcm import (
    LLCM,
    LLCM_INFRARED_CAMERAS,
    LLCM_VISIBLE_CAMERAS,
    llcm_recipe,
)
from sdcl_toolkit.data.synthetic import write_synthetic_llcm
from sdcl_toolkit.data.sysu_mm01 import DatasetLayoutError


@pytest.fixture(scope="module")
def llcm_root(tmp_path_factory) -> Path:
    return write_synthetic_llcm(
        tmp_path_factory.mktemp("llcm") / "LLCM", identities=10, images_per_camera=2, seed=7
    )


def _authors_gallery(root: Path, folder: str, cameras, trial: int) -> list[str]:
    """The draw of the authors' ``process_gallery_llcm`` (global ``random.seed(trial)``,
    sorted ids, cameras in order, ``random.choice`` over the sorted folder listing)."""
    ids = (root / "idx" / "test_id.txt").read_text().splitlines()[0].split(",")
    ids = [f"{int(i):04d}" for i in ids]
    random.seed(trial)
    files = []
    for pid in sorted(ids):
        for cam in cameras:
            directory = os.path.join(str(root), folder, f"cam{cam}", pid)
            if os.path.isdir(directory):
                names = sorted(directory + "/" + name for name in os.listdir(directory))
                files.append(random.choice(names))
    return files


@pytest.mark.parametrize("trial", [0, 1, 9])
def test_gallery_draw_is_the_authors(llcm_root, trial):
    llcm = LLCM(llcm_root)
    for modality, folder, cams in (
        ("rgb", "test_vis", LLCM_VISIBLE_CAMERAS),
        ("ir", "test_nir", LLCM_INFRARED_CAMERAS),
    ):
        got = [r.path for r in llcm.sample(modality, trial)]
        assert got == _authors_gallery(llcm.root, folder, cams, trial)


def test_directions_and_records(llcm_root):
    llcm = LLCM(llcm_root)
    ir, rgb = llcm.test("ir"), llcm.test("rgb")
    assert llcm.query("ir_to_rgb") == ir and llcm.gallery("ir_to_rgb", 3) == llcm.sample("rgb", 3)
    assert llcm.query("rgb_to_ir", 2) == llcm.sample("ir", 2) and llcm.gallery("rgb_to_ir") == rgb
    assert llcm.query("thermal_to_visible") == ir  # the toolkit's direction aliases
    assert {r.camid for r in ir} <= set(LLCM_INFRARED_CAMERAS)
    assert all(f"/cam{r.camid}/{r.pid:04d}/" in r.path for r in ir + rgb)
    assert {r.pid for r in ir} == {r.pid for r in rgb} == set(llcm.test_ids)
    train = llcm.train()
    assert {r.modality for r in train} == {"rgb", "ir"}
    labels = sorted({r.pid for r in train})
    assert labels == list(range(len(labels)))  # relabelled 0..n-1 in the lists
    assert all(Path(r.path).is_file() and f"cam{r.camid}/" in r.path for r in train)


def test_layout_errors_are_listed_once(llcm_root, tmp_path):
    import shutil

    root = tmp_path / "LLCM"
    shutil.copytree(llcm_root, root)
    (root / "idx" / "test_id.txt").unlink()
    with open(root / "idx" / "train_nir.txt", "a") as handle:
        handle.write("train_nir/cam1/9999/missing.jpg 0\nbroken line\n")
    with pytest.raises(DatasetLayoutError) as error:
        LLCM(root)
    message = str(error.value)
    assert "missing file idx/test_id.txt" in message
    assert "malformed line" in message and "Expected LLCM layout" in message
    with pytest.raises(ValueError, match="direction must be one of"):
        LLCM(llcm_root).query("sideways")


def test_sdcl_preset_is_marked_unofficial():
    recipe = llcm_recipe()
    assert recipe.name == "llcm-unofficial" and recipe.dataset == "llcm"
    assert recipe.values() == SDCLRecipe.sysu().values()


def _authors_eval_llcm(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20):
    """A direct loop transcription of the LLCM authors' ``eval_llcm`` rules (remove same
    identity and camera; CMC over distinct identities; AP and INP over the kept list)."""
    cmcs, aps, inps = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        ranked = g_pids[order][keep]
        matches = (ranked == q_pids[q]).astype(int)
        if not matches.any():
            continue
        _, first = np.unique(ranked, return_index=True)
        distinct = ranked[np.sort(first)]
        cmc = np.zeros(max_rank)
        hit = np.flatnonzero(distinct == q_pids[q])[0]
        cmc[hit:] = 1
        cmcs.append(cmc)
        hits = np.flatnonzero(matches)
        inps.append(len(hits) / (hits[-1] + 1))
        aps.append(np.mean((np.arange(len(hits)) + 1) / (hits + 1)))
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_llcm_protocol_matches_the_authors_rules(seed):
    rng = np.random.default_rng(seed)
    q, g = rng.integers(1, 6), rng.integers(3, 15)
    q_pids, g_pids = rng.integers(0, 4, q), rng.integers(0, 4, g)
    q_cams, g_cams = rng.integers(1, 4, q), rng.integers(1, 4, g)
    distmat = rng.random((q, g))
    valid = [((g_pids == q_pids[i]) & (g_cams != q_cams[i])).any() for i in range(q)]
    if not any(valid):
        with pytest.raises(ValueError):
            evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, protocol="llcm")
        return
    result = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, protocol="llcm")
    cmc, mAP, mINP = _authors_eval_llcm(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-9)
    assert result.mAP == pytest.approx(mAP) and result.mINP == pytest.approx(mINP)


def test_generated_tree_is_deterministic(llcm_root, tmp_path):
    again = write_synthetic_llcm(tmp_path / "LLCM", identities=10, images_per_camera=2, seed=7)
    files = sorted(p.relative_to(llcm_root) for p in llcm_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((llcm_root / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_generator_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="identities must be"):
        write_synthetic_llcm(tmp_path / "x", identities=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        write_synthetic_llcm(tmp_path / "x", trials=3)


def test_make_dataset_command_writes_llcm(tmp_path, capsys):
    from sdcl_toolkit.data.synthetic import main

    argv = ["--out", str(tmp_path), "--identities", "4", "--images-per-camera", "1"]
    assert main(argv + ["--height", "32", "--width", "16", "--llcm"]) == 0
    assert "LLCM layout:" in capsys.readouterr().out
    llcm = LLCM(tmp_path / "LLCM")
    assert llcm.test("ir") and llcm.train()
