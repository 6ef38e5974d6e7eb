"""Regenerate the pictures of docs/tools.md on the generated miniature data (CPU; 25 min
on a shared, heavily loaded 2-core machine, mostly the 150 pretraining steps).

    .venv/bin/python docs/images/make_tool_pictures.py [WORK_DIR]

1. ``sdcl-make-dataset``: a SYSU-MM01-layout tree of 24 generated people;
2. a short SDCL run of the tiny model (pretrained with labels on 150 *other* generated people
   for 150 steps, a stand-in for the LUPerson checkpoint, then 3 SDCL epochs of the
   miniature recipe), evaluated after every epoch;
3. ``sdcl-evaluate --visualize 2`` and ``sdcl-plot-run`` on it, through the console scripts;
4. copies the PNGs into docs/images/ and prints every command with its output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sdcl_toolkit import SDCLRecipe
from sdcl_toolkit.engine import SDCLTrainer, TrainConfig

IMAGES = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def run(*command: str) -> None:
    print("$ " + " ".join(command).replace(str(WORK), "$WORK"), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    print((done.stdout + done.stderr).replace(str(WORK), "$WORK"), flush=True)
    done.check_returncode()


WORK = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="sdcl-pictures-"))
data = WORK / "data"
run(
    str(BIN / "sdcl-make-dataset"),
    "--out", str(data), "--identities", "24", "--images-per-camera", "3",
    "--nuisance", "0.2", "--seed", "3", "--test-fraction", "0.25", "--val-fraction", "0",
    "--overwrite",
)  # fmt: skip
config = TrainConfig.from_recipe(
    SDCLRecipe.miniature(epochs=3, iters=4),
    model="tiny",
    pretrained="none",
    pretrain_steps=150,
    seed=0,
    data_dir=str(data / "SYSU-MM01"),
    output_dir=str(WORK / "run"),
    eval_every=1,
    trials=10,
    workers=0,
    progress=False,
)
SDCLTrainer(config).fit()
run(str(BIN / "sdcl-plot-run"), str(WORK / "run"))
run(
    str(BIN / "sdcl-evaluate"), str(WORK / "run" / "last.pth"),
    "--dataset", "sysu", "--data-dir", str(data / "SYSU-MM01"),
    "--visualize", "2", "--out-dir", str(WORK / "eval"), "--workers", "0", "--no-progress",
)  # fmt: skip

for source, target in (
    (WORK / "run" / "plots" / "run_curves.png", "tools_run_curves.png"),
    (WORK / "run" / "plots" / "label_quality.png", "tools_label_quality.png"),
    (WORK / "eval" / "cmc.png", "tools_cmc.png"),
    (WORK / "eval" / "ranking_all_000.png", "tools_ranking_0.png"),
    (WORK / "eval" / "ranking_all_001.png", "tools_ranking_1.png"),
):
    shutil.copyfile(source, IMAGES / target)
    print(f"docs/images/{target}")
