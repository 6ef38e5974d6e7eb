"""The SDCL training step as one part any training loop can call.

:class:`SDCLObjective` is built once per epoch from that epoch's pseudo-labels and extracted
features (or from ready memories) and an :class:`~sdcl_toolkit.SDCLRecipe`. It gives

* :meth:`SDCLObjective.loss`: the total loss of a batch and each of its twelve named parts
  (shallow-deep contrast of both modalities, homogeneous and heterogeneous collaborative
  neighbour learning), with the schedule of the epoch (stage, neighbour terms, CNL
  direction) taken from the recipe;
* :meth:`SDCLObjective.update`: the memory updates after the optimiser step, in the official
  order (instance memories; cluster memories RGB batch before IR batch, which matters for
  the shared stage-2 memories), without gradient and synchronised over
  ``torch.distributed`` ranks.

A loop around it::

    objective = SDCLObjective.from_pseudo_labels(pseudo_labels, features, recipe, epoch)
    for images_rgb, images_ir, labels, indices in batches:
        deep, shallow = model(...)                       # RGB rows first, then IR rows
        out = objective.loss(deep, shallow, labels, indices, num_rgb=len(images_rgb))
        optimizer.zero_grad(); out.total.backward(); optimizer.step()
        objective.update(deep, shallow, labels, indices, num_rgb=len(images_rgb))

Equations (Yang et al., CVPR 2024; official ``ClusterContrastTrainer_SDCL.train``)::

    total = sum_m [CE(f_d^m, M_d^m) + lambda_sd CE(f_s^m, M_s^m)]
          + w_hom(stage) * sum_m [a_d L_d(m -> m) + a_s L_s(m -> m)]        (from hm)
          + w_het(stage) * [b_d L_d(q -> t) + b_s L_s(q -> t)]                 (from ht)

with ``m`` in {RGB, IR}, ``(q, t)`` = (RGB, IR) on even epochs and (IR, RGB) on odd ones,
``(a_d, a_s) = (1, 0.5)``, ``(b_d, b_s) = (0.1, 0.05)`` for RGB -> IR and ``(1, 0.5)`` for
IR -> RGB, ``(w_hom, w_het) = (1, 0.5)`` in stage 1 and ``(0.1, 0.1)`` in stage 2 (all read
from the recipe). The gradient is that of the loss as evaluated, every memory at its
pre-step value (the official code's backward reads instance-memory rows it has already
overwritten; see docs/objective.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from ._arrays import ArrayLike, as_labels
from ._validation import check_int
from .losses import CollaborativeNeighborLearning
from .memory import ClusterMemory, InstanceMemory, check_features
from .modality import IR, MODALITIES, RGB, Direction
from .recipe import OFFICIAL_SYSU, SDCLRecipe

__all__ = ["SDCLObjective", "SDCLMemories", "SDCLLoss", "PART_NAMES", "OFFICIAL_PART_NAMES"]

PART_NAMES: tuple[str, ...] = (
    "contrast_rgb_deep",
    "contrast_rgb_shallow",
    "contrast_ir_deep",
    "contrast_ir_shallow",
    "homogeneous_rgb_deep",
    "homogeneous_rgb_shallow",
    "homogeneous_ir_deep",
    "homogeneous_ir_shallow",
    "heterogeneous_rgb_to_ir_deep",
    "heterogeneous_rgb_to_ir_shallow",
    "heterogeneous_ir_to_rgb_deep",
    "heterogeneous_ir_to_rgb_shallow",
)
"""The twelve named parts of :attr:`SDCLLoss.parts`."""

OFFICIAL_PART_NAMES: dict[str, str] = {
    "contrast_rgb_deep": "loss_rgb",
    "contrast_rgb_shallow": "loss_rgb_s",
    "contrast_ir_deep": "loss_ir",
    "contrast_ir_shallow": "loss_ir_s",
    "homogeneous_rgb_deep": "rgb_rgb_loss",
    "homogeneous_rgb_shallow": "rgb_rgb_loss_s",
    "homogeneous_ir_deep": "ir_ir_loss",
    "homogeneous_ir_shallow": "ir_ir_loss_s",
    "heterogeneous_rgb_to_ir_deep": "rgb_ir_loss",
    "heterogeneous_rgb_to_ir_shallow": "rgb_ir_loss_s",
    "heterogeneous_ir_to_rgb_deep": "ir_rgb_loss",
    "heterogeneous_ir_to_rgb_shallow": "ir_rgb_loss_s",
}
"""Our part name -> the variable holding it in the official ``trainers.py``."""

_GROUPS = ("contrast", "homogeneous", "heterogeneous")


@dataclass
class SDCLLoss:
    """The loss of one batch.

    Attributes
    ----------
    total:
        Scalar float32 tensor to back-propagate:
        ``contrast + w_hom * homogeneous + w_het * heterogeneous``.
    parts:
        ``{name: scalar tensor}`` for the twelve :data:`PART_NAMES`. Each part carries its
        per-depth weight (``lambda_sd``, ``a_d``/``a_s``, ``b_d``/``b_s``) but not the stage
        scale, as the official variables do; parts not computed this epoch are 0.
    stage:
        1 or 2.
    direction:
        The heterogeneous direction of the epoch (:class:`~sdcl_toolkit.Direction`) or
        ``None``.
    group_weights:
        ``(w_hom, w_het)`` of the stage.
    group_sums:
        ``{"contrast", "homogeneous", "heterogeneous"}`` sums of the parts (see
        :meth:`groups`); built by :meth:`from_parts`.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]
    stage: int
    direction: Optional[Direction]
    group_weights: tuple[float, float]
    group_sums: dict[str, torch.Tensor]

    @classmethod
    def from_parts(
        cls,
        parts: dict[str, torch.Tensor],
        stage: int,
        direction: Optional[Direction],
        group_weights: tuple[float, float],
    ) -> SDCLLoss:
        """Sum the parts per group once and weight the groups:
        ``total = contrast + w_hom * homogeneous + w_het * heterogeneous`` (parts not computed
        this epoch are 0, so their groups add nothing)."""
        sums = {
            group: torch.stack([v for k, v in parts.items() if k.startswith(group)]).sum()
            for group in _GROUPS
        }
        w_hom, w_het = group_weights
        total = sums["contrast"] + w_hom * sums["homogeneous"] + w_het * sums["heterogeneous"]
        return cls(total, parts, stage, direction, group_weights, sums)

    def groups(self) -> dict[str, torch.Tensor]:
        """Sums of the parts per group (``contrast``, ``homogeneous``, ``heterogeneous``),
        without the stage scale."""
        return dict(self.group_sums)

    def as_floats(self) -> dict[str, float]:
        """``{"loss": total, group: sum, part: value}`` as Python floats (one host sync)."""
        groups = self.groups()
        names = ["loss", *groups, *self.parts]
        values = torch.stack(
            [
                self.total.detach(),
                *(g.detach() for g in groups.values()),
                *(p.detach() for p in self.parts.values()),
            ]
        ).tolist()
        return dict(zip(names, values))


@dataclass
class SDCLMemories:
    """The memories of one epoch.

    ``cluster_deep`` / ``cluster_shallow``: :class:`ClusterMemory` per modality (``"rgb"``,
    ``"ir"``); in stage 2 both keys hold one shared object. ``instance_deep`` /
    ``instance_shallow``: :class:`InstanceMemory` per modality (one row per training sample,
    indexed by the loaders' sample indices).
    """

    cluster_deep: dict[str, ClusterMemory]
    cluster_shallow: dict[str, ClusterMemory]
    instance_deep: dict[str, InstanceMemory]
    instance_shallow: dict[str, InstanceMemory]

    @property
    def shared(self) -> bool:
        """Whether both modalities train against one set of cluster memories (stage 2)."""
        return self.cluster_deep[RGB] is self.cluster_deep[IR]

    def __post_init__(self) -> None:
        for name in ("cluster_deep", "cluster_shallow", "instance_deep", "instance_shallow"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) or set(value) != set(MODALITIES):
                raise ValueError(
                    f"{name} must map both 'rgb' and 'ir' to a memory, got "
                    f"{sorted(value) if isinstance(value, Mapping) else value!r}"
                )
        for name in ("cluster_deep", "cluster_shallow"):
            value = getattr(self, name)
            if (value[RGB] is value[IR]) != (self.cluster_deep[RGB] is self.cluster_deep[IR]):
                raise ValueError(
                    "cluster_deep and cluster_shallow must both be shared or both per modality"
                )

    @classmethod
    def build(
        cls,
        deep_centroids: Mapping[str, ArrayLike],
        shallow_centroids: Mapping[str, ArrayLike],
        features: Mapping[str, tuple[ArrayLike, ArrayLike]],
        *,
        temp: float = OFFICIAL_SYSU.temp,
        momentum: float = OFFICIAL_SYSU.memory_momentum,
        mode: str = OFFICIAL_SYSU.memory_mode,
        instance_momentum: float = OFFICIAL_SYSU.instance_momentum,
        device: Optional[torch.device] = None,
    ) -> SDCLMemories:
        """Memories from centroids (``{"rgb": [C, D], "ir": [C, D]}``, the same object twice
        for shared stage-2 memories) and the raw per-sample features
        (``{"rgb": (deep [N_rgb, D], shallow [N_rgb, D]), "ir": (...)}``)."""
        for name, value in (
            ("deep_centroids", deep_centroids),
            ("shallow_centroids", shallow_centroids),
            ("features", features),
        ):
            if not isinstance(value, Mapping) or set(value) != set(MODALITIES):
                raise ValueError(f"{name} must have exactly the keys 'rgb' and 'ir'")

        def cluster(centroids: Mapping[str, ArrayLike]) -> dict[str, ClusterMemory]:
            made: dict[int, ClusterMemory] = {}
            out = {}
            for modality in MODALITIES:
                value = centroids[modality]
                if id(value) not in made:  # shared stage-2 centroids: one memory
                    memory = ClusterMemory.from_centroids(
                        value, temp=temp, momentum=momentum, mode=mode
                    )
                    made[id(value)] = memory if device is None else memory.to(device)
                out[modality] = made[id(value)]
            return out

        def instance(depth: int) -> dict[str, InstanceMemory]:
            out = {}
            for modality in MODALITIES:
                pair = features[modality]
                if not isinstance(pair, Sequence) or len(pair) != 2:
                    raise ValueError(f"features[{modality!r}] must be a (deep, shallow) pair")
                memory = InstanceMemory.from_features(pair[depth], momentum=instance_momentum)
                out[modality] = memory if device is None else memory.to(device)
            return out

        return cls(cluster(deep_centroids), cluster(shallow_centroids), instance(0), instance(1))


class SDCLObjective:
    """The SDCL loss of a batch and the post-step memory updates, for one epoch.

    Parameters
    ----------
    memories:
        The epoch's :class:`SDCLMemories` (see :meth:`from_pseudo_labels`).
    recipe:
        Hyper-parameters and schedule (default: the official SYSU-MM01 recipe).
    epoch:
        0-based epoch; selects the stage, the neighbour terms and the CNL direction.

    The memories must match the stage: shared cluster memories from ``recipe.cmlabel`` on,
    per-modality memories before (a mismatch raises ``ValueError``).
    """

    def __init__(
        self, memories: SDCLMemories, recipe: SDCLRecipe = OFFICIAL_SYSU, *, epoch: int
    ) -> None:
        if not isinstance(memories, SDCLMemories):
            raise TypeError(f"memories must be SDCLMemories, got {type(memories).__name__}")
        if not isinstance(recipe, SDCLRecipe):
            raise TypeError(f"recipe must be an SDCLRecipe, got {type(recipe).__name__}")
        self.memories = memories
        self.recipe = recipe
        self.epoch = check_int(epoch, "epoch", minimum=0)
        self.stage = recipe.stage(self.epoch)
        if memories.shared != (self.stage == 2):
            raise ValueError(
                f"epoch {epoch} is stage {self.stage} (cmlabel={recipe.cmlabel}) but the "
                f"memories are {'shared' if memories.shared else 'per modality'}; stage 1 "
                "trains each modality against its own cluster memories, stage 2 both against "
                "one shared set"
            )
        self.neighbors = recipe.homogeneous_active(epoch)
        direction = recipe.heterogeneous_direction(epoch)
        self.direction = None if direction is None else Direction(direction)
        self.group_weights = recipe.group_weights(self.stage)
        self.cnl = CollaborativeNeighborLearning(
            threshold=recipe.cnl_threshold, temp=recipe.cnl_temp
        )

    @classmethod
    def from_pseudo_labels(
        cls,
        pseudo_labels,
        features: Mapping[str, tuple[ArrayLike, ArrayLike]],
        recipe: SDCLRecipe = OFFICIAL_SYSU,
        *,
        epoch: int,
        device: Optional[torch.device] = None,
    ) -> SDCLObjective:
        """Build the epoch's memories and objective.

        Parameters
        ----------
        pseudo_labels:
            The :class:`~sdcl_toolkit.PseudoLabels` of the epoch (its centroids initialise
            the cluster memories; shared in stage 2).
        features:
            ``{"rgb": (deep, shallow), "ir": (deep, shallow)}`` raw features of every
            training sample, the ones that were pseudo-labelled (instance memories).
        recipe, epoch:
            As in the constructor; the cluster-memory momentum is
            ``recipe.memory_momentum_for(epoch)``.
        device:
            Where the memories live (default: where the centroids are).
        """
        memories = SDCLMemories.build(
            pseudo_labels.deep_centroids,
            pseudo_labels.shallow_centroids,
            features,
            temp=recipe.temp,
            momentum=recipe.memory_momentum_for(epoch),
            mode=recipe.memory_mode,
            instance_momentum=recipe.instance_momentum,
            device=device,
        )
        return cls(memories, recipe, epoch=epoch)

    def __repr__(self) -> str:
        return (
            f"SDCLObjective(recipe={self.recipe.name!r}, epoch={self.epoch}, "
            f"stage={self.stage}, neighbors={self.neighbors}, direction="
            f"{None if self.direction is None else self.direction.value!r})"
        )

    # ------------------------------------------------------------------ the loss

    def loss(
        self,
        deep: torch.Tensor,
        shallow: torch.Tensor,
        labels: ArrayLike,
        indices: ArrayLike,
        num_rgb: int,
    ) -> SDCLLoss:
        """Loss of one batch (no side effects).

        Parameters
        ----------
        deep, shallow:
            ``[B, D]`` raw online features (any float dtype; the loss is computed in
            float32). Rows ``[0, num_rgb)`` are RGB (both views: ``2 * n`` rows for ``n``
            images), rows ``[num_rgb, B)`` IR.
        labels:
            ``[B]`` pseudo-labels in the memories' label space (outliers removed).
        indices:
            ``[B]`` sample indices into the modality's instance memories.
        num_rgb:
            Number of RGB rows.
        """
        rgb, ir = self._split(deep, shallow, labels, indices, num_rgb)
        memories, recipe = self.memories, self.recipe
        zero = deep.new_zeros((), dtype=torch.float32)
        parts: dict[str, torch.Tensor] = dict.fromkeys(PART_NAMES, zero)
        batches = {RGB: rgb, IR: ir}
        for m in MODALITIES:
            d, s, y, _ = batches[m]
            parts[f"contrast_{m}_deep"] = memories.cluster_deep[m](d, y)
            parts[f"contrast_{m}_shallow"] = recipe.lambda_shallow * memories.cluster_shallow[m](
                s, y
            )
        if self.neighbors:
            for m in MODALITIES:
                d, s, _, i = batches[m]
                out = self.cnl(d, s, i, memories.instance_deep[m], memories.instance_shallow[m])
                parts[f"homogeneous_{m}_deep"] = recipe.homogeneous_deep * out.deep
                parts[f"homogeneous_{m}_shallow"] = recipe.homogeneous_shallow * out.shallow
        if self.direction is not None:
            query, target = (RGB, IR) if self.direction is Direction.RGB_TO_IR else (IR, RGB)
            d, s, _, i = batches[query]
            out = self.cnl(
                d,
                s,
                i,
                memories.instance_deep[query],
                memories.instance_shallow[query],
                target_deep=memories.instance_deep[target],
                target_shallow=memories.instance_shallow[target],
            )
            name = f"heterogeneous_{query}_to_{target}"
            weight_deep, weight_shallow = (
                (recipe.rgb_to_ir_deep, recipe.rgb_to_ir_shallow)
                if query == RGB
                else (recipe.ir_to_rgb_deep, recipe.ir_to_rgb_shallow)
            )
            parts[f"{name}_deep"] = weight_deep * out.deep
            parts[f"{name}_shallow"] = weight_shallow * out.shallow
        return SDCLLoss.from_parts(parts, self.stage, self.direction, self.group_weights)

    # ------------------------------------------------------------------ the update

    @torch.no_grad()
    def update(
        self,
        deep: torch.Tensor,
        shallow: torch.Tensor,
        labels: ArrayLike,
        indices: ArrayLike,
        num_rgb: int,
    ) -> None:
        """Move the memories with the batch, after the optimiser step (same arguments as
        :meth:`loss`).

        Order (official): instance memories of both modalities (each
        ``B[i] <- L2norm(0.9 B[i] + 0.1 f)`` in batch order), then the cluster memories with
        the RGB batch, then with the IR batch (each ``M[y] <- L2norm(mu M[y] + (1 - mu)
        L2norm(f))`` in batch order). With the shared stage-2 memories the IR batch moves
        centroids the RGB batch has already moved, as the official backward does. Under
        ``torch.distributed`` every update first gathers the batch of all ranks, so the
        memories stay identical on every rank.
        """
        rgb, ir = self._split(deep, shallow, labels, indices, num_rgb)
        memories = self.memories
        for m, (d, s, _, i) in ((IR, ir), (RGB, rgb)):
            InstanceMemory.update_many(
                [memories.instance_deep[m], memories.instance_shallow[m]],
                [d.detach(), s.detach()],
                i,
            )
        for m, (d, s, y, _) in ((RGB, rgb), (IR, ir)):
            ClusterMemory.update_many(
                [memories.cluster_deep[m], memories.cluster_shallow[m]], [d.detach(), s.detach()], y
            )

    # ------------------------------------------------------------------ helpers

    def _split(self, deep, shallow, labels, indices, num_rgb):
        for name, value in (("deep", deep), ("shallow", shallow)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
            if value.dim() != 2:
                raise ValueError(
                    f"{name} must be 2-D [batch, features], got shape {tuple(value.shape)}"
                )
        batch = deep.shape[0]
        if shallow.shape[0] != batch:
            raise ValueError(f"deep has {batch} rows but shallow has {shallow.shape[0]}")
        # dtype, width and NaN/inf under the caller's names (the memories would say "features")
        check_features(deep, "deep", self.memories.cluster_deep[RGB].num_features)
        check_features(shallow, "shallow", self.memories.cluster_shallow[RGB].num_features)
        num_rgb = check_int(num_rgb, "num_rgb")
        if not 0 < num_rgb < batch:
            raise ValueError(
                f"num_rgb must lie in [1, {batch - 1}] (the batch needs RGB and "
                f"IR rows), got {num_rgb}"
            )
        y = _as_index_tensor(labels, "labels", batch, deep.device)
        i = _as_index_tensor(indices, "indices", batch, deep.device)
        rgb = (deep[:num_rgb], shallow[:num_rgb], y[:num_rgb], i[:num_rgb])
        ir = (deep[num_rgb:], shallow[num_rgb:], y[num_rgb:], i[num_rgb:])
        return rgb, ir


def _as_index_tensor(
    values: ArrayLike, name: str, batch: int, device: torch.device
) -> torch.Tensor:
    tensor = as_labels(values, name, device=device)
    if tensor.shape[0] != batch:
        raise ValueError(f"{name} has {tensor.shape[0]} entries but the batch has {batch} rows")
    return tensor
