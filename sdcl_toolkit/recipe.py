"""The official SDCL recipe: every hyper-parameter, once, with where it comes from.

:class:`SDCLRecipe` holds the values of the official implementation (Yang, Chen and Ye,
*Shallow-Deep Collaborative Learning for Unsupervised Visible-Infrared Person
Re-Identification*, CVPR 2024; code ``yangbincv/SDCL`` at commit 6033332). Everything else in
the toolkit reads them from here: the defaults of the components (``CNL``, ``ClusterMemory``,
``CRA``, ``PseudoLabeler`` ...), the training presets (``TrainConfig.sysu()`` /
``.regdb()``), :class:`~sdcl_toolkit.SDCLObjective` and the docs. A value is never written
twice, so the presets cannot drift from the components.

>>> recipe = SDCLRecipe.regdb()
>>> recipe.cra_topk, recipe.stage2_rgb_k1, recipe.eps
(10, 30, 0.3)
>>> recipe.source("cra_topk")
'cluster_contrast_vit_regdb.py:800-801 (Score_TOPK = 10)'
>>> recipe.stage(20), recipe.heterogeneous_direction(21)
(2, 'ir_to_rgb')

Presets: :meth:`SDCLRecipe.sysu` (``train_cc_vit_sysu.sh``, 2 GPUs), :meth:`SDCLRecipe.regdb`
(``train_cc_vit_regdb.sh``), :meth:`SDCLRecipe.sysu_4gpu` (the head commit's 4-GPU SYSU-MM01
variant). ``recipe.replace(k1=20)`` gives a modified copy (its name says it is modified).

This module imports nothing from the rest of the package (a leaf), so any module may read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Optional

from ._validation import check_choice, check_int, check_real

__all__ = [
    "SDCLRecipe",
    "RecipeError",
    "OFFICIAL_SYSU",
    "OFFICIAL_REGDB",
    "RECIPE_FIELDS",
    "recipe_table",
]

_SYSU_PY = "cluster_contrast_vit_sysu.py"
_REGDB_PY = "cluster_contrast_vit_regdb.py"
_SYSU4_PY = "cluster_contrast_vit_sysu_gpux4.py"
_TRAINER = "clustercontrast/trainers.py"


class RecipeError(ValueError):
    """Invalid recipe values; ``problems`` lists one message per bad value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid SDCL recipe:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SDCLRecipe:
    """Every hyper-parameter of SDCL training (official values by default: SYSU-MM01).

    Schedule (epochs are 0-based, as in the official scripts)
    ------------------------------------------------------------
    epochs: training epochs.
    cmlabel: first stage-2 epoch (CRA + shared cluster memories; official ``trainer.cmlabel``).
    homogeneous_start: first epoch with neighbour (CNL) terms at all (``trainer.hm``).
    heterogeneous_start: first epoch of the cross-modality CNL (``trainer.ht``); from then on
        even epochs RGB -> IR, odd epochs IR -> RGB.
    iters_stage1, iters_stage2: optimisation steps per epoch in each stage.
    batch_rgb, batch_ir: images per step and modality (all GPUs together); each RGB image is
        used twice (the second view adds channel exchange), so the RGB batch has
        ``2 * batch_rgb`` rows.
    num_instances: images per pseudo-identity in a PK batch.

    Optimisation
    ------------
    lr, weight_decay, sgd_momentum: SGD; step_size, gamma: ``StepLR``.

    Pseudo-labels
    -------------
    eps, min_samples: DBSCAN on the Jaccard distance.
    k1, k2: k-reciprocal encoding (``k1`` of IR always; of RGB in stage 1).
    stage2_rgb_k1: ``k1`` of the RGB Jaccard distance from ``cmlabel`` on.
    cra_topk: CRA ranking depth ``K``; cra_smooth_k: RGB neighbours voting in its smoothing.
    cluster_flip: clustering features averaged with the horizontally flipped image.

    Memories
    --------
    temp: cluster-memory softmax temperature.
    memory_momentum: cluster-memory momentum in stage 1.
    first_epoch_memory_momentum: momentum in epoch 0 if different (RegDB: 0.99), else ``None``.
    stage2_memory_momentum: momentum of the shared stage-2 cluster memories.
    memory_mode: ``"mean"`` (official ``CM``) or ``"hard"`` (``CM_Hard``).
    instance_momentum: instance-memory momentum (``Memory_wise_v3``).

    Losses
    ------
    lambda_shallow: weight of the shallow cluster-contrast term (``lamda_sd``).
    cnl_threshold, cnl_temp: CNL neighbour threshold (relative to the row maximum) and
        softmax temperature (hard-coded in the trainer, independent of ``temp``).
    homogeneous_deep, homogeneous_shallow: per-depth CNL weights (``lamda_d_neibor``,
        ``lamda_s_neibor``); rgb_to_ir_deep, rgb_to_ir_shallow, ir_to_rgb_deep,
        ir_to_rgb_shallow: those of the two heterogeneous directions.
    stage1_homogeneous, stage1_heterogeneous, stage2_homogeneous, stage2_heterogeneous:
        scale of the homogeneous / heterogeneous groups in the total loss of each stage.

    Model and input
    ---------------
    model: backbone config name; height, width: input size; drop_path_rate: stochastic depth.
    checkpoint: the pretrained backbone of the official runs; checkpoint_grid: its position
        embedding grid (rows, cols).
    norm_groups: batch-norm groups of one training step. The official run is
        ``DataParallel`` on 2 GPUs: each GPU normalises its half of the joint batch (RGB view
        1 + first half of IR on GPU 0; view 2 + second half of IR on GPU 1) and the running
        statistics kept are GPU 0's.

    Augmentation
    ------------
    aug_jitter, aug_hue: ``ColorJitter(jitter, jitter, jitter, hue)``; aug_padding: pad before
    the random crop; aug_erasing: random-erasing probability.
    """

    name: str = "sysu"
    dataset: str = "sysu"
    # schedule
    epochs: int = 50
    cmlabel: int = 30
    homogeneous_start: int = 0
    heterogeneous_start: int = 10
    iters_stage1: int = 200
    iters_stage2: int = 100
    batch_rgb: int = 128
    batch_ir: int = 128
    num_instances: int = 16
    # optimisation
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    sgd_momentum: float = 0.9
    step_size: int = 20
    gamma: float = 0.1
    # pseudo-labels
    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    stage2_rgb_k1: int = 15
    cra_topk: int = 20
    cra_smooth_k: int = 5
    cluster_flip: bool = True
    # memories
    temp: float = 0.05
    memory_momentum: float = 0.1
    first_epoch_memory_momentum: Optional[float] = None
    stage2_memory_momentum: float = 0.1
    memory_mode: str = "mean"
    instance_momentum: float = 0.9
    # losses
    lambda_shallow: float = 1.0
    cnl_threshold: float = 0.9
    cnl_temp: float = 0.05
    homogeneous_deep: float = 1.0
    homogeneous_shallow: float = 0.5
    rgb_to_ir_deep: float = 0.1
    rgb_to_ir_shallow: float = 0.05
    ir_to_rgb_deep: float = 1.0
    ir_to_rgb_shallow: float = 0.5
    stage1_homogeneous: float = 1.0
    stage1_heterogeneous: float = 0.5
    stage2_homogeneous: float = 0.1
    stage2_heterogeneous: float = 0.1
    # model and input
    model: str = "vit_base"
    height: int = 288
    width: int = 144
    drop_path_rate: float = 0.1
    checkpoint: str = "vit_base_ics_cfs_lup.pth"
    checkpoint_grid: tuple[int, int] = (16, 8)
    norm_groups: int = 2
    # augmentation
    aug_jitter: float = 0.5
    aug_hue: float = 0.5
    aug_padding: int = 10
    aug_erasing: float = 0.5

    # ------------------------------------------------------------------ presets

    @classmethod
    def sysu(cls) -> SDCLRecipe:
        """SYSU-MM01 (``train_cc_vit_sysu.sh`` + ``cluster_contrast_vit_sysu.py``, 2 GPUs)."""
        return _PRESETS["sysu"]

    @classmethod
    def regdb(cls) -> SDCLRecipe:
        """RegDB (``train_cc_vit_regdb.sh`` + ``cluster_contrast_vit_regdb.py``; one model per
        trial): 30 epochs x 50 steps, stage 2 from 20, eps 0.3, CRA depth 10, RGB ``k1``
        unchanged in stage 2, momentum 0.99 in epoch 0, no neighbour terms in epoch 0."""
        return _PRESETS["regdb"]

    @classmethod
    def sysu_4gpu(cls) -> SDCLRecipe:
        """The head commit's 4-GPU SYSU-MM01 variant (``cluster_contrast_vit_sysu_gpux4.py``):
        SYSU-MM01 with 112 RGB images per step, 4 instances per identity, no neighbour terms
        in epoch 0 and 4 batch-norm groups (note: ``train_cc_vit_sysu_gpux4.sh`` as committed
        launches the 2-GPU script with 4 instances on 4 GPUs instead)."""
        return _PRESETS["sysu_4gpu"]

    @classmethod
    def miniature(
        cls, epochs: int = 2, iters: int = 4, base: Optional[SDCLRecipe] = None
    ) -> SDCLRecipe:
        """**Not an official recipe**: ``base`` (default SYSU-MM01) shortened for a few CPU
        seconds on a generated miniature dataset (a few hundred images of ~16 people, 64x32
        pixels): stage 2 and the heterogeneous CNL from epoch 1, ``iters`` steps per epoch,
        PK batches of 8 + 8 with 2 instances, ``k1`` 6 / ``k2`` 2 / RGB stage-2 ``k1`` 5, CRA
        depth 5 with 3 smoothing neighbours, eps 0.7, padding 2. Used by the examples and the
        tests; its ``name`` is ``"miniature"``."""
        return (base or cls.sysu()).replace(
            name="miniature",
            epochs=epochs,
            cmlabel=1,
            heterogeneous_start=1,
            iters_stage1=iters,
            iters_stage2=iters,
            batch_rgb=8,
            batch_ir=8,
            num_instances=2,
            k1=6,
            k2=2,
            stage2_rgb_k1=5,
            cra_topk=5,
            cra_smooth_k=3,
            eps=0.7,
            aug_padding=2,
        )

    @classmethod
    def for_dataset(cls, name: str) -> SDCLRecipe:
        """The preset of ``"sysu"`` (``"SYSU-MM01"``), ``"regdb"`` or ``"sysu_4gpu"``."""
        if not isinstance(name, str):
            raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
        key = name.lower().replace("-", "").replace("_", "")
        key = {"sysumm01": "sysu", "sysu4gpu": "sysu_4gpu", "sysumm014gpu": "sysu_4gpu"}.get(
            key, key
        )
        if key not in _PRESETS:
            raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_PRESETS)}")
        return _PRESETS[key]

    # ------------------------------------------------------------------ values

    def replace(self, **changes: Any) -> SDCLRecipe:
        """A validated copy with ``changes``; its ``name`` gets a ``+modified`` suffix unless
        the values equal the original's or a new ``name`` is given."""
        unknown = sorted(set(changes) - set(RECIPE_FIELDS) - {"name", "dataset"})
        if unknown:
            raise TypeError(f"SDCLRecipe has no field(s) {unknown}")
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if changed and "name" not in changes and not self.name.endswith("+modified"):
            changes = {**changes, "name": self.name + "+modified"}
        return dataclasses.replace(self, **changes)

    def source(self, name: str) -> str:
        """Where ``name``'s value comes from in the official code (``file:line``), or
        ``"modified"`` for a value changed with :meth:`replace`."""
        if name not in RECIPE_FIELDS:
            raise KeyError(f"SDCLRecipe has no field {name!r}")
        base_name = self.name.split("+")[0]
        base = _PRESETS.get(base_name)
        if base is None or getattr(base, name) != getattr(self, name):
            return "modified"
        return _SOURCES[base_name][name]

    def sources(self) -> dict[str, str]:
        """``{field: source}`` for every value (see :meth:`source`)."""
        return {name: self.source(name) for name in RECIPE_FIELDS}

    def values(self) -> dict[str, Any]:
        """``{field: value}`` of every hyper-parameter (no ``name`` / ``dataset``)."""
        return {name: getattr(self, name) for name in RECIPE_FIELDS}

    def _checked(self, problems: list[str], check: Any, name: str, **limits: Any) -> None:
        """Run ``check(value, name, **limits)`` on field ``name``: store the normalised value
        (numpy scalars become Python numbers) or append the error message to ``problems``."""
        try:
            object.__setattr__(self, name, check(getattr(self, name), name, **limits))
        except (TypeError, ValueError) as error:
            problems.append(str(error))

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in (
            "epochs",
            "iters_stage1",
            "iters_stage2",
            "batch_rgb",
            "batch_ir",
            "num_instances",
            "step_size",
            "min_samples",
            "k1",
            "k2",
            "stage2_rgb_k1",
            "cra_topk",
            "cra_smooth_k",
            "height",
            "width",
            "norm_groups",
        ):
            self._checked(problems, check_int, name, minimum=1)
        for name in ("cmlabel", "homogeneous_start", "heterogeneous_start"):
            self._checked(problems, check_int, name, minimum=0)
        for name in ("lr", "temp", "cnl_temp", "gamma"):
            self._checked(problems, check_real, name, minimum=0.0, min_inclusive=False)
        for name in (
            "weight_decay",
            "lambda_shallow",
            "homogeneous_deep",
            "homogeneous_shallow",
            "rgb_to_ir_deep",
            "rgb_to_ir_shallow",
            "ir_to_rgb_deep",
            "ir_to_rgb_shallow",
            "stage1_homogeneous",
            "stage1_heterogeneous",
            "stage2_homogeneous",
            "stage2_heterogeneous",
            "drop_path_rate",
            "aug_jitter",
            "aug_hue",
            "aug_erasing",
        ):
            self._checked(problems, check_real, name, minimum=0.0)
        for name in (
            "memory_momentum",
            "stage2_memory_momentum",
            "instance_momentum",
            "sgd_momentum",
            "cnl_threshold",
        ):
            self._checked(problems, check_real, name, minimum=0.0, maximum=1.0)
        if self.first_epoch_memory_momentum is not None:
            self._checked(
                problems, check_real, "first_epoch_memory_momentum", minimum=0.0, maximum=1.0
            )
        if not _is_real(self.eps) or not 0 < self.eps <= 1:
            problems.append(
                f"eps must lie in (0, 1] (Jaccard distances lie in [0, 1]), got {self.eps!r}"
            )
        else:
            object.__setattr__(self, "eps", float(self.eps))
        self._checked(problems, check_choice, "memory_mode", choices=("mean", "hard"))
        if _is_real(self.aug_hue) and not 0 <= self.aug_hue <= 0.5:
            problems.append(f"aug_hue must lie in [0, 0.5], got {self.aug_hue!r}")
        if _is_real(self.aug_erasing) and self.aug_erasing > 1:
            problems.append(f"aug_erasing is a probability, got {self.aug_erasing!r}")
        self._checked(problems, check_int, "aug_padding", minimum=0)
        grid = self.checkpoint_grid
        if not (
            isinstance(grid, tuple) and len(grid) == 2 and all(_is_int(g) and g > 0 for g in grid)
        ):
            problems.append(
                f"checkpoint_grid must be a (rows, cols) pair of positive integers, got {grid!r}"
            )
        else:
            object.__setattr__(self, "checkpoint_grid", (int(grid[0]), int(grid[1])))
        for name in ("batch_rgb", "batch_ir"):
            value = getattr(self, name)
            if (
                isinstance(value, int)
                and isinstance(self.num_instances, int)
                and self.num_instances > 0
                and value % self.num_instances
            ):
                problems.append(
                    f"{name}={value} must be a multiple of num_instances={self.num_instances}"
                )
        if problems:
            raise RecipeError(problems)

    # ------------------------------------------------------------------ schedule

    def stage(self, epoch: int) -> int:
        """1 before ``cmlabel``, 2 from it on."""
        return 2 if _epoch(epoch) >= self.cmlabel else 1

    def iterations(self, epoch: int) -> int:
        """Optimisation steps in ``epoch``."""
        return self.iters_stage2 if self.stage(epoch) == 2 else self.iters_stage1

    def rgb_k1(self, stage: int) -> int:
        """``k1`` of the RGB Jaccard distance in ``stage`` (IR always uses ``k1``)."""
        return self.stage2_rgb_k1 if _stage(stage) == 2 else self.k1

    def memory_momentum_for(self, epoch: int) -> float:
        """Cluster-memory momentum of ``epoch``: the shared stage-2 value from ``cmlabel``,
        ``first_epoch_memory_momentum`` in epoch 0 when set, else ``memory_momentum``."""
        if self.stage(epoch) == 2:
            return self.stage2_memory_momentum
        if epoch == 0 and self.first_epoch_memory_momentum is not None:
            return self.first_epoch_memory_momentum
        return self.memory_momentum

    def homogeneous_active(self, epoch: int) -> bool:
        """Whether the neighbour terms (homogeneous, and heterogeneous when due) run."""
        return _epoch(epoch) >= self.homogeneous_start

    def heterogeneous_direction(self, epoch: int) -> Optional[str]:
        """``None``, ``"rgb_to_ir"`` (even epochs) or ``"ir_to_rgb"`` (odd epochs).

        Official gates: the neighbour block runs from ``homogeneous_start``, the
        cross-modality part inside it from ``heterogeneous_start``.
        """
        if not self.homogeneous_active(epoch) or epoch < self.heterogeneous_start:
            return None
        return "rgb_to_ir" if epoch % 2 == 0 else "ir_to_rgb"

    def group_weights(self, stage: int) -> tuple[float, float]:
        """``(homogeneous, heterogeneous)`` scales of the total loss in ``stage``."""
        if _stage(stage) == 2:
            return self.stage2_homogeneous, self.stage2_heterogeneous
        return self.stage1_homogeneous, self.stage1_heterogeneous

    def augmentation(self) -> dict[str, float]:
        """Keyword strengths of the official training pipelines (``rgb_train_transform``...)."""
        return dict(
            jitter=self.aug_jitter,
            hue=self.aug_hue,
            padding=self.aug_padding,
            erasing=self.aug_erasing,
        )


def _is_real(value: Any) -> bool:
    try:
        check_real(value, "value", allow_inf=True)
    except (TypeError, ValueError):
        return False
    return True


def _is_int(value: Any) -> bool:
    try:
        check_int(value, "value")
    except TypeError:
        return False
    return True


def _epoch(epoch: Any) -> int:
    return check_int(epoch, "epoch", minimum=0)


def _stage(stage: Any) -> int:
    return check_int(stage, "stage", minimum=1, maximum=2)


RECIPE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(SDCLRecipe) if f.name not in ("name", "dataset")
)
"""Names of the hyper-parameters of :class:`SDCLRecipe` (in declaration order)."""

# ---------------------------------------------------------------------- the presets

OFFICIAL_SYSU = SDCLRecipe()
"""The official SYSU-MM01 recipe (the class defaults); component defaults read it."""

OFFICIAL_REGDB = SDCLRecipe(
    name="regdb",
    dataset="regdb",
    epochs=30,
    cmlabel=20,
    homogeneous_start=1,
    iters_stage1=50,
    iters_stage2=50,
    eps=0.3,
    stage2_rgb_k1=30,
    cra_topk=10,
    first_epoch_memory_momentum=0.99,
)
"""The official RegDB recipe."""

_SYSU_4GPU = dataclasses.replace(
    OFFICIAL_SYSU,
    name="sysu_4gpu",
    batch_rgb=112,
    num_instances=4,
    homogeneous_start=1,
    norm_groups=4,
)

_PRESETS: dict[str, SDCLRecipe] = {
    "sysu": OFFICIAL_SYSU,
    "regdb": OFFICIAL_REGDB,
    "sysu_4gpu": _SYSU_4GPU,
}

_MODEL_SOURCES: dict[str, str] = {
    "model": "clustercontrast/model_vit_cmrefine/make_model.py:248 "
    "(vit_base_patch16_224_TransReID, STEM_CONV)",
    "drop_path_rate": "config/defaults.py:58 (MODEL.DROP_PATH = 0.1, not overridden)",
    "checkpoint": "vit_base_ics_288.yml:2 (PRETRAIN_PATH ./vit_base_ics_cfs_lup.pth)",
    "checkpoint_grid": "clustercontrast/model_vit_cmrefine/make_model.py:268 (hw_ratio=2: "
    "16x8 grid of 128 patches)",
    "lambda_shallow": f"{_TRAINER}:149 (lamda_sd = 1)",
    "cnl_threshold": f"{_TRAINER}:204-205 (thresh = hm_thresh = 0.9)",
    "cnl_temp": f"{_TRAINER}:226,234,257,265,290,298,324,333 (hard-coded /0.05)",
    "homogeneous_deep": f"{_TRAINER}:143 (lamda_d_neibor=1), used at 296,330",
    "homogeneous_shallow": f"{_TRAINER}:142 (lamda_s_neibor=0.5), used at 303,338",
    "rgb_to_ir_deep": f"{_TRAINER}:232 (0.1*lamda_d_neibor)",
    "rgb_to_ir_shallow": f"{_TRAINER}:240 (0.1*lamda_s_neibor)",
    "ir_to_rgb_deep": f"{_TRAINER}:263 (lamda_d_neibor)",
    "ir_to_rgb_shallow": f"{_TRAINER}:271 (lamda_s_neibor)",
    "stage1_homogeneous": f"{_TRAINER}:346 (1*(ir_ir_loss+rgb_rgb_loss+...))",
    "stage1_heterogeneous": f"{_TRAINER}:346 (0.5*(rgb_ir_loss+ir_rgb_loss+...))",
    "stage2_homogeneous": f"{_TRAINER}:343 (0.1*(ir_ir_loss+rgb_rgb_loss+...))",
    "stage2_heterogeneous": f"{_TRAINER}:343 (0.1*(rgb_ir_loss+ir_rgb_loss+...))",
    "memory_mode": "--use-hard is store_true and never passed (CM, not CM_Hard)",
}

_SYSU_SOURCES: dict[str, str] = {
    **_MODEL_SOURCES,
    "epochs": f"{_SYSU_PY}:1181 (--epochs default 50; not passed by train_cc_vit_sysu.sh)",
    "cmlabel": f"{_SYSU_PY}:508 (trainer.cmlabel=30)",
    "homogeneous_start": f"{_SYSU_PY}:509 (trainer.hm = 0)",
    "heterogeneous_start": f"{_SYSU_PY}:510 (trainer.ht = 10)",
    "iters_stage1": f"train_cc_vit_sysu.sh:1 (--iters 200; parser default 400 at {_SYSU_PY}:1182)",
    "iters_stage2": f"{_SYSU_PY}:643-645 (iters =100 from cmlabel on)",
    "batch_rgb": f"{_SYSU_PY}:479 (rgb_batch = 128; -b 256 only sizes test loaders)",
    "batch_ir": f"{_SYSU_PY}:478 (ir_batch = 128)",
    "num_instances": f"train_cc_vit_sysu.sh:1 (--num-instances 16; default 4 at {_SYSU_PY}:1155)",
    "lr": f"{_SYSU_PY}:1178 (--lr default 0.00035)",
    "weight_decay": f"{_SYSU_PY}:1180 (--weight-decay default 5e-4)",
    "sgd_momentum": f"{_SYSU_PY}:515 (SGD momentum=0.9)",
    "step_size": f"{_SYSU_PY}:1183 (--step-size default 20)",
    "gamma": f"{_SYSU_PY}:516 (StepLR gamma=0.1)",
    "eps": f"{_SYSU_PY}:598-599 (ir_eps = rgb_eps = 0.6; --eps is unused)",
    "min_samples": f"{_SYSU_PY}:601,603 (DBSCAN min_samples=4)",
    "k1": f"{_SYSU_PY}:641 (IR k1=30) and 1165 (--k1 default 30, RGB in stage 1)",
    "k2": f"{_SYSU_PY}:1167 (--k2 default 6)",
    "stage2_rgb_k1": f"{_SYSU_PY}:643-644 (args.k1=15 from cmlabel on)",
    "cra_topk": f"{_SYSU_PY}:765-766 (Score_TOPK = 20)",
    "cra_smooth_k": f"{_SYSU_PY}:797 (torch.topk(rgb_self_sim, 5))",
    "cluster_flip": f"clustercontrast/evaluators.py:31-55 (always flip-averaged), used at "
    f"{_SYSU_PY}:607-610",
    "temp": f"{_SYSU_PY}:1188 (--temp default 0.05)",
    "memory_momentum": f"train_cc_vit_sysu.sh:1 (--momentum 0.1; default 0.2 at {_SYSU_PY}:1175)",
    "first_epoch_memory_momentum": f"{_SYSU_PY}:656 (comment only: no epoch-0 override)",
    "stage2_memory_momentum": f"{_SYSU_PY}:864-866,873-874 (shared memories momentum=0.1)",
    "instance_momentum": f"{_SYSU_PY}:666 (wise_momentum=0.9)",
    "height": f"{_SYSU_PY}:1153 (--height default 288)",
    "width": f"{_SYSU_PY}:1154 (--width default 144)",
    "norm_groups": f"train_cc_vit_sysu.sh:1 (CUDA_VISIBLE_DEVICES=0,1) + {_SYSU_PY}:505-506 "
    "(nn.DataParallel, no SyncBN)",
    "aug_jitter": f"{_SYSU_PY}:536 (ColorJitter(0.5, 0.5, 0.5, 0.5))",
    "aug_hue": f"{_SYSU_PY}:536 (ColorJitter(0.5, 0.5, 0.5, 0.5))",
    "aug_padding": f"{_SYSU_PY}:545 (T.Pad(10))",
    "aug_erasing": f"{_SYSU_PY}:550 (ChannelRandomErasing(probability = 0.5))",
}

_REGDB_SOURCES: dict[str, str] = {
    **_MODEL_SOURCES,
    "epochs": f"train_cc_vit_regdb.sh:3 (--epochs 30; default 40 at {_REGDB_PY}:1066)",
    "cmlabel": f"{_REGDB_PY}:544 (trainer.cmlabel=20)",
    "homogeneous_start": f"{_REGDB_PY}:545 (trainer.hm = 1)",
    "heterogeneous_start": f"{_REGDB_PY}:546 (trainer.ht = 10)",
    "iters_stage1": f"train_cc_vit_regdb.sh:3 (--iters 50; default 400 at {_REGDB_PY}:1067)",
    "iters_stage2": "train_cc_vit_regdb.sh:3 (--iters 50; no stage-2 change in the script)",
    "batch_rgb": f"{_REGDB_PY}:513 (rgb_batch = 128)",
    "batch_ir": f"{_REGDB_PY}:512 (ir_batch = 128)",
    "num_instances": f"train_cc_vit_regdb.sh:3 (--num-instances 16; default 4 at {_REGDB_PY}:1039)",
    "lr": f"{_REGDB_PY}:1063 (--lr default 0.00035)",
    "weight_decay": f"{_REGDB_PY}:1065 (--weight-decay default 5e-4)",
    "sgd_momentum": f"{_REGDB_PY}:548 (SGD momentum=0.9)",
    "step_size": f"{_REGDB_PY}:1068 (--step-size default 20)",
    "gamma": f"{_REGDB_PY}:549 (StepLR gamma=0.1)",
    "eps": f"{_REGDB_PY}:632-633 (ir_eps = rgb_eps = 0.3; the script's --eps 0.6 is unused)",
    "min_samples": f"{_REGDB_PY}:635,637 (DBSCAN min_samples=4)",
    "k1": f"{_REGDB_PY}:675 (IR k1=30) and 1049 (--k1 default 30, RGB)",
    "k2": f"{_REGDB_PY}:1051 (--k2 default 6)",
    "stage2_rgb_k1": f"{_REGDB_PY}:677-679 (the stage-2 k1 change is commented out: RGB keeps 30)",
    "cra_topk": f"{_REGDB_PY}:800-801 (Score_TOPK = 10)",
    "cra_smooth_k": f"{_REGDB_PY}:832 (torch.topk(rgb_self_sim, 5))",
    "cluster_flip": "clustercontrast/evaluators.py:31-55 (always flip-averaged)",
    "temp": f"{_REGDB_PY}:1073 (--temp default 0.05)",
    "memory_momentum": f"{_REGDB_PY}:689-690 (args.momentum=0.1 from epoch 1 on)",
    "first_epoch_memory_momentum": f"train_cc_vit_regdb.sh:3 (--momentum 0.99), used at "
    f"{_REGDB_PY}:692-695,725-728",
    "stage2_memory_momentum": f"{_REGDB_PY}:900-901,909-910 (shared memories momentum=0.1)",
    "instance_momentum": f"{_REGDB_PY}:701 (wise_momentum=0.9)",
    "height": f"{_REGDB_PY}:1037 (--height default 288)",
    "width": f"{_REGDB_PY}:1038 (--width default 144)",
    "norm_groups": f"train_cc_vit_regdb.sh:3 (CUDA_VISIBLE_DEVICES=0,1) + {_REGDB_PY}:541-542 "
    "(nn.DataParallel)",
    "aug_jitter": f"{_REGDB_PY}:569 (ColorJitter(0.5, 0.5, 0.5, 0.5))",
    "aug_hue": f"{_REGDB_PY}:569 (ColorJitter(0.5, 0.5, 0.5, 0.5))",
    "aug_padding": f"{_REGDB_PY}:575-619 (T.Pad(10))",
    "aug_erasing": f"{_REGDB_PY}:575-619 (ChannelRandomErasing(probability = 0.5))",
}

_SYSU_4GPU_SOURCES: dict[str, str] = {
    **{k: f"{v}; unchanged in {_SYSU4_PY}" for k, v in _SYSU_SOURCES.items()},
    "batch_rgb": f"{_SYSU4_PY}:479 (rgb_batch = 112)",
    "num_instances": f"{_SYSU4_PY}:1157 (--num-instances default 4; "
    "train_cc_vit_sysu_gpux4.sh passes 4)",
    "homogeneous_start": f"{_SYSU4_PY}:509 (trainer.hm = 1)",
    "norm_groups": "train_cc_vit_sysu_gpux4.sh:1 (CUDA_VISIBLE_DEVICES=0,1,2,3) + nn.DataParallel",
}

_SOURCES: dict[str, dict[str, str]] = {
    "sysu": _SYSU_SOURCES,
    "regdb": _REGDB_SOURCES,
    "sysu_4gpu": _SYSU_4GPU_SOURCES,
}


def recipe_table(*recipes: SDCLRecipe) -> str:
    """A Markdown table of every value of ``recipes`` (default: the three presets) and where
    the first two take it from; docs/recipe.md holds its output."""
    chosen = recipes or tuple(_PRESETS.values())
    sourced = chosen[:2]
    header = (
        "| field | "
        + " | ".join(r.name for r in chosen)
        + " | "
        + " | ".join(f"source ({r.name})" for r in sourced)
        + " |"
    )
    lines = [header, "|" + "---|" * (1 + len(chosen) + len(sourced))]
    for name in RECIPE_FIELDS:
        values = " | ".join(_shown(getattr(r, name)) for r in chosen)
        sources = [r.source(name) for r in sourced]
        shown = [sources[0]] + ["same" if s == sources[0] else s for s in sources[1:]]
        lines.append(f"| `{name}` | {values} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)
