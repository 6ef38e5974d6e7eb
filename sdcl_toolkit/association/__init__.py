"""Cross-modality label association: one protocol, several methods, chosen by name.

Every method maps source-modality samples (RGB) to target-modality clusters (IR)::

    method.associate(deep_src, shallow_src, deep_tgt, shallow_tgt, tgt_labels, src_labels)

========================  =====================================================  ============
name                      method                                                 src_labels
========================  =====================================================  ============
``"cra"`` (SDCL default)  :class:`CollaborativeRankingAssociation` (CVPR 2024)    ignored
``"centroid"``            :class:`NearestCentroidAssociation`                    ignored
``"hungarian"``           :class:`HungarianAssociation` (PGM, CVPR 2023)          required
``"ot"``                  :class:`OptimalTransportAssociation` (Sinkhorn)        ``level``
========================  =====================================================  ============

:class:`BidirectionalAssociation` wraps any of them (keep an association only if the
reverse direction agrees); :func:`make_association` builds one by name.
"""

from .bidirectional import BidirectionalAssociation
from .centroid import NearestCentroidAssociation
from .cra import CRA, CollaborativeRankingAssociation, CRAResult
from .hungarian import HungarianAssociation
from .optimal_transport import OptimalTransportAssociation
from .protocol import Association, AssociationResult
from .registry import ASSOCIATION_METHODS, make_association

__all__ = [
    "ASSOCIATION_METHODS",
    "Association",
    "AssociationResult",
    "BidirectionalAssociation",
    "CRA",
    "CRAResult",
    "CollaborativeRankingAssociation",
    "HungarianAssociation",
    "NearestCentroidAssociation",
    "OptimalTransportAssociation",
    "make_association",
]
