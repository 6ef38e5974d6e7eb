"""sdcl_toolkit._validation: one rule for scalar arguments, applied across the package.

Part 1 tests the checkers themselves; part 2 checks that public entry points of memories,
losses, objective, metrics, recipe, models and data follow the same rule: Python and numpy
integers accepted, floats and bools refused with a TypeError, and every message naming the
caller's argument.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest
import torch

from sdcl_toolkit import (
    CNL,
    ClusterMemory,
    InstanceMemory,
    SDCLRecipe,
    ShallowDeepContrast,
    evaluate_rank,
)
from sdcl_toolkit._validation import check_bool, check_choice, check_int, check_real
from sdcl_toolkit.data.samplers import IdentityBalancedSampler, IterationBatchSampler
from sdcl_toolkit.data.transforms import ChannelExchange, RandomCrop, Resize
from sdcl_toolkit.losses import SDCLLossWeights, heterogeneous_direction
from sdcl_toolkit.models import ViTConfig, resize_pos_embed

# --------------------------------------------------------------------------- the checkers


@pytest.mark.parametrize("value", [3, np.int8(3), np.int64(3), np.uint16(3)])
def test_check_int_accepts_python_and_numpy_integers(value):
    result = check_int(value, "n", minimum=1, maximum=3)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize(
    "value", [3.0, np.float32(3), True, np.bool_(True), "3", None, 3 + 0j, [3]]
)
def test_check_int_refuses_non_integers_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^n_things must be an integer"):
        check_int(value, "n_things")


def test_check_int_range():
    with pytest.raises(ValueError, match=r"^k must be >= 1, got 0"):
        check_int(0, "k", minimum=1)
    with pytest.raises(ValueError, match=r"^k must be <= 2, got 3"):
        check_int(np.int64(3), "k", maximum=2)


@pytest.mark.parametrize("value", [0.5, 1, np.float16(0.5), np.float64(0.5), np.int32(1)])
def test_check_real_accepts_numbers(value):
    result = check_real(value, "mu", minimum=0.0, maximum=1.0)
    assert type(result) is float and result == float(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, 1j])
def test_check_real_refuses_non_numbers(value):
    with pytest.raises(TypeError, match=r"^mu must be a real number"):
        check_real(value, "mu")


def test_check_real_nan_inf_and_bounds():
    with pytest.raises(ValueError, match=r"^mu must be a number, got NaN"):
        check_real(math.nan, "mu")
    with pytest.raises(ValueError, match=r"^mu must be finite"):
        check_real(np.float32("inf"), "mu")
    assert check_real(math.inf, "mu", allow_inf=True) == math.inf
    with pytest.raises(ValueError, match=r"^temp must be > 0"):
        check_real(0.0, "temp", minimum=0.0, min_inclusive=False)
    with pytest.raises(ValueError, match=r"^p must be < 1"):
        check_real(1.0, "p", maximum=1.0, max_inclusive=False)


def test_check_bool_and_choice():
    assert check_bool(np.bool_(True), "flag") is True
    for value in (1, 0.0, "yes", None):
        with pytest.raises(TypeError, match=r"^flag must be True or False"):
            check_bool(value, "flag")
    assert check_choice("mean", "mode", ("mean", "hard")) == "mean"
    with pytest.raises(ValueError, match=r"^mode must be one of 'mean', 'hard'"):
        check_choice("max", "mode", ("mean", "hard"))
    with pytest.raises(TypeError, match=r"^mode must be a string"):
        check_choice(1, "mode", ("mean", "hard"))


# --------------------------------------------------------------------------- the package

_DISTANCES = np.array([[0.1, 0.9], [0.8, 0.2]])
_PIDS = np.array([1, 2])
_CAMS = np.array([1, 2])


def _rank(value: Any) -> Any:
    return evaluate_rank(_DISTANCES, _PIDS, _PIDS, _CAMS, _CAMS, max_rank=value)


# (description, call with the integer argument set to `value`, argument name, a valid value)
INTEGER_ARGUMENTS: list[tuple[str, Callable[[Any], Any], str, int]] = [
    (
        "ClusterMemory num_clusters",
        lambda v: ClusterMemory(num_clusters=v, num_features=4),
        "num_clusters",
        8,
    ),
    (
        "ClusterMemory num_features",
        lambda v: ClusterMemory(num_clusters=8, num_features=v),
        "num_features",
        4,
    ),
    (
        "InstanceMemory num_samples",
        lambda v: InstanceMemory(num_samples=v, num_features=4),
        "num_samples",
        8,
    ),
    ("evaluate_rank max_rank", _rank, "max_rank", 2),
    ("heterogeneous_direction epoch", lambda v: heterogeneous_direction(v), "epoch", 12),
    ("SDCLLossWeights.official stage", lambda v: SDCLLossWeights.official(stage=v), "stage", 2),
    ("SDCLRecipe.stage epoch", lambda v: SDCLRecipe.sysu().stage(v), "epoch", 3),
    ("SDCLRecipe cra_topk", lambda v: SDCLRecipe.sysu().replace(cra_topk=v), "cra_topk", 20),
    ("ViTConfig depth", lambda v: ViTConfig(depth=v, embed_dim=64, num_heads=2), "depth", 2),
    (
        "resize_pos_embed num_prefix_tokens",
        lambda v: resize_pos_embed(torch.zeros(1, 1 + 4, 2), (2, 2), (2, 2), num_prefix_tokens=v),
        "num_prefix_tokens",
        1,
    ),
    (
        "IdentityBalancedSampler num_instances",
        lambda v: IdentityBalancedSampler(np.array([0, 0, 1, 1]), num_instances=v),
        "num_instances",
        2,
    ),
    (
        "IterationBatchSampler batch_size",
        lambda v: IterationBatchSampler(range(4), batch_size=v, num_iterations=1),  # type: ignore[arg-type]
        "batch_size",
        2,
    ),
    ("Resize size", lambda v: Resize(v), "size", 4),
    ("RandomCrop size", lambda v: RandomCrop(v), "size", 4),
    ("ChannelExchange gray", lambda v: ChannelExchange(gray=v), "gray", 2),
]
_IDS = [case[0] for case in INTEGER_ARGUMENTS]


@pytest.mark.parametrize("case", INTEGER_ARGUMENTS, ids=_IDS)
def test_numpy_integers_are_accepted_everywhere(case):
    _, call, _, valid = case
    call(valid)
    call(np.int64(valid))
    call(np.int32(valid))


@pytest.mark.parametrize("case", INTEGER_ARGUMENTS, ids=_IDS)
@pytest.mark.parametrize("kind", ["float", "bool"])
def test_floats_and_bools_are_refused_everywhere(case, kind):
    _, call, name, valid = case
    bad = float(valid) if kind == "float" else True
    with pytest.raises((TypeError, ValueError)) as caught:
        call(bad)
    assert name in str(caught.value)
    if not isinstance(caught.value, ValueError) or type(caught.value).__name__ != "RecipeError":
        assert isinstance(caught.value, TypeError)  # the recipe collects its problems


def test_legacy_positional_memory_sizes_follow_the_rule():
    # issue 13: ClusterMemory(8.0, 4.0) used to be accepted
    refused = pytest.raises(TypeError, match="num_clusters must be an integer")
    with pytest.warns(DeprecationWarning), refused:
        ClusterMemory(8.0, 4.0)
    with pytest.warns(DeprecationWarning):
        memory = ClusterMemory(np.int64(8), np.int64(4))
    assert (memory.num_features, memory.num_clusters) == (8, 4)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda v: ClusterMemory(num_clusters=2, num_features=2, temp=v), "temp"),
        (lambda v: ClusterMemory(num_clusters=2, num_features=2, momentum=v), "momentum"),
        (lambda v: InstanceMemory(num_samples=2, num_features=2, momentum=v), "momentum"),
        (lambda v: ShallowDeepContrast(lambda_shallow=v), "lambda_shallow"),
        (lambda v: CNL(threshold=v), "threshold"),
        (lambda v: CNL(temp=v), "temp"),
        (lambda v: SDCLLossWeights(homogeneous=v), "homogeneous"),
        (lambda v: ViTConfig(drop_path_rate=v), "drop_path_rate"),
    ],
)
@pytest.mark.parametrize(
    "bad, error",
    [(math.nan, ValueError), ("0.5", TypeError), (True, TypeError), (math.inf, ValueError)],
)
def test_real_arguments_refuse_nan_strings_and_bools(call, name, bad, error):
    with pytest.raises(error, match=name):
        call(bad)


def test_real_arguments_accept_numpy_floats():
    memory = ClusterMemory(num_clusters=2, num_features=2, temp=np.float32(0.5))
    assert memory.temp == 0.5 and type(memory.temp) is float
    assert CNL(threshold=np.float64(0.8)).threshold == 0.8
