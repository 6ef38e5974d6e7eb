"""The modality vocabulary: names, aliases and cross-modality directions in one place."""

import pytest

from sdcl_toolkit.modality import (
    DIRECTION_NAMES,
    IR,
    MODALITIES,
    RGB,
    Direction,
    parse_direction,
    parse_modality,
)


@pytest.mark.parametrize(
    "name, expected",
    [("RGB", RGB), (" visible ", RGB), ("colour", RGB), ("thermal", IR), ("Infrared", IR)],
)
def test_modality_aliases(name, expected):
    assert parse_modality(name) == expected


def test_modality_errors():
    with pytest.raises(ValueError, match="unknown modality"):
        parse_modality("depth")
    with pytest.raises(TypeError):
        parse_modality(1)


def test_directions_and_their_sides():
    assert MODALITIES == (RGB, IR)
    assert parse_direction("v2t") is parse_direction("visible_to_thermal") is Direction.RGB_TO_IR
    assert parse_direction("T2V") is Direction.IR_TO_RGB
    assert (Direction.RGB_TO_IR.query, Direction.RGB_TO_IR.target) == (RGB, IR)
    assert (Direction.IR_TO_RGB.query, Direction.IR_TO_RGB.target) == (IR, RGB)
    assert Direction.RGB_TO_IR == "rgb_to_ir" and len(DIRECTION_NAMES) == 6
    with pytest.raises(ValueError, match="direction must be one of"):
        parse_direction("up")
