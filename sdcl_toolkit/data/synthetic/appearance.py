"""Identity appearance of the generated dataset: per-identity traits (body shape, clothing,
colours and infrared intensities), per-camera styles and per-image nuisance (geometry,
photometry), all drawn from ``numpy`` generators.

Part of :mod:`sdcl_toolkit.data.synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..sysu_mm01 import SYSU_IR_CAMERAS

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
