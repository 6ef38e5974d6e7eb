"""The official training augmentations applied to a whole uint8 batch on the training device.

The per-sample pipelines of :mod:`sdcl_toolkit.data.transforms` (the official
``cluster_contrast_vit_sysu.py`` of yangbincv/SDCL) run in the loader workers, one image at
a time. Here the workers only decode and resize (``uint8 [3, H, W]`` at the training size,
see :class:`ResizedUint8`) and one call augments the collated batch ``uint8 [B, 3, H, W]``
where it is trained (typically the GPU), with per-sample random parameters drawn from the
same distributions as the per-sample transforms:

===================  ===========================================================================
step                 per-sample parameter (distribution, as :mod:`~sdcl_toolkit.data.transforms`)
===================  ===========================================================================
ColorJitter          order: uniform permutation of (brightness, contrast, saturation, hue);
                     ``b, c, s ~ U[max(0, 1 - j), 1 + j]``, ``h ~ U[-hue, hue]``
Pad + RandomCrop     ``top, left`` uniform in ``0..2 * padding`` (pad value 0)
HorizontalFlip       ``u < 0.5``
Normalize            ImageNet mean / std
RandomErasing        ``u <= p``; 100 attempts of area ``U(0.02, 0.4) * H W`` and aspect
                     ``U(0.3, 1 / 0.3)``, the first that fits; corner uniform; fill
                     ``(0.4914, 0.4822, 0.4465)``
ChannelExchange      (view ``"rgb_exchange"``) copy channel ``k ~ U{0, 1, 2}`` to all three
ChannelAdapGray      (view ``"ir"``) ``k ~ U{0, 1, 2, 3}``: copy channel ``k``; ``k = 3``: gray
                     (luma ``0.2989 R + 0.5870 G + 0.1140 B``) when ``u <= 0.5``, else unchanged
===================  ===========================================================================

With the same parameters the output equals the per-sample transforms applied in the same order
to the same (resized) float image, bit for bit on CPU (``tests/data/test_batch_augment.py``).

One difference from the per-sample pipeline: the official code jitters the colours of the
decoded image at its original size and resizes afterwards; here the image is resized (and
rounded to uint8) first, so that workers ship small uint8 images. Brightness, saturation and
hue are per-pixel operations and commute with resizing up to the clamp at 0 and 1 and the
uint8 rounding; contrast uses the mean luma of the resized rather than the original image.

Usage::

    augment = BatchAugment(288, 144, view="ir")
    images = augment(uint8_batch.to("cuda", non_blocking=True))   # float32 [B, 3, 288, 144]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional, Union

import torch

from .._validation import check_choice, check_int, check_real
from ..recipe import OFFICIAL_SYSU
from .loaders import SDCLBatch
from .transforms import (
    GRAY_WEIGHTS,
    ChannelAdapGray,
    ColorJitter,
    Compose,
    Normalize,
    Pad,
    RandomErasing,
    RandomHorizontalFlip,
    Resize,
    _hexcone_rgb,
    _hue_sixths,
    ir_train_transform,
    rgb_train_transform,
    rgb_train_transform_second_view,
)

__all__ = [
    "VIEWS",
    "KEEP_CHANNELS",
    "GRAY",
    "AugmentParameters",
    "BatchAugment",
    "ResizedUint8",
    "SDCLBatchAugment",
]

VIEWS = ("rgb", "rgb_exchange", "ir")
"""``"rgb"``: first RGB view; ``"rgb_exchange"``: second RGB view (+ ChannelExchange);
``"ir"``: infrared view (+ ChannelAdapGray)."""

CPU_CHUNK = 4
"""Images augmented together on the CPU (cache locality; see :meth:`BatchAugment.apply`)."""
GRAY = 3
"""Channel-operation code: write the luma into all three channels."""
KEEP_CHANNELS = 4
"""Channel-operation code: leave the channels unchanged."""

_PIPELINES = {
    "rgb": rgb_train_transform,
    "rgb_exchange": rgb_train_transform_second_view,
    "ir": ir_train_transform,
}


class AugmentParameters(NamedTuple):
    """Per-sample parameters of one batch of ``B`` images (all tensors have ``B`` rows).

    ``order``: int64 ``[B, 4]`` permutation of the jitter operations (0 brightness,
    1 contrast, 2 saturation, 3 hue); ``brightness``, ``contrast``, ``saturation``, ``hue``:
    float64 ``[B]`` factors (``None`` when that operation is disabled); ``top``, ``left``:
    int64 ``[B]`` crop offsets in the padded image; ``flip``: bool ``[B]``; ``erase``: bool
    ``[B]``; ``erase_box``: int64 ``[B, 4]`` ``(top, left, h, w)`` (meaningless where
    ``erase`` is False); ``channel``: int64 ``[B]``, 0/1/2 copy that channel, :data:`GRAY`,
    or :data:`KEEP_CHANNELS`.
    """

    order: torch.Tensor
    brightness: Optional[torch.Tensor]
    contrast: Optional[torch.Tensor]
    saturation: Optional[torch.Tensor]
    hue: Optional[torch.Tensor]
    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor
    erase: torch.Tensor
    erase_box: torch.Tensor
    channel: torch.Tensor

    def to(self, device: torch.device) -> AugmentParameters:
        """The same parameters on ``device``."""
        moved = [None if t is None else t.to(device) for t in self]
        return AugmentParameters(*moved)  # type: ignore[arg-type]

    def rows(self, start: int, stop: int) -> AugmentParameters:
        """The parameters of samples ``start:stop``."""
        part = [None if t is None else t[start:stop] for t in self]
        return AugmentParameters(*part)  # type: ignore[arg-type]


def _step(pipeline: Compose, kind: type):
    """The single transform of type ``kind`` in ``pipeline`` (None if absent)."""
    found = [fn for fn in pipeline.transforms if isinstance(fn, kind)]
    return found[0] if found else None


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[B]`` values as ``[B, 1, 1, 1]`` in ``like``'s dtype and device."""
    return values.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


def _luma(images: torch.Tensor) -> torch.Tensor:
    """``0.2989 R + 0.5870 G + 0.1140 B`` of ``[B, 3, H, W]`` -> ``[B, 1, H, W]``."""
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device)
    return (images * weights.view(3, 1, 1)).sum(dim=-3, keepdim=True)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(f * I + (1 - f) * other, 0, 1)`` with per-sample float64 ``f`` ``[B]``.

    ``f`` and ``1 - f`` are rounded to the image dtype after being formed in float64, as the
    per-sample transforms do with a Python float factor."""
    f = _per_sample(factor, images)
    g = _per_sample(1.0 - factor, images)
    return (f * images + g * other).clamp_(0.0, 1.0)


def _jitter_op(images: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    if op == 0:
        return _blend(images, torch.zeros_like(images), factor)
    if op == 1:
        return _blend(images, _luma(images).mean(dim=(-3, -2, -1), keepdim=True), factor)
    if op == 2:
        return _blend(images, _luma(images), factor)
    value, chroma, sixths, _ = _hue_sixths(images)
    shift = (6.0 * factor).to(device=images.device, dtype=images.dtype).view(-1, 1, 1)
    return _hexcone_rgb(value, chroma, sixths.add_(shift))


class BatchAugment:
    """Official training augmentation of a ``uint8 [B, 3, H, W]`` batch, on its device.

    Parameters
    ----------
    height, width:
        Training size; the input batch must already have it (resize in the workers).
    view:
        One of :data:`VIEWS`: ``"rgb"`` (``rgb_train_transform``), ``"rgb_exchange"``
        (``rgb_train_transform_second_view``) or ``"ir"`` (``ir_train_transform``).
    jitter, hue, padding, erasing:
        Strengths as in :func:`~sdcl_toolkit.data.transforms.rgb_train_transform`; the
        defaults are the official values (``SDCLRecipe.augmentation()``).

    Call
    ----
    ``augment(images, generator=None)``: ``images`` uint8 ``[B, 3, H, W]`` (or float in
    ``[0, 1]``) on any device -> float32 ``[B, 3, H, W]`` normalised, on the same device.
    Parameters are drawn with ``generator`` (on its device) or torch's global RNG.
    ``augment.apply(images, parameters)`` runs with fixed :class:`AugmentParameters`.
    """

    def __init__(
        self,
        height: int,
        width: int,
        view: str = "rgb",
        *,
        jitter: float = OFFICIAL_SYSU.aug_jitter,
        hue: float = OFFICIAL_SYSU.aug_hue,
        padding: int = OFFICIAL_SYSU.aug_padding,
        erasing: float = OFFICIAL_SYSU.aug_erasing,
    ) -> None:
        self.height = check_int(height, "height", minimum=1)
        self.width = check_int(width, "width", minimum=1)
        self.view = check_choice(view, "view", VIEWS)
        self.jitter = check_real(jitter, "jitter", minimum=0.0)
        self.hue = check_real(hue, "hue", minimum=0.0, maximum=0.5)
        self.padding = check_int(padding, "padding", minimum=0)
        self.erasing = check_real(erasing, "erasing", minimum=0.0, maximum=1.0)
        # the per-sample pipeline of this view: every distribution is read from its steps
        self.pipeline: Compose = _PIPELINES[self.view](
            self.height,
            self.width,
            jitter=self.jitter,
            hue=self.hue,
            padding=self.padding,
            erasing=self.erasing,
        )
        jitter_step: ColorJitter = _step(self.pipeline, ColorJitter)
        self._ranges = (
            jitter_step.brightness,
            jitter_step.contrast,
            jitter_step.saturation,
            jitter_step.hue,
        )
        self._pad: Pad = _step(self.pipeline, Pad)
        self._flip: RandomHorizontalFlip = _step(self.pipeline, RandomHorizontalFlip)
        self._normalize: Normalize = _step(self.pipeline, Normalize)
        self._erasing: RandomErasing = _step(self.pipeline, RandomErasing)
        self._adap_gray: Optional[ChannelAdapGray] = _step(self.pipeline, ChannelAdapGray)

    def __repr__(self) -> str:
        return (
            f"BatchAugment(height={self.height}, width={self.width}, view={self.view!r}, "
            f"jitter={self.jitter}, hue={self.hue}, padding={self.padding}, "
            f"erasing={self.erasing})"
        )

    # ------------------------------------------------------------------ parameters

    def sample_parameters(
        self, batch: int, generator: Optional[torch.Generator] = None
    ) -> AugmentParameters:
        """Draw the parameters of ``batch`` images (on the generator's device, CPU if None)."""
        batch = check_int(batch, "batch", minimum=0)
        device = generator.device if generator is not None else torch.device("cpu")

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=device, dtype=torch.float64)

        def randint(high: torch.Tensor) -> torch.Tensor:
            """Uniform integers in ``[0, high)`` per row (``high`` int64 ``[B]``)."""
            return (uniform(batch) * high).floor_().long().clamp_(max=(high - 1).clamp(min=0))

        order = uniform(batch, 4).argsort(dim=1)
        factors = [
            None if rng is None else rng[0] + uniform(batch) * (rng[1] - rng[0])
            for rng in self._ranges
        ]
        pad_left, pad_top, pad_right, pad_bottom = self._pad.padding
        top = randint(torch.full((batch,), pad_top + pad_bottom + 1, device=device))
        left = randint(torch.full((batch,), pad_left + pad_right + 1, device=device))
        flip = uniform(batch) < self._flip.p
        erase, box = self._sample_erasing(batch, uniform, randint, device)
        channel = self._sample_channel(batch, uniform, device)
        brightness, contrast, saturation, hue = factors
        return AugmentParameters(
            order, brightness, contrast, saturation, hue, top, left, flip, erase, box, channel
        )

    def _sample_erasing(self, batch, uniform, randint, device):
        erasing = self._erasing
        keep = uniform(batch) > erasing.probability
        draws = uniform(batch, erasing.max_attempts, 2)
        low_area, high_area = erasing.area
        low_aspect, high_aspect = erasing.aspect_ratio
        area = (low_area + draws[..., 0] * (high_area - low_area)) * (self.height * self.width)
        aspect = low_aspect + draws[..., 1] * (high_aspect - low_aspect)
        box_h = torch.round(torch.sqrt(area * aspect)).long()
        box_w = torch.round(torch.sqrt(area / aspect)).long()
        fits = (box_h < self.height) & (box_w < self.width)
        first = fits.to(torch.float32).argmax(dim=1, keepdim=True)  # the first attempt that fits
        h = box_h.gather(1, first).squeeze(1)
        w = box_w.gather(1, first).squeeze(1)
        top = randint(self.height - h + 1)
        left = randint(self.width - w + 1)
        erase = ~keep & fits.any(dim=1)
        return erase, torch.stack([top, left, h, w], dim=1)

    def _sample_channel(self, batch, uniform, device) -> torch.Tensor:
        if self.view == "rgb":
            return torch.full((batch,), KEEP_CHANNELS, dtype=torch.int64, device=device)
        choices = 3 if self.view == "rgb_exchange" else 4
        channel = (uniform(batch) * choices).floor_().long().clamp_(max=choices - 1)
        if self._adap_gray is not None:
            keep = uniform(batch) > self._adap_gray.probability
            channel = torch.where((channel == GRAY) & keep, KEEP_CHANNELS, channel)
        return channel

    # ------------------------------------------------------------------ application

    def __call__(
        self, images: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        parameters = self.sample_parameters(_batch_size(images), generator)
        return self.apply(images, parameters)

    def apply(self, images: torch.Tensor, parameters: AugmentParameters) -> torch.Tensor:
        """Augment ``images`` ``[B, 3, H, W]`` with fixed ``parameters`` (any device).

        On the CPU the batch is processed :data:`CPU_CHUNK` images at a time: each step makes
        several passes over its input, and a few images stay in the cache between passes where
        a whole batch would not (a 4-5x difference on one core). Results do not depend on it.
        """
        self._as_float(images[:0])  # validate before any work
        if images.device.type != "cpu" or images.shape[0] <= CPU_CHUNK:
            return self._apply(images, parameters.to(images.device))
        parameters = parameters.to(images.device)
        out = torch.empty(images.shape, dtype=torch.float32)
        for start in range(0, images.shape[0], CPU_CHUNK):
            stop = start + CPU_CHUNK
            out[start:stop] = self._apply(images[start:stop], parameters.rows(start, stop))
        return out

    def _apply(
        self, images: torch.Tensor, p: AugmentParameters, per_image: Optional[bool] = None
    ) -> torch.Tensor:
        """``per_image`` (default: on the CPU) runs the jitter, crop and erasing image by image
        with slices, which is faster there; otherwise they are batched tensor operations
        without host synchronisation (for GPUs). Both give the same result, bit for bit."""
        if per_image is None:
            per_image = images.device.type == "cpu"
        x = self._as_float(images)
        x = self._color_jitter(x, p, per_image)
        x = self._pad_crop_flip(x, p.top, p.left, p.flip, per_image)
        x = self._normalize(x)
        x = self._erase(x, p.erase, p.erase_box, per_image)
        return self._channels(x, p.channel)

    def _as_float(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(f"BatchAugment expects images [B, 3, H, W], got {shape}")
        if tuple(images.shape[-2:]) != (self.height, self.width):
            raise ValueError(
                f"BatchAugment expects images of size {(self.height, self.width)} (resize in "
                f"the loader workers), got {tuple(images.shape[-2:])}"
            )
        if images.dtype == torch.uint8:
            return images.to(torch.float32).div_(255.0)
        if images.is_floating_point():
            return images.to(torch.float32)
        raise TypeError(f"BatchAugment expects uint8 or floating images, got {images.dtype}")

    def _color_jitter(self, x: torch.Tensor, p: AugmentParameters, per_image: bool) -> torch.Tensor:
        factors = (p.brightness, p.contrast, p.saturation, p.hue)
        if per_image:
            # image by image in its own order: no gathering of rows per operation, which
            # costs more than the arithmetic on the CPU (one image is ~0.5 MB, cache-sized)
            for b, order in enumerate(p.order.tolist()):
                image = x[b : b + 1]
                for op in order:
                    factor = factors[op]
                    if factor is not None:
                        image = _jitter_op(image, op, factor[b : b + 1])
                x[b : b + 1] = image
            return x
        for position in range(4):
            for op, factor in enumerate(factors):
                if factor is None:
                    continue
                rows = (p.order[:, position] == op).nonzero().squeeze(1)
                if rows.numel():
                    # index_select / index_copy_: much faster on CPU than x[rows] (index_put_)
                    result = _jitter_op(x.index_select(0, rows), op, factor[rows])
                    x.index_copy_(0, rows, result)
        return x

    def _pad_crop_flip(self, x, top, left, flip, per_image: bool) -> torch.Tensor:
        """Crop ``(H, W)`` at ``(top, left)`` of the zero-padded image, mirrored where ``flip``:
        one gather ``out[b, c, i, j] = padded[b, c, top_b + i, left_b + j']`` with
        ``j' = W - 1 - j`` for flipped rows and ``j' = j`` otherwise."""
        padded = self._pad(x)
        if per_image:  # slices: copies only, no index arithmetic
            out = torch.empty_like(x)
            for b, (i, j, mirror) in enumerate(zip(top.tolist(), left.tolist(), flip.tolist())):
                crop = padded[b, :, i : i + self.height, j : j + self.width]
                out[b] = crop.flip(-1) if mirror else crop
            return out
        batch, padded_width = x.shape[0], padded.shape[-1]
        rows = top.view(-1, 1) + torch.arange(self.height, device=x.device)
        columns = torch.arange(self.width, device=x.device).expand(batch, -1)
        columns = torch.where(flip.view(-1, 1), self.width - 1 - columns, columns)
        columns = left.view(-1, 1) + columns
        flat = rows[:, :, None] * padded_width + columns[:, None, :]
        flat = flat.view(batch, 1, self.height * self.width)
        out = padded.flatten(2).gather(2, flat.expand(-1, x.shape[1], -1))
        return out.view(batch, x.shape[1], self.height, self.width)

    def _erase(self, x, erase, box, per_image: bool) -> torch.Tensor:
        fill = torch.tensor(self._erasing.fill, dtype=x.dtype, device=x.device)
        if per_image:  # fill each box in place (x is this call's own tensor)
            for b, ((i, j, h, w), erased) in enumerate(zip(box.tolist(), erase.tolist())):
                if erased:
                    x[b, :, i : i + h, j : j + w] = fill.view(3, 1, 1)
            return x
        top, left, h, w = box.unbind(1)
        rows = torch.arange(self.height, device=x.device).view(1, -1, 1)
        columns = torch.arange(self.width, device=x.device).view(1, 1, -1)
        inside = (
            (rows >= top.view(-1, 1, 1))
            & (rows < (top + h).view(-1, 1, 1))
            & (columns >= left.view(-1, 1, 1))
            & (columns < (left + w).view(-1, 1, 1))
            & erase.view(-1, 1, 1)
        )
        return torch.where(inside.unsqueeze(1), fill.view(1, 3, 1, 1), x)

    @staticmethod
    def _channels(x: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
        """Channel copy (codes 0-2) or luma (:data:`GRAY`) into all channels, per sample."""
        for code in range(GRAY + 1):
            rows = (channel == code).nonzero().squeeze(1)
            if rows.numel():
                picked = x.index_select(0, rows)
                source = picked[:, code : code + 1] if code < GRAY else _luma(picked)
                x.index_copy_(0, rows, source.expand(-1, 3, -1, -1).contiguous())
        return x


def _batch_size(images: torch.Tensor) -> int:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
        raise ValueError(f"BatchAugment expects images [B, 3, H, W], got {shape}")
    return int(images.shape[0])


class ResizedUint8:
    """Worker-side transform of the batched path: resize to ``uint8 [3, H, W]``.

    ``image`` uint8 ``[3, h, w]`` (``load_image(path, dtype=torch.uint8)``; the loaders
    decode so for this transform, see :attr:`input_dtype`) is resized with torch's uint8
    antialiased bilinear kernel (Pillow's fixed-point arithmetic, as the official PIL
    resize); a float ``[3, h, w]`` in ``[0, 1]`` gives ``round(255 * Resize((H, W))(image))``.
    The two agree within one grey level. Deterministic; the random augmentation happens
    later in :class:`BatchAugment`.
    """

    input_dtype = torch.uint8
    """The decoded image this transform wants (:class:`~sdcl_toolkit.data.loaders.ReIDImageDataset`
    decodes to it): uint8 skips the float conversion and the float resize, ~2x faster."""

    def __init__(self, height: int, width: int) -> None:
        self.resize = Resize(
            (check_int(height, "height", minimum=1), check_int(width, "width", minimum=1))
        )

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if isinstance(image, torch.Tensor) and image.dtype == torch.uint8:
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(
                    f"ResizedUint8 expects an image [3, H, W], got {tuple(image.shape)}"
                )
            if tuple(image.shape[-2:]) == self.resize.size:
                return image.clone()
            out = torch.nn.functional.interpolate(
                image.unsqueeze(0),
                size=self.resize.size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            return out.squeeze(0)
        resized = self.resize(image)
        return resized.mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)

    def __repr__(self) -> str:
        return f"ResizedUint8(size={self.resize.size})"


class SDCLBatchAugment:
    """One SDCL training step augmented on the device: the counterpart of
    :func:`~sdcl_toolkit.data.loaders.join_sdcl_batches` for loaders built with
    ``make_sdcl_train_loaders(..., device_augmentation=True)``.

    The RGB loader yields ``(images, labels, camids, indices)`` with uint8 ``images``
    ``[n, 3, H, W]``; as the official ``Preprocessor_color`` both RGB views are augmented
    independently from the same image: view 1 with ``"rgb"``, view 2 with ``"rgb_exchange"``.
    The IR loader's uint8 ``[m, 3, H, W]`` images get ``"ir"``. ``strengths``: the keywords
    of :class:`BatchAugment` (e.g. ``recipe.augmentation()``).

    ``augment(batch_rgb, batch_ir, device, generator=None)`` -> :class:`SDCLBatch` with
    ``rgb`` float32 ``[2n, 3, H, W]``, ``ir`` ``[m, 3, H, W]``, labels and indices ``[2n + m]``
    on ``device``; parameters are drawn with ``generator`` (on ``device``, or torch's global
    RNG when None).
    """

    def __init__(self, height: int, width: int, **strengths: Any) -> None:
        self.views = {view: BatchAugment(height, width, view, **strengths) for view in VIEWS}

    def __call__(
        self,
        batch_rgb: Sequence[torch.Tensor],
        batch_ir: Sequence[torch.Tensor],
        device: Optional[Union[str, torch.device]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> SDCLBatch:
        if len(batch_rgb) != 4 or len(batch_ir) != 4:
            raise ValueError(
                "SDCLBatchAugment expects (images, labels, camids, indices) from both loaders "
                "(make_sdcl_train_loaders(..., device_augmentation=True)); got "
                f"{len(batch_rgb)} and {len(batch_ir)} items"
            )

        def move(t: torch.Tensor) -> torch.Tensor:
            return t if device is None else t.to(device, non_blocking=True)

        images_rgb, labels_rgb, _, index_rgb = (move(t) for t in batch_rgb)
        images_ir, labels_ir, _, index_ir = (move(t) for t in batch_ir)
        rgb = torch.cat(
            [
                self.views["rgb"](images_rgb, generator),
                self.views["rgb_exchange"](images_rgb, generator),
            ]
        )
        ir = self.views["ir"](images_ir, generator)
        labels = torch.cat([labels_rgb, labels_rgb, labels_ir])
        indices = torch.cat([index_rgb, index_rgb, index_ir])
        return SDCLBatch(rgb, ir, labels, indices, rgb.shape[0])
