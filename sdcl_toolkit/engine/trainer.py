"""Two-stage SDCL training: a thin loop over the toolkit's parts.

One epoch:

1. extract the deep and shallow features of every training image of both modalities
   (eval mode; sharded across ranks and gathered);
2. pseudo-label them with :class:`~sdcl_toolkit.PseudoLabeler` (every rank takes part: the
   Jaccard kNN searches are sharded over the ranks and gathered, the rest runs on every rank
   identically; see :meth:`SDCLTrainer.pseudo_label`);
3. build the epoch's :class:`~sdcl_toolkit.SDCLObjective` (memories, losses, schedule, all
   from the run's :class:`~sdcl_toolkit.SDCLRecipe`);
4. train ``recipe.iterations(epoch)`` steps on the official PK batches: forward, the
   objective's loss, backward, optimiser step, the objective's memory update;
5. step the learning rate, write an atomic checkpoint, evaluate when due.

Failure behaviour (see ``docs/training.md``): the output folder is locked for the run's
lifetime and a fresh run never replaces another run's checkpoint; a dataset tree given
with ``--data-dir`` is checked (:func:`~sdcl_toolkit.data.dataset_check.quick_check`: layout,
both modalities in every split) and the evaluation split decoded before the first epoch;
diverging features, collapsed clustering and losses that are identically zero are reported
with what to change; a collective that fails because another process died raises
:class:`DistributedRunError` within ``--dist-timeout``.

The trainer owns no loss arithmetic and no memory-update order: both live in the objective.
Model, optimiser and scheduler may be injected (torchreid's ``Engine`` shape); by default
they are built from the configuration (:mod:`sdcl_toolkit.engine.builders`). The process
group is not created here: under ``torchrun`` call :func:`setup_distributed` first (as
:func:`run` and the examples do), and the trainer wraps the model in
DistributedDataParallel, gives each rank its share of every batch and keeps the memories
identical on all ranks.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional, cast

import torch
import torch.distributed as dist
from torch import nn

from ..data.batch_augment import SDCLBatchAugment
from ..data.dataset_check import quick_check
from ..data.loaders import default_num_workers, join_sdcl_batches, make_sdcl_train_loaders
from ..data.transforms import test_transform
from ..distributed import (
    broadcast_object,
    broadcast_tensor,
    get_rank,
    get_world_size,
    is_distributed,
)
from ..modality import IR, MODALITIES, RGB
from ..objective import SDCLObjective
from ..pipeline import PseudoLabeler, PseudoLabels
from .builders import build_model, build_optimizer, build_scheduler, resolve_device
from .checkpoint import (
    LAST_CHECKPOINT,
    capture_rng_state,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
)
from .config import TrainConfig
from .evaluation import EvaluationResult, evaluate_regdb, evaluate_sysu, format_results
from .features import autocast_context, extract_features
from .health import (
    check_clustering,
    check_features_finite,
    loader_starvation,
    zero_loss_parts,
)
from .preflight import check_evaluation_split, check_images_readable, evaluation_records
from .resume_policy import OPTIMISER, apply_optimiser_settings, resume_changes
from .run_dir import OutputDirLock, new_run_id, prepare_output_dir
from .run_log import RunLog, progress_bar

__all__ = [
    "SDCLTrainer",
    "MixedForward",
    "setup_distributed",
    "before_after_summary",
    "run",
    "DistributedRunError",
]


class DistributedRunError(RuntimeError):
    """A collective operation failed in a multi-process run: another process died, or did
    not answer within ``--dist-timeout`` seconds."""


def setup_distributed(device_arg: str = "auto", timeout_s: Optional[float] = None) -> torch.device:
    """Initialise ``torch.distributed`` from ``torchrun``'s environment (if present) and
    return this process' device (NCCL + ``cuda:LOCAL_RANK`` on GPU, gloo on CPU). Without
    ``WORLD_SIZE > 1`` it only resolves the device. ``timeout_s``: how long a collective
    waits for the other processes before it fails (``None``: torch's default, 30 min)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not is_distributed():
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["timeout"] = datetime.timedelta(seconds=timeout_s)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", **kwargs)
    return device


def before_after_summary(stages: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A table of cross-modality Rank-1 / mAP / mINP (percent) per setting and stage, e.g.
    ``[("random init", before), ("pretrained", ...), ("after SDCL", final)]``."""
    lines = ["cross-modality metrics (Rank-1 / mAP / mINP, %):"]
    settings = list(stages[-1][1])
    width = max(len(name) for name, _ in stages)
    for setting in settings:
        lines.append(f"  {setting}-search")
        for name, results in stages:
            if setting in results:
                r = results[setting]["mean"]
                lines.append(
                    f"    {name:<{width}}  {100 * r['rank1']:6.2f}  {100 * r['mAP']:6.2f}"
                    f"  {100 * r['mINP']:6.2f}"
                )
    return "\n".join(lines)


class MixedForward(nn.Module):
    """``model.forward_mixed(rgb, ir, norm_groups=...)`` as a module whose ``forward`` returns
    the joint ``(deep, shallow)`` batch (RGB rows first), so that DistributedDataParallel
    and ``torch.compile`` can wrap the training forward."""

    def __init__(self, model: nn.Module, norm_groups: int = 1) -> None:
        super().__init__()
        self.model = model
        self.norm_groups = norm_groups

    def forward(self, rgb: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model: Any = self.model
        out = model.forward_mixed(rgb, ir, norm_groups=self.norm_groups)
        return (
            torch.cat([out.rgb.deep, out.ir.deep]),
            torch.cat([out.rgb.shallow, out.ir.shallow]),
        )


def run(config: TrainConfig) -> dict[str, Any]:
    """Set up ``torch.distributed`` from ``torchrun``'s environment (if any), train with
    ``config`` and return the history (what the example scripts do)."""
    device = setup_distributed(config.device, config.dist_timeout)
    return SDCLTrainer(config, device=device).fit()


class SDCLTrainer:
    """Trains a :class:`~sdcl_toolkit.ShallowDeepViT` with SDCL on SYSU-MM01 or RegDB.

    ``SDCLTrainer(config).fit()`` runs the whole recipe: optional evaluation before
    training, the epochs (resuming from ``output_dir/last.pth`` with ``config.resume``),
    periodic and final evaluation. Checkpoints are chosen by the last epoch, never by test
    metrics.

    Parameters
    ----------
    config:
        The run's :class:`TrainConfig` (validated here; its :meth:`TrainConfig.recipe` is
        the recipe of every epoch).
    model, optimizer, scheduler:
        Injected parts (default: :func:`build_model`, :func:`build_optimizer`,
        :func:`build_scheduler` from ``config``). The model must behave like
        :class:`~sdcl_toolkit.ShallowDeepViT`: ``forward_mixed(rgb, ir, norm_groups=...)``
        for training, ``extract_branches`` / ``extract`` for features, ``img_size``.
        The scheduler is stepped once per epoch.
    device:
        Where to train (default: ``config.device``; ``"auto"`` = CUDA if available). Under
        ``torchrun``, call :func:`setup_distributed` first and pass the device it returns.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: Optional[nn.Module] = None,
        optimizer: Optional[torch.optim.Optimizer] = None,
        scheduler: Any = None,
        *,
        device: Optional[torch.device] = None,
    ) -> None:
        self.config = config.validate()
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.recipe = config.recipe()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
            raise RuntimeError(
                "WORLD_SIZE > 1 but torch.distributed is not initialised: call "
                "sdcl_toolkit.engine.setup_distributed() before building the trainer (or use "
                "sdcl_toolkit.engine.run)"
            )
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        self.rank, self.world = get_rank(), get_world_size()
        if config.batch_ir % self.world or config.batch_rgb % self.world:
            raise ValueError(
                f"batch_ir={config.batch_ir} and batch_rgb={config.batch_rgb} must "
                f"be divisible by the {self.world} processes"
            )
        self.output_dir = Path(config.output_dir)
        self.log = RunLog(self.output_dir, enabled=self.rank == 0, tensorboard=config.tensorboard)
        torch.manual_seed(config.seed)
        self.data_source = ""
        self.dataset = self._open_dataset()
        self.records = {m: self.dataset.train(m) for m in MODALITIES}
        self._check_evaluation_split()
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.train_model = self._wrap_model(self.model)
        self.optimizer = optimizer if optimizer is not None else build_optimizer(config, self.model)
        self.scheduler = (
            scheduler if scheduler is not None else build_scheduler(config, self.optimizer)
        )
        self.height, self.width = cast("tuple[int, int]", self.model.img_size)
        self.test_tf = test_transform(self.height, self.width)
        self.labeler = PseudoLabeler.from_recipe(
            self.recipe,
            association=config.association,
            bidirectional=config.bidirectional,
            group="world" if self.world > 1 else None,
        )
        self.batch_augment: Optional[SDCLBatchAugment] = (
            SDCLBatchAugment(self.height, self.width, **self.recipe.augmentation())
            if config.device_augmentation
            else None
        )
        self.augment_generator: Optional[torch.Generator] = None  # per epoch, see train_epoch
        self.start_epoch = 0
        self.history: dict[str, Any] = {}
        self.last_objective: Optional[SDCLObjective] = None  # the objective of the last epoch
        self._lock: Optional[OutputDirLock] = None  # rank 0's hold on output_dir while fit()

    # ------------------------------------------------------------------ setup

    def _open_dataset(self):
        config = self.config
        if config.data_dir is not None:
            self._check_dataset_tree(config.data_dir)
        if config.dataset == "regdb":
            from ..data.regdb import RegDB

            # validate() requires data_dir for RegDB; RegDB itself rejects a non-path
            return RegDB(cast(str, config.data_dir), trial=config.regdb_trial)
        from ..data.sysu_mm01 import SYSUMM01

        root = config.data_dir
        self.data_source = f"SYSU-MM01 tree {root}"
        if root is None:  # validate(): only with generated_data, chosen explicitly
            from ..data.synthetic import ensure_synthetic_sysu

            if self.rank == 0:
                root = str(
                    ensure_synthetic_sysu(
                        config.cache_dir,
                        identities=config.synthetic_identities,
                        images_per_camera=config.synthetic_images_per_camera,
                        nuisance=config.synthetic_nuisance,
                        ir_material_weight=config.synthetic_ir_material_weight,
                    )
                )
            root = broadcast_object(root)
            self.data_source = f"GENERATED miniature SYSU-MM01 (demo data) at {root}"
        return SYSUMM01(root)

    def _check_dataset_tree(self, root: str) -> None:
        """The cheap dataset check of :func:`~sdcl_toolkit.data.dataset_check.quick_check`
        (layout, split files, listed images exist, every split holds both modalities; no
        decoding) on rank 0; its :class:`~sdcl_toolkit.data.DatasetLayoutError`, listing every
        problem, is raised on every rank. Generated (demo) trees are written by the toolkit
        and not checked."""
        # DatasetLayoutError is both an OSError and a ValueError
        self._check_on_rank0(lambda: quick_check(root, self.config.dataset), (OSError, ValueError))

    def _check_evaluation_split(self) -> None:
        """Empty query/gallery sets and unreadable test images fail now, not after the
        last epoch (rank 0 decodes the images; every rank raises)."""
        config = self.config
        check_evaluation_split(self.dataset, config.dataset, config.trials)

        def decode_test_images() -> None:
            parts = evaluation_records(self.dataset, config.dataset, config.trials).values()
            check_images_readable([r for part in parts for r in part])

        self._check_on_rank0(decode_test_images, (ValueError,))

    def _check_on_rank0(
        self, check: Callable[[], Any], errors: tuple[type[BaseException], ...]
    ) -> None:
        """Run ``check`` on rank 0 only and raise the ``errors`` it raises on every rank
        (the other ranks would otherwise wait at the next collective)."""
        problem = None
        if self.rank == 0:
            try:
                check()
            except errors as error:
                problem = error
        problem = broadcast_object(problem)
        if problem is not None:
            raise problem

    def _wrap_model(self, model: nn.Module) -> Any:
        wrapped: Any = MixedForward(model, self.config.norm_groups)
        if is_distributed():
            wrapped = nn.parallel.DistributedDataParallel(
                wrapped, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if self.config.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / LAST_CHECKPOINT

    def _train_image_counts(self) -> dict[str, int]:
        return {m: len(self.records[m]) for m in MODALITIES}

    def save(self, epoch: int) -> None:
        """Write the end-of-epoch checkpoint (rank 0), atomically."""
        if self.rank == 0:
            save_checkpoint(
                self.checkpoint_path,
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "epoch": epoch,
                    "rng": capture_rng_state(),
                    "config": self.config.to_dict(),
                    "history": self.history,
                    "run_id": self.log.run_id,
                    "train_images": self._train_image_counts(),
                },
            )
        if is_distributed():
            dist.barrier()

    def resume(self) -> None:
        """Continue from ``output_dir/last.pth``: weights, optimizer, scheduler, RNG, epoch.

        Settings that differ from the checkpoint's follow
        :mod:`~sdcl_toolkit.engine.resume_policy`: refused ones raise
        :class:`~sdcl_toolkit.engine.resume_policy.ResumeConflictError` before anything is
        loaded; new optimisation values are applied to the restored optimiser and scheduler.
        """
        state = load_checkpoint(self.checkpoint_path, map_location=self.device)
        changed = resume_changes(state["config"], self.config.to_dict())
        counts = state.get("train_images")
        if counts is not None and counts != self._train_image_counts():
            raise ValueError(
                f"--resume: the checkpoint was trained on {counts} training images, the data "
                f"now opened ({self.data_source}) has {self._train_image_counts()}; resume "
                "with the run's own --data-dir"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if OPTIMISER & set(changed):
            apply_optimiser_settings(self.optimizer, self.scheduler, self.config)
        restore_rng_state(state["rng"])
        self.history = state.get("history", {})
        self.start_epoch = int(state["epoch"]) + 1
        self.log.run_id = state.get("run_id") or self.log.run_id
        dropped = self.log.drop_after(int(state["epoch"]))
        self.log.info(
            f"resumed from {self.checkpoint_path} after epoch {state['epoch']}"
            + (
                "; settings changed: "
                + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
                if changed
                else ""
            )
            + (f"; dropped {dropped} log record(s) of unsaved epochs" if dropped else "")
        )
        self.log.event(
            "resume",
            epoch=int(state["epoch"]),
            changed={k: {"was": old, "now": new} for k, (old, new) in changed.items()},
        )

    # ------------------------------------------------------------------ epoch parts

    def extract_training_features(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Raw deep and shallow features of every training image, per modality."""
        out = {}
        for modality in MODALITIES:
            out[modality] = extract_features(
                self.model,
                self.records[modality],
                modality,
                self.test_tf,
                device=self.device,
                batch_size=self.config.eval_batch_size,
                flip=self.config.cluster_flip,
                amp=self.config.amp,
                num_workers=self.config.workers,
                progress=self._bar(f"features {modality}"),
            )
        return out

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics. DDP broadcasts buffers at the start
        of each forward, so after the last step they differ by one local update; the
        official DataParallel model keeps replica 0's statistics."""
        if is_distributed():
            for buffer in self.model.buffers():
                broadcast_tensor(buffer, src=0)

    def pretrain(self) -> dict[str, float]:
        """Supervised pretraining on a generated tree of other identities
        (:mod:`sdcl_toolkit.engine.pretrain`), the stand-in for a pretrained checkpoint."""
        from ..data.synthetic import ensure_synthetic_sysu
        from ..data.sysu_mm01 import SYSUMM01
        from .pretrain import pretrain_on_identities

        config = self.config
        root = None
        if self.rank == 0:
            root = str(
                ensure_synthetic_sysu(
                    config.cache_dir,
                    identities=config.pretrain_identities,
                    images_per_camera=6,
                    nuisance=config.synthetic_nuisance,
                    ir_material_weight=config.synthetic_ir_material_weight,
                    seed=config.pretrain_seed,
                    val_fraction=0.0,
                    test_fraction=0.05,
                )
            )
        auxiliary = SYSUMM01(broadcast_object(root))
        start = time.perf_counter()
        stats = pretrain_on_identities(
            self.model,
            {m: auxiliary.train(m) for m in MODALITIES},
            steps=config.pretrain_steps,
            device=self.device,
            lr=config.pretrain_lr,
            batch_size=config.batch_rgb,
            num_instances=config.num_instances,
            augmentation=self.recipe.augmentation(),
            seed=config.seed,
            amp=config.amp,
            num_workers=config.workers,
            progress=lambda it: progress_bar(
                it,
                enabled=config.progress and self.rank == 0,
                desc="pretraining",
                total=config.pretrain_steps,
            ),
        )
        stats["seconds"] = time.perf_counter() - start
        self.log.info(
            f"pretrained on {stats['classes']} generated identities (other people "
            f"than the target set): {stats['steps']} steps, loss "
            f"{stats['first_loss']:.2f} -> {stats['last_loss']:.2f}, "
            f"{stats['seconds']:.0f}s"
        )
        self.log.event("pretrain", **stats)
        return stats

    def pseudo_label(self, features, stage: int) -> PseudoLabels:
        """Pseudo-labels of the epoch, computed on every rank from the same gathered features.

        With several processes the labeler shards its Jaccard kNN searches over the ranks
        (``group="world"``, :mod:`sdcl_toolkit.knn_sharded`; identical to one process) on
        the training device (NCCL exchanges CUDA tensors); DBSCAN (scipy), the association
        and the centroids then run on every rank. A single process labels the features
        where :meth:`extract_training_features` left them (the CPU), as before. On the CPU
        they are deterministic, so every rank gets the same labels without a broadcast. On
        CUDA the float ``index_add_`` of the Jaccard accumulation and of the centroids uses
        atomic additions whose order may differ between processes, so the ranks compare a
        digest of their labels and centroids (:func:`_labels_digest`) and, if any differs,
        all take rank 0's result (logged as a warning): the memories stay identical on all
        ranks either way.
        """
        if self.world == 1:
            return self.labeler(
                features[RGB][0], features[RGB][1], features[IR][0], features[IR][1], stage=stage
            )
        on_device = {m: tuple(f.to(self.device) for f in features[m]) for m in MODALITIES}
        result = self.labeler(
            on_device[RGB][0], on_device[RGB][1], on_device[IR][0], on_device[IR][1], stage=stage
        )
        digests: list[Any] = [None] * self.world
        dist.all_gather_object(digests, _labels_digest(result))
        if all(d == digests[0] for d in digests):
            return result
        self.log.warning(
            f"the pseudo-labels of the ranks differ in the last bits (non-deterministic CUDA "
            f"additions on {self.device.type}); every rank uses rank 0's"
        )
        shared = broadcast_object(_map_tensors(result, lambda t: t.cpu()))
        return cast(PseudoLabels, _map_tensors(shared, lambda t: t.to(self.device)))

    def train_loaders(self, labels: PseudoLabels, epoch: int):
        """The epoch's RGB and IR loaders over the samples the pseudo-labels keep."""
        config = self.config
        return make_sdcl_train_loaders(
            self.records,
            {RGB: labels.rgb.training_labels(), IR: labels.ir.training_labels()},
            batch_rgb=config.batch_rgb,
            batch_ir=config.batch_ir,
            num_instances=config.num_instances,
            num_iterations=self.recipe.iterations(epoch),
            height=self.height,
            width=self.width,
            augmentation=self.recipe.augmentation(),
            use_cameras=config.use_cameras,
            epoch=epoch,
            seed=config.seed,
            num_replicas=self.world,
            rank=self.rank,
            num_workers=config.workers,
            device_augmentation=config.device_augmentation,
        )

    def augmentation_generator(self, epoch: int) -> torch.Generator:
        """The random stream of the on-device augmentation in ``epoch`` on this rank.

        A fresh ``torch.Generator`` on the training device seeded with
        ``(seed * 1_000_003 + epoch) * 1_009 + rank`` (mod 2**63): derived from the run's
        seed, the epoch and the rank only, so a run resumed at an epoch boundary draws the
        same augmentations as an uninterrupted one (nothing to checkpoint), and the ranks,
        which load different samples, draw independent parameters."""
        seed = ((self.config.seed * 1_000_003 + epoch) * 1_009 + self.rank) % (2**63)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator

    def train_step(self, batch_rgb, batch_ir, objective: SDCLObjective) -> dict[str, float]:
        """One optimisation step; returns the loss, its groups and parts (floats).

        With ``config.device_augmentation`` the loaders' uint8 images are augmented here, on
        the training device (:class:`~sdcl_toolkit.data.batch_augment.SDCLBatchAugment`,
        parameters from :attr:`augment_generator`, set per epoch by :meth:`train_epoch`)."""
        if self.batch_augment is not None:
            batch = self.batch_augment(
                batch_rgb, batch_ir, self.device, generator=self.augment_generator
            )
        else:
            batch = join_sdcl_batches(batch_rgb, batch_ir, self.device)
        with autocast_context(self.device, self.config.amp):
            deep, shallow = self.train_model(batch.rgb, batch.ir)
        deep, shallow = deep.float(), shallow.float()
        out = objective.loss(deep, shallow, batch.labels, batch.indices, batch.num_rgb)
        if not torch.isfinite(out.total):
            raise FloatingPointError(
                f"the training loss became {out.total.item()} in epoch {objective.epoch}; lower "
                "--lr or, as the authors advise, use a larger memory momentum in the first "
                "epoch (--first-epoch-memory-momentum 0.9)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        self.optimizer.step()
        objective.update(deep, shallow, batch.labels, batch.indices, batch.num_rgb)
        return out.as_floats()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        config, recipe = self.config, self.recipe
        stage = recipe.stage(epoch)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        features = self.extract_training_features()
        timings["features"] = time.perf_counter() - start

        check_features_finite(features, epoch)
        start = time.perf_counter()
        labels = self.pseudo_label(features, stage)
        timings["pseudo_labels"] = time.perf_counter() - start
        for warning in check_clustering(labels.summary(), epoch, self.config):
            self.log.warning(warning)
        objective = SDCLObjective.from_pseudo_labels(
            labels, features, recipe, epoch=epoch, device=self.device
        )
        del features
        try:
            loaders = self.train_loaders(labels, epoch)
        except ValueError as error:
            raise ValueError(
                f"epoch {epoch}: the pseudo-labels cannot fill a batch ({error}). Clustering "
                f"gave {labels.summary()}; the features may have collapsed (lower --lr) or eps "
                f"may not suit them"
            ) from error

        start = time.perf_counter()
        self.train_model.train()
        if self.batch_augment is not None:
            self.augment_generator = self.augmentation_generator(epoch)
        sums: dict[str, float] = defaultdict(float)
        steps = 0
        batches = progress_bar(
            zip(loaders[RGB], loaders[IR]),
            enabled=config.progress and self.rank == 0,
            desc=f"epoch {epoch} (stage {stage})",
            total=recipe.iterations(epoch),
        )
        iterator, waited = iter(batches), 0.0
        while True:
            asked = time.perf_counter()
            batch = next(iterator, None)  # the wait for the loaders: the device is idle
            waited += time.perf_counter() - asked
            if batch is None:
                break
            batch_rgb, batch_ir = batch
            parts = self.train_step(batch_rgb, batch_ir, objective)
            for key, value in parts.items():
                sums[key] += value
            steps += 1
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{parts['loss']:.3f}")
        timings["train"] = time.perf_counter() - start
        timings["data_wait"] = waited
        self._sync_buffers()
        self.scheduler.step()
        self.last_objective = objective

        summary = labels.summary()
        record = {
            "epoch": epoch,
            "stage": stage,
            "lr": self.optimizer.param_groups[0]["lr"],
            "losses": {k: v / max(steps, 1) for k, v in sums.items()},
            "steps": steps,
            "clusters": {m: summary[f"{m}_clusters"] for m in MODALITIES},
            "outliers": {m: summary[f"{m}_outliers"] for m in MODALITIES},
            "kept": {m: summary[f"{m}_kept"] for m in MODALITIES},
            "associated_fraction": summary.get("associated_fraction"),
            "seconds": {**timings, "association_steps": summary["seconds"]},
        }
        true_ids = {
            m: torch.tensor(
                [r.pid for r in self.records[m]],
                dtype=torch.int64,
                device=cast(torch.Tensor, labels.rgb.labels).device,  # where the labels are
            )
            for m in MODALITIES
        }
        if self.rank == 0 and all(bool((ids >= 0).all()) for ids in true_ids.values()):
            # diagnostics only (docs/association_methods.md): never used for training
            record["label_quality"] = labels.quality(true_ids[RGB], true_ids[IR])
        losses = record["losses"]
        assoc = record["associated_fraction"]
        self.log.info(
            f"epoch {epoch:3d} stage {stage} | loss {losses.get('loss', math.nan):.3f} "
            f"(contrast {losses.get('contrast', 0):.3f}, "
            f"hom {losses.get('homogeneous', 0):.3f}, "
            f"het {losses.get('heterogeneous', 0):.3f}) | clusters RGB "
            f"{record['clusters'][RGB]} IR {record['clusters'][IR]} | outliers RGB "
            f"{record['outliers'][RGB]} IR {record['outliers'][IR]}"
            + (f" | associated {100 * assoc:.1f}%" if assoc is not None else "")
            + f" | features {timings['features']:.1f}s labels {timings['pseudo_labels']:.1f}s "
            f"train {timings['train']:.1f}s (data wait {timings['data_wait']:.1f}s)"
        )
        self.log.event("epoch", **record)
        starving = loader_starvation(
            timings["data_wait"],
            timings["train"],
            self.device.type,
            default_num_workers() if config.workers is None else config.workers,
            config.device_augmentation,
        )
        if starving:
            self.log.warning(f"epoch {epoch}: {starving}")
        for part in zero_loss_parts(record["losses"], steps):
            self.log.warning(
                f"epoch {epoch}: the loss part {part!r} was exactly 0 in every step: it "
                "teaches nothing (one cluster per memory, or an empty neighbour set); check "
                "the clustering above (--eps, --k1) and the CNL settings"
            )
        return record

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> dict[str, EvaluationResult]:
        """Cross-modality evaluation with the dataset's protocol (all ranks take part)."""
        kwargs = dict(
            device=self.device,
            batch_size=self.config.eval_batch_size,
            amp=self.config.amp,
            num_workers=self.config.workers,
            progress=self._bar("evaluation"),
        )
        kwargs["rerank"] = self.config.rerank
        if self.config.dataset == "regdb":
            return evaluate_regdb(self.model, self.dataset, self.test_tf, **kwargs)
        return evaluate_sysu(
            self.model, self.dataset, self.test_tf, trials=self.config.trials, **kwargs
        )

    def _report(
        self, results: dict[str, EvaluationResult], title: str, epoch: int, per_trial: bool = False
    ) -> None:
        self.log.info(format_results(results, title, per_trial=per_trial))
        self.log.event(
            "eval", epoch=epoch, title=title, results={k: v.as_dict() for k, v in results.items()}
        )

    def _bar(self, desc: str):
        enabled = self.config.progress and self.rank == 0

        def wrap(iterable):
            return progress_bar(iterable, enabled=enabled, desc=desc)

        return wrap

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        """Run (or continue) training; returns ``{"before": ..., "final": ..., "epochs": ...}``.

        Rank 0 holds the output folder's lock (:class:`~sdcl_toolkit.engine.run_dir.
        OutputDirLock`) until it returns or raises."""
        try:
            return self._fit()
        except RuntimeError as error:
            if is_distributed() and _is_collective_failure(error):
                raise DistributedRunError(
                    f"rank {self.rank}/{self.world}: a collective operation failed "
                    f"({type(error).__name__}: {str(error).splitlines()[0][:300]}); another "
                    "process died or did not answer within --dist-timeout "
                    f"{self.config.dist_timeout}s. The run cannot continue; restart it with "
                    f"--resume --output-dir {self.output_dir} (it continues after the last "
                    "saved epoch)"
                ) from error
            raise
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            self.log.close()

    def claim_output_dir(self) -> None:
        """Claim the output folder (rank 0): take its lock (held until :meth:`fit` ends),
        refuse or clear a previous run, remove stale checkpoint temporaries, open the logs.
        A refusal is raised on every rank."""
        config = self.config
        message: Optional[str] = None
        problem: Optional[Exception] = None
        if self.rank == 0:
            try:
                self._lock = OutputDirLock(self.output_dir).acquire()
                message = prepare_output_dir(
                    self.output_dir, resume=config.resume, overwrite=config.overwrite
                )
            except (RuntimeError, OSError) as error:
                problem = error
            for stale in [] if problem else remove_stale_temporaries(self.checkpoint_path):
                message = (message + "; " if message else "") + (
                    f"removed {stale.name}, left by a killed checkpoint write"
                )
        problem = broadcast_object(problem)
        if problem is not None:
            raise problem
        self.log.run_id = new_run_id()
        self.log.open()
        if message:
            self.log.info(message)
        if is_distributed():
            dist.barrier()

    def _fit(self) -> dict[str, Any]:
        config = self.config
        self.claim_output_dir()
        if config.resume:
            self.resume()
        self.log.info(f"data: {self.data_source}")
        self.log.info(
            f"SDCL training: {config.dataset}, {len(self.records[RGB])} RGB + "
            f"{len(self.records[IR])} IR training images, model {config.model} "
            f"{self.height}x{self.width}, {self.world} process(es) on {self.device}, "
            f"epochs {self.start_epoch}..{config.epochs - 1}, stage 2 from "
            f"{config.cmlabel}, recipe {self.recipe.name}, batch-norm groups "
            f"{config.norm_groups}"
        )
        if self.rank == 0:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(config.to_json())
        pretraining = config.pretrain_steps > 0 and config.random_init and self.start_epoch == 0
        if config.eval_before and self.start_epoch == 0 and "before" not in self.history:
            before = self.evaluate()
            self._report(
                before,
                "before training (random initialisation)"
                if pretraining
                else "before training (initial weights)",
                epoch=-1,
            )
            self.history["before"] = {k: v.as_dict() for k, v in before.items()}
        if pretraining:
            self.pretrain()
            if config.eval_before:
                pretrained = self.evaluate()
                self._report(
                    pretrained, "after pretraining on other (generated) identities", epoch=-1
                )
                self.history["pretrained"] = {k: v.as_dict() for k, v in pretrained.items()}
        epochs_run = 0
        for epoch in range(self.start_epoch, config.epochs):
            record = self.train_epoch(epoch)
            self.history.setdefault("epochs", []).append(record)
            due = (
                config.eval_every
                and (epoch + 1) % config.eval_every == 0
                and epoch + 1 < config.epochs
            )
            if due:
                self._report(self.evaluate(), f"epoch {epoch}", epoch=epoch)
            self.save(epoch)
            epochs_run += 1
            if (
                config.stop_after is not None
                and epochs_run >= config.stop_after
                and epoch + 1 < config.epochs
            ):
                self.log.info(
                    f"stopping after {epochs_run} epoch(s) as asked; continue with: "
                    f"{resume_command(self.output_dir)}"
                )
                return self.history
        final = self.evaluate()
        self._report(
            final,
            f"final (last epoch {config.epochs - 1})",
            epoch=config.epochs - 1,
            per_trial=True,
        )
        self.history["final"] = {k: v.as_dict() for k, v in final.items()}
        if "before" in self.history:
            stages = [("initial weights", self.history["before"])]
            if "pretrained" in self.history:
                stages = [
                    ("random init", self.history["before"]),
                    ("pretrained", self.history["pretrained"]),
                ]
            stages.append((f"after SDCL ({config.epochs} epochs)", self.history["final"]))
            self.log.info(before_after_summary(stages))
        if self.rank == 0:
            (self.output_dir / "results.json").write_text(
                json.dumps(self.history, indent=2, default=str)
            )
        return self.history


def _labels_digest(labels: PseudoLabels) -> str:
    """SHA-256 of the labels, own clusters and centroids of ``labels`` (bitwise)."""
    import hashlib

    digest = hashlib.sha256()
    parts = [labels.rgb.labels, labels.rgb.cluster_labels, labels.ir.labels]
    parts += [labels.ir.cluster_labels]
    parts += [labels.deep_centroids[m] for m in MODALITIES]
    parts += [labels.shallow_centroids[m] for m in MODALITIES]
    for part in parts:
        array = part.detach().cpu().numpy() if isinstance(part, torch.Tensor) else part
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _map_tensors(obj: Any, fn: Any) -> Any:
    """``obj`` with ``fn`` applied to every tensor inside (dataclasses, dicts, lists,
    tuples, named tuples)."""
    import dataclasses

    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: _map_tensors(getattr(obj, f.name), fn)
            for f in dataclasses.fields(obj)
            if f.init
        }
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_map_tensors(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def resume_command(output_dir: Path) -> str:
    """The command that continues the run in ``output_dir`` as it was started (the script
    of this process, ``--resume`` and the folder; everything else is restored from the
    checkpoint)."""
    import shlex
    import sys

    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "examples/train_sysu.py"
    world = get_world_size()
    prefix = f"torchrun --nproc_per_node={world} " if world > 1 else "python "
    return f"{prefix}{shlex.quote(script)} --resume --output-dir {shlex.quote(str(output_dir))}"


def _is_collective_failure(error: BaseException) -> bool:
    """A failed/timed-out ``torch.distributed`` operation (gloo, NCCL or the store)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}:
        return True
    text = str(error).lower()
    return any(
        key in text
        for key in ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout")
    )
