"""sdcl-evaluate: the trainer's own numbers from its checkpoint, official checkpoints,
RegDB per-trial checkpoints, LLCM, re-ranking, JSON, pictures and clear errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sdcl_toolkit.engine import load_checkpoint
from sdcl_toolkit.tools.evaluate import main, parse_trials

FAST = ["--workers", "0", "--no-progress", "--device", "cpu"]


def _official(state: dict) -> dict:
    """The toolkit state dict as the official SDCL code saves it: DataParallel's
    ``module.`` prefix, ``base.`` / ``bottleneck(s).`` names, a numpy ``best_mAP``."""
    renames = (
        ("patch_embed2.", "base.patch_embed2."),
        ("vit.", "base."),
        ("deep_neck.", "bottleneck."),
        ("shallow_neck.", "bottlenecks."),
    )
    out = {}
    for key, value in state.items():
        for new, old in renames:
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        out["module." + key] = value
    return {"state_dict": out, "epoch": 2, "best_mAP": np.float64(0.25)}


def _means(results: dict) -> dict:
    return {k: v["mean"] for k, v in results.items()}


def _assert_close(got, expected, tol: float) -> None:
    """Equal structure, numbers within ``tol`` (dicts and lists compared item by item)."""
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for key in expected:
            _assert_close(got[key], expected[key], tol)
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            _assert_close(a, b, tol)
    else:
        assert got == pytest.approx(expected, abs=tol)


def test_toolkit_checkpoint_reproduces_the_trainers_final_evaluation(
    trained_run, sysu_root, tmp_path, capsys
):
    run, history = trained_run
    out = tmp_path / "results.json"
    code = main(
        [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
        + ["--trials", "2", "--json", str(out)]
        + FAST
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "toolkit training checkpoint after epoch 1" in printed
    assert "all-search" in printed and "indoor-search" in printed
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"all", "indoor"}
    for key, expected in history["final"].items():
        got = results[key]
        _assert_close(got["mean"], expected["mean"], 1e-9)
        assert [t["mAP"] for t in got["trials"]] == pytest.approx(
            [t["mAP"] for t in expected["trials"]], abs=1e-9
        )


def test_official_checkpoint_with_module_prefix_gives_the_same_numbers(
    trained_run, sysu_root, tmp_path, capsys
):
    run, _ = trained_run
    state = load_checkpoint(run / "last.pth")["model"]
    official = tmp_path / "model_best.pth.tar"
    torch.save(_official(state), official)
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    common = ["--dataset", "sysu", "--data-dir", str(sysu_root), "--trials", "2"] + FAST
    assert main([str(run / "last.pth"), "--json", str(ours)] + common) == 0
    assert main([str(official), "--model", "tiny", "--json", str(theirs)] + common) == 0
    assert "saved at epoch 2" in capsys.readouterr().out
    a = json.loads(ours.read_text())["results"]
    b = json.loads(theirs.read_text())["results"]
    _assert_close(_means(b), _means(a), 1e-6)


def test_rerank_and_json_to_stdout(trained_run, sysu_root, capsys):
    run, _ = trained_run
    argv = [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
    argv += ["--trials", "1", "--mode", "all", "--rerank", "--json", "-"] + FAST
    assert main(argv) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)  # the table went to stderr
    assert payload["rerank"] is True and "re-ranking" in captured.err
    mean = payload["results"]["all"]["mean"]
    assert 0 <= mean["mAP"] <= 1 and len(mean["cmc"]) == 20


def test_regdb_per_trial_checkpoints_and_mean(trained_run, regdb_root, tmp_path):
    run, _ = trained_run
    for trial in (1, 2):  # one model per trial, as the official RegDB script trains
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        (folder / "last.pth").write_bytes((run / "last.pth").read_bytes())
    out = tmp_path / "regdb.json"
    argv = [str(tmp_path / "trial{trial}" / "last.pth"), "--dataset", "regdb"]
    argv += ["--data-dir", str(regdb_root), "--regdb-trials", "1-2", "--json", str(out)] + FAST
    assert main(argv) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"visible_to_thermal", "thermal_to_visible"}
    for result in results.values():
        assert len(result["trials"]) == 2
        assert result["mean"]["mAP"] == pytest.approx(np.mean([t["mAP"] for t in result["trials"]]))


def test_llcm_both_directions(trained_run, llcm_root, tmp_path):
    run, _ = trained_run
    out = tmp_path / "llcm.json"
    argv = [str(run / "last.pth"), "--dataset", "llcm", "--data-dir", str(llcm_root)]
    argv += ["--trials", "3", "--json", str(out)] + FAST
    assert main(argv) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"ir_to_rgb", "rgb_to_ir"}
    assert all(len(r["trials"]) == 3 for r in results.values())


def _frame_colours(path) -> set:
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    colours = set()
    for name, rgb in {"green": (30, 170, 60), "red": (215, 40, 40), "blue": (40, 90, 220)}.items():
        if (pixels == rgb).all(axis=1).sum() > 100:
            colours.add(name)
    return colours


def test_visualize_writes_ranked_lists(trained_run, sysu_root, tmp_path, capsys):
    run, _ = trained_run
    pictures = tmp_path / "pictures"
    argv = [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
    argv += ["--trials", "1", "--visualize", "4", "--out-dir", str(pictures)] + FAST
    assert main(argv) == 0
    rankings = sorted(pictures.glob("ranking_all_*.png"))
    assert len(rankings) == 4
    for path in rankings:
        image = Image.open(path)
        assert image.width > 10 * 64 and image.height > 128  # query + 10 tiles of 64x128
        assert np.asarray(image.convert("L")).std() > 10  # not blank
        colours = _frame_colours(path)
        assert "blue" in colours and colours & {"green", "red"}  # query and ranked frames
    pytest.importorskip("matplotlib")
    cmc = Image.open(pictures / "cmc.png")
    assert cmc.size == (600, 400) and np.asarray(cmc.convert("L")).std() > 10


@pytest.mark.parametrize(
    "text, expected", [("1", [1]), ("1,3", [1, 3]), ("2-4", [2, 3, 4]), ("1-2,5", [1, 2, 5])]
)
def test_parse_trials(text, expected):
    assert parse_trials(text) == expected


def test_missing_checkpoint_and_missing_tree_exit_2(trained_run, sysu_root, tmp_path, capsys):
    run, _ = trained_run
    common = ["--dataset", "sysu", "--trials", "1"] + FAST
    assert main([str(tmp_path / "nope.pth"), "--data-dir", str(sysu_root)] + common) == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    assert main([str(run / "last.pth"), "--data-dir", str(tmp_path / "none")] + common) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unreadable_and_untrusted_checkpoints_exit_1(sysu_root, tmp_path, capsys):
    common = ["--dataset", "sysu", "--data-dir", str(sysu_root), "--trials", "1"] + FAST
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    assert main([str(text)] + common) == 1
    assert "not a readable torch checkpoint" in capsys.readouterr().err
    code = tmp_path / "code.pth"
    torch.save({"state_dict": {}, "hook": pickle.PickleError("x")}, code)
    assert main([str(code)] + common) == 1
    assert "--trust-checkpoint" in capsys.readouterr().err


def test_size_flags_that_contradict_the_run_exit_2(trained_run, sysu_root, capsys):
    run, _ = trained_run
    argv = [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
    assert main(argv + ["--height", "128"] + FAST) == 2
    assert "--height 128 differs from the run's 64" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--regdb-trials", "0"], "RegDB trials are numbered from 1"),
        (["--visualize", "-1"], "--visualize must be >= 0"),
        (["--dataset", "mars"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(extra, message, capsys):
    argv = ["x.pth", "--data-dir", "d", "--dataset", "sysu"] + extra
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_trial_placeholder_only_for_regdb(capsys):
    with pytest.raises(SystemExit):
        main(["run{trial}/last.pth", "--dataset", "sysu", "--data-dir", "d"])
    assert "{trial}" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message of a CPU-only machine")
def test_cuda_device_without_cuda_exits_2(trained_run, sysu_root, capsys):
    run, _ = trained_run
    argv = [str(run / "last.pth"), "--dataset", "sysu", "--data-dir", str(sysu_root)]
    assert main(argv + ["--device", "cuda", "--workers", "0"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
