"""The dataset check: counts that agree with the readers, the official-count comparison,
unreadable images, and the cheap start-of-training check (no decoding, one error)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from sdcl_toolkit.data import dataset_check
from sdcl_toolkit.data.dataset_check import OFFICIAL_COUNTS, check_dataset, quick_check
from sdcl_toolkit.data.regdb import RegDB
from sdcl_toolkit.data.sysu_mm01 import SYSUMM01, DatasetLayoutError


def test_sysu_counts_agree_with_the_reader(synthetic_sysu_root):
    report = check_dataset(synthetic_sysu_root, "sysu", compare_official=False)
    sysu = SYSUMM01(synthetic_sysu_root)
    train = sysu.train()
    assert report.ok and report.decoded == len(list(synthetic_sysu_root.rglob("*.jpg")))
    assert report.counts["train identities"] == len(sysu.train_ids + sysu.val_ids)
    assert report.counts["train rgb images"] == sum(r.modality == "rgb" for r in train)
    assert report.counts["train ir images"] == sum(r.modality == "ir" for r in train)
    assert report.counts["query ir images"] == len(sysu.query())
    assert sum(report.cameras["train ir"].values()) == report.counts["train ir images"]
    assert set(report.cameras["train ir"]) <= {3, 6}
    assert report.split_files == ["exp/test_id.txt", "exp/train_id.txt", "exp/val_id.txt"]


def test_official_counts_are_compared(synthetic_sysu_root, monkeypatch):
    report = check_dataset(synthetic_sysu_root, "sysu", decode=False)
    assert not report.ok and len(report.mismatches) == len(OFFICIAL_COUNTS["sysu"])
    found = report.counts["train identities"]
    assert f"train identities: found {found}, official 395" in report.mismatches
    # a tree with exactly the official numbers passes
    matching = {name: report.counts[name] for name in OFFICIAL_COUNTS["sysu"]}
    monkeypatch.setitem(dataset_check.OFFICIAL_COUNTS, "sysu", matching)
    assert check_dataset(synthetic_sysu_root, "sysu", decode=False).ok


def test_official_values_are_the_published_sizes():
    sysu, regdb = OFFICIAL_COUNTS["sysu"], OFFICIAL_COUNTS["regdb"]
    assert (sysu["train identities"], sysu["train rgb images"], sysu["train ir images"]) == (
        395,
        22258,
        11909,
    )
    assert (sysu["test identities"], sysu["query ir images"]) == (96, 3803)
    assert regdb["identities"] * 10 == regdb["rgb images"] == regdb["ir images"]
    assert regdb["train identities per trial"] + regdb["test identities per trial"] == 412


def test_regdb_counts_per_trial(synthetic_regdb_root):
    report = check_dataset(synthetic_regdb_root, "regdb", compare_official=False)
    regdb = RegDB(synthetic_regdb_root, trial=1)
    assert report.ok and report.counts["trials found"] == 3
    assert report.counts["identities"] == 8 and report.counts["rgb images"] == 24
    assert report.counts["train rgb images per trial"] == len(regdb.train("rgb"))
    assert report.counts["test identities per trial"] == len({r.pid for r in regdb.test("ir")})


def test_unreadable_images_are_listed(synthetic_sysu_root, tmp_path):
    root = tmp_path / "SYSU-MM01"
    shutil.copytree(synthetic_sysu_root, root)
    broken = sorted((root / "cam2").rglob("*.jpg"))[0]
    broken.write_bytes(b"not a jpeg")
    report = check_dataset(root, "sysu", compare_official=False)
    assert not report.ok and len(report.unreadable) == 1 and broken.name in report.unreadable[0]
    assert "1 unreadable" in report.format() and report.format().endswith("NOT OK")
    # the cheap check does not decode: the same tree passes it
    assert quick_check(root, "sysu").decoded == 0


def test_quick_check_raises_one_error_listing_every_problem(synthetic_sysu_root, tmp_path):
    root = tmp_path / "SYSU-MM01"
    shutil.copytree(synthetic_sysu_root, root)
    (root / "exp" / "val_id.txt").unlink()
    shutil.rmtree(root / "cam6")
    with pytest.raises(DatasetLayoutError) as error:
        quick_check(root, "sysu")
    assert "missing folder cam6/" in str(error.value)
    assert "missing file exp/val_id.txt" in str(error.value)
    report = check_dataset(root, "sysu")  # the full check reports instead of raising
    assert not report.ok and len(report.problems) == 2 and not report.mismatches


def test_bad_dataset_name():
    with pytest.raises(ValueError, match="dataset must be one of"):
        quick_check(".", "market")


def test_importing_the_check_loads_no_plotting_library():
    code = (
        "import sys, sdcl_toolkit.data.dataset_check; "
        "assert 'matplotlib' not in sys.modules and 'sdcl_toolkit.tools' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
