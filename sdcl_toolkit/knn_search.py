"""Exact k-nearest-neighbour search by inner product.

``knn(queries, keys, k)`` returns, for every query row, the ``k`` keys with the largest
inner product ``q . k`` (cosine similarity for L2-normalised features), best first.
For L2-normalised features this is the same ranking as the Euclidean search the official
code does with ``faiss.IndexFlatL2`` (``|q - k|^2 = 2 - 2 q.k``).

What "exact" means
------------------
The ranking is by the float32 inner product of each (query, key) pair as one fixed
re-scoring kernel computes it (:func:`rescore_pattern`: a sampled dense-dense product,
one dot product per pair, whatever else is computed alongside). It does not depend on the
chunk size, on how a BLAS library blocks its matmul, on the candidate precision or on the
number of ranks the search is sharded over: every path returns the same neighbour sets
and scores. (A plain ``topk`` of ``queries @ keys.T`` does not have this property: the
matmul's rounding depends on the blocking, and neighbours whose scores agree to ~1e-7
swap at the k-th position between two such searches.)

How (torch backend): a fast approximate score matrix (float32 matmul, or bfloat16 with
``candidates="bfloat16"``) picks the best ``k + margin`` candidates of each row; these
are re-scored by the kernel. Rigorous bounds on the approximate and re-scored values'
errors (``|fl32(q.k) - q.k| <= D u32 |q| |k|``; for bfloat16 see
:class:`_ApproximateScores`), summed to ``E``, prove the row: every key outside the
candidates re-scores to at most ``c_last + E`` (``c_last`` = the lowest approximate score
kept), so if the k-th re-scored value exceeds it, no other key can enter the top-k. Rows
that cannot be proven (near-duplicates within ``E`` of the k-th score) re-score every key
whose approximate score is within ``E`` of it.

Backends
--------
``"torch"``
    Chunked ``queries @ keys.T`` + ``topk``: memory bounded by ``chunk_size x num_keys``
    scores, runs wherever the tensors are (CPU or CUDA).
``"faiss"``
    ``faiss.IndexFlatIP`` (CPU, or a GPU index for CUDA tensors when faiss was built with
    GPU support), float32 scores as faiss computes them. Requires
    ``pip install sdcl-toolkit[faiss]``.
``"auto"``
    ``"torch"``.

Candidate precision (torch backend)
-----------------------------------
``candidates="bfloat16"`` computes the approximate score matrix in bfloat16 (about 2.5x
faster than float32 on CPUs with AVX512-BF16 and on tensor-core GPUs); the result is the
same as with ``"float32"`` (same neighbour sets and scores, proven row by row as above).
On near-duplicate features (consecutive video frames) more rows need the fallback, so the
speed-up shrinks; the result does not change.

Ties
----
Equal scores are ordered by key index (lower first), also across the k-th position: among
keys tied with the k-th score, the lowest indices are kept. The faiss backend follows the
same rule on faiss' own float32 scores.

Sharding
--------
``group=`` (a ``torch.distributed`` process group, or ``"world"`` for the default group)
splits the queries into contiguous shares, one per rank; each rank searches its share
against all keys and the results are all-gathered, so every rank returns the full
``[Q, k]`` result, identical to the single-process one (see :mod:`.knn_sharded`). Every
rank must call with the same queries and keys.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, Optional

import torch

from ._arrays import ArrayLike, array_kind, as_features
from ._validation import check_bool, check_choice, check_int

__all__ = ["knn", "knn_tensors", "faiss_available", "default_chunk_size"]

Backend = Literal["auto", "torch", "faiss"]
Candidates = Literal["auto", "float32", "bfloat16"]
BACKENDS = ("auto", "torch", "faiss")
CANDIDATES = ("auto", "float32", "bfloat16")

_SCORE_BUDGET_BYTES = 256 * 2**20  # float32 scores held per chunk
_MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS = 64, 8192  # bounds on default_chunk_size's query rows

# Extra candidates re-scored beyond the k wanted (at least k more): bounds how far
# the approximate scores may push a true top-k key down before its row needs the fallback.
_EXTRA_CANDIDATES = 16
_BF16_UNIT_ROUNDOFF = 2.0**-8  # relative error of one bfloat16 rounding (8-bit significand)
_FP32_UNIT_ROUNDOFF = 2.0**-24  # relative error of one float32 rounding (24-bit significand)
# Slack added to the proven error bound: covers the rounding of the bound's own arithmetic
# so a row is never declared proven by rounding luck.
# The absolute part covers underflow: each float32/bfloat16 operation that underflows (or is
# flushed to zero) errs by at most 2**-126, and one score takes about 2 D operations.
_BOUND_RELATIVE_SLACK, _UNDERFLOW_PER_OPERATION = 1e-3, 2.0**-125
_RESCORE_BUDGET = 16 * 2**20  # floats of gathered key rows per re-scoring block (fallback)


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package can be imported."""
    try:
        import faiss  # noqa: F401 - imported only to test that it is installed
    except ImportError:
        return False
    return True


def default_chunk_size(num_keys: int) -> int:
    """Query rows per chunk so that one chunk's scores stay within ~256 MiB."""
    budget_rows = _SCORE_BUDGET_BYTES // (4 * max(num_keys, 1))
    return int(max(_MIN_CHUNK_ROWS, min(_MAX_CHUNK_ROWS, budget_rows)))


def _fast_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def knn(
    queries: ArrayLike,
    keys: Optional[ArrayLike],
    k: int,
    *,
    backend: Backend = "auto",
    exclude_self: bool = False,
    chunk_size: Optional[int] = None,
    candidates: Candidates = "float32",
    group: Optional[Any] = None,
) -> tuple[ArrayLike, ArrayLike]:
    """Exact top-``k`` keys of each query by inner product.

    Parameters
    ----------
    queries:
        ``[Q, D]`` float array (numpy or torch, any device; float16/bfloat16/float64 are
        computed in float32). Rows of any finite scale are ranked correctly (they are
        rescaled by powers of two inside); scores beyond float32's range come out as
        ``+-inf`` (or 0 when they underflow).
    keys:
        ``[N, D]`` array of the same kind, or ``None`` to search ``queries`` against themselves.
    k:
        Neighbours per query, ``1 <= k <= N`` (``N - 1`` with ``exclude_self``); Python or
        numpy integer.
    backend:
        ``"auto"``, ``"torch"`` or ``"faiss"`` (see module docstring).
    exclude_self:
        Drop key ``i`` from the result of query ``i`` (requires ``Q == N``; use it when
        queries and keys are the same set).
    chunk_size:
        Query rows per matmul chunk (torch backend), ``>= 1``; default keeps ~256 MiB of
        scores. Does not change the result.
    candidates:
        ``"float32"``, ``"bfloat16"`` or ``"auto"`` (bfloat16 where the device has fast
        bfloat16 matmul and ``D >= 256``): the precision of the approximate scores that
        choose the candidates. The result is the same for all three (module docstring).
    group:
        ``None`` (search here), a ``torch.distributed`` process group or ``"world"``: shard
        the queries over the group's ranks (every rank passes the same inputs and gets the
        full result).

    Returns
    -------
    scores, indices:
        ``[Q, k]`` float32 inner products (descending) and int64 key indices, in the
        caller's array type and on the caller's device.

    Raises
    ------
    TypeError
        Non-integer ``k``/``chunk_size`` (bools and floats included), non-bool
        ``exclude_self``, arrays that are not numpy/torch or mix the two.
    ValueError
        ``k`` or ``chunk_size`` out of range, unknown ``backend``/``candidates``, non-2-D,
        empty or non-finite features, widths that differ, ``exclude_self`` with ``Q != N``.
    """
    kind = array_kind(queries=queries, keys=keys)
    k = check_int(k, "k")
    q = as_features(queries, "queries")
    kt = q if keys is None else as_features(keys, "keys")
    if keys is not None and kt.shape[1] != q.shape[1]:
        raise ValueError(
            f"queries have width {q.shape[1]} but keys have width {kt.shape[1]}; they must match"
        )
    q, kt = q.to(kind.device), kt.to(kind.device)
    scores, indices = knn_tensors(
        q,
        kt,
        k,
        backend=backend,
        exclude_self=exclude_self,
        chunk_size=chunk_size,
        candidates=candidates,
        group=group,
    )
    return kind.to_caller(scores), kind.to_caller(indices)


def check_knn_options(
    k: Any,
    num_keys: int,
    num_queries: int,
    *,
    exclude_self: Any = False,
    chunk_size: Any = None,
    backend: Any = "auto",
    candidates: Any = "float32",
    k_name: str = "k",
) -> tuple[int, bool, Optional[int]]:
    """Validate the kNN options; returns ``(k, exclude_self, chunk_size)`` as Python values.

    ``k_name`` is the caller's name for ``k`` (``"k1"`` for :func:`jaccard_distance`), so
    messages name the argument the caller passed.
    """
    exclude_self = check_bool(exclude_self, "exclude_self")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    check_choice(backend, "backend", BACKENDS)
    check_choice(candidates, "candidates", CANDIDATES)
    k = check_int(k, k_name)
    if exclude_self and num_queries != num_keys:
        raise ValueError(
            f"exclude_self needs queries and keys of the same length, got {num_queries} and "
            f"{num_keys}"
        )
    available = num_keys - 1 if exclude_self else num_keys
    if not 1 <= k <= available:
        raise ValueError(
            f"{k_name} must be in [1, {available}] for {num_keys} keys"
            f"{' excluding self' if exclude_self else ''}, got {k}"
        )
    return k, exclude_self, chunk_size


def knn_tensors(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    *,
    backend: Backend = "auto",
    exclude_self: bool = False,
    chunk_size: Optional[int] = None,
    candidates: Candidates = "float32",
    group: Optional[Any] = None,
    k_name: str = "k",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor-level :func:`knn` for already validated float32 tensors on one device."""
    k, exclude_self, chunk_size = check_knn_options(
        k,
        keys.shape[0],
        queries.shape[0],
        exclude_self=exclude_self,
        chunk_size=chunk_size,
        backend=backend,
        candidates=candidates,
        k_name=k_name,
    )
    if group is not None:
        from .knn_sharded import resolve_group, sharded_knn

        resolved = resolve_group(group)
        if resolved is not None:
            return sharded_knn(
                queries,
                keys,
                k,
                resolved,
                backend=backend,
                exclude_self=exclude_self,
                chunk_size=chunk_size,
                candidates=candidates,
            )
    return local_knn(queries, keys, k, backend, exclude_self, chunk_size, candidates)


def local_knn(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    backend: str,
    exclude_self: bool,
    chunk_size: Optional[int],
    candidates: str,
    self_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The search on this process (options already validated).

    ``self_offset``: with ``exclude_self``, query row ``r`` is key ``r + self_offset`` (a
    shard of the queries).
    """
    if backend == "faiss":
        return _knn_faiss(queries, keys, k, exclude_self, self_offset)
    use_bf16 = candidates == "bfloat16" or (
        candidates == "auto"
        and queries.shape[1] >= _AUTO_BF16_MIN_WIDTH
        and _fast_bfloat16(queries.device)
    )
    return _knn_torch(queries, keys, k, exclude_self, chunk_size, use_bf16, self_offset)


_AUTO_BF16_MIN_WIDTH = 256  # candidates="auto" uses bfloat16 only from this feature width up


# ----------------------------------------------------------------------------- torch backend


def _order_ties_by_index(values: torch.Tensor, indices: torch.Tensor):
    """Sort each row by (value descending, index ascending)."""
    indices, perm = torch.sort(indices, dim=1)
    values = torch.gather(values, 1, perm)
    values, perm = torch.sort(values, dim=1, descending=True, stable=True)
    return values, torch.gather(indices, 1, perm)


def _topk_lowest_index_ties(scores: torch.Tensor, k: int):
    """``topk`` of each row with ties (also across the k-th position) resolved by lower index."""
    values, indices = torch.topk(scores, k, dim=1)
    kth = values[:, -1:]
    # rows where keys tied with the k-th score were left out: choose the lowest indices
    ambiguous = (scores == kth).sum(1) > (values == kth).sum(1)
    if bool(ambiguous.any()):
        rows = ambiguous.nonzero().flatten()
        s = scores[rows]
        v = kth[rows]
        greater = s > v
        equal = s == v
        room = k - greater.sum(1, keepdim=True)
        pick = greater | (equal & (equal.cumsum(1) <= room))
        picked = pick.nonzero()[:, 1].reshape(len(rows), k)
        values[rows] = torch.gather(s, 1, picked)
        indices[rows] = picked
    return _order_ties_by_index(values, indices)


def _mask_columns(scores: torch.Tensor, columns: torch.Tensor) -> None:
    rows = torch.arange(scores.shape[0], device=scores.device)
    scores[rows, columns] = -math.inf


def _wide(device: torch.device) -> torch.dtype:
    """float64 for error bounds, except on Apple MPS (no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


_SAFE_EXPONENT = 20  # inputs with max |x| within 2**+-20 are searched without rescaling


def _power_of_two_exponent(x: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """``e`` with ``max |x| = m 2**e``, ``m`` in ``[0.5, 1)`` (0 for all-zero input)."""
    peak = x.abs().amax() if dim is None else x.abs().amax(dim=dim)
    return torch.frexp(peak.to(_wide(x.device))).exponent.to(torch.int64)


def _safe_scale(queries: torch.Tensor, keys: torch.Tensor):
    """Scale query rows and all keys by powers of two (exact, ranking-preserving) so that
    float32 scores neither overflow (``|x| > ~1e19``) nor underflow (``|x| < ~1e-19``).

    Returns ``(queries, keys, exponent)`` with ``true score = scaled score * 2**exponent``
    (``exponent`` ``[Q]``), or ``exponent=None`` when no scaling was needed.
    """
    e_q = _power_of_two_exponent(queries, dim=1)
    e_k = _power_of_two_exponent(keys)
    if bool((e_q.abs() <= _SAFE_EXPONENT).all()) and abs(int(e_k)) <= _SAFE_EXPONENT:
        return queries, keys, None
    queries = torch.ldexp(queries, -e_q[:, None].to(torch.float32))
    keys = torch.ldexp(keys, -e_k.to(torch.float32))
    return queries, keys, e_q + e_k


def _knn_torch(queries, keys, k, exclude_self, chunk_size, use_bf16, self_offset=0):
    queries, keys, exponent = _safe_scale(queries, keys)
    num_q = queries.shape[0]
    chunk = chunk_size or default_chunk_size(keys.shape[0])
    out_v = torch.empty(num_q, k, dtype=torch.float32, device=queries.device)
    out_i = torch.empty(num_q, k, dtype=torch.int64, device=queries.device)
    scorer = _ApproximateScores(keys, k, use_bf16)
    for start in range(0, num_q, chunk):
        stop = min(start + chunk, num_q)
        self_cols = None
        if exclude_self:
            self_cols = torch.arange(start, stop, device=queries.device) + self_offset
        values, indices = scorer.search(queries[start:stop], self_cols)
        if exponent is not None:
            values = torch.ldexp(values.to(_wide(values.device)), exponent[start:stop, None])
        out_v[start:stop] = values.to(torch.float32)
        out_i[start:stop] = indices
    return out_v, out_i


class _ApproximateScores:
    """Approximate scores, re-scoring of candidates, and a proof per row.

    Error bounds of the approximate score of query ``x`` and key ``y`` (``u32 = 2**-24``,
    ``g = D u32 / (1 - D u32)``):

    - float32 (also the re-scoring kernel): ``|fl32(x.y) - x.y| <= g |x| |y|`` (any
      summation order).
    - bfloat16 (``x^``, ``y^`` rounded to bfloat16, ``u = 2**-8``)::

        |x.y - x^.y^| <= |x^| |y - y^| + |x - x^| |y|          (Cauchy-Schwarz)
        |fl32(x^.y^) - x^.y^| <= g |x^| |y^|                    (float32 accumulation)
        |bf16(s) - s| <= u |s| <= u |x^| |y^| (1 + g)           (bfloat16 output)

    With ``E`` the sum of the approximate scores' bound and the re-scoring bound, maxima over
    all keys, a key outside the candidate set re-scores to ``<= c_last + E``. A row is
    proven when its k-th re-scored value exceeds that (strictly, so index tie-breaking is
    unaffected).
    """

    def __init__(self, keys: torch.Tensor, k: int, use_bf16: bool) -> None:
        self.keys = keys
        self.k = k
        self.use_bf16 = use_bf16
        self.width = min(k + max(_EXTRA_CANDIDATES, k), keys.shape[0])
        d = keys.shape[1]
        self.gamma = d * _FP32_UNIT_ROUNDOFF / (1 - d * _FP32_UNIT_ROUNDOFF)
        wide = self.wide = _wide(keys.device)
        self.keys_approx = keys.to(torch.bfloat16) if use_bf16 else keys
        # key norms in float64, block by block (a float64 copy of all keys would triple
        # the memory of a large search)
        self.max_key_norm = self.max_key_hat_norm = self.max_key_err = 0.0
        step = max(1, _RESCORE_BUDGET // max(1, d))
        for start in range(0, keys.shape[0], step):
            block = keys[start : start + step].to(wide)
            self.max_key_norm = max(self.max_key_norm, float(block.norm(dim=1).max()))
            if use_bf16:
                hat = self.keys_approx[start : start + step].to(wide)
                self.max_key_hat_norm = max(self.max_key_hat_norm, float(hat.norm(dim=1).max()))
                self.max_key_err = max(self.max_key_err, float((block - hat).norm(dim=1).max()))

    def bound(self, q: torch.Tensor, q_approx: torch.Tensor) -> torch.Tensor:
        """``[B]`` bound on ``|approx(q.y) - rescore(q.y)|`` over all keys ``y`` (float64;
        float32 on Apple MPS, with a few float32 units of the score scale added)."""
        q64 = q.to(self.wide)
        rescoring = self.gamma * q64.norm(dim=1) * self.max_key_norm
        if not self.use_bf16:
            bound = 2 * rescoring
        else:
            q_hat = q_approx.to(self.wide)
            q_hat_norm = q_hat.norm(dim=1)
            bound = (
                q_hat_norm * self.max_key_err
                + (q64 - q_hat).norm(dim=1) * self.max_key_norm
                + (self.gamma + _BF16_UNIT_ROUNDOFF * (1 + self.gamma))
                * q_hat_norm
                * self.max_key_hat_norm
                + rescoring
            )
        underflow = (2 * q.shape[1] + 2) * _UNDERFLOW_PER_OPERATION
        if self.wide == torch.float32:  # the bound's own arithmetic rounds in float32
            bound = bound + 8 * _FP32_UNIT_ROUNDOFF * q64.norm(dim=1) * self.max_key_norm
        return bound * (1 + _BOUND_RELATIVE_SLACK) + underflow

    def search(self, q: torch.Tensor, self_cols: Optional[torch.Tensor]):
        k, num_keys = self.k, self.keys.shape[0]
        q_approx = q.to(torch.bfloat16) if self.use_bf16 else q
        approx = q_approx @ self.keys_approx.T  # [B, N]
        if self_cols is not None:
            _mask_columns(approx, self_cols)
        cand_approx, cand = torch.topk(approx, self.width, dim=1)
        cand = torch.sort(cand, dim=1).values  # key order, so position ties = index ties
        exact = rescore(q, self.keys, cand)
        if self_cols is not None:
            exact = exact.masked_fill(cand == self_cols[:, None], -math.inf)
        values, positions = _topk_lowest_index_ties(exact, k)
        indices = torch.gather(cand, 1, positions)
        if self.width == num_keys:  # every key was re-scored: nothing to prove
            return values, indices
        bound = self.bound(q, q_approx)
        # every key outside the candidates has exact score <= cand_approx_min + bound
        threshold = values[:, -1] - bound
        proven = cand_approx[:, -1].to(self.wide) < threshold
        if not bool(proven.all()):
            rows = (~proven).nonzero().flatten()
            v, i = self._fallback(q[rows], approx[rows], threshold[rows], self_cols, rows)
            values[rows] = v
            indices[rows] = i
        return values, indices

    def _fallback(self, q, approx, threshold, self_cols, rows):
        """Re-score every key whose approximate score reaches ``threshold`` (a superset of
        the true top-k: a key with exact score >= the k-th has approx >= threshold)."""
        hit = approx.to(self.wide) >= threshold[:, None]
        if self_cols is not None:
            hit[torch.arange(rows.numel(), device=q.device), self_cols[rows]] = False
        counts = hit.sum(1)
        width = max(int(counts.max()), self.k)
        row_of, col = hit.nonzero(as_tuple=True)  # sorted by (row, col)
        ends = torch.cumsum(counts, 0)
        slot = torch.arange(row_of.numel(), device=q.device) - (ends - counts)[row_of]
        cand = torch.full((q.shape[0], width), self.keys.shape[0], device=q.device)
        cand[row_of, slot] = col
        exact = torch.full((q.shape[0], width), -math.inf, device=q.device)
        crow = torch.cat([ends.new_zeros(1), ends])
        exact[row_of, slot] = rescore_pattern(q, self.keys, crow, col)
        values, positions = _topk_lowest_index_ties(exact, self.k)
        return values, torch.gather(cand, 1, positions)


def rescore_pattern(
    q: torch.Tensor, keys: torch.Tensor, crow: torch.Tensor, col: torch.Tensor
) -> torch.Tensor:
    """Float32 ``q[r] . keys[c]`` for the pairs of a CSR pattern (``crow`` ``[B+1]``,
    ``col`` ``[P]``), ``[P]``.

    The re-scoring kernel that defines the ranking: a sampled dense-dense product
    (``torch.sparse.sampled_addmm``) computes each pair as one dot product of the two rows,
    whatever the other pairs of the pattern, so a pair gets the same float32 score in
    every chunk, candidate set and code path. Where the build lacks it, the rows are
    gathered (within a fixed memory budget) and multiplied elementwise and summed.
    """
    b, p = crow.numel() - 1, col.numel()
    if p == 0:
        return torch.zeros(0, dtype=torch.float32, device=q.device)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            mask = torch.sparse_csr_tensor(
                crow,
                col,
                torch.zeros(p, dtype=q.dtype, device=q.device),
                (b, keys.shape[0]),
                check_invariants=False,
            )
            return torch.sparse.sampled_addmm(mask, q, keys.T, beta=0.0).values()
    except (RuntimeError, NotImplementedError):  # builds/devices without SDDMM
        rows = torch.repeat_interleave(torch.arange(b, device=q.device), crow.diff())
        out = torch.empty(p, dtype=q.dtype, device=q.device)
        step = max(1, _RESCORE_BUDGET // max(1, q.shape[1]))
        for start in range(0, p, step):
            stop = min(start + step, p)
            out[start:stop] = (q[rows[start:stop]] * keys[col[start:stop]]).sum(1)
        return out


def rescore(q: torch.Tensor, keys: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """:func:`rescore_pattern` of ``[B, W]`` candidates (sorted per row), ``[B, W]``."""
    b, w = cand.shape
    crow = torch.arange(0, b * w + 1, w, device=q.device)
    return rescore_pattern(q, keys, crow, cand.reshape(-1)).reshape(b, w)


# ----------------------------------------------------------------------------- faiss backend


def _knn_faiss(queries, keys, k, exclude_self, self_offset=0):
    """faiss flat inner-product search; ties ordered by index on faiss' scores.

    faiss returns tied keys in no documented order, so each row is searched ``k + 1 +
    margin`` wide; a row whose last returned score still ties the k-th kept one (ties
    may continue beyond what faiss returned) is searched again over all keys.
    """
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install 'sdcl-toolkit[faiss]' "
            "(or [faiss-gpu])"
        ) from error
    num_keys, d = keys.shape

    def search(index, x, width):
        if x.is_cuda:
            values, indices = index.search(x, width)
        else:
            values, indices = index.search(x.numpy(), width)
            values, indices = torch.from_numpy(values), torch.from_numpy(indices)
        return values.to(torch.float32).to(x.device), indices.to(torch.int64).to(x.device)

    if queries.is_cuda:
        if not hasattr(faiss, "StandardGpuResources"):
            raise RuntimeError(
                "CUDA tensors with backend='faiss' need a GPU build of faiss "
                "(pip install 'sdcl-toolkit[faiss-gpu]'); use backend='torch' instead"
            )
        import faiss.contrib.torch_utils  # lets faiss take torch tensors

        resources = faiss.StandardGpuResources()
        config = faiss.GpuIndexFlatConfig()
        config.device = queries.device.index or 0
        index: Any = faiss.GpuIndexFlatIP(resources, d, config)
        index.add(keys)
    else:
        index = faiss.IndexFlatIP(d)
        index.add(keys.numpy())

    def select(values, indices, rows):
        if exclude_self:
            values = values.masked_fill(indices == (rows + self_offset)[:, None], -math.inf)
        values = values.masked_fill(indices < 0, -math.inf)  # faiss pads with -1
        values, indices = _order_ties_by_index(values, indices)
        return values[:, :k], indices[:, :k], values[:, -1]

    width = min(num_keys, k + 1 + _EXTRA_CANDIDATES)
    all_rows = torch.arange(queries.shape[0], device=queries.device)
    found_v, found_i = search(index, queries, width)
    values, indices, last = select(found_v, found_i, all_rows)
    if width < num_keys:
        unsure = last >= values[:, -1]  # a tie with the k-th may continue past the window
        if bool(unsure.any()):
            rows = unsure.nonzero().flatten()
            found_v, found_i = search(index, queries[rows], num_keys)
            v, i, _ = select(found_v, found_i, rows)
            values[rows], indices[rows] = v, i
    return values, indices
