"""Exact k-nearest-neighbour search by inner product.

``knn(queries, keys, k)`` returns, for every query row, the ``k`` keys with the largest
inner product ``q . k`` (cosine similarity for L2-normalised features), best first.
For L2-normalised features this is the same ranking as the Euclidean search the official
code does with ``faiss.IndexFlatL2`` (``|q - k|^2 = 2 - 2 q.k``).

Backends
--------
``"torch"``
    Chunked ``queries @ keys.T`` + ``topk``: memory bounded by ``chunk_size x num_keys``
    scores, runs wherever the tensors are (CPU or CUDA).
``"faiss"``
    ``faiss.IndexFlatIP`` (CPU, or a GPU index for CUDA tensors when faiss was built with
    GPU support). Requires ``pip install sdcl-toolkit[faiss]``.
``"auto"``
    ``"torch"``. (The torch path is as fast as faiss' flat index on CPU and has
    deterministic tie-breaking; pass ``"faiss"`` explicitly to use faiss.)

Candidate precision (torch backend)
-----------------------------------
With ``candidates="bfloat16"`` the full score matrix is computed in bfloat16 (about 2.5x
faster than float32 on CPUs with AVX512-BF16 and on tensor-core GPUs), the best
``k + margin`` candidates of each row are re-scored exactly in float32, and each row is
*verified*: a rigorous bound on the bfloat16 error proves that no key outside the candidate
set can beat the k-th exact score. Rows that cannot be proven are recomputed exactly in
float32. The result is therefore the exact float32 top-k, only faster.

Ties
----
Equal scores are ordered by key index (lower first), also across the k-th position: among
keys tied with the k-th score, the lowest indices are kept.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal, Optional

import torch

from ._arrays import ArrayLike, array_kind, as_features

__all__ = ["knn", "knn_tensors", "faiss_available", "default_chunk_size"]

Backend = Literal["auto", "torch", "faiss"]
Candidates = Literal["auto", "float32", "bfloat16"]

_SCORE_BUDGET_BYTES = 256 * 2**20  # float32 scores held per chunk
_MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS = 64, 8192  # bounds on default_chunk_size's query rows

# bfloat16 candidate search (see _Bfloat16Candidates)
_AUTO_BF16_MIN_WIDTH = 256  # candidates="auto" uses bfloat16 only from this feature width up
# Extra candidates re-scored exactly beyond the k wanted (at least k more): bounds how far
# bfloat16 rounding may push a true top-k key down the approximate ranking before its row
# can no longer be proven and falls back to an exact float32 search.
_BF16_EXTRA_CANDIDATES = 16
_BF16_UNIT_ROUNDOFF = 2.0**-8  # relative error of one bfloat16 rounding (8-bit significand)
_FP32_UNIT_ROUNDOFF = 2.0**-24  # relative error of one float32 rounding (24-bit significand)
# Slack added to the proven error bound: covers the float32 rounding of the bound's own
# arithmetic (norms, products), so a row is never declared proven by rounding luck.
_BOUND_RELATIVE_SLACK, _BOUND_ABSOLUTE_SLACK = 1e-3, 1e-6


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
) -> tuple[ArrayLike, ArrayLike]:
    """Exact top-``k`` keys of each query by inner product.

    Parameters
    ----------
    queries:
        ``[Q, D]`` float array (numpy or torch, any device; float16/bfloat16 computed in float32).
    keys:
        ``[N, D]`` array of the same kind, or ``None`` to search ``queries`` against themselves.
    k:
        Neighbours per query, ``1 <= k <= N`` (``N - 1`` with ``exclude_self``).
    backend:
        ``"auto"``, ``"torch"`` or ``"faiss"`` (see module docstring).
    exclude_self:
        Drop key ``i`` from the result of query ``i`` (requires ``Q == N``; use it when
        queries and keys are the same set).
    chunk_size:
        Query rows per matmul chunk (torch backend); default keeps ~256 MiB of scores.
    candidates:
        ``"float32"`` (plain exact search), ``"bfloat16"`` (bfloat16 candidate search,
        exactly re-scored and verified, see module docstring) or ``"auto"`` (bfloat16 where
        the device has fast bfloat16 matmul and ``D >= 256``).

    Returns
    -------
    scores, indices:
        ``[Q, k]`` float32 inner products (descending) and int64 key indices, in the
        caller's array type and on the caller's device.
    """
    kind = array_kind(queries=queries, keys=keys)
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
    )
    return kind.to_caller(scores), kind.to_caller(indices)


def _check_k(k: int, num_keys: int, num_queries: int, exclude_self: bool) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if exclude_self and num_queries != num_keys:
        raise ValueError(
            f"exclude_self needs queries and keys of the same length, got {num_queries} and "
            f"{num_keys}"
        )
    available = num_keys - 1 if exclude_self else num_keys
    if not 1 <= k <= available:
        raise ValueError(
            f"k must be in [1, {available}] for {num_keys} keys"
            f"{' excluding self' if exclude_self else ''}, got {k}"
        )


def knn_tensors(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    *,
    backend: Backend = "auto",
    exclude_self: bool = False,
    chunk_size: Optional[int] = None,
    candidates: Candidates = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor-level :func:`knn` for already validated float32 tensors on one device."""
    _check_k(k, keys.shape[0], queries.shape[0], exclude_self)
    if backend not in ("auto", "torch", "faiss"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'faiss', got {backend!r}")
    if candidates not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"candidates must be 'auto', 'float32' or 'bfloat16', got {candidates!r}")
    if backend == "faiss":
        return _knn_faiss(queries, keys, k, exclude_self)
    use_bf16 = candidates == "bfloat16" or (
        candidates == "auto"
        and queries.shape[1] >= _AUTO_BF16_MIN_WIDTH
        and _fast_bfloat16(queries.device)
    )
    return _knn_torch(queries, keys, k, exclude_self, chunk_size, use_bf16)


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


def _mask_self(scores: torch.Tensor, start: int) -> None:
    rows = torch.arange(scores.shape[0], device=scores.device)
    scores[rows, rows + start] = -math.inf


def _knn_torch(queries, keys, k, exclude_self, chunk_size, use_bf16):
    num_q = queries.shape[0]
    chunk = chunk_size or default_chunk_size(keys.shape[0])
    out_v = torch.empty(num_q, k, dtype=torch.float32, device=queries.device)
    out_i = torch.empty(num_q, k, dtype=torch.int64, device=queries.device)
    if use_bf16:
        verifier = _Bfloat16Candidates(keys, k)
    for start in range(0, num_q, chunk):
        stop = min(start + chunk, num_q)
        q = queries[start:stop]
        if use_bf16:
            values, indices = verifier.search(q, start if exclude_self else None)
        else:
            scores = q @ keys.T
            if exclude_self:
                _mask_self(scores, start)
            values, indices = _topk_lowest_index_ties(scores, k)
        out_v[start:stop] = values
        out_i[start:stop] = indices
    return out_v, out_i


class _Bfloat16Candidates:
    """bfloat16 candidate search with exact float32 re-scoring and a proven margin.

    Error bound for one query ``x`` and key ``y`` (``x^``, ``y^`` rounded to bfloat16,
    ``u = 2**-8`` the bfloat16 unit roundoff, ``g = D * 2**-24`` float32 accumulation)::

        |x.y - x^.y^| <= |x^| |y - y^| + |x - x^| |y|          (Cauchy-Schwarz)
        |fl32(x^.y^) - x^.y^| <= g |x^| |y^|                    (float32 accumulation)
        |bf16(s) - s| <= u |s| <= u |x^| |y^| (1 + g)           (bfloat16 output)

    With ``E`` the sum of these maxima over all keys, a key outside the candidate set has
    exact score ``<= c_last + E`` where ``c_last`` is the lowest bfloat16 score kept. A row
    is proven when its k-th exact score exceeds that (strictly, so index tie-breaking is
    unaffected); other rows are recomputed in float32.
    """

    def __init__(self, keys: torch.Tensor, k: int) -> None:
        self.keys = keys
        self.k = k
        self.margin = max(_BF16_EXTRA_CANDIDATES, k)
        self.keys_bf16 = keys.to(torch.bfloat16)
        key_norm = keys.norm(dim=1)
        key_hat_norm = self.keys_bf16.float().norm(dim=1)
        key_err = (keys - self.keys_bf16.float()).norm(dim=1)
        self.max_key_norm = float(key_norm.max())
        self.max_key_hat_norm = float(key_hat_norm.max())
        self.max_key_err = float(key_err.max())
        d = keys.shape[1]
        self.gamma = d * _FP32_UNIT_ROUNDOFF / (1 - d * _FP32_UNIT_ROUNDOFF)

    def search(self, q: torch.Tensor, self_offset: Optional[int]):
        k = self.k
        num_keys = self.keys.shape[0]
        width = min(k + self.margin, num_keys)
        q_bf16 = q.to(torch.bfloat16)
        approx = q_bf16 @ self.keys_bf16.T  # bfloat16 scores, topk without a float copy
        if self_offset is not None:
            _mask_self(approx, self_offset)
        cand_approx, cand = torch.topk(approx, width, dim=1)
        cand_approx = cand_approx.float()
        del approx
        cand, order = torch.sort(cand, dim=1)  # key order, so position ties = index ties
        exact = _rescore(q, self.keys, cand)
        if self_offset is not None:
            rows = torch.arange(q.shape[0], device=q.device) + self_offset
            exact = exact.masked_fill(cand == rows[:, None], -math.inf)
        values, positions = _topk_lowest_index_ties(exact, k)
        indices = torch.gather(cand, 1, positions)

        if width == num_keys:  # every key was re-scored: nothing to prove
            proven = torch.ones(q.shape[0], dtype=torch.bool, device=q.device)
        else:
            q_hat_norm = q_bf16.float().norm(dim=1)
            q_err = (q - q_bf16.float()).norm(dim=1)
            bound = (
                q_hat_norm * self.max_key_err
                + q_err * self.max_key_norm
                + (self.gamma + _BF16_UNIT_ROUNDOFF * (1 + self.gamma))
                * q_hat_norm
                * self.max_key_hat_norm
            )
            bound = bound * (1 + _BOUND_RELATIVE_SLACK) + _BOUND_ABSOLUTE_SLACK
            # every key outside the candidates scores at most cand_approx_min + bound
            proven = values[:, -1] > cand_approx[:, -1] + bound
        if not bool(proven.all()):
            rows = (~proven).nonzero().flatten()
            scores = q[rows] @ self.keys.T
            if self_offset is not None:
                _mask_self_rows(scores, rows + self_offset)
            v, i = _topk_lowest_index_ties(scores, k)
            values[rows] = v
            indices[rows] = i
        return values, indices


_GATHER_BUDGET = 16 * 2**20  # floats of gathered keys per re-scoring block (fallback path)


def _rescore(q: torch.Tensor, keys: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Exact float32 ``q[b] . keys[cand[b, j]]`` for ``[B, W]`` candidates sorted per row.

    A sampled dense-dense product (``torch.sparse.sampled_addmm``) computes only the needed
    inner products without gathering the key rows; where the build lacks it, blocks of rows
    are gathered within a fixed memory budget.
    """
    b, w = cand.shape
    try:
        crow = torch.arange(0, b * w + 1, w, device=q.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            mask = torch.sparse_csr_tensor(
                crow,
                cand.reshape(-1),
                torch.zeros(b * w, device=q.device),
                (b, keys.shape[0]),
                check_invariants=False,
            )
            return torch.sparse.sampled_addmm(mask, q, keys.T, beta=0.0).values().reshape(b, w)
    except (RuntimeError, NotImplementedError):  # builds/devices without SDDMM
        out = torch.empty(b, w, dtype=q.dtype, device=q.device)
        step = max(1, _GATHER_BUDGET // max(1, w * keys.shape[1]))
        for start in range(0, b, step):
            stop = min(start + step, b)
            out[start:stop] = torch.einsum("bd,bkd->bk", q[start:stop], keys[cand[start:stop]])
        return out


def _mask_self_rows(scores: torch.Tensor, columns: torch.Tensor) -> None:
    rows = torch.arange(scores.shape[0], device=scores.device)
    scores[rows, columns] = -math.inf


# ----------------------------------------------------------------------------- faiss backend


def _knn_faiss(queries, keys, k, exclude_self):
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install 'sdcl-toolkit[faiss]' "
            "(or [faiss-gpu])"
        ) from error
    search_k = k + 1 if exclude_self else k
    d = keys.shape[1]
    if queries.is_cuda:
        if not hasattr(faiss, "StandardGpuResources"):
            raise RuntimeError(
                "CUDA tensors with backend='faiss' need a GPU build of faiss "
                "(pip install 'sdcl-toolkit[faiss-gpu]'); use backend='torch' instead"
            )
        import faiss.contrib.torch_utils

        resources = faiss.StandardGpuResources()
        config = faiss.GpuIndexFlatConfig()
        config.device = queries.device.index or 0
        index: faiss.Index = faiss.GpuIndexFlatIP(resources, d, config)
        index.add(keys)
        values, indices = index.search(queries, search_k)
    else:
        index = faiss.IndexFlatIP(d)
        index.add(keys.numpy())
        values, indices = index.search(queries.numpy(), search_k)
        values, indices = torch.from_numpy(values), torch.from_numpy(indices)
    values = values.to(torch.float32)
    indices = indices.to(torch.int64)
    if exclude_self:
        rows = torch.arange(queries.shape[0], device=indices.device)[:, None]
        is_self = indices == rows
        # drop self where found, else the last column
        drop = torch.where(
            is_self.any(1), is_self.float().argmax(1), torch.full_like(rows[:, 0], k)
        )
        keep = torch.ones_like(indices, dtype=torch.bool)
        keep[rows[:, 0], drop] = False
        values = values[keep].reshape(-1, k)
        indices = indices[keep].reshape(-1, k)
    return _order_ties_by_index(values, indices)
