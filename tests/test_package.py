"""The public surface: version, top-level names, subpackage re-exports."""

import importlib

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
    from sdcl_toolkit import CNL, CRA, ClusterMemory, InstanceMemory, ShallowDeepContrast  # noqa

    assert callable(sdcl_toolkit.knn)  # the function, not the knn_search module
    importlib.import_module("sdcl_toolkit.knn_search")
    assert callable(sdcl_toolkit.knn)
