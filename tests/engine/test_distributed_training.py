"""Two CPU processes (gloo) train one short epoch: all ranks end with the same weights and
memories (feature extraction sharded + gathered, pseudo-labelling sharded + gathered on every
rank, memories updated from the gathered batch)."""

import copy
import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sdcl_toolkit.engine import SDCLTrainer, setup_distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, config, out_dir: str) -> None:
    os.environ.update(
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        trainer = SDCLTrainer(config, device=setup_distributed(config.device))
        initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        sharded_labels = []
        local = copy.copy(trainer.labeler)  # what one process computes alone:
        local.group = None  # the Jaccard searches
        local.association = copy.copy(local.association)
        assert local.association.group == "world"  # CRA's searches are sharded too
        local.association.group = None
        pseudo_label = trainer.pseudo_label

        def recording(features, stage):
            result = pseudo_label(features, stage)
            alone = local(*features["rgb"], *features["ir"], stage=stage)
            sharded_labels.append(
                {
                    "group": trainer.labeler.group,
                    "sharded": _label_tensors(result),
                    "alone": _label_tensors(alone),
                }
            )
            return result

        trainer.pseudo_label = recording
        trainer.fit()
        memories = trainer.last_objective.memories
        torch.save(
            {
                "model": trainer.model.state_dict(),
                "deep_rgb": memories.cluster_deep["rgb"].centroids,
                "shallow_ir": memories.cluster_shallow["ir"].centroids,
                "instance_rgb": memories.instance_deep["rgb"].bank,
                "instance_ir": memories.instance_shallow["ir"].bank,
                "labels": sharded_labels,
                "changed": sorted(
                    k
                    for k, v in trainer.model.state_dict().items()
                    if not torch.equal(v, initial[k])
                ),
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _label_tensors(result):
    return {
        "rgb": result.rgb.labels,
        "rgb_own": result.rgb.cluster_labels,
        "ir": result.ir.labels,
        "deep_rgb": result.deep_centroids["rgb"],
        "shallow_ir": result.shallow_centroids["ir"],
    }


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_agree(tiny_config, tmp_path):
    config = dataclasses.replace(
        tiny_config, epochs=1, cmlabel=5, heterogeneous_start=0, output_dir=str(tmp_path / "run")
    )
    mp.spawn(_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for key in ("deep_rgb", "shallow_ir", "instance_rgb", "instance_ir"):
        assert torch.equal(r0[key], r1[key]), key
    for key, value in r0["model"].items():
        assert torch.equal(value, r1["model"][key]), key
    # every rank pseudo-labelled (sharded), got the same labels, equal to one process' labels
    assert len(r0["labels"]) == len(r1["labels"]) == 1
    for epoch0, epoch1 in zip(r0["labels"], r1["labels"]):
        assert epoch0["group"] == epoch1["group"] == "world"
        for key, value in epoch0["sharded"].items():
            assert torch.equal(value, epoch1["sharded"][key]), key
            assert torch.equal(value, epoch0["alone"][key]), key
            assert torch.equal(epoch1["sharded"][key], epoch1["alone"][key]), key
    assert (tmp_path / "run" / "last.pth").is_file()
    # training moved the weights (so agreement is not trivial), identically on both ranks
    assert any(k.startswith("vit.blocks.0.") for k in r0["changed"])
    assert r0["changed"] == r1["changed"]


def _blobs(seed: int) -> dict:
    """Deep and shallow features of 4 well-separated identities, 8 samples per modality."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 16, generator=generator) * 4
    out = {}
    for modality in ("rgb", "ir"):
        rows = centres.repeat_interleave(8, 0)
        out[modality] = tuple(rows + 0.05 * torch.randn(32, 16, generator=generator) for _ in "ds")
    return out


def _disagreeing_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """Rank 1's labeler returns centroids one ulp off (what CUDA atomics may do)."""
    from types import SimpleNamespace

    from sdcl_toolkit import PseudoLabeler, SDCLRecipe
    from sdcl_toolkit.engine.trainer import SDCLTrainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        labeler = PseudoLabeler.from_recipe(SDCLRecipe.miniature(), group="world")
        warnings = []

        def drifting(*features, stage):
            result = labeler(*features, stage=stage)
            if rank == 1:
                centroids = result.deep_centroids["rgb"]
                centroids[0, 0] = torch.nextafter(centroids[0, 0], torch.tensor(2.0))
            return result

        fake = SimpleNamespace(
            labeler=drifting,
            world=world,
            device=torch.device("cpu"),
            log=SimpleNamespace(warning=warnings.append),
        )
        result = SDCLTrainer.pseudo_label(fake, _blobs(0), stage=2)
        torch.save(
            {
                "labels": _label_tensors(result),
                "association": result.association.labels,
                "warnings": warnings,
            },
            os.path.join(out_dir, f"drift{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_ranks_whose_labels_differ_all_take_rank_0s(tmp_path):
    mp.spawn(_disagreeing_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "drift0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "drift1.pt", weights_only=False)
    assert int(r0["labels"]["rgb"].max()) + 1 == 4  # stage 2 found the four identities
    for key, value in r0["labels"].items():
        assert torch.equal(value, r1["labels"][key]), key
    assert torch.equal(r0["association"], r1["association"])
    assert len(r0["warnings"]) == len(r1["warnings"]) == 1
    assert "differ" in r0["warnings"][0]
