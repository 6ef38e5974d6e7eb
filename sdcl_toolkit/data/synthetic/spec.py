"""The specifications of generated trees: :class:`SyntheticSpec` (SYSU-MM01) and
:class:`SyntheticRegDBSpec` (RegDB), the one list of the generator's parameters.

Part of :mod:`sdcl_toolkit.data.synthetic`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional, Union

from ..._validation import check_int, check_real


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``TypeError`` for a non-integer (bool, float), ``ValueError`` below ``minimum``."""
    return check_int(value, name, minimum=minimum)


def _check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """``TypeError`` for a non-number, ``ValueError`` for NaN or outside ``[low, high]``."""
    return check_real(value, name, minimum=low, maximum=high)


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
    object.__setattr__(spec, "seed", check_int(spec.seed, "seed", minimum=0))


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
