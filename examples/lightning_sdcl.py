#!/usr/bin/env python
"""SDCL as a PyTorch Lightning module (``pip install "sdcl-toolkit[lightning]"``).

Each epoch, ``train_dataloader`` (reloaded every epoch) extracts the features of the
training set, pseudo-labels them and builds the epoch's ``SDCLObjective``;
``training_step`` returns its loss and logs every named part; ``on_train_batch_end`` does the
memory update after the optimiser step. Lightning runs the loop, devices and logging.

    python examples/lightning_sdcl.py                    # generated miniature SYSU-MM01, CPU
    python examples/lightning_sdcl.py --data-dir /data/SYSU-MM01 --model vit_base \\
        --pretrained vit_base_ics_cfs_lup.pth --epochs 50 --full-recipe

See docs/objective.md ("SDCL in your own training loop").
"""

import argparse
import tempfile

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader

from sdcl_toolkit import PseudoLabeler, SDCLObjective, SDCLRecipe, build_shallow_deep_vit
from sdcl_toolkit.data import (
    SYSUMM01,
    join_sdcl_batches,
    make_sdcl_train_loaders,
    test_transform,
    write_synthetic_sysu,
)
from sdcl_toolkit.engine import extract_features


class SDCLModule(pl.LightningModule):
    """A :class:`~sdcl_toolkit.ShallowDeepViT` trained with the SDCL objective."""

    def __init__(self, model, records, recipe: SDCLRecipe, num_workers: int = 0) -> None:
        super().__init__()
        self.model, self.records, self.recipe = model, records, recipe
        self.labeler = PseudoLabeler.from_recipe(recipe)
        self.num_workers = num_workers
        self.objective = None
        self.label_summary = {}
        self._step = None  # the last batch's features, for the post-step memory update

    def train_dataloader(self):
        epoch = self.current_epoch
        features = {
            m: extract_features(
                self.model,
                self.records[m],
                m,
                test_transform(*self.model.img_size),
                device=self.device,
            )
            for m in ("rgb", "ir")
        }
        labels = self.labeler(*features["rgb"], *features["ir"], stage=self.recipe.stage(epoch))
        self.objective = SDCLObjective.from_pseudo_labels(
            labels, features, self.recipe, epoch=epoch, device=self.device
        )
        self.label_summary = labels.summary()
        loaders = make_sdcl_train_loaders(
            self.records,
            labels.training_labels(),
            batch_rgb=self.recipe.batch_rgb,
            batch_ir=self.recipe.batch_ir,
            num_instances=self.recipe.num_instances,
            num_iterations=self.recipe.iterations(epoch),
            height=self.model.img_size[0],
            width=self.model.img_size[1],
            augmentation=self.recipe.augmentation(),
            epoch=epoch,
            num_workers=self.num_workers,
        )
        return CombinedLoader(loaders, mode="min_size")

    def on_train_epoch_start(self):
        self.log_dict(
            {
                f"labels/{k}": float(v)
                for k, v in self.label_summary.items()
                if isinstance(v, (int, float))
            }
        )

    def training_step(self, batch, batch_idx):
        joined = join_sdcl_batches(batch["rgb"], batch["ir"])
        out = self.model.forward_mixed(joined.rgb, joined.ir, norm_groups=self.recipe.norm_groups)
        deep = torch.cat([out.rgb.deep, out.ir.deep]).float()
        shallow = torch.cat([out.rgb.shallow, out.ir.shallow]).float()
        loss = self.objective.loss(deep, shallow, joined.labels, joined.indices, joined.num_rgb)
        self._step = (
            deep.detach(),
            shallow.detach(),
            joined.labels,
            joined.indices,
            joined.num_rgb,
        )
        self.log_dict({f"loss/{k}": v for k, v in loss.as_floats().items()}, prog_bar=False)
        return loss.total

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.objective.update(*self._step)  # after the optimiser step, official order

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            params,
            lr=self.recipe.lr,
            momentum=self.recipe.sgd_momentum,
            weight_decay=self.recipe.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, self.recipe.step_size, self.recipe.gamma
        )
        return [optimizer], [scheduler]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="SYSU-MM01 root (default: a generated miniature)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iters", type=int, default=4, help="steps per epoch")
    parser.add_argument(
        "--full-recipe",
        action="store_true",
        help="the official SYSU-MM01 recipe instead of the CPU-sized one",
    )
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args(argv)
    pl.seed_everything(0, verbose=False)

    root = args.data_dir or write_synthetic_sysu(
        tempfile.mkdtemp() + "/SYSU-MM01",
        identities=16,
        images_per_camera=3,
        nuisance=0.1,
        seed=3,
        val_fraction=0.0,
        test_fraction=0.25,
    )
    dataset = SYSUMM01(root)
    records = {m: dataset.train(m) for m in ("rgb", "ir")}
    recipe = SDCLRecipe.sysu().replace(epochs=args.epochs)
    if not args.full_recipe:  # a few CPU seconds on the miniature dataset
        recipe = SDCLRecipe.miniature(epochs=args.epochs, iters=args.iters)
    model = build_shallow_deep_vit(args.model, pretrained=args.pretrained)
    module = SDCLModule(model, records, recipe)
    trainer = pl.Trainer(
        max_epochs=recipe.epochs,
        accelerator=args.accelerator,
        devices=1,
        reload_dataloaders_every_n_epochs=1,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print(f"finished {recipe.epochs} epochs: loss {metrics.get('loss/loss', float('nan')):.3f}")
    return metrics


if __name__ == "__main__":
    main()
