"""Every public component on the matrix device and dtype (``TEST_DEVICE``, ``TEST_DTYPES``;
see ``tests/conftest.py``) against the CPU float32 result.

The reference is computed on the CPU in float32 from the *same* input values (the input
rounded to the matrix dtype, then widened), so what is compared is the toolkit's device and
dtype handling, not the rounding of the input: labels and neighbour indices must be
identical, distances, losses and features equal within ``MATRIX_TOLERANCE`` of the dtype
(``MODEL_TOLERANCE`` for model forwards under autocast). Every result must be on the
input's device.

On this repository's CI the matrix device is the CPU, so these tests run in the reduced
dtypes on every push; ``TEST_DEVICE=cuda pytest -m cuda`` runs them on a GPU (``make
gpu-check`` does). The faiss-gpu and 2-process NCCL DDP tests skip without faiss-gpu or two
GPUs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sdcl_toolkit as sdcl
from sdcl_toolkit.data.batch_augment import BatchAugment
from sdcl_toolkit.data.clustered_features import make_clustered_features, make_two_modality_features
from sdcl_toolkit.data.transforms import ir_train_transform, test_transform

pytestmark = pytest.mark.cuda

REPO_ROOT = Path(__file__).resolve().parents[1]

MATRIX_TOLERANCE = {
    # (rtol, atol) of distances, losses and features computed from inputs of that dtype,
    # against the CPU float32 computation on the same (rounded) input values. The toolkit
    # computes in float32 whatever the input dtype, so the budget is float32 accumulation
    # order (CPU vs CUDA kernels); the model forwards run under autocast in the reduced
    # dtypes, whose outputs carry that dtype's rounding (8 bits of mantissa for bfloat16,
    # 11 for float16) through every layer.
    "float32": (1e-4, 1e-5),
    "bfloat16": (1e-4, 1e-5),
    "float16": (1e-4, 1e-5),
}
MODEL_TOLERANCE = {
    # (rtol, atol) of model outputs under autocast(dtype) against float32 (no autocast)
    "float32": (1e-4, 1e-4),
    "bfloat16": (0.1, 0.1),
    "float16": (2e-2, 2e-2),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rounded(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The CPU float32 values the device sees after casting ``x`` to ``dtype``."""
    return x.to(dtype).float()


def _on(x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype).to(device)


def _assert_on(device: torch.device, *tensors: torch.Tensor) -> None:
    for t in tensors:
        assert t.device.type == device.type, f"result on {t.device}, input on {device}"


def _close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """``actual`` (device, any dtype) against the CPU float32 ``expected``.

    Results the toolkit returns in float32 are held to ``MATRIX_TOLERANCE``. A result in a
    reduced dtype (a gradient with respect to a bfloat16 / float16 input is returned in the
    input's dtype by autograd) is compared with ``expected`` rounded to that dtype, within one
    unit in the last place of the dtype relative to the value and to the largest magnitude of
    the result: autograd sums the gradients of the paths through an input in its dtype, so
    each sum is rounded there, and two float32 values a rounding error apart may round to
    neighbouring bfloat16 values."""
    actual = actual.detach().cpu()
    expected = expected.detach().cpu()
    if actual.dtype in (torch.bfloat16, torch.float16):
        eps = torch.finfo(actual.dtype).eps
        scale = float(expected.abs().max())
        torch.testing.assert_close(
            actual.float(), expected.to(actual.dtype).float(), rtol=eps, atol=eps * scale
        )
        return
    rtol, atol = MATRIX_TOLERANCE[str(dtype).removeprefix("torch.")]
    torch.testing.assert_close(actual.float(), expected.float(), rtol=rtol, atol=atol)


def _sides(device: torch.device, dtype: torch.dtype):
    """``(name, device, cast)`` of the run under test and of the CPU float32 reference."""
    return (
        ("ours", device, lambda t: _on(t, device, dtype)),
        ("ref", torch.device("cpu"), lambda t: _rounded(t, dtype)),
    )


def _features(n: int = 240, ids: int = 12, dim: int = 32, seed: int = 0) -> torch.Tensor:
    return make_clustered_features(n, ids, dim, seed=seed).features.float()


# ----------------------------------------------------------------------------- association core


def test_knn(matrix_device, matrix_dtype):
    x = _features()
    distances, indices = sdcl.knn(_on(x, matrix_device, matrix_dtype), None, 10)
    ref_d, ref_i = sdcl.knn(_rounded(x, matrix_dtype), None, 10)
    _assert_on(matrix_device, distances, indices)
    assert torch.equal(indices.cpu(), ref_i)
    _close(distances, ref_d, matrix_dtype)


def test_jaccard_distance_and_dbscan(matrix_device, matrix_dtype):
    x = _features()
    jaccard = sdcl.jaccard_distance(_on(x, matrix_device, matrix_dtype), 20, 6)
    reference = sdcl.jaccard_distance(_rounded(x, matrix_dtype), 20, 6)
    labels = sdcl.dbscan_pseudo_labels(jaccard, 0.6, 4)
    ref_labels = sdcl.dbscan_pseudo_labels(reference, 0.6, 4)
    _assert_on(matrix_device, labels)
    assert torch.equal(labels.cpu(), ref_labels)
    assert int(ref_labels.max()) >= 5  # the clusters are found, not one blob
    _close(jaccard.to_dense(), reference.to_dense(), matrix_dtype)


def test_reranking_and_query_gallery_distance(matrix_device, matrix_dtype):
    x = _features(100, 8, 32, seed=1)
    q, g = x[:30], x[30:]
    for rerank in (False, True):
        out = sdcl.query_gallery_distance(
            _on(q, matrix_device, matrix_dtype), _on(g, matrix_device, matrix_dtype), rerank=rerank
        )
        ref = sdcl.query_gallery_distance(
            _rounded(q, matrix_dtype), _rounded(g, matrix_dtype), rerank=rerank
        )
        _assert_on(matrix_device, out)
        _close(out, ref, matrix_dtype)
    out = sdcl.k_reciprocal_rerank_features(
        _on(q, matrix_device, matrix_dtype), _on(g, matrix_device, matrix_dtype)
    )
    ref = sdcl.k_reciprocal_rerank_features(_rounded(q, matrix_dtype), _rounded(g, matrix_dtype))
    _assert_on(matrix_device, out)
    _close(out, ref, matrix_dtype)
    qr, gr = _rounded(q, matrix_dtype), _rounded(g, matrix_dtype)
    dists = [torch.cdist(a, b) for a, b in ((qr, gr), (qr, qr), (gr, gr))]
    out = sdcl.k_reciprocal_rerank(*(_on(d, matrix_device, torch.float32) for d in dists))
    ref = sdcl.k_reciprocal_rerank(*dists)
    _assert_on(matrix_device, out)
    _close(out, ref, torch.float32)


def test_cluster_centroids(matrix_device, matrix_dtype):
    x = _features()
    labels = torch.arange(x.shape[0]) % 7
    labels[::11] = -1
    out = sdcl.cluster_centroids(_on(x, matrix_device, matrix_dtype), labels.to(matrix_device))
    ref = sdcl.cluster_centroids(_rounded(x, matrix_dtype), labels)
    _assert_on(matrix_device, out)
    _close(out, ref, matrix_dtype)


def _two_modalities(seed: int = 3):
    f = make_two_modality_features(10, 12, 10, dim=32, seed=seed, num_cameras=4)
    return [t.float() for t in (f.deep_rgb, f.shallow_rgb, f.deep_ir, f.shallow_ir)]


def test_cra(matrix_device, matrix_dtype):
    deep_rgb, shallow_rgb, deep_ir, shallow_ir = _two_modalities()
    ir_labels = sdcl.dbscan_pseudo_labels(sdcl.jaccard_distance(deep_ir, 10, 3), 0.6, 4)
    cra = sdcl.CRA(topk=10, smooth_k=3)
    inputs = (deep_rgb, shallow_rgb, deep_ir, shallow_ir)
    out = cra(*(_on(t, matrix_device, matrix_dtype) for t in inputs), ir_labels.to(matrix_device))
    ref = cra(*(_rounded(t, matrix_dtype) for t in inputs), ir_labels)
    _assert_on(matrix_device, out)
    assert torch.equal(out.cpu(), ref)
    details = cra.associate(
        *(_on(t, matrix_device, matrix_dtype) for t in inputs), ir_labels.to(matrix_device)
    )
    ref_details = cra.associate(*(_rounded(t, matrix_dtype) for t in inputs), ir_labels)
    _assert_on(matrix_device, details.labels, details.ranking_labels)
    assert torch.equal(details.ranking_labels.cpu(), ref_details.ranking_labels)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", ["cra", "centroid", "hungarian", "ot"])
def test_association_methods(matrix_device, matrix_dtype, name, bidirectional):
    """Every association method (and its bidirectional check) by name: the labels on the
    device equal the CPU float32 labels; the scores follow the device."""
    from sdcl_toolkit.association import make_association

    features = _two_modalities(seed=5)
    rgb_labels = sdcl.dbscan_pseudo_labels(sdcl.jaccard_distance(features[0], 10, 3), 0.6, 4)
    ir_labels = sdcl.dbscan_pseudo_labels(sdcl.jaccard_distance(features[2], 10, 3), 0.6, 4)
    options = {"topk": 10, "smooth_k": 3} if name == "cra" else {}
    method = make_association(name, bidirectional=bidirectional, **options)
    out = method.associate(
        *(_on(t, matrix_device, matrix_dtype) for t in features),
        ir_labels.to(matrix_device),
        rgb_labels.to(matrix_device),
    )
    ref = method.associate(*(_rounded(t, matrix_dtype) for t in features), ir_labels, rgb_labels)
    _assert_on(matrix_device, out.labels)
    assert torch.equal(out.labels.cpu(), ref.labels)
    assert int((ref.labels >= 0).sum()) > 0  # something was associated


def test_label_quality_of_device_labels(matrix_device):
    from sdcl_toolkit.label_quality import pseudo_label_quality

    g = _gen(6)
    ids = {m: torch.randint(0, 8, (60,), generator=g) for m in ("rgb", "ir")}
    labels = {m: torch.where(torch.rand(60, generator=g) < 0.8, ids[m], -1) for m in ids}
    associated = torch.randint(-1, 8, (60,), generator=g)
    args = (labels["rgb"], ids["rgb"], labels["ir"], ids["ir"], associated)
    on_device = pseudo_label_quality(*(t.to(matrix_device) for t in args))
    assert on_device == pseudo_label_quality(*args)
    assert 0 < on_device["association"]["coverage"] < 1


@pytest.mark.parametrize("stage", [1, 2])
def test_pseudo_labeler(matrix_device, matrix_dtype, stage):
    features = _two_modalities(seed=4)
    labeler = sdcl.PseudoLabeler(eps=0.6, k1=10, k2=3, stage2_rgb_k1=8, cra=sdcl.CRA(10, 3))
    out = labeler(*(_on(t, matrix_device, matrix_dtype) for t in features), stage=stage)
    ref = labeler(*(_rounded(t, matrix_dtype) for t in features), stage=stage)
    for modality in ("rgb", "ir"):
        ours, theirs = getattr(out, modality).labels, getattr(ref, modality).labels
        _assert_on(matrix_device, ours)
        assert torch.equal(ours.cpu(), theirs)


# ----------------------------------------------------------------------------- memories, losses


def _labelled_batch(seed: int, n: int = 24, clusters: int = 6, dim: int = 16):
    g = _gen(seed)
    centres = F.normalize(torch.randn(clusters, dim, generator=g), dim=1)
    labels = torch.arange(n) % clusters
    feats = centres[labels] + 0.2 * torch.randn(n, dim, generator=g)
    return feats, labels


def test_cluster_and_instance_memories(matrix_device, matrix_dtype):
    bank, labels = _labelled_batch(0, n=60)
    batch, batch_labels = _labelled_batch(1)
    indices = torch.arange(batch.shape[0]) * 2
    results = {}
    for name, where, cast in _sides(matrix_device, matrix_dtype):
        cluster = sdcl.ClusterMemory.from_features(cast(bank), labels.to(where)).to(where)
        features = cast(batch).requires_grad_(True)
        loss = cluster(features, batch_labels.to(where))
        (grad,) = torch.autograd.grad(loss, features)
        cluster.update(cast(batch).detach(), batch_labels.to(where))
        instance = sdcl.InstanceMemory.from_features(cast(bank)).to(where)
        instance.update(cast(batch), indices.to(where))
        results[name] = (loss, grad, cluster.centroids, instance.bank)
    _assert_on(matrix_device, *results["ours"])
    for ours, ref in zip(results["ours"], results["ref"]):
        _close(ours, ref, matrix_dtype)


def test_losses(matrix_device, matrix_dtype):
    bank, labels = _labelled_batch(2, n=60)
    deep, batch_labels = _labelled_batch(3)
    shallow = deep + 0.05 * torch.randn(deep.shape, generator=_gen(4))
    indices = torch.arange(deep.shape[0]) * 2
    results = {}
    for name, where, cast in _sides(matrix_device, matrix_dtype):
        memories = [sdcl.ClusterMemory.from_features(cast(bank), labels).to(where) for _ in "ds"]
        banks = [sdcl.InstanceMemory.from_features(cast(bank)).to(where) for _ in "ds"]
        d, s = cast(deep).requires_grad_(True), cast(shallow).requires_grad_(True)
        contrast = sdcl.ShallowDeepContrast(lambda_shallow=1.0)(
            d, s, batch_labels.to(where), *memories
        )
        neighbours = sdcl.CNL(threshold=0.5, temp=0.05)(d, s, indices.to(where), *banks)
        total = contrast.total + neighbours.deep + neighbours.shallow
        grads = torch.autograd.grad(total, (d, s))
        results[name] = (contrast.total, neighbours.deep, neighbours.shallow, *grads)
    _assert_on(matrix_device, *results["ours"])
    for ours, ref in zip(results["ours"], results["ref"]):
        _close(ours, ref, matrix_dtype)


def test_sdcl_objective(matrix_device, matrix_dtype):
    features = _two_modalities(seed=5)
    labeler = sdcl.PseudoLabeler(eps=0.6, k1=10, k2=3, stage2_rgb_k1=8, cra=sdcl.CRA(10, 3))
    recipe = sdcl.SDCLRecipe.sysu().replace(cmlabel=1)
    results = {}
    for name, where, cast in _sides(matrix_device, matrix_dtype):
        feats = [cast(t) for t in features]
        labels = labeler(*feats, stage=2)
        per_modality = {"rgb": (feats[0], feats[1]), "ir": (feats[2], feats[3])}
        objective = sdcl.SDCLObjective.from_pseudo_labels(
            labels, per_modality, recipe, epoch=12, device=where
        )
        rgb_rows = torch.nonzero(labels.rgb.labels.cpu() >= 0).squeeze(1)[:8]
        ir_rows = torch.nonzero(labels.ir.labels.cpu() >= 0).squeeze(1)[:8]
        deep = torch.cat([feats[0][rgb_rows], feats[0][rgb_rows], feats[2][ir_rows]])
        shallow = torch.cat([feats[1][rgb_rows], feats[1][rgb_rows], feats[3][ir_rows]])
        train_labels = torch.cat(
            [labels.rgb.labels.cpu()[rgb_rows]] * 2 + [labels.ir.labels.cpu()[ir_rows]]
        ).to(where)
        indices = torch.cat([rgb_rows, rgb_rows, ir_rows]).to(where)
        deep, shallow = deep.detach().requires_grad_(True), shallow.detach().requires_grad_(True)
        loss = objective.loss(deep, shallow, train_labels, indices, 16)
        grads = torch.autograd.grad(loss.total, (deep, shallow))
        objective.update(deep.detach(), shallow.detach(), train_labels, indices, 16)
        memories = objective.memories
        results[name] = (
            loss.total,
            *grads,
            memories.cluster_deep["ir"].centroids,
            memories.instance_shallow["rgb"].bank,
        )
    _assert_on(matrix_device, *results["ours"])
    for ours, ref in zip(results["ours"], results["ref"]):
        _close(ours, ref, matrix_dtype)


# ----------------------------------------------------------------------------- evaluation


def test_evaluate_rank(matrix_device, matrix_dtype):
    x = _features(120, 10, 16, seed=6)
    pids = torch.arange(120) % 10
    cams = torch.where(torch.arange(120) < 40, 3, 1)
    q, g = slice(0, 40), slice(40, 120)
    distmat = sdcl.query_gallery_distance(
        _rounded(x[q], matrix_dtype), _rounded(x[g], matrix_dtype)
    )
    ours = sdcl.evaluate_rank(distmat.to(matrix_device), pids[q], pids[g], cams[q], cams[g])
    ref = sdcl.evaluate_rank(distmat, pids[q], pids[g], cams[q], cams[g])
    np.testing.assert_allclose(np.asarray(ours.cmc), np.asarray(ref.cmc), rtol=0, atol=1e-6)
    assert abs(float(ours.mAP) - float(ref.mAP)) < 1e-6
    assert abs(float(ours.mINP) - float(ref.mINP)) < 1e-6


# ----------------------------------------------------------------------------- models


def _autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def _model_close(actual, expected, dtype):
    rtol, atol = MODEL_TOLERANCE[str(dtype).removeprefix("torch.")]
    torch.testing.assert_close(
        actual.detach().float().cpu(), expected.detach().float().cpu(), rtol=rtol, atol=atol
    )


def test_vit_and_shallow_deep_vit(matrix_device, matrix_dtype):
    torch.manual_seed(0)
    model = sdcl.build_shallow_deep_vit("tiny").eval()
    images = torch.randn(4, 3, *model.config.img_size, generator=_gen(7))
    with torch.no_grad():
        ref_rgb = model(images, "rgb")
        ref_mixed = model.forward_mixed(images[:2], images[2:])
        ref_vit = model.base(images) if hasattr(model, "base") else None
        device_model = model.to(matrix_device)
        with _autocast(matrix_device, matrix_dtype):
            rgb = device_model(images.to(matrix_device), "rgb")
            mixed = device_model.forward_mixed(
                images[:2].to(matrix_device), images[2:].to(matrix_device)
            )
            vit = device_model.base(images.to(matrix_device)) if ref_vit is not None else None
    for ours, ref in zip(rgb, ref_rgb):
        _assert_on(matrix_device, ours)
        _model_close(ours, ref, matrix_dtype)
    for ours_part, ref_part in zip(mixed, ref_mixed):
        for ours, ref in zip(ours_part, ref_part):
            _assert_on(matrix_device, ours)
            _model_close(ours, ref, matrix_dtype)
    if vit is not None:
        _model_close(vit, ref_vit, matrix_dtype)


def test_load_pretrained_into_a_model_on_the_device(tmp_path, matrix_device):
    torch.manual_seed(0)
    source = sdcl.build_shallow_deep_vit("tiny")
    path = tmp_path / "model.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    target = sdcl.build_shallow_deep_vit("tiny").to(matrix_device)
    sdcl.load_pretrained(target, str(path))
    for name, value in target.state_dict().items():
        _assert_on(matrix_device, value)
        assert torch.equal(value.cpu(), source.state_dict()[name]), name


def test_vit_backbone(matrix_device, matrix_dtype):
    from sdcl_toolkit.models import get_config

    config = get_config("tiny")
    torch.manual_seed(0)
    vit = sdcl.ViT(
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        img_size=config.img_size,
        stem_channels=config.stem_channels,
    ).eval()
    images = torch.randn(2, 3, *config.img_size, generator=_gen(8))
    with torch.no_grad():
        ref = vit(images)
        with _autocast(matrix_device, matrix_dtype):
            out = vit.to(matrix_device)(images.to(matrix_device))
    _assert_on(matrix_device, out)
    _model_close(out, ref, matrix_dtype)


# ----------------------------------------------------------------------------- data, engine


def test_per_sample_transforms_on_the_device(matrix_device):
    """Images decode to float32; the same CPU generator gives the same augmentation."""
    image = torch.rand(3, 40, 20, generator=_gen(9))
    for transform in (ir_train_transform(32, 16, padding=2), test_transform(32, 16)):
        out = transform(image.to(matrix_device), generator=_gen(10))
        ref = transform(image, generator=_gen(10))
        _assert_on(matrix_device, out)
        _close(out, ref, torch.float32)


@pytest.mark.parametrize("view", ["rgb", "rgb_exchange", "ir"])
def test_batch_augment_on_the_device(matrix_device, view):
    augment = BatchAugment(32, 16, view=view, padding=2)
    images = torch.randint(0, 256, (8, 3, 32, 16), dtype=torch.uint8, generator=_gen(11))
    parameters = augment.sample_parameters(8, _gen(12))
    out = augment.apply(images.to(matrix_device), parameters)
    ref = augment.apply(images, parameters)
    _assert_on(matrix_device, out)
    _close(out, ref, torch.float32)
    generator = torch.Generator(device=matrix_device).manual_seed(0)
    _assert_on(matrix_device, augment(images.to(matrix_device), generator))


def test_extract_features_on_the_device(tmp_path, matrix_device):
    from sdcl_toolkit.data import SYSUMM01, write_synthetic_sysu
    from sdcl_toolkit.engine.features import extract_features

    root = write_synthetic_sysu(
        tmp_path / "SYSU-MM01", identities=4, images_per_camera=2, height=32, width=16, seed=1
    )
    records = SYSUMM01(root).train("rgb")[:12]
    torch.manual_seed(0)
    model = sdcl.build_shallow_deep_vit("tiny").eval()
    height, width = model.config.img_size
    transform = test_transform(height, width)
    ref = extract_features(
        model, records, "rgb", transform, device=torch.device("cpu"), batch_size=5, num_workers=0
    )
    out = extract_features(
        model.to(matrix_device),
        records,
        "rgb",
        transform,
        device=matrix_device,
        batch_size=5,
        num_workers=0,
    )
    for ours, theirs in zip(out, ref):
        assert ours.shape == theirs.shape
        _model_close(ours, theirs, torch.float32)


@pytest.mark.parametrize("device_augmentation", [False, True])
def test_trainer_on_the_device(
    tiny_sysu_root, tiny_train_config, tmp_path, matrix_device, device_augmentation
):
    """Two short epochs (the second in stage 2) of the training engine on the matrix
    device, with the per-sample or the batched on-device augmentation: the model and the
    memories live on the device, the losses are finite, the checkpoint is written, and a
    run stopped after its first epoch resumes from the checkpoint onto the device."""
    import dataclasses

    from sdcl_toolkit.engine import SDCLTrainer

    config = tiny_train_config(
        tiny_sysu_root,
        tmp_path / "run",
        device=str(matrix_device),
        device_augmentation=device_augmentation,
    )
    assert SDCLTrainer(dataclasses.replace(config, stop_after=1)).fit()["epochs"][0]["stage"] == 1
    trainer = SDCLTrainer(dataclasses.replace(config, resume=True))  # loads onto the device
    summary = trainer.fit()
    assert next(trainer.model.parameters()).device.type == matrix_device.type
    memories = trainer.last_objective.memories
    _assert_on(matrix_device, memories.cluster_deep["rgb"].centroids)
    losses = [epoch["losses"]["loss"] for epoch in summary["epochs"]]
    assert len(losses) == 2 and all(np.isfinite(loss) for loss in losses)
    assert [epoch["stage"] for epoch in summary["epochs"]] == [1, 2]
    assert (tmp_path / "run" / "last.pth").is_file() and "final" in summary


# ----------------------------------------------------------------------------- faiss-gpu, NCCL


def test_faiss_backend(matrix_device, matrix_dtype):
    faiss = pytest.importorskip("faiss", reason="faiss not installed")
    if matrix_device.type == "cuda" and not hasattr(faiss, "StandardGpuResources"):
        pytest.skip("faiss-gpu not installed (the faiss build has no GPU support)")
    x = _features()
    distances, indices = sdcl.knn(_on(x, matrix_device, matrix_dtype), None, 10, backend="faiss")
    ref_d, ref_i = sdcl.knn(_rounded(x, matrix_dtype), None, 10, backend="torch")
    _assert_on(matrix_device, distances, indices)
    assert torch.equal(indices.cpu(), ref_i)
    _close(distances, ref_d, matrix_dtype)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_STEPS = 2


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One NCCL rank: DDP step of a small model on this rank's half of a fixed batch, then a
    ClusterMemory update with the rank's features (gathered over the ranks)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    device = torch.device("cuda", rank)
    model, memory, batches = _ddp_setup()
    model, memory = model.to(device), memory.to(device)
    ddp = DistributedDataParallel(model, device_ids=[rank])
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for features, labels in batches:
        half = features.shape[0] // world
        mine = slice(rank * half, (rank + 1) * half)
        loss = memory(ddp(features[mine].to(device)), labels[mine].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            memory.update(ddp(features[mine].to(device)), labels[mine].to(device))
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    state["centroids"] = memory.centroids.cpu()
    torch.save(state, f"{out}.{rank}")
    dist.destroy_process_group()


def _ddp_setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    bank, labels = _labelled_batch(20, n=40, clusters=4, dim=8)
    memory = sdcl.ClusterMemory.from_features(bank, labels, momentum=0.2)
    batches = []
    for step in range(DDP_STEPS):
        feats, lab = _labelled_batch(30 + step, n=16, clusters=4, dim=16)
        batches.append((feats, lab))
    return model, memory, batches


@pytest.mark.distributed
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_nccl_ddp_two_processes_equal_one_process(tmp_path):
    port, out = _free_port(), str(tmp_path / "state")
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(rank), "2", str(port), out],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        for rank in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    states = [torch.load(f"{out}.{rank}") for rank in range(2)]
    # single process, the whole batch: DDP averages the two halves' gradients, which equals
    # the gradient of the whole batch's mean loss for equal halves; the memory update
    # gathers both halves (rank 0's first)
    model, memory, batches = _ddp_setup()
    device = torch.device("cuda", 0)
    model, memory = model.to(device), memory.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for features, labels in batches:
        half = features.shape[0] // 2
        losses = [
            memory(
                model(features[r * half : (r + 1) * half].to(device)),
                labels[r * half : (r + 1) * half].to(device),
            )
            for r in range(2)
        ]
        optimizer.zero_grad()
        (sum(losses) / 2).backward()
        optimizer.step()
        with torch.no_grad():
            memory.update(model(features.to(device)), labels.to(device))
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(states[0][key], value.cpu(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(states[0]["centroids"], memory.centroids.cpu(), rtol=1e-5, atol=1e-6)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    _ddp_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
