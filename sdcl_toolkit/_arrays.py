"""Boundary adapter: numpy or torch in -> torch inside -> the caller's type out.

Every public function of the toolkit accepts numpy arrays or torch tensors (on any device),
never a mix of the two, and returns results of the caller's array type on the caller's
device. Inside, work happens on torch tensors; reduced-precision floating inputs
(float16, bfloat16) are accepted and computed in float32.

Typical use inside a public function::

    kind = array_kind(features=features)          # TypeError on mixing / unknown types
    x = as_features(features, "features")          # float32, 2-D, finite, contiguous
    ...
    return kind.to_caller(result)                  # numpy array or tensor on the input device
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

__all__ = [
    "ArrayLike",
    "ArrayKind",
    "array_kind",
    "as_tensor",
    "as_features",
    "as_labels",
    "as_index",
]


@dataclass(frozen=True)
class ArrayKind:
    """Which array library and device the caller used.

    Attributes
    ----------
    is_numpy:
        ``True`` when the caller passed numpy arrays (results are returned as numpy).
    device:
        Device of the caller's tensors (``cpu`` for numpy input). Computation runs here.
    """

    is_numpy: bool
    device: torch.device

    def to_caller(self, value: Any) -> Any:
        """Convert a tensor (or a tuple/list of tensors) to the caller's type and device."""
        if isinstance(value, (tuple, list)):
            return type(value)(self.to_caller(v) for v in value)
        if not isinstance(value, torch.Tensor):
            return value
        if self.is_numpy:
            return value.detach().cpu().numpy()
        return value.to(self.device)


def _describe(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def array_kind(**arrays: Any) -> ArrayKind:
    """Return the common :class:`ArrayKind` of the named arrays (``None`` values are ignored).

    Raises
    ------
    TypeError
        If an argument is neither a numpy array nor a torch tensor, if numpy and torch
        arguments are mixed, or if torch arguments live on different devices.
    """
    numpy_names, torch_names, devices = [], [], {}
    for name, value in arrays.items():
        if value is None:
            continue
        if isinstance(value, torch.Tensor):
            torch_names.append(name)
            devices[name] = value.device
        elif isinstance(value, np.ndarray):
            numpy_names.append(name)
        else:
            raise TypeError(
                f"{name} must be a numpy.ndarray or a torch.Tensor, got {_describe(value)}"
            )
    if numpy_names and torch_names:
        raise TypeError(
            "numpy and torch inputs cannot be mixed: "
            f"{', '.join(numpy_names)} {'is' if len(numpy_names) == 1 else 'are'} numpy, "
            f"{', '.join(torch_names)} {'is' if len(torch_names) == 1 else 'are'} torch; "
            "convert them to one type first"
        )
    if torch_names:
        unique = set(devices.values())
        if len(unique) > 1:
            listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
            raise TypeError(f"torch inputs must be on one device, got {listing}")
        return ArrayKind(is_numpy=False, device=next(iter(unique)))
    return ArrayKind(is_numpy=True, device=torch.device("cpu"))


def as_tensor(
    value: ArrayLike,
    name: str,
    *,
    dtype: Optional[torch.dtype] = torch.float32,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Convert ``value`` to a detached, contiguous tensor.

    Floating inputs are cast to ``dtype`` (float32 by default, so float16/bfloat16/float64
    all compute in float32); ``dtype=None`` keeps the dtype. Numpy input shares memory
    where possible and is copied where it must be (non-writable or negative strides).
    """
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name} has dtype object; expected a numeric array")
        if not value.flags.writeable or any(s < 0 for s in value.strides):
            value = np.array(value, copy=True)
        # (np.ascontiguousarray would turn a 0-d array into shape [1])
        tensor = torch.from_numpy(
            value if value.flags.c_contiguous else np.ascontiguousarray(value)
        )
    elif isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        raise TypeError(f"{name} must be a numpy.ndarray or a torch.Tensor, got {_describe(value)}")
    if dtype is not None and tensor.dtype != dtype:
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise TypeError(f"{name} has dtype {tensor.dtype}; expected a real number array")
        tensor = tensor.to(dtype)
    if device is not None:
        tensor = tensor.to(device)
    return tensor.contiguous()


def _nonfinite_message(tensor: torch.Tensor, name: str) -> Optional[str]:
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return None
    bad_rows = (~finite).reshape(finite.shape[0], -1).any(dim=1).nonzero().flatten()
    shown = ", ".join(str(int(i)) for i in bad_rows[:5])
    more = "" if bad_rows.numel() <= 5 else ", ..."
    return (
        f"{name} contains NaN or inf in {bad_rows.numel()} of {tensor.shape[0]} rows "
        f"(rows {shown}{more})"
    )


def as_features(
    value: ArrayLike,
    name: str = "features",
    *,
    min_rows: int = 1,
    width: Optional[int] = None,
) -> torch.Tensor:
    """Validate a feature matrix and return it as a float32 contiguous ``[N, D]`` tensor.

    Raises
    ------
    ValueError
        For non-2-D input, fewer than ``min_rows`` rows, zero width, a width other than
        ``width`` (when given), or NaN/inf entries (the message says how many rows).
    """
    tensor = as_tensor(value, name)
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {tuple(tensor.shape)}")
    if tensor.shape[0] < min_rows:
        if tensor.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 rows)")
        raise ValueError(f"{name} needs at least {min_rows} rows, got {tensor.shape[0]}")
    if tensor.shape[1] == 0:
        raise ValueError(f"{name} has zero feature width")
    if width is not None and tensor.shape[1] != width:
        raise ValueError(f"{name} has width {tensor.shape[1]}, expected {width}")
    message = _nonfinite_message(tensor, name)
    if message is not None:
        source = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        if source.is_floating_point() and bool(torch.isfinite(source).all()):
            message = (
                f"{name} holds values beyond the float32 range (largest |x| = "
                f"{float(source.abs().max()):.3g}); features are computed in float32, "
                "rescale them first"
            )
        raise ValueError(message)
    return tensor


_INT64_LIMIT = 2.0**63  # exactly representable in float32 and float64


def as_labels(
    value: ArrayLike,
    name: str = "labels",
    *,
    length: Optional[int] = None,
    device: Optional[torch.device] = None,
    rows_of: Optional[str] = None,
) -> torch.Tensor:
    """Validate integer labels (or ids) and return them as a 1-D int64 tensor.

    The one rule for every label, id and index argument of the toolkit: integer dtypes are
    taken as they are; floating dtypes are accepted when every value is an integer in the
    int64 range (so ``[3.0, -1.0]`` works, while ``1e19`` or ``inf``, which int64 cannot
    hold, and ``0.5`` or NaN are refused rather than rounded or wrapped); ``-1`` (unlabelled)
    is an ordinary value here. Ranges are checked by :func:`as_index`.

    Raises
    ------
    TypeError
        ``value`` is not a numpy array / tensor, or has a bool, complex or object dtype.
    ValueError
        Non-integral or out-of-int64-range values, a shape other than 1-D, or a length other
        than ``length``; the message names ``name``.
    """
    if isinstance(value, np.ndarray) and value.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an integer array, got dtype {value.dtype}")
    if isinstance(value, np.ndarray) and value.dtype == np.uint64 and value.size:
        if int(value.max()) >= 2**63:
            raise ValueError(f"{name} holds values beyond the int64 range (max {value.max()})")
        value = value.astype(np.int64)
    tensor = as_tensor(value, name, dtype=None, device=device)
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must be an integer array, got dtype {tensor.dtype}")
    if tensor.is_floating_point():
        if tensor.numel():
            wide = tensor if tensor.dtype == torch.float64 else tensor.float()
            integral = wide == torch.round(wide)  # False for NaN; True for +-inf
            in_range = (wide >= -_INT64_LIMIT) & (wide < _INT64_LIMIT)  # False for NaN, inf
            if not bool(integral.all()):
                raise ValueError(
                    f"{name} must hold integers, got non-integral {tensor.dtype} values"
                )
            if not bool(in_range.all()):
                raise ValueError(
                    f"{name} holds values beyond the int64 range [-2**63, 2**63) "
                    f"(e.g. {float(wide[~in_range][0])}); pass integer ids"
                )
        tensor = tensor.to(torch.int64)
    else:
        tensor = tensor.to(torch.int64)
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    if length is not None and tensor.shape[0] != length:
        source = "" if rows_of is None else f" (one per row of {rows_of})"
        raise ValueError(f"{name} has length {tensor.shape[0]}, expected {length}{source}")
    return tensor


_OUTLIER_HINT = " (label -1 marks DBSCAN outliers: drop those samples first)"


def as_index(
    value: ArrayLike,
    name: str,
    *,
    upper: int,
    length: Optional[int] = None,
    device: Optional[torch.device] = None,
    outlier_hint: bool = False,
    rows_of: Optional[str] = None,
) -> torch.Tensor:
    """Validate integer values in ``[0, upper)`` (sample indices, class labels).

    Same rules as :func:`as_labels`, plus the range. One host synchronisation on the happy
    path. ``outlier_hint`` adds a note on ``-1`` (DBSCAN outliers) when it is among the
    offending values.

    Raises
    ------
    ValueError
        Values outside ``[0, upper)``: the message names ``name``, how many and which
        (up to 10 distinct); plus every :func:`as_labels` error.
    """
    tensor = as_labels(value, name, length=length, device=device, rows_of=rows_of)
    if tensor.numel():
        low, high = torch.stack(torch.aminmax(tensor)).tolist()
        if low < 0 or high >= upper:
            bad = (tensor < 0) | (tensor >= upper)
            offending = torch.unique(tensor[bad]).tolist()
            shown = offending[:10] + (["..."] if len(offending) > 10 else [])
            hint = _OUTLIER_HINT if outlier_hint and -1 in offending else ""
            raise ValueError(
                f"{name} must lie in [0, {upper}), got out-of-range values {shown} "
                f"({int(bad.sum())} of {tensor.shape[0]} entries){hint}"
            )
    return tensor
