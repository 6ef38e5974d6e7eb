"""Fuzzing of the public API (memories, losses, objective, metrics, models, recipe, modality).

Every test starts from a valid call and replaces ONE argument with a hostile value drawn by
``hypothesis``: other shapes and dtypes (float16/bfloat16/float64, integers, bools, complex),
NaN/inf, huge and tiny magnitudes, numpy integer and float scalars, bools where numbers are
expected, ``None``, strings, lists. The outcome must be either a correct result (checked
against invariants: finite losses, unit-norm memory rows, metrics in [0, 1]) or a
``TypeError``/``ValueError`` whose message names the replaced argument. Any other exception
(``RuntimeError``, ``IndexError``, ``KeyError`` from deep inside torch or numpy) fails.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdcl_toolkit import (
    CNL,
    ClusterMemory,
    InstanceMemory,
    SDCLLossWeights,
    SDCLMemories,
    SDCLObjective,
    SDCLRecipe,
    ShallowDeepContrast,
    ViT,
    evaluate_rank,
    heterogeneous_direction,
    load_pretrained,
    parse_modality,
    query_gallery_distance,
)
from sdcl_toolkit.models import ViTConfig, resize_pos_embed

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # a fixed example sequence: the suite is a regression test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# --------------------------------------------------------------------------- hostile values

_SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e30, -1e30, 1e-30, 5e-324]
scalar_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40).map(np.int64),
    st.integers(-3, 40).map(np.int32),
    st.integers(0, 40).map(np.uint8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_SPECIAL_FLOATS),
    st.floats(-2, 2).map(np.float32),
    st.floats(-2, 50).map(np.float64),
    st.booleans(),
    st.just(np.bool_(True)),
    st.none(),
    st.text(max_size=4),
    st.just(1 + 1j),
    st.lists(st.integers(0, 3), max_size=2),
)

# sizes that allocate: no legal size above 1e5 (a 1e9-row memory would be allocated for real)
size_values = scalar_values.filter(
    lambda v: not (isinstance(v, (int, np.integer)) and 10**5 < v <= 2**40)
)

_FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
_OTHER_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]


@st.composite
def tensors(draw, shape=None, dtypes=None, device="cpu", magnitude=True):
    """A tensor or numpy array of a drawn (or given) shape and dtype; values may hold NaN,
    inf, huge or tiny entries."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(dtypes or _FLOAT_DTYPES + _OTHER_DTYPES))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(shape, generator=g, dtype=torch.float64)
    if magnitude:
        value = value * draw(st.sampled_from([1.0, 1e-25, 1e25, 1e-40, 1e300]))
    if value.numel() and draw(st.booleans()):
        special = draw(st.sampled_from([math.nan, math.inf, -math.inf, 0.0]))
        value.view(-1)[draw(st.integers(0, value.numel() - 1))] = special
    if dtype.is_complex:
        value = value.to(dtype)
    elif dtype == torch.bool:
        value = value > 0
    elif not dtype.is_floating_point:
        value = torch.nan_to_num(value * 3, posinf=5, neginf=-5).clamp(-5, 100).to(dtype)
    else:
        value = value.to(dtype)
    if device == "cpu" and dtype != torch.bfloat16 and draw(st.booleans()):
        return value.numpy()
    return value.to(device)


def array_values(device="cpu"):
    return st.one_of(tensors(device=device), scalar_values)


@st.composite
def label_values(draw, length, upper, device="cpu"):
    """Labels: mostly the right length, any integer / float / bool dtype, values near
    ``[0, upper)`` or far outside it (``-1``, 1e19, NaN)."""
    n = draw(st.sampled_from([length, length, length, 0, length + 1]))
    kind = draw(st.sampled_from(["int", "float", "special", "bool", "2d", "other"]))
    values = draw(st.lists(st.integers(-1, upper), min_size=n, max_size=n))
    if kind == "int":
        dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8]))
        array = np.asarray(values, dtype=np.int64)
        array = (np.abs(array) if dtype == np.uint8 else array).astype(dtype)
    elif kind == "float":
        array = np.asarray(values, dtype=np.float64)
        if n and draw(st.booleans()):
            array[0] += 0.5
    elif kind == "special":
        array = np.asarray(values, dtype=np.float64)
        if n:
            array[0] = draw(st.sampled_from([math.nan, math.inf, 9.3e18, -1e19, 2.0**63]))
    elif kind == "bool":
        array = np.asarray(values, dtype=np.int64) > 0
    elif kind == "2d":
        array = np.asarray(values, dtype=np.int64).reshape(1, -1)
    else:
        return draw(scalar_values)
    if draw(st.booleans()):
        return torch.from_numpy(array).to(device)
    return array


# --------------------------------------------------------------------------- the outcome rule


def _names_argument(error: BaseException, name: str) -> bool:
    return name.split("[")[0] in str(error)


def check_outcome(call: Callable[[], Any], name: str, on_success: Callable[[Any], None]):
    """Run ``call``: a result passes ``on_success``; otherwise only a TypeError/ValueError
    naming ``name`` is allowed (or a MemoryError naming it, for sizes that do not fit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except (TypeError, ValueError, MemoryError) as error:
            assert _names_argument(error, name), (
                f"{type(error).__name__} does not name {name!r}: {error}"
            )
            return
    on_success(result)


def _finite_scalar(loss: torch.Tensor) -> None:
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0
    assert loss.dtype == torch.float32 and bool(torch.isfinite(loss))


def _mutate(draw, valid: Mapping[str, Any], hostile: Mapping[str, st.SearchStrategy]):
    name = draw(st.sampled_from(sorted(hostile)))
    kwargs = dict(valid)
    kwargs[name] = draw(hostile[name])
    return name, kwargs


# --------------------------------------------------------------------------- memories


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_cluster_memory_construction(device, data):
    valid = dict(num_clusters=3, num_features=4, temp=0.05, momentum=0.1, mode="mean")
    hostile = dict.fromkeys(("num_clusters", "num_features"), size_values)
    hostile.update(dict.fromkeys(("temp", "momentum"), scalar_values))
    hostile["mode"] = st.one_of(st.sampled_from(["mean", "hard", "max", ""]), scalar_values)
    name, kwargs = _mutate(data.draw, valid, hostile)

    def ok(memory: ClusterMemory) -> None:
        assert memory.centroids.shape == (memory.num_clusters, memory.num_features)
        assert type(memory.num_clusters) is int and type(memory.temp) is float
        assert memory.temp > 0 and 0 <= memory.momentum <= 1

    check_outcome(lambda: ClusterMemory(**kwargs), name, ok)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_cluster_memory_loss_and_update(device, data):
    mode = data.draw(st.sampled_from(["mean", "hard"]))
    g = torch.Generator().manual_seed(0)
    memory = ClusterMemory.from_centroids(torch.randn(3, 4, generator=g), mode=mode).to(device)
    valid = dict(
        features=torch.randn(5, 4, generator=g).to(device),
        labels=torch.tensor([0, 1, 2, 0, 1], device=device),
        momentum=None,
    )
    hostile = {
        "features": st.one_of(
            tensors(shape=(5, 4), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "labels": label_values(5, 3, device),
        "momentum": scalar_values,
    }
    name, kwargs = _mutate(data.draw, valid, hostile)
    forward_kwargs = {k: v for k, v in kwargs.items() if k != "momentum"}
    check_outcome(lambda: memory(**forward_kwargs), name, _finite_scalar)

    def rows_are_unit(_: Any) -> None:
        norms = torch.linalg.vector_norm(memory.centroids, dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)

    check_outcome(lambda: memory.update(**kwargs), name, rows_are_unit)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_instance_memory_update_and_rows(device, data):
    g = torch.Generator().manual_seed(1)
    memory = InstanceMemory.from_features(torch.randn(6, 4, generator=g)).to(device)
    valid = dict(
        features=torch.randn(4, 4, generator=g).to(device),
        indices=torch.tensor([0, 5, 0, 2], device=device),
        momentum=None,
    )
    hostile = {
        "features": st.one_of(
            tensors(shape=(4, 4), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "indices": label_values(4, 6, device),
        "momentum": scalar_values,
    }
    name, kwargs = _mutate(data.draw, valid, hostile)

    def rows_are_unit(_: Any) -> None:
        norms = torch.linalg.vector_norm(memory.bank, dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)

    check_outcome(lambda: memory.update(**kwargs), name, rows_are_unit)
    if name == "indices":
        check_outcome(lambda: memory.rows(kwargs["indices"]), "indices", lambda r: None)


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_shallow_deep_contrast(device, data):
    g = torch.Generator().manual_seed(2)
    deep_memory = ClusterMemory.from_centroids(torch.randn(3, 4, generator=g)).to(device)
    shallow_memory = ClusterMemory.from_centroids(torch.randn(3, 6, generator=g)).to(device)
    valid = dict(
        deep_features=torch.randn(5, 4, generator=g).to(device),
        shallow_features=torch.randn(5, 6, generator=g).to(device),
        labels=torch.tensor([0, 1, 2, 2, 1], device=device),
    )
    hostile = {
        "deep_features": st.one_of(
            tensors(shape=(5, 4), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "shallow_features": st.one_of(
            tensors(shape=(5, 6), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "labels": label_values(5, 3, device),
        "lambda_shallow": scalar_values,
    }
    name, kwargs = _mutate(data.draw, valid, hostile)
    lam = kwargs.pop("lambda_shallow", 1.0)

    def run() -> Any:
        return ShallowDeepContrast(lambda_shallow=lam)(
            deep_memory=deep_memory, shallow_memory=shallow_memory, **kwargs
        )

    def ok(result: Any) -> None:
        _finite_scalar(result.deep)
        _finite_scalar(result.shallow)
        # total = deep + lambda * shallow, exactly as float32 arithmetic gives it (a weight
        # near the float32 limit may overflow it to inf, which is then the correct result)
        expected = result.deep + torch.tensor(float(lam)) * result.shallow
        torch.testing.assert_close(result.total, expected)

    check_outcome(run, name, ok)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_collaborative_neighbor_learning(device, data):
    g = torch.Generator().manual_seed(3)
    bank = torch.randn(8, 4, generator=g)
    query_deep = InstanceMemory.from_features(bank).to(device)
    query_shallow = InstanceMemory.from_features(bank + 0.01).to(device)
    valid = dict(
        deep_features=torch.randn(3, 4, generator=g).to(device),
        shallow_features=torch.randn(3, 4, generator=g).to(device),
        indices=torch.tensor([0, 7, 3], device=device),
    )
    hostile = {
        "deep_features": st.one_of(
            tensors(shape=(3, 4), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "shallow_features": st.one_of(
            tensors(shape=(3, 4), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "indices": label_values(3, 8, device),
        "threshold": scalar_values,
        "temp": scalar_values,
    }
    name, kwargs = _mutate(data.draw, valid, hostile)
    params = {k: kwargs.pop(k) for k in ("threshold", "temp") if k in kwargs}

    def ok(result: Any) -> None:
        _finite_scalar(result.deep)
        _finite_scalar(result.shallow)

    check_outcome(
        lambda: CNL(**params)(**kwargs, query_deep=query_deep, query_shallow=query_shallow),
        name,
        ok,
    )


@FUZZ
@given(data=st.data())
def test_loss_weights_and_schedule(data):
    name = data.draw(st.sampled_from(["epoch", "start_epoch", "stage", "homogeneous"]))
    value = data.draw(scalar_values)
    if name in ("epoch", "start_epoch"):
        kwargs = {"epoch": 12, "start_epoch": 10, name: value}
        check_outcome(lambda: heterogeneous_direction(**kwargs), name, lambda d: None)
    elif name == "stage":
        check_outcome(lambda: SDCLLossWeights.official(stage=value), name, lambda w: None)
    else:
        check_outcome(
            lambda: SDCLLossWeights(homogeneous=value),
            name,
            lambda w: math.isfinite(w.homogeneous) and w.homogeneous >= 0,
        )


# --------------------------------------------------------------------------- objective


def _memories(shared: bool, device: str) -> SDCLMemories:
    g = torch.Generator().manual_seed(4)

    def cluster() -> ClusterMemory:
        return ClusterMemory.from_centroids(torch.randn(4, 8, generator=g)).to(device)

    deep, shallow = cluster(), cluster()
    banks = {m: torch.randn(6, 8, generator=g) for m in ("rgb", "ir")}
    return SDCLMemories(
        {"rgb": deep, "ir": deep if shared else cluster()},
        {"rgb": shallow, "ir": shallow if shared else cluster()},
        {m: InstanceMemory.from_features(banks[m]).to(device) for m in banks},
        {m: InstanceMemory.from_features(banks[m] + 0.01).to(device) for m in banks},
    )


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_objective_loss(device, data):
    recipe = SDCLRecipe.sysu()
    epoch = data.draw(st.sampled_from([0, 12, recipe.cmlabel + 1]))
    objective = SDCLObjective(_memories(epoch >= recipe.cmlabel, device), recipe, epoch=epoch)
    g = torch.Generator().manual_seed(5)
    valid = dict(
        deep=torch.randn(6, 8, generator=g).to(device),
        shallow=torch.randn(6, 8, generator=g).to(device),
        labels=torch.tensor([0, 1, 2, 3, 0, 1], device=device),
        indices=torch.tensor([0, 1, 2, 0, 4, 5], device=device),
        num_rgb=3,
    )
    hostile = {
        "deep": st.one_of(
            tensors(shape=(6, 8), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "shallow": st.one_of(
            tensors(shape=(6, 8), dtypes=_FLOAT_DTYPES, device=device), array_values(device)
        ),
        "labels": label_values(6, 4, device),
        "indices": label_values(6, 6, device),
        "num_rgb": scalar_values,
    }
    name, kwargs = _mutate(data.draw, valid, hostile)
    check_outcome(lambda: objective.loss(**kwargs), name, lambda loss: _finite_scalar(loss.total))


@FUZZ
@given(epoch=scalar_values)
def test_objective_epoch(epoch):
    recipe = SDCLRecipe.sysu()
    check_outcome(
        lambda: SDCLObjective(_memories(False, "cpu"), recipe, epoch=epoch),
        "epoch",
        lambda objective: None,
    )


# --------------------------------------------------------------------------- metrics


def _metrics_ok(result: Any) -> None:
    cmc = np.asarray(result.cmc)
    assert np.all((cmc >= 0) & (cmc <= 1)) and np.all(np.diff(cmc) >= 0)
    assert 0 <= result.mAP <= 1 and 0 <= result.mINP <= 1


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_evaluate_rank(device, data):
    rng = np.random.default_rng(0)
    valid = dict(
        distmat=rng.random((4, 6)),
        q_pids=np.array([0, 1, 2, 3]),
        g_pids=np.array([0, 1, 2, 3, 0, 1]),
        q_camids=np.array([1, 1, 3, 3]),
        g_camids=np.array([2, 4, 2, 5, 4, 1]),
        max_rank=5,
        protocol="sysu",
    )
    if device != "cpu":
        valid = {
            k: torch.as_tensor(v, device=device) if isinstance(v, np.ndarray) else v
            for k, v in valid.items()
        }
    hostile = {
        "distmat": st.one_of(tensors(shape=(4, 6), device=device), array_values(device)),
        "q_pids": label_values(4, 4, device),
        "g_pids": label_values(6, 4, device),
        "q_camids": label_values(4, 6, device),
        "g_camids": label_values(6, 6, device),
        "max_rank": scalar_values,
        "protocol": st.one_of(st.sampled_from(["sysu", "regdb", "market", "x"]), scalar_values),
    }
    name, kwargs = _mutate(data.draw, valid, hostile)
    check_outcome(lambda: evaluate_rank(**kwargs), name, _metrics_ok)


@pytest.mark.parametrize("device", DEVICES)
@FUZZ
@given(data=st.data())
def test_query_gallery_distance(device, data):
    g = torch.Generator().manual_seed(6)
    valid = dict(
        query_features=torch.randn(3, 5, generator=g).to(device),
        gallery_features=torch.randn(4, 5, generator=g).to(device),
        rerank=False,
    )
    hostile = {
        "query_features": st.one_of(tensors(device=device), array_values(device)),
        "gallery_features": st.one_of(tensors(device=device), array_values(device)),
        # rerank=True runs the re-ranking (its own parameters are checked there)
        "rerank": scalar_values.filter(lambda v: v is not True and v is not np.bool_(True)),
    }
    name, kwargs = _mutate(data.draw, valid, hostile)

    def ok(distance: Any) -> None:
        is_numpy = isinstance(kwargs["query_features"], np.ndarray)
        assert isinstance(distance, np.ndarray) == is_numpy
        values = torch.as_tensor(distance)
        assert bool(torch.isfinite(values).all()) and bool((values.abs() <= 1 + 1e-5).all())
        if not is_numpy:
            assert distance.device == kwargs["query_features"].device

    check_outcome(lambda: query_gallery_distance(**kwargs), name, ok)


# --------------------------------------------------------------------------- recipe, modality

_INT_FIELDS = ["epochs", "cra_topk", "k1", "cmlabel", "num_instances", "aug_padding"]
_REAL_FIELDS = ["lr", "temp", "eps", "memory_momentum", "lambda_shallow", "cnl_threshold"]


@FUZZ
@given(name=st.sampled_from(_INT_FIELDS + _REAL_FIELDS), value=scalar_values)
def test_recipe_fields(name, value):
    def ok(recipe: SDCLRecipe) -> None:
        stored = getattr(recipe, name)
        assert type(stored) is (int if name in _INT_FIELDS else float)

    check_outcome(lambda: SDCLRecipe.sysu().replace(**{name: value}), name, ok)


@FUZZ
@given(name=st.sampled_from(["epoch", "stage"]), value=scalar_values)
def test_recipe_schedule(name, value):
    recipe = SDCLRecipe.regdb()
    call = recipe.stage if name == "epoch" else recipe.group_weights
    check_outcome(lambda: call(value), name, lambda out: None)


@FUZZ
@given(value=st.one_of(st.sampled_from(["rgb", "ir", "RGB", "nir", ""]), scalar_values))
def test_parse_modality(value):
    check_outcome(lambda: parse_modality(value), "modality", lambda m: m in ("rgb", "ir"))


# --------------------------------------------------------------------------- models

_VIT_INT_FIELDS = ["patch_size", "embed_dim", "depth", "num_heads", "stem_channels"]
_VIT_REAL_FIELDS = ["mlp_ratio", "drop_rate", "drop_path_rate", "layer_norm_eps"]


@FUZZ
@given(
    name=st.sampled_from(_VIT_INT_FIELDS + _VIT_REAL_FIELDS + ["img_size", "stem", "qkv_bias"]),
    value=st.one_of(scalar_values, st.tuples(scalar_values, scalar_values)),
)
def test_vit_config(name, value):
    base = dict(
        img_size=(32, 16),
        patch_size=8,
        embed_dim=16,
        depth=1,
        num_heads=2,
        stem="linear",
        stem_channels=8,
    )
    base[name] = value
    check_outcome(lambda: ViTConfig(**base), name, lambda config: None)


_TINY = None


def _tiny_vit() -> ViT:
    global _TINY
    if _TINY is None:
        _TINY = ViT.from_config("tiny")
    return _TINY


@settings(FUZZ, max_examples=25)  # each example loads a model
@given(data=st.data())
def test_load_pretrained_arguments(data):
    model = _tiny_vit()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grid = model.config.grid_size
    valid = dict(checkpoint_grid=grid, min_loaded_fraction=0.9, weights_only=True)
    hostile = {
        "checkpoint_grid": st.one_of(st.tuples(scalar_values, scalar_values), scalar_values),
        "min_loaded_fraction": scalar_values,
        "weights_only": scalar_values.filter(lambda v: v is not False),
    }
    name, kwargs = _mutate(data.draw, valid, hostile)
    check_outcome(
        lambda: load_pretrained(model, state, **kwargs),
        name,
        lambda report: report.loaded_fraction == 1.0,
    )


@FUZZ
@given(
    tokens=st.integers(1, 300),
    old=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    prefix=st.one_of(st.none(), st.integers(-1, 8), scalar_values),
)
def test_resize_pos_embed_never_drops_patches_silently(tokens, old, prefix):
    pos = torch.randn(1, tokens, 3)

    def ok(out: torch.Tensor) -> None:
        assert out.shape == (1, 1 + 4 * 2, 3)
        inferred = tokens - old[0] * old[1]
        assert 1 <= inferred <= 5 if prefix is None else inferred == prefix
        torch.testing.assert_close(out[:, :1], pos[:, :1])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = resize_pos_embed(pos, (4, 2), old, num_prefix_tokens=prefix)
        except (TypeError, ValueError) as error:  # CheckpointError is a ValueError
            assert "checkpoint_grid" in str(error) or "num_prefix_tokens" in str(error)
            return
    ok(out)
