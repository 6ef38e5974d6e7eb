"""Writer of a generated tree in the raw LLCM layout (:func:`write_synthetic_llcm`).

Part of :mod:`sdcl_toolkit.data.synthetic`. The layout is the one read by
:class:`sdcl_toolkit.data.llcm.LLCM`::

    root/train_vis/cam<c>/<4-digit id>/<id>_c<c>_<n>.jpg   root/train_nir/... likewise
    root/test_vis/cam1..cam9/<id>/...                    root/test_nir/cam1,2,4..9/<id>/...
    root/idx/train_vis.txt, train_nir.txt                lines "<relative path> <label>"
    root/idx/test_id.txt                                 one line of comma-separated ids

Visible images are rendered with the generator's visible cameras and near-infrared images with
its infrared cameras (the same appearance model as the SYSU-MM01 writer); training labels are
``0 .. n-1`` in identity order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from PIL import Image

from ..llcm import LLCM_INFRARED_CAMERAS, LLCM_VISIBLE_CAMERAS
from ..sysu_mm01 import SYSU_IR_CAMERAS, SYSU_RGB_CAMERAS
from .appearance import _damp_cameras, _sample_cameras, _sample_traits
from .render import _render_all
from .spec import _check_fraction, _check_positive_int, _param, _resolve
from .trees import PathLike, _prepare_root, _write_ids

__all__ = ["SyntheticLLCMSpec", "write_synthetic_llcm"]


@dataclass(frozen=True)
class SyntheticLLCMSpec:
    """Everything that determines a generated LLCM tree (:func:`write_synthetic_llcm`).

    ``identities`` people, ``test_fraction`` of them in ``idx/test_id.txt``; each person is
    seen by each camera with probability ``camera_presence`` (at least one visible and one
    near-infrared camera) with ``images_per_camera`` images; the other fields as in
    :class:`SyntheticSpec`.
    """

    identities: int = _param(12, "number of people")
    images_per_camera: int = _param(2, "images of a person in each camera that sees them")
    height: int = _param(64, "image height in pixels")
    width: int = _param(32, "image width in pixels")
    seed: int = _param(0, "seeds everything (same seed, same bytes)")
    camera_presence: float = _param(0.5, "probability that a person appears in a camera")
    test_fraction: float = _param(0.5, "share of identities in idx/test_id.txt")
    ir_material_weight: float = _param(0.3, "0..1, how unrelated infrared intensity is to colour")
    nuisance: float = _param(1.0, "nuisance strength, 1 (realistic) .. 0 (none)")

    def __post_init__(self) -> None:
        for name, minimum in (("identities", 2), ("images_per_camera", 1), ("height", 16)):
            object.__setattr__(self, name, _check_positive_int(name, getattr(self, name), minimum))
        object.__setattr__(self, "width", _check_positive_int("width", self.width, 8))
        object.__setattr__(self, "seed", _check_positive_int("seed", self.seed, 0))
        for name in ("camera_presence", "test_fraction", "ir_material_weight", "nuisance"):
            object.__setattr__(self, name, _check_fraction(name, getattr(self, name)))


def _presence(rng: np.random.Generator, n: int, cameras: int, p: float) -> np.ndarray:
    """``[n, cameras]`` bool; every row has at least one camera."""
    present = rng.random((n, cameras)) < p
    empty = ~present.any(axis=1)
    present[np.flatnonzero(empty), rng.integers(0, cameras, n)[empty]] = True
    return present


def write_synthetic_llcm(
    root: PathLike,
    *,
    spec: Optional[SyntheticLLCMSpec] = None,
    overwrite: bool = False,
    **params: Any,
):
    """Write an LLCM-layout tree of generated images into ``root`` and return its path.

    ``spec`` (default :class:`SyntheticLLCMSpec`'s defaults), keyword ``params`` overriding
    its fields, and ``overwrite`` as in :func:`write_synthetic_sysu`.
    """
    spec = _resolve(SyntheticLLCMSpec, spec, params, "write_synthetic_llcm")  # type: ignore[arg-type]
    root = _prepare_root(root, overwrite)
    seeds = np.random.SeedSequence([spec.seed, 2]).spawn(4)
    n = spec.identities
    traits = _sample_traits(np.random.default_rng(seeds[0]), n, spec.ir_material_weight)
    cams = _damp_cameras(_sample_cameras(np.random.default_rng(seeds[1])), spec.nuisance)
    layout = np.random.default_rng(seeds[2])
    render_rng = np.random.default_rng(seeds[3])

    order = layout.permutation(n) + 1
    n_test = min(n - 1, max(1, int(round(n * spec.test_fraction))))
    test_ids = set(order[:n_test].tolist())
    train_label = {pid: k for k, pid in enumerate(sorted(set(range(1, n + 1)) - test_ids))}

    idx = root / "idx"
    idx.mkdir()
    lists: dict[str, list[str]] = {"vis": [], "nir": []}
    for kind, llcm_cams, render_cams in (
        ("vis", LLCM_VISIBLE_CAMERAS, SYSU_RGB_CAMERAS),
        ("nir", LLCM_INFRARED_CAMERAS, SYSU_IR_CAMERAS),
    ):
        present = _presence(layout, n, len(llcm_cams), spec.camera_presence)
        person, column = np.nonzero(present)
        identity = np.repeat(person, spec.images_per_camera)
        camera = np.repeat(np.asarray(llcm_cams)[column], spec.images_per_camera)
        style = np.asarray(render_cams)[(camera - 1) % len(render_cams)]
        number = np.tile(np.arange(1, spec.images_per_camera + 1), len(person))
        images = _render_all(
            traits,
            cams,
            render_rng,
            identity,
            style,
            spec.height,
            spec.width,
            nuisance=spec.nuisance,
        )
        for image, p, c, k in zip(images, identity, camera, number):
            pid = int(p) + 1
            split = "test" if pid in test_ids else "train"
            relative = f"{split}_{kind}/cam{c}/{pid:04d}/{pid:04d}_c{c:02d}_{k:04d}.jpg"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / relative, quality=92)
            if split == "train":
                lists[kind].append(f"{relative} {train_label[pid]}")
    for kind, lines in lists.items():
        (idx / f"train_{kind}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (root / f"test_{kind}").mkdir(exist_ok=True)
    _write_ids(idx / "test_id.txt", test_ids)
    return root
