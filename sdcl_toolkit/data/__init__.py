"""Data: dataset readers (SYSU-MM01, RegDB, LLCM), image decoding, torch transforms (per
sample and batched on the device), PK sampling, loaders, and generated
datasets (images for tests and the demo, features for benchmarks)."""

from .batch_augment import BatchAugment, SDCLBatchAugment
from .images import ImageDecodeError, load_image
from .llcm import LLCM
from .loaders import (
    ReIDImageDataset,
    SDCLBatch,
    join_sdcl_batches,
    make_loader,
    make_sdcl_train_loaders,
    make_test_loader,
    make_train_loader,
    set_loader_epoch,
)
from .records import IR, RGB, ImageRecord
from .regdb import RegDB
from .samplers import IdentityBalancedSampler, IterationBatchSampler
from .synthetic import (
    ensure_synthetic_regdb,
    ensure_synthetic_sysu,
    write_synthetic_regdb,
    write_synthetic_sysu,
)
from .sysu_mm01 import SYSUMM01, DatasetLayoutError
from .transforms import (
    ir_train_transform,
    rgb_train_transform,
    rgb_train_transform_second_view,
    test_transform,
)

__all__ = [
    "ImageRecord",
    "RGB",
    "IR",
    "SYSUMM01",
    "RegDB",
    "LLCM",
    "DatasetLayoutError",
    "load_image",
    "ImageDecodeError",
    "rgb_train_transform",
    "rgb_train_transform_second_view",
    "ir_train_transform",
    "test_transform",
    "IdentityBalancedSampler",
    "IterationBatchSampler",
    "ReIDImageDataset",
    "make_loader",
    "make_train_loader",
    "make_test_loader",
    "set_loader_epoch",
    "make_sdcl_train_loaders",
    "join_sdcl_batches",
    "SDCLBatch",
    "BatchAugment",
    "SDCLBatchAugment",
    "write_synthetic_sysu",
    "write_synthetic_regdb",
    "ensure_synthetic_sysu",
    "ensure_synthetic_regdb",
]
