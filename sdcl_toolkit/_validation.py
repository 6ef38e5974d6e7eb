"""One set of rules for scalar arguments, shared by every public function and class.

* Integers: Python ``int`` and numpy integers (``np.int64(4)``) are accepted and returned as a
  plain ``int``; ``bool``, floats (even ``4.0``), strings and ``None`` are rejected with a
  :class:`TypeError`.
* Reals: Python ``int``/``float`` and numpy integer/floating scalars are accepted and returned
  as a plain ``float``; ``bool``, complex and non-numbers are a :class:`TypeError`; NaN and
  (unless allowed) inf are a :class:`ValueError`.
* Range violations are a :class:`ValueError`.

Every message starts with the caller's argument name, so ``CRA(topk=0)`` says
``topk must be >= 1, got 0`` and never names an internal helper's parameter.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

__all__ = ["check_int", "check_real", "check_bool", "check_choice"]


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def check_int(
    value: Any,
    name: str,
    *,
    minimum: Optional[int] = None,
    maximum: Optional[int] = None,
) -> int:
    """Return ``value`` as a Python ``int`` after checking type and range.

    Raises
    ------
    TypeError
        ``value`` is not an integer (``bool`` and integral floats included).
    ValueError
        ``value < minimum`` or ``value > maximum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_type_name(value)} {value!r}")
    result = int(value)
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {result}")
    return result


def check_real(
    value: Any,
    name: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a Python ``float`` after checking type, finiteness and range.

    ``minimum``/``maximum`` bound the value; ``min_inclusive``/``max_inclusive`` say whether
    the bound itself is allowed.

    Raises
    ------
    TypeError
        ``value`` is not a real number (``bool`` and complex included).
    ValueError
        NaN, inf (unless ``allow_inf``), or outside the range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (numbers.Real, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real number, got {_type_name(value)} {value!r}")
    result = float(value)
    if math.isnan(result):
        raise ValueError(f"{name} must be a number, got NaN")
    if math.isinf(result) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {result}")
    if minimum is not None:
        if result < minimum or (not min_inclusive and result == minimum):
            relation = ">=" if min_inclusive else ">"
            raise ValueError(f"{name} must be {relation} {minimum}, got {result}")
    if maximum is not None:
        if result > maximum or (not max_inclusive and result == maximum):
            relation = "<=" if max_inclusive else "<"
            raise ValueError(f"{name} must be {relation} {maximum}, got {result}")
    return result


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a Python ``bool``; only ``bool`` and ``numpy.bool_`` are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_type_name(value)} {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of the string ``choices``; else a ValueError listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {choices}, got {_type_name(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
