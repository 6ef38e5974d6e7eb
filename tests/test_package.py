"""The public surface: version, top-level names, subpackage re-exports."""

import importlib
import subprocess
import sys
from pathlib import Path

import sdcl_toolkit
import sdcl_toolkit.data
import sdcl_toolkit.engine


def test_version():
    assert isinstance(sdcl_toolkit.__version__, str) and sdcl_toolkit.__version__.count(".") == 2


def test_every_exported_name_resolves():
    for module in (sdcl_toolkit, sdcl_toolkit.data, sdcl_toolkit.engine):
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)


def test_issue_names_import_from_the_top_level():
    from sdcl_toolkit import CNL, CRA, ClusterMemory, InstanceMemory, ShallowDeepContrast

    assert all(callable(c) for c in (CNL, CRA, ClusterMemory, InstanceMemory, ShallowDeepContrast))
    assert callable(sdcl_toolkit.knn)  # the function, not the knn_search module
    importlib.import_module("sdcl_toolkit.knn_search")
    assert callable(sdcl_toolkit.knn)


def test_imports_without_docstrings():
    """``python -OO`` strips docstrings (``__doc__ is None``); importing must still work."""
    result = subprocess.run(
        [
            sys.executable,
            "-OO",
            "-c",
            "import sdcl_toolkit, sdcl_toolkit.data, sdcl_toolkit.engine",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
