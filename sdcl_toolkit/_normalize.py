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

__all__ = ["l2_normalize", "l2_normalize_float32", "needs_rescaling"]

_NORM_EPS = 1e-12
# row scales (largest |entry|) for which F.normalize is exact in float32: squares of up to
# 1e15 summed over any realistic width stay far below 3.4e38, squares of 1e-15 stay normal.
_SAFE_SCALE = (1e-15, 1e15)


def needs_rescaling(scale: torch.Tensor) -> bool:
    """Whether some non-zero row scale lies outside the range where F.normalize is exact."""
    low, high = _SAFE_SCALE
    outside = (scale != 0) & ((scale < low) | (scale > high))
    return bool(outside.any())


def l2_normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``x / ||x||`` along ``dim`` (``[N, D]`` floating, any device), exact for any finite scale.

    Equation: ``s = max_j |x_j|`` (treated as a constant), ``y = x / s``,
    ``out = y / max(||y||, 1e-12)``; ``s = 1`` for all-zero rows. Output dtype = input dtype.
    """
    if x.numel() == 0:
        return F.normalize(x, dim=dim, eps=_NORM_EPS)
    scale = x.detach().abs().amax(dim=dim, keepdim=True)
    if x.dtype in (torch.float32, torch.float64) and not needs_rescaling(scale):
        return F.normalize(x, dim=dim, eps=_NORM_EPS)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    scaled = x / scale
    return scaled / torch.linalg.vector_norm(scaled, dim=dim, keepdim=True).clamp_min(_NORM_EPS)


def l2_normalize_float32(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """:func:`l2_normalize` returned in float32 (the toolkit's compute dtype).

    float64 input is normalised before the cast, so finite rows beyond the float32 range
    (``|x| > 3.4e38``) keep their direction instead of becoming inf/NaN; other dtypes
    (float16, bfloat16, float32) are cast first and normalised in float32.
    """
    if x.dtype == torch.float64:
        return l2_normalize(x, dim=dim).float()
    return l2_normalize(x.float(), dim=dim)
