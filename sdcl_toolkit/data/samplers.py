"""Identity-balanced (PK) sampling over pseudo-labels and fixed-length batch streams.

The official SDCL recipe (yangbincv/SDCL, ``train_cc_vit_sysu.sh``): PK batches of 16
instances per pseudo-identity, other cameras preferred (see ``docs/data_pipeline.md``).

:class:`IdentityBalancedSampler` reproduces the official ``RandomMultipleGallerySampler``
(and its ``NoCam`` variant when no cameras are given): every pseudo-identity contributes one
group of ``num_instances`` images per pass, groups in random order; images labelled ``-1``
(clustering outliers) are never drawn. It is deterministic given ``(seed, epoch, pass)`` and
shards each pass across ``num_replicas`` ranks like ``torch.utils.data.DistributedSampler``.

:class:`IterationBatchSampler` turns a sampler into exactly ``num_iterations`` batches of
``batch_size`` indices, re-iterating the sampler when it runs out, as the official
``IterLoader`` does with its ``DataLoader(drop_last=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Optional, Union

import numpy as np
import torch
from torch.utils.data import Sampler

from .._arrays import as_labels
from .._validation import check_int
from ..recipe import OFFICIAL_SYSU
from .records import ImageRecord

__all__ = ["IdentityBalancedSampler", "IterationBatchSampler"]

logger = logging.getLogger(__name__)

IntArray = Union[np.ndarray, torch.Tensor, Sequence[int]]


def _as_int_array(values: IntArray, name: str) -> np.ndarray:
    """1-D int64 numpy copy of a numpy array, tensor or sequence of integers.

    The toolkit's one label rule (:func:`sdcl_toolkit._arrays.as_labels`): ``TypeError`` for
    a non-numeric dtype, ``ValueError`` for non-integral or out-of-int64-range values or a
    shape other than 1-D.
    """
    if not isinstance(values, (np.ndarray, torch.Tensor)):
        values = np.asarray(values)
    return as_labels(values, name, device=torch.device("cpu")).numpy().copy()


def _check_non_negative_int(value, name: str, *, minimum: int = 0) -> int:
    return check_int(value, name, minimum=minimum)


class IdentityBalancedSampler(Sampler[int]):
    """PK sampler: groups of ``num_instances`` images per pseudo-identity, cameras varied.

    One pass (``__iter__``) draws, for every identity in a random order (official
    ``RandomMultipleGallerySampler``):

    1. an anchor image uniformly among the identity's images;
    2. the candidates: the identity's images from cameras other than the anchor's camera, or,
       when there are none (or ``camids`` is ``None``: the ``NoCam`` variant), its images other
       than the anchor;
    3. ``num_instances - 1`` candidates, without replacement when there are at least
       ``num_instances`` candidates and with replacement otherwise (the official threshold);
       an identity with a single image contributes only its anchor.

    The pass is the concatenation of the groups ``[anchor, picks...]``. All draws are
    vectorised over identities with a numpy generator seeded by ``(seed, epoch, pass_index)``,
    so a pass is a pure function of those three numbers and of the labels.

    Sharding: with ``num_replicas = R`` the last ``K mod R`` groups of the pass are dropped
    (a different random set each pass); rank ``r`` takes groups ``r, r + R, r + 2R, ...``
    (whole groups, so every rank's batches stay identity-balanced) and all ranks truncate to
    the shortest share (shares differ only through single-image identities). The shares are
    disjoint, of equal length, and cut from the same pass; ``R = 1`` keeps the whole pass.

    Parameters
    ----------
    labels:
        ``[N]`` integer (pseudo-)labels; ``-1`` (any negative value) marks an unlabelled image.
    camids:
        ``[N]`` camera ids, or ``None`` to ignore cameras (official ``NoCam`` sampler).
    num_instances:
        Images per identity group (official: 16). Must be >= 1.
    seed:
        Base seed (>= 0). Call :meth:`set_epoch` each epoch for a new order.
    num_replicas, rank:
        Number of distributed processes and this process's rank (default: no sharding).

    Raises
    ------
    ValueError
        On mismatched lengths, ``num_instances < 1``, a rank outside ``[0, num_replicas)``,
        when no image has a label ``>= 0`` or when there are fewer identities than replicas.
    """

    def __init__(
        self,
        labels: IntArray,
        camids: Optional[IntArray] = None,
        num_instances: int = OFFICIAL_SYSU.num_instances,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        labels = _as_int_array(labels, "labels")
        if camids is not None:
            camids = _as_int_array(camids, "camids")
            if camids.shape != labels.shape:
                raise ValueError(
                    f"camids has {camids.shape[0]} entries but labels has {labels.shape[0]}"
                )
        self.num_instances = _check_non_negative_int(num_instances, "num_instances", minimum=1)
        self.seed = _check_non_negative_int(seed, "seed")
        self.num_replicas = _check_non_negative_int(num_replicas, "num_replicas", minimum=1)
        self.rank = _check_non_negative_int(rank, "rank")
        if self.rank >= self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas}), got {self.rank}")
        self.epoch = 0
        self.num_samples_total = int(labels.shape[0])

        labelled = np.flatnonzero(labels >= 0)
        if labelled.size == 0:
            raise ValueError(
                f"no labelled images: all {labels.shape[0]} labels are negative (-1 = outlier)"
            )
        identities, identity_of = np.unique(labels[labelled], return_inverse=True)
        # Members of each identity, grouped by identity, in dataset order within an identity.
        grouping = np.argsort(identity_of, kind="stable")
        self._members = labelled[grouping]  # [M] dataset indices
        self._member_identity = identity_of[grouping]  # [M] identity of each member
        self._counts = np.bincount(self._member_identity, minlength=identities.size)
        self._starts = np.cumsum(self._counts) - self._counts  # [K]
        self._member_cam = None if camids is None else camids[self._members]
        self.identities = identities
        if identities.size < self.num_replicas:
            raise ValueError(
                f"{identities.size} labelled identities cannot be shared among "
                f"num_replicas={self.num_replicas} ranks (need at least one per rank)"
            )
        self.use_cameras = camids is not None

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def from_records(
        cls,
        records: Sequence[ImageRecord],
        labels: Optional[IntArray] = None,
        num_instances: int = OFFICIAL_SYSU.num_instances,
        *,
        use_cameras: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> IdentityBalancedSampler:
        """Build from :class:`ImageRecord` s: cameras from ``record.camid``, labels from
        ``labels`` (pseudo-labels) or else ``record.pid``."""
        if labels is None:
            labels = np.fromiter((r.pid for r in records), dtype=np.int64, count=len(records))
        camids = (
            np.fromiter((r.camid for r in records), dtype=np.int64, count=len(records))
            if use_cameras
            else None
        )
        return cls(labels, camids, num_instances, seed=seed, num_replicas=num_replicas, rank=rank)

    # ------------------------------------------------------------------ epoch control

    @property
    def num_identities(self) -> int:
        """Number of distinct labels ``>= 0``."""
        return int(self.identities.size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose passes :meth:`__iter__` and :meth:`indices` produce."""
        self.epoch = _check_non_negative_int(epoch, "epoch")

    # ------------------------------------------------------------------ sampling

    def _groups(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One pass for all ranks: ``groups [K, num_instances]`` in pass order, and validity."""
        counts, starts = self._counts, self._starts
        num_ids, extra = counts.size, self.num_instances - 1
        member_identity = self._member_identity

        order = rng.permutation(num_ids)
        anchor_offset = (rng.random(num_ids) * counts).astype(np.int64)
        anchor_pos = starts + np.minimum(anchor_offset, counts - 1)
        not_anchor = np.arange(member_identity.size) != anchor_pos[member_identity]
        if self._member_cam is not None:
            other_camera = self._member_cam != self._member_cam[anchor_pos][member_identity]
            has_other = np.bincount(member_identity[other_camera], minlength=num_ids) > 0
            candidate = np.where(has_other[member_identity], other_camera, not_anchor)
        else:
            candidate = not_anchor

        groups = np.empty((num_ids, self.num_instances), dtype=np.int64)
        groups[:, 0] = self._members[anchor_pos]
        valid = np.ones((num_ids, self.num_instances), dtype=bool)
        if extra > 0:
            candidate_pos = np.flatnonzero(candidate)
            # Candidates grouped by identity, in a uniformly random order within each identity.
            shuffle = np.lexsort((rng.random(candidate_pos.size), member_identity[candidate_pos]))
            shuffled = self._members[candidate_pos[shuffle]]
            n_candidates = np.bincount(member_identity[candidate_pos], minlength=num_ids)
            first = np.cumsum(n_candidates) - n_candidates
            with_replacement = n_candidates < self.num_instances
            draws = rng.random((num_ids, extra))
            offsets = np.where(
                with_replacement[:, None],
                np.minimum(
                    (draws * n_candidates[:, None]).astype(np.int64),
                    np.maximum(n_candidates[:, None] - 1, 0),
                ),
                np.arange(extra)[None, :],  # the first `extra` of a random order
            )
            has_candidates = n_candidates > 0
            if shuffled.size:
                positions = np.minimum(first[:, None] + offsets, shuffled.size - 1)
                groups[:, 1:] = shuffled[positions]
            valid[:, 1:] = has_candidates[:, None]
        return groups[order], valid[order]

    def _rng(self, pass_index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, pass_index]))

    def all_rank_indices(self, pass_index: int = 0) -> list[np.ndarray]:
        """Every rank's share of pass ``pass_index`` of the current epoch (list of ``R`` arrays)."""
        pass_index = _check_non_negative_int(pass_index, "pass_index")
        groups, valid = self._groups(self._rng(pass_index))
        replicas = self.num_replicas
        usable = (groups.shape[0] // replicas) * replicas  # drop the tail: shares stay disjoint
        shares = [
            groups[rank:usable:replicas][valid[rank:usable:replicas]] for rank in range(replicas)
        ]
        shortest = min(share.size for share in shares)
        return [share[:shortest] for share in shares]

    def indices(self, pass_index: int = 0) -> np.ndarray:
        """This rank's dataset indices for pass ``pass_index`` of the current epoch (int64 [L])."""
        return self.all_rank_indices(pass_index)[self.rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(0).tolist())

    def __len__(self) -> int:
        return int(self.indices(0).size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(identities={self.num_identities}, "
            f"num_instances={self.num_instances}, use_cameras={self.use_cameras}, "
            f"seed={self.seed}, epoch={self.epoch}, rank={self.rank}/{self.num_replicas})"
        )


class IterationBatchSampler(Sampler[list[int]]):
    """Exactly ``num_iterations`` batches of ``batch_size`` indices from a re-iterated sampler.

    Pass after pass of ``sampler`` is cut into consecutive batches; the incomplete tail of each
    pass is dropped (the official ``DataLoader(drop_last=True)`` inside ``IterLoader``) and the
    next pass starts a fresh batch. A pass shorter than one batch (few pseudo-identities, e.g.
    early in training) is joined with the following passes until a batch is full, where the
    official loop would never produce a batch. With an :class:`IdentityBalancedSampler` pass
    ``k`` of the current epoch is ``sampler.indices(k)``, so the stream is deterministic; any
    other sampler is simply iterated again.

    Use it as ``DataLoader(dataset, batch_sampler=IterationBatchSampler(...))``; ``len`` is
    ``num_iterations``. :meth:`set_epoch` forwards to the sampler.
    """

    def __init__(self, sampler: Sampler, batch_size: int, num_iterations: int) -> None:
        self.sampler = sampler
        self.batch_size = _check_non_negative_int(batch_size, "batch_size", minimum=1)
        self.num_iterations = _check_non_negative_int(num_iterations, "num_iterations", minimum=1)
        per_pass = len(sampler)  # type: ignore[arg-type]
        if per_pass == 0:
            raise ValueError("the sampler yields no index: there is no labelled image to train on")
        if per_pass < self.batch_size:
            logger.info(
                "the sampler yields %d indices per pass, fewer than batch_size=%d: "
                "consecutive passes are joined",
                per_pass,
                self.batch_size,
            )
        num_instances = getattr(sampler, "num_instances", None)
        if num_instances and self.batch_size % num_instances:
            logger.warning(
                "batch_size %d is not a multiple of num_instances %d: identity "
                "groups will straddle batches",
                self.batch_size,
                num_instances,
            )

    @property
    def epoch(self) -> int:
        """The wrapped sampler's epoch (0 when it has none)."""
        return int(getattr(self.sampler, "epoch", 0))

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler (when it has ``set_epoch``)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _pass(self, pass_index: int) -> np.ndarray:
        if hasattr(self.sampler, "indices"):
            return np.asarray(self.sampler.indices(pass_index), dtype=np.int64)
        return np.fromiter(iter(self.sampler), dtype=np.int64)

    def __iter__(self) -> Iterator[list[int]]:
        produced, pass_index = 0, 0
        while produced < self.num_iterations:
            stream = self._pass(pass_index)
            pass_index += 1
            while stream.size < self.batch_size:  # join short passes
                more = self._pass(pass_index)
                pass_index += 1
                if more.size == 0:
                    raise ValueError(f"pass {pass_index - 1} of the sampler yielded no index")
                stream = np.concatenate([stream, more])
            full = min(stream.size // self.batch_size, self.num_iterations - produced)
            for batch in stream[: full * self.batch_size].reshape(full, self.batch_size):
                yield batch.tolist()
            produced += full

    def __len__(self) -> int:
        return self.num_iterations
