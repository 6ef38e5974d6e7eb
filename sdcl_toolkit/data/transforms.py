"""Image augmentations written with torch ops, and the official SDCL pipelines
(``cluster_contrast_vit_sysu.py`` of yangbincv/SDCL; see ``docs/data_pipeline.md``).

Every transform takes a float image tensor ``[C, H, W]`` (``C = 3`` for the colour operations)
and returns a new tensor; inputs are never modified in place. Random transforms take the
random source at call time::

    g = torch.Generator().manual_seed(0)
    out = transform(image, generator=g)     # same seed -> same output
    out = transform(image)                  # generator=None -> torch's global RNG

Random parameters are drawn on the generator's device; the image stays on its own device.

The ready-made compositions reproduce the official training code (``cluster_contrast_vit_sysu.py``):

=========================================  =====================================================
``rgb_train_transform``                    ColorJitter(.5,.5,.5,.5), Resize, Pad(10), RandomCrop,
                                           HorizontalFlip, Normalize, RandomErasing
``rgb_train_transform_second_view``        the same + ChannelExchange (copy one of R/G/B)
``ir_train_transform``                     the same + ChannelAdapGray
``test_transform``                         Resize (bicubic, as the official feature loader) +
                                           Normalize
=========================================  =====================================================

As in the official code the colour jitter runs on the decoded image at its original size
(before resizing), and random erasing and the channel operations run after normalisation,
so the erasing fill values and the gray conversion apply to normalised values.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_int

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ERASING_FILL",
    "GRAY_WEIGHTS",
    "Transform",
    "Compose",
    "Resize",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "Normalize",
    "RandomErasing",
    "ChannelExchange",
    "ChannelAdapGray",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "rotate_hue",
    "denormalize",
    "rgb_train_transform",
    "rgb_train_transform_second_view",
    "ir_train_transform",
    "test_transform",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean used by the official ``Normalize`` (ImageNet statistics)."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation used by the official ``Normalize``."""
ERASING_FILL: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
"""Fill values of the official ``ChannelRandomErasing`` (applied to normalised images)."""
GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)
"""Luma weights of the official gray conversion (and of torchvision's ``rgb_to_grayscale``)."""

Size = Union[int, tuple[int, int]]


# ----------------------------------------------------------------------------- helpers


def _check_image(
    image: torch.Tensor, name: str, *, channels: Optional[int] = None, batched: bool = False
) -> None:
    """Raise TypeError/ValueError unless ``image`` is a floating tensor ``[C, H, W]``.

    With ``batched=True`` any number of leading dimensions ``[..., C, H, W]`` is accepted.
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"{name} expects a torch.Tensor image [C, H, W], got {type(image).__name__}"
        )
    if not image.is_floating_point():
        raise TypeError(
            f"{name} expects a floating image (float32 values in [0, 1], e.g. from load_image), "
            f"got dtype {image.dtype}"
        )
    if (image.dim() < 3) if batched else (image.dim() != 3):
        expected = "[..., C, H, W]" if batched else "[C, H, W]"
        raise ValueError(f"{name} expects an image of shape {expected}, got {tuple(image.shape)}")
    if channels is not None and image.shape[-3] != channels:
        raise ValueError(
            f"{name} expects {channels} channels in dimension -3, got shape {tuple(image.shape)}"
        )
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ValueError(f"{name} got an empty image of shape {tuple(image.shape)}")


def _pair(value: Size, name: str) -> tuple[int, int]:
    """``int`` or ``(height, width)`` -> validated ``(height, width)`` of positive ints."""
    if _is_int(value):
        side = check_int(value, name, minimum=1)
        return (side, side)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        height = check_int(value[0], f"{name}[0]", minimum=1)
        return (height, check_int(value[1], f"{name}[1]", minimum=1))
    raise TypeError(f"{name} must be an int or a (height, width) pair of ints, got {value!r}")


def _is_int(value: object) -> bool:
    """Python or numpy integer, not a bool (the toolkit's integer rule)."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _device_of(generator: Optional[torch.Generator]) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _uniform(
    low: float, high: float, generator: Optional[torch.Generator], count: Optional[int] = None
):
    """Uniform draw(s) in ``[low, high)``: a float, or a float64 CPU tensor of ``count`` draws."""
    shape = (1,) if count is None else (count,)
    draws = torch.empty(shape, dtype=torch.float64, device=_device_of(generator))
    draws.uniform_(low, high, generator=generator)
    return float(draws) if count is None else draws.cpu()


def _randint(low: int, high_exclusive: int, generator: Optional[torch.Generator]) -> int:
    """One integer drawn uniformly from ``[low, high_exclusive)``."""
    return int(
        torch.randint(low, high_exclusive, (1,), generator=generator, device=_device_of(generator))
    )


def _rand(generator: Optional[torch.Generator]) -> float:
    """One float drawn uniformly from ``[0, 1)``."""
    return float(torch.rand(1, generator=generator, device=_device_of(generator)))


def _accepts_generator(fn: Callable) -> bool:
    """Whether ``fn`` can be called as ``fn(image, generator=...)``."""
    if isinstance(fn, Transform):
        return True
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "generator" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


# ----------------------------------------------------------------------------- colour maths


def rgb_to_grayscale(image: torch.Tensor) -> torch.Tensor:
    """Luma ``0.2989 R + 0.5870 G + 0.1140 B`` of ``[..., 3, H, W]`` -> ``[..., 1, H, W]``."""
    _check_image(image, "rgb_to_grayscale", channels=3, batched=True)
    weights = torch.tensor(GRAY_WEIGHTS, dtype=image.dtype, device=image.device)
    return (image * weights.view(3, 1, 1)).sum(dim=-3, keepdim=True)


_SAME_WIDTH_INT = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def _select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.where(mask, a, b)`` for float tensors of one dtype, bit for bit (``mask``
    broadcastable to the shape of ``a`` and ``b`` broadcast together).

    On the CPU ``torch.where`` is not vectorised for a boolean mask (~3 ns per element on
    the CI machine); the same selection as integer bit operations on the values' bits,
    ``b ^ ((a ^ b) & -mask)``, is ~7x faster. Other devices use ``torch.where``.
    """
    integer = _SAME_WIDTH_INT.get(a.dtype)
    if a.device.type != "cpu" or integer is None or b.dtype != a.dtype:
        return torch.where(mask, a, b)
    bits_a, bits_b = a.view(integer), b.view(integer)
    chosen = bits_a.bitwise_xor(bits_b).bitwise_and_(mask.to(integer).neg_())
    return chosen.bitwise_xor_(bits_b).view(a.dtype)


def _hue_sixths(image: torch.Tensor):
    """``(value, chroma, hue in sixths of a turn, gray mask)`` of RGB ``[..., 3, H, W]``.

    Hexcone model as torchvision: ``V = max``, ``C = max - min`` and
    ``H6 = (G - B) / C`` if red is the maximum, ``2 + (B - R) / C`` if green is (and red is
    not), ``4 + (R - G) / C`` otherwise (``H6`` in ``[-1, 5]``; meaningless where ``C = 0``).
    """
    red, green, blue = image.unbind(dim=-3)
    value = image.amax(dim=-3)
    chroma = value - image.amin(dim=-3)
    gray = chroma == 0
    # 1 / C, and 1 where C = 0 (C + 1 there: C >= 0, so the sum is exact)
    inverse_chroma = (chroma + gray.to(chroma.dtype)).reciprocal_()
    red_is_max = value == red
    green_is_max = (value == green) & ~red_is_max
    numerator = _select(red_is_max, green - blue, _select(green_is_max, blue - red, red - green))
    # 0 (red), 2 (green) or 4 (blue): exact small integers, in float32 as before
    offset = (~red_is_max).to(torch.float32).mul_(4.0)
    offset.sub_(green_is_max.to(torch.float32).mul_(2.0))
    return value, chroma, numerator.mul_(inverse_chroma).add_(offset), gray


def _remainder_6(k: torch.Tensor) -> torch.Tensor:
    """``torch.remainder(k, 6)``, bit for bit, without its (slow on CPU) division.

    For ``-6 < k < 18`` the remainder is ``k``, ``k - 6`` or ``k - 12``, computed exactly (6
    is a multiple of the spacing of floats at ``k``, and the difference is smaller than
    ``k``, so it is representable), or, for ``k < 0``, ``k + 6`` rounded once (what
    ``torch.remainder`` computes from the exact ``fmod``). Other ranges, NaN and non-CPU
    tensors use ``torch.remainder``. (The hue rotation's ``k`` lies in ``[-3, 13]``.)
    """
    if k.device.type != "cpu" or k.numel() == 0:
        return torch.remainder(k, 6.0)
    low, high = torch.aminmax(k)
    if not (float(low) > -6.0 and float(high) < 18.0):
        return torch.remainder(k, 6.0)
    k = k - (k >= 6.0).to(k.dtype).mul_(6.0)  # k - 0 is k, also for -0
    k.sub_((k >= 6.0).to(k.dtype).mul_(6.0))
    return _select(k < 0, k + 6.0, k)


def _hexcone_rgb(value: torch.Tensor, chroma: torch.Tensor, sixths: torch.Tensor) -> torch.Tensor:
    """RGB ``[..., 3, H, W]`` from value, chroma and hue in sixths (each ``[..., H, W]``).

    Channel R, G, B (``n = 5, 3, 1``) is ``V - C clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + H6) mod 6``.
    """
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=value.dtype, device=value.device).view(3, 1, 1)
    k = _remainder_6(sixths.unsqueeze(-3) + offsets)  # [..., 3, H, W]
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return value.unsqueeze(-3) - chroma.unsqueeze(-3) * ramp


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """RGB ``[..., 3, H, W]`` in ``[0, 1]`` -> HSV ``[..., 3, H, W]`` with hue in ``[0, 1)``.

    Standard hexcone model, as torchvision's tensor implementation: ``V = max``,
    ``S = (max - min) / V`` (0 where ``V = 0``), hue from the dominant channel (red, then
    green, then blue on ties) and 0 for gray pixels.
    """
    _check_image(image, "rgb_to_hsv", channels=3, batched=True)
    value, chroma, sixths, gray = _hue_sixths(image)
    saturation = chroma / torch.where(value == 0, 1.0, value)
    hue = torch.remainder(sixths.div_(6.0), 1.0).masked_fill_(gray, 0.0)
    return torch.stack((hue, saturation, value), dim=-3)


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """HSV ``[..., 3, H, W]`` (hue in turns) -> RGB ``[..., 3, H, W]``, inverting rgb_to_hsv."""
    _check_image(image, "hsv_to_rgb", channels=3, batched=True)
    hue, saturation, value = image.unbind(dim=-3)
    return _hexcone_rgb(value, value * saturation, hue * 6.0)


def rotate_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Add ``shift`` turns to the HSV hue of RGB ``[..., 3, H, W]`` (torchvision ``adjust_hue``).

    Equivalent to ``hsv_to_rgb`` of the shifted ``rgb_to_hsv`` (hue taken mod 1) without
    forming the HSV image: saturation and value are unchanged, so ``V`` and ``C`` are reused.
    """
    _check_image(image, "rotate_hue", channels=3, batched=True)
    value, chroma, sixths, _ = _hue_sixths(image)
    return _hexcone_rgb(value, chroma, sixths.add_(6.0 * float(shift)))


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    """``clamp(factor * image + (1 - factor) * other, 0, 1)``."""
    return (factor * image + (1.0 - factor) * other).clamp_(0.0, 1.0)


def denormalize(
    image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """Undo :class:`Normalize`: ``image * std + mean`` per channel, ``[..., C, H, W]``."""
    return Normalize(mean, std).inverse(image)


# ----------------------------------------------------------------------------- transforms


class Transform:
    """Base class: ``transform(image, generator=None) -> image`` on ``[C, H, W]`` float tensors."""

    def __call__(
        self, image: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order, passing the same generator to each random one.

    Plain callables that take only the image are accepted too (called without the generator).
    """

    def __init__(self, transforms: Sequence[Callable]) -> None:
        transforms = list(transforms)
        for position, fn in enumerate(transforms):
            if not callable(fn):
                raise TypeError(f"transforms[{position}] is not callable: {fn!r}")
        self.transforms: list[Callable] = transforms
        self._takes_generator = [_accepts_generator(fn) for fn in transforms]

    def __call__(self, image, generator=None):
        for fn, takes_generator in zip(self.transforms, self._takes_generator):
            image = fn(image, generator=generator) if takes_generator else fn(image)
        return image

    def __repr__(self) -> str:
        inner = "".join(f"\n    {fn!r}," for fn in self.transforms)
        return f"Compose([{inner}\n])"


class Resize(Transform):
    """Resize to a fixed ``(height, width)`` (no aspect preservation, as ``T.Resize((h, w))``).

    ``interpolation`` is ``"bilinear"`` (torchvision's default, used by the official training
    pipelines), ``"bicubic"`` (the official feature-extraction loader) or ``"nearest"``.
    With ``antialias=True`` downscaling low-pass filters like Pillow does, which is what the
    official code gets from resizing PIL images. Bicubic output is clamped to ``[0, 1]`` (Pillow
    works in 8 bits and cannot overshoot). Accepts ``[..., C, H, W]``; deterministic.
    """

    _MODES = ("bilinear", "bicubic", "nearest")

    def __init__(self, size: Size, interpolation: str = "bilinear", antialias: bool = True) -> None:
        if interpolation not in self._MODES:
            raise ValueError(f"interpolation must be one of {self._MODES}, got {interpolation!r}")
        self.size = _pair(size, "Resize size")
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def __call__(self, image, generator=None):
        _check_image(image, "Resize", batched=True)
        if tuple(image.shape[-2:]) == self.size:
            return image.clone()
        leading = image.shape[:-3]
        flat = image.reshape(-1, *image.shape[-3:])
        if self.interpolation == "nearest":
            out = F.interpolate(flat, size=self.size, mode="nearest-exact")
        else:
            out = F.interpolate(
                flat,
                size=self.size,
                mode=self.interpolation,
                align_corners=False,
                antialias=self.antialias,
            )
            if self.interpolation == "bicubic":
                out = out.clamp_(0.0, 1.0)
        return out.reshape(*leading, *out.shape[-3:])


class Pad(Transform):
    """Constant padding on all sides (torchvision ``Pad(padding)`` with its default ``fill=0``).

    ``padding`` is an int (all sides), ``(left/right, top/bottom)`` or
    ``(left, top, right, bottom)``. Accepts ``[..., C, H, W]``; deterministic.
    """

    def __init__(self, padding: Union[int, Sequence[int]] = 10, fill: float = 0.0) -> None:
        sides: tuple[int, ...]
        if _is_int(padding):
            sides = (check_int(padding, "padding"),) * 4
        elif isinstance(padding, (tuple, list)) and len(padding) == 2:
            pair = [check_int(p, f"padding[{i}]") for i, p in enumerate(padding)]
            sides = (pair[0], pair[1], pair[0], pair[1])
        elif isinstance(padding, (tuple, list)) and len(padding) == 4:
            sides = tuple(check_int(p, f"padding[{i}]") for i, p in enumerate(padding))
        else:
            raise TypeError(f"padding must be an int or a sequence of 2 or 4 ints, got {padding!r}")
        if min(sides) < 0:
            raise ValueError(f"padding must be non-negative, got {padding!r}")
        self.padding = sides  # left, top, right, bottom
        self.fill = float(fill)

    def __call__(self, image, generator=None):
        _check_image(image, "Pad", batched=True)
        left, top, right, bottom = self.padding
        return F.pad(image, (left, right, top, bottom), mode="constant", value=self.fill)


class RandomCrop(Transform):
    """Crop a ``(height, width)`` window at a uniformly random position.

    Draws the top row then the left column, each uniform over all valid offsets (as
    torchvision's ``RandomCrop.get_params``). The image must be at least the crop size.
    """

    def __init__(self, size: Size) -> None:
        self.size = _pair(size, "RandomCrop size")

    def __call__(self, image, generator=None):
        _check_image(image, "RandomCrop")
        height, width = image.shape[-2:]
        crop_h, crop_w = self.size
        if height < crop_h or width < crop_w:
            raise ValueError(
                f"RandomCrop size {self.size} is larger than the image ({height}, {width}); "
                "resize or pad first"
            )
        top = _randint(0, height - crop_h + 1, generator)
        left = _randint(0, width - crop_w + 1, generator)
        return image[:, top : top + crop_h, left : left + crop_w].clone()


class RandomHorizontalFlip(Transform):
    """Mirror the image left-right with probability ``p`` (one draw ``u < p``)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, image, generator=None):
        _check_image(image, "RandomHorizontalFlip")
        if _rand(generator) < self.p:
            return image.flip(-1)
        return image.clone()


def _jitter_range(
    value, name: str, *, center: float, bound: tuple[float, float], clip_first_to_zero: bool
) -> Optional[tuple[float, float]]:
    """torchvision's ColorJitter argument rule: ``v -> [center - v, center + v]``, or
    ``(lo, hi)``."""
    if isinstance(value, numbers.Number):
        amount: Any = value  # numbers.Number declares neither ordering nor float()
        if amount < 0:
            raise ValueError(f"ColorJitter {name} must be non-negative, got {value}")
        low, high = center - float(amount), center + float(amount)
        if clip_first_to_zero:
            low = max(low, 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    else:
        raise TypeError(f"ColorJitter {name} must be a number or a (min, max) pair, got {value!r}")
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f"ColorJitter {name} range ({low}, {high}) must lie within {bound}")
    if low == high == center:
        return None
    return (low, high)


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue changes in a random order.

    torchvision semantics: draw a random permutation of the four operations, then the factors
    ``b, c, s`` uniform in ``[max(0, 1 - x), 1 + x]`` and the hue shift ``h`` uniform in
    ``[-hue, hue]`` (``hue <= 0.5``); an argument of 0 disables that operation. With ``I`` the
    image and ``Y = 0.2989 R + 0.5870 G + 0.1140 B`` its luma, each operation is a clamped blend:

    * brightness: ``clamp(b * I, 0, 1)``
    * contrast:   ``clamp(c * I + (1 - c) * mean(Y), 0, 1)``
    * saturation: ``clamp(s * I + (1 - s) * Y, 0, 1)``
    * hue:        rotate the HSV hue by ``h`` (mod 1)

    The official pipelines use ``ColorJitter(0.5, 0.5, 0.5, 0.5)`` on the decoded image
    before resizing. Input: RGB ``[3, H, W]`` in ``[0, 1]``.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
    ) -> None:
        inf = float("inf")
        self.brightness = _jitter_range(
            brightness, "brightness", center=1.0, bound=(0.0, inf), clip_first_to_zero=True
        )
        self.contrast = _jitter_range(
            contrast, "contrast", center=1.0, bound=(0.0, inf), clip_first_to_zero=True
        )
        self.saturation = _jitter_range(
            saturation, "saturation", center=1.0, bound=(0.0, inf), clip_first_to_zero=True
        )
        self.hue = _jitter_range(
            hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_to_zero=False
        )

    def sample_parameters(self, generator: Optional[torch.Generator] = None):
        """Draw ``(order, brightness, contrast, saturation, hue)`` as torchvision does.

        ``order`` is a permutation of ``0..3`` (brightness, contrast, saturation, hue); a
        factor is ``None`` when that operation is disabled.
        """
        order = torch.randperm(4, generator=generator, device=_device_of(generator)).tolist()
        factors = [
            None if rng is None else _uniform(rng[0], rng[1], generator)
            for rng in (self.brightness, self.contrast, self.saturation, self.hue)
        ]
        return (order, *factors)

    @staticmethod
    def apply(
        image: torch.Tensor,
        order: Sequence[int],
        brightness: Optional[float],
        contrast: Optional[float],
        saturation: Optional[float],
        hue: Optional[float],
    ) -> torch.Tensor:
        """Apply the four operations with fixed parameters (``None`` skips one)."""
        for op in order:
            if op == 0 and brightness is not None:
                image = _blend(image, torch.zeros_like(image), brightness)
            elif op == 1 and contrast is not None:
                mean = rgb_to_grayscale(image).mean(dim=(-3, -2, -1), keepdim=True)
                image = _blend(image, mean, contrast)
            elif op == 2 and saturation is not None:
                image = _blend(image, rgb_to_grayscale(image), saturation)
            elif op == 3 and hue is not None:
                image = rotate_hue(image, hue)
        return image

    def __call__(self, image, generator=None):
        _check_image(image, "ColorJitter", channels=3)
        parameters = self.sample_parameters(generator)
        return self.apply(image.clone(), *parameters)


class Normalize(Transform):
    """Per-channel standardisation ``(image - mean) / std`` (ImageNet statistics by default).

    Accepts ``[..., C, H, W]``; deterministic. :meth:`inverse` undoes it.
    """

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) != len(std) or not mean:
            raise ValueError(
                f"Normalize mean and std need equal non-zero lengths, got {mean}, {std}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"Normalize std must be positive, got {std}")
        self.mean, self.std = mean, std

    def _stats(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_image(image, "Normalize", channels=len(self.mean), batched=True)
        shape = (len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device).view(shape)
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device).view(shape)
        return mean, std

    def __call__(self, image, generator=None):
        mean, std = self._stats(image)
        return (image - mean) / std

    def inverse(self, image: torch.Tensor) -> torch.Tensor:
        """``image * std + mean``: back to the un-normalised image."""
        mean, std = self._stats(image)
        return image * std + mean


class RandomErasing(Transform):
    """Official ``ChannelRandomErasing`` (Zhong et al.): erase one random rectangle.

    With probability ``probability`` (the official test is ``u > p`` -> keep), try up to
    ``max_attempts`` times: draw a target area ``A = U(area) * H * W`` and an aspect ratio
    ``r = U(aspect_ratio)``; the rectangle is ``h = round(sqrt(A r))`` by
    ``w = round(sqrt(A / r))``; the first attempt with ``h < H`` and ``w < W`` is used, placed
    at a uniform top-left corner (``0..H-h``, ``0..W-w``) and filled with ``fill[c]`` in
    channel ``c``. If no attempt fits the image is unchanged. The official defaults are
    ``p = 0.5``, area ``0.02..0.4``, aspect ``0.3..1/0.3`` and fill ``(0.4914, 0.4822, 0.4465)``,
    applied after normalisation. A single-channel image is filled with ``fill[0]``.
    """

    def __init__(
        self,
        probability: float = 0.5,
        area: tuple[float, float] = (0.02, 0.4),
        aspect_ratio: tuple[float, float] = (0.3, 1.0 / 0.3),
        fill: Sequence[float] = ERASING_FILL,
        max_attempts: int = 100,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"RandomErasing probability must be in [0, 1], got {probability}")
        if not (len(area) == 2 and 0.0 < area[0] <= area[1] <= 1.0):
            raise ValueError(
                f"RandomErasing area must be (min, max) with 0 < min <= max <= 1, got {area}"
            )
        if not (len(aspect_ratio) == 2 and 0.0 < aspect_ratio[0] <= aspect_ratio[1]):
            raise ValueError(
                f"RandomErasing aspect_ratio must be (min, max) with 0 < min <= max, "
                f"got {aspect_ratio}"
            )
        if max_attempts < 1:
            raise ValueError(f"RandomErasing max_attempts must be >= 1, got {max_attempts}")
        self.probability = float(probability)
        self.area = (float(area[0]), float(area[1]))
        self.aspect_ratio = (float(aspect_ratio[0]), float(aspect_ratio[1]))
        self.fill = tuple(float(f) for f in fill)
        self.max_attempts = int(max_attempts)

    def sample_box(
        self, height: int, width: int, generator: Optional[torch.Generator] = None
    ) -> Optional[tuple[int, int, int, int]]:
        """Draw ``(top, left, h, w)`` of the rectangle to erase, or ``None`` for no erasing.

        All attempts are drawn at once (area then aspect per attempt) and the first that fits
        is kept, so the number of random draws does not depend on the image.
        """
        if _rand(generator) > self.probability:
            return None
        draws = _uniform(0.0, 1.0, generator, count=2 * self.max_attempts).view(-1, 2)
        area_fraction = self.area[0] + draws[:, 0] * (self.area[1] - self.area[0])
        target_area = area_fraction * (height * width)
        aspect = self.aspect_ratio[0] + draws[:, 1] * (self.aspect_ratio[1] - self.aspect_ratio[0])
        box_h = torch.round(torch.sqrt(target_area * aspect)).to(torch.int64)
        box_w = torch.round(torch.sqrt(target_area / aspect)).to(torch.int64)
        fits = ((box_h < height) & (box_w < width)).nonzero()
        if fits.numel() == 0:
            return None
        first = int(fits[0, 0])
        h, w = int(box_h[first]), int(box_w[first])
        top = _randint(0, height - h + 1, generator)
        left = _randint(0, width - w + 1, generator)
        return top, left, h, w

    def __call__(self, image, generator=None):
        _check_image(image, "RandomErasing")
        channels = image.shape[0]
        if channels != len(self.fill) and channels != 1:
            raise ValueError(
                f"RandomErasing has {len(self.fill)} fill values but the image has "
                f"{channels} channels"
            )
        box = self.sample_box(image.shape[1], image.shape[2], generator)
        out = image.clone()
        if box is None:
            return out
        top, left, h, w = box
        fill = torch.tensor(self.fill[:channels], dtype=image.dtype, device=image.device)
        out[:, top : top + h, left : left + w] = fill.view(channels, 1, 1)
        return out


def _channel_copy(image: torch.Tensor, channel: int) -> torch.Tensor:
    return image[channel : channel + 1].expand_as(image).clone()


def _gray_copy(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_grayscale(image).expand_as(image).clone()


class ChannelExchange(Transform):
    """Official ``ChannelExchange(gray)``: replace all channels by one of them, or by gray.

    Draws ``k`` uniform in ``{0, ..., gray}``; ``k in {0, 1, 2}`` copies channel R, G or B into
    all three channels, ``k >= 3`` writes the luma ``0.2989 R + 0.5870 G + 0.1140 B`` into all
    three. With the official ``gray=2`` the gray branch is never taken: each of R, G, B is
    copied with probability 1/3. Input ``[3, H, W]`` (normalised in the official pipeline).
    """

    def __init__(self, gray: int = 2) -> None:
        self.gray: int = check_int(gray, "gray", minimum=0)

    def __call__(self, image, generator=None):
        _check_image(image, "ChannelExchange", channels=3)
        choice = _randint(0, self.gray + 1, generator)
        return _channel_copy(image, choice) if choice < 3 else _gray_copy(image)


class ChannelAdapGray(Transform):
    """Official ``ChannelAdapGray``: the infrared "adaptive gray" augmentation.

    Draws ``k`` uniform in ``{0, 1, 2, 3}``; ``k < 3`` copies channel R, G or B into all three
    channels. For ``k = 3`` a second draw ``u ~ U(0, 1)`` keeps the image when
    ``u > probability`` and otherwise writes the luma ``0.2989 R + 0.5870 G + 0.1140 B`` into
    all channels. With ``probability = 0.5``: 1/4 each channel copy, 1/8 gray, 1/8 unchanged.
    """

    def __init__(self, probability: float = 0.5) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"ChannelAdapGray probability must be in [0, 1], got {probability}")
        self.probability = float(probability)

    def __call__(self, image, generator=None):
        _check_image(image, "ChannelAdapGray", channels=3)
        choice = _randint(0, 4, generator)
        if choice < 3:
            return _channel_copy(image, choice)
        if _rand(generator) > self.probability:
            return image.clone()
        return _gray_copy(image)


# ----------------------------------------------------------------------------- official pipelines


def _train_core(
    height: int,
    width: int,
    *,
    jitter: float = 0.5,
    hue: float = 0.5,
    padding: int = 10,
    erasing: float = 0.5,
) -> list[Transform]:
    size = _pair((height, width), "(height, width)")
    return [
        ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=hue),
        Resize(size),
        Pad(padding),
        RandomCrop(size),
        RandomHorizontalFlip(0.5),
        Normalize(IMAGENET_MEAN, IMAGENET_STD),
        RandomErasing(probability=erasing),
    ]


_STRENGTHS_DOC = """
    ``jitter`` (brightness, contrast and saturation), ``hue``, ``padding`` (pixels, before the
    random crop) and ``erasing`` (probability) default to the official values 0.5, 0.5, 10
    and 0.5, which are meant for 288x144 inputs and a pretrained backbone; scale ``padding``
    with the image size."""


def rgb_train_transform(height: int, width: int, **strengths: Any) -> Compose:
    """Official first RGB view: jitter, resize, pad 10 + crop, flip, normalise, erase.

    As the official ``train_transformer_rgb`` of ``cluster_contrast_vit_sysu.py``."""
    return Compose(_train_core(height, width, **strengths))


def rgb_train_transform_second_view(height: int, width: int, **strengths: Any) -> Compose:
    """Official second RGB view: :func:`rgb_train_transform`, then ``ChannelExchange(gray=2)``."""
    return Compose(_train_core(height, width, **strengths) + [ChannelExchange(gray=2)])


def ir_train_transform(height: int, width: int, **strengths: Any) -> Compose:
    """Official infrared view: :func:`rgb_train_transform` followed by ``ChannelAdapGray(0.5)``."""
    return Compose(_train_core(height, width, **strengths) + [ChannelAdapGray(probability=0.5)])


for _fn in (rgb_train_transform, rgb_train_transform_second_view, ir_train_transform):
    if _fn.__doc__ is not None:  # docstrings are stripped under ``python -OO``
        _fn.__doc__ += "\n" + _STRENGTHS_DOC


def test_transform(height: int, width: int, interpolation: str = "bicubic") -> Compose:
    """Evaluation / feature-extraction view: resize to ``(height, width)`` and normalise.

    The official feature loader used for clustering resizes with bicubic interpolation
    (``interpolation=3``), the default here.
    """
    return Compose(
        [
            Resize((height, width), interpolation=interpolation),
            Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


test_transform.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
