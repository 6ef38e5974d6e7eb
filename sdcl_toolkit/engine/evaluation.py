"""Cross-modality evaluation of a model with the SYSU-MM01 and RegDB protocols.

The protocols are those of the official SDCL evaluation (``eval_sysu``, ``eval_regdb``;
see ``docs/evaluation.md``).

Test features are the L2-normalised 1536-d ``concat(deep, shallow)`` averaged with the
flipped image; distances are negated inner products. SYSU-MM01: IR queries (cams 3, 6)
against one random RGB image per (identity, camera) per trial, ``all`` (cams 1, 2, 4, 5)
and ``indoor`` (cams 1, 2) search, trials 0..9 drawn exactly as the official code, the
cam-3/cam-2 rule and identity-deduplicated CMC. RegDB: visible->thermal and
thermal->visible on the test split of one trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..data.records import IR, RGB, ImageRecord
from ..metrics import RankResult, evaluate_rank, mean_rank_results, query_gallery_distance
from .features import extract_test_features

__all__ = ["EvaluationResult", "evaluate_sysu", "evaluate_regdb", "format_results"]


@dataclass
class EvaluationResult:
    """Mean and per-trial :class:`~sdcl_toolkit.RankResult` of one search setting."""

    setting: str
    mean: RankResult
    trials: list[RankResult]

    def as_dict(self) -> dict[str, object]:
        return {
            "setting": self.setting,
            "mean": self.mean.as_dict(),
            "trials": [t.as_dict() for t in self.trials],
        }


def _features_by_path(
    model, records: Sequence[ImageRecord], modality: str, transform, **kwargs
) -> dict[str, torch.Tensor]:
    unique = list(dict.fromkeys(r.path for r in records))
    by_path = {r.path: r for r in records}
    feats = extract_test_features(
        model,
        [by_path[p] for p in unique],
        modality,
        transform,
        flip=True,
        **kwargs,
    )
    return {p: feats[i] for i, p in enumerate(unique)}


def _evaluate_pair(
    query_feats, query, gallery_feats, gallery, protocol, rerank: bool = False
) -> RankResult:
    q = torch.stack([query_feats[r.path] for r in query])
    g = torch.stack([gallery_feats[r.path] for r in gallery])
    distance = query_gallery_distance(q, g, rerank=rerank)
    return evaluate_rank(
        distance,
        [r.pid for r in query],
        [r.pid for r in gallery],
        [r.camid for r in query],
        [r.camid for r in gallery],
        protocol=protocol,
    )


def evaluate_sysu(
    model: torch.nn.Module,
    dataset,
    transform: Callable,
    *,
    device: torch.device,
    modes: Sequence[str] = ("all", "indoor"),
    trials: int = 10,
    batch_size: int = 128,
    amp: bool = False,
    num_workers: Optional[int] = None,
    progress: Optional[Callable] = None,
    rerank: bool = False,
) -> dict[str, EvaluationResult]:
    """SYSU-MM01 all-search / indoor-search, averaged over ``trials`` gallery draws.

    Every distinct query and gallery image is extracted once (galleries of different trials
    overlap), then each trial is scored. ``rerank``: k-reciprocal re-ranking of each
    trial's distances (:func:`sdcl_toolkit.metrics.query_gallery_distance`). Returns
    ``{mode: EvaluationResult}``.
    """
    kwargs = dict(
        device=device, batch_size=batch_size, amp=amp, num_workers=num_workers, progress=progress
    )
    query = dataset.query()
    galleries = {(mode, t): dataset.gallery(mode, t) for mode in modes for t in range(trials)}
    query_feats = _features_by_path(model, query, IR, transform, **kwargs)
    gallery_feats = _features_by_path(
        model, [r for g in galleries.values() for r in g], RGB, transform, **kwargs
    )
    out = {}
    for mode in modes:
        per_trial = [
            _evaluate_pair(query_feats, query, gallery_feats, galleries[(mode, t)], "sysu", rerank)
            for t in range(trials)
        ]
        out[mode] = EvaluationResult(f"{mode}-search", mean_rank_results(per_trial), per_trial)
    return out


def evaluate_regdb(
    model: torch.nn.Module,
    dataset,
    transform: Callable,
    *,
    device: torch.device,
    batch_size: int = 128,
    amp: bool = False,
    num_workers: Optional[int] = None,
    progress: Optional[Callable] = None,
    rerank: bool = False,
) -> dict[str, EvaluationResult]:
    """RegDB visible->thermal and thermal->visible on one trial's test split (``rerank``:
    k-reciprocal re-ranking of the distances)."""
    kwargs = dict(
        device=device, batch_size=batch_size, amp=amp, num_workers=num_workers, progress=progress
    )
    visible, thermal = dataset.test(RGB), dataset.test(IR)
    vis_feats = _features_by_path(model, visible, RGB, transform, **kwargs)
    thr_feats = _features_by_path(model, thermal, IR, transform, **kwargs)
    v2t = _evaluate_pair(vis_feats, visible, thr_feats, thermal, "regdb", rerank)
    t2v = _evaluate_pair(thr_feats, thermal, vis_feats, visible, "regdb", rerank)
    return {
        "visible_to_thermal": EvaluationResult("visible->thermal", v2t, [v2t]),
        "thermal_to_visible": EvaluationResult("thermal->visible", t2v, [t2v]),
    }


def format_results(
    results: dict[str, EvaluationResult], title: str, per_trial: bool = False
) -> str:
    """A readable table: Rank-1/5/10/20, mAP, mINP per setting (percent)."""
    lines = [
        title,
        f"{'setting':<20}{'R-1':>8}{'R-5':>8}{'R-10':>8}{'R-20':>8}{'mAP':>8}{'mINP':>8}",
    ]

    def row(name: str, r: RankResult) -> str:
        ranks = [r.rank(k) if k <= len(r.cmc) else float("nan") for k in (1, 5, 10, 20)]
        return (
            f"{name:<20}"
            + "".join(f"{100 * v:8.2f}" for v in ranks)
            + f"{100 * r.mAP:8.2f}{100 * r.mINP:8.2f}"
        )

    for result in results.values():
        lines.append(row(result.setting, result.mean))
        if per_trial and len(result.trials) > 1:
            for t, trial in enumerate(result.trials):
                lines.append(row(f"  trial {t}", trial))
    return "\n".join(lines)
