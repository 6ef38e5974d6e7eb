"""``sdcl-evaluate``: a trained checkpoint on SYSU-MM01, RegDB or LLCM.

::

    sdcl-evaluate outputs/sdcl_sysu/last.pth --dataset sysu --data-dir /data/SYSU-MM01
    sdcl-evaluate logs/regdb_trial{trial}/model_best.pth.tar --dataset regdb \\
        --data-dir /data/RegDB --regdb-trials 1-10 --json results.json
    sdcl-evaluate last.pth --dataset sysu --data-dir ... --rerank --visualize 8 --out-dir pics

Prints the table of :func:`sdcl_toolkit.engine.format_results` (Rank-1/5/10/20, mAP,
mINP in percent, mean over trials, with ``--per-trial`` every trial). The checkpoint may be
the toolkit's own ``last.pth`` or an official SDCL ``model_best.pth.tar`` (see
:mod:`sdcl_toolkit.tools.loading`). For RegDB, where one model is trained per trial, a
``{trial}`` in the checkpoint path is replaced by each trial number.

Exit codes: 0 success; 1 the checkpoint does not fit / evaluation failed; 2 bad arguments,
a missing file or an unusable dataset tree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from ..data.transforms import test_transform
from ..engine.evaluation import EvaluationResult, format_results
from ..metrics import mean_rank_results
from ._cli import (
    EXIT_OK,
    add_device_arguments,
    check_positive,
    progress,
    resolve_device,
    run_tool,
)
from .loading import LoadedModel, load_model
from .protocols import (
    FeatureCache,
    Setting,
    distance,
    llcm_settings,
    regdb_settings,
    score_setting,
    sysu_settings,
)

__all__ = ["main", "build_parser", "parse_trials"]

_DATASETS = ("sysu", "regdb", "llcm")


def parse_trials(text: str) -> list[int]:
    """``"1-10"``, ``"1,3,5"`` or ``"2"`` -> sorted trial numbers (argparse type)."""
    trials: set[int] = set()
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                low, high = part.split("-", 1)
                trials.update(range(int(low), int(high) + 1))
            else:
                trials.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected trial numbers such as '1', '1,3' or '1-10', got {text!r}"
        ) from None
    if not trials or min(trials) < 1:
        raise argparse.ArgumentTypeError(f"RegDB trials are numbered from 1, got {text!r}")
    return sorted(trials)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoint options shared with ``sdcl-extract`` and ``sdcl-export``."""
    parser.add_argument(
        "--model", default=None, help="backbone config (default: the run's, else vit_base)"
    )
    parser.add_argument("--height", type=int, default=None, help="input height")
    parser.add_argument("--width", type=int, default=None, help="input width")
    parser.add_argument(
        "--checkpoint-grid",
        type=int,
        nargs=2,
        metavar=("ROWS", "COLS"),
        default=None,
        help="token grid of the checkpoint's pos_embed when it was trained at another size",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load with weights_only=False (only for files you trust)",
    )


def load_model_from_args(args: argparse.Namespace, checkpoint: Any, device: Any) -> LoadedModel:
    """:func:`~sdcl_toolkit.tools.loading.load_model` with the options of
    :func:`add_model_arguments`."""
    return load_model(
        checkpoint,
        device=device,
        model=args.model,
        height=args.height,
        width=args.width,
        checkpoint_grid=tuple(args.checkpoint_grid) if args.checkpoint_grid else None,
        trust=args.trust_checkpoint,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdcl-evaluate",
        description="Evaluate a trained SDCL checkpoint with the SYSU-MM01, RegDB or LLCM "
        "protocol.",
    )
    parser.add_argument("checkpoint", help="last.pth of a run, or an official SDCL checkpoint")
    parser.add_argument("--dataset", required=True, choices=_DATASETS)
    parser.add_argument("--data-dir", required=True, help="the raw dataset tree")
    parser.add_argument(
        "--mode",
        nargs="+",
        choices=("all", "indoor"),
        default=["all", "indoor"],
        help="SYSU-MM01 search modes",
    )
    parser.add_argument(
        "--trials", type=int, default=10, help="SYSU-MM01 / LLCM gallery draws (0 .. N-1)"
    )
    parser.add_argument(
        "--regdb-trials",
        type=parse_trials,
        default=[1],
        help="RegDB trials, e.g. 1, 1,3 or 1-10 (default 1); {trial} in the checkpoint path "
        "is replaced by each",
    )
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    parser.add_argument("--per-trial", action="store_true", help="print every trial's row")
    parser.add_argument(
        "--json", default=None, metavar="PATH", help="write the results as JSON ('-': stdout)"
    )
    parser.add_argument(
        "--visualize",
        type=int,
        default=0,
        metavar="N",
        help="write ranked lists of N queries (PNG) and a CMC curve (matplotlib) to --out-dir",
    )
    parser.add_argument("--out-dir", default="sdcl_eval", help="folder of the --visualize pictures")
    add_model_arguments(parser)
    add_device_arguments(parser)
    return parser


def _settings(args: argparse.Namespace, dataset: Any) -> list[Setting]:
    if args.dataset == "sysu":
        return sysu_settings(dataset, args.mode, args.trials)
    if args.dataset == "llcm":
        return llcm_settings(dataset, args.trials)
    return regdb_settings(dataset)


def _open_dataset(args: argparse.Namespace, trial: Optional[int] = None) -> Any:
    root = Path(args.data_dir)
    if args.dataset == "sysu":
        from ..data.sysu_mm01 import SYSUMM01

        return SYSUMM01(root)
    if args.dataset == "llcm":
        from ..data.llcm import LLCM

        return LLCM(root)
    from ..data.regdb import RegDB

    return RegDB(root, trial=trial if trial is not None else 1)


def _log(args: argparse.Namespace, message: str) -> None:
    print(message, file=sys.stderr if args.json == "-" else sys.stdout, flush=True)


def _evaluate_one(args, checkpoint: str, device, trial: Optional[int] = None):
    loaded = load_model_from_args(args, checkpoint, device)
    _log(args, f"loaded {loaded.summary}")
    dataset = _open_dataset(args, trial)
    cache = FeatureCache(
        loaded.model,
        test_transform(*loaded.img_size),
        device=device,
        batch_size=args.batch_size,
        num_workers=args.workers,
        # plain progress lines go to stdout: none when stdout carries the JSON
        progress=progress(not args.no_progress and args.json != "-", "features"),
    )
    settings = _settings(args, dataset)
    results = {s.key: score_setting(cache, s, rerank=args.rerank) for s in settings}
    return results, settings, cache, loaded


def _merge_regdb(per_trial: dict[int, dict[str, EvaluationResult]]) -> dict[str, EvaluationResult]:
    """Mean over RegDB trials of each direction (each trial's result kept in ``trials``)."""
    merged = {}
    for key in ("visible_to_thermal", "thermal_to_visible"):
        trials = [per_trial[t][key].mean for t in sorted(per_trial)]
        name = per_trial[min(per_trial)][key].setting
        merged[key] = EvaluationResult(name, mean_rank_results(trials), trials)
    return merged


def _visualize(args, settings, cache, results) -> list[str]:
    from .visualize import draw_ranking, plot_cmc, ranked_gallery, select_queries

    out = Path(args.out_dir)
    written = []
    setting = settings[0]
    query, gallery = setting.queries[0], setting.galleries[0]
    dist = distance(cache, query, gallery, args.rerank)
    for number, index in enumerate(select_queries(len(query), args.visualize)):
        ranked = ranked_gallery(dist[index], query[index], gallery, setting.protocol)
        path = out / f"ranking_{setting.key}_{number:03d}.png"
        title = f"{setting.name}, {setting.trial_names[0]}, query {index}"
        written.append(str(draw_ranking(query[index], gallery, ranked, dist[index], path, title)))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _log(args, "CMC plot skipped: matplotlib is not installed (pip install sdcl-toolkit[plot])")
    else:
        title = f"{args.dataset}{' (re-ranked)' if args.rerank else ''}"
        written.append(str(plot_cmc(results, out / "cmc.png", title=title)))
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``sdcl-evaluate``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_positive(parser, trials=args.trials, batch_size=args.batch_size)
    if args.visualize < 0:
        parser.error(f"--visualize must be >= 0, got {args.visualize}")
    if args.dataset != "regdb" and "{trial}" in args.checkpoint:
        parser.error("{trial} in the checkpoint path is for RegDB (one model per trial)")
    if args.dataset == "regdb" and args.regdb_trials and max(args.regdb_trials) > 10:
        parser.error(f"RegDB has trials 1..10, got {args.regdb_trials}")

    def body() -> int:
        device = resolve_device(args.device)
        rerank = " with k-reciprocal re-ranking" if args.rerank else ""
        if args.dataset == "regdb":
            per_trial, last = {}, None
            for trial in args.regdb_trials:
                checkpoint = args.checkpoint.replace("{trial}", str(trial))
                per_trial[trial], settings, cache, loaded = _evaluate_one(
                    args, checkpoint, device, trial
                )
                last = (settings, cache)
                if len(args.regdb_trials) > 1:
                    _log(args, format_results(per_trial[trial], f"RegDB trial {trial}{rerank}"))
            results = _merge_regdb(per_trial)
            trials = ", ".join(map(str, args.regdb_trials))
            title = f"RegDB, trials {trials} (mean){rerank}"
            assert last is not None
            settings, cache = last
        else:
            results, settings, cache, loaded = _evaluate_one(args, args.checkpoint, device)
            names = {"sysu": "SYSU-MM01", "llcm": "LLCM"}
            title = f"{names[args.dataset]}, {args.trials} trial(s) (mean){rerank}"
        _log(args, format_results(results, title, per_trial=args.per_trial))
        pictures = _visualize(args, settings, cache, results) if args.visualize else []
        for picture in pictures:
            _log(args, f"wrote {picture}")
        if args.json:
            payload = {
                "checkpoint": args.checkpoint,
                "dataset": args.dataset,
                "data_dir": args.data_dir,
                "rerank": args.rerank,
                "trials": args.regdb_trials if args.dataset == "regdb" else args.trials,
                "results": {k: v.as_dict() for k, v in results.items()},
                "pictures": pictures,
            }
            text = json.dumps(payload, indent=2)
            if args.json == "-":
                print(text)
            else:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(text + "\n", encoding="utf-8")
                _log(args, f"wrote {args.json}")
        return EXIT_OK

    return run_tool(parser, body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
