"""Re-ID ranking metrics: CMC, mAP and mINP under the SYSU-MM01, RegDB and Market protocols.

The official ``eval_sysu`` / ``eval_regdb`` rules (see ``docs/evaluation.md`` for the
equations). Everything is vectorised over queries: the distance matrix is sorted in chunks
of queries on the device it lives on, and all per-query statistics are cumulative sums and
reductions over that sorted matrix. No Python loop runs per query.

Example::

    from sdcl_toolkit import evaluate_rank, query_gallery_distance

    dist = query_gallery_distance(query_features, gallery_features)   # -(q @ g.T)
    result = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol="sysu")
    print(result)            # Rank-1 ... mAP ... mINP ...
    result.cmc[0], result.mAP, result.mINP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np
import torch

from ._arrays import ArrayLike, array_kind, as_features, as_labels, as_tensor
from ._normalize import l2_normalize
from ._validation import check_bool, check_choice, check_int
from .reranking import RERANK_K1, RERANK_K2, RERANK_LAMBDA

__all__ = [
    "PROTOCOLS",
    "RankResult",
    "eval_market",
    "evaluate_rank",
    "eval_regdb",
    "eval_sysu",
    "mean_rank_results",
    "query_gallery_distance",
]

logger = logging.getLogger(__name__)

PROTOCOLS = ("sysu", "regdb", "market", "llcm")
"""Protocol names accepted by :func:`evaluate_rank`."""
_PROTOCOLS_WITH_CAMERAS = ("sysu", "market", "llcm")

# SYSU-MM01: IR queries from camera 3 do not search gallery images from camera 2
# (both cameras are in the same room; official rule of the dataset authors' code).
_SYSU_IR_QUERY_CAMERA = 3
_SYSU_EXCLUDED_GALLERY_CAMERA = 2

# Upper bound on the number of query x gallery entries sorted at once (about 16 bytes
# of working memory each across the int64/float64 temporaries).
_CHUNK_ELEMENTS = 1 << 22

LabelsLike = Union[ArrayLike, Sequence[int]]


@dataclass(frozen=True)
class RankResult:
    """Result of :func:`evaluate_rank`.

    Attributes
    ----------
    cmc:
        CMC curve, ``cmc[k - 1]`` = Rank-k accuracy in [0, 1], for k = 1..max_rank.
        Under the SYSU protocol it is computed on the identity-deduplicated ranking.
    mAP:
        Mean average precision over the valid queries, in [0, 1].
    mINP:
        Mean inverse negative penalty over the valid queries, in [0, 1].
    num_valid_queries:
        Queries with at least one valid positive in the gallery (the averages run over these).
    num_skipped_queries:
        Queries without any valid positive; they are left out of every average.
    protocol:
        The protocol used (``"sysu"``, ``"regdb"`` or ``"market"``).
    """

    cmc: tuple[float, ...]
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int
    protocol: str = "sysu"

    def rank(self, k: int) -> float:
        """Rank-k accuracy (``k`` counts from 1)."""
        k = check_int(k, "k", minimum=1, maximum=len(self.cmc))
        return self.cmc[k - 1]

    @property
    def rank1(self) -> float:
        """Rank-1 accuracy."""
        return self.cmc[0]

    def as_dict(self) -> dict[str, Any]:
        """Flat dictionary (JSON-friendly): ``rank1, rank5, rank10, rank20`` (those that
        exist), ``mAP``, ``mINP``, the full ``cmc`` list and the query counts."""
        out: dict[str, Any] = {}
        for k in (1, 5, 10, 20):
            if k <= len(self.cmc):
                out[f"rank{k}"] = self.cmc[k - 1]
        out.update(
            mAP=self.mAP,
            mINP=self.mINP,
            cmc=list(self.cmc),
            num_valid_queries=self.num_valid_queries,
            num_skipped_queries=self.num_skipped_queries,
            protocol=self.protocol,
        )
        return out

    def __str__(self) -> str:
        ranks = "  ".join(
            f"Rank-{k}: {100 * self.cmc[k - 1]:.2f}%" for k in (1, 5, 10, 20) if k <= len(self.cmc)
        )
        skipped = (
            f", {self.num_skipped_queries} skipped without a positive"
            if self.num_skipped_queries
            else ""
        )
        return (
            f"{ranks}  mAP: {100 * self.mAP:.2f}%  mINP: {100 * self.mINP:.2f}%  "
            f"[{self.protocol}, {self.num_valid_queries} queries{skipped}]"
        )


def mean_rank_results(results: Sequence[RankResult]) -> RankResult:
    """Average several results (e.g. the 10 SYSU-MM01 gallery trials or RegDB splits).

    CMC, mAP and mINP are averaged with equal weight per result, as papers report them;
    the query counts are summed.
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty; expected at least one RankResult")
    lengths = {len(r.cmc) for r in results}
    if len(lengths) != 1:
        raise ValueError(f"results have CMC curves of different lengths {sorted(lengths)}")
    protocols = {r.protocol for r in results}
    if len(protocols) != 1:
        raise ValueError(f"results mix protocols {sorted(protocols)}")
    cmc = np.mean(np.asarray([r.cmc for r in results], dtype=np.float64), axis=0)
    return RankResult(
        cmc=tuple(float(v) for v in cmc),
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        num_valid_queries=sum(r.num_valid_queries for r in results),
        num_skipped_queries=sum(r.num_skipped_queries for r in results),
        protocol=protocols.pop(),
    )


def _as_distance_matrix(distmat: Any) -> torch.Tensor:
    if not isinstance(distmat, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"distmat must be a numpy.ndarray or a torch.Tensor, got {type(distmat).__name__}"
        )
    tensor = as_tensor(distmat, "distmat", dtype=None)
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"distmat must hold real numbers, got dtype {tensor.dtype}")
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.to(torch.float32)  # integer and float32/64 distances sort as they are
    if tensor.dim() != 2:
        raise ValueError(
            f"distmat must be 2-D [num_query, num_gallery], got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"distmat is empty (shape {tuple(tensor.shape)})")
    if bool(torch.isnan(tensor).any()):
        rows = torch.isnan(tensor).any(dim=1).nonzero().flatten()
        raise ValueError(
            f"distmat contains NaN in {rows.numel()} rows (first: {rows[:5].tolist()})"
        )
    return tensor


def _as_ids(value: Any, name: str, length: int, device: torch.device) -> torch.Tensor:
    if value is None:
        raise ValueError(f"{name} is required")
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} must be an integer array, got {type(value).__name__}"
            ) from error
    # the toolkit's one label rule: integral floats in the int64 range are accepted, others
    # (0.5, NaN, inf, 1e19: two such ids would collapse to one int64) are a ValueError
    tensor = as_labels(value, name)
    if tensor.shape[0] != length:
        raise ValueError(f"{name} has length {tensor.shape[0]}, expected {length} (from distmat)")
    return tensor.to(device)


def _accumulation_dtype(device: torch.device) -> torch.dtype:
    # float64 everywhere it exists so that mAP matches the float64 reference to ~1e-12.
    return torch.float32 if device.type == "mps" else torch.float64


MAX_RANK_LIMIT = 1_000_000
"""``max_rank`` may exceed the gallery size (the curve then stays at its last value) up to
this many ranks, or up to the gallery size when that is larger."""


def _check_max_rank(max_rank: Any) -> int:
    return check_int(max_rank, "max_rank", minimum=1)


class _Inputs(NamedTuple):
    """Validated inputs of one evaluation, all on the distance matrix's device."""

    dist: torch.Tensor  # [Q, G]
    query_pids: torch.Tensor  # [Q] int64
    gallery_pids: torch.Tensor  # [G] int64
    query_cams: Optional[torch.Tensor]  # [Q] int64; None when the protocol ignores cameras
    gallery_cams: Optional[torch.Tensor]  # [G] int64; None when the protocol ignores cameras
    max_rank: int


def _prepare(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: Any,
    protocol: str,
) -> _Inputs:
    """Check and convert the arguments of :func:`evaluate_rank` (errors in its order)."""
    max_rank = _check_max_rank(max_rank)
    dist = _as_distance_matrix(distmat)
    device = dist.device
    num_q, num_g = dist.shape
    if max_rank > max(num_g, MAX_RANK_LIMIT):
        raise ValueError(
            f"max_rank must be <= max(gallery size {num_g}, {MAX_RANK_LIMIT}), got {max_rank}"
        )
    query_pids = _as_ids(q_pids, "q_pids", num_q, device)
    gallery_pids = _as_ids(g_pids, "g_pids", num_g, device)
    query_cams = gallery_cams = None
    if protocol in _PROTOCOLS_WITH_CAMERAS:
        if q_camids is None or g_camids is None:
            raise ValueError(
                f"protocol {protocol!r} needs q_camids and g_camids; pass camera ids or use "
                "protocol='regdb'"
            )
        query_cams = _as_ids(q_camids, "q_camids", num_q, device)
        gallery_cams = _as_ids(g_camids, "g_camids", num_g, device)
    return _Inputs(dist, query_pids, gallery_pids, query_cams, gallery_cams, max_rank)


# --------------------------------------------------------------------------- shared core

KeepRule = Callable[[torch.Tensor, slice, torch.Tensor], torch.Tensor]
"""``keep = rule(order, rows, is_match)``: ``[c, G]`` bool mask of the sorted gallery entries
that stay in the ranking of the queries ``rows`` (``order`` = their argsort, ``is_match`` =
same identity as the query)."""


class _QueryStatistics(NamedTuple):
    """Per-query statistics of one chunk of sorted rankings (all ``[c]``)."""

    valid: torch.Tensor  # at least one positive survives the filtering
    first_hit: torch.Tensor  # 0-based position of the first positive in the filtered ranking
    kept_position: torch.Tensor  # [c, G] 0-based position of each entry in the filtered ranking
    ap: torch.Tensor
    inp: torch.Tensor


def _query_statistics(
    positive: torch.Tensor, keep: torch.Tensor, acc: torch.dtype
) -> _QueryStatistics:
    """AP, INP and the first-hit position of each query from cumulative sums over its
    sorted ranking (``positive`` and ``keep`` are ``[c, G]`` masks in ranking order)."""
    num_g = positive.shape[1]
    num_positive = positive.sum(dim=1)  # [c]
    # 0-based position of every entry in the filtered ranking
    kept_position = torch.cumsum(keep, dim=1) - 1
    big = torch.full_like(kept_position, num_g)
    first_hit = torch.where(positive, kept_position, big).min(dim=1).values  # [c]
    last_hit = torch.where(positive, kept_position, -torch.ones_like(kept_position))
    last_hit = last_hit.max(dim=1).values

    # average precision: mean over positives of (hits so far) / (position + 1)
    hits_so_far = torch.cumsum(positive, dim=1).to(acc)
    # (removed entries before the first kept one sit at position -1: clamp, they are never
    # positives)
    precision = hits_so_far / (kept_position.clamp(min=0).to(acc) + 1.0)
    ap = (precision * positive.to(acc)).sum(dim=1) / num_positive.clamp(min=1).to(acc)
    inp = num_positive.to(acc) / (last_hit.to(acc) + 1.0)
    return _QueryStatistics(num_positive > 0, first_hit, kept_position, ap, inp)


def _distinct_identity_rank(
    sorted_pid_index: torch.Tensor,
    keep: torch.Tensor,
    stats: _QueryStatistics,
    num_pids: int,
) -> torch.Tensor:
    """Rank of the first true match in the ranking with repeated identities removed
    = number of distinct identities whose first kept occurrence comes earlier."""
    num_c, num_g = keep.shape
    first_occurrence = torch.full((num_c, num_pids), num_g, dtype=torch.int64, device=keep.device)
    kept = torch.where(keep, stats.kept_position, torch.full_like(stats.kept_position, num_g))
    first_occurrence.scatter_reduce_(1, sorted_pid_index, kept, reduce="amin")
    return (first_occurrence < stats.first_hit[:, None]).sum(dim=1)


def _rank_core(
    inputs: _Inputs,
    protocol: str,
    keep_rule: Optional[KeepRule],
    *,
    distinct_identity_cmc: bool = False,
) -> RankResult:
    """Sort the distances chunk by chunk of queries and accumulate CMC, mAP and mINP.

    ``keep_rule`` (None: keep everything) removes the protocol's excluded gallery entries;
    with ``distinct_identity_cmc`` the CMC counts distinct gallery identities (SYSU).
    """
    dist, query_pids, gallery_pids = inputs.dist, inputs.query_pids, inputs.gallery_pids
    max_rank = inputs.max_rank
    device = dist.device
    num_q, num_g = dist.shape

    # identities as compact indices 0..P-1 (only needed for the deduplicated CMC)
    gallery_pid_index = None
    num_pids = 0
    if distinct_identity_cmc:
        unique_pids, gallery_pid_index = torch.unique(gallery_pids, return_inverse=True)
        num_pids = int(unique_pids.numel())

    acc = _accumulation_dtype(device)
    # CMC positions are < G, so the curve is constant from rank G on: count up to
    # min(max_rank, G) in a histogram of positions (memory O(G), not O(queries x max_rank))
    # and repeat the last value up to max_rank
    computed = min(max_rank, num_g)
    hits_by_position = torch.zeros(computed + 1, dtype=torch.int64, device=device)
    sum_ap = torch.zeros((), dtype=acc, device=device)
    sum_inp = torch.zeros((), dtype=acc, device=device)
    num_valid = 0
    chunk = max(1, _CHUNK_ELEMENTS // num_g)

    for start in range(0, num_q, chunk):
        rows = slice(start, min(start + chunk, num_q))
        order = torch.argsort(dist[rows], dim=1, stable=True)  # [c, G]
        is_match = gallery_pids[order] == query_pids[rows, None]
        keep = torch.ones_like(is_match) if keep_rule is None else keep_rule(order, rows, is_match)
        positive = is_match & keep
        if not bool(positive.any()):
            continue
        stats = _query_statistics(positive, keep, acc)
        if gallery_pid_index is not None:
            cmc_position = _distinct_identity_rank(gallery_pid_index[order], keep, stats, num_pids)
        else:
            cmc_position = stats.first_hit

        valid = stats.valid
        position = cmc_position[valid].clamp_max(computed)  # beyond the curve -> last bin
        hits_by_position.scatter_add_(0, position, torch.ones_like(position))
        sum_ap += stats.ap[valid].sum()
        sum_inp += stats.inp[valid].sum()
        num_valid += int(valid.sum())

    num_skipped = num_q - num_valid
    if num_valid == 0:
        raise ValueError(
            f"none of the {num_q} queries has a valid positive in the gallery under protocol "
            f"{protocol!r}; check that q_pids and g_pids use the same identity labels"
        )
    if num_skipped:
        logger.info("%d of %d queries have no valid positive and are skipped", num_skipped, num_q)
    hits_at_rank = torch.cumsum(hits_by_position[:computed], dim=0)  # rank k: position < k
    cmc = (hits_at_rank.cpu().to(torch.float64) / num_valid).tolist()
    cmc += cmc[-1:] * (max_rank - computed)
    return RankResult(
        cmc=tuple(cmc),
        mAP=float(sum_ap.cpu()) / num_valid,
        mINP=float(sum_inp.cpu()) / num_valid,
        num_valid_queries=num_valid,
        num_skipped_queries=num_skipped,
        protocol=protocol,
    )


# --------------------------------------------------------------------------- protocols


def _sysu_rank(inputs: _Inputs) -> RankResult:
    query_cams, gallery_cams = inputs.query_cams, inputs.gallery_cams
    assert query_cams is not None and gallery_cams is not None  # set by _prepare

    def keep(order: torch.Tensor, rows: slice, is_match: torch.Tensor) -> torch.Tensor:
        from_cam3 = query_cams[rows, None] == _SYSU_IR_QUERY_CAMERA
        return ~(from_cam3 & (gallery_cams[order] == _SYSU_EXCLUDED_GALLERY_CAMERA))

    return _rank_core(inputs, "sysu", keep, distinct_identity_cmc=True)


def _regdb_rank(inputs: _Inputs) -> RankResult:
    return _rank_core(inputs, "regdb", None)


def _market_rank(inputs: _Inputs) -> RankResult:
    query_cams, gallery_cams = inputs.query_cams, inputs.gallery_cams
    assert query_cams is not None and gallery_cams is not None  # set by _prepare

    def keep(order: torch.Tensor, rows: slice, is_match: torch.Tensor) -> torch.Tensor:
        return ~(is_match & (gallery_cams[order] == query_cams[rows, None]))

    return _rank_core(inputs, "market", keep)


def _llcm_rank(inputs: _Inputs) -> RankResult:
    """LLCM (Zhang and Wang, CVPR 2023; authors' ``eval_llcm``): gallery images with the
    query's identity *and* camera are removed (LLCM's visible and near-infrared images of one
    camera number come from the same dual-mode camera); CMC with repeated identities removed."""
    query_cams, gallery_cams = inputs.query_cams, inputs.gallery_cams
    assert query_cams is not None and gallery_cams is not None  # set by _prepare

    def keep(order: torch.Tensor, rows: slice, is_match: torch.Tensor) -> torch.Tensor:
        return ~(is_match & (gallery_cams[order] == query_cams[rows, None]))

    return _rank_core(inputs, "llcm", keep, distinct_identity_cmc=True)


_PROTOCOL_RANKERS: dict[str, Callable[[_Inputs], RankResult]] = {
    "sysu": _sysu_rank,
    "regdb": _regdb_rank,
    "market": _market_rank,
    "llcm": _llcm_rank,
}


def eval_sysu(
    distmat: ArrayLike,
    q_pids: LabelsLike,
    g_pids: LabelsLike,
    q_camids: LabelsLike,
    g_camids: LabelsLike,
    *,
    max_rank: int = 20,
) -> RankResult:
    """:func:`evaluate_rank` with ``protocol="sysu"`` (SYSU-MM01, official ``eval_sysu``).

    IR queries from camera 3 do not search gallery images from camera 2; the CMC is computed
    on the ranking with repeated gallery identities removed, mAP and mINP on the full
    filtered ranking.
    """
    return _sysu_rank(_prepare(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, "sysu"))


def eval_regdb(
    distmat: ArrayLike,
    q_pids: LabelsLike,
    g_pids: LabelsLike,
    *,
    max_rank: int = 20,
) -> RankResult:
    """:func:`evaluate_rank` with ``protocol="regdb"`` (official ``eval_regdb``): plain CMC,
    mAP and mINP on the full ranking; no camera ids needed."""
    return _regdb_rank(_prepare(distmat, q_pids, g_pids, None, None, max_rank, "regdb"))


def eval_market(
    distmat: ArrayLike,
    q_pids: LabelsLike,
    g_pids: LabelsLike,
    q_camids: LabelsLike,
    g_camids: LabelsLike,
    *,
    max_rank: int = 20,
) -> RankResult:
    """:func:`evaluate_rank` with ``protocol="market"`` (Market-1501): gallery images with
    the query's identity *and* camera are removed; plain CMC."""
    return _market_rank(_prepare(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, "market"))


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: LabelsLike,
    g_pids: LabelsLike,
    q_camids: Optional[LabelsLike] = None,
    g_camids: Optional[LabelsLike] = None,
    *,
    max_rank: int = 20,
    protocol: str = "sysu",
) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix (official ``eval_sysu`` rules).

    Parameters
    ----------
    distmat:
        ``[Q, G]`` distances, smaller = more similar (numpy or torch, any float dtype, any
        device; the ranking is computed where the tensor lives). For inner-product
        similarities pass ``-similarity`` (see :func:`query_gallery_distance`).
    q_pids, g_pids:
        ``[Q]`` and ``[G]`` integer identities (numpy, torch or a sequence; moved to the
        distance matrix's device).
    q_camids, g_camids:
        ``[Q]`` and ``[G]`` integer camera ids. Required for ``"sysu"`` and ``"market"``;
        not used by ``"regdb"`` (its two modalities are two cameras, so nothing is removed).
    max_rank:
        Length of the returned CMC curve (ranks 1..max_rank). Unlike the reference code it
        is not clipped to the gallery size: beyond the last gallery position the curve
        simply stays at its final value.
    protocol:
        ``"sysu"``: for IR queries from camera 3, gallery images from camera 2 are removed;
        the CMC is computed on the ranking with repeated gallery identities removed (first
        occurrence kept), mAP and mINP on the full (filtered) ranking. ``"regdb"``: plain
        CMC/mAP/mINP on the full ranking. ``"market"``: gallery images with the query's
        identity *and* camera are removed, plain CMC. ``"llcm"``: as ``"market"`` but with the
        CMC of ``"sysu"`` (repeated gallery identities removed; the LLCM authors' ``eval_llcm``).

    Ties in ``distmat`` are broken by gallery order (stable sort).
    Each protocol is also available on its own: :func:`eval_sysu`,
    :func:`eval_regdb`, :func:`eval_market`.

    Returns
    -------
    RankResult
        ``cmc`` (tuple of ``max_rank`` floats), ``mAP``, ``mINP`` and the numbers of valid
        and skipped queries. A query with no valid positive is skipped: it is counted in
        ``num_skipped_queries`` and left out of every average.

    Raises
    ------
    ValueError
        Bad shapes or lengths, NaN distances, an unknown protocol, missing camera ids, or no
        query with a valid positive at all.
    TypeError
        Non-array distances or non-integer ids.
    """
    check_choice(protocol, "protocol", PROTOCOLS)
    inputs = _prepare(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol)
    return _PROTOCOL_RANKERS[protocol](inputs)


def query_gallery_distance(
    query_features: ArrayLike,
    gallery_features: ArrayLike,
    *,
    rerank: bool = False,
    k1: int = RERANK_K1,
    k2: int = RERANK_K2,
    lambda_value: float = RERANK_LAMBDA,
) -> ArrayLike:
    """Query x gallery distances from features, ready for :func:`evaluate_rank`.

    Both feature sets are L2-normalised (in float32) and the distance is the negated inner
    product, ``d(q, g) = -<q/|q|, g/|g|>`` in [-1, 1]: the ranking is exactly the official
    inner-product ranking of the test features (the reference evaluates
    ``-(q @ g.T)``). With ``rerank=True`` the k-reciprocal re-ranked distance of Zhong et
    al. is returned instead (``sdcl_toolkit.reranking.k_reciprocal_rerank_features`` on the
    normalised features, parameters ``k1``, ``k2``, ``lambda_value``).

    Parameters
    ----------
    query_features:
        ``[Q, D]`` features (numpy or torch; any float dtype; any device).
    gallery_features:
        ``[G, D]`` features of the same type and device.

    Returns
    -------
    ``[Q, G]`` float32 distances, numpy or torch like the inputs, on the inputs' device.
    """
    kind = array_kind(query_features=query_features, gallery_features=gallery_features)
    query = as_features(query_features, "query_features")
    gallery = as_features(gallery_features, "gallery_features")
    if gallery.shape[1] != query.shape[1]:
        raise ValueError(
            f"gallery_features has width {gallery.shape[1]} but query_features has width "
            f"{query.shape[1]}; both must have the same feature width"
        )
    query = l2_normalize(query, dim=1)  # exact for |x| > 1e19 or < 1e-19 too
    gallery = l2_normalize(gallery, dim=1)
    if check_bool(rerank, "rerank"):
        # parameter checks live with the re-ranking itself
        from .reranking import k_reciprocal_rerank_features

        distance = k_reciprocal_rerank_features(
            query, gallery, k1=k1, k2=k2, lambda_value=lambda_value
        )
        distance = torch.as_tensor(distance).to(device=query.device, dtype=torch.float32)
    else:
        distance = -(query @ gallery.T)
    return kind.to_caller(distance)
