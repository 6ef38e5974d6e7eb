"""Two CPU processes (gloo) train one short epoch: all ranks end with the same weights and
memories (feature extraction sharded + gathered, labels broadcast, memories updated from the
gathered batch)."""

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
        trainer.fit()
        memories = trainer.last_objective.memories
        torch.save(
            {
                "model": trainer.model.state_dict(),
                "deep_rgb": memories.cluster_deep["rgb"].centroids,
                "shallow_ir": memories.cluster_shallow["ir"].centroids,
                "instance_rgb": memories.instance_deep["rgb"].bank,
                "instance_ir": memories.instance_shallow["ir"].bank,
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
    assert (tmp_path / "run" / "last.pth").is_file()
    # training moved the weights (so agreement is not trivial), identically on both ranks
    assert any(k.startswith("vit.blocks.0.") for k in r0["changed"])
    assert r0["changed"] == r1["changed"]
