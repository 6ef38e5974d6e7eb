"""Tests of sdcl_toolkit.data.transforms (torch versions of the official augmentations)."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from sdcl_toolkit.data import transforms as T

SETTINGS = settings(max_examples=25, deadline=None)


def _image(height=24, width=12, seed=0, channels=3):
    return torch.rand(channels, height, width, generator=torch.Generator().manual_seed(seed))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _to_pil(image):
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _from_pil(pil):
    return torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255.0


def _smooth_uint8_image(height=96, width=48, seed=0):
    """A smooth random image on the 8-bit grid (so Pillow and torch see the same input)."""
    coarse = torch.rand(1, 3, height // 8, width // 8, generator=_gen(seed))
    smooth = torch.nn.functional.interpolate(
        coarse, size=(height, width), mode="bilinear", align_corners=False
    )[0]
    return (smooth * 255).round() / 255


# ----------------------------------------------------------------------------- Resize


@pytest.mark.parametrize(
    "interpolation, pil_filter, kernel_abs_sum",
    [
        ("bilinear", Image.BILINEAR, 1.0),
        ("bicubic", Image.BICUBIC, 1.25),  # a = -0.5 cubic: sum |w| is at most 1.25
    ],
)
@pytest.mark.parametrize("size", [(48, 24), (40, 30), (150, 70)])
def test_resize_matches_pillow_within_its_8_bit_rounding(
    interpolation, pil_filter, kernel_abs_sum, size
):
    # The official pipelines resize PIL images. Pillow resamples in two separable passes and
    # rounds to 8 bits after each: half a level from the first pass (amplified by the second
    # kernel's absolute sum) plus half a level at the end.
    image = _smooth_uint8_image()
    reference = _from_pil(_to_pil(image).resize((size[1], size[0]), pil_filter))
    out = T.Resize(size, interpolation=interpolation)(image)
    assert out.shape == (3, *size)
    bound = (0.5 * kernel_abs_sum + 0.5) / 255 + 1e-6
    assert (out - reference).abs().max() <= bound


def test_resize_keeps_same_size_and_handles_batches():
    image = _image()
    assert torch.equal(T.Resize((24, 12))(image), image)
    batch = torch.stack([_image(seed=s) for s in range(3)])
    out = T.Resize((10, 6))(batch)
    assert out.shape == (3, 3, 10, 6)
    assert torch.allclose(out[1], T.Resize((10, 6))(batch[1]))
    assert T.Resize((10, 6), interpolation="nearest")(image).shape == (3, 10, 6)


def test_resize_bicubic_stays_in_unit_range():
    checker = (torch.arange(64).view(8, 8) % 2).float().expand(3, 8, 8).contiguous()
    out = T.Resize((21, 19), interpolation="bicubic")(checker)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_resize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="interpolation"):
        T.Resize(10, interpolation="lanczos")
    with pytest.raises(ValueError, match=r"size\[0\] must be >= 1"):
        T.Resize((0, 4))
    with pytest.raises(TypeError, match="pair of ints"):
        T.Resize(4.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pair of ints"):
        T.Resize(True)  # type: ignore[arg-type]
    assert T.Resize(np.int64(4)).size == (4, 4)
    with pytest.raises(TypeError, match="floating"):
        T.Resize(4)(torch.zeros(3, 5, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        T.Resize(4)(torch.zeros(5, 5))


# ----------------------------------------------------------------------------- Pad and crop


def test_pad_adds_a_zero_border():
    image = _image(6, 4)
    out = T.Pad(10)(image)
    assert out.shape == (3, 26, 24)
    assert torch.equal(out[:, 10:16, 10:14], image)
    inner = torch.zeros_like(out, dtype=torch.bool)
    inner[:, 10:16, 10:14] = True
    assert torch.all(out[~inner] == 0)
    assert T.Pad((1, 2))(image).shape == (3, 10, 6)
    assert T.Pad((1, 2, 3, 4))(image).shape == (3, 12, 8)
    assert torch.equal(T.Pad((1, 2, 3, 4))(image)[:, 2:8, 1:5], image)


@SETTINGS
@given(
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    crop_h=st.integers(1, 20),
    crop_w=st.integers(1, 20),
    seed=st.integers(0, 2**31),
)
def test_random_crop_is_a_window_of_the_input(height, width, crop_h, crop_w, seed):
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    coords = torch.arange(height * width, dtype=torch.float32).view(1, height, width)
    image = coords.expand(3, height, width).contiguous()
    out = T.RandomCrop((crop_h, crop_w))(image, generator=_gen(seed))
    assert out.shape == (3, crop_h, crop_w)
    top, left = divmod(int(out[0, 0, 0]), width)
    assert torch.equal(out, image[:, top : top + crop_h, left : left + crop_w])


def test_random_crop_reaches_every_offset():
    image = torch.arange(7 * 5, dtype=torch.float32).view(1, 7, 5).expand(3, 7, 5)
    crop = T.RandomCrop((4, 3))
    g = _gen(0)
    corners = {divmod(int(crop(image, generator=g)[0, 0, 0]), 5) for _ in range(300)}
    assert corners == {(top, left) for top in range(4) for left in range(3)}


def test_random_crop_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match="larger than the image"):
        T.RandomCrop((10, 10))(_image(8, 12))


# ----------------------------------------------------------------------------- Flip


@SETTINGS
@given(seed=st.integers(0, 2**31), height=st.integers(1, 9), width=st.integers(1, 9))
def test_flip_twice_is_identity(seed, height, width):
    image = _image(height, width, seed)
    flip = T.RandomHorizontalFlip(p=1.0)
    once = flip(image, generator=_gen(seed))
    assert torch.equal(once[..., 0], image[..., -1])
    assert torch.equal(flip(once, generator=_gen(seed)), image)
    assert torch.equal(T.RandomHorizontalFlip(p=0.0)(image, generator=_gen(seed)), image)


def test_flip_probability_is_about_one_half():
    image = _image(2, 3)
    flip, g = T.RandomHorizontalFlip(0.5), _gen(1)
    flips = sum(not torch.equal(flip(image, generator=g), image) for _ in range(2000))
    assert abs(flips / 2000 - 0.5) < 5 * math.sqrt(0.25 / 2000)


# ----------------------------------------------------------------------------- Colour maths


def test_rgb_to_hsv_matches_colorsys_and_round_trips():
    image = _image(16, 16, seed=3)
    image[:, 0, :4] = 0.5  # gray pixels (zero chroma)
    image[:, 1, :4] = 0.0  # black
    hsv = T.rgb_to_hsv(image)
    reference = np.array(
        [[colorsys.rgb_to_hsv(*image[:, i, j].tolist()) for j in range(16)] for i in range(16)]
    ).transpose(2, 0, 1)
    assert np.abs(hsv.numpy() - reference).max() < 1e-6
    assert (T.hsv_to_rgb(hsv) - image).abs().max() < 1e-6


def test_hsv_to_rgb_matches_colorsys():
    hsv = _image(16, 16, seed=4)
    reference = np.array(
        [[colorsys.hsv_to_rgb(*hsv[:, i, j].tolist()) for j in range(16)] for i in range(16)]
    ).transpose(2, 0, 1)
    assert np.abs(T.hsv_to_rgb(hsv).numpy() - reference).max() < 1e-6


@SETTINGS
@given(seed=st.integers(0, 2**31), shift=st.floats(-0.5, 0.5))
def test_rotate_hue_equals_the_hsv_round_trip(seed, shift):
    image = _image(7, 5, seed)
    hsv = T.rgb_to_hsv(image)
    shifted = torch.stack((torch.remainder(hsv[0] + shift, 1.0), hsv[1], hsv[2]))
    assert (T.rotate_hue(image, shift) - T.hsv_to_rgb(shifted)).abs().max() < 1e-5
    assert (T.rotate_hue(T.rotate_hue(image, shift), -shift) - image).abs().max() < 1e-5


FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(x: torch.Tensor) -> torch.Tensor:
    """The values' bit patterns: equal bits = equal values, signed zeros and NaNs included."""
    return x.contiguous().view(_BITS[x.dtype.itemsize])


def _where_remainder_rotate_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """The hue rotation written plainly with ``torch.where`` and ``torch.remainder`` (what
    the toolkit computed before its CPU fast path): the reference the fast path must equal."""
    red, green, blue = image.unbind(dim=-3)
    value = image.amax(dim=-3)
    chroma = value - image.amin(dim=-3)
    inverse = torch.where(chroma == 0, 1.0, chroma).reciprocal_()
    red_max, green_max = value == red, value == green
    numerator = torch.where(red_max, green - blue, torch.where(green_max, blue - red, red - green))
    offset = torch.where(red_max, 0.0, torch.where(green_max, 2.0, 4.0))
    sixths = numerator.mul_(inverse).add_(offset).add_(6.0 * shift)
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=image.dtype).view(3, 1, 1)
    k = torch.remainder(sixths.unsqueeze(-3) + offsets, 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return value.unsqueeze(-3) - chroma.unsqueeze(-3) * ramp


def _awkward_image(seed: int) -> torch.Tensor:
    """Quantised colours with gray pixels, ties between channels, black and white rows."""
    x = torch.randint(0, 256, (3, 40, 24), generator=_gen(seed)).float() / 255
    x[:, :6] = x[:1, :6]  # gray
    x[1, 6:12] = x[0, 6:12]  # red = green
    x[2, 12:18] = x[1, 12:18]  # green = blue
    x[0, 18:24] = x[2, 18:24]  # red = blue
    x[:, 24:27], x[:, 27:30] = 0.0, 1.0
    return x


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    shift=st.one_of(st.floats(-0.5, 0.5), st.sampled_from([0.0, 0.5, -0.5, 1e-9, -1e-9])),
    dtype=st.sampled_from(FLOAT_DTYPES),
)
def test_rotate_hue_is_bit_identical_to_the_plain_formula(seed, shift, dtype):
    for image in (_image(9, 7, seed), _awkward_image(seed % 1000)):
        image = image.to(dtype)
        assert torch.equal(
            _bits(T.rotate_hue(image, shift)), _bits(_where_remainder_rotate_hue(image, shift))
        )


@SETTINGS
@given(seed=st.integers(0, 2**31), dtype=st.sampled_from(FLOAT_DTYPES))
def test_select_is_torch_where_bit_for_bit(seed, dtype):
    g = _gen(seed)
    a = (torch.randn(5, 7, generator=g) * 1e3).to(dtype)
    b = (torch.randn(5, 7, generator=g) * 1e-3).to(dtype)
    a[0, 0], b[0, 1], a[1, 0], b[1, 1] = float("nan"), float("-inf"), -0.0, -0.0
    mask = torch.rand(5, 7, generator=g) < 0.5
    assert torch.equal(_bits(T._select(mask, a, b)), _bits(torch.where(mask, a, b)))
    # broadcast mask
    assert torch.equal(_bits(T._select(mask[:1], a, b)), _bits(torch.where(mask[:1], a, b)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_remainder_6_is_torch_remainder_bit_for_bit(dtype):
    edges = torch.tensor([-6.0, -3.0, -0.0, 0.0, 6.0, 12.0, 18.0, -1e-9, 5.9999, 17.999])
    values = [edges.to(dtype)]
    for toward in (float("inf"), float("-inf")):  # the neighbours of every edge
        v = values[0]
        for _ in range(3):
            v = torch.nextafter(v, torch.full_like(v, toward))
            values.append(v)
    g = _gen(0)
    values.append((torch.rand(20000, generator=g, dtype=torch.float64) * 24 - 6).to(dtype))
    values.append((torch.rand(20000, generator=g, dtype=torch.float64) * 2e-3 - 1e-3).to(dtype))
    everything = torch.cat(values)
    inside = everything[(everything > -6) & (everything < 18)]  # the fast path's range
    for v in (everything, inside, inside[:0], torch.tensor([float("nan"), 1.0], dtype=dtype)):
        assert torch.equal(_bits(T._remainder_6(v)), _bits(torch.remainder(v, 6.0)))


def test_grayscale_uses_official_weights():
    image = _image()
    gray = T.rgb_to_grayscale(image)
    assert gray.shape == (1, 24, 12)
    assert torch.allclose(gray[0], 0.2989 * image[0] + 0.5870 * image[1] + 0.1140 * image[2])


# ----------------------------------------------------------------------------- ColorJitter


def test_color_jitter_parameter_ranges_follow_torchvision():
    jitter = T.ColorJitter(0.5, 0.5, 0.5, 0.5)
    assert jitter.brightness == (0.5, 1.5) and jitter.hue == (-0.5, 0.5)
    assert T.ColorJitter(brightness=2.0).brightness == (0.0, 3.0)
    g = _gen(0)
    draws = [jitter.sample_parameters(g) for _ in range(500)]
    for order, b, c, s, h in draws:
        assert sorted(order) == [0, 1, 2, 3]
        assert 0.5 <= b <= 1.5 and 0.5 <= c <= 1.5 and 0.5 <= s <= 1.5 and -0.5 <= h <= 0.5
    assert len({tuple(d[0]) for d in draws}) == 24  # every order of the four operations occurs
    hues = np.array([d[4] for d in draws])
    assert hues.min() < -0.45 and hues.max() > 0.45
    disabled = T.ColorJitter(contrast=0.3).sample_parameters(g)
    assert disabled[1] is None and disabled[3] is None and disabled[4] is None


def test_color_jitter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="hue"):
        T.ColorJitter(hue=0.6)
    with pytest.raises(ValueError, match="non-negative"):
        T.ColorJitter(brightness=-1)
    with pytest.raises(ValueError, match="channels"):
        T.ColorJitter(0.5)(_image(channels=1))


def test_color_jitter_without_operations_is_identity():
    image = _image()
    assert torch.equal(T.ColorJitter()(image, generator=_gen(0)), image)


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.3, 1.5])
def test_brightness_saturation_contrast_match_pillow(factor):
    # Pillow works in 8 bits and uses 0.299/0.587/0.114 luma and a rounded mean for contrast,
    # so agreement is to 2 grey levels.
    image = _smooth_uint8_image(32, 16, seed=int(factor * 10))
    pil = _to_pil(image)
    apply = T.ColorJitter.apply
    cases = [
        (apply(image, [0], factor, None, None, None), ImageEnhance.Brightness(pil)),
        (apply(image, [1], None, factor, None, None), ImageEnhance.Contrast(pil)),
        (apply(image, [2], None, None, factor, None), ImageEnhance.Color(pil)),
    ]
    for ours, enhancer in cases:
        assert (ours - _from_pil(enhancer.enhance(factor))).abs().max() <= 2.01 / 255


def test_hue_shift_matches_colorsys():
    image = _image(8, 8, seed=5)
    shift = 0.3
    out = T.ColorJitter.apply(image, [3], None, None, None, shift)
    reference = np.empty((3, 8, 8))
    for i in range(8):
        for j in range(8):
            h, s, v = colorsys.rgb_to_hsv(*image[:, i, j].tolist())
            reference[:, i, j] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
    assert np.abs(out.numpy() - reference).max() < 1e-5


@SETTINGS
@given(seed=st.integers(0, 2**31), height=st.integers(1, 12), width=st.integers(1, 12))
def test_color_jitter_stays_in_range_and_keeps_gray_images_gray(seed, height, width):
    image = _image(height, width, seed)
    jitter = T.ColorJitter(0.5, 0.5, 0.5, 0.5)
    out = jitter(image, generator=_gen(seed))
    assert out.shape == image.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(out, jitter(image, generator=_gen(seed)))
    gray = image[:1].expand(3, height, width).contiguous()
    gray_out = jitter(gray, generator=_gen(seed))
    assert (gray_out - gray_out[:1]).abs().max() < 1e-6  # saturation and hue leave gray alone


# ----------------------------------------------------------------------------- Normalize


def test_normalize_uses_imagenet_statistics():
    image = torch.stack([torch.full((2, 2), v) for v in (0.485, 0.456 + 0.224, 0.406 - 0.225)])
    out = T.Normalize()(image)
    expected = torch.stack([torch.full((2, 2), v) for v in (0.0, 1.0, -1.0)])
    assert torch.allclose(out, expected, atol=1e-6)


@SETTINGS
@given(seed=st.integers(0, 2**31), batch=st.integers(0, 3))
def test_normalize_round_trip(seed, batch):
    image = _image(5, 4, seed)
    if batch:
        image = image.expand(batch, 3, 5, 4)
    normalize = T.Normalize()
    assert torch.allclose(normalize.inverse(normalize(image)), image, atol=1e-6)
    assert torch.allclose(T.denormalize(normalize(image)), image, atol=1e-6)


def test_normalize_rejects_bad_statistics():
    with pytest.raises(ValueError, match="positive"):
        T.Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="channels"):
        T.Normalize()(_image(channels=1))


# ----------------------------------------------------------------------------- RandomErasing


def _official_erasing(
    image, generator, probability=0.5, sl=0.02, sh=0.4, r1=0.3, fill=T.ERASING_FILL
):
    """Sequential re-implementation of the official ChannelRandomErasing, with the same draws."""
    out = image.clone()
    if float(torch.rand(1, generator=generator)) > probability:
        return out, None
    draws = torch.empty(200, dtype=torch.float64).uniform_(0.0, 1.0, generator=generator).tolist()
    height, width = image.shape[1:]
    for attempt in range(100):
        target_area = (sl + draws[2 * attempt] * (sh - sl)) * height * width
        aspect = r1 + draws[2 * attempt + 1] * (1 / r1 - r1)
        h = int(round(math.sqrt(target_area * aspect)))
        w = int(round(math.sqrt(target_area / aspect)))
        if w < width and h < height:
            x1 = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            y1 = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            for channel in range(3):
                out[channel, x1 : x1 + h, y1 : y1 + w] = fill[channel]
            return out, (x1, y1, h, w)
    return out, None


@SETTINGS
@given(seed=st.integers(0, 2**31), height=st.integers(2, 40), width=st.integers(2, 40))
def test_erasing_follows_the_official_retry_rule(seed, height, width):
    image = _image(height, width, seed)
    ours = T.RandomErasing(probability=0.5)(image, generator=_gen(seed))
    expected, _ = _official_erasing(image, _gen(seed))
    assert torch.equal(ours, expected)


@SETTINGS
@given(seed=st.integers(0, 2**31), height=st.integers(8, 300), width=st.integers(8, 300))
def test_erased_box_respects_area_and_aspect_bounds(seed, height, width):
    erasing = T.RandomErasing(probability=1.0)
    box = erasing.sample_box(height, width, _gen(seed))
    if box is None:
        return
    top, left, h, w = box
    assert 0 <= top <= height - h and 0 <= left <= width - w
    assert h < height and w < width
    # h and w are rounded from sqrt(A r) and sqrt(A / r): bounds hold up to half a pixel.
    assert (h + 0.5) * (w + 0.5) >= 0.02 * height * width
    assert (h - 0.5) * (w - 0.5) <= 0.4 * height * width
    if w >= 1:
        assert (h + 0.5) / max(w - 0.5, 1e-9) >= 0.3
    if h >= 1:
        assert (h - 0.5) / (w + 0.5) <= 1 / 0.3


def test_erasing_fills_exactly_the_box_with_the_official_values():
    image = _image(64, 32, seed=2)
    erasing = T.RandomErasing(probability=1.0)
    top, left, h, w = erasing.sample_box(64, 32, _gen(7))
    out = erasing(image, generator=_gen(7))
    inside = torch.zeros(64, 32, dtype=torch.bool)
    inside[top : top + h, left : left + w] = True
    for channel, value in enumerate(T.ERASING_FILL):
        assert torch.all(out[channel][inside] == torch.tensor(value))
    assert torch.equal(out[:, ~inside], image[:, ~inside])
    assert not torch.equal(out, image)


def test_erasing_probability_and_no_fit():
    image = _image(16, 16)
    erasing, g = T.RandomErasing(probability=0.5), _gen(3)
    erased = sum(not torch.equal(erasing(image, generator=g), image) for _ in range(2000))
    assert abs(erased / 2000 - 0.5) < 5 * math.sqrt(0.25 / 2000)
    assert torch.equal(T.RandomErasing(probability=0.0)(image, generator=g), image)
    # No attempt can fit (square box of ~the full image): the image is left unchanged.
    never_fits = T.RandomErasing(probability=1.0, area=(0.99, 1.0), aspect_ratio=(1.0, 1.0))
    assert never_fits.sample_box(10, 10, g) is None
    assert torch.equal(never_fits(image[:, :10, :10], generator=g), image[:, :10, :10])


def test_erasing_single_channel_and_errors():
    out = T.RandomErasing(probability=1.0)(_image(30, 30, channels=1), generator=_gen(0))
    assert (out == T.ERASING_FILL[0]).any()
    with pytest.raises(ValueError, match="fill values"):
        T.RandomErasing()(_image(channels=2))
    with pytest.raises(ValueError, match="area"):
        T.RandomErasing(area=(0.5, 0.1))


# ----------------------------------------------------------------------------- Channel operations


def _which_channel_copy(out, image):
    """0/1/2 when out replicates that channel, 'gray' for the luma, 'same' when unchanged."""
    for channel in range(3):
        if torch.equal(out, image[channel : channel + 1].expand_as(image)):
            return channel
    if torch.allclose(out, T.rgb_to_grayscale(image).expand_as(image), atol=1e-6):
        return "gray"
    if torch.equal(out, image):
        return "same"
    raise AssertionError("unexpected channel operation output")


def _frequencies(transform, draws=4000, seed=0):
    image = T.Normalize()(_image(4, 3, seed=9))
    g = _gen(seed)
    outcomes = [_which_channel_copy(transform(image, generator=g), image) for _ in range(draws)]
    return {key: outcomes.count(key) / draws for key in set(outcomes)}


def _assert_frequencies(observed, expected, draws=4000):
    assert set(observed) == set(expected)
    for key, probability in expected.items():
        sigma = math.sqrt(probability * (1 - probability) / draws)
        assert abs(observed[key] - probability) < 5 * sigma


def test_channel_exchange_official_gray_2_copies_one_channel_uniformly():
    _assert_frequencies(_frequencies(T.ChannelExchange(gray=2)), {0: 1 / 3, 1: 1 / 3, 2: 1 / 3})


def test_channel_exchange_gray_3_adds_the_gray_branch():
    _assert_frequencies(
        _frequencies(T.ChannelExchange(gray=3)), {0: 0.25, 1: 0.25, 2: 0.25, "gray": 0.25}
    )


def test_channel_adap_gray_official_probabilities():
    _assert_frequencies(
        _frequencies(T.ChannelAdapGray(0.5)),
        {0: 0.25, 1: 0.25, 2: 0.25, "gray": 0.125, "same": 0.125},
    )


@SETTINGS
@given(seed=st.integers(0, 2**31))
def test_channel_operations_give_equal_channels_and_do_not_modify_input(seed):
    image = T.Normalize()(_image(6, 5, seed))
    before = image.clone()
    for transform in (T.ChannelExchange(), T.ChannelAdapGray(probability=1.0)):
        out = transform(image, generator=_gen(seed))
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        assert torch.equal(out, transform(image, generator=_gen(seed)))
    assert torch.equal(image, before)


def test_channel_operations_need_three_channels():
    with pytest.raises(ValueError, match="3 channels"):
        T.ChannelExchange()(_image(channels=1))
    with pytest.raises(ValueError, match="gray"):
        T.ChannelExchange(gray=-1)


# ----------------------------------------------------------------------------- Pipelines


def test_official_pipelines_have_the_official_steps_in_order():
    core = [
        T.ColorJitter,
        T.Resize,
        T.Pad,
        T.RandomCrop,
        T.RandomHorizontalFlip,
        T.Normalize,
        T.RandomErasing,
    ]
    first = T.rgb_train_transform(288, 144)
    assert [type(t) for t in first.transforms] == core
    assert [type(t) for t in T.rgb_train_transform_second_view(288, 144).transforms] == (
        core + [T.ChannelExchange]
    )
    ir = T.ir_train_transform(288, 144)
    assert [type(t) for t in ir.transforms] == core + [T.ChannelAdapGray]
    jitter, resize, pad, crop, flip, normalize, erasing = first.transforms
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.5, 1.5)
    assert jitter.hue == (-0.5, 0.5)
    assert resize.size == crop.size == (288, 144) and resize.interpolation == "bilinear"
    assert pad.padding == (10, 10, 10, 10) and pad.fill == 0.0 and flip.p == 0.5
    assert normalize.mean == T.IMAGENET_MEAN and normalize.std == T.IMAGENET_STD
    assert erasing.probability == 0.5 and erasing.area == (0.02, 0.4)
    assert erasing.fill == T.ERASING_FILL
    assert T.rgb_train_transform_second_view(8, 4).transforms[-1].gray == 2
    test = T.test_transform(288, 144)
    assert [type(t) for t in test.transforms] == [T.Resize, T.Normalize]


@pytest.mark.parametrize(
    "factory",
    [
        T.rgb_train_transform,
        T.rgb_train_transform_second_view,
        T.ir_train_transform,
        T.test_transform,
    ],
)
def test_pipelines_shape_and_determinism(factory):
    image = _image(80, 37, seed=1)
    pipeline = factory(32, 16)
    out = pipeline(image, generator=_gen(5))
    assert out.shape == (3, 32, 16) and out.dtype == torch.float32
    assert torch.equal(out, pipeline(image, generator=_gen(5)))
    # normalised [0, 1] images lie within [(0 - mean) / std, (1 - mean) / std]
    low = min((0 - m) / s for m, s in zip(T.IMAGENET_MEAN, T.IMAGENET_STD))
    high = max((1 - m) / s for m, s in zip(T.IMAGENET_MEAN, T.IMAGENET_STD))
    assert out.min() >= low - 1e-5 and out.max() <= high + 1e-5
    outputs = {pipeline(image, generator=_gen(seed)).sum().item() for seed in range(6)}
    assert len(outputs) == (1 if factory is T.test_transform else 6)


def test_global_rng_is_used_without_a_generator():
    image = _image(40, 20)
    pipeline = T.ir_train_transform(16, 8)
    torch.manual_seed(11)
    first = pipeline(image)
    torch.manual_seed(11)
    assert torch.equal(first, pipeline(image))


def test_compose_accepts_plain_callables():
    pipeline = T.Compose([T.RandomHorizontalFlip(1.0), lambda image: image * 2])
    image = _image(3, 3)
    assert torch.equal(pipeline(image, generator=_gen(0)), image.flip(-1) * 2)
    with pytest.raises(TypeError, match="not callable"):
        T.Compose([3])
