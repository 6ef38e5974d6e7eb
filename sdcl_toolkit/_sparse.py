"""Small CSR helpers shared by the association code (torch tensors, CPU or CUDA).

A CSR matrix is held as a :class:`Csr` of three tensors (``crow`` int64 ``[R+1]``,
``col`` int64 ``[nnz]``, ``val`` float32 ``[nnz]``) plus its shape, so that the same code
runs on CPU and CUDA without depending on torch's beta sparse kernels. Conversions to
scipy (CPU) and torch sparse CSR (any device) are provided for the public boundary.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Csr", "segment_ids", "expand_segments"]


@dataclass
class Csr:
    """Compressed sparse rows: ``crow [R+1]``, ``col [nnz]``, ``val [nnz]``, ``shape (R, C)``."""

    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return int(self.col.numel())

    @property
    def device(self) -> torch.device:
        return self.col.device

    def row_counts(self) -> torch.Tensor:
        return self.crow[1:] - self.crow[:-1]

    def row_ids(self) -> torch.Tensor:
        """Row index of every stored entry (``[nnz]`` int64)."""
        return segment_ids(self.row_counts(), self.nnz)

    @classmethod
    def from_sorted_coo(
        cls, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]
    ) -> Csr:
        """Build from COO entries already sorted by (row, col) without duplicates."""
        counts = torch.bincount(rows, minlength=shape[0])
        crow = torch.zeros(shape[0] + 1, dtype=torch.int64, device=rows.device)
        torch.cumsum(counts, 0, out=crow[1:])
        return cls(crow, cols.to(torch.int64), vals, shape)

    @classmethod
    def from_scipy(cls, matrix, device: torch.device) -> Csr:
        matrix = matrix.tocsr()
        matrix.sort_indices()
        return cls(
            torch.from_numpy(matrix.indptr.astype(np.int64)).to(device),
            torch.from_numpy(matrix.indices.astype(np.int64)).to(device),
            torch.from_numpy(np.asarray(matrix.data, dtype=np.float32)).to(device),
            tuple(matrix.shape),
        )

    def to_scipy(self):
        import scipy.sparse as sp

        return sp.csr_matrix(
            (self.val.cpu().numpy(), self.col.cpu().numpy(), self.crow.cpu().numpy()),
            shape=self.shape,
        )

    def to_torch(self) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                self.crow,
                self.col,
                self.val,
                self.shape,
                device=self.device,
                check_invariants=False,
            )

    def transpose(self) -> Csr:
        """The transpose, as CSR (i.e. this matrix in CSC order)."""
        if self.device.type == "cpu":
            return Csr.from_scipy(self.to_scipy().T.tocsr(), self.device)
        rows = self.row_ids()
        key = self.col * self.shape[0] + rows
        order = torch.argsort(key)
        return Csr.from_sorted_coo(
            self.col[order], rows[order], self.val[order], (self.shape[1], self.shape[0])
        )


def segment_ids(counts: torch.Tensor, total: int) -> torch.Tensor:
    """``[0]*counts[0] + [1]*counts[1] + ...`` as an int64 tensor of length ``total``.

    Equivalent to ``torch.repeat_interleave(arange(len(counts)), counts)`` but built from a
    scatter and a cumulative sum, which is several times faster on CPU.
    """
    device = counts.device
    if total == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    starts = torch.cumsum(counts, 0) - counts
    nonempty = torch.nonzero(counts > 0).flatten()
    # each non-empty segment's first entry jumps the id by the number of segments since the
    # previous non-empty one (empty segments in between are skipped)
    jumps = torch.diff(nonempty, prepend=nonempty.new_tensor([-1]))
    marks = torch.zeros(total, dtype=torch.int64, device=device)
    marks.index_add_(0, starts[nonempty], jumps)
    ids = torch.cumsum(marks, 0) - 1
    return ids


def expand_segments(
    starts: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Enumerate ``starts[s] + t`` for ``t < counts[s]`` of every segment ``s``.

    Returns ``(segment, position)``, both ``[counts.sum()]`` int64.
    """
    total = int(counts.sum())
    seg = segment_ids(counts, total)
    offsets = torch.cumsum(counts, 0) - counts
    position = torch.arange(total, device=counts.device) - offsets[seg] + starts[seg]
    return seg, position
