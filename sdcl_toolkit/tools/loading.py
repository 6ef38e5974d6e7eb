"""A trained :class:`~sdcl_toolkit.ShallowDeepViT` from a checkpoint file, for the tools.

Three kinds of files are recognised:

* **toolkit training checkpoints** (``output_dir/last.pth``, written by
  :func:`sdcl_toolkit.engine.save_checkpoint`): a dict with ``model`` (the state dict),
  ``config`` (the :class:`~sdcl_toolkit.engine.TrainConfig` as a dict: ``model``,
  ``height``, ``width`` ...), ``epoch``, optimizer, scheduler and RNG states. The model is
  rebuilt from the saved config and loaded strictly (every tensor must fit).
* **official SDCL checkpoints** (``model_best.pth.tar`` / ``checkpoint.pth.tar`` of
  ``yangbincv/SDCL``: ``{"state_dict": <DataParallel state dict>, "epoch", "best_mAP"}`` with
  ``module.base.* / module.bottleneck(s).*`` names), and any other state dict: loaded with
  :func:`sdcl_toolkit.models.load_pretrained` (which strips ``module.``, renames the
  official names and resizes ``pos_embed`` from ``checkpoint_grid``), into the model named by
  ``model`` / ``height`` / ``width`` (default: ``vit_base`` at its 288x144).

Reading uses ``torch.load(weights_only=True)`` with an allow-list of plain numpy types (the
toolkit's checkpoints hold numpy's RNG state, official ones a numpy ``best_mAP`` scalar);
``trust=True`` loads with ``weights_only=False`` (only for files you trust).
"""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from ..models import ShallowDeepViT, build_shallow_deep_vit, get_config, load_pretrained
from ..models.state_dict import CheckpointError
from ..recipe import OFFICIAL_SYSU
from ._cli import EXIT_USAGE, ToolError

__all__ = ["LoadedModel", "load_model", "read_checkpoint_file", "TOOLKIT", "OFFICIAL"]

TOOLKIT = "toolkit training checkpoint"
OFFICIAL = "state dict (official SDCL or other)"

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class LoadedModel:
    """A model ready for evaluation (eval mode, on its device) and where it came from."""

    model: ShallowDeepViT
    kind: str
    """:data:`TOOLKIT` or :data:`OFFICIAL`."""
    summary: str
    """One line: what was loaded (tensors, epoch, size)."""
    epoch: Optional[int] = None

    @property
    def img_size(self) -> tuple[int, int]:
        return self.model.img_size


def _allowed_globals() -> list[Any]:
    """Plain numpy data types: arrays, dtypes and scalars (they build data, run no code)."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFD"}
    return [
        argparse.Namespace,
        multiarray._reconstruct,
        multiarray.scalar,
        np.ndarray,
        np.dtype,
        *dtypes,
    ]


def read_checkpoint_file(path: PathLike, *, trust: bool = False) -> Mapping[str, Any]:
    """``torch.load`` a checkpoint on the CPU (see the module docstring for ``trust``).

    Raises
    ------
    ToolError
        Missing file (exit code 2), not a torch file, or a file that needs code outside the
        allow-list (the message says to pass ``--trust-checkpoint`` if you trust it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ToolError(f"checkpoint file not found: {path}", EXIT_USAGE)
    try:
        if trust:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(_allowed_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):  # not a pickle at all (text, other format)
            raise ToolError(f"{path} is not a readable torch checkpoint") from None
        raise ToolError(
            f"{path} holds objects other than tensors and plain data ({_globals(error)}), so "
            "it was not loaded. If you trust this file, pass --trust-checkpoint"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise ToolError(f"{path} is not a readable torch checkpoint ({error})") from None
    if not isinstance(obj, Mapping):
        raise ToolError(f"{path} holds a {type(obj).__name__}, expected a dict / state dict")
    return obj


def _globals(error: Exception) -> str:
    """The ``Unsupported global: GLOBAL x.y`` part of torch's weights-only error."""
    for line in str(error).splitlines():
        if "Unsupported global" in line:
            return line.strip().split("Unsupported global:")[-1].strip()
    return "unknown objects"


def _is_toolkit_checkpoint(obj: Mapping[str, Any]) -> bool:
    return isinstance(obj.get("model"), Mapping) and isinstance(obj.get("config"), Mapping)


def load_model(
    path: PathLike,
    *,
    device: Union[str, torch.device] = "cpu",
    model: Optional[str] = None,
    height: Optional[int] = None,
    width: Optional[int] = None,
    checkpoint_grid: Optional[tuple[int, int]] = None,
    trust: bool = False,
) -> LoadedModel:
    """Build the model a checkpoint needs and load it (eval mode, on ``device``).

    Parameters
    ----------
    path: the checkpoint file (see the module docstring for the kinds recognised).
    model, height, width: backbone config name and input size. For a toolkit checkpoint they
        default to the saved config's (and must agree with it when given); otherwise to
        ``vit_base`` and its own size (288x144, the official SDCL size).
    checkpoint_grid: token grid of the checkpoint's ``pos_embed`` (rows, cols), for resizing
        a state dict trained at another size; default: the model's own grid (no resizing)
        for full SDCL models, 16x8 (256x128) for a backbone such as the ICS checkpoint.
    trust: load with ``weights_only=False``.

    Raises
    ------
    ToolError
        Unreadable file, or weights that do not fit the model (the message says which
        tensors and suggests ``--model`` / ``--height`` / ``--width`` / ``--checkpoint-grid``).
    """
    obj = read_checkpoint_file(path, trust=trust)
    if _is_toolkit_checkpoint(obj):
        config = dict(obj["config"])
        saved_model = str(config.get("model") or "vit_base")
        base = get_config(saved_model)
        saved_size = (
            config.get("height") or base.img_size[0],
            config.get("width") or base.img_size[1],
        )
        for flag, given, saved in (
            ("--model", model, saved_model),
            ("--height", height, saved_size[0]),
            ("--width", width, saved_size[1]),
        ):
            if given is not None and given != saved:
                raise ToolError(
                    f"{flag} {given} differs from the run's {saved} stored in {path}; a "
                    "trained model is evaluated at the size it was trained at (leave the flag out)",
                    EXIT_USAGE,
                )
        network = build_shallow_deep_vit(saved_model, img_size=tuple(saved_size))
        try:
            network.load_state_dict(obj["model"])
        except RuntimeError as error:
            raise ToolError(f"the weights in {path} do not fit its saved config: {error}") from None
        epoch = int(obj["epoch"]) if obj.get("epoch") is not None else None
        summary = (
            f"{path}: toolkit training checkpoint after epoch {epoch}, model {saved_model} "
            f"{saved_size[0]}x{saved_size[1]}, {len(obj['model'])} tensors loaded strictly"
        )
        return LoadedModel(network.to(device).eval(), TOOLKIT, summary, epoch)

    name = model or "vit_base"
    base = get_config(name)
    size = (height or base.img_size[0], width or base.img_size[1])
    network = build_shallow_deep_vit(name, img_size=size)
    grid = checkpoint_grid
    if grid is None:
        grid = network.config.grid_size if _is_full_model(obj) else OFFICIAL_SYSU.checkpoint_grid
    try:
        report = load_pretrained(network, obj, checkpoint_grid=(int(grid[0]), int(grid[1])))
    except CheckpointError as error:
        raise ToolError(
            f"{path} does not fit model {name} at {size[0]}x{size[1]}: {error}. Pass the "
            "model it was trained with (--model, --height, --width) and, for another input "
            "size, --checkpoint-grid ROWS COLS of its position embedding"
        ) from None
    epoch = obj.get("epoch")
    summary = f"{path}: {report.summary()}; model {name} {size[0]}x{size[1]}" + (
        f", saved at epoch {epoch}" if epoch is not None else ""
    )
    return LoadedModel(
        network.to(device).eval(), OFFICIAL, summary, int(epoch) if epoch is not None else None
    )


_FULL_MODEL_MARKERS = ("bottleneck.", "bottlenecks.", "deep_neck.", "shallow_neck.", "b1.", "b2.")


def _is_full_model(obj: Mapping[str, Any]) -> bool:
    """Whether a state dict holds a whole shallow-deep model (then its grid is the model's)."""
    from ..models.state_dict import normalize_state_dict, unwrap_state_dict

    try:
        keys, _ = normalize_state_dict(unwrap_state_dict(obj))
    except CheckpointError:
        return False
    return any(k.startswith(_FULL_MODEL_MARKERS) for k in keys)
