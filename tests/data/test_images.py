"""Tests of sdcl_toolkit.data.images.load_image."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sdcl_toolkit.data.images import ImageDecodeError, load_image


def _pixels(height=12, width=7, seed=0):
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def test_png_round_trip_is_exact(tmp_path):
    pixels = _pixels()
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    image = load_image(path)
    assert image.dtype == torch.float32
    assert image.shape == (3, 12, 7)
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0
    assert torch.equal(image, expected)
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_uint8_decoding_gives_the_bytes(tmp_path):
    pixels = _pixels()
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    image = load_image(path, dtype=torch.uint8)
    assert image.dtype == torch.uint8 and image.shape == (3, 12, 7)
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))
    assert torch.equal(image.float() / 255.0, load_image(path))
    with pytest.raises(ValueError, match="dtype must be"):
        load_image(path, dtype=torch.float16)


def test_str_and_pathlike_give_the_same_image(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_pixels()).save(path)
    assert torch.equal(load_image(str(path)), load_image(path))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK"])
def test_other_modes_are_converted_to_rgb(tmp_path, mode):
    base = Image.fromarray(_pixels())
    converted = base.convert(mode)
    path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    converted.save(path)
    image = load_image(path)
    assert image.shape == (3, 12, 7)
    with Image.open(path) as reopened:
        expected = np.array(reopened.convert("RGB"))
    assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1).float() / 255.0)
    if mode == "L":
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_jpeg_decodes_to_the_pillow_pixels(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(_pixels(40, 20)).save(path, quality=90)
    with Image.open(path) as reopened:
        expected = np.array(reopened.convert("RGB"))
    expected = torch.from_numpy(expected).permute(2, 0, 1).float()
    assert torch.equal(load_image(path) * 255.0, expected)


def _assert_names_file(error_info, path):
    error = error_info.value
    assert str(path) in str(error)
    assert error.path == str(path)
    assert isinstance(error, ValueError) and isinstance(error, OSError)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "missing.jpg"
    with pytest.raises(ImageDecodeError, match="file not found") as info:
        load_image(path)
    _assert_names_file(info, path)


def test_non_image_file_names_the_file(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageDecodeError, match="not a recognised image format") as info:
        load_image(path)
    _assert_names_file(info, path)


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_truncated_image_names_the_file(tmp_path, suffix):
    whole = tmp_path / f"whole.{suffix}"
    Image.fromarray(_pixels(64, 32)).save(whole)
    data = whole.read_bytes()
    path = tmp_path / f"cut.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="corrupt or unreadable") as info:
        load_image(path)
    _assert_names_file(info, path)


def test_directory_names_the_path(tmp_path):
    with pytest.raises(ImageDecodeError) as info:
        load_image(tmp_path)
    _assert_names_file(info, tmp_path)


def test_bad_path_type_is_a_type_error():
    with pytest.raises(TypeError, match="path must be a str"):
        load_image(3)


def test_error_survives_pickling_with_its_path(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    restored = pickle.loads(pickle.dumps(info.value))
    assert type(restored) is ImageDecodeError
    assert str(restored) == str(info.value) and restored.path == str(path)
    # DataLoader workers re-raise as exc_type(message): it must accept one string.
    assert str(path) in str(ImageDecodeError(f"worker says: {info.value}"))
