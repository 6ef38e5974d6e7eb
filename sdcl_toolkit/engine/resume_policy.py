"""Which settings ``--resume`` may change, decided per field.

A resumed run continues the run recorded in ``output_dir/last.pth``: its configuration is
restored from the checkpoint, and a flag given on the command line may only change a
setting that cannot make the records lie about what ran:

* :data:`RUN_CONTROL` (``resume``, ``overwrite``, ``stop_after``, ``output_dir``): about this
  process only; always the command line's.
* :data:`CHANGEABLE`: how the remaining epochs are run, evaluated and logged (``epochs``,
  evaluation, devices, threads, data location ...); the checkpoint's value unless given.
* :data:`OPTIMISER`: ``lr``, ``weight_decay``, ``sgd_momentum``, ``step_size``, ``gamma``;
  applied to the restored optimiser and scheduler (:func:`apply_optimiser_settings`), so
  the next checkpoint records values that were used.
* every other field (model, input size, data set, pseudo-labelling, memories, losses, seed,
  pretraining ...) is **refused**: it shaped the weights and memories in the checkpoint,
  and changing it mid-run would leave a record of a run that never happened
  (:class:`ResumeConflictError` names each such flag).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "RUN_CONTROL",
    "CHANGEABLE",
    "OPTIMISER",
    "ResumeConflictError",
    "resume_changes",
    "apply_optimiser_settings",
]

RUN_CONTROL = frozenset({"resume", "overwrite", "stop_after", "output_dir"})
CHANGEABLE = frozenset(
    {
        "epochs",
        "eval_every",
        "eval_before",
        "trials",
        "eval_batch_size",
        "rerank",
        "device",
        "workers",
        "threads",
        "amp",
        "device_augmentation",
        "compile",
        "gradient_checkpointing",
        "tensorboard",
        "progress",
        "data_dir",
        "cache_dir",
        "dist_timeout",
    }
)
OPTIMISER = frozenset({"lr", "weight_decay", "sgd_momentum", "step_size", "gamma"})


class ResumeConflictError(ValueError):
    """``--resume`` was given a setting that would change the recorded run."""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def resume_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved, current)}`` for every field that differs and may change.

    ``saved`` / ``current``: ``TrainConfig.to_dict()`` of the checkpoint and of the resumed
    run. Raises :class:`ResumeConflictError` listing every refused change (a field missing
    from ``saved``, e.g. one added in a later toolkit version, is not compared).
    """
    changes, refused = {}, []
    for name, value in current.items():
        if name in RUN_CONTROL or name not in saved or _same(saved[name], value):
            continue
        if name in CHANGEABLE or name in OPTIMISER:
            changes[name] = (saved[name], value)
        else:
            flag = "--" + name.replace("_", "-")
            refused.append(f"{flag}: {saved[name]!r} in the checkpoint, {value!r} now")
    if refused:
        raise ResumeConflictError(
            "--resume continues the recorded run, and these settings shaped its weights and "
            "memories, so they cannot change mid-run:\n  - "
            + "\n  - ".join(refused)
            + "\ndrop these flags to continue the run as recorded, or start a new run in "
            "another --output-dir (or with --overwrite) to use them"
        )
    return changes


def apply_optimiser_settings(optimizer: Any, scheduler: Any, config: Any) -> None:
    """Give a restored SGD optimiser and ``StepLR`` scheduler ``config``'s optimisation
    settings: ``lr`` becomes the base rate and the current rate is
    ``lr * gamma ** (last_epoch // step_size)`` (what ``StepLR`` would have reached with
    the new values); ``weight_decay`` and ``sgd_momentum`` replace the groups' values.

    Raises ``TypeError`` for other optimiser or scheduler types (an injected part whose
    settings the trainer cannot translate).
    """
    import torch

    if not isinstance(optimizer, torch.optim.SGD) or not isinstance(
        scheduler, torch.optim.lr_scheduler.StepLR
    ):
        raise TypeError(
            "--resume can change --lr/--weight-decay/--sgd-momentum/--step-size/--gamma only "
            "for the default SGD + StepLR; with injected parts "
            f"({type(optimizer).__name__}, {type(scheduler).__name__}) change them yourself"
        )
    scheduler.step_size = config.step_size
    scheduler.gamma = config.gamma
    scheduler.base_lrs = [config.lr for _ in optimizer.param_groups]
    current = config.lr * config.gamma ** (scheduler.last_epoch // config.step_size)
    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
        group["lr"] = current
        group["weight_decay"] = config.weight_decay
        group["momentum"] = config.sgd_momentum
    scheduler._last_lr = [current for _ in optimizer.param_groups]
