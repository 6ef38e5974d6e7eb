"""Datasets and DataLoaders over :class:`ImageRecord` lists, with reproducible augmentation.

:class:`ReIDImageDataset` decodes ``records[i]`` with :func:`load_image`, applies the
transform(s) and yields ``(image, pid, camid, index)``, or ``(image, second_view, pid, camid,
index)`` when a second transform is given (the official RGB loader ``Preprocessor_color``:
both views are drawn independently from the same decoded image).

Reproducible augmentation: the loaders built here feed the dataset :class:`DrawKey` s
``(index, epoch, draw)`` instead of bare indices, where ``draw`` is the position of the
sample in the epoch's stream. Each sample's transforms run with a ``torch.Generator`` seeded
from ``(seed, epoch, draw, index)``, so the augmented batches depend on the seed and the epoch
only, never on the number of worker processes or on which worker loads which sample, and an
image drawn twice in one epoch gets two different augmentations.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import (
    Any,
    Callable,
    NamedTuple,
    Optional,
    Union,
)

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from .._validation import check_bool, check_int
from ..recipe import OFFICIAL_SYSU
from .images import load_image
from .records import IR, RGB, ImageRecord
from .samplers import IdentityBalancedSampler, IterationBatchSampler, _as_int_array
from .transforms import _accepts_generator

__all__ = [
    "DrawKey",
    "ReIDImageDataset",
    "KeyedBatchSampler",
    "default_num_workers",
    "make_loader",
    "make_train_loader",
    "make_test_loader",
    "set_loader_epoch",
    "make_sdcl_train_loaders",
    "join_sdcl_batches",
    "SDCLBatch",
]


TransformFn = Callable[..., torch.Tensor]


class DrawKey(NamedTuple):
    """Which sample to load and which random stream augments it.

    ``index``: position in the dataset's records; ``epoch``: training epoch; ``draw``: position
    of this draw in the epoch's sample stream (distinct for repeated draws of one image).
    """

    index: int  # type: ignore[assignment]  # public field name, shadows tuple.index
    epoch: int
    draw: int


def _seed_from(*entropy: int) -> int:
    """A 63-bit seed mixed from non-negative integers (numpy ``SeedSequence``)."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


class ReIDImageDataset(Dataset):
    """Images of ``records`` with optional pseudo-labels and one or two augmented views.

    Parameters
    ----------
    records:
        Sequence of :class:`ImageRecord` ``(path, pid, camid, modality)``.
    transform:
        Callable ``image [3, H, W] -> tensor``; transforms of :mod:`sdcl_toolkit.data.transforms`
        (or any callable with a ``generator`` keyword) receive the sample's generator.
        ``None`` returns the decoded image. The image is float32 in ``[0, 1]``, or the
        decoded uint8 when every transform has ``input_dtype = torch.uint8`` (as
        :class:`~sdcl_toolkit.data.batch_augment.ResizedUint8`).
    labels:
        Optional ``[N]`` integer labels replacing ``record.pid`` in the output (pseudo-labels;
        ``-1`` is passed through, samplers never draw it).
    second_transform:
        Optional second transform; the item is then ``(view1, view2, pid, camid, index)``.
    root:
        Optional directory prefixed to relative record paths.
    seed:
        Base seed of the per-sample generators (>= 0).

    Items
    -----
    ``dataset[i]`` or ``dataset[DrawKey(i, epoch, draw)]`` ->
    ``(image, pid, camid, index)`` with ``pid, camid, index`` Python ints (collated to int64
    tensors by the DataLoader). An unreadable image raises
    :class:`~sdcl_toolkit.data.images.ImageDecodeError` naming the file.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Optional[TransformFn] = None,
        *,
        labels=None,
        second_transform: Optional[TransformFn] = None,
        root: Optional[Union[str, os.PathLike[str]]] = None,
        seed: int = 0,
    ) -> None:
        records = list(records)
        for record in records[:1] + records[-1:]:
            if not (isinstance(record, tuple) and len(record) == 4):
                raise TypeError(
                    "records must be ImageRecord(path, pid, camid, modality) tuples, got "
                    f"{record!r}"
                )
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {transform!r}")
        if second_transform is not None and not callable(second_transform):
            raise TypeError(f"second_transform must be callable, got {second_transform!r}")
        seed = check_int(seed, "seed", minimum=0)
        self.records = records
        if labels is not None:
            labels = _as_int_array(labels, "labels")
            if labels.shape[0] != len(records):
                raise ValueError(
                    f"labels has {labels.shape[0]} entries but there are {len(records)} records"
                )
        self.labels = labels
        self.transform = transform
        self.second_transform = second_transform
        self.root = None if root is None else os.fspath(root)
        self.seed = seed
        # decode to uint8 only when every transform asks for it (ResizedUint8.input_dtype)
        wanted = {
            getattr(fn, "input_dtype", torch.float32)
            for fn in (transform, second_transform)
            if fn is not None
        }
        self._decode_dtype = torch.uint8 if wanted == {torch.uint8} else torch.float32
        self._first_takes_generator = transform is not None and _accepts_generator(transform)
        self._second_takes_generator = second_transform is not None and _accepts_generator(
            second_transform
        )

    def __len__(self) -> int:
        return len(self.records)

    def path_of(self, index: int) -> str:
        """File name of record ``index`` (joined with ``root`` when relative)."""
        path = os.fspath(self.records[index].path)
        if self.root is not None and not os.path.isabs(path):
            path = os.path.join(self.root, path)
        return path

    def label_of(self, index: int) -> int:
        """Output label of record ``index``: the pseudo-label if given, else ``record.pid``."""
        return int(self.labels[index]) if self.labels is not None else int(self.records[index].pid)

    def generator_for(self, key: Union[int, DrawKey]) -> torch.Generator:
        """The CPU generator augmenting ``key`` (a pure function of ``seed`` and the key)."""
        if isinstance(key, DrawKey):
            seed = _seed_from(self.seed, key.epoch, key.draw, key.index)
        else:
            seed = _seed_from(self.seed, int(key))
        return torch.Generator().manual_seed(seed)

    def _apply(
        self,
        fn: TransformFn,
        takes_generator: bool,
        image: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        return fn(image, generator=generator) if takes_generator else fn(image)

    def __getitem__(self, key: Union[int, DrawKey]):
        index = key.index if isinstance(key, DrawKey) else key
        if isinstance(index, torch.Tensor):
            index = int(index)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset index must be an int or DrawKey, got {key!r}")
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        index %= len(self)
        record = self.records[index]
        image = load_image(self.path_of(index), dtype=self._decode_dtype)
        generator = self.generator_for(key if isinstance(key, DrawKey) else index)
        first = image
        if self.transform is not None:
            first = self._apply(self.transform, self._first_takes_generator, image, generator)
        pid, camid = self.label_of(index), int(record.camid)
        if self.second_transform is None:
            return first, pid, camid, index
        second = self._apply(self.second_transform, self._second_takes_generator, image, generator)
        return first, second, pid, camid, index


class KeyedBatchSampler(Sampler[list[DrawKey]]):
    """Wrap a batch sampler so it yields :class:`DrawKey` lists instead of index lists.

    ``epoch`` is read from the wrapped batch sampler (or its ``sampler``) when iteration starts,
    or is the value last given to :meth:`set_epoch` when neither has one; ``draw`` counts
    samples from 0 within that iteration.
    """

    def __init__(self, batch_sampler: Sampler) -> None:
        self.batch_sampler = batch_sampler
        self._epoch = 0

    def _epoch_holder(self):
        for holder in (self.batch_sampler, getattr(self.batch_sampler, "sampler", None)):
            if holder is not None and hasattr(holder, "set_epoch"):
                return holder
        return None

    @property
    def epoch(self) -> int:
        """Epoch of the wrapped sampler, or the one last given to :meth:`set_epoch`."""
        holder = self._epoch_holder()
        return int(getattr(holder, "epoch", self._epoch)) if holder is not None else self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the augmentation keys, forwarded to the wrapped (batch) sampler."""
        epoch = check_int(epoch, "epoch", minimum=0)
        self._epoch = epoch
        holder = self._epoch_holder()
        if holder is not None:
            holder.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[DrawKey]]:
        epoch, draw = self.epoch, 0
        for batch in self.batch_sampler:
            keys = [DrawKey(int(index), epoch, draw + offset) for offset, index in enumerate(batch)]
            draw += len(keys)
            yield keys

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]


def default_num_workers() -> int:
    """Loader worker processes by default: the usable CPU cores, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores))


def _seed_worker(worker_id: int) -> None:
    """Seed Python's and numpy's global RNGs in a worker from torch's per-worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def make_loader(
    records: Sequence[ImageRecord],
    transform: Optional[TransformFn] = None,
    *,
    batch_size: int = 64,
    sampler: Optional[Sampler] = None,
    batch_sampler: Optional[Sampler] = None,
    labels=None,
    second_transform: Optional[TransformFn] = None,
    root=None,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: Optional[int] = None,
    pin_memory: Optional[bool] = None,
    persistent_workers: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over ``records`` with reproducible per-sample augmentation.

    Batching comes from ``batch_sampler`` if given (e.g. :class:`IterationBatchSampler`), else
    from ``sampler`` cut into ``batch_size`` batches, else from a sequential (or, with
    ``shuffle``, seeded random) order. Items are as in :class:`ReIDImageDataset`.

    Defaults: ``num_workers = default_num_workers()``, ``pin_memory`` when CUDA is available,
    worker RNGs (Python, numpy) seeded from ``seed``. Call :func:`set_loader_epoch` before each
    epoch to change the sampling order and the augmentation.
    """
    dataset = ReIDImageDataset(
        records, transform, labels=labels, second_transform=second_transform, root=root, seed=seed
    )
    if batch_sampler is not None:
        if sampler is not None or shuffle or drop_last:
            raise ValueError("batch_sampler excludes sampler, shuffle and drop_last")
    else:
        if sampler is not None and shuffle:
            raise ValueError("sampler and shuffle=True are mutually exclusive")
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if sampler is None:
            sampler = (
                RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
                if shuffle
                else SequentialSampler(dataset)
            )
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    if num_workers is None:
        num_workers = default_num_workers()
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(
        dataset,
        batch_sampler=KeyedBatchSampler(batch_sampler),
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=persistent_workers and num_workers > 0,
    )


def make_train_loader(
    records: Sequence[ImageRecord],
    transform: TransformFn,
    *,
    labels,
    batch_size: int,
    num_iterations: int,
    num_instances: int = OFFICIAL_SYSU.num_instances,
    second_transform: Optional[TransformFn] = None,
    use_cameras: bool = True,
    epoch: int = 0,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    root=None,
    num_workers: Optional[int] = None,
    pin_memory: Optional[bool] = None,
) -> DataLoader:
    """The official training loader: PK batches over pseudo-labels for a fixed number of steps.

    :class:`IdentityBalancedSampler` (``num_instances`` per identity, other cameras preferred,
    ``-1`` excluded; sharded over ``num_replicas``) re-iterated by
    :class:`IterationBatchSampler` into ``num_iterations`` batches of ``batch_size``
    (official SYSU-MM01: 128 images, 16 instances, 200/100 iterations). Items carry the
    pseudo-label as ``pid``. Official pipelines: IR ``transform = ir_train_transform(h, w)``;
    RGB ``transform = rgb_train_transform(h, w)`` with
    ``second_transform = rgb_train_transform_second_view(h, w)``.
    """
    sampler = IdentityBalancedSampler.from_records(
        records,
        labels,
        num_instances,
        use_cameras=use_cameras,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
    )
    sampler.set_epoch(epoch)
    batches = IterationBatchSampler(sampler, batch_size, num_iterations)
    return make_loader(
        records,
        transform,
        batch_sampler=batches,
        labels=labels,
        second_transform=second_transform,
        root=root,
        num_workers=num_workers,
        pin_memory=pin_memory,
        seed=seed,
    )


def make_test_loader(
    records: Sequence[ImageRecord],
    transform: TransformFn,
    *,
    batch_size: int = 128,
    root=None,
    num_workers: Optional[int] = None,
    pin_memory: Optional[bool] = None,
) -> DataLoader:
    """Records in order, in batches of ``batch_size`` (last batch kept), for feature extraction."""
    return make_loader(
        records,
        transform,
        batch_size=batch_size,
        root=root,
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch of a loader built by :func:`make_loader` (sampling order and augmentation)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    if not isinstance(batch_sampler, KeyedBatchSampler):
        raise TypeError("set_loader_epoch expects a DataLoader built by make_loader")
    batch_sampler.set_epoch(epoch)


class SDCLBatch(NamedTuple):
    """One SDCL training step's images and targets, joined from the two loaders.

    ``rgb``: ``[2n, 3, H, W]`` (view 1 of the ``n`` RGB images, then view 2, as the official
    ``torch.cat((imgs, imgs1))``); ``ir``: ``[m, 3, H, W]``; ``labels`` and ``indices``:
    ``[2n + m]`` int64 pseudo-labels and sample indices in the order of the joint feature
    batch (RGB rows first); ``num_rgb = 2n``.
    """

    rgb: torch.Tensor
    ir: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    num_rgb: int


def join_sdcl_batches(
    batch_rgb: Sequence[torch.Tensor],
    batch_ir: Sequence[torch.Tensor],
    device: Optional[torch.device] = None,
) -> SDCLBatch:
    """Join an item of the RGB loader (``view1, view2, labels, camids, indices``) and of the IR
    loader (``images, labels, camids, indices``) of :func:`make_sdcl_train_loaders` into an
    :class:`SDCLBatch`, moved to ``device``."""
    if len(batch_rgb) != 5:
        raise ValueError(
            "batch_rgb must be (view1, view2, labels, camids, indices) from a loader "
            f"with a second view; got {len(batch_rgb)} items"
        )
    if len(batch_ir) != 4:
        raise ValueError(
            f"batch_ir must be (images, labels, camids, indices); got {len(batch_ir)} items"
        )

    def move(t: torch.Tensor) -> torch.Tensor:
        return t if device is None else t.to(device, non_blocking=True)

    view1, view2, labels_rgb, _, index_rgb = (move(t) for t in batch_rgb)
    images_ir, labels_ir, _, index_ir = (move(t) for t in batch_ir)
    rgb = torch.cat([view1, view2])
    labels = torch.cat([labels_rgb, labels_rgb, labels_ir])
    indices = torch.cat([index_rgb, index_rgb, index_ir])
    return SDCLBatch(rgb, images_ir, labels, indices, rgb.shape[0])


def make_sdcl_train_loaders(
    records: Mapping[str, Sequence[ImageRecord]],
    labels: Mapping[str, Any],
    *,
    batch_rgb: int,
    batch_ir: int,
    num_instances: int,
    num_iterations: int,
    height: int,
    width: int,
    augmentation: Optional[Mapping[str, float]] = None,
    use_cameras: bool = True,
    epoch: int = 0,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    num_workers: Optional[int] = None,
    device_augmentation: bool = False,
) -> dict[str, DataLoader]:
    """The two official training loaders of one epoch, ``{"rgb": ..., "ir": ...}``.

    ``labels[m]``: ``[N_m]`` pseudo-labels of every record, ``-1`` for samples not trained on
    (e.g. :meth:`ModalityLabels.training_labels`). RGB items carry two views (the second
    with channel exchange), IR items the IR pipeline (``augmentation``: the strengths of
    :func:`rgb_train_transform`, e.g. ``recipe.augmentation()``). ``batch_rgb`` and
    ``batch_ir`` count all ranks together; each rank loads ``batch / num_replicas``.
    Join the items of a step with :func:`join_sdcl_batches`.

    ``device_augmentation=True``: the workers only decode and resize (uint8 ``[3, H, W]``
    items, one per RGB image) and a :class:`~sdcl_toolkit.data.batch_augment.SDCLBatchAugment`
    augments the joined step on the training device instead of :func:`join_sdcl_batches`.
    """
    from .transforms import ir_train_transform, rgb_train_transform, rgb_train_transform_second_view

    strengths = dict(augmentation or {})
    device_augmentation = check_bool(device_augmentation, "device_augmentation")
    out = {}
    for modality, batch in ((IR, batch_ir), (RGB, batch_rgb)):
        if batch % num_replicas:
            raise ValueError(
                f"batch_{modality}={batch} is not divisible by the {num_replicas} processes"
            )
        second = None
        if device_augmentation:
            from .batch_augment import ResizedUint8

            transform: TransformFn = ResizedUint8(height, width)
        elif modality == IR:
            transform = ir_train_transform(height, width, **strengths)
        else:
            transform = rgb_train_transform(height, width, **strengths)
            second = rgb_train_transform_second_view(height, width, **strengths)
        train_labels = labels[modality]
        if isinstance(train_labels, torch.Tensor):
            train_labels = train_labels.cpu().numpy()
        out[modality] = make_train_loader(
            records[modality],
            transform,
            labels=train_labels,
            batch_size=batch // num_replicas,
            num_iterations=num_iterations,
            num_instances=num_instances,
            second_transform=second,
            use_cameras=use_cameras,
            epoch=epoch,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            num_workers=num_workers,
        )
    return {RGB: out[RGB], IR: out[IR]}
