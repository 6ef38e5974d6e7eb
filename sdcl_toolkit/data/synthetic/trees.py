"""Writers of the SYSU-MM01 / RegDB trees and their cache (``ensure_*``).

Part of :mod:`sdcl_toolkit.data.synthetic`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image

from ..sysu_mm01 import SYSU_IR_CAMERAS, SYSU_RGB_CAMERAS
from .appearance import _damp_cameras, _damp_shots, _sample_cameras, _sample_shots, _sample_traits
from .render import GENERATOR_VERSION, _render_all
from .spec import Spec, SyntheticRegDBSpec, SyntheticSpec, _resolve

logger = logging.getLogger(__package__)  # the name of the former single module

_ALL_CAMERAS = (1, 2, 3, 4, 5, 6)
_MARKER = ".sdcl_synthetic.json"

PathLike = Union[str, "os.PathLike[str]"]


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


def _write_ids(path: Path, ids: Iterable[int]) -> None:
    path.write_text(",".join(str(int(i)) for i in sorted(ids)) + "\n", encoding="utf-8")


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
    # the writer as the package exports it (so a replaced ``synthetic.write_synthetic_sysu``
    # is the one called, as when this was a single module)
    from . import write_synthetic_sysu as writer

    return _ensure("sysu", writer, cache_dir, spec)


def ensure_synthetic_regdb(
    cache_dir: Optional[PathLike] = None,
    *,
    spec: Optional[SyntheticRegDBSpec] = None,
    **params: Any,
) -> Path:
    """Like :func:`ensure_synthetic_sysu` for :func:`write_synthetic_regdb`."""
    spec = _resolve(SyntheticRegDBSpec, spec, params, "ensure_synthetic_regdb")
    from . import write_synthetic_regdb as writer  # as the package exports it, see above

    return _ensure("regdb", writer, cache_dir, spec)
