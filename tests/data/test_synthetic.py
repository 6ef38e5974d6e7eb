"""Tests of the generated dataset: layout, determinism, modality gap, default size, cache, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcl_toolkit.data import synthetic
from sdcl_toolkit.data.regdb import RegDB
from sdcl_toolkit.data.synthetic import (
    GENERATOR_VERSION,
    SyntheticRegDBSpec,
    SyntheticSpec,
    ensure_synthetic_regdb,
    ensure_synthetic_sysu,
    main,
    write_synthetic_regdb,
    write_synthetic_sysu,
)
from sdcl_toolkit.data.sysu_mm01 import SYSUMM01
from sdcl_toolkit.metrics import evaluate_rank, query_gallery_distance

TINY = dict(identities=5, images_per_camera=2, height=32, width=16)


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ------------------------------------------------------------------ SYSU layout
def test_sysu_layout(synthetic_sysu_root):
    root = synthetic_sysu_root
    assert sorted(p.name for p in root.iterdir()) == [
        "cam1",
        "cam2",
        "cam3",
        "cam4",
        "cam5",
        "cam6",
        "exp",
    ]
    split_ids = {}
    for split in ("train", "val", "test"):
        lines = (root / "exp" / f"{split}_id.txt").read_text().splitlines()
        assert len(lines) == 1
        split_ids[split] = [int(x) for x in lines[0].split(",")]
    all_ids = sum(split_ids.values(), [])
    assert sorted(all_ids) == list(range(1, 15))  # disjoint and complete
    for pid in all_ids:
        cams = {c for c in range(1, 7) if (root / f"cam{c}" / f"{pid:04d}").is_dir()}
        assert cams & {1, 2, 4, 5} and cams & {3, 6}  # both modalities for everyone
    folders = [p for p in root.glob("cam*/*") if p.is_dir()]
    assert len(folders) < 14 * 6  # camera_presence=0.7 leaves some out
    for folder in folders:
        assert len(folder.name) == 4 and folder.name.isdigit()
        assert sorted(f.name for f in folder.iterdir()) == ["0001.jpg", "0002.jpg", "0003.jpg"]
    image = Image.open(next(root.glob("cam1/*/0001.jpg")))
    assert image.mode == "RGB" and image.size == (16, 32)


def test_modality_gap(synthetic_sysu_root):
    rgb = np.stack([load(p) for p in synthetic_sysu_root.glob("cam[1245]/*/*.jpg")]).astype(float)
    ir = np.stack([load(p) for p in synthetic_sysu_root.glob("cam[36]/*/*.jpg")]).astype(float)
    # infrared: one channel replicated (JPEG keeps R = G = B up to rounding)
    assert np.abs(ir[..., 0] - ir[..., 1]).max() <= 2 and np.abs(ir[..., 0] - ir[..., 2]).max() <= 2
    # visible: real colour
    assert np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 10


@pytest.mark.slow
def test_identity_is_visible_within_and_across_modalities(tmp_path):
    """Raw pixels already carry some identity information (the task is learnable) but are
    far from solving cross-modality matching (the task is not trivial)."""
    root = write_synthetic_sysu(
        tmp_path / "s",
        identities=40,
        images_per_camera=2,
        height=32,
        width=16,
        seed=5,
        test_fraction=0.5,
    )
    sysu = SYSUMM01(root)

    def pixels(records):
        x = np.stack([load(r.path).mean(axis=2).ravel() for r in records])
        x = x - x.mean(axis=1, keepdims=True)
        return x / x.std(axis=1, keepdims=True)

    query = sysu.query()
    results = []
    for trial in range(3):
        gallery = sysu.gallery("all", trial)
        dist = query_gallery_distance(pixels(query), pixels(gallery))
        results.append(
            evaluate_rank(
                dist,
                [r.pid for r in query],
                [r.pid for r in gallery],
                [r.camid for r in query],
                [r.camid for r in gallery],
            )
        )
    rank1 = np.mean([r.rank1 for r in results])
    chance = 1 / len(sysu.test_ids)
    assert 1.5 * chance < rank1 < 0.5


# ------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = write_synthetic_sysu(tmp_path / "a", seed=3, **TINY)
    b = write_synthetic_sysu(tmp_path / "b", seed=3, **TINY)
    c = write_synthetic_sysu(tmp_path / "c", seed=4, **TINY)
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)


def test_images_of_one_identity_differ(synthetic_sysu_root):
    folder = next(p for p in synthetic_sysu_root.glob("cam1/*") if p.is_dir())
    first, second = (load(p).astype(int) for p in sorted(folder.iterdir())[:2])
    assert np.abs(first - second).mean() > 3  # per-image nuisance


# ------------------------------------------------------------------ default size
@pytest.mark.slow
def test_default_size_writes_most_images(tmp_path):
    # (its wall-clock time is a benchmark's business, not a unit test's)
    root = write_synthetic_sysu(tmp_path / "big", identities=100, images_per_camera=4)
    count = sum(1 for _ in root.glob("cam*/*/*.jpg"))
    assert count > 100 * 6 * 4 * 0.7


# ------------------------------------------------------------------ RegDB
def test_regdb_layout(synthetic_regdb_root):
    root = synthetic_regdb_root
    idx = sorted(p.name for p in (root / "idx").iterdir())
    assert idx == sorted(
        f"{split}_{modality}_{trial}.txt"
        for split in ("train", "test")
        for modality in ("visible", "thermal")
        for trial in (1, 2, 3)
    )
    visible = sorted(p.relative_to(root / "Visible") for p in (root / "Visible").rglob("*.bmp"))
    thermal = sorted(p.relative_to(root / "Thermal") for p in (root / "Thermal").rglob("*.bmp"))
    assert len(visible) == len(thermal) == 8 * 3
    assert [str(p).replace("_v_", "_t_") for p in visible] == [str(p) for p in thermal]
    for trial in (1, 2, 3):
        regdb = RegDB(root, trial)
        for part in (regdb.train(), regdb.test("rgb") + regdb.test("ir")):
            labels = sorted({r.pid for r in part})
            assert labels == list(range(4))
    # pairs share the pose: the person's silhouette is in the same place
    v = load(root / "Visible" / visible[0]).astype(float).mean(axis=2)
    t = load(root / "Thermal" / thermal[0]).astype(float).mean(axis=2)
    other = load(root / "Thermal" / thermal[-1]).astype(float).mean(axis=2)

    def edges(image):
        return np.abs(np.diff(image, axis=1)).ravel()

    same_frame = abs(np.corrcoef(edges(v), edges(t))[0, 1])
    other_frame = abs(np.corrcoef(edges(v), edges(other))[0, 1])
    assert same_frame > other_frame


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(identities=1), "identities"),
        (dict(images_per_camera=0), "images_per_camera"),
        (dict(height=8), "height"),
        (dict(camera_presence=1.5), "camera_presence"),
        (dict(val_fraction=0.5, test_fraction=0.5), "val_fraction"),
        (dict(ir_material_weight=-0.1), "ir_material_weight"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_synthetic_sysu(tmp_path / "x", **{**TINY, **kwargs})
    assert not (tmp_path / "x").exists()


def test_refuses_non_empty_root_unless_overwrite(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty.*pass overwrite=True"):
        write_synthetic_sysu(root, **TINY)
    assert (root / "keep.txt").exists()
    write_synthetic_sysu(root, overwrite=True, **TINY)
    assert not (root / "keep.txt").exists() and (root / "exp" / "test_id.txt").exists()
    with pytest.raises(ValueError, match="trials"):
        write_synthetic_regdb(tmp_path / "r", trials=0)


# ------------------------------------------------------------------ cache
def test_ensure_generates_once_and_repairs(tmp_path, monkeypatch):
    first = ensure_synthetic_sysu(tmp_path, **TINY)
    assert (first / "exp" / "train_id.txt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging leftovers
    digest = tree_digest(first)

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a complete tree")

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "write_synthetic_sysu", fail)
        assert synthetic.ensure_synthetic_sysu(tmp_path, **TINY) == first

    # an interrupted/incomplete tree (no marker) is rebuilt
    (first / ".sdcl_synthetic.json").unlink()
    shutil.rmtree(first / "cam1")
    assert ensure_synthetic_sysu(tmp_path, **TINY) == first
    assert tree_digest(first) == digest

    other = ensure_synthetic_sysu(tmp_path, seed=9, **TINY)
    assert other != first and len(list(tmp_path.iterdir())) == 2


def test_ensure_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SDCL_TOOLKIT_CACHE", str(tmp_path / "cache"))
    root = ensure_synthetic_regdb(
        identities=4, images_per_modality=2, height=32, width=16, trials=2
    )
    assert root.parent == tmp_path / "cache" / "synthetic"
    RegDB(root, trial=2)


# ------------------------------------------------------------------ CLI
def test_cli_main(tmp_path, capsys):
    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--identities",
                "4",
                "--images-per-camera",
                "1",
                "--height",
                "32",
                "--width",
                "16",
                "--regdb",
                "--regdb-identities",
                "4",
                "--regdb-images",
                "2",
            ]
        )
        == 0
    )
    SYSUMM01(tmp_path / "SYSU-MM01")
    RegDB(tmp_path / "RegDB", trial=10)
    assert "SYSU-MM01" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # non-empty output without --overwrite: argparse error
        main(["--out", str(tmp_path), "--identities", "4"])
    err = capsys.readouterr().err
    assert "not empty" in err and "pass --overwrite" in err and "overwrite=True" not in err


def test_cli_refuses_before_writing_anything(tmp_path, capsys):
    (tmp_path / "RegDB").mkdir()
    (tmp_path / "RegDB" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--identities", "3", "--regdb"])
    assert "RegDB is not empty" in capsys.readouterr().err
    assert not (tmp_path / "SYSU-MM01").exists()


def test_cli_has_one_flag_per_spec_field_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(SyntheticSpec):
        assert f"--{f.name.replace('_', '-')} " in text
    for name in ("identities", "images-per-modality", "trials"):
        assert f"--regdb-{name} " in text
    assert "--regdb-images " in text  # the older name still works
    assert "number of people (default: 100)" in text
    assert "RegDB: number of people (default: 40)" in text


def test_cli_passes_every_setting_to_the_specs(tmp_path, monkeypatch):
    seen = {}

    def record(name):
        def writer(root, *, spec, overwrite):
            seen[name] = spec
            return Path(root)

        return writer

    monkeypatch.setattr(synthetic, "write_synthetic_sysu", record("sysu"))
    monkeypatch.setattr(synthetic, "write_synthetic_regdb", record("regdb"))
    argv = ["--out", str(tmp_path), "--regdb", "--val-fraction", "0.2", "--seed", "7"]
    argv += ["--height", "48", "--regdb-identities", "6", "--regdb-images", "3"]
    assert main(argv + ["--regdb-trials", "2", "--nuisance", "0.5"]) == 0
    assert seen["sysu"] == SyntheticSpec(val_fraction=0.2, seed=7, height=48, nuisance=0.5)
    assert seen["regdb"] == SyntheticRegDBSpec(
        identities=6, images_per_modality=3, trials=2, seed=7, height=48, nuisance=0.5
    )


# ------------------------------------------------------------------ specification
def test_spec_and_keywords_are_the_same_tree(tmp_path):
    spec = SyntheticSpec(seed=2, **TINY)
    by_spec = write_synthetic_sysu(tmp_path / "a", spec=spec)
    by_keywords = write_synthetic_sysu(tmp_path / "b", seed=2, **TINY)
    overridden = write_synthetic_sysu(tmp_path / "c", spec=SyntheticSpec(seed=9, **TINY), seed=2)
    assert tree_digest(by_spec) == tree_digest(by_keywords) == tree_digest(overridden)


def test_spec_is_checked_and_normalised():
    spec = SyntheticSpec(identities=np.int64(3), nuisance=1)
    assert type(spec.identities) is int and type(spec.nuisance) is float
    with pytest.raises(ValueError, match="trials"):
        SyntheticRegDBSpec(trials=0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticSpec(seed=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['identites'\\]"):
        write_synthetic_sysu("unused", identites=3)
    with pytest.raises(TypeError, match="SyntheticRegDBSpec"):
        ensure_synthetic_regdb(spec=SyntheticSpec())


def _changed(spec, name):
    """``spec`` with field ``name`` set to another valid value."""
    value = getattr(spec, name)
    other = value + 1 if isinstance(value, int) else round(value / 2, 3)
    return dataclasses.replace(spec, **{name: other})


@pytest.mark.parametrize(
    "spec_type, kind", [(SyntheticSpec, "sysu"), (SyntheticRegDBSpec, "regdb")]
)
def test_cache_key_covers_every_field(spec_type, kind):
    spec = spec_type()
    key = synthetic._cache_key(kind, spec)
    assert key == dict(dataclasses.asdict(spec), kind=kind, version=GENERATOR_VERSION)
    names = {synthetic._cache_name(key)}
    for f in dataclasses.fields(spec_type):
        names.add(synthetic._cache_name(synthetic._cache_key(kind, _changed(spec, f.name))))
    assert len(names) == 1 + len(dataclasses.fields(spec_type))  # a changed spec, a new tree


def test_cache_names_of_existing_trees_are_kept():
    # the key is the same JSON as before the specification existed, so caches stay valid
    old_key = dict(
        identities=100,
        images_per_camera=4,
        height=64,
        width=32,
        seed=0,
        camera_presence=0.85,
        val_fraction=0.1,
        test_fraction=0.3,
        ir_material_weight=0.3,
        nuisance=1.0,
        kind="sysu",
        version=GENERATOR_VERSION,
    )
    digest = hashlib.sha1(json.dumps(old_key, sort_keys=True).encode()).hexdigest()[:10]
    assert synthetic._cache_name(synthetic._cache_key("sysu", SyntheticSpec())) == f"sysu-{digest}"


def test_ensure_never_reuses_a_tree_of_another_spec(tmp_path):
    first = ensure_synthetic_sysu(tmp_path, **TINY)
    marker = json.loads((first / ".sdcl_synthetic.json").read_text())
    assert marker == synthetic._cache_key("sysu", SyntheticSpec(**TINY))
    # a tree under the right name whose recorded spec differs (e.g. a hash collision) is rebuilt
    marker["seed"] = 5
    (first / ".sdcl_synthetic.json").write_text(json.dumps(marker))
    assert ensure_synthetic_sysu(tmp_path, spec=SyntheticSpec(**TINY)) == first
    assert json.loads((first / ".sdcl_synthetic.json").read_text())["seed"] == 0


def test_cli_module_entry_point(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sdcl_toolkit.data.synthetic",
            "--out",
            str(tmp_path),
            "--identities",
            "3",
            "--images-per-camera",
            "1",
            "--height",
            "32",
            "--width",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "SYSU-MM01" / "exp" / "test_id.txt").is_file()
