"""Pictures of an evaluation: ranked lists (Pillow only) and CMC curves (matplotlib).

:func:`draw_ranking` puts a query (blue frame) beside its top-``k`` gallery images, each
framed green (same identity) or red (another identity), with the rank, identity, camera and
distance under each; for cross-modality search the query is an infrared image beside
visible ones (or the reverse). The ranking applies the protocol's exclusions (SYSU-MM01:
camera-2 gallery images are skipped for camera-3 queries; LLCM and Market: gallery images
with the query's identity *and* camera), so it shows what the metric scores.

:func:`plot_cmc` draws the mean CMC curve of each setting (needs matplotlib,
``pip install sdcl-toolkit[plot]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data.records import ImageRecord
from ..engine.evaluation import EvaluationResult

__all__ = ["ranked_gallery", "draw_ranking", "plot_cmc", "select_queries", "TILE"]

TILE = (64, 128)
"""(width, height) of each image tile in the ranking pictures."""
_BORDER = 4
_TEXT = 30
_GAP = 12
_COLOURS = {"query": (40, 90, 220), "match": (30, 170, 60), "other": (215, 40, 40)}


def select_queries(num_queries: int, count: int) -> list[int]:
    """``count`` query indices spread evenly over ``range(num_queries)`` (deterministic)."""
    count = min(count, num_queries)
    if count <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, num_queries - 1, count).round()})


def ranked_gallery(
    distances: torch.Tensor,
    query: ImageRecord,
    gallery: Sequence[ImageRecord],
    protocol: str,
    top: int = 10,
) -> list[int]:
    """Indices of the ``top`` nearest gallery images of one query (``distances`` ``[G]``),
    after the protocol's exclusions (ties broken by gallery order, as the metric does)."""
    order = torch.argsort(distances.float().cpu(), stable=True).tolist()
    kept = []
    for index in order:
        g = gallery[index]
        if protocol == "sysu" and query.camid == 3 and g.camid == 2:
            continue
        if protocol in ("llcm", "market") and g.pid == query.pid and g.camid == query.camid:
            continue
        kept.append(index)
        if len(kept) == top:
            break
    return kept


def _tile(record: ImageRecord, colour: tuple[int, int, int]) -> Image.Image:
    width, height = TILE
    with Image.open(record.path) as image:
        picture = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    framed = Image.new("RGB", (width + 2 * _BORDER, height + 2 * _BORDER), colour)
    framed.paste(picture, (_BORDER, _BORDER))
    return framed


def draw_ranking(
    query: ImageRecord,
    gallery: Sequence[ImageRecord],
    ranked: Sequence[int],
    distances: torch.Tensor,
    path: Path,
    title: str = "",
) -> Path:
    """Write one PNG: the query, then ``gallery[ranked]`` in rank order, framed by
    correctness; returns ``path``."""
    width, height = TILE
    cell_w, cell_h = width + 2 * _BORDER, height + 2 * _BORDER
    columns = 1 + len(ranked)
    canvas = Image.new(
        "RGB", (columns * cell_w + _GAP * columns + _GAP, cell_h + 2 * _TEXT + _GAP), "white"
    )
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_GAP, 4), title, fill=(0, 0, 0))
    top = _TEXT
    canvas.paste(_tile(query, _COLOURS["query"]), (_GAP, top))
    draw.text(
        (_GAP, top + cell_h + 2), f"query {query.modality}\nid {query.pid} c{query.camid}", fill=0
    )
    for rank, index in enumerate(ranked, start=1):
        record = gallery[index]
        colour = _COLOURS["match" if record.pid == query.pid else "other"]
        x = _GAP + rank * (cell_w + _GAP) + _GAP
        canvas.paste(_tile(record, colour), (x, top))
        label = f"{rank}: id {record.pid} c{record.camid}\nd {float(distances[index]):.3f}"
        draw.text((x, top + cell_h + 2), label, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def plot_cmc(results: Mapping[str, EvaluationResult], path: Path, title: str = "") -> Path:
    """Mean CMC curve (rank 1 .. 20, percent) of each setting, one line each; needs
    matplotlib. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for result in results.values():
        cmc = 100 * np.asarray(result.mean.cmc)
        ranks = np.arange(1, len(cmc) + 1)
        axes.plot(ranks, cmc, marker="o", markersize=3, label=f"{result.setting}")
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate (%)")
    axes.set_ylim(0, 100)
    axes.set_xlim(1, None)
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(title or "CMC")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
