"""``sdcl-export``: the trained shallow-deep model to TorchScript and ONNX.

::

    sdcl-export outputs/sdcl_sysu/last.pth --out-dir exported/
    sdcl-export model_best.pth.tar --format onnx --modality ir

For each modality (the two have different patch embeddings) one self-contained model
``images [B, 3, H, W] float32 -> features [B, 2D] float32`` is written:
``sdcl_<modality>.pt`` (TorchScript, ``torch.jit.load``) and / or ``sdcl_<modality>.onnx``
(opset 17, dynamic batch; ``onnx`` / ``onnxruntime`` from ``pip install sdcl-toolkit[onnx]``
are needed only to check it). The feature is the toolkit's test feature
(:meth:`sdcl_toolkit.ShallowDeepViT.extract`): ``L2norm((g(x) + g(flip(x))) / 2)`` with
``g = [f_deep; f_shallow]``; rank by inner product. Inputs are images resized to ``H x W``
(bicubic), scaled to [0, 1] and normalised with the ImageNet mean / std; ``export.json``
beside the files records the size, mean, std and feature width, so a deployment needs
neither this package nor its transforms.

Every file is checked after writing (``--no-check`` skips it): the exported model is run on
``--check-batch`` random inputs and compared with the eager model; the tool fails (exit
code 1) when the largest absolute difference exceeds ``--tolerance`` (1e-4).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.records import IR, RGB
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..models import ShallowDeepViT
from ._cli import EXIT_FAILURE, EXIT_OK, ToolError, resolve_device, run_tool
from .evaluate import add_model_arguments, load_model_from_args

__all__ = [
    "FeatureExport",
    "export_torchscript",
    "export_onnx",
    "max_difference",
    "main",
    "build_parser",
    "ONNX_OPSET",
]

ONNX_OPSET = 17
"""ONNX opset of the exported graphs."""
_FORMATS = ("torchscript", "onnx")


class FeatureExport(nn.Module):
    """``images [B, 3, H, W] -> L2norm(([deep; shallow](x) + [deep; shallow](flip(x))) / 2)``
    for one fixed modality: the graph that is exported (eval mode only)."""

    def __init__(self, model: ShallowDeepViT, modality: str) -> None:
        super().__init__()
        if modality not in (RGB, IR):
            raise ValueError(f"modality must be {RGB!r} or {IR!r}, got {modality!r}")
        self.model = model
        self.modality = modality
        self.eval()

    def train(self, mode: bool = True) -> FeatureExport:
        """Stays in eval mode: exporters switch modes and restore them afterwards, which
        would otherwise leave the batch norms of the eager model in training mode."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        deep, shallow = self.model(torch.cat((images, images.flip(-1))), self.modality)
        deep = (deep[:n].float() + deep[n:].float()) / 2
        shallow = (shallow[:n].float() + shallow[n:].float()) / 2
        return F.normalize(torch.cat((deep, shallow), dim=1), dim=1)


def _example(model: ShallowDeepViT, batch: int, seed: int = 0) -> torch.Tensor:
    height, width = model.img_size
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    return torch.randn(batch, 3, height, width, generator=generator).to(device)


def export_torchscript(wrapper: FeatureExport, path: Path, example: torch.Tensor) -> Path:
    """Trace ``wrapper`` on ``example`` and save it (``torch.jit.save``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / deprecation chatter: checked below instead
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path))
    return path


def export_onnx(wrapper: FeatureExport, path: Path, example: torch.Tensor) -> Path:
    """Export ``wrapper`` to ONNX (TorchScript-based exporter, opset :data:`ONNX_OPSET`,
    dynamic batch axis, input ``images``, output ``features``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    return path


def max_difference(path: Path, wrapper: FeatureExport, images: torch.Tensor) -> float:
    """Largest ``|exported(images) - eager(images)|`` of a written file (``.pt`` with
    ``torch.jit.load``, ``.onnx`` with onnxruntime on the CPU)."""
    with torch.no_grad():
        eager = wrapper(images).cpu().numpy()
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        exported = session.run(None, {"images": images.cpu().numpy()})[0]
    else:
        loaded = torch.jit.load(str(path), map_location=images.device)
        with torch.no_grad():
            exported = loaded(images).cpu().numpy()
    return float(np.abs(exported - eager).max())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdcl-export",
        description="Export a trained SDCL model to TorchScript and ONNX (one file per "
        "modality), checked against the eager model.",
    )
    parser.add_argument("checkpoint", help="last.pth of a run, or an official SDCL checkpoint")
    parser.add_argument("--out-dir", required=True, help="folder of the exported files")
    parser.add_argument("--format", nargs="+", choices=_FORMATS, default=list(_FORMATS))
    parser.add_argument("--modality", nargs="+", choices=(RGB, IR), default=[RGB, IR])
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    parser.add_argument("--check-batch", type=int, default=4, help="inputs of the parity check")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest difference allowed by the check"
    )
    parser.add_argument("--device", default="cpu", help="device the export runs on")
    add_model_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``sdcl-export``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check_batch < 2:
        parser.error(
            f"--check-batch must be >= 2 (batch size 1 hides batch bugs), got {args.check_batch}"
        )
    if not args.tolerance > 0:
        parser.error(f"--tolerance must be > 0, got {args.tolerance}")

    def body() -> int:
        if "onnx" in args.format:
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise ToolError(
                    "--format onnx needs the onnx package: pip install sdcl-toolkit[onnx]", 2
                ) from None
        device = resolve_device(args.device)
        loaded = load_model_from_args(args, args.checkpoint, device)
        print(f"loaded {loaded.summary}", flush=True)
        out = Path(args.out_dir)
        height, width = loaded.img_size
        manifest = {
            "input": {"shape": ["batch", 3, height, width], "dtype": "float32"},
            "preprocessing": {
                "resize": [height, width],
                "interpolation": "bicubic",
                "scale": "1/255",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
            },
            "output": {"shape": ["batch", loaded.model.test_feature_dim], "dtype": "float32"},
            "similarity": "inner product (features are L2-normalised)",
            "checkpoint": str(args.checkpoint),
            "files": {},
        }
        failed = []
        for modality in args.modality:
            wrapper = FeatureExport(loaded.model, modality)
            example = _example(loaded.model, 2)
            for kind in args.format:
                suffix = ".pt" if kind == "torchscript" else ".onnx"
                path = out / f"sdcl_{modality}{suffix}"
                (export_torchscript if kind == "torchscript" else export_onnx)(
                    wrapper, path, example
                )
                line = f"wrote {path} ({kind}, {modality})"
                entry = {"format": kind, "modality": modality}
                if not args.no_check:
                    check = _example(loaded.model, args.check_batch, seed=1)
                    try:
                        difference = max_difference(path, wrapper, check)
                    except ImportError:
                        line += "; not checked: onnxruntime is not installed"
                    else:
                        entry["max_difference"] = difference
                        verdict = "ok" if difference <= args.tolerance else "FAILED"
                        line += f"; max |exported - eager| = {difference:.2e} {verdict}"
                        if difference > args.tolerance:
                            failed.append(str(path))
                manifest["files"][path.name] = entry  # type: ignore[index]
                print(line, flush=True)
        (out / "export.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out / 'export.json'}")
        if failed:
            raise ToolError(
                f"exported output differs from the eager model by more than {args.tolerance} "
                f"in {', '.join(failed)}",
                EXIT_FAILURE,
            )
        return EXIT_OK

    return run_tool(parser, body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
