"""Per-epoch health checks of a training run: diverged features, collapsed clustering,
losses that teach nothing.

* :func:`check_features_finite`: the clustering features of every training image must be
  finite; NaN/inf means the previous epoch diverged, and :class:`TrainingDivergedError`
  says what to change (rather than an error from deep inside pseudo-labelling).
* :func:`check_clustering`: a cluster-contrast loss over one class is
  ``-log softmax = -log 1 = 0`` for every sample (Yang et al., CVPR 2024, Eq. 1). When no
  memory has two classes (stage 1: both modalities; stage 2: the IR clusters the shared
  memories are built on) no gradient moves the features apart again, and it raises
  :class:`ClusterCollapseError` with what to change; one collapsed modality in stage 1, or
  nearly all samples outliers (fewer than :data:`MIN_KEPT_FRACTION` kept), is a warning.
* :func:`zero_loss_parts`: loss parts that are identically 0 over an epoch's steps.
* :func:`loader_starvation`: a GPU that waited for its data loaders for much of an epoch.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "TrainingDivergedError",
    "ClusterCollapseError",
    "check_features_finite",
    "check_clustering",
    "zero_loss_parts",
    "loader_starvation",
    "MIN_KEPT_FRACTION",
    "MAX_DATA_WAIT_FRACTION",
]

MIN_KEPT_FRACTION = 0.2
"""Below this share of a modality's samples in clusters, the run is warned about."""
MAX_DATA_WAIT_FRACTION = 0.3
"""Above this share of an epoch's training time spent waiting for batches on a GPU, the run
is warned about (the loader workers cannot keep up)."""
_MIN_TRAIN_SECONDS = 5.0
"""Epochs shorter than this are not judged (start-up of the workers dominates them)."""

_ALWAYS_ACTIVE = ("loss", "contrast")
"""Loss parts that are scheduled in every epoch of every recipe (the CNL groups start at
``homogeneous_start`` / ``heterogeneous_start`` and may be 0 before)."""


class TrainingDivergedError(FloatingPointError):
    """The model's outputs became NaN or infinite."""


class ClusterCollapseError(RuntimeError):
    """Pseudo-labelling produced fewer than two clusters in a modality."""


def check_features_finite(features: dict[str, tuple[torch.Tensor, torch.Tensor]], epoch: int):
    """Raise :class:`TrainingDivergedError` if any ``[N, D]`` deep or shallow clustering
    feature of ``features`` (``{modality: (deep, shallow)}``) is NaN or infinite."""
    for modality, pair in features.items():
        for depth, tensor in zip(("deep", "shallow"), pair):
            bad = int((~torch.isfinite(tensor)).any(dim=-1).sum())
            if bad:
                raise TrainingDivergedError(
                    f"epoch {epoch}: {bad} of {tensor.shape[0]} {modality} {depth} features are "
                    "NaN or infinite: training diverged"
                    + (
                        f" in epoch {epoch - 1}"
                        if epoch > 0
                        else " (or the initial weights are bad)"
                    )
                    + ". Restart from an earlier state with a lower --lr; as the authors advise, "
                    "a larger first-epoch memory momentum (--first-epoch-memory-momentum 0.9) "
                    "also stabilises the start; --amp (bfloat16) can overflow on some models"
                )


def check_clustering(summary: dict[str, Any], epoch: int, config: Any) -> list[str]:
    """Check the pseudo-label ``summary`` (:meth:`PseudoLabels.summary`) of ``epoch``.

    Raises :class:`ClusterCollapseError` when no cluster-contrast memory has two classes:
    in stage 1 (one memory per modality) when both modalities have fewer than 2 clusters,
    in stage 2 (memories shared through the IR clusters) when IR has fewer than 2. Returns
    warnings (strings) for a single collapsed modality that training can still recover
    through the other one, and for modalities with nearly all samples outliers.
    """
    warnings = []
    collapsed = {}
    for modality in ("rgb", "ir"):
        clusters = summary[f"{modality}_clusters"]
        classes = summary.get(f"{modality}_classes", clusters)
        kept = summary[f"{modality}_kept"]
        total = kept + summary[f"{modality}_outliers"]
        if min(clusters, classes) < 2:
            collapsed[modality] = (
                f"clustering of the {modality.upper()} features collapsed to {clusters} "
                f"cluster(s) ({classes} class(es); {kept} of {total} samples kept)"
            )
        if total and kept < MIN_KEPT_FRACTION * total:
            warnings.append(
                f"epoch {epoch}: only {kept} of {total} {modality.upper()} samples are in "
                f"clusters ({summary[f'{modality}_outliers']} outliers): training sees few "
                f"images. Consider a larger --eps (now {config.eps}) or a smaller "
                f"--min-samples (now {config.min_samples})"
            )
    advice = (
        f"Change: --eps (now {config.eps}: smaller splits a giant cluster, larger admits "
        f"outliers), --min-samples (now {config.min_samples}), --k1 (now {config.k1}); if "
        f"the features collapsed during training, a lower --lr (now {config.lr}); an "
        "untrained backbone needs --pretrained (or, in the demo, more --pretrain-steps)"
    )
    fatal = ("ir",) if summary.get("stage", 1) == 2 else ("rgb", "ir")
    if all(m in collapsed for m in fatal):
        raise ClusterCollapseError(
            f"epoch {epoch}: " + "; ".join(collapsed[m] for m in fatal) + ". A contrast loss "
            "over a single class is exactly 0 and no memory has two classes, so training "
            "cannot recover. " + advice
        )
    for what in collapsed.values():
        warnings.append(
            f"epoch {epoch}: {what}: its contrast loss is 0 this epoch; training continues "
            f"through the other modality, but check the clustering. {advice}"
        )
    return warnings


def zero_loss_parts(losses: dict[str, float], steps: int) -> list[str]:
    """Names of always-active loss parts (total, contrast and its ``contrast_*`` parts)
    whose epoch mean is exactly 0 after ``steps > 0`` steps."""
    if steps <= 0:
        return []
    return [
        name
        for name, value in losses.items()
        if (name in _ALWAYS_ACTIVE or name.startswith("contrast_")) and value == 0.0
    ]


def loader_starvation(
    wait_seconds: float,
    train_seconds: float,
    device_type: str,
    workers: int,
    device_augmentation: bool,
) -> str:
    """A warning when the model waited for its data for more than
    :data:`MAX_DATA_WAIT_FRACTION` of an epoch's training time on a GPU; ``""`` otherwise.

    ``wait_seconds`` is the time the training loop spent waiting for the next batch (each
    step ends by reading its losses, so the device is idle while it waits). On the CPU the
    workers and the model share the cores, so the share says nothing and is not judged."""
    if device_type == "cpu" or train_seconds < _MIN_TRAIN_SECONDS:
        return ""
    share = wait_seconds / train_seconds
    if share <= MAX_DATA_WAIT_FRACTION:
        return ""
    advice = f"raise --workers (now {workers})"
    if not device_augmentation:
        advice += (
            " or pass --device-augmentation (the workers then only decode and resize; "
            "about 6x the images per worker on the CPU it was measured on)"
        )
    return (
        f"the model waited {wait_seconds:.1f} s of {train_seconds:.1f} s ({share:.0%}) for its "
        f"data loaders: they cannot keep the {device_type} device busy; {advice}"
    )
