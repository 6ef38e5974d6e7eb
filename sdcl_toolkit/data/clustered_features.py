"""Generated feature sets with known identities, for benchmarks and tests.

Real re-ID features are not available offline, so the association benchmarks use features
drawn around identity centres with the structure that matters to k-reciprocal clustering
and cross-modality association:

- identity centres share a common direction (inter-identity cosine ~``shared``), so
  neighbourhoods are not trivially clean;
- each (identity, camera) pair has its own offset (a person looks different per camera);
- per-sample isotropic noise; a fraction of outliers drawn uniformly on the sphere;
- two modalities differ by a global shift plus a per-identity shift (``modality_gap``);
- "deep" and "shallow" features are two noisy views of the same identity structure with
  independent noise, so their neighbour rankings agree only partly (what CRA exploits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

__all__ = [
    "ClusteredFeatures",
    "TwoModalityFeatures",
    "make_clustered_features",
    "make_two_modality_features",
]


@dataclass
class ClusteredFeatures:
    """``features`` ``[N, D]`` float32 (L2-normalised), ``ids`` ``[N]`` int64 (-1 = outlier),
    ``cameras`` ``[N]`` int64."""

    features: torch.Tensor
    ids: torch.Tensor
    cameras: torch.Tensor


@dataclass
class TwoModalityFeatures:
    """Deep and shallow features of a source (RGB) and a target (IR) modality with their ids."""

    deep_rgb: torch.Tensor
    shallow_rgb: torch.Tensor
    ids_rgb: torch.Tensor
    deep_ir: torch.Tensor
    shallow_ir: torch.Tensor
    ids_ir: torch.Tensor


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _sample_ids(num_samples: int, num_identities: int, generator: torch.Generator) -> torch.Tensor:
    # uneven identity sizes: Dirichlet-like weights from a gamma draw
    weights = torch.distributions.Gamma(4.0, 1.0).sample((num_identities,))
    weights = weights / weights.sum()
    ids = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
    return torch.sort(ids).values


def _identity_centres(num_identities: int, dim: int, shared: float, generator: torch.Generator):
    common = _unit(torch.randn(dim, generator=generator))
    unique = _unit(torch.randn(num_identities, dim, generator=generator))
    return _unit(shared**0.5 * common + (1 - shared) ** 0.5 * unique)


def make_clustered_features(
    num_samples: int,
    num_identities: int,
    dim: int,
    *,
    num_cameras: int = 4,
    noise: float = 0.9,
    camera_spread: float = 0.5,
    shared: float = 0.3,
    outlier_fraction: float = 0.03,
    seed: int = 0,
) -> ClusteredFeatures:
    """Draw ``num_samples`` L2-normalised ``dim``-d features around ``num_identities`` centres.

    ``noise`` and ``camera_spread`` are norms relative to the unit-norm centre (so with the
    defaults intra-identity cosine similarity is roughly 0.4-0.8 and inter-identity ~0.3).
    """
    torch.manual_seed(seed)  # Gamma sampling above uses the global generator
    generator = torch.Generator().manual_seed(seed)
    centres = _identity_centres(num_identities, dim, shared, generator)
    ids = _sample_ids(num_samples, num_identities, generator)
    cameras = torch.randint(0, num_cameras, (num_samples,), generator=generator)
    cam_offsets = _unit(torch.randn(num_identities, num_cameras, dim, generator=generator))
    noise_vec = _unit(torch.randn(num_samples, dim, generator=generator))
    x = centres[ids] + camera_spread * cam_offsets[ids, cameras] + noise * noise_vec
    num_outliers = int(round(outlier_fraction * num_samples))
    if num_outliers:
        where = torch.randperm(num_samples, generator=generator)[:num_outliers]
        x[where] = torch.randn(num_outliers, dim, generator=generator)
        ids = ids.clone()
        ids[where] = -1
    return ClusteredFeatures(_unit(x).float(), ids, cameras + 1)


def make_two_modality_features(
    num_identities: int,
    rgb_per_identity: int,
    ir_per_identity: int,
    *,
    dim: int = 64,
    modality_gap: float = 0.5,
    noise: float = 0.6,
    shallow_noise: Optional[float] = None,
    camera_spread: float = 0.3,
    shared: float = 0.3,
    num_cameras: int = 2,
    seed: int = 0,
) -> TwoModalityFeatures:
    """Two modalities of one identity set, deep and shallow views, with a modality gap.

    Each sample of identity ``p`` in modality ``m`` and camera ``c`` is
    ``centre_p + gap_m,p + camera_spread * offset_p,m,c + noise * eps`` where the IR shift
    ``gap_ir,p = modality_gap * unit(global_shift + per_identity_shift_p)`` and
    ``gap_rgb,p = 0``. The shallow view uses an independent centre perturbation and noise
    (``shallow_noise``, default ``noise``), so deep and shallow neighbours agree only partly.
    Features are returned raw (not normalised), like a backbone's outputs.
    """
    generator = torch.Generator().manual_seed(seed)
    shallow_noise = noise if shallow_noise is None else shallow_noise
    centres = _identity_centres(num_identities, dim, shared, generator)
    shallow_centres = _unit(
        centres + 0.5 * _unit(torch.randn(num_identities, dim, generator=generator))
    )
    global_shift = _unit(torch.randn(dim, generator=generator))
    identity_shift = _unit(torch.randn(num_identities, dim, generator=generator))
    gap = modality_gap * _unit(global_shift + identity_shift)
    shallow_gap = modality_gap * _unit(
        global_shift + _unit(torch.randn(num_identities, dim, generator=generator))
    )

    def draw(per_identity: int, shift: torch.Tensor, shallow_shift: torch.Tensor):
        ids = torch.arange(num_identities).repeat_interleave(per_identity)
        n = ids.numel()
        cams = torch.randint(0, num_cameras, (n,), generator=generator)
        offsets = _unit(torch.randn(num_identities, num_cameras, dim, generator=generator))
        deep = (
            centres[ids]
            + shift[ids]
            + camera_spread * offsets[ids, cams]
            + noise * _unit(torch.randn(n, dim, generator=generator))
        )
        shallow = (
            shallow_centres[ids]
            + shallow_shift[ids]
            + camera_spread * offsets[ids, cams]
            + shallow_noise * _unit(torch.randn(n, dim, generator=generator))
        )
        scale = 1.0 + torch.rand(n, 1, generator=generator)  # raw features have varying norms
        return (deep * scale).float(), (shallow * scale).float(), ids

    zero = torch.zeros(num_identities, dim)
    deep_rgb, shallow_rgb, ids_rgb = draw(rgb_per_identity, zero, zero)
    deep_ir, shallow_ir, ids_ir = draw(ir_per_identity, gap, shallow_gap)
    return TwoModalityFeatures(deep_rgb, shallow_rgb, ids_rgb, deep_ir, shallow_ir, ids_ir)
