"""SDCLObjective: fidelity to seven official training steps (train_step.npz), the schedule
from the recipe, the official memory-update order, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sdcl_toolkit import (
    CRA,
    ClusterMemory,
    InstanceMemory,
    PseudoLabeler,
    SDCLMemories,
    SDCLObjective,
    SDCLRecipe,
)
from sdcl_toolkit.losses import Direction
from sdcl_toolkit.objective import OFFICIAL_PART_NAMES, PART_NAMES

FIXTURE = Path(__file__).parent / "fixtures" / "train_step.npz"
CASES = (
    "sysu_s1_even",
    "sysu_s1_odd",
    "sysu_s1_early",
    "sysu_s2_even",
    "sysu_s2_odd",
    "regdb_s1_epoch0",
    "regdb_s2_even",
)
LOSS_RTOL = 1e-5  # fixture README: losses and true gradients within 1e-5 relative
MEMORY_ATOL = 1e-6  # memories after the step within 1e-6


@pytest.fixture(scope="module")
def steps():
    data = np.load(FIXTURE)
    return {
        case: {key[len(case) + 1 :]: data[key] for key in data.files if key.startswith(case + "_")}
        for case in CASES
    }


def _cluster(centroids: np.ndarray, recipe: SDCLRecipe, momentum: float) -> ClusterMemory:
    memory = ClusterMemory(
        num_clusters=centroids.shape[0],
        num_features=centroids.shape[1],
        temp=recipe.temp,
        momentum=momentum,
    )
    memory.centroids = torch.from_numpy(centroids.copy())  # exactly the official rows
    return memory


def _instance(bank: np.ndarray, recipe: SDCLRecipe) -> InstanceMemory:
    memory = InstanceMemory(
        num_samples=bank.shape[0], num_features=bank.shape[1], momentum=recipe.instance_momentum
    )
    memory.bank = torch.from_numpy(bank.copy())
    return memory


def _objective(case: str, arrays) -> SDCLObjective:
    recipe = SDCLRecipe.for_dataset(case.split("_")[0])
    epoch = int(arrays["epoch"])
    momentum = recipe.memory_momentum_for(epoch)
    if bool(arrays["shared"]):
        deep = _cluster(arrays["cm_rgb"], recipe, momentum)
        shallow = _cluster(arrays["cm_rgb_s"], recipe, momentum)
        cluster_deep, cluster_shallow = {"rgb": deep, "ir": deep}, {"rgb": shallow, "ir": shallow}
    else:
        cluster_deep = {m: _cluster(arrays[f"cm_{m}"], recipe, momentum) for m in ("rgb", "ir")}
        cluster_shallow = {
            m: _cluster(arrays[f"cm_{m}_s"], recipe, momentum) for m in ("rgb", "ir")
        }
    memories = SDCLMemories(
        cluster_deep,
        cluster_shallow,
        {m: _instance(arrays[f"im_{m}"], recipe) for m in ("rgb", "ir")},
        {m: _instance(arrays[f"im_{m}_s"], recipe) for m in ("rgb", "ir")},
    )
    return SDCLObjective(memories, recipe, epoch=epoch)


@pytest.mark.parametrize("case", CASES)
def test_the_recipe_gives_the_settings_of_the_official_step(case, steps):
    arrays = steps[case]
    recipe = SDCLRecipe.for_dataset(case.split("_")[0])
    epoch = int(arrays["epoch"])
    assert recipe.cmlabel == int(arrays["cmlabel"])
    assert recipe.homogeneous_start == int(arrays["hm"])
    assert recipe.heterogeneous_start == int(arrays["ht"])
    assert recipe.temp == pytest.approx(float(arrays["temp"]))
    assert recipe.instance_momentum == pytest.approx(float(arrays["wise_momentum"]))
    assert recipe.memory_momentum_for(epoch) == pytest.approx(float(arrays["momentum"]))
    assert (recipe.stage(epoch) == 2) == bool(arrays["shared"])


@pytest.mark.parametrize("case", CASES)
def test_loss_parts_and_gradients_match_the_official_step(case, steps):
    arrays = steps[case]
    objective = _objective(case, arrays)
    leaves = {
        name: torch.tensor(arrays[f"f_{name}"], requires_grad=True)
        for name in ("rgb", "ir", "rgb_s", "ir_s")
    }
    deep = torch.cat([leaves["rgb"], leaves["ir"]])
    shallow = torch.cat([leaves["rgb_s"], leaves["ir_s"]])
    labels = torch.from_numpy(np.concatenate([arrays["labels_rgb"], arrays["labels_ir"]]))
    indices = torch.from_numpy(np.concatenate([arrays["index_rgb"], arrays["index_ir"]]))
    num_rgb = arrays["f_rgb"].shape[0]

    out = objective.loss(deep, shallow, labels, indices, num_rgb)
    assert set(out.parts) == set(PART_NAMES)
    for ours, official in OFFICIAL_PART_NAMES.items():
        expected = float(arrays[official])
        assert out.parts[ours].item() == pytest.approx(expected, rel=LOSS_RTOL, abs=1e-7), ours
    assert out.total.item() == pytest.approx(float(arrays["loss"]), rel=LOSS_RTOL)

    out.total.backward()
    for name, leaf in leaves.items():
        expected = torch.from_numpy(arrays[f"grad_{name}_true"])
        scale = expected.abs().max().item()
        torch.testing.assert_close(
            leaf.grad,
            expected,
            rtol=LOSS_RTOL,
            atol=LOSS_RTOL * scale,
            msg=lambda m, name=name: f"{case} {name}: {m}",
        )


@pytest.mark.parametrize("case", CASES)
def test_memories_after_the_update_match_the_official_step(case, steps):
    arrays = steps[case]
    objective = _objective(case, arrays)
    deep = torch.cat([torch.from_numpy(arrays["f_rgb"]), torch.from_numpy(arrays["f_ir"])])
    shallow = torch.cat([torch.from_numpy(arrays["f_rgb_s"]), torch.from_numpy(arrays["f_ir_s"])])
    labels = np.concatenate([arrays["labels_rgb"], arrays["labels_ir"]])
    indices = np.concatenate([arrays["index_rgb"], arrays["index_ir"]])
    objective.update(deep, shallow, labels, indices, arrays["f_rgb"].shape[0])
    memories = objective.memories
    for m in ("rgb", "ir"):
        for suffix, cluster, instance in (
            ("", memories.cluster_deep, memories.instance_deep),
            ("_s", memories.cluster_shallow, memories.instance_shallow),
        ):
            torch.testing.assert_close(
                cluster[m].centroids,
                torch.from_numpy(arrays[f"cm_{m}{suffix}_after"]),
                rtol=0,
                atol=MEMORY_ATOL,
            )
            torch.testing.assert_close(
                instance[m].bank,
                torch.from_numpy(arrays[f"im_{m}{suffix}_after"]),
                rtol=0,
                atol=MEMORY_ATOL,
            )


@pytest.mark.parametrize("case", ["sysu_s2_even", "sysu_s2_odd", "regdb_s2_even"])
def test_shared_memory_ir_first_would_not_match(case, steps):
    """The order matters: updating the shared memory with the IR batch first gives other
    centroids (so the test above pins the official RGB-first order)."""
    arrays = steps[case]
    objective = _objective(case, arrays)
    memories = objective.memories
    assert memories.shared
    n = arrays["f_rgb"].shape[0]
    for feats, labels in (
        (arrays["f_ir"], arrays["labels_ir"]),
        (arrays["f_rgb"], arrays["labels_rgb"]),
    ):
        memories.cluster_deep["rgb"].update(torch.from_numpy(feats), labels)
    difference = (
        (memories.cluster_deep["rgb"].centroids - torch.from_numpy(arrays["cm_rgb_after"]))
        .abs()
        .max()
        .item()
    )
    assert difference > 1e-3, n


def test_schedule_follows_the_recipe():
    sysu, regdb = SDCLRecipe.sysu(), SDCLRecipe.regdb()
    assert [sysu.heterogeneous_direction(e) for e in (0, 9, 10, 11)] == [
        None,
        None,
        "rgb_to_ir",
        "ir_to_rgb",
    ]
    assert regdb.homogeneous_active(0) is False and regdb.homogeneous_active(1) is True
    assert regdb.memory_momentum_for(0) == 0.99 and regdb.memory_momentum_for(1) == 0.1
    assert sysu.memory_momentum_for(0) == 0.1
    assert sysu.stage(29) == 1 and sysu.stage(30) == 2 and regdb.stage(20) == 2
    assert sysu.iterations(29) == 200 and sysu.iterations(30) == 100
    assert regdb.iterations(0) == regdb.iterations(25) == 50


def _tiny_memories(shared: bool, generator: torch.Generator) -> SDCLMemories:
    def cluster():
        return ClusterMemory.from_centroids(torch.randn(4, 8, generator=generator))

    deep_rgb = cluster()
    shallow_rgb = cluster()
    cluster_deep = {"rgb": deep_rgb, "ir": deep_rgb if shared else cluster()}
    cluster_shallow = {"rgb": shallow_rgb, "ir": shallow_rgb if shared else cluster()}
    # deep and shallow banks alike, so the deep AND shallow neighbour masks are not empty
    banks = {m: torch.randn(10, 8, generator=generator) for m in ("rgb", "ir")}
    instance = {m: InstanceMemory.from_features(banks[m]) for m in ("rgb", "ir")}
    instance_s = {m: InstanceMemory.from_features(banks[m] + 0.01) for m in ("rgb", "ir")}
    return SDCLMemories(cluster_deep, cluster_shallow, instance, instance_s)


def test_stage_and_memories_must_agree():
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="shared"):
        SDCLObjective(_tiny_memories(False, generator), SDCLRecipe.sysu(), epoch=30)
    with pytest.raises(ValueError, match="are shared; stage 1"):
        SDCLObjective(_tiny_memories(True, generator), SDCLRecipe.sysu(), epoch=3)


def test_regdb_epoch_zero_has_no_neighbour_terms():
    generator = torch.Generator().manual_seed(1)
    objective = SDCLObjective(_tiny_memories(False, generator), SDCLRecipe.regdb(), epoch=0)
    out = objective.loss(
        torch.randn(6, 8),
        torch.randn(6, 8),
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.arange(6),
        num_rgb=3,
    )
    contrast = sum(v for k, v in out.parts.items() if k.startswith("contrast"))
    assert out.total.item() == pytest.approx(contrast.item())
    assert out.direction is None and out.groups()["homogeneous"].item() == 0
    floats = out.as_floats()
    assert floats["loss"] == pytest.approx(out.total.item())
    assert set(floats) == {"loss", "contrast", "homogeneous", "heterogeneous", *PART_NAMES}


def test_heterogeneous_direction_enters_the_loss():
    generator = torch.Generator().manual_seed(2)
    objective = SDCLObjective(_tiny_memories(False, generator), SDCLRecipe.sysu(), epoch=11)
    assert objective.direction is Direction.IR_TO_RGB
    out = objective.loss(
        torch.randn(6, 8),
        torch.randn(6, 8),
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.arange(6),
        num_rgb=3,
    )
    assert out.parts["heterogeneous_ir_to_rgb_deep"].item() > 0
    assert out.parts["heterogeneous_rgb_to_ir_deep"].item() == 0
    groups = out.groups()
    w_hom, w_het = SDCLRecipe.sysu().group_weights(1)
    expected = groups["contrast"] + w_hom * groups["homogeneous"] + w_het * groups["heterogeneous"]
    assert out.total.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(num_rgb=0), ValueError, "num_rgb"),
        (dict(num_rgb=6), ValueError, "num_rgb"),
        (dict(num_rgb=2.0), TypeError, "num_rgb"),
        (dict(labels=torch.tensor([0, 1, 2])), ValueError, "labels"),
        (dict(indices=torch.tensor([0, 1, 2, 3, 4, 99])), ValueError, "indices"),
        (dict(labels=torch.tensor([0, 1, 2, 0, 1, 7])), ValueError, "labels"),
        (dict(labels=[0, 1, 2, 0, 1, 2]), TypeError, "labels"),
    ],
)
def test_bad_batches_are_clear_errors(bad, error, match):
    generator = torch.Generator().manual_seed(3)
    objective = SDCLObjective(_tiny_memories(False, generator), SDCLRecipe.sysu(), epoch=12)
    args = dict(
        deep=torch.randn(6, 8),
        shallow=torch.randn(6, 8),
        labels=torch.tensor([0, 1, 2, 0, 1, 2]),
        indices=torch.arange(6),
        num_rgb=3,
    )
    args.update(bad)
    with pytest.raises(error, match=match):
        objective.loss(**args)


def test_from_pseudo_labels_builds_the_epochs_memories():
    generator = torch.Generator().manual_seed(4)
    centres = torch.randn(6, 16, generator=generator) * 3

    def modality(n_per: int):
        ids = torch.arange(6).repeat_interleave(n_per)
        deep = centres[ids] + 0.3 * torch.randn(len(ids), 16, generator=generator)
        shallow = centres[ids] + 0.3 * torch.randn(len(ids), 16, generator=generator)
        return deep, shallow

    features = {"rgb": modality(8), "ir": modality(6)}
    labeler = PseudoLabeler(eps=0.6, k1=6, k2=2, stage2_rgb_k1=6, cra=CRA(topk=5, smooth_k=3))
    recipe = SDCLRecipe.sysu().replace(cmlabel=1)
    for epoch in (0, 1):
        labels = labeler(*features["rgb"], *features["ir"], stage=recipe.stage(epoch))
        objective = SDCLObjective.from_pseudo_labels(labels, features, recipe, epoch=epoch)
        assert objective.memories.shared == (epoch == 1)
        assert objective.memories.instance_deep["rgb"].num_samples == 48
        momentum = recipe.memory_momentum_for(epoch)
        assert objective.memories.cluster_deep["ir"].momentum == momentum
