"""Training configuration: every hyper-parameter of the official recipe, with presets.

:class:`TrainConfig` holds the whole SDCL recipe (pseudo-labelling, losses, optimisation;
the values of :class:`sdcl_toolkit.recipe.SDCLRecipe`, see ``docs/recipe.md``). The presets are
the official SYSU-MM01 and RegDB settings and the CPU demo. :func:`build_parser` turns the
dataclass into command-line flags (``--field-name``), so every setting is a flag and the
preset only chooses the defaults::

    config = parse_config(TrainConfig.sysu(), argv)      # examples/train_sysu.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union, get_args, get_origin, get_type_hints

from .._validation import check_int, check_real
from ..recipe import OFFICIAL_SYSU as _SYSU
from ..recipe import RECIPE_FIELDS, RecipeError, SDCLRecipe
from .checkpoint import LAST_CHECKPOINT, read_checkpoint_config
from .flag_help import FLAG_HELP
from .resume_policy import RUN_CONTROL, resume_changes

__all__ = [
    "TrainConfig",
    "build_parser",
    "parse_config",
    "sysu_config_from_argv",
    "explicit_fields",
    "restore_for_resume",
    "parse_grid",
]


@dataclass
class TrainConfig:
    """Everything one training run needs. Hyper-parameter defaults are the official SYSU-MM01
    values, read from :class:`~sdcl_toolkit.SDCLRecipe` (the single source of official values;
    ``config.recipe()`` gives the recipe a run trains with, :meth:`from_recipe` the reverse).

    Data and model
    --------------
    dataset: ``"sysu"`` or ``"regdb"``.
    data_dir: raw dataset tree.
    generated_data: train on the generated miniature SYSU-MM01 tree (the demo's data); must
        be chosen explicitly (:meth:`demo` does), a missing ``data_dir`` is an error otherwise.
    cache_dir: where the generated tree is cached (default: the user cache).
    synthetic_identities, synthetic_images_per_camera, synthetic_nuisance,
    synthetic_ir_material_weight: the generated
    tree (see :func:`sdcl_toolkit.data.synthetic.write_synthetic_sysu`).
    regdb_trial: RegDB split 1..10 (one model per trial, as the official script).
    pretrained: path of ``vit_base_ics_cfs_lup.pth`` (or any timm-style ViT checkpoint), or
        ``"none"`` for a random initialisation; required (``None`` is refused by
        :meth:`validate`: the official recipe always starts from the checkpoint).
    checkpoint_grid: ``"ROWSxCOLS"`` token grid of the ``pretrained`` checkpoint (its
        ``pos_embed`` is resized from it); ``None``: the official checkpoint's
        (:attr:`SDCLRecipe.checkpoint_grid`).
    stem: ``"ics"`` or ``"linear"`` patch stem; ``None``: the model config's.
    model: backbone config name (``"vit_base"``, ``"tiny"``).
    height, width: input size; ``None`` takes the model config's size.
    norm_groups: batch-norm groups of a training step (1: the joint batch; 2: the official
        two-GPU ``DataParallel`` halves, see :meth:`ShallowDeepViT.forward_mixed`).

    Schedule, optimisation, pseudo-labels, memories, losses
    -------------------------------------------------------
    The fields of :class:`~sdcl_toolkit.SDCLRecipe` of the same names (see its docstring):
    epochs, cmlabel, iters_stage1, iters_stage2, batch_ir, batch_rgb, num_instances, lr,
    weight_decay, sgd_momentum, step_size, gamma, aug_jitter, aug_hue, aug_padding,
    aug_erasing, eps, min_samples, k1, k2, stage2_rgb_k1, cra_topk, cra_smooth_k,
    cluster_flip, memory_momentum, first_epoch_memory_momentum, stage2_memory_momentum,
    memory_mode, instance_momentum, temp, lambda_shallow, cnl_threshold, cnl_temp,
    homogeneous_start, heterogeneous_start, the per-depth CNL weights and the stage weights.
    use_cameras: prefer other cameras when drawing a PK batch's instances.

    Run control
    -----------
    rerank: k-reciprocal re-ranking in the run's evaluations.
    resume: continue ``output_dir/last.pth`` (see :mod:`sdcl_toolkit.engine.resume_policy`
        for which settings may change); overwrite: start a new run in a folder that holds
        one (without either, such a folder is refused).
    dist_timeout: seconds a process waits in a collective before a multi-process run fails.

    Pretraining on generated identities (the demo)
    ----------------------------------------------
    The official recipe starts from a pretrained ViT (TransReID-SSL, LUPerson). With
    ``pretrained="none"`` and ``pretrain_steps > 0``, the model is first trained with
    identity labels on a generated tree of *other* people (``pretrain_identities``, seed
    ``pretrain_seed``), a stand-in for that checkpoint; SDCL then learns on the target set
    without labels. ``pretrain_lr``: AdamW learning rate of that stage.
    """

    # data and model
    dataset: str = _SYSU.dataset
    data_dir: Optional[str] = None
    generated_data: bool = False
    cache_dir: Optional[str] = None
    synthetic_identities: int = 100
    synthetic_images_per_camera: int = 4
    synthetic_nuisance: float = 0.35
    synthetic_ir_material_weight: float = 0.3
    pretrain_steps: int = 0
    pretrain_identities: int = 150
    pretrain_seed: int = 1000
    pretrain_lr: float = 1e-3
    regdb_trial: int = 1
    pretrained: Optional[str] = None
    checkpoint_grid: Optional[str] = None
    stem: Optional[str] = None
    model: str = _SYSU.model
    height: Optional[int] = None
    width: Optional[int] = None
    norm_groups: int = _SYSU.norm_groups
    # schedule
    epochs: int = _SYSU.epochs
    cmlabel: int = _SYSU.cmlabel
    iters_stage1: int = _SYSU.iters_stage1
    iters_stage2: int = _SYSU.iters_stage2
    batch_ir: int = _SYSU.batch_ir
    batch_rgb: int = _SYSU.batch_rgb
    num_instances: int = _SYSU.num_instances
    use_cameras: bool = True
    aug_jitter: float = _SYSU.aug_jitter
    aug_hue: float = _SYSU.aug_hue
    aug_padding: int = _SYSU.aug_padding
    aug_erasing: float = _SYSU.aug_erasing
    lr: float = _SYSU.lr
    weight_decay: float = _SYSU.weight_decay
    sgd_momentum: float = _SYSU.sgd_momentum
    step_size: int = _SYSU.step_size
    gamma: float = _SYSU.gamma
    # pseudo-labels
    eps: float = _SYSU.eps
    min_samples: int = _SYSU.min_samples
    k1: int = _SYSU.k1
    k2: int = _SYSU.k2
    stage2_rgb_k1: int = _SYSU.stage2_rgb_k1
    cra_topk: int = _SYSU.cra_topk
    cra_smooth_k: int = _SYSU.cra_smooth_k
    cluster_flip: bool = _SYSU.cluster_flip
    association: str = "cra"
    """Stage-2 cross-modality association: ``cra`` (SDCL), ``centroid``, ``hungarian`` or
    ``ot`` (:func:`sdcl_toolkit.association.make_association`)."""
    bidirectional: bool = False
    """Keep an RGB -> IR association only where IR -> RGB agrees."""
    # memories and losses
    memory_momentum: float = _SYSU.memory_momentum
    first_epoch_memory_momentum: Optional[float] = _SYSU.first_epoch_memory_momentum
    stage2_memory_momentum: float = _SYSU.stage2_memory_momentum
    memory_mode: str = _SYSU.memory_mode
    instance_momentum: float = _SYSU.instance_momentum
    temp: float = _SYSU.temp
    lambda_shallow: float = _SYSU.lambda_shallow
    cnl_threshold: float = _SYSU.cnl_threshold
    cnl_temp: float = _SYSU.cnl_temp
    homogeneous_start: int = _SYSU.homogeneous_start
    heterogeneous_start: int = _SYSU.heterogeneous_start
    homogeneous_deep: float = _SYSU.homogeneous_deep
    homogeneous_shallow: float = _SYSU.homogeneous_shallow
    rgb_to_ir_deep: float = _SYSU.rgb_to_ir_deep
    rgb_to_ir_shallow: float = _SYSU.rgb_to_ir_shallow
    ir_to_rgb_deep: float = _SYSU.ir_to_rgb_deep
    ir_to_rgb_shallow: float = _SYSU.ir_to_rgb_shallow
    stage1_homogeneous: float = _SYSU.stage1_homogeneous
    stage1_heterogeneous: float = _SYSU.stage1_heterogeneous
    stage2_homogeneous: float = _SYSU.stage2_homogeneous
    stage2_heterogeneous: float = _SYSU.stage2_heterogeneous
    # evaluation
    eval_every: int = 5
    eval_before: bool = False
    trials: int = 10
    eval_batch_size: int = 128
    rerank: bool = False
    # run
    output_dir: str = "outputs/sdcl_sysu"
    seed: int = 1
    device: str = "auto"
    workers: Optional[int] = None
    threads: Optional[int] = None
    """torch CPU threads (``torch.set_num_threads``); ``None`` keeps torch's default."""
    amp: bool = False
    device_augmentation: bool = False
    """Augment each training batch on the training device
    (:class:`~sdcl_toolkit.data.batch_augment.SDCLBatchAugment`); workers only decode and
    resize."""
    compile: bool = False
    gradient_checkpointing: bool = False
    resume: bool = False
    overwrite: bool = False
    stop_after: Optional[int] = None
    dist_timeout: int = 900
    tensorboard: bool = False
    progress: bool = True
    drop_path_rate: Optional[float] = None

    # ------------------------------------------------------------------ presets

    @classmethod
    def from_recipe(cls, recipe: SDCLRecipe, **overrides: Any) -> TrainConfig:
        """A configuration whose hyper-parameters are ``recipe``'s, plus ``overrides``."""
        values = {name: getattr(recipe, name) for name in _SHARED_FIELDS}
        values["dataset"] = recipe.dataset
        values["output_dir"] = f"outputs/sdcl_{recipe.name}"
        return dataclasses.replace(cls(**values), **overrides)

    @classmethod
    def sysu(cls, **overrides: Any) -> TrainConfig:
        """Official SYSU-MM01 recipe (:meth:`SDCLRecipe.sysu`). Needs ``pretrained``: the
        TransReID-SSL checkpoint, or ``"none"`` for a random initialisation."""
        return cls.from_recipe(SDCLRecipe.sysu(), **overrides)

    @classmethod
    def regdb(cls, **overrides: Any) -> TrainConfig:
        """Official RegDB recipe (:meth:`SDCLRecipe.regdb`): 30 epochs x 50 iterations, stage
        2 from 20, eps 0.3, CRA depth 10, RGB k1 unchanged in stage 2, memory momentum 0.99 in
        the first epoch, neighbour terms from epoch 1."""
        return cls.from_recipe(SDCLRecipe.regdb(), **overrides)

    @classmethod
    def demo(cls, **overrides: Any) -> TrainConfig:
        """A few minutes on a CPU, no downloads: the generated miniature SYSU-MM01 (target,
        no labels used), the tiny ViT pretrained with labels on generated identities
        disjoint from the target (a stand-in for the LUPerson checkpoint), then SDCL with
        the official optimisation settings and a short schedule (8 epochs of 30 steps,
        stage 2 from epoch 4, heterogeneous CNL from epoch 2, PK batches of 32 + 32).
        Padding is scaled to the 32-pixel width; metrics are printed for the random
        initialisation, the pretrained start and the end of training. Its outputs are
        disposable: a new demo replaces the previous one (``overwrite=True``)."""
        base = cls.sysu(
            model="tiny",
            pretrained="none",
            generated_data=True,
            overwrite=True,
            synthetic_images_per_camera=10,
            epochs=8,
            cmlabel=4,
            heterogeneous_start=2,
            iters_stage1=30,
            iters_stage2=30,
            batch_ir=32,
            batch_rgb=32,
            num_instances=4,
            k1=20,
            stage2_rgb_k1=15,
            aug_padding=2,
            pretrain_steps=400,
            eval_every=0,
            eval_before=True,
            output_dir="outputs/demo",
            seed=0,
        )
        return dataclasses.replace(base, **overrides)

    @property
    def random_init(self) -> bool:
        """``pretrained == "none"``: start from a random initialisation (chosen explicitly)."""
        return isinstance(self.pretrained, str) and self.pretrained.strip().lower() == "none"

    @property
    def pretrained_path(self) -> Optional[str]:
        """The checkpoint to load, or ``None`` for a random initialisation."""
        return None if self.random_init else self.pretrained

    def recipe(self) -> SDCLRecipe:
        """The :class:`SDCLRecipe` this configuration trains with: the dataset's official
        recipe with this configuration's values (its name ends in ``+modified`` where they
        differ)."""
        base = (
            SDCLRecipe.for_dataset(self.dataset)
            if self.dataset in ("sysu", "regdb")
            else SDCLRecipe.sysu()
        )
        return base.replace(**{name: getattr(self, name) for name in _SHARED_FIELDS})

    # ------------------------------------------------------------------ helpers

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming every inconsistent setting; return ``self``.

        Checks everything a run needs before its first epoch, including every recipe value
        (:class:`SDCLRecipe` validates those: NaN, negative or out-of-range values)."""
        problems = []
        if self.dataset not in ("sysu", "regdb"):
            problems.append(f"dataset must be 'sysu' or 'regdb', got {self.dataset!r}")
        if self.dataset == "regdb" and self.data_dir is None:
            problems.append("RegDB needs --data-dir (the generated demo data is SYSU-MM01)")
        elif self.data_dir is None and not self.generated_data:
            problems.append(
                "no --data-dir: pass the dataset tree (--data-dir /data/SYSU-MM01), or "
                "--demo / --generated-data to train on the generated miniature SYSU-MM01"
            )
        if self.data_dir is not None and self.generated_data:
            problems.append("--data-dir and --generated-data exclude each other")
        if self.checkpoint_grid is not None and parse_grid(self.checkpoint_grid) is None:
            problems.append(
                f"checkpoint_grid must be ROWSxCOLS (e.g. 16x8 or 14x14), got "
                f"{self.checkpoint_grid!r}"
            )
        if self.stem not in (None, "ics", "linear"):
            problems.append(f"stem must be 'ics' or 'linear', got {self.stem!r}")
        if self.resume and self.overwrite:
            problems.append("--resume and --overwrite exclude each other")
        problems.extend(self._run_field_problems())
        if not 1 <= self.regdb_trial <= 10:
            problems.append(f"regdb_trial must be in 1..10, got {self.regdb_trial}")
        if self.pretrained is None:
            problems.append(
                f"no --pretrained checkpoint: the official recipe fine-tunes TransReID-SSL's "
                f"{SDCLRecipe.sysu().checkpoint} (ViT-B/16 ICS, self-supervised on LUPerson). "
                "Pass --pretrained PATH, or --pretrained none to train from a random "
                "initialisation on purpose"
            )
        if self.association not in ("cra", "centroid", "hungarian", "ot"):
            problems.append(
                "association must be 'cra', 'centroid', 'hungarian' or 'ot', got "
                f"{self.association!r}"
            )
        for name in ("trials", "eval_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if self.stop_after is not None and self.stop_after < 1:
            problems.append(f"stop_after must be >= 1, got {self.stop_after}")
        try:
            self.recipe()
        except RecipeError as error:
            problems.extend(error.problems)
        if problems:
            raise ValueError("invalid training configuration:\n  - " + "\n  - ".join(problems))
        return self

    def _run_field_problems(self) -> list[str]:
        """Type, NaN and range problems of the fields that are not recipe values."""
        integers = {  # name: minimum (None: any integer)
            "synthetic_identities": 1,
            "synthetic_images_per_camera": 1,
            "pretrain_steps": 0,
            "pretrain_identities": 1,
            "pretrain_seed": None,
            "seed": None,
            "eval_every": 0,
            "dist_timeout": 1,
        }
        optional_integers = {"height": 1, "width": 1, "workers": 0}
        reals = {  # name: (minimum, maximum, min_inclusive)
            "synthetic_nuisance": (0.0, 1.0, True),
            "synthetic_ir_material_weight": (0.0, 1.0, True),
            "pretrain_lr": (0.0, None, False),
        }
        problems = []

        def check(function: Callable[..., Any], name: str, **bounds: Any) -> None:
            try:
                function(getattr(self, name), name, **bounds)
            except (TypeError, ValueError) as error:
                problems.append(str(error))

        for name, minimum in integers.items():
            check(check_int, name, minimum=minimum)
        for name, minimum in optional_integers.items():
            if getattr(self, name) is not None:
                check(check_int, name, minimum=minimum)
        for name, (low, high, inclusive) in reals.items():
            check(check_real, name, minimum=low, maximum=high, min_inclusive=inclusive)
        if self.drop_path_rate is not None:
            check(check_real, "drop_path_rate", minimum=0.0, maximum=1.0, max_inclusive=False)
        return problems

    def stage(self, epoch: int) -> int:
        """1 before ``cmlabel``, 2 from it on."""
        return self.recipe().stage(epoch)

    def iterations(self, epoch: int) -> int:
        return self.recipe().iterations(epoch)

    def augmentation(self) -> dict[str, float]:
        """Keyword strengths for the official training pipelines (``rgb_train_transform`` ...)."""
        return self.recipe().augmentation()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


_SHARED_FIELDS = tuple(
    name
    for name in RECIPE_FIELDS
    if name in {f.name for f in fields(TrainConfig)}
    and name not in ("height", "width", "drop_path_rate", "checkpoint_grid")
)
"""Hyper-parameters that a :class:`TrainConfig` and an :class:`SDCLRecipe` share by name."""


def parse_grid(text: str) -> Optional[tuple[int, int]]:
    """``"16x8"`` -> ``(16, 8)``; ``None`` when ``text`` is not two positive integers."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        return None
    rows, cols = (int(p) for p in parts)
    return (rows, cols) if rows > 0 and cols > 0 else None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any):
    if get_origin(annotation) is Union:
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _none_or(convert_one: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert_one``, except that ``"none"`` (any case) clears an optional value."""

    def convert(text: str) -> Any:  # argparse names the type "convert" in its errors
        return None if text.lower() == "none" else convert_one(text)

    return convert


def build_parser(defaults: TrainConfig, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser with one flag per :class:`TrainConfig` field, defaults from
    ``defaults`` (so a preset's values are the script's defaults); ``--help`` describes
    every flag with its default (:data:`~sdcl_toolkit.engine.flag_help.FLAG_HELP`)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        kind, optional = _base_type(hints[f.name])
        default = getattr(defaults, f.name)
        help_text = FLAG_HELP.get(f.name, f.name.replace("_", " "))
        if kind is bool:
            parser.add_argument(
                _flag(f.name),
                default=default,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            convert: Callable[[str], Any] = {int: int, float: float, str: str}.get(kind, str)
            if optional and f.name != "pretrained":  # "none" is pretrained's explicit choice
                convert = _none_or(convert)

            parser.add_argument(
                _flag(f.name),
                type=convert,
                default=default,
                metavar=kind.__name__.upper(),
                help=help_text,
            )
    return parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the script's docstring as written and appends every flag's default."""


def explicit_fields(defaults: TrainConfig, argv: Optional[Sequence[str]]) -> set[str]:
    """The :class:`TrainConfig` fields whose flags appear in ``argv``."""
    parser = build_parser(defaults)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def restore_for_resume(config: TrainConfig, explicit: set[str]) -> TrainConfig:
    """``config`` for ``--resume``: every setting from ``output_dir/last.pth``'s record,
    except the flags in ``explicit`` that :mod:`~sdcl_toolkit.engine.resume_policy` lets
    change (the others raise :class:`~sdcl_toolkit.engine.resume_policy.ResumeConflictError`).

    So ``train_sysu.py --resume --output-dir X`` continues the run in ``X`` (its data,
    model and every setting), whatever preset the script would otherwise start from.
    """
    saved_values = read_checkpoint_config(Path(config.output_dir) / LAST_CHECKPOINT)
    if "generated_data" not in saved_values:  # checkpoints before the field existed
        saved_values["generated_data"] = saved_values.get("data_dir") is None
    current = config.to_dict()
    restored = {
        name: current[name] if name in RUN_CONTROL else saved_values.get(name, current[name])
        for name in current
    }
    wanted = {name: current[name] for name in explicit if name not in RUN_CONTROL}
    resume_changes(restored, {**restored, **wanted})
    return TrainConfig.from_dict({**restored, **wanted})


def parse_config(
    defaults: TrainConfig, argv: Optional[Sequence[str]] = None, description: str = ""
) -> TrainConfig:
    """Parse ``argv`` into a validated :class:`TrainConfig` whose defaults are ``defaults``.

    With ``--resume`` the configuration is the checkpoint's (:func:`restore_for_resume`)."""
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(defaults, description).parse_args(argv)
    config = dataclasses.replace(defaults, **dict(vars(args)))
    if config.resume and config.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    if config.resume:
        config = restore_for_resume(config, explicit_fields(defaults, argv))
    return config.validate()


DEMO_FLAG = "--demo"


def sysu_config_from_argv(
    argv: Optional[Sequence[str]] = None, description: str = ""
) -> TrainConfig:
    """The configuration of ``examples/train_sysu.py``.

    * no arguments at all, or ``--demo``: the CPU demo preset on the generated miniature
      SYSU-MM01 (``make demo``); any other flag still overrides it;
    * otherwise the official SYSU-MM01 preset, which needs ``--data-dir`` (a missing one is
      an error, never a silent switch to generated data);
    * ``--resume``: the run recorded in ``--output-dir`` (see :func:`restore_for_resume`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    demo = not argv or DEMO_FLAG in argv
    argv = [a for a in argv if a != DEMO_FLAG]
    defaults = TrainConfig.demo() if demo else TrainConfig.sysu()
    if description and DEMO_FLAG not in description:
        description += (
            f"\n{DEMO_FLAG}: start from the demo preset (generated data, tiny ViT); it is also "
            "what no arguments at all run."
        )
    return parse_config(defaults, argv, description)
