"""A generated miniature visible-infrared re-ID dataset in the real SYSU-MM01 / RegDB layouts.

Tests and the demo need images on disk that look like a cross-modality re-ID problem without
downloading anything. This module renders small pedestrian-like figures and writes them in
exactly the directory layouts of the real datasets, so the real readers
(:mod:`sdcl_toolkit.data.sysu_mm01`, :mod:`sdcl_toolkit.data.regdb`) read them unchanged.

What makes it a re-ID problem
-----------------------------
* **Identity** = body shape (height, shoulder/waist/leg/arm widths, head size), clothing
  layout (short or long sleeves; trousers, shorts or skirt; short or long hair; a bag on
  either side with a strap across the chest) and clothing pattern (solid, horizontal or
  vertical stripes, checks, chest band, two-tone) with its frequency and phase. All of
  these are visible in both modalities.
* **Modality gap**: visible cameras render garment *colours*; infrared cameras render one
  thermal-like intensity per part: the colour seen through an infrared spectral weighting
  (red counts most, hue is lost) mixed with a colour-independent "material" term (weight
  ``ir_material_weight``), skin hot and bright; the result is blurred, passed through a
  per-camera automatic-gain window and a gamma curve, and replicated to 3 channels.
* **Nuisance per image**: horizontal/vertical shift, scale, walking phase (legs and arms),
  mirror (facing direction), per-camera backgrounds with random low-frequency texture and
  blobs (warm objects in infrared), illumination gain, colour cast, shading, gamma, blur
  and sensor noise.

Everything is drawn from ``numpy.random.default_rng(seed)`` streams and rendered in batches
with torch tensor operations (no Python loop per image except writing the files), so a
given seed gives byte-identical files (for a given numpy/Pillow version).

Layouts written
---------------
SYSU-MM01 (:func:`write_synthetic_sysu`)::

    root/cam1..cam6/<4-digit id>/<4-digit n>.jpg      RGB cams 1,2,4,5; IR cams 3,6
    root/exp/train_id.txt, val_id.txt, test_id.txt    one comma-separated line of ids

RegDB (:func:`write_synthetic_regdb`), co-registered visible/thermal pairs::

    root/Visible/<id>/<gender>_<view>_v_<frame>_<id>.bmp
    root/Thermal/<id>/<gender>_<view>_t_<frame>_<id>.bmp
    root/idx/{train,test}_{visible,thermal}_<trial>.txt   lines "Visible/<id>/<file> <label>"

Command line::

    sdcl-make-dataset --out data/ --identities 100 --images-per-camera 4 --regdb
    python -m sdcl_toolkit.data.synthetic --out data/

writes ``data/SYSU-MM01`` (and ``data/RegDB``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .sysu_mm01 import SYSU_IR_CAMERAS, SYSU_RGB_CAMERAS

__all__ = [
    "GENERATOR_VERSION",
    "SyntheticSpec",
    "SyntheticRegDBSpec",
    "write_synthetic_sysu",
    "write_synthetic_regdb",
    "ensure_synthetic_sysu",
    "ensure_synthetic_regdb",
    "default_cache_dir",
    "main",
]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
"""Bumped whenever the rendering changes; part of the cache key of the ``ensure_*`` helpers."""

_ALL_CAMERAS = (1, 2, 3, 4, 5, 6)
_MARKER = ".sdcl_synthetic.json"
_BATCH = 256  # images rendered at once

PathLike = Union[str, "os.PathLike[str]"]

# palette slots
_SKIN, _HAIR, _UPPER1, _UPPER2, _LOWER1, _LOWER2, _SHOES, _BAG = range(8)
_NUM_PARTS = 8
# clothing choices
_UPPER_PATTERNS = 6  # solid, horizontal stripes, vertical stripes, checks, chest band, two-tone
_LOWER_STYLES = 3  # trousers, shorts, skirt
_LOWER_PATTERNS = 3  # solid, stripes, two-tone (knee split)


# ----------------------------------------------------------------------------- identities
@dataclass
class _Traits:
    """Per-identity appearance, each attribute an array over identities."""

    height: np.ndarray  # body height as a fraction of the image height
    head: np.ndarray  # head radius (body units: fractions of body height)
    shoulder: np.ndarray  # torso half-width at the shoulders
    waist: np.ndarray  # torso half-width at the hips
    hip: np.ndarray  # vertical position of the hips
    leg_width: np.ndarray  # half-width of one leg
    leg_gap: np.ndarray  # half distance between the legs
    arm_width: np.ndarray  # half-width of one arm
    long_sleeves: np.ndarray  # bool
    lower_style: np.ndarray  # 0 trousers, 1 shorts, 2 skirt
    upper_pattern: np.ndarray  # 0..5
    upper_frequency: np.ndarray  # pattern cycles over the torso
    upper_phase: np.ndarray
    lower_pattern: np.ndarray  # 0..2
    long_hair: np.ndarray  # bool
    bag_side: np.ndarray  # 0 none, -1 left, +1 right
    bag_top: np.ndarray
    bag_size: np.ndarray  # [N, 2] half-width, height
    rgb: np.ndarray  # [N, parts, 3] colours in [0, 1]
    ir: np.ndarray  # [N, parts] thermal intensities in [0, 1]


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all inputs in [0, 1]; returns ``[..., 3]``."""
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _separate(first: np.ndarray, second: np.ndarray, gap: float) -> np.ndarray:
    """Move ``second`` so that it differs from ``first`` by at least ``gap`` (within [0.1, 0.9])."""
    too_close = np.abs(second - first) < gap
    up = np.where(first + gap <= 0.9, first + gap, first - gap)
    return np.where(too_close, up, second)


def _sample_traits(rng: np.random.Generator, n: int, material_weight: float) -> _Traits:
    u = rng.uniform
    # colours: garments from the full hue circle; secondary colours contrast in hue and value
    hue = u(0, 1, (n, 4))
    sat = u(0.2, 0.9, (n, 4))
    val = u(0.2, 0.95, (n, 4))
    hue[:, 1] = (hue[:, 0] + u(0.25, 0.75, n)) % 1.0
    hue[:, 3] = (hue[:, 2] + u(0.25, 0.75, n)) % 1.0
    val[:, 1] = _separate(val[:, 0], val[:, 1], 0.3)
    val[:, 3] = _separate(val[:, 2], val[:, 3], 0.3)
    garments = _hsv_to_rgb(hue, sat, val)  # [n, 4, 3]
    tone = u(0, 1, n)[:, None]
    skin = (1 - tone) * np.array([0.95, 0.78, 0.66]) + tone * np.array([0.42, 0.28, 0.2])
    hair = _hsv_to_rgb(u(0.02, 0.12, n), u(0.3, 0.8, n), u(0.05, 0.6, n) ** 1.5)
    shoes = _hsv_to_rgb(u(0, 1, n), u(0, 0.4, n), u(0.08, 0.5, n))
    bag = _hsv_to_rgb(u(0, 1, n), u(0.1, 0.9, n), u(0.1, 0.9, n))
    rgb = np.stack(
        [skin, hair, garments[:, 0], garments[:, 1], garments[:, 2], garments[:, 3], shoes, bag],
        axis=1,
    )
    # infrared intensity: the colour's response under an infrared spectral weighting (red
    # counts most, hue is lost) mixed with a colour-independent material term
    material = u(0, 1, (n, _NUM_PARTS))
    spectral = rgb @ np.array([0.55, 0.35, 0.1])
    ir = 0.15 + 0.7 * ((1.0 - material_weight) * spectral + material_weight * material)
    ir[:, _SKIN] = u(0.85, 0.95, n)
    ir[:, _HAIR] = u(0.35, 0.5, n)
    ir[:, _UPPER2] = _separate(ir[:, _UPPER1], ir[:, _UPPER2], 0.15)
    ir[:, _LOWER2] = _separate(ir[:, _LOWER1], ir[:, _LOWER2], 0.15)

    bag_side = rng.choice(np.array([0, -1, 1]), n, p=[0.5, 0.25, 0.25])
    return _Traits(
        height=u(0.8, 0.94, n),
        head=u(0.055, 0.075, n),
        shoulder=u(0.1, 0.145, n),
        waist=u(0.07, 0.1, n),
        hip=u(0.49, 0.56, n),
        leg_width=u(0.033, 0.05, n),
        leg_gap=u(0.035, 0.055, n),
        arm_width=u(0.022, 0.034, n),
        long_sleeves=rng.random(n) < 0.5,
        lower_style=rng.integers(0, _LOWER_STYLES, n),
        upper_pattern=rng.integers(0, _UPPER_PATTERNS, n),
        upper_frequency=u(1.0, 2.5, n),
        upper_phase=u(0, 2 * math.pi, n),
        lower_pattern=rng.integers(0, _LOWER_PATTERNS, n),
        long_hair=rng.random(n) < 0.4,
        bag_side=bag_side,
        bag_top=u(0.34, 0.45, n),
        bag_size=np.stack([u(0.03, 0.05, n), u(0.08, 0.14, n)], axis=1),
        rgb=rgb,
        ir=ir,
    )


# ----------------------------------------------------------------------------- cameras
@dataclass
class _CameraStyle:
    """Per-camera appearance (fixed for a dataset), indexed by camera number - 1."""

    wall: np.ndarray  # [6, 3]
    floor: np.ndarray  # [6, 3]
    horizon: np.ndarray  # [6]
    cast: np.ndarray  # [6, 3] colour cast of visible cameras
    ir_level: np.ndarray  # [6] background temperature of infrared cameras
    ir_window: np.ndarray  # [6, 2] automatic-gain window (low, high)


def _sample_cameras(rng: np.random.Generator) -> _CameraStyle:
    u = rng.uniform
    wall = _hsv_to_rgb(u(0, 1, 6), u(0.05, 0.5, 6), u(0.35, 0.9, 6))
    floor = _hsv_to_rgb(u(0, 1, 6), u(0.05, 0.4, 6), u(0.2, 0.7, 6))
    cast = 1.0 + u(-0.15, 0.15, (6, 3))
    # camera 3 is indoor (warmer room, narrower window), camera 6 outdoor (cool, wide window)
    ir_level = np.array([0.3, 0.3, 0.32, 0.3, 0.3, 0.16]) + u(-0.03, 0.03, 6)
    ir_window = np.array([[0.15, 0.95]] * 6)
    ir_window[5] = [0.02, 1.0]
    return _CameraStyle(wall, floor, u(0.55, 0.8, 6), cast, ir_level, ir_window)


# ----------------------------------------------------------------------------- nuisance
@dataclass
class _Shots:
    """Per-image geometry and photometry, each an array over images."""

    identity: np.ndarray  # index into the traits
    camera: np.ndarray  # 1..6
    infrared: np.ndarray  # bool
    shift: np.ndarray  # [M, 2] (dx, dy) as fractions of width / height
    scale: np.ndarray
    phase: np.ndarray  # walking phase
    facing: np.ndarray  # +1 / -1 (mirror)
    gain: np.ndarray
    cast: np.ndarray  # [M, 3] per-image colour-cast jitter
    gamma: np.ndarray
    shading: np.ndarray  # vertical illumination gradient
    noise: np.ndarray
    blur: np.ndarray  # bool (visible cameras; infrared is always blurred)
    window_jitter: np.ndarray  # [M, 2]
    texture: np.ndarray  # [M, 6, 3, 3] low-frequency background texture (6x3 grid, RGB)
    blobs: np.ndarray  # [M, 2, 6] (x, y, sigma, r, g, b) or thermal amplitude in r
    horizon_jitter: np.ndarray


def _sample_shots(rng: np.random.Generator, identity: np.ndarray, camera: np.ndarray) -> _Shots:
    m = len(identity)
    u = rng.uniform
    blobs = np.concatenate(
        [u(0, 1, (m, 2, 2)), u(0.08, 0.3, (m, 2, 1)), u(-0.25, 0.25, (m, 2, 3))], axis=2
    )
    return _Shots(
        identity=identity,
        camera=camera,
        infrared=np.isin(camera, SYSU_IR_CAMERAS),
        shift=np.stack([u(-0.08, 0.08, m), u(-0.02, 0.015, m)], axis=1),
        scale=u(0.94, 1.03, m),
        phase=u(0, 2 * math.pi, m),
        facing=rng.choice(np.array([-1.0, 1.0]), m),
        gain=u(0.6, 1.3, m),
        cast=1.0 + u(-0.08, 0.08, (m, 3)),
        gamma=u(0.8, 1.25, m),
        shading=u(-0.3, 0.3, m),
        noise=u(0.005, 0.025, m),
        blur=rng.random(m) < 0.3,
        window_jitter=u(-0.06, 0.06, (m, 2)),
        texture=u(-1, 1, (m, 6, 3, 3)),
        blobs=blobs,
        horizon_jitter=u(-0.05, 0.05, m),
    )


def _damp_shots(shots: _Shots, strength: float) -> _Shots:
    """Shrink per-image nuisance toward neutral by ``strength`` (1 = unchanged, 0 = none):
    position, scale, illumination gain, colour cast, gamma, shading, sensor noise, blur,
    infrared gain window, background texture and blobs. Pose (walking phase, facing)
    is kept: it is part of how a person looks."""
    if strength == 1.0:
        return shots
    s = strength
    blobs = shots.blobs.copy()
    blobs[:, :, 3:] *= s
    return replace(
        shots,
        shift=shots.shift * s,
        scale=1 + s * (shots.scale - 1),
        gain=1 + s * (shots.gain - 1),
        cast=1 + s * (shots.cast - 1),
        gamma=np.exp(s * np.log(shots.gamma)),
        shading=shots.shading * s,
        noise=shots.noise * s,
        blur=shots.blur & (np.linspace(0, 1, len(shots.blur)) < s),
        window_jitter=shots.window_jitter * s,
        texture=shots.texture * s,
        blobs=blobs,
        horizon_jitter=shots.horizon_jitter * s,
    )


def _damp_cameras(cams: _CameraStyle, strength: float) -> _CameraStyle:
    """Shrink the per-camera scene colours toward grey and the colour casts toward neutral."""
    if strength == 1.0:
        return cams
    s = strength
    return replace(
        cams,
        wall=0.5 + s * (cams.wall - 0.5),
        floor=0.5 + s * (cams.floor - 0.5),
        cast=1 + s * (cams.cast - 1),
    )


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


# ----------------------------------------------------------------------------- helpers
def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_fraction(name: str, value, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _check_root(root: PathLike, overwrite: bool, remedy: str = "pass overwrite=True") -> Path:
    """``root`` as a path; ``FileExistsError`` (ending with ``remedy``) if it may not be used."""
    root = Path(root)
    if root.exists():
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a directory")
        if any(root.iterdir()) and not overwrite:
            raise FileExistsError(f"{root} is not empty; choose a new directory or {remedy}")
    return root


def _prepare_root(root: PathLike, overwrite: bool) -> Path:
    root = _check_root(root, overwrite)
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


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


def _write_ids(path: Path, ids: Iterable[int]) -> None:
    path.write_text(",".join(str(int(i)) for i in sorted(ids)) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- specifications
def _param(default: Any, help_text: str) -> Any:
    """A specification field: its default and its one-line ``sdcl-make-dataset`` help."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a generated SYSU-MM01 tree (:func:`write_synthetic_sysu`).

    The one list of the generator's parameters: the writer draws from it, the cache key of
    :func:`ensure_synthetic_sysu` is made of it and ``sdcl-make-dataset`` has one flag per
    field. Values are checked (``ValueError``) and normalised (ints, floats) on construction.

    Attributes
    ----------
    identities:
        Number of people, ids ``1..identities`` (folders ``0001`` ...), at least 2.
    images_per_camera:
        Images of each person in each camera where the person appears.
    height, width:
        Image size in pixels (``H x W``; people are drawn resolution-independently).
    seed:
        Seeds everything; the same specification gives byte-identical files.
    camera_presence:
        Probability that a person appears in a camera (as in the real dataset, not every
        person is seen by every camera); every person appears in at least one visible and
        one infrared camera.
    val_fraction, test_fraction:
        Shares of identities listed in ``exp/val_id.txt`` and ``exp/test_id.txt`` (the rest
        in ``exp/train_id.txt``); at least one identity goes to train and one to test.
    ir_material_weight:
        Size of the modality gap in intensities: the infrared brightness of a garment is
        ``(1 - w) * spectral(colour) + w * material`` with a random, colour-independent
        ``material``. 0 makes infrared a fixed function of colour; 1 makes it unrelated.
        At the default 0.3 a small CNN trained with labels reaches within-modality Rank-1
        around 80-90% but cross-modality Rank-1 around 30% on unseen identities.
    nuisance:
        Strength of the per-image and per-camera nuisance (position, scale, illumination,
        colour cast, gamma, shading, noise, blur, background colour and texture), from 1
        (the default: realistic variation) down to 0 (none). Lower values make identities
        easier to group without labels; the CPU demo uses 0.35 so that a randomly
        initialised network can bootstrap its own pseudo-labels.
    """

    identities: int = _param(100, "number of people")
    images_per_camera: int = _param(4, "images of a person in each camera that sees them")
    height: int = _param(64, "image height in pixels")
    width: int = _param(32, "image width in pixels")
    seed: int = _param(0, "seeds everything (same seed, same bytes)")
    camera_presence: float = _param(0.85, "probability that a person appears in a camera")
    val_fraction: float = _param(0.1, "share of identities in exp/val_id.txt")
    test_fraction: float = _param(0.3, "share of identities in exp/test_id.txt")
    ir_material_weight: float = _param(0.3, "0..1, how unrelated infrared intensity is to colour")
    nuisance: float = _param(1.0, "nuisance strength, 1 (realistic) .. 0 (none)")

    def __post_init__(self) -> None:
        _normalise(
            self,
            ints={"identities": 2, "images_per_camera": 1, "height": 16, "width": 8},
            fractions=(
                "camera_presence",
                "val_fraction",
                "test_fraction",
                "ir_material_weight",
                "nuisance",
            ),
        )
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 (training needs identities), got "
                f"{self.val_fraction} + {self.test_fraction}"
            )


@dataclass(frozen=True)
class SyntheticRegDBSpec:
    """Everything that determines a generated RegDB tree (:func:`write_synthetic_regdb`).

    ``images_per_modality`` frames per identity, ``trials`` random train/test splits; the
    other fields as in :class:`SyntheticSpec`.
    """

    identities: int = _param(40, "number of people")
    images_per_modality: int = _param(10, "images per identity and modality")
    height: int = _param(64, "image height in pixels")
    width: int = _param(32, "image width in pixels")
    seed: int = _param(0, "seeds everything (same seed, same bytes)")
    trials: int = _param(10, "random train/test splits (idx/*_<trial>.txt)")
    ir_material_weight: float = _param(0.3, "0..1, how unrelated infrared intensity is to colour")
    nuisance: float = _param(1.0, "nuisance strength, 1 (realistic) .. 0 (none)")

    def __post_init__(self) -> None:
        _normalise(
            self,
            ints={"identities": 2, "images_per_modality": 1, "height": 16, "width": 8, "trials": 1},
            fractions=("ir_material_weight", "nuisance"),
        )


Spec = Union[SyntheticSpec, SyntheticRegDBSpec]


def _normalise(spec: Spec, ints: dict[str, int], fractions: Sequence[str]) -> None:
    """Check the fields of a frozen ``spec`` and store them as plain ``int`` / ``float``."""
    for name, minimum in ints.items():
        object.__setattr__(spec, name, _check_positive_int(name, getattr(spec, name), minimum))
    for name in fractions:
        object.__setattr__(spec, name, _check_fraction(name, getattr(spec, name)))
    seed = spec.seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    object.__setattr__(spec, "seed", int(seed))


def _resolve(spec_type: type, spec: Optional[Spec], params: dict[str, Any], caller: str) -> Any:
    """``spec`` (default: the defaults) with the keyword overrides ``params`` applied."""
    if spec is not None and not isinstance(spec, spec_type):
        raise TypeError(f"{caller}: spec must be a {spec_type.__name__}, got {type(spec)}")
    unknown = sorted(set(params) - {f.name for f in fields(spec_type)})
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword arguments {unknown}; "
            f"the parameters are the fields of {spec_type.__name__}"
        )
    if spec is None:
        return spec_type(**params)
    return replace(spec, **params) if params else spec


# ----------------------------------------------------------------------------- SYSU-MM01
def write_synthetic_sysu(
    root: PathLike,
    *,
    spec: Optional[SyntheticSpec] = None,
    overwrite: bool = False,
    **params: Any,
) -> Path:
    """Write a SYSU-MM01-layout tree of generated images into ``root`` and return it.

    ``root`` must be empty or absent unless ``overwrite`` (then it is replaced). The tree is
    described by ``spec`` (default :class:`SyntheticSpec`'s defaults), with any keyword
    ``params`` overriding its fields: ``write_synthetic_sysu(root, identities=20, seed=1)``.
    """
    spec = _resolve(SyntheticSpec, spec, params, "write_synthetic_sysu")
    identities, images_per_camera = spec.identities, spec.images_per_camera
    height, width = spec.height, spec.width
    started = time.perf_counter()
    root = _prepare_root(root, overwrite)
    seeds = np.random.SeedSequence(spec.seed).spawn(4)
    traits = _sample_traits(np.random.default_rng(seeds[0]), identities, spec.ir_material_weight)
    cams = _damp_cameras(_sample_cameras(np.random.default_rng(seeds[1])), spec.nuisance)
    layout_rng = np.random.default_rng(seeds[2])

    # which (person, camera) pairs exist
    present = layout_rng.random((identities, 6)) < spec.camera_presence
    rgb_columns = np.array([c - 1 for c in SYSU_RGB_CAMERAS])
    ir_columns = np.array([c - 1 for c in SYSU_IR_CAMERAS])
    rows = np.arange(identities)
    fallback_rgb = layout_rng.choice(rgb_columns, identities)
    fallback_ir = layout_rng.choice(ir_columns, identities)
    no_rgb = ~present[:, rgb_columns].any(axis=1)
    no_ir = ~present[:, ir_columns].any(axis=1)
    present[rows[no_rgb], fallback_rgb[no_rgb]] = True
    present[rows[no_ir], fallback_ir[no_ir]] = True

    # identity splits
    order = layout_rng.permutation(identities) + 1
    n_test = min(identities - 1, max(1, int(round(identities * spec.test_fraction))))
    n_val = min(identities - 1 - n_test, int(round(identities * spec.val_fraction)))
    test_ids = order[:n_test]
    val_ids = order[n_test : n_test + n_val]
    train_ids = order[n_test + n_val :]

    person, cam_col = np.nonzero(present)
    identity = np.repeat(person, images_per_camera)
    camera = np.repeat(cam_col + 1, images_per_camera)
    number = np.tile(np.arange(1, images_per_camera + 1), len(person))
    images = _render_all(
        traits,
        cams,
        np.random.default_rng(seeds[3]),
        identity,
        camera,
        height,
        width,
        nuisance=spec.nuisance,
    )

    for cam in _ALL_CAMERAS:
        (root / f"cam{cam}").mkdir()
    for p, c in zip(person, cam_col):
        (root / f"cam{c + 1}" / f"{p + 1:04d}").mkdir()
    for image, p, c, k in zip(images, identity, camera, number):
        Image.fromarray(image).save(root / f"cam{c}" / f"{p + 1:04d}" / f"{k:04d}.jpg", quality=92)
    exp = root / "exp"
    exp.mkdir()
    _write_ids(exp / "train_id.txt", train_ids)
    _write_ids(exp / "val_id.txt", val_ids)
    _write_ids(exp / "test_id.txt", test_ids)
    logger.info(
        "wrote %d images of %d identities to %s in %.1f s",
        len(images),
        identities,
        root,
        time.perf_counter() - started,
    )
    return root


# ----------------------------------------------------------------------------- RegDB
def write_synthetic_regdb(
    root: PathLike,
    *,
    spec: Optional[SyntheticRegDBSpec] = None,
    overwrite: bool = False,
    **params: Any,
) -> Path:
    """Write a RegDB-layout tree of generated, co-registered visible/thermal pairs.

    Each identity gets ``images_per_modality`` frames; frame ``k`` is rendered twice with
    the same pose (as RegDB's aligned camera pair records it), once in colour and once
    thermal. For each trial ``t = 1..trials`` the identities are split at random into two
    halves (train/test) and ``idx/{train,test}_{visible,thermal}_t.txt`` list
    ``<relative path> <label>`` with labels ``0..n-1`` in identity order, as the real files do.
    ``spec`` (default :class:`SyntheticRegDBSpec`'s defaults), keyword ``params`` and
    ``overwrite`` as in :func:`write_synthetic_sysu`.
    """
    spec = _resolve(SyntheticRegDBSpec, spec, params, "write_synthetic_regdb")
    identities, images_per_modality = spec.identities, spec.images_per_modality
    height, width, nuisance = spec.height, spec.width, spec.nuisance
    root = _prepare_root(root, overwrite)
    seeds = np.random.SeedSequence([spec.seed, 1]).spawn(4)
    traits = _sample_traits(np.random.default_rng(seeds[0]), identities, spec.ir_material_weight)
    cams = _damp_cameras(_sample_cameras(np.random.default_rng(seeds[1])), nuisance)
    layout_rng = np.random.default_rng(seeds[2])
    render_rng = np.random.default_rng(seeds[3])

    frames = identities * images_per_modality
    person = np.repeat(np.arange(identities), images_per_modality)
    visible_camera = np.full(frames, SYSU_RGB_CAMERAS[0])
    thermal_camera = np.full(frames, SYSU_IR_CAMERAS[1])
    visible_shots = _damp_shots(_sample_shots(render_rng, person, visible_camera), nuisance)
    thermal_shots = _damp_shots(_sample_shots(render_rng, person, thermal_camera), nuisance)
    for name in ("shift", "scale", "phase", "facing"):  # same pose in both cameras
        setattr(thermal_shots, name, getattr(visible_shots, name))
    visible = _render_all(
        traits, cams, render_rng, person, visible_camera, height, width, visible_shots
    )
    thermal = _render_all(
        traits, cams, render_rng, person, thermal_camera, height, width, thermal_shots
    )

    gender = np.where(layout_rng.random(identities) < 0.5, "male", "female")
    view = np.where(visible_shots.facing > 0, "front", "back")
    frame_number = np.arange(frames) + 1
    names: dict[str, list[str]] = {"Visible": [], "Thermal": []}
    for folder, letter, pictures in (("Visible", "v", visible), ("Thermal", "t", thermal)):
        for pid in range(identities):
            (root / folder / str(pid + 1)).mkdir(parents=True)
        for image, p, vw, f in zip(pictures, person, view, frame_number):
            name = f"{folder}/{p + 1}/{gender[p]}_{vw}_{letter}_{f:05d}_{p + 1}.bmp"
            Image.fromarray(image).save(root / name)
            names[folder].append(name)

    idx = root / "idx"
    idx.mkdir()
    n_train = identities // 2
    for trial in range(1, spec.trials + 1):
        order = layout_rng.permutation(identities)
        split = {"train": np.sort(order[:n_train]), "test": np.sort(order[n_train:])}
        for part, members in split.items():
            label = {int(p): k for k, p in enumerate(members)}
            for folder, modality in (("Visible", "visible"), ("Thermal", "thermal")):
                lines = [
                    f"{name} {label[int(p)]}"
                    for name, p in zip(names[folder], person)
                    if int(p) in label
                ]
                (idx / f"{part}_{modality}_{trial}.txt").write_text(
                    "\n".join(lines) + "\n", encoding="utf-8"
                )
    logger.info("wrote RegDB-layout tree with %d identities to %s", identities, root)
    return root


# ----------------------------------------------------------------------------- caching
def default_cache_dir() -> Path:
    """``$SDCL_TOOLKIT_CACHE/synthetic``, else ``$XDG_CACHE_HOME/sdcl_toolkit/synthetic``,
    else ``~/.cache/sdcl_toolkit/synthetic``."""
    explicit = os.environ.get("SDCL_TOOLKIT_CACHE")
    if explicit:
        return Path(explicit) / "synthetic"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sdcl_toolkit" / "synthetic"


def _cache_key(kind: str, spec: Spec) -> dict[str, Any]:
    """What a cached tree was made from: every field of ``spec``, its kind and the
    generator version. Stored in the tree's marker and compared in full before reuse."""
    return dict(asdict(spec), kind=kind, version=GENERATOR_VERSION)


def _cache_name(key: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{key['kind']}-{digest}"


def _ensure(kind: str, writer, cache_dir: Optional[PathLike], spec: Spec) -> Path:
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(kind, spec)
    final = cache / _cache_name(key)

    def complete(path: Path) -> bool:
        try:
            return json.loads((path / _MARKER).read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            return False

    if complete(final):
        return final
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=cache))
    try:
        writer(staging / "tree", spec=spec)
        (staging / "tree" / _MARKER).write_text(json.dumps(key, sort_keys=True), encoding="utf-8")
        if final.exists() and not complete(final):
            logger.info("removing incomplete synthetic tree %s", final)
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(staging / "tree", final)
        except OSError:
            if not complete(final):  # not a concurrent writer that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def ensure_synthetic_sysu(
    cache_dir: Optional[PathLike] = None,
    *,
    spec: Optional[SyntheticSpec] = None,
    **params: Any,
) -> Path:
    """Path of a cached generated SYSU-MM01 tree, generating it only when missing or incomplete.

    The tree lives in ``cache_dir`` (default :func:`default_cache_dir`) under a name derived
    from every field of the specification and :data:`GENERATOR_VERSION`; a tree is reused
    only when its recorded specification equals the requested one. It is written into a
    temporary directory next to it and renamed into place when complete, so an interrupted
    run never leaves a half-written tree that looks finished, and concurrent callers are
    safe. ``spec`` and keyword ``params`` as in :func:`write_synthetic_sysu`.
    """
    spec = _resolve(SyntheticSpec, spec, params, "ensure_synthetic_sysu")
    return _ensure("sysu", write_synthetic_sysu, cache_dir, spec)


def ensure_synthetic_regdb(
    cache_dir: Optional[PathLike] = None,
    *,
    spec: Optional[SyntheticRegDBSpec] = None,
    **params: Any,
) -> Path:
    """Like :func:`ensure_synthetic_sysu` for :func:`write_synthetic_regdb`."""
    spec = _resolve(SyntheticRegDBSpec, spec, params, "ensure_synthetic_regdb")
    return _ensure("regdb", write_synthetic_regdb, cache_dir, spec)


# ----------------------------------------------------------------------------- CLI
_REGDB_PREFIX = "regdb_"
_REGDB_SEPARATE = {"identities"}  # RegDB fields with their own flag though SYSU has the name
_REGDB_ALIASES = {"images_per_modality": "--regdb-images"}  # the flag's older, shorter name


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_spec_flags(
    parser: argparse.ArgumentParser, spec_type: type, names: Iterable[str], prefix: str = ""
) -> None:
    """One ``--<prefix><field>`` flag per field of ``spec_type`` in ``names``, with the
    field's default and help."""
    by_name = {f.name: f for f in fields(spec_type)}
    for name in names:
        f = by_name[name]
        flags = [_flag(prefix + name)]
        if name in _REGDB_ALIASES and prefix == _REGDB_PREFIX:
            flags.append(_REGDB_ALIASES[name])
        kind = type(f.default)
        parser.add_argument(
            *flags,
            dest=prefix + name,
            type=kind,
            default=f.default,
            metavar=kind.__name__.upper(),
            help=f"{'RegDB: ' if prefix else ''}{f.metadata['help']} (default: %(default)s)",
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point ``sdcl-make-dataset``."""
    parser = argparse.ArgumentParser(
        prog="sdcl-make-dataset",
        description="Write a generated miniature visible-infrared re-ID dataset in the "
        "SYSU-MM01 layout (OUT/SYSU-MM01) and optionally the RegDB layout (OUT/RegDB).",
    )
    parser.add_argument("--out", required=True, help="output directory")
    sysu_names = [f.name for f in fields(SyntheticSpec)]
    _add_spec_flags(parser, SyntheticSpec, sysu_names)
    parser.add_argument("--regdb", action="store_true", help="also write OUT/RegDB")
    # RegDB takes the shared settings (size, seed, modality gap, nuisance) from the flags above
    regdb_own = [
        f.name
        for f in fields(SyntheticRegDBSpec)
        if f.name not in sysu_names or f.name in _REGDB_SEPARATE
    ]
    _add_spec_flags(parser, SyntheticRegDBSpec, regdb_own, prefix=_REGDB_PREFIX)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing non-empty output folders"
    )
    args = parser.parse_args(argv)
    values = vars(args)
    out = Path(args.out)
    targets = [out / "SYSU-MM01"] + ([out / "RegDB"] if args.regdb else [])
    started = time.perf_counter()
    try:
        sysu_spec = SyntheticSpec(**{name: values[name] for name in sysu_names})
        regdb_spec = SyntheticRegDBSpec(
            **{
                f.name: values[_REGDB_PREFIX + f.name if f.name in regdb_own else f.name]
                for f in fields(SyntheticRegDBSpec)
            }
        )
        for target in targets:  # refuse before writing anything
            _check_root(target, args.overwrite, remedy="pass --overwrite")
        sysu = write_synthetic_sysu(targets[0], spec=sysu_spec, overwrite=args.overwrite)
        print(f"SYSU-MM01 layout: {sysu}")
        if args.regdb:
            regdb = write_synthetic_regdb(targets[1], spec=regdb_spec, overwrite=args.overwrite)
            print(f"RegDB layout:     {regdb}")
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
