"""The two modalities of visible-infrared re-identification and their names.

A leaf module (no package imports): data readers, models, losses and the objective all take
their modality vocabulary from here.
"""

from __future__ import annotations

from enum import Enum
from typing import Union

__all__ = [
    "RGB",
    "IR",
    "MODALITIES",
    "parse_modality",
    "Direction",
    "parse_direction",
    "DIRECTION_NAMES",
]

RGB = "rgb"
"""Modality name of visible (colour) images."""
IR = "ir"
"""Modality name of infrared (thermal) images."""
MODALITIES: tuple[str, str] = (RGB, IR)
"""Both modalities, RGB first (the order of the official joint batch)."""

_ALIASES: dict[str, str] = {
    "rgb": RGB,
    "visible": RGB,
    "vis": RGB,
    "color": RGB,
    "colour": RGB,
    "ir": IR,
    "infrared": IR,
    "thermal": IR,
}


def parse_modality(modality: str) -> str:
    """Return ``"rgb"`` or ``"ir"`` for a modality name (aliases: visible, vis, color, colour;
    infrared, thermal; case and surrounding spaces ignored)."""
    if not isinstance(modality, str):
        raise TypeError(f"modality must be a string ('rgb' or 'ir'), got {type(modality).__name__}")
    key = modality.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown modality {modality!r}; expected 'rgb' or 'ir'")
    return _ALIASES[key]


class Direction(str, Enum):
    """A cross-modality direction, query -> target: the heterogeneous neighbour loss of SDCL
    (RGB batch against IR memories, or the reverse) and a retrieval direction (RegDB's
    visible -> thermal and thermal -> visible)."""

    RGB_TO_IR = "rgb_to_ir"
    IR_TO_RGB = "ir_to_rgb"

    @property
    def query(self) -> str:
        """Modality of the query side (``"rgb"`` or ``"ir"``)."""
        return RGB if self is Direction.RGB_TO_IR else IR

    @property
    def target(self) -> str:
        """Modality of the target (memory / gallery) side."""
        return IR if self is Direction.RGB_TO_IR else RGB


_DIRECTION_ALIASES: dict[str, Direction] = {
    "rgb_to_ir": Direction.RGB_TO_IR,
    "visible_to_thermal": Direction.RGB_TO_IR,
    "v2t": Direction.RGB_TO_IR,
    "ir_to_rgb": Direction.IR_TO_RGB,
    "thermal_to_visible": Direction.IR_TO_RGB,
    "t2v": Direction.IR_TO_RGB,
}
DIRECTION_NAMES: tuple[str, ...] = tuple(_DIRECTION_ALIASES)
"""Every accepted direction name."""


def parse_direction(direction: Union[str, Direction]) -> Direction:
    """:class:`Direction` of a name (``"rgb_to_ir"``, ``"visible_to_thermal"``, ``"v2t"``;
    ``"ir_to_rgb"``, ``"thermal_to_visible"``, ``"t2v"``) or of a :class:`Direction`."""
    if isinstance(direction, Direction):
        return direction
    if not isinstance(direction, str):
        raise TypeError(f"direction must be a string, got {type(direction).__name__}")
    key = direction.strip().lower()
    if key not in _DIRECTION_ALIASES:
        raise ValueError(
            f"direction must be one of {sorted(_DIRECTION_ALIASES)}, got {direction!r}"
        )
    return _DIRECTION_ALIASES[key]
