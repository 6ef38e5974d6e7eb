"""sdcl-toolkit: Shallow-Deep Collaborative Learning (CVPR 2024) as reusable PyTorch parts.

Everything a user needs is importable from the top level, e.g.::

    from sdcl_toolkit import CRA, jaccard_distance, dbscan_pseudo_labels, ClusterMemory

Names are resolved lazily (PEP 562) so that ``import sdcl_toolkit`` stays cheap and each
submodule is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: Dict[str, str] = {
    # association core
    "knn": "knn",
    "jaccard_distance": "reranking",
    "k_reciprocal_rerank": "reranking",
    "k_reciprocal_rerank_features": "reranking",
    "dbscan_pseudo_labels": "clustering",
    "cluster_centroids": "clustering",
    # cross-modality association and the per-epoch pipeline
    "CollaborativeRankingAssociation": "association",
    "CRA": "association",
    "CRAResult": "association",
    "PseudoLabeler": "pipeline",
    "PseudoLabels": "pipeline",
    # memories and losses
    "ClusterMemory": "memory",
    "InstanceMemory": "memory",
    "ShallowDeepContrast": "losses",
    "CollaborativeNeighborLearning": "losses",
    "CNL": "losses",
    # evaluation
    "evaluate_rank": "metrics",
    "RankResult": "metrics",
    "query_gallery_distance": "metrics",
    # models
    "ViT": "models",
    "ShallowDeepViT": "models",
    "load_pretrained": "models",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'sdcl_toolkit' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for static analysers and IDEs
    from .association import CRA, CollaborativeRankingAssociation, CRAResult
    from .clustering import cluster_centroids, dbscan_pseudo_labels
    from .knn import knn
    from .losses import CNL, CollaborativeNeighborLearning, ShallowDeepContrast
    from .memory import ClusterMemory, InstanceMemory
    from .metrics import RankResult, evaluate_rank, query_gallery_distance
    from .models import ShallowDeepViT, ViT, load_pretrained
    from .pipeline import PseudoLabeler, PseudoLabels
    from .reranking import jaccard_distance, k_reciprocal_rerank, k_reciprocal_rerank_features
