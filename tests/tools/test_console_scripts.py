"""The console scripts are declared, installed and answer --help / bad arguments."""

from __future__ import annotations

import configparser
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {
    "sdcl-evaluate": "sdcl_toolkit.tools.evaluate:main",
    "sdcl-extract": "sdcl_toolkit.tools.extract:main",
    "sdcl-export": "sdcl_toolkit.tools.export:main",
    "sdcl-plot-run": "sdcl_toolkit.tools.plot_run:main",
    "sdcl-check-dataset": "sdcl_toolkit.tools.check_dataset:main",
}


def test_setup_cfg_declares_every_script():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = dict(
        line.split(" = ")
        for line in config["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    for name, target in SCRIPTS.items():
        assert declared[name] == target
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_installed_script_answers_help(name):
    """The installed entry point runs (bad arguments: tested in-process per tool)."""
    script = shutil.which(name, path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip(f"{name} is not installed in this environment (pip install -e .)")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and f"usage: {name}" in done.stdout
