"""Tests of sdcl_toolkit.data.batch_augment: the batched official augmentations.

Two properties make the batched path a drop-in for the per-sample one:

* fixed parameters -> the same output as the per-sample transforms (bit for bit);
* sampled parameters follow the per-sample transforms' distributions (compared with draws of
  the per-sample transforms themselves, with fixed seeds so the tests are deterministic).
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sdcl_toolkit.data import transforms as T
from sdcl_toolkit.data.batch_augment import (
    GRAY,
    KEEP_CHANNELS,
    VIEWS,
    AugmentParameters,
    BatchAugment,
    ResizedUint8,
)

H, W = 24, 12
P_MIN = 1e-3  # smallest accepted p-value of a distribution comparison (fixed seeds)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _uint8_batch(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, H, W), generator=_gen(seed), dtype=torch.uint8)


def _per_sample_reference(
    augment: BatchAugment, image: torch.Tensor, p: AugmentParameters, b: int
) -> torch.Tensor:
    """The per-sample transforms of ``augment.pipeline`` with sample ``b``'s parameters."""

    def factor(values):
        return None if values is None else float(values[b])

    x = T.ColorJitter.apply(
        image.clone(),
        p.order[b].tolist(),
        factor(p.brightness),
        factor(p.contrast),
        factor(p.saturation),
        factor(p.hue),
    )
    x = T.Pad(augment.padding)(x)
    top, left = int(p.top[b]), int(p.left[b])
    x = x[:, top : top + H, left : left + W]
    if bool(p.flip[b]):
        x = x.flip(-1)
    x = T.Normalize()(x)
    if bool(p.erase[b]):
        t, l_, h, w = (int(v) for v in p.erase_box[b])
        fill = torch.tensor(T.ERASING_FILL).view(3, 1, 1)
        x = x.clone()
        x[:, t : t + h, l_ : l_ + w] = fill
    code = int(p.channel[b])
    if code < GRAY:
        x = x[code : code + 1].expand_as(x)
    elif code == GRAY:
        x = T.rgb_to_grayscale(x).expand_as(x)
    return x


@pytest.mark.parametrize("view", VIEWS)
def test_fixed_parameters_give_the_per_sample_output(view):
    augment = BatchAugment(H, W, view=view, padding=3)
    images = _uint8_batch(32, seed=1)
    parameters = augment.sample_parameters(32, _gen(2))
    out = augment.apply(images, parameters)
    assert out.shape == (32, 3, H, W) and out.dtype == torch.float32
    floats = images.float() / 255.0
    for b in range(32):
        expected = _per_sample_reference(augment, floats[b], parameters, b)
        torch.testing.assert_close(out[b], expected, rtol=0, atol=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), jitter=st.floats(0.0, 1.0), hue=st.floats(0.0, 0.5))
def test_fixed_parameters_any_strength(seed, jitter, hue):
    augment = BatchAugment(H, W, view="ir", jitter=jitter, hue=hue, padding=2, erasing=1.0)
    images = _uint8_batch(6, seed=seed % 1000)
    parameters = augment.sample_parameters(6, _gen(seed))
    out = augment.apply(images, parameters)
    floats = images.float() / 255.0
    for b in range(6):
        expected = _per_sample_reference(augment, floats[b], parameters, b)
        torch.testing.assert_close(out[b], expected, rtol=0, atol=0)


@pytest.mark.parametrize("view", VIEWS)
def test_per_image_and_batched_branches_agree(view):
    """The CPU runs jitter, crop and erasing image by image; GPUs run them as batched tensor
    operations. Both branches, run here on the CPU, give the same output bit for bit."""
    augment = BatchAugment(H, W, view=view, padding=3, erasing=0.7)
    images = _uint8_batch(16, seed=3)
    parameters = augment.sample_parameters(16, _gen(4))
    assert parameters.erase.any() and parameters.flip.any() and not parameters.flip.all()
    per_image = augment._apply(images, parameters, per_image=True)
    batched = augment._apply(images, parameters, per_image=False)
    assert torch.equal(per_image, batched)
    assert torch.equal(augment.apply(images, parameters), per_image)  # the CPU default


def test_same_generator_same_output_and_input_untouched():
    augment = BatchAugment(H, W, view="rgb_exchange")
    images = _uint8_batch(8)
    before = images.clone()
    first = augment(images, generator=_gen(5))
    second = augment(images, generator=_gen(5))
    assert torch.equal(first, second)
    assert torch.equal(images, before)
    assert not torch.equal(first, augment(images, generator=_gen(6)))


def test_float_input_equals_uint8_input():
    augment = BatchAugment(H, W, view="ir")
    images = _uint8_batch(4)
    parameters = augment.sample_parameters(4, _gen(0))
    torch.testing.assert_close(
        augment.apply(images, parameters), augment.apply(images.float() / 255.0, parameters)
    )


def test_empty_batch():
    augment = BatchAugment(H, W, view="ir")
    assert augment(torch.zeros(0, 3, H, W, dtype=torch.uint8)).shape == (0, 3, H, W)


# ----------------------------------------------------------------------------- distributions

N = 4000


def _chi2_pvalue(observed: collections.Counter, expected: dict) -> float:
    keys = sorted(expected)
    counts = np.array([observed.get(k, 0) for k in keys], dtype=float)
    unexpected = set(observed) - set(keys)
    assert counts.sum() == sum(observed.values()), f"unexpected outcomes {unexpected}"
    probs = np.array([expected[k] for k in keys])
    return float(stats.chisquare(counts, probs * counts.sum()).pvalue)


def test_jitter_parameters_match_color_jitter():
    augment = BatchAugment(H, W)
    batched = augment.sample_parameters(N, _gen(0))
    jitter = T.ColorJitter(0.5, 0.5, 0.5, 0.5)
    g = _gen(1)
    single = [jitter.sample_parameters(g) for _ in range(N)]
    for position, name in enumerate(("brightness", "contrast", "saturation", "hue")):
        reference = np.array([s[position + 1] for s in single])
        draws = getattr(batched, name).numpy()
        assert stats.ks_2samp(draws, reference).pvalue > P_MIN, name
    permutations = collections.Counter(tuple(o) for o in batched.order.tolist())
    uniform = dict.fromkeys({tuple(s[0]) for s in single}, 1 / 24)
    assert len(uniform) == 24
    assert _chi2_pvalue(permutations, uniform) > P_MIN


def test_erasing_parameters_match_random_erasing():
    augment = BatchAugment(H, W)
    batched = augment.sample_parameters(N, _gen(3))
    erasing = T.RandomErasing()
    g = _gen(4)
    boxes = [erasing.sample_box(H, W, g) for _ in range(N)]
    erased = [b for b in boxes if b is not None]
    rate = float(batched.erase.double().mean())
    assert abs(rate - len(erased) / N) < 4 * math.sqrt(0.25 / N) * math.sqrt(2)
    ours = batched.erase_box[batched.erase]
    for column, name in enumerate(("top", "left", "h", "w")):
        reference = np.array([b[column] for b in erased])
        assert stats.ks_2samp(ours[:, column].numpy(), reference).pvalue > P_MIN, name
    assert bool((ours[:, 0] + ours[:, 2] <= H).all() and (ours[:, 1] + ours[:, 3] <= W).all())


def _coordinate_image(height: int, width: int) -> torch.Tensor:
    """Channel 0: row index, channel 1: column index, channel 2: constant (all > 0)."""
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width)
    cols = torch.arange(width, dtype=torch.float32).view(1, -1).expand(height, width)
    return torch.stack([rows + 1, cols + 1, torch.full((height, width), 7.0)])


def test_crop_and_flip_match_the_per_sample_transforms():
    """Offsets and flips recovered from the per-sample Pad -> RandomCrop -> Flip output of a
    coordinate image have the distribution of the batched parameters."""
    padding = 3
    per_sample = T.Compose([T.Pad(padding), T.RandomCrop((H, W)), T.RandomHorizontalFlip(0.5)])
    image = _coordinate_image(H, W)
    g = _gen(7)
    reference_tops, reference_lefts, reference_flips = [], [], []
    for _ in range(2000):
        out = per_sample(image, generator=g)
        row = int((out[0].amax(dim=1) > 0).nonzero()[0])  # first output row inside the image
        reference_tops.append(int(out[0, row].max()) - 1 - row + padding)
        values = out[1, row][out[1, row] > 0]  # original column + 1, in output order
        flipped = bool(values[0] > values[-1])
        first = int((out[1, row] > 0).nonzero()[0 if not flipped else -1])
        reference_lefts.append(int(values.min()) - 1 - (first if not flipped else W - 1 - first))
        reference_flips.append(flipped)
    augment = BatchAugment(H, W, padding=padding)
    batched = augment.sample_parameters(N, _gen(8))
    span = 2 * padding + 1
    uniform = dict.fromkeys(range(span), 1 / span)
    for ours, reference in (
        (batched.top.tolist(), reference_tops),
        (batched.left.tolist(), [v + padding for v in reference_lefts]),
    ):
        assert _chi2_pvalue(collections.Counter(reference), uniform) > P_MIN
        table = np.array([[ours.count(t), reference.count(t)] for t in range(span)])
        assert stats.chi2_contingency(table).pvalue > P_MIN
    flips = [int(batched.flip.sum()), N - int(batched.flip.sum())]
    reference = [sum(reference_flips), len(reference_flips) - sum(reference_flips)]
    assert stats.chi2_contingency(np.array([flips, reference])).pvalue > P_MIN


def _channel_outcome(out: torch.Tensor, image: torch.Tensor) -> int:
    """Which channel operation produced ``out`` from ``image`` (distinct channel values)."""
    if torch.equal(out, image):
        return KEEP_CHANNELS
    for channel in range(3):
        if torch.equal(out, image[channel : channel + 1].expand_as(image)):
            return channel
    assert torch.allclose(out, T.rgb_to_grayscale(image).expand_as(image))
    return GRAY


@pytest.mark.parametrize(
    "view, transform",
    [("rgb_exchange", T.ChannelExchange(gray=2)), ("ir", T.ChannelAdapGray(0.5))],
)
def test_channel_operations_match_the_per_sample_transforms(view, transform):
    image = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1).expand(3, 2, 2).clone()
    g = _gen(9)
    reference = collections.Counter(_channel_outcome(transform(image, g), image) for _ in range(N))
    batched = BatchAugment(H, W, view=view).sample_parameters(N, _gen(10))
    ours = collections.Counter(batched.channel.tolist())
    assert set(ours) == set(reference)
    table = np.array([[ours[k], reference[k]] for k in sorted(reference)])
    assert stats.chi2_contingency(table).pvalue > P_MIN


def test_first_rgb_view_keeps_channels():
    batched = BatchAugment(H, W, view="rgb").sample_parameters(100, _gen(0))
    assert bool((batched.channel == KEEP_CHANNELS).all())


# ----------------------------------------------------------------------------- devices, errors


def test_parameters_on_the_generator_device_and_output_on_the_image_device():
    augment = BatchAugment(H, W, view="ir")
    parameters = augment.sample_parameters(4, _gen(0))
    assert parameters.top.device.type == "cpu"
    out = augment.apply(_uint8_batch(4), parameters)
    assert out.device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_equals_cpu_batch():
    augment = BatchAugment(H, W, view="ir")
    images = _uint8_batch(16)
    parameters = augment.sample_parameters(16, _gen(0))
    cpu = augment.apply(images, parameters)
    cuda = augment.apply(images.cuda(), parameters)
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-5)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert augment(images.cuda(), generator=g).device.type == "cuda"


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(view="thermal"), ValueError),
        (dict(jitter=-0.1), ValueError),
        (dict(hue=0.6), ValueError),
        (dict(padding=1.5), TypeError),
        (dict(erasing=float("nan")), ValueError),
    ],
)
def test_invalid_arguments(kwargs, error):
    with pytest.raises(error):
        BatchAugment(H, W, **kwargs)


def test_wrong_input_shapes_and_types():
    augment = BatchAugment(H, W)
    with pytest.raises(ValueError, match="size"):
        augment(torch.zeros(2, 3, H + 1, W, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        augment(torch.zeros(3, H, W, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        augment(torch.zeros(2, 3, H, W, dtype=torch.int32))


def test_resized_uint8_rounds_the_resized_image():
    image = torch.rand(3, 40, 20, generator=_gen(0))
    out = ResizedUint8(H, W)(image)
    assert out.dtype == torch.uint8 and out.shape == (3, H, W)
    expected = T.Resize((H, W))(image)
    assert (out.float() / 255.0 - expected).abs().max() <= 0.5 / 255.0 + 1e-6


@pytest.mark.parametrize("size", [(40, 20), (13, 30), (H, W), (300, 7)])
def test_resized_uint8_from_uint8_is_within_one_level_of_the_float_path(size):
    """uint8 input (what the loaders decode for it) uses torch's uint8 antialiased kernel:
    at most one grey level from rounding the float resize, and the same size is a copy."""
    image = torch.randint(0, 256, (3, *size), generator=_gen(1), dtype=torch.uint8)
    resize = ResizedUint8(H, W)
    out = resize(image)
    assert out.dtype == torch.uint8 and out.shape == (3, H, W)
    from_float = resize(image.float() / 255.0)
    assert (out.int() - from_float.int()).abs().max() <= 1
    if size == (H, W):
        assert torch.equal(out, image) and out.data_ptr() != image.data_ptr()
    assert ResizedUint8.input_dtype == torch.uint8
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        resize(torch.zeros(1, 3, H, W, dtype=torch.uint8))


def test_datasets_decode_to_uint8_only_for_uint8_transforms(tmp_path):
    from PIL import Image

    from sdcl_toolkit.data.images import load_image
    from sdcl_toolkit.data.loaders import ImageRecord, ReIDImageDataset

    path = tmp_path / "a.jpg"
    pixels = torch.randint(0, 256, (50, 22, 3), generator=_gen(2), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(path)
    records = [ImageRecord(str(path), 0, 0, "rgb")]
    resize = ResizedUint8(H, W)
    seen = []

    def float_view(image):
        seen.append(image.dtype)
        return image

    image, *_ = ReIDImageDataset(records, resize)[0]
    assert torch.equal(image, resize(load_image(path, dtype=torch.uint8)))
    # a transform without input_dtype gets float32, also when paired with ResizedUint8
    ReIDImageDataset(records, resize, second_transform=float_view)[0]
    ReIDImageDataset(records, float_view)[0]
    assert seen == [torch.float32, torch.float32]


# ----------------------------------------------------------------------------- loaders


def test_device_augmentation_loaders_feed_sdcl_batch_augment(synthetic_sysu_root):
    from sdcl_toolkit.data import SYSUMM01
    from sdcl_toolkit.data.batch_augment import SDCLBatchAugment
    from sdcl_toolkit.data.loaders import make_sdcl_train_loaders

    sysu = SYSUMM01(synthetic_sysu_root)
    records = {m: sysu.train(m) for m in ("rgb", "ir")}
    labels = {m: np.array([r.pid for r in records[m]]) for m in records}
    loaders = make_sdcl_train_loaders(
        records,
        labels,
        batch_rgb=8,
        batch_ir=8,
        num_instances=2,
        num_iterations=1,
        height=32,
        width=16,
        num_workers=0,
        device_augmentation=True,
    )
    batch_rgb, batch_ir = next(iter(loaders["rgb"])), next(iter(loaders["ir"]))
    assert batch_rgb[0].dtype == torch.uint8 and batch_rgb[0].shape == (8, 3, 32, 16)
    assert len(batch_rgb) == 4  # one uint8 image per RGB record: both views made on device
    augment = SDCLBatchAugment(32, 16)
    step = augment(batch_rgb, batch_ir, "cpu", _gen(0))
    assert step.rgb.shape == (16, 3, 32, 16) and step.ir.shape == (8, 3, 32, 16)
    assert step.num_rgb == 16 and step.labels.shape == (24,) and step.indices.shape == (24,)
    assert torch.equal(step.labels[:8], step.labels[8:16])
    assert not torch.equal(step.rgb[:8], step.rgb[8:])  # independent views
    with pytest.raises(ValueError, match="device_augmentation=True"):
        augment((*batch_rgb, batch_rgb[0]), batch_ir, "cpu")
    with pytest.raises(TypeError, match="device_augmentation"):
        make_sdcl_train_loaders(
            records,
            labels,
            batch_rgb=8,
            batch_ir=8,
            num_instances=2,
            num_iterations=1,
            height=32,
            width=16,
            num_workers=0,
            device_augmentation=1,
        )
