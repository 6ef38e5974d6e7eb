"""kNN / Jaccard / pseudo-labels sharded over two gloo CPU processes.

Like ``tests/test_distributed.py``, the two ranks run this file as a script
(``python tests/test_knn_sharded.py --worker RANK PORT OUT``). Both hold the same features;
each searches its share of the queries and the results are all-gathered. The results of
both ranks must be identical to the single-process run: kNN scores and indices (with and
without ``exclude_self``, float32 and bfloat16 candidates, an odd number of queries), the
sparse Jaccard matrix, DBSCAN labels, full :class:`~sdcl_toolkit.PseudoLabeler` steps of
both stages (stage 2 with CRA's searches sharded too) and CRA on its own.
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

from sdcl_toolkit import CRA, PseudoLabeler, dbscan_pseudo_labels, jaccard_distance, knn
from sdcl_toolkit.data.clustered_features import make_clustered_features
from sdcl_toolkit.knn_sharded import resolve_group, shard_bounds

REPO_ROOT = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
NUM_SAMPLES, NUM_IDS, WIDTH = 301, 12, 32  # odd N: the shares differ in size


def features() -> torch.Tensor:
    x = make_clustered_features(NUM_SAMPLES, NUM_IDS, WIDTH, seed=7).features
    # a block of near-duplicates (consecutive "video frames"): ties at the k-th position
    x[:40] = x[0] + 1e-4 * torch.randn(40, WIDTH, generator=torch.Generator().manual_seed(1))
    return x


def modality_features():
    x = features()
    g = torch.Generator().manual_seed(3)
    shallow = x + 0.05 * torch.randn(x.shape, generator=g)
    return x[:160], shallow[:160], x[160:], shallow[160:]


def compute(group) -> dict:
    """Everything compared between the sharded and the single-process runs."""
    x = features()
    out = {}
    for name, options in {
        "plain": {},
        "exclude_self": {"exclude_self": True},
        "bfloat16": {"candidates": "bfloat16", "chunk_size": 50},
    }.items():
        scores, indices = knn(x, x, 9, group=group, **options)
        out[f"knn_{name}_scores"], out[f"knn_{name}_indices"] = scores, indices
    jac = jaccard_distance(x, 20, 6, group=group)
    out["jaccard"] = jac.to_dense()
    out["dbscan"] = dbscan_pseudo_labels(jac, 0.5, 4)
    labeler = PseudoLabeler(eps=0.5, min_samples=4, k1=20, k2=6, stage2_rgb_k1=10, group=group)
    result = labeler(*modality_features(), stage=1)
    out["labeler_rgb"], out["labeler_ir"] = result.rgb.labels, result.ir.labels
    # stage 2: both Jaccards sharded, and CRA's three searches (built by the labeler)
    result = labeler(*modality_features(), stage=2)
    out["stage2_rgb"], out["stage2_ir"] = result.rgb.labels, result.ir.labels
    out["stage2_ranking"] = result.association.ranking_labels
    deep_rgb, shallow_rgb, deep_ir, shallow_ir = modality_features()
    cra = CRA(topk=15, smooth_k=7, candidates="bfloat16", group=group)
    out["cra"] = cra(deep_rgb, shallow_rgb, deep_ir, shallow_ir, result.ir.labels)
    return out


def worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    import sdcl_toolkit.knn_sharded as knn_sharded

    calls = []
    search = knn_sharded.sharded_knn

    def counting(*args, **kwargs):
        calls.append(args[2])  # k
        return search(*args, **kwargs)

    knn_sharded.sharded_knn = counting
    try:
        results = compute("world")
        results["sharded_searches"] = torch.tensor(calls)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("knn_sharded")
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
                out, _ = proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                pytest.fail("sharded kNN workers did not finish within 180 s")
            outputs.append(out.decode(errors="replace"))
        if all(p.returncode == 0 for p in procs):
            return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]
        last_error = "\n".join(
            f"rank {r} (rc {p.returncode}):\n{o}" for r, (p, o) in enumerate(zip(procs, outputs))
        )
        if "address already in use" not in last_error.lower():
            break
    pytest.fail(f"sharded kNN workers failed:\n{last_error}")


@pytest.fixture(scope="module")
def single_process():
    return compute(None)


KEYS = [
    "knn_plain_scores",
    "knn_plain_indices",
    "knn_exclude_self_scores",
    "knn_exclude_self_indices",
    "knn_bfloat16_scores",
    "knn_bfloat16_indices",
    "jaccard",
    "dbscan",
    "labeler_rgb",
    "labeler_ir",
    "stage2_rgb",
    "stage2_ir",
    "stage2_ranking",
    "cra",
]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("key", KEYS)
def test_two_gloo_ranks_give_the_single_process_result(rank_results, single_process, key):
    expected = single_process[key]
    for results in rank_results:
        assert torch.equal(results[key], expected), key
    if key in ("dbscan", "stage2_rgb", "cra"):  # not trivial: several clusters
        assert int(expected.max()) >= 3
        assert len(torch.unique(expected)) >= 4


@pytest.mark.slow
@pytest.mark.distributed
def test_every_search_was_sharded(rank_results):
    """3 kNN, 1 Jaccard, 2 stage-1 Jaccards, then stage 2: 2 Jaccards + CRA's 3 searches
    (depth 20, 20, smoothing 5), and the direct CRA's 3 (15, 15, 7)."""
    for results in rank_results:
        assert results["sharded_searches"].tolist() == [
            9,
            9,
            9,
            20,
            20,
            20,
            20,
            10,
            20,
            20,
            5,
            15,
            15,
            7,
        ]


def test_shard_bounds_cover_every_row_once():
    for num_rows in (0, 1, 5, 301):
        for world in (1, 2, 3, 4):
            rows = [
                r for rank in range(world) for r in range(*shard_bounds(num_rows, world, rank)[:2])
            ]
            assert rows == list(range(num_rows))


def test_group_without_process_group_is_a_clear_error():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="init_process_group"):
        knn(x, x, 2, group="world")
    with pytest.raises(TypeError, match="group must be"):
        knn(x, x, 2, group="everyone")
    with pytest.raises(TypeError, match="group must be"):
        resolve_group(3)
    # labelers and CRA check the group's type when built, its use when they search
    with pytest.raises(TypeError, match="group must be"):
        CRA(group="everyone")
    with pytest.raises(TypeError, match="group must be"):
        PseudoLabeler(group=3)
    labeler = PseudoLabeler(group="world")  # no process group yet: fine until it searches
    assert labeler.cra is not None and labeler.cra.group == "world"


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--worker":
    worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
