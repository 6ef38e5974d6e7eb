"""The two modalities of visible-infrared re-identification and their names.

A leaf module (no package imports): data readers, models, losses and the objective all take
their modality vocabulary from here.
"""

from __future__ import annotations

__all__ = ["RGB", "IR", "MODALITIES", "parse_modality"]

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
