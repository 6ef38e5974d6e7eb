"""make_association: names, options, the bidirectional flag."""

import pytest

from sdcl_toolkit import CRA
from sdcl_toolkit.association import (
    ASSOCIATION_METHODS,
    BidirectionalAssociation,
    HungarianAssociation,
    NearestCentroidAssociation,
    OptimalTransportAssociation,
    make_association,
)


def test_every_name_builds_its_method():
    assert ASSOCIATION_METHODS == ("cra", "centroid", "hungarian", "ot")
    assert isinstance(make_association("cra"), CRA)
    assert isinstance(make_association("centroid"), NearestCentroidAssociation)
    assert isinstance(make_association("hungarian"), HungarianAssociation)
    assert isinstance(make_association("ot"), OptimalTransportAssociation)
    for name in ASSOCIATION_METHODS:
        assert make_association(name).name == name


def test_options_and_bidirectional():
    cra = make_association("cra", topk=7, smooth_k=2)
    assert (cra.topk, cra.smooth_k) == (7, 2)
    ot = make_association("ot", epsilon=0.1, level="cluster")
    assert ot.epsilon == 0.1 and ot.level == "cluster" and ot.needs_src_labels
    wrapped = make_association("hungarian", bidirectional=True)
    assert isinstance(wrapped, BidirectionalAssociation)
    assert wrapped.name == "hungarian+bidirectional"


def test_errors():
    with pytest.raises(ValueError, match="association must be one of 'cra', 'centroid'"):
        make_association("pgm")
    with pytest.raises(TypeError, match="bidirectional must be True or False"):
        make_association("cra", bidirectional=1)
    with pytest.raises(TypeError, match="takes no options"):
        make_association("centroid", epsilon=0.1)
