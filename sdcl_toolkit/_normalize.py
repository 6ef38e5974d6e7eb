"""Row-wise L2 normalisation that stays exact for very large and very small features.

``torch.nn.functional.normalize`` divides by ``max(||x||, eps)``; in float32 ``||x||``
overflows to inf once ``|x|`` exceeds about 1e19 (the squares pass 3.4e38), and underflows
to 0 once ``|x|`` drops below about 1e-19, so such rows silently come out as zero vectors
(or as ``x / 1e-12``, not unit vectors). :func:`l2_normalize` first divides each row by its
largest absolute entry (a constant for autograd, so gradients are those of ``x / ||x||``),
then normalises: every non-zero finite row comes out with norm 1, and all-zero rows stay
zero, as with ``F.normalize``.

When every row's largest entry lies in ``[1e-15, 1e15]`` (all real features) and the dtype
is float32/float64, the result IS ``F.normalize(x, dim)``, bit for bit, values and gradients:
the official SDCL code normalises with ``F.normalize``, and a second division would round
differently (1 ulp), which a long training run amplifies into different results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["l2_normalize", "l2_normalize_float32", "needs_rescaling", "row_divisor"]

_NORM_EPS = 1e-12
# row scales (largest |entry|) for which F.normalize is exact in float32: squares of up to
# 1e15 summed over any realistic width stay far below 3.4e38, squares of 1e-15 stay normal.
_SAFE_SCALE = (1e-15, 1e15)


def needs_rescaling(scale: torch.Tensor) -> bool:
    """Whether some non-zero row scale lies outside the range where F.normalize is exact."""
    return bool(_outside_safe_range(scale).any())


def _outside_safe_range(scale: torch.Tensor) -> torch.Tensor:
    """Per row: the non-zero scales outside ``[1e-15, 1e15]`` (bool, same shape)."""
    low, high = _SAFE_SCALE
    return (scale != 0) & ((scale < low) | (scale > high))


def row_divisor(scale: torch.Tensor, always: bool = False) -> torch.Tensor:
    """What each row is divided by before it is normalised: its largest absolute entry
    ``scale`` where that lies outside ``[1e-15, 1e15]`` (or, with ``always``, wherever it is
    non-zero), else exactly 1.

    Dividing by 1 is exact (values and gradients), so ordinary rows are normalised as if
    nothing had been done, and no host synchronisation decides which rows to rescale.
    """
    rescale = (scale != 0) if always else _outside_safe_range(scale)
    return torch.where(rescale, scale, torch.ones_like(scale))


def l2_normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``x / ||x||`` along ``dim`` (``[N, D]`` floating, any device), exact for any finite scale.

    Equation: ``s = max_j |x_j|`` (treated as a constant; 1 for all-zero rows and, in float32
    and float64, for rows with ``s`` in ``[1e-15, 1e15]``), ``y = x / s``,
    ``out = y / max(||y||, 1e-12)``. Output dtype = input dtype. float16/bfloat16 rows are
    always divided by ``s`` (their squares overflow above ~256 / ~1.8e19).
    """
    if x.numel() == 0:
        return F.normalize(x, dim=dim, eps=_NORM_EPS)
    scale = x.detach().abs().amax(dim=dim, keepdim=True)
    exact_dtype = x.dtype in (torch.float32, torch.float64)
    if exact_dtype and x.requires_grad and torch.is_grad_enabled() and not needs_rescaling(scale):
        # with autograd, F.normalize's own graph: an extra divide-by-1 node would change
        # the order in which autograd sums the gradients of x (ulps). Without autograd (the
        # memory updates) no host synchronisation decides the rows to rescale.
        return F.normalize(x, dim=dim, eps=_NORM_EPS)
    return F.normalize(x / row_divisor(scale, always=not exact_dtype), dim=dim, eps=_NORM_EPS)


def l2_normalize_float32(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """:func:`l2_normalize` returned in float32 (the toolkit's compute dtype).

    float64 input is normalised before the cast, so finite rows beyond the float32 range
    (``|x| > 3.4e38``) keep their direction instead of becoming inf/NaN; other dtypes
    (float16, bfloat16, float32) are cast first and normalised in float32.
    """
    if x.dtype == torch.float64:
        return l2_normalize(x, dim=dim).float()
    return l2_normalize(x.float(), dim=dim)
