"""Row-wise L2 normalisation that stays exact for very large and very small features.

``torch.nn.functional.normalize`` divides by ``max(||x||, eps)``; in float32 ``||x||``
overflows to inf once ``|x|`` exceeds about 1e19 (the squares pass 3.4e38), and underflows
to 0 once ``|x|`` drops below about 1e-19, so such rows silently come out as zero vectors
(or as ``x / 1e-12``, not unit vectors). :func:`l2_normalize` first divides each row by its
largest absolute entry (a constant for autograd, so gradients are those of ``x / ||x||``),
then normalises: every non-zero finite row comes out with norm 1, and all-zero rows stay
zero, as with ``F.normalize``.
"""

from __future__ import annotations

import torch

__all__ = ["l2_normalize", "l2_normalize_float32"]

_NORM_EPS = 1e-12


def l2_normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``x / ||x||`` along ``dim`` (``[N, D]`` floating, any device), exact for any finite scale.

    Equation: ``s = max_j |x_j|`` (treated as a constant), ``y = x / s``,
    ``out = y / max(||y||, 1e-12)``; ``s = 1`` for all-zero rows. Output dtype = input dtype.
    """
    scale = x.detach().abs().amax(dim=dim, keepdim=True)
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
