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

writes ``data/SYSU-MM01`` (and ``data/RegDB``; ``--llcm`` also ``data/LLCM`` in the LLCM
layout, :func:`write_synthetic_llcm`).
"""

from .cli import main
from .llcm import SyntheticLLCMSpec, write_synthetic_llcm
from .render import GENERATOR_VERSION
from .spec import Spec as Spec
from .spec import SyntheticRegDBSpec, SyntheticSpec
from .trees import PathLike as PathLike
from .trees import _cache_key as _cache_key
from .trees import _cache_name as _cache_name
from .trees import (
    default_cache_dir,
    ensure_synthetic_regdb,
    ensure_synthetic_sysu,
    write_synthetic_regdb,
    write_synthetic_sysu,
)
from .trees import logger as logger

__all__ = [
    "GENERATOR_VERSION",
    "SyntheticSpec",
    "SyntheticRegDBSpec",
    "write_synthetic_sysu",
    "write_synthetic_regdb",
    "SyntheticLLCMSpec",
    "write_synthetic_llcm",
    "ensure_synthetic_sysu",
    "ensure_synthetic_regdb",
    "default_cache_dir",
    "main",
]

# also re-exported (not in ``__all__``), as the former single module had them: ``Spec``,
# ``PathLike``, ``logger`` and the cache helpers ``_cache_key`` / ``_cache_name`` (tests).
