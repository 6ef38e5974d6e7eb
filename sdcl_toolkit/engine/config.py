"""Training configuration: every hyper-parameter of the official recipe, with presets.

:class:`TrainConfig` holds the whole SDCL recipe (SPEC sections 3, 7, 8). The presets are
the official SYSU-MM01 and RegDB settings and the CPU demo. :func:`build_parser` turns the
dataclass into command-line flags (``--field-name``), so every setting is a flag and the
preset only chooses the defaults::

    config = parse_config(TrainConfig.sysu(), argv)      # examples/train_sysu.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional, Sequence, Union, get_args, get_origin, get_type_hints

__all__ = ["TrainConfig", "build_parser", "parse_config", "sysu_config_from_argv"]


@dataclass
class TrainConfig:
    """The SDCL training recipe. Defaults are the official SYSU-MM01 values.

    Data and model
    --------------
    dataset: ``"sysu"`` or ``"regdb"``.
    data_dir: raw dataset tree; ``None`` generates the miniature SYSU-MM01 tree (demo).
    cache_dir: where the generated tree is cached (default: the user cache).
    synthetic_identities, synthetic_images_per_camera, synthetic_nuisance,
    synthetic_ir_material_weight: the generated
    tree (see :func:`sdcl_toolkit.data.synthetic.write_synthetic_sysu`).
    regdb_trial: RegDB split 1..10 (one model per trial, as the official script).
    pretrained: ``vit_base_ics_cfs_lup.pth`` or any timm-style ViT checkpoint.
    model: backbone config name (``"vit_base"``, ``"tiny"``).
    height, width: input size; ``None`` takes the model config's size.

    Schedule (SPEC section 8)
    -------------------------
    epochs, cmlabel (first stage-2 epoch), iters_stage1, iters_stage2, batch_ir, batch_rgb
    (images per step and modality, all ranks together; each RGB image is used twice),
    num_instances, lr, weight_decay, sgd_momentum, step_size, gamma; augmentation strengths
    aug_jitter, aug_hue, aug_padding, aug_erasing (official 0.5, 0.5, 10, 0.5).

    Pseudo-labels (SPEC sections 3-5)
    ---------------------------------
    eps, min_samples, k1, k2, stage2_rgb_k1, cra_topk, cra_smooth_k, cluster_flip
    (average clustering features with the flipped image, as the official
    ``extract_features`` does).

    Memories and losses (SPEC sections 6-7)
    ---------------------------------------
    memory_momentum, first_epoch_memory_momentum (RegDB: 0.99 in epoch 0), memory_mode,
    instance_momentum, temp, lambda_shallow, cnl_threshold, homogeneous_start,
    heterogeneous_start.

    Pretraining on generated identities (the demo)
    ----------------------------------------------
    The official recipe starts from a pretrained ViT (TransReID-SSL, LUPerson). Without one
    (``pretrained=None``) and with ``pretrain_steps > 0``, the model is first trained with
    identity labels on a generated tree of *other* people (``pretrain_identities``, seed
    ``pretrain_seed``), a stand-in for that checkpoint; SDCL then learns on the target set
    without labels. ``pretrain_lr``: AdamW learning rate of that stage.
    """

    # data and model
    dataset: str = "sysu"
    data_dir: Optional[str] = None
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
    model: str = "vit_base"
    height: Optional[int] = None
    width: Optional[int] = None
    # schedule
    epochs: int = 50
    cmlabel: int = 30
    iters_stage1: int = 200
    iters_stage2: int = 100
    batch_ir: int = 128
    batch_rgb: int = 128
    num_instances: int = 16
    use_cameras: bool = True
    aug_jitter: float = 0.5
    aug_hue: float = 0.5
    aug_padding: int = 10
    aug_erasing: float = 0.5
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
    # memories and losses
    memory_momentum: float = 0.1
    first_epoch_memory_momentum: Optional[float] = None
    memory_mode: str = "mean"
    instance_momentum: float = 0.9
    temp: float = 0.05
    lambda_shallow: float = 1.0
    cnl_threshold: float = 0.9
    homogeneous_start: int = 0
    heterogeneous_start: int = 10
    # evaluation
    eval_every: int = 5
    eval_before: bool = False
    trials: int = 10
    eval_batch_size: int = 128
    # run
    output_dir: str = "outputs/sdcl_sysu"
    seed: int = 1
    device: str = "auto"
    workers: Optional[int] = None
    amp: bool = False
    compile: bool = False
    gradient_checkpointing: bool = False
    resume: bool = False
    stop_after: Optional[int] = None
    tensorboard: bool = False
    progress: bool = True
    drop_path_rate: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ presets

    @classmethod
    def sysu(cls, **overrides: Any) -> "TrainConfig":
        """Official SYSU-MM01 recipe (``train_cc_vit_sysu.sh``): 50 epochs, stage 2 from 30."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def regdb(cls, **overrides: Any) -> "TrainConfig":
        """Official RegDB recipe (``train_cc_vit_regdb.sh``): 30 epochs x 50 iterations, stage 2
        from 20, eps 0.3, memory momentum 0.99 in the first epoch, homogeneous CNL from
        epoch 1, RGB k1 unchanged in stage 2."""
        base = cls(dataset="regdb", epochs=30, cmlabel=20, iters_stage1=50, iters_stage2=50,
                   eps=0.3, stage2_rgb_k1=30, first_epoch_memory_momentum=0.99,
                   homogeneous_start=1, output_dir="outputs/sdcl_regdb")
        return dataclasses.replace(base, **overrides)

    @classmethod
    def demo(cls, **overrides: Any) -> "TrainConfig":
        """A few minutes on a CPU, no downloads: the generated miniature SYSU-MM01 (target,
        no labels used), the tiny ViT pretrained with labels on generated identities
        disjoint from the target (a stand-in for the LUPerson checkpoint), then SDCL with
        the official optimisation settings and a short schedule (8 epochs of 30 steps,
        stage 2 from epoch 4, heterogeneous CNL from epoch 2, PK batches of 32 + 32).
        Padding is scaled to the 32-pixel width; metrics are printed for the random
        initialisation, the pretrained start and the end of training."""
        base = cls(model="tiny", synthetic_images_per_camera=10, epochs=8, cmlabel=4,
                   heterogeneous_start=2, iters_stage1=30, iters_stage2=30, batch_ir=32,
                   batch_rgb=32, num_instances=4, k1=20, stage2_rgb_k1=15, aug_padding=2,
                   pretrain_steps=400, eval_every=0, eval_before=True,
                   output_dir="outputs/demo", seed=0)
        return dataclasses.replace(base, **overrides)

    # ------------------------------------------------------------------ helpers

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming any inconsistent setting; return ``self``."""
        problems = []
        if self.dataset not in ("sysu", "regdb"):
            problems.append(f"dataset must be 'sysu' or 'regdb', got {self.dataset!r}")
        if self.dataset == "regdb" and self.data_dir is None:
            problems.append("RegDB needs --data-dir (the generated demo data is SYSU-MM01)")
        if not 1 <= self.regdb_trial <= 10:
            problems.append(f"regdb_trial must be in 1..10, got {self.regdb_trial}")
        for name in ("epochs", "iters_stage1", "iters_stage2", "batch_ir", "batch_rgb",
                     "num_instances", "trials", "eval_batch_size", "min_samples", "k1", "k2",
                     "stage2_rgb_k1", "cra_topk", "cra_smooth_k", "step_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_ir", "batch_rgb"):
            if getattr(self, name) % self.num_instances:
                problems.append(f"{name}={getattr(self, name)} must be a multiple of "
                                f"num_instances={self.num_instances}")
        if not 0 < self.eps <= 1:
            problems.append(f"eps must be in (0, 1], got {self.eps}")
        if self.memory_mode not in ("mean", "hard"):
            problems.append(f"memory_mode must be 'mean' or 'hard', got {self.memory_mode!r}")
        if self.cmlabel < 0 or self.heterogeneous_start < 0 or self.homogeneous_start < 0:
            problems.append("cmlabel, heterogeneous_start and homogeneous_start must be >= 0")
        if self.stop_after is not None and self.stop_after < 1:
            problems.append(f"stop_after must be >= 1, got {self.stop_after}")
        if problems:
            raise ValueError("invalid training configuration:\n  - " + "\n  - ".join(problems))
        return self

    def stage(self, epoch: int) -> int:
        """1 before ``cmlabel``, 2 from it on."""
        return 2 if epoch >= self.cmlabel else 1

    def iterations(self, epoch: int) -> int:
        return self.iters_stage2 if self.stage(epoch) == 2 else self.iters_stage1

    def memory_momentum_for(self, epoch: int) -> float:
        if epoch == 0 and self.first_epoch_memory_momentum is not None:
            return self.first_epoch_memory_momentum
        return self.memory_momentum

    def augmentation(self) -> Dict[str, float]:
        """Keyword strengths for the official training pipelines (``rgb_train_transform`` ...)."""
        return dict(jitter=self.aug_jitter, hue=self.aug_hue, padding=self.aug_padding,
                    erasing=self.aug_erasing)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any):
    if get_origin(annotation) is Union:
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def build_parser(defaults: TrainConfig, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser with one flag per :class:`TrainConfig` field, defaults from
    ``defaults`` (so a preset's values are the script's defaults)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if f.name == "extra":
            continue
        kind, optional = _base_type(hints[f.name])
        default = getattr(defaults, f.name)
        if kind is bool:
            parser.add_argument(_flag(f.name), default=default,
                                action=argparse.BooleanOptionalAction)
        else:
            convert = {int: int, float: float, str: str}.get(kind, str)
            if optional:
                def convert(text: str, _c=convert):  # "none" clears an optional value
                    return None if text.lower() == "none" else _c(text)
            parser.add_argument(_flag(f.name), type=convert, default=default,
                                metavar=kind.__name__.upper())
    return parser


def parse_config(defaults: TrainConfig, argv: Optional[Sequence[str]] = None,
                 description: str = "") -> TrainConfig:
    """Parse ``argv`` into a validated :class:`TrainConfig` whose defaults are ``defaults``."""
    args = build_parser(defaults, description).parse_args(argv)
    values = {k: v for k, v in vars(args).items()}
    return dataclasses.replace(defaults, **values).validate()



def sysu_config_from_argv(argv: Optional[Sequence[str]] = None,
                          description: str = "") -> TrainConfig:
    """The configuration of ``examples/train_sysu.py``: the official SYSU-MM01 preset when
    ``--data-dir`` is given, else the CPU demo preset on the generated miniature dataset
    (either way every field can be overridden by its flag)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data-dir", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults = TrainConfig.sysu() if known.data_dir else TrainConfig.demo()
    return parse_config(defaults, argv, description)
