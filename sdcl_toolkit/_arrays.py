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
        tensor = torch.from_numpy(np.ascontiguousarray(value))
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
        raise ValueError(message)
    return tensor


def as_labels(
    value: ArrayLike,
    name: str = "labels",
    *,
    length: Optional[int] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Validate integer labels and return them as a 1-D int64 tensor (``-1`` = unlabelled)."""
    tensor = as_tensor(value, name, dtype=None, device=device)
    if tensor.is_floating_point():
        if not bool(torch.all(tensor == torch.round(tensor))):
            raise ValueError(f"{name} must hold integers, got non-integral {tensor.dtype} values")
        tensor = tensor.to(torch.int64)
    elif tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must be an integer array, got {tensor.dtype}")
    else:
        tensor = tensor.to(torch.int64)
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    if length is not None and tensor.shape[0] != length:
        raise ValueError(f"{name} has length {tensor.shape[0]}, expected {length}")
    return tensor


def as_index(
    value: ArrayLike,
    name: str,
    *,
    upper: int,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Validate sample indices in ``[0, upper)`` and return them as a 1-D int64 tensor."""
    tensor = as_labels(value, name, device=device)
    if tensor.numel():
        bad = (tensor < 0) | (tensor >= upper)
        if bool(bad.any()):
            shown = sorted({int(v) for v in tensor[bad][:5]})
            raise ValueError(f"{name} must lie in [0, {upper}), got out-of-range values {shown}")
    return tensor
