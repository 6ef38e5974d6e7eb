"""Tests of sdcl_toolkit.data.loaders: datasets over records and reproducible DataLoaders."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sdcl_toolkit.data.images import ImageDecodeError, load_image
from sdcl_toolkit.data.loaders import (
    DrawKey,
    KeyedBatchSampler,
    ReIDImageDataset,
    make_loader,
    make_test_loader,
    make_train_loader,
    set_loader_epoch,
)
from sdcl_toolkit.data.records import ImageRecord
from sdcl_toolkit.data.transforms import (
    rgb_train_transform,
    rgb_train_transform_second_view,
    test_transform,
)

HEIGHT, WIDTH = 32, 16


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """24 small images: 6 identities x 4 images on cameras 1, 2, 1, 2."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(24):
        pixels = (rng.random((48, 24, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{index:02d}.png")
    return root


@pytest.fixture(scope="module")
def records(image_dir):
    return [
        ImageRecord(str(image_dir / f"{i:02d}.png"), i // 4, 1 + i % 2, "rgb") for i in range(24)
    ]


PSEUDO = np.array([3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, -1, -1, 5, 5, 5, 5, 4, 4])


# ----------------------------------------------------------------------------- dataset


def test_item_is_image_pid_camid_index(records):
    dataset = ReIDImageDataset(records, test_transform(HEIGHT, WIDTH))
    assert len(dataset) == 24
    image, pid, camid, index = dataset[5]
    assert image.shape == (3, HEIGHT, WIDTH) and image.dtype == torch.float32
    assert (pid, camid, index) == (1, 2, 5)
    assert all(type(v) is int for v in (pid, camid, index))
    raw, *_ = ReIDImageDataset(records)[5]
    assert torch.equal(raw, load_image(records[5].path))
    assert ReIDImageDataset(records)[-1][3] == 23
    with pytest.raises(IndexError):
        dataset[24]


def test_pseudo_labels_replace_pids(records):
    dataset = ReIDImageDataset(records, test_transform(HEIGHT, WIDTH), labels=torch.tensor(PSEUDO))
    assert [dataset[i][1] for i in (0, 4, 16, 23)] == [3, 0, -1, 4]


def test_second_view_uses_its_own_transform(records):
    dataset = ReIDImageDataset(
        records,
        rgb_train_transform(HEIGHT, WIDTH),
        second_transform=rgb_train_transform_second_view(HEIGHT, WIDTH),
    )
    first, second, pid, camid, index = dataset[DrawKey(3, 0, 0)]
    assert first.shape == second.shape == (3, HEIGHT, WIDTH)
    assert not torch.equal(first, second)
    assert torch.equal(second[0], second[1]) and torch.equal(second[1], second[2])
    assert (pid, camid, index) == (0, 2, 3)


def test_augmentation_is_a_function_of_the_key(records):
    dataset = ReIDImageDataset(records, rgb_train_transform(HEIGHT, WIDTH), seed=4)
    same = dataset[DrawKey(7, 2, 11)][0]
    assert torch.equal(same, dataset[DrawKey(7, 2, 11)][0])
    assert torch.equal(dataset[7][0], dataset[7][0])
    reseeded = ReIDImageDataset(records, rgb_train_transform(HEIGHT, WIDTH), seed=5)
    others = [
        dataset[DrawKey(7, 2, 12)][0],
        dataset[DrawKey(7, 3, 11)][0],
        reseeded[DrawKey(7, 2, 11)][0],
    ]
    assert all(not torch.equal(same, other) for other in others)


def test_relative_paths_are_joined_with_root(records, image_dir):
    relative = [r._replace(path=os.path.basename(r.path)) for r in records]
    dataset = ReIDImageDataset(relative, root=image_dir)
    assert torch.equal(dataset[2][0], load_image(records[2].path))
    assert dataset.path_of(2) == os.path.join(str(image_dir), "02.png")


def test_plain_callable_transform_is_supported(records):
    dataset = ReIDImageDataset(records, lambda image: image[:, :4, :4])
    assert dataset[0][0].shape == (3, 4, 4)


def test_dataset_rejects_bad_inputs(records):
    with pytest.raises(ValueError, match="labels has 3 entries"):
        ReIDImageDataset(records, labels=[1, 2, 3])
    with pytest.raises(TypeError, match="ImageRecord"):
        ReIDImageDataset([("a.jpg", 1, 1)])
    with pytest.raises(TypeError, match="callable"):
        ReIDImageDataset(records, transform=3)
    with pytest.raises(TypeError, match="int or DrawKey"):
        ReIDImageDataset(records)["a"]


# ----------------------------------------------------------------------------- corrupt images


@pytest.mark.parametrize("num_workers", [0, 1])
def test_corrupt_image_error_names_the_file(tmp_path, records, num_workers):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    broken = records[:3] + [ImageRecord(str(bad), 9, 1, "ir")]
    with pytest.raises(ImageDecodeError) as info:
        ReIDImageDataset(broken)[3]
    assert str(bad) in str(info.value)
    loader = make_test_loader(
        broken, test_transform(HEIGHT, WIDTH), batch_size=2, num_workers=num_workers
    )
    with pytest.raises(ImageDecodeError, match="broken.png"):
        list(loader)


# ----------------------------------------------------------------------------- loaders


def _train_loader(records, num_workers, epoch=0, seed=0, second=True):
    return make_train_loader(
        records,
        rgb_train_transform(HEIGHT, WIDTH),
        labels=PSEUDO,
        batch_size=8,
        num_iterations=5,
        num_instances=4,
        epoch=epoch,
        seed=seed,
        second_transform=rgb_train_transform_second_view(HEIGHT, WIDTH) if second else None,
        num_workers=num_workers,
    )


@pytest.mark.slow
def test_train_loader_yields_pk_batches_of_pseudo_labels(records):
    batches = list(_train_loader(records, num_workers=0))
    assert len(batches) == 5
    for first, second, pids, camids, indices in batches:
        assert first.shape == second.shape == (8, 3, HEIGHT, WIDTH)
        assert pids.dtype == torch.int64
        assert torch.equal(pids, torch.from_numpy(PSEUDO)[indices])
        assert (pids >= 0).all()
        assert sorted(torch.unique(pids, return_counts=True)[1].tolist()) == [4, 4]
        for group in indices.view(2, 4):  # anchor's camera differs from all picks
            assert (
                camids[indices == group[0]][0]
                != torch.tensor([records[i].camid for i in group[1:]])
            ).all()


def test_augmented_batches_do_not_depend_on_worker_count(records):
    serial = list(_train_loader(records, num_workers=0))
    parallel = list(_train_loader(records, num_workers=2))
    for a, b in zip(serial, parallel):
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_epoch_and_seed_change_the_stream(records):
    base = list(_train_loader(records, num_workers=0, second=False))
    loader = _train_loader(records, num_workers=0, second=False)
    set_loader_epoch(loader, 1)
    moved = list(loader)
    assert loader.batch_sampler.epoch == 1
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(base, moved))
    assert all(
        torch.equal(a[0], b[0])
        for a, b in zip(moved, _train_loader(records, num_workers=0, epoch=1, second=False))
    )
    reseeded = list(_train_loader(records, num_workers=0, seed=1, second=False))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(base, reseeded))


def test_repeated_draws_are_augmented_differently(records):
    # one image drawn four times in one batch: four different augmentations
    loader = make_loader(
        records, rgb_train_transform(HEIGHT, WIDTH), batch_sampler=[[0, 0, 0, 0]], num_workers=0
    )
    images = next(iter(loader))[0]
    assert len({images[i].sum().item() for i in range(4)}) == 4


def test_test_loader_keeps_order_and_last_batch(records):
    loader = make_test_loader(records, test_transform(HEIGHT, WIDTH), batch_size=10, num_workers=0)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [10, 10, 4]
    assert torch.equal(torch.cat([b[3] for b in batches]), torch.arange(24))
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(24) // 4)
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


def test_shuffled_loader_is_seeded(records):
    def order(seed):
        loader = make_loader(
            records, None, batch_size=24, shuffle=True, seed=seed, num_workers=0, batch_sampler=None
        )
        return next(
            iter(
                DataLoader(
                    range(24), sampler=loader.batch_sampler.batch_sampler.sampler, batch_size=24
                )
            )
        )

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))


def test_loader_argument_errors(records):
    with pytest.raises(ValueError, match="excludes"):
        make_loader(records, batch_sampler=[[0]], shuffle=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        make_loader(records, sampler=range(3), shuffle=True)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(records, batch_size=0)
    with pytest.raises(TypeError, match="make_loader"):
        set_loader_epoch(DataLoader(range(3)), 1)
    keyed = KeyedBatchSampler([[1, 2], [3]])
    assert list(keyed) == [[DrawKey(1, 0, 0), DrawKey(2, 0, 1)], [DrawKey(3, 0, 2)]]
    keyed.set_epoch(4)
    assert next(iter(keyed))[0].epoch == 4
