"""Per-field decisions of ``--resume``: run control, changeable, optimiser, refused."""

import dataclasses

import pytest
import torch

from sdcl_toolkit.engine import TrainConfig
from sdcl_toolkit.engine.resume_policy import (
    CHANGEABLE,
    OPTIMISER,
    RUN_CONTROL,
    ResumeConflictError,
    apply_optimiser_settings,
    resume_changes,
)

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
REFUSED = sorted(set(FIELDS) - RUN_CONTROL - CHANGEABLE - OPTIMISER)


def _other(name):
    value = getattr(TrainConfig.demo(), name)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"{value}-changed"


def test_the_categories_name_real_fields():
    assert RUN_CONTROL | CHANGEABLE | OPTIMISER <= set(FIELDS)
    assert {"model", "height", "width", "dataset", "eps", "k1", "seed", "norm_groups"} <= set(
        REFUSED
    )


@pytest.mark.parametrize("name", sorted(CHANGEABLE | OPTIMISER))
def test_safe_fields_may_change(name):
    saved = TrainConfig.demo().to_dict()
    current = {**saved, name: _other(name)}
    assert resume_changes(saved, current) == {name: (saved[name], current[name])}


@pytest.mark.parametrize("name", sorted(RUN_CONTROL))
def test_run_control_is_not_a_change(name):
    saved = TrainConfig.demo().to_dict()
    assert resume_changes(saved, {**saved, name: _other(name)}) == {}


@pytest.mark.parametrize("name", REFUSED)
def test_every_other_field_is_refused(name):
    saved = TrainConfig.demo().to_dict()
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ResumeConflictError, match=f"{flag}: "):
        resume_changes(saved, {**saved, name: _other(name)})


def test_new_optimiser_values_reach_the_restored_optimiser():
    weights = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(weights.parameters(), lr=0.1, momentum=0.9, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)
    for _ in range(5):  # epochs 0..4 done
        optimizer.step()
        scheduler.step()
    config = TrainConfig.demo(lr=0.2, gamma=0.5, step_size=3, sgd_momentum=0.5, weight_decay=0.1)
    apply_optimiser_settings(optimizer, scheduler, config)
    group = optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.2 * 0.5 ** (5 // 3))
    assert (group["momentum"], group["weight_decay"]) == (0.5, 0.1)
    optimizer.step()
    scheduler.step()  # epoch 6: 0.2 * 0.5 ** 2
    assert group["lr"] == pytest.approx(0.05)
    with pytest.raises(TypeError, match="injected parts"):
        apply_optimiser_settings(torch.optim.Adam(weights.parameters()), scheduler, config)
