"""SDCLRecipe: every official value pinned, its source named, the single source enforced."""

from __future__ import annotations

import ast
import dataclasses
import doctest
import math
from pathlib import Path

import pytest

import sdcl_toolkit
from sdcl_toolkit import CNL, CRA, ClusterMemory, InstanceMemory, PseudoLabeler, SDCLRecipe
from sdcl_toolkit import recipe as recipe_module
from sdcl_toolkit.losses import SDCLLossWeights, ShallowDeepContrast, heterogeneous_direction
from sdcl_toolkit.models import DEFAULT_CHECKPOINT_GRID, ViT, ViTConfig, get_config
from sdcl_toolkit.recipe import OFFICIAL_SYSU, RECIPE_FIELDS

# The official values, written out once more on purpose: a wrong value in the recipe fails
# here loudly. Sources: yangbincv/SDCL @ 6033332 (see SDCLRecipe.source for file:line).
SYSU = dict(
    epochs=50,
    cmlabel=30,
    homogeneous_start=0,
    heterogeneous_start=10,
    iters_stage1=200,
    iters_stage2=100,
    batch_rgb=128,
    batch_ir=128,
    num_instances=16,
    lr=3.5e-4,
    weight_decay=5e-4,
    sgd_momentum=0.9,
    step_size=20,
    gamma=0.1,
    eps=0.6,
    min_samples=4,
    k1=30,
    k2=6,
    stage2_rgb_k1=15,
    cra_topk=20,
    cra_smooth_k=5,
    cluster_flip=True,
    temp=0.05,
    memory_momentum=0.1,
    first_epoch_memory_momentum=None,
    stage2_memory_momentum=0.1,
    memory_mode="mean",
    instance_momentum=0.9,
    lambda_shallow=1.0,
    cnl_threshold=0.9,
    cnl_temp=0.05,
    homogeneous_deep=1.0,
    homogeneous_shallow=0.5,
    rgb_to_ir_deep=0.1,
    rgb_to_ir_shallow=0.05,
    ir_to_rgb_deep=1.0,
    ir_to_rgb_shallow=0.5,
    stage1_homogeneous=1.0,
    stage1_heterogeneous=0.5,
    stage2_homogeneous=0.1,
    stage2_heterogeneous=0.1,
    model="vit_base",
    height=288,
    width=144,
    drop_path_rate=0.1,
    checkpoint="vit_base_ics_cfs_lup.pth",
    checkpoint_grid=(16, 8),
    norm_groups=2,
    aug_jitter=0.5,
    aug_hue=0.5,
    aug_padding=10,
    aug_erasing=0.5,
)
REGDB = {
    **SYSU,
    "epochs": 30,
    "cmlabel": 20,
    "homogeneous_start": 1,
    "iters_stage1": 50,
    "iters_stage2": 50,
    "eps": 0.3,
    "stage2_rgb_k1": 30,
    "cra_topk": 10,
    "first_epoch_memory_momentum": 0.99,
}
SYSU_4GPU = {**SYSU, "batch_rgb": 112, "num_instances": 4, "homogeneous_start": 1, "norm_groups": 4}
PRESETS = {"sysu": SYSU, "regdb": REGDB, "sysu_4gpu": SYSU_4GPU}


def test_the_pin_table_covers_every_field():
    assert set(SYSU) == set(RECIPE_FIELDS)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("field", RECIPE_FIELDS)
def test_every_official_value(name, field):
    recipe = SDCLRecipe.for_dataset(name)
    assert getattr(recipe, field) == PRESETS[name][field], (name, field)
    source = recipe.source(field)
    assert source and source != "modified"
    if field not in ("model", "checkpoint", "checkpoint_grid", "memory_mode"):
        assert ".py:" in source or ".sh:" in source, (field, source)


def test_dataset_names_and_presets():
    assert SDCLRecipe.sysu() is SDCLRecipe.for_dataset("SYSU-MM01")
    assert SDCLRecipe.regdb() is SDCLRecipe.for_dataset("RegDB")
    assert SDCLRecipe.sysu_4gpu() is SDCLRecipe.for_dataset("sysu-4gpu")
    assert SDCLRecipe() == SDCLRecipe.sysu() == OFFICIAL_SYSU
    with pytest.raises(ValueError, match="unknown dataset"):
        SDCLRecipe.for_dataset("market")


def test_replace_marks_the_recipe_modified():
    changed = SDCLRecipe.regdb().replace(k1=20)
    assert changed.name == "regdb+modified" and changed.k1 == 20
    assert changed.source("k1") == "modified"
    assert changed.source("cra_topk") == SDCLRecipe.regdb().source("cra_topk")
    assert SDCLRecipe.regdb().replace(k1=30) == SDCLRecipe.regdb()
    with pytest.raises(TypeError, match="no field"):
        SDCLRecipe.sysu().replace(kone=3)
    with pytest.raises(KeyError):
        SDCLRecipe.sysu().source("kone")


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(lr=math.nan), "lr"),
        (dict(gamma=-1.0), "gamma"),
        (dict(cnl_threshold=math.nan), "cnl_threshold"),
        (dict(cra_topk=0), "cra_topk"),
        (dict(eps=1.5), "eps"),
        (dict(memory_mode="max"), "memory_mode"),
        (dict(batch_ir=100), "batch_ir=100"),
        (dict(temp=0.0), "temp"),
        (dict(k1=2.5), "k1"),
        (dict(first_epoch_memory_momentum=1.5), "first_epoch"),
        (dict(homogeneous_deep=-1.0), "homogeneous_deep"),
        (dict(cmlabel=True), "cmlabel"),
        (dict(checkpoint_grid=(16,)), "checkpoint_grid"),
    ],
)
def test_invalid_values_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        SDCLRecipe.sysu().replace(**changes)


def test_schedule_helpers_validate_their_arguments():
    recipe = SDCLRecipe.sysu()
    with pytest.raises(ValueError, match="epoch"):
        recipe.stage(-1)
    with pytest.raises(TypeError, match="epoch"):
        recipe.stage(1.5)
    with pytest.raises(ValueError, match="stage"):
        recipe.group_weights(3)
    assert recipe.rgb_k1(1) == 30 and recipe.rgb_k1(2) == 15
    assert SDCLRecipe.regdb().rgb_k1(2) == 30
    assert recipe.group_weights(1) == (1.0, 0.5) and recipe.group_weights(2) == (0.1, 0.1)
    assert recipe.augmentation() == dict(jitter=0.5, hue=0.5, padding=10, erasing=0.5)


def test_module_doctest():
    result = doctest.testmod(recipe_module)
    assert result.attempted > 0 and result.failed == 0


def test_component_defaults_are_the_recipes():
    r = OFFICIAL_SYSU
    cnl = CNL()
    assert (cnl.threshold, cnl.temp) == (r.cnl_threshold, r.cnl_temp)
    memory = ClusterMemory(num_clusters=3, num_features=4)
    assert (memory.temp, memory.momentum, memory.mode) == (r.temp, r.memory_momentum, r.memory_mode)
    assert InstanceMemory(num_samples=3, num_features=4).momentum == r.instance_momentum
    cra = CRA()
    assert (cra.topk, cra.smooth_k) == (r.cra_topk, r.cra_smooth_k)
    assert ShallowDeepContrast().lambda_shallow == r.lambda_shallow
    assert heterogeneous_direction(r.heterogeneous_start - 1) is None
    assert heterogeneous_direction(r.heterogeneous_start) is not None
    labeler = PseudoLabeler()
    assert (labeler.eps, labeler.k1, labeler.k2, labeler.stage2_rgb_k1) == (
        r.eps,
        r.k1,
        r.k2,
        r.stage2_rgb_k1,
    )
    for stage in (1, 2):
        weights = SDCLLossWeights.official(stage)
        assert (weights.homogeneous, weights.heterogeneous) == r.group_weights(stage)
        assert (
            weights.rgb_to_ir_deep,
            weights.rgb_to_ir_shallow,
            weights.ir_to_rgb_deep,
            weights.ir_to_rgb_shallow,
            weights.homogeneous_deep,
            weights.homogeneous_shallow,
        ) == (
            r.rgb_to_ir_deep,
            r.rgb_to_ir_shallow,
            r.ir_to_rgb_deep,
            r.ir_to_rgb_shallow,
            r.homogeneous_deep,
            r.homogeneous_shallow,
        )
    assert SDCLLossWeights() == SDCLLossWeights.official(1)
    # ViT() and ViTConfig() agree, and both are the official backbone
    base = get_config("vit_base")
    assert (
        ViTConfig().drop_path_rate
        == ViT().config.drop_path_rate
        == base.drop_path_rate
        == r.drop_path_rate
    )
    assert ViTConfig().img_size == base.img_size == (r.height, r.width)
    assert DEFAULT_CHECKPOINT_GRID == r.checkpoint_grid


# Parameter names that hold official values, and the recipe fields they may equal.
_WATCHED = {
    "temp": ("temp", "cnl_temp"),
    "momentum": (
        "memory_momentum",
        "instance_momentum",
        "stage2_memory_momentum",
        "sgd_momentum",
        "first_epoch_memory_momentum",
    ),
    "instance_momentum": ("instance_momentum",),
    "threshold": ("cnl_threshold",),
    "topk": ("cra_topk",),
    "smooth_k": ("cra_smooth_k",),
    "k1": ("k1", "stage2_rgb_k1"),
    "k2": ("k2",),
    "eps": ("eps",),
    "min_samples": ("min_samples",),
    "stage2_rgb_k1": ("stage2_rgb_k1",),
    "lambda_shallow": ("lambda_shallow",),
    "start_epoch": ("heterogeneous_start", "homogeneous_start"),
    "drop_path_rate": ("drop_path_rate",),
    "checkpoint_grid": ("checkpoint_grid",),
    "lr": ("lr",),
    "weight_decay": ("weight_decay",),
    "gamma": ("gamma",),
    "step_size": ("step_size",),
    "num_instances": ("num_instances",),
    "img_size": ("height",),
    "cra_topk": ("cra_topk",),
}


def _literal_defaults(tree: ast.AST):
    """(function or class name, parameter name, default node) of every default."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(
                positional[len(positional) - len(args.defaults) :], args.defaults
            ):
                yield node.name, arg.arg, default
            for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                if default is not None:
                    yield node.name, arg.arg, default
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and item.value is not None
                ):
                    yield node.name, item.target.id, item.value


def test_no_official_value_is_written_outside_the_recipe():
    """Defaults named like a recipe value must read it from the recipe, not repeat it as a
    literal (that is how presets and components drifted apart)."""
    presets = [SDCLRecipe.for_dataset(n) for n in PRESETS]
    package = Path(sdcl_toolkit.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "recipe.py":
            continue
        for owner, name, default in _literal_defaults(ast.parse(path.read_text())):
            if name not in _WATCHED:
                continue
            try:
                value = ast.literal_eval(default)
            except ValueError:
                continue  # not a literal: e.g. OFFICIAL_SYSU.temp
            official = {getattr(r, f) for r in presets for f in _WATCHED[name]}
            if name == "img_size":
                official = {(r.height, r.width) for r in presets}
            if value is not None and value in official:
                found.append(
                    f"{path.relative_to(package)}:{default.lineno} {owner}({name}={value!r})"
                )
    assert not found, "official values written outside recipe.py:\n" + "\n".join(found)


def test_recipe_is_a_leaf_module():
    tree = ast.parse(Path(recipe_module.__file__).read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    # package imports: only the scalar-validation leaf
    assert all(node.level == 0 or node.module == "_validation" for node in imports)


def test_values_round_trip():
    recipe = SDCLRecipe.regdb()
    assert dataclasses.replace(recipe, **recipe.values()) == recipe
    assert set(recipe.sources()) == set(RECIPE_FIELDS)


def test_docs_show_the_recipe_table():
    from sdcl_toolkit.recipe import recipe_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "recipe.md").read_text()
    assert recipe_table() in page


def test_the_miniature_recipe_is_marked_as_not_official():
    mini = SDCLRecipe.miniature(epochs=3, iters=5)
    assert mini.name == "miniature" and mini.epochs == 3 and mini.iters_stage2 == 5
    assert mini.source("k1") == "modified" and mini.lr == SDCLRecipe.sysu().lr
    assert SDCLRecipe.miniature(base=SDCLRecipe.regdb()).eps == 0.7
