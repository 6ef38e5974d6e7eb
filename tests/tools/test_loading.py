"""Checkpoint kinds the tools load: backbone-only state dicts, trusted pickles, and clear
errors for weights that do not fit."""

from __future__ import annotations

import pickle

import pytest
import torch

from sdcl_toolkit.models import ViT
from sdcl_toolkit.tools._cli import EXIT_FAILURE, ToolError
from sdcl_toolkit.tools.loading import OFFICIAL, TOOLKIT, load_model


def test_backbone_checkpoint_is_copied_into_both_branches(tmp_path):
    torch.manual_seed(0)
    backbone = ViT.from_config("tiny")
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in backbone.state_dict().items()}}, path)
    loaded = load_model(path, model="tiny")
    assert loaded.kind == OFFICIAL and "copied" in loaded.summary
    model = loaded.model
    assert not model.training
    last = str(len(model.vit.blocks) - 1)
    torch.testing.assert_close(
        model.b1[0].state_dict()["attn.qkv.weight"],
        backbone.state_dict()[f"blocks.{last}.attn.qkv.weight"],
    )
    torch.testing.assert_close(model.patch_embed2.proj.weight, backbone.patch_embed.proj.weight)


def test_trusted_pickle_loads_only_with_trust(trained_run, tmp_path):
    run, _ = trained_run
    state = torch.load(run / "last.pth", weights_only=False)
    state["extra"] = pickle.PickleError("not plain data")
    path = tmp_path / "with_object.pth"
    torch.save(state, path)
    with pytest.raises(ToolError, match="PickleError"):
        load_model(path)
    assert load_model(path, trust=True).kind == TOOLKIT


def test_weights_of_another_architecture_fail_with_advice(trained_run, tmp_path):
    run, _ = trained_run
    bare = tmp_path / "bare.pth"  # a bare tiny state dict, not a training checkpoint
    torch.save(torch.load(run / "last.pth", weights_only=False)["model"], bare)
    with pytest.raises(ToolError) as error:
        load_model(bare, model="vit_base")
    assert error.value.code == EXIT_FAILURE
    assert "--model" in str(error.value) and "--checkpoint-grid" in str(error.value)
