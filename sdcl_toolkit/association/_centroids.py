"""Per-cluster centroids of deep and shallow features, over the clusters that are present."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["BranchCentroids", "branch_centroids", "joint_similarity"]


class BranchCentroids(NamedTuple):
    """Centroids of the clusters present in a label vector.

    Attributes
    ----------
    labels: ``[C]`` int64 cluster labels present (sorted ascending, ``-1`` excluded).
    deep, shallow: ``[C, D]`` float32 L2-normalised means of the raw features of each.
    rows: ``[N]`` int64 row of each sample's cluster in ``labels`` (-1 for unclustered).
    sizes: ``[C]`` int64 samples per cluster.
    """

    labels: torch.Tensor
    deep: torch.Tensor
    shallow: torch.Tensor
    rows: torch.Tensor
    sizes: torch.Tensor


def _means(features: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    valid = index >= 0
    sums = torch.zeros(count, features.shape[1], dtype=torch.float32, device=features.device)
    sums.index_add_(0, index[valid], features[valid].float())
    return torch.nn.functional.normalize(sums, dim=1)


def branch_centroids(
    deep: torch.Tensor, shallow: torch.Tensor, labels: torch.Tensor
) -> BranchCentroids:
    """``mu_c = L2norm(mean_{i: y_i = c} f_i)`` for the deep and the shallow features.

    The mean of the raw features, then L2-normalised, as SDCL initialises its cluster
    memories (official ``generate_cluster_features``, ``cluster_contrast_vit_sysu.py``).
    Labels may have gaps: only the clusters present get a row. O(N D) time and memory.
    """
    present, inverse = torch.unique(labels, sorted=True, return_inverse=True)
    has_outliers = bool(present.numel()) and int(present[0]) == -1
    index = inverse - 1 if has_outliers else inverse
    present = present[1:] if has_outliers else present
    count = int(present.numel())
    sizes = torch.bincount(index[index >= 0], minlength=count)
    return BranchCentroids(
        present, _means(deep, index, count), _means(shallow, index, count), index, sizes
    )


def joint_similarity(
    deep: torch.Tensor, shallow: torch.Tensor, centroids: BranchCentroids
) -> torch.Tensor:
    """``[N, C]`` ``d_i . mu^d_c + s_i . mu^s_c`` for L2-normalised ``d``, ``s`` (in [-2, 2])."""
    return deep @ centroids.deep.T + shallow @ centroids.shallow.T
