"""The leaf state-dict module: explicit prefix-token count, single normalisation."""

from __future__ import annotations

import pytest
import torch

from sdcl_toolkit.models import CheckpointError, ShallowDeepViT, resize_pos_embed
from sdcl_toolkit.models.shallow_deep import checkpoint_filter_fn


def test_resize_with_explicit_prefix_token_count():
    pos = torch.randn(1, 2 + 4 * 2, 3)
    out = resize_pos_embed(pos, (2, 2), (4, 2), num_prefix_tokens=2)
    torch.testing.assert_close(out, resize_pos_embed(pos, (2, 2), (4, 2)))
    with pytest.raises(CheckpointError):
        resize_pos_embed(pos, (2, 2), (4, 2), num_prefix_tokens=1)
    with pytest.raises(ValueError):
        resize_pos_embed(pos, (2, 2), (4, 2), num_prefix_tokens=0)


def test_filter_fn_picks_full_model_or_backbone():
    model = ShallowDeepViT("tiny")
    full = {"base.cls_token": torch.zeros(1), "bottleneck.weight": torch.zeros(1)}
    plan = checkpoint_filter_fn(full, model)
    assert plan.target is model and set(plan.state_dict) == {"vit.cls_token", "deep_neck.weight"}
    assert plan.after_load is None
    backbone = {"cls_token": torch.zeros(1)}
    plan = checkpoint_filter_fn(backbone, model)
    assert plan.target is model.vit and plan.state_dict == backbone
    assert plan.after_load is not None
