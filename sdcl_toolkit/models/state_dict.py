"""Generic state-dict functions for ViT checkpoints; a leaf: it imports no model class.

Pipeline (each step a function; :func:`load_into` composes them, and
:func:`sdcl_toolkit.models.load_pretrained` calls that with the model's filter)::

    read_checkpoint        path -> object (torch.load, weights_only by default)
    unwrap_state_dict      descend into "model" / "state_dict" / "teacher" (in that order)
    normalize_state_dict   strip leading "module." / "backbone."; drop heads
                           ("head", "fc", "pre_logits", "dist*" at the top level)
    filter_fn              model-specific renames and the choice of the target module
                           (e.g. :func:`sdcl_toolkit.models.shallow_deep.checkpoint_filter_fn`)
    match_state_dict       match keys and shapes against the target's state dict, resize
                           pos_embed from the checkpoint grid (explicit, 16x8 by default)
                           to the model grid, build a CheckpointReport; raise
                           CheckpointError when too few backbone tensors match

Keys are normalised exactly once (:func:`adapt_state_dict` = unwrap + normalise + match, for
callers holding a raw checkpoint; :func:`load_into` normalises, filters, then matches).

``pos_embed`` resizing keeps the class token and bilinearly interpolates the patch part
``[1, gh*gw, D] -> [1, gh'*gw', D]`` on its 2-D grid (``align_corners=False``). The old
grid is a parameter (``checkpoint_grid``), never guessed: ``vit_base_ics_cfs_lup.pth`` was
trained at 256x128 with 16 px patches, i.e. 16x8; a 224x224 timm checkpoint is 14x14.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_bool, check_int, check_real
from ..recipe import OFFICIAL_SYSU

# All checkpoint-loading messages go to one logger, under the name it has always had.
LOGGER_NAME = "sdcl_toolkit.models.checkpoint"
logger = logging.getLogger(LOGGER_NAME)

__all__ = [
    "DEFAULT_CHECKPOINT_GRID",
    "CheckpointError",
    "CheckpointReport",
    "read_checkpoint",
    "unwrap_state_dict",
    "normalize_state_dict",
    "resize_pos_embed",
    "match_state_dict",
    "adapt_state_dict",
    "LoadPlan",
    "FilterFn",
    "load_into",
    "log_report",
]

DEFAULT_CHECKPOINT_GRID: tuple[int, int] = OFFICIAL_SYSU.checkpoint_grid
"""Token grid of ``vit_base_ics_cfs_lup.pth`` (256x128 images, 16 px patches)."""

WRAPPER_KEYS = ("model", "state_dict", "teacher")
STRIPPED_PREFIXES = ("module.", "backbone.")
HEAD_NAMES = ("head", "heads", "fc", "pre_logits", "head_dist")
DEFAULT_MIN_LOADED_FRACTION = 0.9

Source = Union[str, "os.PathLike[str]", Mapping[str, Any]]


class CheckpointError(ValueError):
    """The checkpoint does not fit the model (wrong file, wrong architecture or wrong grid)."""


@dataclass(frozen=True)
class CheckpointReport:
    """What :func:`adapt_state_dict` / :func:`load_pretrained` did with each tensor.

    Attributes
    ----------
    loaded: model keys filled from the checkpoint (incl. resized ones).
    missing: model keys the checkpoint lacks (``num_batches_tracked`` not counted).
    unexpected: checkpoint keys the model does not have (after prefix stripping).
    resized: keys whose tensor was resized to fit (``pos_embed``; a flat ``proj.weight``).
    mismatched: ``"key: checkpoint [shape] vs model [shape]"`` for keys left unloaded.
    dropped: classifier / projection-head keys removed before matching.
    copied: weight copies made after loading (ShallowDeepViT: ``patch_embed2``, ``b1``, ``b2``).
    expected: number of model keys counted for :attr:`loaded_fraction`.
    source: where the weights came from (a path or ``"state dict"``).
    """

    loaded: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    resized: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    copied: tuple[str, ...] = ()
    expected: int = 0
    source: str = "state dict"

    @property
    def loaded_fraction(self) -> float:
        """Fraction of the model's counted keys that were loaded."""
        counted = [k for k in self.loaded if not _is_bn_counter(k)]
        return len(counted) / self.expected if self.expected else 0.0

    def summary(self) -> str:
        counted = sum(not _is_bn_counter(k) for k in self.loaded)
        parts = [f"loaded {counted}/{self.expected} model tensors from {self.source}"]
        if self.resized:
            parts.append("resized " + ", ".join(self.resized))
        parts.append(
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} shape mismatches, {len(self.dropped)} head tensors dropped"
        )
        if self.copied:
            parts.append("copied " + "; ".join(self.copied))
        return "; ".join(parts)


def _is_bn_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _preview(keys: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(list(keys)[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


# --------------------------------------------------------------------------- reading


def _numpy_reconstruct() -> Any:
    """numpy's array-unpickling helper (``numpy._core`` in numpy 2, ``numpy.core`` before)."""
    try:
        return importlib.import_module("numpy._core.multiarray")._reconstruct
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")._reconstruct


def _safe_globals() -> list[Any]:
    """The few non-tensor types a toolkit checkpoint holds, allowed under ``weights_only``.

    ``argparse.Namespace`` (DINO-style ``"args"``) and plain numeric numpy arrays: the
    training checkpoints of :mod:`sdcl_toolkit.engine.checkpoint` store numpy's RNG state,
    a ``uint32`` array. These reconstructors build data only; they run no user code.
    """
    dtype_classes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"}
    return [argparse.Namespace, _numpy_reconstruct(), np.ndarray, np.dtype, *dtype_classes]


def read_checkpoint(source: Source, *, weights_only: bool = True) -> Mapping[str, Any]:
    """Return ``source`` itself if it is a mapping, else ``torch.load`` it on the CPU.

    ``weights_only=True`` (default) refuses arbitrary pickled code. Allowed besides tensors
    and containers: ``argparse.Namespace`` (stored by DINO-style trainers under ``"args"``)
    and numeric numpy arrays (the RNG state in the toolkit's own ``last.pth`` training
    checkpoints), so ``--pretrained .../last.pth`` works. Pass ``weights_only=False`` only for
    files you trust.

    Raises
    ------
    TypeError
        ``source`` is neither a path nor a mapping (or ``weights_only`` is not a bool).
    FileNotFoundError
        The path does not exist.
    CheckpointError
        The file is not a torch checkpoint (e.g. a text file), needs globals outside the
        allow-list under ``weights_only=True``, or does not hold a mapping.
    """
    weights_only = check_bool(weights_only, "weights_only")
    if isinstance(source, Mapping):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"checkpoint must be a path or a state dict (mapping), got {type(source).__name__}"
        )
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        if weights_only:
            allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.4
            with allow(_safe_globals()) if allow is not None else nullcontext():
                obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except pickle.UnpicklingError as error:
        if weights_only and "weights only" in str(error).lower():
            raise CheckpointError(
                f"could not read {path} with weights_only=True ({error}). If you trust this "
                "file, load it with weights_only=False."
            ) from error
        raise CheckpointError(f"could not read {path} as a torch checkpoint: {error}") from error
    except Exception as error:  # a non-checkpoint file can fail anywhere in unpickling
        raise CheckpointError(
            f"could not read {path} as a torch checkpoint (is it a .pth/.pt file?): "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, expected a state dict (a mapping of tensors)"
        )
    return obj


def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Descend into ``"model"``, ``"state_dict"`` or ``"teacher"`` down to a mapping of tensors.

    Non-tensor entries of the final mapping are ignored. Raises :class:`CheckpointError`
    when no tensors are found.
    """
    current: Mapping[str, Any] = checkpoint
    for _ in range(8):  # wrappers nest at most a few levels deep
        inner = next(
            (current[k] for k in WRAPPER_KEYS if isinstance(current.get(k), Mapping)), None
        )
        if inner is None:
            break
        current = inner
    tensors = {str(k): v for k, v in current.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            "no tensors found in the checkpoint; its keys are "
            f"[{_preview([str(k) for k in current])}] and none of {WRAPPER_KEYS} wraps a state dict"
        )
    return tensors


def _strip_prefixes(key: str, prefixes: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


def _is_head(key: str) -> bool:
    top = key.split(".", 1)[0]
    return top in HEAD_NAMES or top.startswith("dist")


def normalize_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Strip leading ``module.`` / ``backbone.`` (repeatedly) and drop head tensors.

    Heads are keys whose first component is ``head``, ``heads``, ``fc``, ``pre_logits``,
    ``head_dist`` or starts with ``dist`` (DeiT's ``dist_token``). Returns
    ``(state_dict, dropped_keys)``; raises :class:`CheckpointError` if stripping makes two
    keys collide.
    """
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in state_dict.items():
        name = _strip_prefixes(key, STRIPPED_PREFIXES)
        if _is_head(name):
            dropped.append(name)
            continue
        if name in out:
            raise CheckpointError(
                f"checkpoint keys {origin[name]!r} and {key!r} both become {name!r} after "
                "removing 'module.'/'backbone.' prefixes"
            )
        out[name] = value
        origin[name] = key
    return out, tuple(dropped)


# --------------------------------------------------------------------------- pos_embed


def _check_grid(grid: Any, name: str) -> tuple[int, int]:
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) != 2:
        raise ValueError(f"{name} must be a pair of positive ints (rows, cols), got {grid!r}")
    rows = check_int(grid[0], f"{name}[0]", minimum=1)
    cols = check_int(grid[1], f"{name}[1]", minimum=1)
    return rows, cols


MAX_INFERRED_PREFIX_TOKENS = 5
"""Most prefix tokens :func:`resize_pos_embed` infers on its own: class + distillation
(DeiT) or class + 4 registers. More means the grid is wrong (a 224x224 checkpoint read as
16x8 would leave 69 "prefix" tokens); pass ``num_prefix_tokens`` to go beyond."""


def _grid_mismatch(tokens: int, old_h: int, old_w: int, detail: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint pos_embed has {tokens} tokens, {detail} a {old_h}x{old_w} grid "
        f"({old_h * old_w} patches); pass the checkpoint's grid as checkpoint_grid=(rows, cols), "
        "e.g. (16, 8) for 256x128 or (14, 14) for 224x224 with 16 px patches"
    )


def resize_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] = DEFAULT_CHECKPOINT_GRID,
    *,
    num_prefix_tokens: Optional[int] = None,
) -> torch.Tensor:
    """Resize a position embedding ``[1, P + gh*gw, D]`` to ``[1, 1 + gh'*gw', D]``.

    ``old_grid=(gh, gw)`` is the checkpoint's token grid (rows, cols) and ``new_grid`` the
    model's. ``num_prefix_tokens`` is ``P`` (class + distillation/register tokens); ``None``
    (default) means ``P = T - gh*gw``, accepted for ``1 <= P <= MAX_INFERRED_PREFIX_TOKENS``
    (5); an explicit value must agree with ``T - gh*gw``. The first token (class) is kept;
    other prefix tokens (``P > 1``, e.g. DeiT's distillation token) are dropped; the
    ``gh x gw`` patch part is resampled bilinearly (``align_corners=False``) in float32 and
    returned in the input dtype.

    Raises
    ------
    CheckpointError
        ``T`` is not ``P + gh*gw`` (the message names ``checkpoint_grid``).
    ValueError / TypeError
        A grid that is not a pair of positive ints, a ``pos_embed`` not shaped ``[1, T, D]``.
    """
    new_h, new_w = _check_grid(new_grid, "new_grid")
    old_h, old_w = _check_grid(old_grid, "old_grid")
    if not isinstance(pos_embed, torch.Tensor):
        raise TypeError(f"pos_embed must be a torch.Tensor, got {type(pos_embed).__name__}")
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must have shape [1, T, D], got {tuple(pos_embed.shape)}")
    tokens, dim = pos_embed.shape[1], pos_embed.shape[2]
    prefix = tokens - old_h * old_w
    if num_prefix_tokens is not None:
        num_prefix_tokens = check_int(num_prefix_tokens, "num_prefix_tokens")
        if num_prefix_tokens < 1:
            raise ValueError(
                f"num_prefix_tokens must be >= 1 (class token), got {num_prefix_tokens}"
            )
        if num_prefix_tokens != prefix:
            raise _grid_mismatch(
                tokens, old_h, old_w, f"which is not {num_prefix_tokens} prefix token(s) plus"
            )
    if prefix < 1:
        raise _grid_mismatch(tokens, old_h, old_w, "which cannot be a class token plus")
    if num_prefix_tokens is None and prefix > MAX_INFERRED_PREFIX_TOKENS:
        raise _grid_mismatch(
            tokens,
            old_h,
            old_w,
            f"{prefix} more than",
        )
    if prefix > 1:
        logger.info("pos_embed: keeping the class token, dropping %d prefix token(s)", prefix - 1)
    cls_part = pos_embed[:, :1]
    grid = pos_embed[:, prefix:].float().reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_h, new_w), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(pos_embed.dtype)
    return torch.cat((cls_part, grid), dim=1)


# --------------------------------------------------------------------------- matching


def _check_fraction(min_loaded_fraction: float) -> None:
    check_real(min_loaded_fraction, "min_loaded_fraction", minimum=0.0, maximum=1.0)


def match_state_dict(
    state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    *,
    model_grid: tuple[int, int],
    checkpoint_grid: tuple[int, int] = DEFAULT_CHECKPOINT_GRID,
    min_loaded_fraction: float = DEFAULT_MIN_LOADED_FRACTION,
    source: str = "state dict",
    dropped: tuple[str, ...] = (),
) -> tuple[dict[str, torch.Tensor], CheckpointReport]:
    """Match an already unwrapped and normalised state dict against a model's state dict.

    Like :func:`adapt_state_dict` without its unwrap / normalise step (keys are used as
    given); ``dropped`` (the head keys removed while normalising) goes into the report.
    """
    _check_fraction(min_loaded_fraction)
    checkpoint_grid = _check_grid(checkpoint_grid, "checkpoint_grid")
    model_grid = _check_grid(model_grid, "model_grid")
    adapted: dict[str, torch.Tensor] = {}
    loaded: list[str] = []
    missing: list[str] = []
    resized: list[str] = []
    mismatched: list[str] = []
    for key, target in model_state.items():
        if key not in state:
            if not _is_bn_counter(key):
                missing.append(key)
            continue
        value = state[key]
        if tuple(value.shape) == tuple(target.shape):
            adapted[key] = value
        elif _is_pos_embed(key) and value.dim() == 3 and value.shape[-1] == target.shape[-1]:
            adapted[key] = resize_pos_embed(value, model_grid, checkpoint_grid)
            if tuple(adapted[key].shape) != tuple(target.shape):
                raise CheckpointError(
                    f"{key} resized to {tuple(adapted[key].shape)} but the model has "
                    f"{tuple(target.shape)}; is model_grid={model_grid} right?"
                )
            resized.append(key)
            logger.info(
                "resized %s %s -> %s (grid %dx%d -> %dx%d)",
                key,
                tuple(value.shape),
                tuple(target.shape),
                *checkpoint_grid,
                *model_grid,
            )
        elif key.endswith("proj.weight") and value.dim() == 2 and value.numel() == target.numel():
            adapted[key] = value.reshape(target.shape)  # flat linear patchify of old checkpoints
            resized.append(key)
        else:
            mismatched.append(
                f"{key}: checkpoint {list(value.shape)} vs model {list(target.shape)}"
            )
            continue
        loaded.append(key)
    unexpected = [k for k in state if k not in model_state]
    expected = sum(not _is_bn_counter(k) for k in model_state)
    report = CheckpointReport(
        loaded=tuple(loaded),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        resized=tuple(resized),
        mismatched=tuple(mismatched),
        dropped=dropped,
        expected=expected,
        source=source,
    )
    if report.loaded_fraction < min_loaded_fraction:
        wanted = [k for k in model_state if not _is_bn_counter(k)]
        raise CheckpointError(
            f"only {len([k for k in loaded if not _is_bn_counter(k)])} of {expected} model "
            f"tensors could be loaded from {source} (need {min_loaded_fraction:.0%}). "
            f"The model expects keys such as [{_preview(wanted)}]; the checkpoint holds "
            f"[{_preview(list(state))}]"
            + (f"; shape mismatches: [{_preview(mismatched, 4)}]" if mismatched else "")
            + ". Is this a ViT checkpoint with the same stem (ics/linear) and width?"
        )
    return adapted, report


def adapt_state_dict(
    checkpoint: Mapping[str, Any],
    model_state: Mapping[str, torch.Tensor],
    *,
    model_grid: tuple[int, int],
    checkpoint_grid: tuple[int, int] = DEFAULT_CHECKPOINT_GRID,
    min_loaded_fraction: float = DEFAULT_MIN_LOADED_FRACTION,
    source: str = "state dict",
) -> tuple[dict[str, torch.Tensor], CheckpointReport]:
    """Match a checkpoint against a model's state dict without touching the model.

    Parameters
    ----------
    checkpoint:
        A (possibly wrapped / prefixed) state dict; see :func:`unwrap_state_dict` and
        :func:`normalize_state_dict`.
    model_state:
        The target's ``state_dict()`` (only names and shapes are read).
    model_grid:
        The target's token grid ``(rows, cols)`` (18x9 for 288x144).
    checkpoint_grid:
        The checkpoint's token grid, used only if ``pos_embed`` shapes differ (16x8 default).
    min_loaded_fraction:
        Raise :class:`CheckpointError` if fewer than this fraction of the model's tensors
        (excluding BatchNorm ``num_batches_tracked``) can be loaded.

    Returns
    -------
    ``(state_dict, report)``: the tensors to pass to ``load_state_dict(strict=False)``
    (resized where needed) and a :class:`CheckpointReport`.
    """
    _check_fraction(min_loaded_fraction)
    state, dropped = normalize_state_dict(unwrap_state_dict(checkpoint))
    return match_state_dict(
        state,
        model_state,
        model_grid=model_grid,
        checkpoint_grid=checkpoint_grid,
        min_loaded_fraction=min_loaded_fraction,
        source=source,
        dropped=dropped,
    )


def _is_pos_embed(key: str) -> bool:
    return key == "pos_embed" or key.endswith(".pos_embed")


# --------------------------------------------------------------------------- applying


class LoadPlan(NamedTuple):
    """What a model's checkpoint filter decided: which tensors go into which module.

    ``state_dict``: the (renamed) tensors; ``target``: the module they are matched against
    and loaded into (the model itself or a sub-module); ``after_load``: called after loading,
    returns descriptions of weight copies made (e.g. backbone -> branches), or ``None``.
    """

    state_dict: dict[str, torch.Tensor]
    target: nn.Module
    after_load: Optional[Callable[[], Sequence[str]]] = None


FilterFn = Callable[[dict[str, torch.Tensor], nn.Module], LoadPlan]
"""``filter_fn(state_dict, model) -> LoadPlan`` (timm's ``checkpoint_filter_fn`` shape); it
receives the unwrapped, normalised state dict."""


def log_report(report: CheckpointReport) -> None:
    """Log a :class:`CheckpointReport` (summary at INFO; missing / mismatched at WARNING)."""
    logger.info(report.summary())
    if report.missing:
        missing = report.missing
        logger.warning("checkpoint lacks %d model tensors: %s", len(missing), _preview(missing))
    if report.mismatched:
        logger.warning("not loaded (shape mismatch): %s", _preview(report.mismatched))
    if report.unexpected:
        logger.info("ignored checkpoint tensors: %s", _preview(report.unexpected))


def load_into(
    model: nn.Module,
    checkpoint: Source,
    *,
    model_grid: tuple[int, int],
    filter_fn: Optional[FilterFn] = None,
    checkpoint_grid: tuple[int, int] = DEFAULT_CHECKPOINT_GRID,
    min_loaded_fraction: float = DEFAULT_MIN_LOADED_FRACTION,
    weights_only: bool = True,
) -> CheckpointReport:
    """Read, unwrap and normalise ``checkpoint`` (once), let ``filter_fn`` rename keys and pick
    the target module (default: ``model``, keys as they are), match, ``load_state_dict(
    strict=False)``, run the plan's ``after_load`` and log the report; return it.
    """
    _check_fraction(min_loaded_fraction)
    _check_grid(checkpoint_grid, "checkpoint_grid")
    raw = read_checkpoint(checkpoint, weights_only=weights_only)
    source = "state dict" if isinstance(checkpoint, Mapping) else os.fspath(checkpoint)
    state, dropped = normalize_state_dict(unwrap_state_dict(raw))
    plan = filter_fn(state, model) if filter_fn is not None else LoadPlan(state, model)
    adapted, report = match_state_dict(
        plan.state_dict,
        plan.target.state_dict(),
        model_grid=model_grid,
        checkpoint_grid=checkpoint_grid,
        min_loaded_fraction=min_loaded_fraction,
        source=source,
        dropped=dropped,
    )
    plan.target.load_state_dict(adapted, strict=False)
    if plan.after_load is not None:
        report = replace(report, copied=tuple(plan.after_load()))
    log_report(report)
    return report
