"""sdcl-export: TorchScript and ONNX files whose features match the eager model on the
generated images within 1e-4 (ONNX only where onnx / onnxruntime are installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sdcl_toolkit.data import load_image
from sdcl_toolkit.data.transforms import test_transform
from sdcl_toolkit.tools.export import main
from sdcl_toolkit.tools.loading import load_model

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def generated_images(trained_run, sysu_root):
    """Six preprocessed generated images per modality and the eager model's features."""
    run, _ = trained_run
    model = load_model(run / "last.pth").model
    transform = test_transform(*model.img_size)
    batches = {}
    for modality, cams in (("rgb", ("cam1", "cam2")), ("ir", ("cam3", "cam6"))):
        paths = sorted(p for cam in cams for p in (sysu_root / cam).rglob("*.jpg"))[:6]
        images = torch.stack([transform(load_image(p)) for p in paths])
        batches[modality] = (images, model.extract(images, modality))
    return batches


def test_torchscript_matches_eager_features(trained_run, generated_images, tmp_path, capsys):
    run, _ = trained_run
    out = tmp_path / "exported"
    assert main([str(run / "last.pth"), "--out-dir", str(out), "--format", "torchscript"]) == 0
    assert "ok" in capsys.readouterr().out
    for modality, (images, eager) in generated_images.items():
        scripted = torch.jit.load(str(out / f"sdcl_{modality}.pt"))
        exported = scripted(images)
        assert exported.shape == eager.shape == (6, 256)
        assert (exported - eager).abs().max().item() <= TOLERANCE
        # a different batch size than the traced example (2)
        assert (scripted(images[:3]) - eager[:3]).abs().max().item() <= TOLERANCE
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["input"]["shape"] == ["batch", 3, 64, 32]
    assert set(manifest["files"]) == {"sdcl_rgb.pt", "sdcl_ir.pt"}


def test_onnx_matches_eager_features(trained_run, generated_images, tmp_path):
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    run, _ = trained_run
    out = tmp_path / "exported"
    assert main([str(run / "last.pth"), "--out-dir", str(out), "--format", "onnx"]) == 0
    for modality, (images, eager) in generated_images.items():
        session = onnxruntime.InferenceSession(
            str(out / f"sdcl_{modality}.onnx"), providers=["CPUExecutionProvider"]
        )
        exported = session.run(None, {"images": images.numpy()})[0]
        assert np.abs(exported - eager.numpy()).max() <= TOLERANCE


def test_export_leaves_the_eager_model_in_eval_mode(trained_run, tmp_path):
    """Exporters switch the module to eval and restore the previous mode; the wrapper must
    not let that put the model's batch norms into training mode (a bug the parity check
    caught: ONNX files then differed from eager features by ~0.3)."""
    pytest.importorskip("onnx")
    from sdcl_toolkit.tools.export import FeatureExport, export_onnx

    run, _ = trained_run
    model = load_model(run / "last.pth").model
    wrapper = FeatureExport(model, "ir")
    export_onnx(wrapper, tmp_path / "m.onnx", torch.randn(2, 3, 64, 32))
    assert not wrapper.training and not any(m.training for m in model.modules())


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ckpt.pth", "--out-dir", "x", "--check-batch", "1"])
    assert exit_info.value.code == 2
    assert "--check-batch must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ckpt.pth", "--out-dir", "x", "--format", "tflite"])
    assert "invalid choice" in capsys.readouterr().err


def test_missing_checkpoint_exit_2(tmp_path, capsys):
    assert (
        main([str(tmp_path / "none.pth"), "--out-dir", str(tmp_path), "--format", "torchscript"])
        == 2
    )
    assert "checkpoint file not found" in capsys.readouterr().err
