"""Rendering of the generated dataset: signed-distance figures, backgrounds and the visible /
thermal camera responses, in batches of torch tensor operations.

Part of :mod:`sdcl_toolkit.data.synthetic`.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .appearance import (
    _BAG,
    _HAIR,
    _LOWER1,
    _LOWER2,
    _NUM_PARTS,
    _SHOES,
    _SKIN,
    _UPPER1,
    _UPPER2,
    _CameraStyle,
    _damp_shots,
    _sample_shots,
    _Shots,
    _Traits,
)

GENERATOR_VERSION = 1
"""Bumped whenever the rendering changes; part of the cache key of the ``ensure_*`` helpers."""

_BATCH = 256  # images rendered at once


# ----------------------------------------------------------------------------- rendering
def _t(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _box(u: torch.Tensor, v: torch.Tensor, centre, half, top, bottom) -> torch.Tensor:
    """Signed distance (body units, negative inside) to an axis-aligned box per image."""
    return torch.maximum((u - centre).abs() - half, torch.maximum(top - v, v - bottom))


def _ellipse(u, v, cu, cv, ru, rv) -> torch.Tensor:
    r = torch.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return (r - 1.0) * torch.minimum(ru, rv)


def _segment(u, v, u0, v0, u1, v1, half) -> torch.Tensor:
    du, dv = u1 - u0, v1 - v0
    t = (((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv)).clamp(0, 1)
    return torch.sqrt((u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2) - half


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _render(
    traits: _Traits,
    cams: _CameraStyle,
    shots: _Shots,
    rng: np.random.Generator,
    height: int,
    width: int,
) -> np.ndarray:
    """Render a batch of images; returns ``uint8 [M, H, W, 3]``."""
    m = len(shots.identity)
    tr = {k: _t(getattr(traits, k)[shots.identity]) for k in traits.__dataclass_fields__}

    def col(name: str) -> torch.Tensor:  # per-image scalar as [M,1,1]
        return tr[name].view(m, 1, 1)

    # body coordinates: v = 0 at the top of the head, 1 at the feet; u in body heights
    body = _t(traits.height[shots.identity] * shots.scale) * height  # body height in pixels
    feet = height * (0.985 + _t(shots.shift[:, 1]))
    top = feet - body
    centre = width * (0.5 + _t(shots.shift[:, 0]))
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    v = ((ys.view(1, -1, 1) - top.view(m, 1, 1)) / body.view(m, 1, 1)).expand(m, height, width)
    u = ((xs.view(1, 1, -1) - centre.view(m, 1, 1)) / body.view(m, 1, 1)).expand(m, height, width)
    u = u * _t(shots.facing).view(m, 1, 1)
    px = body.view(m, 1, 1)

    def alpha(distance: torch.Tensor) -> torch.Tensor:  # anti-aliased coverage, 1 px ramp
        return (0.5 - distance * px).clamp(0.0, 1.0)

    swing = torch.sin(_t(shots.phase)).view(m, 1, 1)
    hip = col("hip")

    # ---- masks -----------------------------------------------------------------------
    leg_offset = 0.12 * swing * (v - hip)
    legs = torch.minimum(
        _box(u, v, -col("leg_gap") - leg_offset, col("leg_width"), hip, 0.985),
        _box(u, v, col("leg_gap") + leg_offset, col("leg_width"), hip, 0.985),
    )
    style = tr["lower_style"].view(m, 1, 1)
    skirt_half = col("waist") + (v - hip) * 0.45
    skirt = torch.where(
        style == 2, _box(u, v, 0.0, skirt_half, hip - 0.01, 0.74), torch.full_like(u, 1.0)
    )
    shoulder_v = 0.155
    torso_half = col("shoulder") + (col("waist") - col("shoulder")) * (
        (v - shoulder_v) / (hip - shoulder_v)
    ).clamp(0, 1)
    torso = _box(u, v, 0.0, torso_half, shoulder_v, hip + 0.02)
    arm_centre = col("shoulder") + col("arm_width") * 0.5 - 0.008
    arm_swing = 0.12 * swing * (v - shoulder_v - 0.01)
    arms = torch.minimum(
        _box(u, v, -arm_centre + arm_swing, col("arm_width"), shoulder_v + 0.01, 0.53),
        _box(u, v, arm_centre - arm_swing, col("arm_width"), shoulder_v + 0.01, 0.53),
    )
    head_r = col("head")
    head_v = 0.01 + head_r
    head = _ellipse(u, v, 0.0, head_v, head_r * 0.8, head_r)
    neck = _box(u, v, 0.0, 0.022, head_v, shoulder_v + 0.01)
    hair_cap = torch.maximum(
        _ellipse(u, v, 0.0, head_v - 0.12 * head_r, head_r * 0.9, head_r * 0.95),
        v - (head_v - 0.25 * head_r),
    )
    long_hair = torch.where(
        tr["long_hair"].view(m, 1, 1) > 0.5,
        _box(u, v, 0.0, head_r * 0.95, head_v - 0.3 * head_r, head_v + 0.17),
        torch.full_like(u, 1.0),
    )
    side = tr["bag_side"].view(m, 1, 1)
    bag_w = tr["bag_size"][:, 0].view(m, 1, 1)
    bag_h = tr["bag_size"][:, 1].view(m, 1, 1)
    bag_top = col("bag_top")
    bag_centre = side * (col("shoulder") + col("arm_width") + bag_w * 0.6)
    has_bag = side != 0
    bag = torch.where(has_bag, _box(u, v, bag_centre, bag_w, bag_top, bag_top + bag_h), 1.0)
    strap = torch.where(
        has_bag,
        _segment(u, v, -side * col("shoulder") * 0.6, shoulder_v, bag_centre, bag_top, 0.009),
        1.0,
    )

    # ---- patterns (0 = primary colour, 1 = secondary) ---------------------------------
    tv = ((v - shoulder_v) / (hip - shoulder_v)).clamp(0, 1)
    tu = u / col("shoulder")
    freq, phase = col("upper_frequency"), col("upper_phase")

    def soft(x: torch.Tensor) -> torch.Tensor:  # smooth square wave
        return (0.5 + 2.5 * x).clamp(0.0, 1.0)

    h_stripes = soft(torch.sin(2 * math.pi * freq * tv + phase))
    v_stripes = soft(torch.sin(math.pi * freq * tu + phase))
    pattern_id = tr["upper_pattern"].view(m, 1, 1)
    upper_pattern = torch.zeros_like(u)
    upper_pattern = torch.where(pattern_id == 1, h_stripes, upper_pattern)
    upper_pattern = torch.where(pattern_id == 2, v_stripes, upper_pattern)
    checks = h_stripes + v_stripes - 2 * h_stripes * v_stripes
    upper_pattern = torch.where(pattern_id == 3, checks, upper_pattern)
    band_centre = 0.25 + 0.5 * (phase / (2 * math.pi))
    band = soft((0.12 - (tv - band_centre).abs()) * 8)
    upper_pattern = torch.where(pattern_id == 4, band, upper_pattern)
    two_tone = soft((tv - (0.35 + 0.3 * phase / (2 * math.pi))) * 8)
    upper_pattern = torch.where(pattern_id == 5, two_tone, upper_pattern)

    lower_id = tr["lower_pattern"].view(m, 1, 1)
    lv = ((v - hip) / (0.985 - hip)).clamp(0, 1)
    lower_pattern = torch.zeros_like(u)
    lower_pattern = torch.where(
        lower_id == 1, soft(torch.sin(2 * math.pi * 3.0 * lv + phase)), lower_pattern
    )
    lower_pattern = torch.where(lower_id == 2, soft((lv - 0.45) * 8), lower_pattern)

    lower_end = torch.where(style == 0, 0.955, torch.where(style == 1, 0.7, 0.74))
    sleeve_end = torch.where(tr["long_sleeves"].view(m, 1, 1) > 0.5, 0.505, 0.28)

    # ---- palette per image: colours (visible) or thermal intensities (infrared) ---------
    infrared = torch.as_tensor(shots.infrared).view(m, 1, 1, 1)
    palette_rgb = _t(traits.rgb[shots.identity])  # [M, parts, 3]
    palette_ir = _t(traits.ir[shots.identity])[..., None].expand(m, _NUM_PARTS, 3)
    palette = torch.where(infrared.view(m, 1, 1), palette_ir, palette_rgb)

    def paint(part: int) -> torch.Tensor:
        return palette[:, part].view(m, 1, 1, 3)

    def garment(first: int, second: int, pattern: torch.Tensor) -> torch.Tensor:
        return paint(first) + (paint(second) - paint(first)) * pattern[..., None]

    image = _background(cams, shots, height, width)

    def over(image: torch.Tensor, colour: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
        a = coverage[..., None]
        return image * (1 - a) + colour * a

    lower_colour = garment(_LOWER1, _LOWER2, lower_pattern)
    leg_colour = torch.where((v < lower_end)[..., None], lower_colour, paint(_SKIN))
    leg_colour = torch.where((v > 0.955)[..., None], paint(_SHOES), leg_colour)
    image = over(image, leg_colour, alpha(legs))
    image = over(image, lower_colour, alpha(skirt))
    image = over(image, garment(_UPPER1, _UPPER2, upper_pattern), alpha(torso))
    arm_colour = torch.where((v < sleeve_end)[..., None], paint(_UPPER1), paint(_SKIN))
    image = over(image, arm_colour, alpha(arms))
    image = over(image, paint(_HAIR), alpha(long_hair))
    image = over(image, paint(_SKIN), alpha(torch.minimum(head, neck)))
    image = over(image, paint(_HAIR), alpha(hair_cap))
    image = over(image, paint(_BAG), alpha(strap))
    image = over(image, paint(_BAG), alpha(bag))

    # ---- camera response ----------------------------------------------------------------
    image = image.permute(0, 3, 1, 2)  # [M, 3, H, W]
    ir_index = np.nonzero(shots.infrared)[0]
    rgb_index = np.nonzero(~shots.infrared)[0]
    out = torch.empty_like(image)
    scale = height / 64.0
    if len(rgb_index):
        sel = torch.as_tensor(rgb_index)
        out[sel] = _visible_response(image[sel], shots, rgb_index, cams, scale)
    if len(ir_index):
        sel = torch.as_tensor(ir_index)
        out[sel] = _thermal_response(image[sel], shots, ir_index, cams, scale)
    noise = _t(rng.standard_normal((m, 3, height, width)))
    # infrared sensor noise is one channel replicated; visible noise is per channel
    noise = torch.where(
        torch.as_tensor(shots.infrared).view(m, 1, 1, 1), noise[:, :1].expand_as(noise), noise
    )
    out = out + noise * _t(shots.noise).view(m, 1, 1, 1)
    out = (out.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return out.permute(0, 2, 3, 1).numpy()


def _background(cams: _CameraStyle, shots: _Shots, height: int, width: int) -> torch.Tensor:
    """Per-camera scene (wall, floor, texture, blobs); thermal scenes are cool and flat."""
    m = len(shots.identity)
    cam = shots.camera - 1
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    horizon = _t(cams.horizon[cam] + shots.horizon_jitter).view(m, 1, 1, 1)
    below = ((ys.view(1, -1, 1, 1) - horizon) * height + 0.5).clamp(0, 1)
    wall = _t(cams.wall[cam]).view(m, 1, 1, 3)
    floor = _t(cams.floor[cam]).view(m, 1, 1, 3)
    visible = wall * (1 - below) + floor * below
    level = _t(cams.ir_level[cam]).view(m, 1, 1, 1)
    thermal = (level + 0.04 * (below - 0.5)).expand(m, height, 1, 1)
    infrared = torch.as_tensor(shots.infrared).view(m, 1, 1, 1)
    scene = torch.where(infrared, thermal.expand(m, height, 1, 3), visible).expand(
        m, height, width, 3
    )
    texture = F.interpolate(
        _t(shots.texture).permute(0, 3, 1, 2),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    ).permute(0, 2, 3, 1)  # [M, H, W, 3]
    texture = torch.where(infrared, texture[..., :1].expand_as(texture) * 0.05, texture * 0.08)
    blobs = _t(shots.blobs)  # [M, 2, 6]
    dx = xs.view(1, 1, 1, -1) - blobs[:, :, 0].view(m, 2, 1, 1)
    dy = ys.view(1, 1, -1, 1) - blobs[:, :, 1].view(m, 2, 1, 1)
    sigma = blobs[:, :, 2].view(m, 2, 1, 1)
    bump = torch.exp(-(dx**2 * (width / height) ** 2 + dy**2) / (2 * sigma**2))  # [M, 2, H, W]
    visible_blobs = torch.einsum("mkhw,mkc->mhwc", bump, blobs[:, :, 3:])
    # warm objects in infrared: positive bumps, present in about a third of the images
    warm = (blobs[:, :1, 3:4].abs() * (blobs[:, :1, 4:5] > 0.1)).view(m, 1, 1, 1)
    thermal_blobs = bump[:, :1].permute(0, 2, 3, 1) * warm
    blob = torch.where(infrared, thermal_blobs.expand_as(visible_blobs), visible_blobs)
    return (scene + texture + blob).clamp(0, 1)


def _visible_response(
    image: torch.Tensor, shots: _Shots, index: np.ndarray, cams: _CameraStyle, scale: float
) -> torch.Tensor:
    n = len(index)
    height = image.shape[2]
    cast = _t(cams.cast[shots.camera[index] - 1] * shots.cast[index]).view(n, 3, 1, 1)
    gain = _t(shots.gain[index]).view(n, 1, 1, 1)
    ramp = torch.linspace(-0.5, 0.5, height).view(1, 1, height, 1)
    shading = 1.0 + _t(shots.shading[index]).view(n, 1, 1, 1) * ramp
    out = (image * cast * gain * shading).clamp(0, 1) ** _t(shots.gamma[index]).view(n, 1, 1, 1)
    blurred = _gaussian_blur(out, 0.7 * scale)
    return torch.where(torch.as_tensor(shots.blur[index]).view(n, 1, 1, 1), blurred, out)


def _thermal_response(
    image: torch.Tensor, shots: _Shots, index: np.ndarray, cams: _CameraStyle, scale: float
) -> torch.Tensor:
    n = len(index)
    intensity = _gaussian_blur(image[:, :1], 0.9 * scale)  # thermal optics are soft
    window = _t(cams.ir_window[shots.camera[index] - 1] + shots.window_jitter[index])
    low, high = window[:, 0].view(n, 1, 1, 1), window[:, 1].view(n, 1, 1, 1)
    mapped = ((intensity - low) / (high - low)).clamp(0, 1)
    mapped = mapped ** (1.0 / _t(shots.gamma[index]).view(n, 1, 1, 1) ** 2)
    return mapped.expand(n, 3, *image.shape[2:])


def _render_all(
    traits: _Traits,
    cams: _CameraStyle,
    rng: np.random.Generator,
    identity: np.ndarray,
    camera: np.ndarray,
    height: int,
    width: int,
    shots: Optional[_Shots] = None,
    nuisance: float = 1.0,
) -> np.ndarray:
    if shots is None:
        shots = _damp_shots(_sample_shots(rng, identity, camera), nuisance)
    images = np.empty((len(identity), height, width, 3), dtype=np.uint8)
    for start in range(0, len(identity), _BATCH):
        sel = slice(start, start + _BATCH)
        batch = _Shots(**{k: getattr(shots, k)[sel] for k in shots.__dataclass_fields__})
        images[sel] = _render(traits, cams, batch, rng, height, width)
    return images
