#!/usr/bin/env python
"""SDCL in a plain PyTorch loop, with a backbone of your own.

The toolkit provides the pseudo-labels (``PseudoLabeler``), the loss and the memory updates
(``SDCLObjective``), the official loaders and the recipe; the model, the optimiser and the
loop are yours. Any backbone that maps images to ``(deep, shallow)`` features works.

    python examples/custom_loop.py                       # generated miniature SYSU-MM01, CPU
    python examples/custom_loop.py --data-dir /data/SYSU-MM01 --epochs 50 --device cuda

See docs/objective.md ("SDCL in your own training loop").
"""

import argparse
import tempfile

import torch
from torch import nn

from sdcl_toolkit import PseudoLabeler, SDCLObjective, SDCLRecipe
from sdcl_toolkit.data import (
    SYSUMM01,
    join_sdcl_batches,
    make_sdcl_train_loaders,
    test_transform,
    write_synthetic_sysu,
)
from sdcl_toolkit.engine import extract_features


class TwoBranchCNN(nn.Module):
    """A stand-in for your backbone: images -> (deep, shallow) features of width ``dim``.
    The shallow feature pools an early stage, the deep one the last stage."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()

        def stage(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )

        self.early = nn.Sequential(stage(3, 32), stage(32, dim))
        self.late = nn.Sequential(stage(dim, 96), stage(96, dim))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.deep_neck, self.shallow_neck = nn.BatchNorm1d(dim), nn.BatchNorm1d(dim)

    def forward(self, images):
        early = self.early(images)
        shallow = self.shallow_neck(self.pool(early).flatten(1))
        deep = self.deep_neck(self.pool(self.late(early)).flatten(1))
        return deep, shallow


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="SYSU-MM01 root (default: a generated miniature)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iters", type=int, default=4, help="steps per epoch")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)

    tiny = dict(identities=16, images_per_camera=3, nuisance=0.1, seed=3, test_fraction=0.25)
    root = args.data_dir or write_synthetic_sysu(
        tempfile.mkdtemp() + "/SYSU-MM01", val_fraction=0.0, **tiny
    )
    dataset = SYSUMM01(root)
    records = {m: dataset.train(m) for m in ("rgb", "ir")}
    # the official recipe, shortened for a few CPU seconds (small data: smaller k1, batches)
    recipe = SDCLRecipe.miniature(epochs=args.epochs, iters=args.iters)
    height, width = 64, 32

    model = TwoBranchCNN().to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.sgd_momentum,
        weight_decay=recipe.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, recipe.step_size, recipe.gamma)
    labeler = PseudoLabeler.from_recipe(recipe)

    def branches(images, _modality):  # the backbone returns (deep, shallow) itself
        return model(images)

    history = []
    for epoch in range(recipe.epochs):
        # 1. features of every training image (eval mode, flip-averaged), 2. pseudo-labels
        test_tf = test_transform(height, width)
        features = {
            m: extract_features(model, records[m], m, test_tf, device=device, forward=branches)
            for m in ("rgb", "ir")
        }
        labels = labeler(*features["rgb"], *features["ir"], stage=recipe.stage(epoch))
        # 3. the epoch's memories, losses and schedule
        objective = SDCLObjective.from_pseudo_labels(
            labels, features, recipe, epoch=epoch, device=device
        )
        loaders = make_sdcl_train_loaders(
            records,
            labels.training_labels(),
            batch_rgb=recipe.batch_rgb,
            batch_ir=recipe.batch_ir,
            num_instances=recipe.num_instances,
            num_iterations=recipe.iterations(epoch),
            height=height,
            width=width,
            augmentation=recipe.augmentation(),
            epoch=epoch,
            num_workers=0,
        )
        # 4. the steps: forward RGB (two views) and IR together, loss, step, memory update
        model.train()
        for batch_rgb, batch_ir in zip(loaders["rgb"], loaders["ir"]):
            batch = join_sdcl_batches(batch_rgb, batch_ir, device)
            deep, shallow = model(torch.cat([batch.rgb, batch.ir]))
            out = objective.loss(deep, shallow, batch.labels, batch.indices, batch.num_rgb)
            optimizer.zero_grad()
            out.total.backward()
            optimizer.step()
            objective.update(deep, shallow, batch.labels, batch.indices, batch.num_rgb)
        scheduler.step()
        record = {"epoch": epoch, **out.as_floats(), **labels.summary()}
        history.append(record)
        print(
            f"epoch {epoch} (stage {objective.stage}): loss {record['loss']:.3f}, "
            f"clusters RGB {record['rgb_clusters']} IR {record['ir_clusters']}"
            + (
                f", associated {100 * labels.associated_fraction:.0f}%"
                if labels.cra is not None
                else ""
            )
        )
    return history


if __name__ == "__main__":
    main()
