"""sdcl-toolkit: Shallow-Deep Collaborative Learning (CVPR 2024) as reusable PyTorch parts.

Everything a user needs is importable from the top level, e.g.::

    from sdcl_toolkit import CRA, jaccard_distance, dbscan_pseudo_labels, ClusterMemory

Training (``sdcl_toolkit.engine``) and data (``sdcl_toolkit.data``) live in subpackages.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .association import CRA, CollaborativeRankingAssociation, CRAResult
from .clustering import cluster_centroids, dbscan_pseudo_labels
from .knn_search import knn
from .losses import (
    CNL,
    CollaborativeNeighborLearning,
    Direction,
    NeighborLoss,
    NeighborLossResult,
    SDCLLossWeights,
    ShallowDeepContrast,
    ShallowDeepContrastResult,
    ShallowDeepLoss,
    heterogeneous_direction,
)
from .memory import ClusterMemory, InstanceMemory
from .metrics import RankResult, evaluate_rank, mean_rank_results, query_gallery_distance
from .modality import IR, MODALITIES, RGB, parse_modality
from .models import ShallowDeepViT, ViT, build_shallow_deep_vit, load_pretrained
from .objective import SDCLLoss, SDCLMemories, SDCLObjective
from .pipeline import PseudoLabeler, PseudoLabels
from .recipe import SDCLRecipe
from .reranking import jaccard_distance, k_reciprocal_rerank, k_reciprocal_rerank_features

__all__ = [
    "__version__",
    # association core
    "knn",
    "jaccard_distance",
    "k_reciprocal_rerank",
    "k_reciprocal_rerank_features",
    "dbscan_pseudo_labels",
    "cluster_centroids",
    # cross-modality association and the per-epoch pipeline
    "CollaborativeRankingAssociation",
    "CRA",
    "CRAResult",
    "PseudoLabeler",
    "PseudoLabels",
    # memories and losses
    "ClusterMemory",
    "InstanceMemory",
    "ShallowDeepContrast",
    "CollaborativeNeighborLearning",
    "CNL",
    "SDCLLossWeights",
    "heterogeneous_direction",
    "Direction",
    "NeighborLossResult",
    "ShallowDeepContrastResult",
    # deprecated aliases (removed in the next version)
    "NeighborLoss",
    "ShallowDeepLoss",
    # evaluation
    "evaluate_rank",
    "RankResult",
    "mean_rank_results",
    "query_gallery_distance",
    # the recipe and the training step
    "SDCLRecipe",
    "SDCLObjective",
    "SDCLMemories",
    "SDCLLoss",
    # modalities
    "RGB",
    "IR",
    "MODALITIES",
    "parse_modality",
    # models
    "ViT",
    "ShallowDeepViT",
    "build_shallow_deep_vit",
    "load_pretrained",
]
