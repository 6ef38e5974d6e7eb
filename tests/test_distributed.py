"""Tests of sdcl_toolkit.distributed and of the DDP behaviour of the memories.

The multi-process test starts two CPU processes (gloo over a free loopback port) running
this very file as a script (``python tests/test_distributed.py --worker RANK PORT OUT``), so
that it does not depend on how pytest imports test modules. Each rank feeds its own part of
several batches to ``ClusterMemory.update`` (mean and hard) and ``InstanceMemory.update``;
afterwards both ranks must hold identical memories, equal to a single process updating with
the concatenated batches (rank 0's samples first).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sdcl_toolkit.distributed import (
    all_gather_cat,
    broadcast_object,
    broadcast_tensor,
    get_rank,
    get_world_size,
    is_distributed,
)
from sdcl_toolkit.memory import ClusterMemory, InstanceMemory

REPO_ROOT = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
STEPS = 4
NUM_CLUSTERS, NUM_SAMPLES, WIDTH = 6, 20, 8
# rows per rank and step: uneven on purpose (all_gather_cat must handle it)
ROWS = {0: [5, 3, 7, 4], 1: [4, 6, 2, 4]}


def initial_state():
    g = torch.Generator().manual_seed(123)
    return {
        "centroids": F.normalize(torch.randn(NUM_CLUSTERS, WIDTH, generator=g), dim=1),
        "bank": F.normalize(torch.randn(NUM_SAMPLES, WIDTH, generator=g), dim=1),
    }


def rank_batch(rank: int, step: int):
    """Deterministic batch of ``rank`` at ``step`` (labels and indices repeat within it)."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    n = ROWS[rank][step]
    features = torch.randn(n, WIDTH, generator=g) * 2
    labels = torch.randint(0, NUM_CLUSTERS, (n,), generator=g)
    indices = torch.randint(0, NUM_SAMPLES, (n,), generator=g)
    indices[-1] = indices[0]  # a repeated index on every rank
    return features, labels, indices


def build_memories():
    state = initial_state()
    memories = {
        "mean": ClusterMemory.from_centroids(state["centroids"], momentum=0.2, mode="mean"),
        "hard": ClusterMemory.from_centroids(state["centroids"], momentum=0.2, mode="hard"),
        "instance": InstanceMemory(num_samples=NUM_SAMPLES, num_features=WIDTH, momentum=0.9),
        # a deep/shallow pair advanced together by update_many
        "pair_deep": ClusterMemory.from_centroids(state["centroids"], momentum=0.2),
        "pair_shallow": ClusterMemory.from_centroids(state["centroids"].flip(0), momentum=0.2),
    }
    memories["instance"].bank.copy_(state["bank"])
    return memories


def memory_states(memories):
    return {
        "mean": memories["mean"].centroids.clone(),
        "hard": memories["hard"].centroids.clone(),
        "instance": memories["instance"].bank.clone(),
        "pair_deep": memories["pair_deep"].centroids.clone(),
        "pair_shallow": memories["pair_shallow"].centroids.clone(),
    }


def run_steps(memories, batches):
    for features, labels, indices in batches:
        memories["mean"].update(features, labels)
        memories["hard"].update(features, labels)
        memories["instance"].update(features, indices)
        ClusterMemory.update_many(
            [memories["pair_deep"], memories["pair_shallow"]], [features, features.flip(1)], labels
        )


# --------------------------------------------------------------------------------------
# worker process
# --------------------------------------------------------------------------------------
def worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        results = {
            "rank": get_rank(),
            "world_size": get_world_size(),
            "is_distributed": is_distributed(),
        }
        # helpers
        block = torch.full((rank + 2, 3), float(rank))  # 2 rows on rank 0, 3 on rank 1
        results["gathered"] = all_gather_cat(block)
        flags = torch.tensor([rank == 0, True, False][: rank + 1])
        results["gathered_bool"] = all_gather_cat(flags)
        results["gathered_labels"] = all_gather_cat(torch.arange(rank + 1) + 10 * rank)
        try:
            all_gather_cat(torch.zeros(2, 3 + rank))
        except ValueError as error:
            results["shape_error"] = str(error)
        value = torch.full((2, 2), float(rank + 1))
        results["broadcast"] = broadcast_tensor(value, src=1).clone()
        results["broadcast_object"] = broadcast_object({"rank": rank, "list": [rank]}, src=0)
        # memories
        memories = build_memories()
        run_steps(memories, [rank_batch(rank, step) for step in range(STEPS)])
        results["memories"] = memory_states(memories)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    last_error = None
    for _attempt in range(2):  # a second try only if the port was taken in between
        port = free_port()
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(rank), str(port), str(out_dir)],
                env=env,
                cwd=str(REPO_ROOT),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for rank in range(WORLD_SIZE)
        ]
        outputs = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                pytest.fail("distributed workers did not finish within 90 s")
            outputs.append(out.decode(errors="replace"))
        if all(p.returncode == 0 for p in procs):
            return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]
        last_error = "\n".join(
            f"rank {r} (rc {p.returncode}):\n{o}" for r, (p, o) in enumerate(zip(procs, outputs))
        )
        if "address already in use" not in last_error.lower():
            break
    pytest.fail(f"distributed workers failed:\n{last_error}")


@pytest.mark.slow
@pytest.mark.distributed
def test_helpers_across_two_gloo_ranks(rank_results):
    for rank, results in enumerate(rank_results):
        assert results["rank"] == rank and results["world_size"] == 2 and results["is_distributed"]
        expected = torch.cat([torch.zeros(2, 3), torch.ones(3, 3)])
        assert torch.equal(results["gathered"], expected)
        assert results["gathered_bool"].dtype == torch.bool
        assert results["gathered_bool"].tolist() == [True, False, True]
        assert results["gathered_labels"].tolist() == [0, 10, 11]
        assert "same trailing shape" in results["shape_error"]
        assert torch.equal(results["broadcast"], torch.full((2, 2), 2.0))
        assert results["broadcast_object"] == {"rank": 0, "list": [0]}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("kind", ["mean", "hard", "instance", "pair_deep", "pair_shallow"])
def test_memories_identical_across_ranks_and_equal_single_process(rank_results, kind):
    rank0, rank1 = (r["memories"][kind] for r in rank_results)
    assert torch.equal(rank0, rank1)

    batches = []
    for step in range(STEPS):
        parts = [rank_batch(rank, step) for rank in range(WORLD_SIZE)]
        batches.append(tuple(torch.cat(items) for items in zip(*parts)))
    single = build_memories()
    run_steps(single, batches)
    expected = memory_states(single)[kind]
    torch.testing.assert_close(rank0, expected, rtol=1e-6, atol=1e-7)
    # and the updates did something (the comparison above is not trivially true)
    start = build_memories()[kind]
    start = start.bank if kind == "instance" else start.centroids
    assert (rank0 - start).abs().max() > 1e-2


def test_helpers_are_no_ops_without_process_group():
    assert not is_distributed()
    assert get_rank() == 0 and get_world_size() == 1
    tensor = torch.randn(3, 2)
    assert all_gather_cat(tensor) is tensor
    assert broadcast_tensor(tensor) is tensor
    obj = {"a": 1}
    assert broadcast_object(obj) is obj
    with pytest.raises(TypeError):
        all_gather_cat([1, 2])  # type: ignore[arg-type]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--worker":
    worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
