"""A rank killed mid-epoch: the survivor fails with a clear error in bounded time, and
``--resume`` continues the run from the last saved epoch."""

import dataclasses
import os
import signal
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from sdcl_toolkit.engine import SDCLTrainer, setup_distributed

BOUND_S = 120  # the survivor must give up within this many seconds of the death


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, config, report: str) -> None:
    os.environ.update(
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    trainer = SDCLTrainer(config, device=setup_distributed(config.device, config.dist_timeout))
    step = trainer.train_step

    def train_step(batch_rgb, batch_ir, objective):
        if rank == 1 and objective.epoch == 1:  # mid-epoch 1, after epoch 0 was saved
            with open(report + ".killed", "w") as handle:
                handle.write(str(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
        return step(batch_rgb, batch_ir, objective)

    trainer.train_step = train_step
    try:
        trainer.fit()
        outcome = "finished"
    except Exception as error:  # the report is the test's evidence
        outcome = f"{type(error).__name__}: {error}"
    with open(f"{report}.rank{rank}", "w") as handle:
        handle.write(f"{time.time()}\n{outcome}")
    os._exit(0)


@pytest.mark.slow
@pytest.mark.distributed
def test_a_killed_rank_fails_the_survivor_clearly_and_resume_continues(tiny_config, tmp_path):
    config = dataclasses.replace(
        tiny_config, epochs=2, cmlabel=5, dist_timeout=60, output_dir=str(tmp_path / "run")
    )
    report = str(tmp_path / "report")
    context = mp.get_context("spawn")
    port = _free_port()
    ranks = [context.Process(target=_worker, args=(r, port, config, report)) for r in (0, 1)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=600)
    for process in ranks:
        if process.is_alive():
            process.kill()
            pytest.fail("a process hung after its peer died")
    assert ranks[1].exitcode == -signal.SIGKILL
    killed_at = float(open(report + ".killed").read())
    ended_at, outcome = open(report + ".rank0").read().split("\n", 1)
    delay = float(ended_at) - killed_at
    print(f"the survivor failed {delay:.1f}s after its peer was killed")
    assert delay < BOUND_S
    assert outcome.startswith("DistributedRunError: rank 0/2: a collective operation failed")
    assert "--resume --output-dir" in outcome

    resumed = SDCLTrainer(dataclasses.replace(config, resume=True))
    history = resumed.fit()
    assert resumed.start_epoch == 1
    assert [e["epoch"] for e in history["epochs"]] == [0, 1] and "final" in history
