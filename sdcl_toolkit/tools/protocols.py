"""The evaluation settings of each benchmark as plain record lists, and their scoring.

A :class:`Setting` is one row of a results table: its query and gallery records per trial
and the :func:`sdcl_toolkit.evaluate_rank` protocol. :func:`score_setting` extracts the test
features of every distinct image once (:func:`sdcl_toolkit.engine.extract_test_features`:
``L2norm([deep; shallow])``, flip-averaged), ranks by the negated inner product or, with
``rerank``, by the k-reciprocal distance of Zhong et al. (CVPR 2017;
:func:`sdcl_toolkit.query_gallery_distance`), and averages over trials.

* SYSU-MM01: ``all`` / ``indoor`` search, infrared queries, ``trials`` gallery draws
  (0 .. trials-1, the dataset authors' sampler), protocol ``"sysu"``.
* RegDB: one trial's test split, visible->thermal and thermal->visible, protocol
  ``"regdb"`` (the whole test set of the other modality is the gallery).
* LLCM: ``ir_to_rgb`` and ``rgb_to_ir`` over ``trials`` draws, protocol ``"llcm"``
  (see :mod:`sdcl_toolkit.data.llcm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..data.records import ImageRecord
from ..engine.evaluation import EvaluationResult
from ..engine.features import extract_test_features
from ..metrics import RankResult, evaluate_rank, mean_rank_results, query_gallery_distance

__all__ = ["Setting", "FeatureCache", "sysu_settings", "regdb_settings", "llcm_settings"]


@dataclass
class Setting:
    """One search setting: ``queries[t]`` / ``galleries[t]`` of trial ``t`` and a protocol."""

    name: str
    key: str
    protocol: str
    queries: list[list[ImageRecord]]
    galleries: list[list[ImageRecord]]
    trial_names: list[str] = field(default_factory=list)


def sysu_settings(dataset, modes: Sequence[str], trials: int) -> list[Setting]:
    """SYSU-MM01 search ``modes`` (``"all"``, ``"indoor"``) over trials ``0 .. trials-1``."""
    query = dataset.query()
    return [
        Setting(
            f"{mode}-search",
            mode,
            "sysu",
            [query] * trials,
            [dataset.gallery(mode, t) for t in range(trials)],
            [f"trial {t}" for t in range(trials)],
        )
        for mode in modes
    ]


def regdb_settings(dataset) -> list[Setting]:
    """RegDB visible->thermal and thermal->visible on ``dataset``'s trial."""
    from ..data.records import IR, RGB

    visible, thermal = dataset.test(RGB), dataset.test(IR)
    name = f"trial {dataset.trial}"
    return [
        Setting("visible->thermal", "visible_to_thermal", "regdb", [visible], [thermal], [name]),
        Setting("thermal->visible", "thermal_to_visible", "regdb", [thermal], [visible], [name]),
    ]


def llcm_settings(dataset, trials: int) -> list[Setting]:
    """LLCM ``ir_to_rgb`` and ``rgb_to_ir`` over trials ``0 .. trials-1``."""
    names = {"ir_to_rgb": "infrared->visible", "rgb_to_ir": "visible->infrared"}
    return [
        Setting(
            names[key],
            key,
            "llcm",
            [dataset.query(key, t) for t in range(trials)],
            [dataset.gallery(key, t) for t in range(trials)],
            [f"trial {t}" for t in range(trials)],
        )
        for key in ("ir_to_rgb", "rgb_to_ir")
    ]


class FeatureCache:
    """Test features by image path, each image extracted once per modality.

    ``extract(records)`` returns ``[N, 2D]`` float32 CPU features in record order; images
    not yet seen are extracted in one pass per modality with the model of the cache.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        transform: Callable,
        *,
        device: torch.device,
        batch_size: int = 128,
        num_workers: Optional[int] = None,
        progress: Optional[Callable] = None,
    ) -> None:
        self.model = model
        self.transform = transform
        self.device = device
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.progress = progress
        self.features: dict[tuple[str, str], torch.Tensor] = {}

    def prefetch(self, records: Sequence[ImageRecord]) -> None:
        """Extract every record not in the cache (grouped by modality)."""
        by_modality: dict[str, dict[str, ImageRecord]] = {}
        for r in records:
            if (r.path, r.modality) not in self.features:
                by_modality.setdefault(r.modality, {})[r.path] = r
        for modality, todo in by_modality.items():
            feats = extract_test_features(
                self.model,
                list(todo.values()),
                modality,
                self.transform,
                device=self.device,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                progress=self.progress,
            )
            for i, path in enumerate(todo):
                self.features[(path, modality)] = feats[i]

    def extract(self, records: Sequence[ImageRecord]) -> torch.Tensor:
        self.prefetch(records)
        return torch.stack([self.features[(r.path, r.modality)] for r in records])


def distance(
    cache: FeatureCache, query: Sequence[ImageRecord], gallery: Sequence[ImageRecord], rerank: bool
) -> torch.Tensor:
    """``[Q, G]`` distances: ``-<q, g>`` of the test features, or k-reciprocal re-ranked."""
    distances = query_gallery_distance(cache.extract(query), cache.extract(gallery), rerank=rerank)
    assert isinstance(distances, torch.Tensor)  # torch in, torch out
    return distances


def rank_trial(
    cache: FeatureCache,
    query: Sequence[ImageRecord],
    gallery: Sequence[ImageRecord],
    protocol: str,
    rerank: bool,
) -> RankResult:
    """CMC / mAP / mINP of one trial."""
    return evaluate_rank(
        distance(cache, query, gallery, rerank),
        [r.pid for r in query],
        [r.pid for r in gallery],
        [r.camid for r in query],
        [r.camid for r in gallery],
        protocol=protocol,
    )


def score_setting(cache: FeatureCache, setting: Setting, rerank: bool = False) -> EvaluationResult:
    """Every trial of ``setting`` and their mean."""
    cache.prefetch([r for part in setting.queries + setting.galleries for r in part])
    trials = [
        rank_trial(cache, q, g, setting.protocol, rerank)
        for q, g in zip(setting.queries, setting.galleries)
    ]
    return EvaluationResult(setting.name, mean_rank_results(trials), trials)
