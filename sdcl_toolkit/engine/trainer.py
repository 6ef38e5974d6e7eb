"""Two-stage SDCL training (SPEC sections 3 and 8), composed from the toolkit's parts.

One epoch:

1. extract the deep and shallow features of every training image of both modalities
   (eval mode; sharded across ranks and gathered);
2. pseudo-label them with :class:`~sdcl_toolkit.PseudoLabeler` (Jaccard + DBSCAN per
   modality; from epoch ``cmlabel`` CRA and shared memories) -- computed once on rank 0 and
   broadcast;
3. build the deep and shallow cluster memories from the centroids and the instance
   memories from the features;
4. train ``iters`` steps on PK-sampled batches (``batch_ir`` IR + ``batch_rgb`` RGB images,
   each RGB image twice: the second view adds channel exchange) with the shallow-deep
   contrast + homogeneous and heterogeneous CNL losses and their official weights;
5. step the learning rate, write an atomic checkpoint, evaluate when due.

Under ``torchrun`` the model is wrapped in DistributedDataParallel (NCCL on GPU, gloo on
CPU), each rank draws its share of every batch, and the memories are updated from the
batch gathered over all ranks, so every rank holds identical memories.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from ..association import CollaborativeRankingAssociation
from ..data.loaders import make_train_loader
from ..data.records import IR, RGB
from ..data.transforms import (ir_train_transform, rgb_train_transform,
                               rgb_train_transform_second_view, test_transform)
from ..distributed import (broadcast_object, broadcast_tensor, get_rank, get_world_size,
                           is_distributed)
from ..losses import (CollaborativeNeighborLearning, Direction, SDCLLossWeights,
                      ShallowDeepContrast, heterogeneous_direction)
from ..memory import ClusterMemory, InstanceMemory
from ..models import build_shallow_deep_vit
from ..pipeline import PseudoLabeler, PseudoLabels
from .checkpoint import (LAST_CHECKPOINT, capture_rng_state, load_checkpoint,
                         restore_rng_state, save_checkpoint)
from .config import TrainConfig
from .evaluation import EvaluationResult, evaluate_regdb, evaluate_sysu, format_results
from .features import autocast_context, extract_features
from .run_log import RunLog, progress_bar

__all__ = ["SDCLTrainer", "EpochMemories", "setup_distributed", "before_after_summary"]

MODALITIES = (RGB, IR)


def setup_distributed(device_arg: str = "auto") -> torch.device:
    """Initialise ``torch.distributed`` from ``torchrun``'s environment (if present) and
    return this process' device (NCCL + ``cuda:LOCAL_RANK`` on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_arg)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def before_after_summary(stages: Sequence[Tuple[str, Dict[str, Any]]]) -> str:
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
                lines.append(f"    {name:<{width}}  {100 * r['rank1']:6.2f}  {100 * r['mAP']:6.2f}"
                             f"  {100 * r['mINP']:6.2f}")
    return "\n".join(lines)


@dataclasses.dataclass
class EpochMemories:
    """The memories of one epoch: cluster memories per modality (the same objects for both
    modalities in stage 2) and instance memories per modality."""

    deep: Dict[str, ClusterMemory]
    shallow: Dict[str, ClusterMemory]
    instance_deep: Dict[str, InstanceMemory]
    instance_shallow: Dict[str, InstanceMemory]

    @classmethod
    def build(cls, labels: PseudoLabels, features: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
              config: TrainConfig, momentum: float, device: torch.device) -> "EpochMemories":
        def cluster(centroids: Dict[str, torch.Tensor]) -> Dict[str, ClusterMemory]:
            made: Dict[int, ClusterMemory] = {}
            out = {}
            for modality, value in centroids.items():
                if id(value) not in made:  # stage 2: one shared memory for both modalities
                    made[id(value)] = ClusterMemory.from_centroids(
                        value, temp=config.temp, momentum=momentum,
                        mode=config.memory_mode).to(device)
                out[modality] = made[id(value)]
            return out

        def instance(index: int) -> Dict[str, InstanceMemory]:
            return {m: InstanceMemory.from_features(
                features[m][index], momentum=config.instance_momentum).to(device)
                for m in MODALITIES}

        return cls(cluster(labels.deep_centroids), cluster(labels.shallow_centroids),
                   instance(0), instance(1))


class SDCLTrainer:
    """Trains a :class:`~sdcl_toolkit.ShallowDeepViT` with SDCL on SYSU-MM01 or RegDB.

    ``SDCLTrainer(config).fit()`` runs the whole recipe: optional evaluation before
    training, the epochs (resuming from ``output_dir/last.pth`` with ``config.resume``),
    periodic and final evaluation. Checkpoints are chosen by the last epoch, never by test
    metrics.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config.validate()
        self.device = setup_distributed(config.device)
        self.rank, self.world = get_rank(), get_world_size()
        if config.batch_ir % self.world or config.batch_rgb % self.world:
            raise ValueError(f"batch_ir={config.batch_ir} and batch_rgb={config.batch_rgb} must "
                             f"be divisible by the {self.world} processes")
        self.output_dir = Path(config.output_dir)
        self.log = RunLog(self.output_dir, enabled=self.rank == 0,
                          tensorboard=config.tensorboard)
        torch.manual_seed(config.seed)
        self.dataset = self._open_dataset()
        self.records = {m: self.dataset.train(m) for m in MODALITIES}
        self.model = self._build_model()
        self.train_model = self._wrap_model(self.model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.sgd_momentum,
                                         weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.step_size,
                                                         gamma=config.gamma)
        self.height, self.width = self.model.img_size
        self.test_tf = test_transform(self.height, self.width)
        self.sdc = ShallowDeepContrast(lambda_shallow=config.lambda_shallow)
        self.cnl = CollaborativeNeighborLearning(threshold=config.cnl_threshold, temp=config.temp)
        self.labeler = PseudoLabeler(
            eps=config.eps, min_samples=config.min_samples, k1=config.k1, k2=config.k2,
            stage2_rgb_k1=config.stage2_rgb_k1,
            cra=CollaborativeRankingAssociation(config.cra_topk, config.cra_smooth_k))
        self.start_epoch = 0
        self.history: Dict[str, Any] = {}
        self.last_memories: Optional[EpochMemories] = None  # memories at the end of an epoch

    # ------------------------------------------------------------------ setup

    def _open_dataset(self):
        config = self.config
        if config.dataset == "regdb":
            from ..data.regdb import RegDB

            return RegDB(config.data_dir, trial=config.regdb_trial)
        from ..data.sysu_mm01 import SYSUMM01

        root = config.data_dir
        if root is None:
            from ..data.synthetic import ensure_synthetic_sysu

            if self.rank == 0:
                self.log.info("no --data-dir: using the generated miniature SYSU-MM01 tree")
                root = str(ensure_synthetic_sysu(
                    config.cache_dir, identities=config.synthetic_identities,
                    images_per_camera=config.synthetic_images_per_camera,
                    nuisance=config.synthetic_nuisance,
                    ir_material_weight=config.synthetic_ir_material_weight))
            root = broadcast_object(root)
        return SYSUMM01(root)

    def _build_model(self) -> torch.nn.Module:
        config = self.config
        overrides: Dict[str, Any] = {}
        if config.height is not None or config.width is not None:
            from ..models import get_config

            base = get_config(config.model)
            overrides["img_size"] = (config.height or base.img_size[0],
                                     config.width or base.img_size[1])
        if config.drop_path_rate is not None:
            overrides["drop_path_rate"] = config.drop_path_rate
        model = build_shallow_deep_vit(config.model, pretrained=config.pretrained,
                                       gradient_checkpointing=config.gradient_checkpointing,
                                       **overrides)
        # vit.blocks[-1] and vit.norm only seed the b1/b2 branches: they get no gradient
        for module in (model.vit.blocks[-1], model.vit.norm):
            module.requires_grad_(False)
        return model.to(self.device)

    def _wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        wrapped: torch.nn.Module = model
        if is_distributed():
            wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.config.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / LAST_CHECKPOINT

    def save(self, epoch: int) -> None:
        """Write the end-of-epoch checkpoint (rank 0), atomically."""
        if self.rank == 0:
            save_checkpoint(self.checkpoint_path, {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": epoch,
                "rng": capture_rng_state(),
                "config": self.config.to_dict(),
                "history": self.history,
            })
        if is_distributed():
            dist.barrier()

    def resume(self) -> None:
        """Continue from ``output_dir/last.pth``: weights, optimizer, scheduler, RNG, epoch."""
        state = load_checkpoint(self.checkpoint_path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        self.history = state.get("history", {})
        self.start_epoch = int(state["epoch"]) + 1
        saved = TrainConfig.from_dict(state["config"])
        changed = {k: (getattr(saved, k), v) for k, v in self.config.to_dict().items()
                   if k not in ("resume", "stop_after", "progress") and getattr(saved, k, v) != v}
        self.log.info(f"resumed from {self.checkpoint_path} after epoch {state['epoch']}"
                      + (f"; settings changed since: {changed}" if changed else ""))

    # ------------------------------------------------------------------ epoch parts

    def extract_training_features(self) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
        """Raw deep and shallow features of every training image, per modality."""
        out = {}
        for modality in MODALITIES:
            out[modality] = extract_features(
                self.model, self.records[modality], modality, self.test_tf, device=self.device,
                batch_size=self.config.eval_batch_size, flip=self.config.cluster_flip,
                amp=self.config.amp, num_workers=self.config.workers,
                progress=self._bar(f"features {modality}"))
        return out

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics. DDP broadcasts buffers at the start
        of each forward, so after the last step they differ by one local update; the
        official DataParallel model keeps replica 0's statistics."""
        if is_distributed():
            for buffer in self.model.buffers():
                broadcast_tensor(buffer, src=0)

    def pretrain(self) -> Dict[str, float]:
        """Supervised pretraining on a generated tree of other identities
        (:mod:`sdcl_toolkit.engine.pretrain`), the stand-in for a pretrained checkpoint."""
        from ..data.sysu_mm01 import SYSUMM01
        from ..data.synthetic import ensure_synthetic_sysu
        from .pretrain import pretrain_on_identities

        config = self.config
        root = None
        if self.rank == 0:
            root = str(ensure_synthetic_sysu(
                config.cache_dir, identities=config.pretrain_identities, images_per_camera=6,
                nuisance=config.synthetic_nuisance,
                ir_material_weight=config.synthetic_ir_material_weight,
                seed=config.pretrain_seed, val_fraction=0.0, test_fraction=0.05))
        auxiliary = SYSUMM01(broadcast_object(root))
        start = time.perf_counter()
        stats = pretrain_on_identities(
            self.model, {m: auxiliary.train(m) for m in MODALITIES},
            steps=config.pretrain_steps, device=self.device, lr=config.pretrain_lr,
            batch_size=config.batch_rgb, num_instances=config.num_instances,
            augmentation=config.augmentation(),
            seed=config.seed, amp=config.amp, num_workers=config.workers,
            progress=lambda it: progress_bar(it, enabled=config.progress and self.rank == 0,
                                             desc="pretraining", total=config.pretrain_steps))
        stats["seconds"] = time.perf_counter() - start
        self.log.info(f"pretrained on {stats['classes']} generated identities (other people "
                      f"than the target set): {stats['steps']} steps, loss "
                      f"{stats['first_loss']:.2f} -> {stats['last_loss']:.2f}, "
                      f"{stats['seconds']:.0f}s")
        self.log.event("pretrain", **stats)
        return stats

    def pseudo_label(self, features, stage: int) -> PseudoLabels:
        """SPEC section 3 on rank 0, broadcast to all ranks."""
        result = None
        if self.rank == 0:
            result = self.labeler(features[RGB][0], features[RGB][1], features[IR][0],
                                  features[IR][1], stage=stage)
        return broadcast_object(result)

    def train_loaders(self, labels: PseudoLabels, epoch: int):
        config = self.config
        iterations = config.iterations(epoch)
        common = dict(num_iterations=iterations, num_instances=config.num_instances,
                      use_cameras=config.use_cameras, epoch=epoch, seed=config.seed,
                      num_replicas=self.world, rank=self.rank, num_workers=config.workers)
        strengths = config.augmentation()
        loaders = {}
        for modality, part, batch in ((IR, labels.ir, config.batch_ir),
                                      (RGB, labels.rgb, config.batch_rgb)):
            train_labels = torch.where(torch.as_tensor(part.kept), torch.as_tensor(part.labels),
                                       torch.tensor(-1))
            if modality == IR:
                transform, second = ir_train_transform(self.height, self.width, **strengths), None
            else:
                transform = rgb_train_transform(self.height, self.width, **strengths)
                second = rgb_train_transform_second_view(self.height, self.width, **strengths)
            loaders[modality] = make_train_loader(
                self.records[modality], transform, labels=train_labels.numpy(),
                batch_size=batch // self.world, second_transform=second, **common)
        return loaders

    def train_step(self, batch_ir, batch_rgb, memories: EpochMemories, epoch: int,
                   weights: SDCLLossWeights) -> Dict[str, float]:
        """One optimisation step; returns the loss parts (floats)."""
        config, device = self.config, self.device
        images_ir, labels_ir, _, index_ir = (t.to(device, non_blocking=True) for t in batch_ir)
        view1, view2, labels_rgb, _, index_rgb = (t.to(device, non_blocking=True)
                                                  for t in batch_rgb)
        images_rgb = torch.cat([view1, view2])
        labels_rgb = torch.cat([labels_rgb, labels_rgb])
        index_rgb = torch.cat([index_rgb, index_rgb])
        # official: one forward over both modalities (the necks' BatchNorm sees both)
        images = torch.cat([images_rgb, images_ir])
        is_ir = torch.zeros(images.shape[0], dtype=torch.bool, device=device)
        is_ir[images_rgb.shape[0]:] = True
        with autocast_context(device, config.amp):
            deep, shallow = self.train_model(images, is_ir)
        deep, shallow = deep.float(), shallow.float()
        n_rgb = images_rgb.shape[0]
        feats = {RGB: (deep[:n_rgb], shallow[:n_rgb], labels_rgb, index_rgb),
                 IR: (deep[n_rgb:], shallow[n_rgb:], labels_ir, index_ir)}

        contrast = [self.sdc(d, s, y, memories.deep[m], memories.shallow[m])
                    for m, (d, s, y, _) in ((IR, feats[IR]), (RGB, feats[RGB]))]
        homogeneous = []
        if epoch >= config.homogeneous_start:
            homogeneous = [self.cnl(d, s, i, memories.instance_deep[m],
                                    memories.instance_shallow[m])
                           for m, (d, s, _, i) in ((IR, feats[IR]), (RGB, feats[RGB]))]
        direction = heterogeneous_direction(epoch, config.heterogeneous_start)
        heterogeneous = None
        if direction is not None:
            query, target = (RGB, IR) if direction is Direction.RGB_TO_IR else (IR, RGB)
            d, s, _, i = feats[query]
            heterogeneous = self.cnl(d, s, i, memories.instance_deep[query],
                                     memories.instance_shallow[query],
                                     memories.instance_deep[target],
                                     memories.instance_shallow[target])
        loss = weights.combine(contrast, homogeneous, heterogeneous, direction)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {loss.item()} in epoch {epoch}; lower --lr or, as "
                "the authors advise, use a larger memory momentum in the first epoch")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

        with torch.no_grad():  # memories move after the step (official: inside backward)
            for m in (IR, RGB):
                d, s, y, i = feats[m]
                memories.instance_deep[m].update(d.detach(), i)
                memories.instance_shallow[m].update(s.detach(), i)
                self.sdc.update(d.detach(), s.detach(), y, memories.deep[m], memories.shallow[m])
        parts = {"loss": loss.item(),
                 "contrast": sum(c.total.item() for c in contrast),
                 "homogeneous": sum(h.weighted(weights.homogeneous_deep,
                                               weights.homogeneous_shallow).item()
                                    for h in homogeneous),
                 "heterogeneous": 0.0 if heterogeneous is None else heterogeneous.weighted(
                     *weights.heterogeneous_weights(direction)).item()}
        return parts

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        config = self.config
        stage = config.stage(epoch)
        timings: Dict[str, float] = {}
        start = time.perf_counter()
        features = self.extract_training_features()
        timings["features"] = time.perf_counter() - start

        start = time.perf_counter()
        labels = self.pseudo_label(features, stage)
        timings["pseudo_labels"] = time.perf_counter() - start
        memories = EpochMemories.build(labels, features, config,
                                       config.memory_momentum_for(epoch), self.device)
        del features
        try:
            loaders = self.train_loaders(labels, epoch)
        except ValueError as error:
            raise ValueError(
                f"epoch {epoch}: the pseudo-labels cannot fill a batch ({error}). Clustering "
                f"gave {labels.summary()}; the features may have collapsed (lower --lr) or eps "
                f"may not suit them") from error
        weights = SDCLLossWeights.official(stage)

        start = time.perf_counter()
        self.train_model.train()
        sums: Dict[str, float] = defaultdict(float)
        steps = 0
        iterations = config.iterations(epoch)
        batches = progress_bar(zip(loaders[IR], loaders[RGB]),
                               enabled=config.progress and self.rank == 0,
                               desc=f"epoch {epoch} (stage {stage})", total=iterations)
        for batch_ir, batch_rgb in batches:
            parts = self.train_step(batch_ir, batch_rgb, memories, epoch, weights)
            for key, value in parts.items():
                sums[key] += value
            steps += 1
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{parts['loss']:.3f}")
        timings["train"] = time.perf_counter() - start
        self._sync_buffers()
        self.scheduler.step()
        self.last_memories = memories

        summary = labels.summary()
        record = {
            "epoch": epoch, "stage": stage, "lr": self.optimizer.param_groups[0]["lr"],
            "losses": {k: v / max(steps, 1) for k, v in sums.items()},
            "steps": steps, "clusters": {m: summary[f"{m}_clusters"] for m in MODALITIES},
            "outliers": {m: summary[f"{m}_outliers"] for m in MODALITIES},
            "kept": {m: summary[f"{m}_kept"] for m in MODALITIES},
            "associated_fraction": summary.get("associated_fraction"),
            "seconds": {**timings, "association_steps": summary["seconds"]},
        }
        assoc = record["associated_fraction"]
        self.log.info(
            f"epoch {epoch:3d} stage {stage} | loss {record['losses'].get('loss', math.nan):.3f} "
            f"(contrast {record['losses'].get('contrast', 0):.3f}, "
            f"hom {record['losses'].get('homogeneous', 0):.3f}, "
            f"het {record['losses'].get('heterogeneous', 0):.3f}) | clusters RGB "
            f"{record['clusters'][RGB]} IR {record['clusters'][IR]} | outliers RGB "
            f"{record['outliers'][RGB]} IR {record['outliers'][IR]}"
            + (f" | associated {100 * assoc:.1f}%" if assoc is not None else "")
            + f" | features {timings['features']:.1f}s labels {timings['pseudo_labels']:.1f}s "
              f"train {timings['train']:.1f}s")
        self.log.event("epoch", **record)
        return record

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> Dict[str, EvaluationResult]:
        """Cross-modality evaluation with the dataset's protocol (all ranks take part)."""
        kwargs = dict(device=self.device, batch_size=self.config.eval_batch_size,
                      amp=self.config.amp, num_workers=self.config.workers,
                      progress=self._bar("evaluation"))
        if self.config.dataset == "regdb":
            return evaluate_regdb(self.model, self.dataset, self.test_tf, **kwargs)
        return evaluate_sysu(self.model, self.dataset, self.test_tf, trials=self.config.trials,
                             **kwargs)

    def _report(self, results: Dict[str, EvaluationResult], title: str, epoch: int,
                per_trial: bool = False) -> None:
        self.log.info(format_results(results, title, per_trial=per_trial))
        self.log.event("eval", epoch=epoch, title=title,
                       results={k: v.as_dict() for k, v in results.items()})

    def _bar(self, desc: str):
        enabled = self.config.progress and self.rank == 0

        def wrap(iterable):
            return progress_bar(iterable, enabled=enabled, desc=desc)
        return wrap

    # ------------------------------------------------------------------ the run

    def fit(self) -> Dict[str, Any]:
        """Run (or continue) training; returns ``{"before": ..., "final": ..., "epochs": ...}``."""
        config = self.config
        if config.resume:
            self.resume()
        self.log.info(f"SDCL training: {config.dataset}, {len(self.records[RGB])} RGB + "
                      f"{len(self.records[IR])} IR training images, model {config.model} "
                      f"{self.height}x{self.width}, {self.world} process(es) on {self.device}, "
                      f"epochs {self.start_epoch}..{config.epochs - 1}, stage 2 from "
                      f"{config.cmlabel}")
        if self.rank == 0:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(config.to_json())
        pretraining = config.pretrain_steps > 0 and config.pretrained is None \
            and self.start_epoch == 0
        if config.eval_before and self.start_epoch == 0 and "before" not in self.history:
            before = self.evaluate()
            self._report(before, "before training (random initialisation)" if pretraining
                         else "before training (initial weights)", epoch=-1)
            self.history["before"] = {k: v.as_dict() for k, v in before.items()}
        if pretraining:
            self.pretrain()
            if config.eval_before:
                pretrained = self.evaluate()
                self._report(pretrained, "after pretraining on other (generated) identities",
                             epoch=-1)
                self.history["pretrained"] = {k: v.as_dict() for k, v in pretrained.items()}
        epochs_run = 0
        for epoch in range(self.start_epoch, config.epochs):
            record = self.train_epoch(epoch)
            self.history.setdefault("epochs", []).append(record)
            due = config.eval_every and (epoch + 1) % config.eval_every == 0 \
                and epoch + 1 < config.epochs
            if due:
                self._report(self.evaluate(), f"epoch {epoch}", epoch=epoch)
            self.save(epoch)
            epochs_run += 1
            if config.stop_after is not None and epochs_run >= config.stop_after \
                    and epoch + 1 < config.epochs:
                self.log.info(f"stopping after {epochs_run} epoch(s) as asked; continue with "
                              f"--resume --output-dir {self.output_dir}")
                return self.history
        final = self.evaluate()
        self._report(final, f"final (last epoch {config.epochs - 1})", epoch=config.epochs - 1,
                     per_trial=True)
        self.history["final"] = {k: v.as_dict() for k, v in final.items()}
        if "before" in self.history:
            stages = [("initial weights", self.history["before"])]
            if "pretrained" in self.history:
                stages = [("random init", self.history["before"]),
                          ("pretrained", self.history["pretrained"])]
            stages.append((f"after SDCL ({config.epochs} epochs)", self.history["final"]))
            self.log.info(before_after_summary(stages))
        if self.rank == 0:
            (self.output_dir / "results.json").write_text(
                json.dumps(self.history, indent=2, default=str))
        self.log.close()
        return self.history
