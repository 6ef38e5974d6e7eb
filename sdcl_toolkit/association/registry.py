"""Associations by name: ``make_association("cra" | "centroid" | "hungarian" | "ot")``."""

from __future__ import annotations

from typing import Any, Optional

from .._validation import check_bool, check_choice
from ..knn_search import Backend, Candidates
from ..knn_sharded import check_group
from ..recipe import OFFICIAL_SYSU
from .bidirectional import BidirectionalAssociation
from .centroid import NearestCentroidAssociation
from .cra import CollaborativeRankingAssociation
from .hungarian import HungarianAssociation
from .optimal_transport import OptimalTransportAssociation
from .protocol import Association

__all__ = ["ASSOCIATION_METHODS", "make_association"]

ASSOCIATION_METHODS = ("cra", "centroid", "hungarian", "ot")
"""Names accepted by :func:`make_association` (and ``--association``)."""


def make_association(
    name: str = "cra",
    *,
    bidirectional: bool = False,
    topk: int = OFFICIAL_SYSU.cra_topk,
    smooth_k: int = OFFICIAL_SYSU.cra_smooth_k,
    backend: Backend = "auto",
    candidates: Candidates = "auto",
    group: Optional[Any] = None,
    **options: Any,
) -> Association:
    """The association called ``name``, optionally wrapped in the bidirectional check.

    Parameters
    ----------
    name:
        ``"cra"`` (:class:`CollaborativeRankingAssociation`, with ``topk``, ``smooth_k``,
        ``backend``, ``candidates``), ``"centroid"`` (:class:`NearestCentroidAssociation`),
        ``"hungarian"`` (:class:`HungarianAssociation`) or ``"ot"``
        (:class:`OptimalTransportAssociation`; ``options`` go to it: ``epsilon``,
        ``max_iter``, ``tol``, ``level``).
    bidirectional:
        Wrap the method in :class:`BidirectionalAssociation`.
    group:
        ``None``, ``"world"`` or a ``torch.distributed`` process group: CRA shards its kNN
        searches over the group's ranks. The other methods work on cluster centroids (no
        sample-level search) and run in full on every rank; the group is checked and unused.
    """
    check_choice(name, "association", ASSOCIATION_METHODS)
    check_bool(bidirectional, "bidirectional")
    check_group(group)
    if options and name != "ot":
        raise TypeError(f"association {name!r} takes no options, got {sorted(options)}")
    method: Association
    if name == "cra":
        method = CollaborativeRankingAssociation(
            topk, smooth_k, backend=backend, candidates=candidates, group=group
        )
    elif name == "centroid":
        method = NearestCentroidAssociation()
    elif name == "hungarian":
        method = HungarianAssociation()
    else:
        method = OptimalTransportAssociation(**options)
    return BidirectionalAssociation(method) if bidirectional else method
