"""The package's import graph: no cycles, no upward edges between layers.

Built with ``ast`` from the module-level imports of every module of ``sdcl_toolkit``
(relative imports resolved; statements under module-level ``if`` / ``try`` count; imports
inside functions and methods -- lazy imports -- do not). ``if TYPE_CHECKING:`` imports are
type-only: they count for the layer rules but not for cycles.

Layers (lowest first)::

    leaves   recipe, modality, _arrays, _normalize, _sparse, _timing, _validation, distributed
    core     knn_search, reranking, clustering, association, memory, losses, objective,
             pipeline, metrics, label_quality
    models   sdcl_toolkit.models.*          data   sdcl_toolkit.data.*
    engine   sdcl_toolkit.engine.*  (may import everything)
    tools    sdcl_toolkit.tools.*   (console scripts; may import everything, nothing imports them)

Lazy (in-function) imports that cross a layer at the time of writing: none. (The lazy
imports are engine.trainer -> data.sysu_mm01 / data.synthetic / data.regdb /
engine.pretrain, data.loaders -> data.transforms, metrics -> reranking, reranking ->
knn_search: each within its layer or downward.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "sdcl_toolkit"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LEAVES = {
    "recipe",
    "modality",
    "_arrays",
    "_normalize",
    "_sparse",
    "_timing",
    "_validation",
    "distributed",
}
CORE = {
    "knn_search",
    "knn_sharded",
    "reranking",
    "clustering",
    "association",
    "memory",
    "losses",
    "objective",
    "pipeline",
    "metrics",
    "label_quality",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(module: str, node: ast.stmt) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = _resolve(module, node)
        if base != PACKAGE and not base.startswith(PACKAGE + "."):
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield sub if sub in MODULES else base


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(module: str, body: list[ast.stmt], typing_only: bool, lazy: bool):
    """Yield (target, typing_only, lazy) for every package import in ``body``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _targets(module, node):
                yield target, typing_only, lazy
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(module, node.body, typing_only, True)
        elif isinstance(node, ast.If):
            yield from _walk(module, node.body, typing_only or _is_type_checking(node.test), lazy)
            yield from _walk(module, node.orelse, typing_only, lazy)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.AST):
                    stmts = [s for s in inner if isinstance(s, ast.stmt)]
                    stmts += [s for h in inner if isinstance(h, ast.excepthandler) for s in h.body]
                    yield from _walk(module, stmts, typing_only, lazy)


def _edges() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    runtime: dict[str, set[str]] = {m: set() for m in MODULES}
    typing: dict[str, set[str]] = {m: set() for m in MODULES}
    lazy: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target, typing_only, is_lazy in _walk(module, tree.body, False, False):
            assert target in MODULES, f"{module} imports {target}, which is not a module"
            if target == module:
                continue
            (lazy if is_lazy else typing if typing_only else runtime)[module].add(target)
    return runtime, typing, lazy


RUNTIME, TYPING, LAZY = _edges()


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in ("data", "models", "engine", "tools"):
        return parts[1]
    if parts[1] in LEAVES:
        return "leaf"
    if parts[1] in CORE:
        return "core"
    return "unknown"


def _violations(source_layer: str, forbidden: set[str]) -> list[str]:
    return sorted(
        f"{m} -> {t}"
        for m in MODULES
        if layer(m) == source_layer
        for t in RUNTIME[m] | TYPING[m]
        if layer(t) in forbidden
    )


def test_graph_is_built():
    assert f"{PACKAGE}.models.checkpoint" in MODULES
    assert f"{PACKAGE}.models.shallow_deep" in RUNTIME[f"{PACKAGE}.models.checkpoint"]
    assert all(layer(m) != "unknown" for m in MODULES), [
        m for m in MODULES if layer(m) == "unknown"
    ]


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []
    cycles: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(RUNTIME[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert cycles == []


def test_models_checkpoint_and_shallow_deep_do_not_import_each_other():
    sd, ck = f"{PACKAGE}.models.shallow_deep", f"{PACKAGE}.models.checkpoint"
    assert ck not in RUNTIME[sd] | TYPING[sd] | LAZY[sd]
    leaf = f"{PACKAGE}.models.state_dict"
    assert RUNTIME[leaf] | TYPING[leaf] | LAZY[leaf] <= {
        f"{PACKAGE}.recipe",
        f"{PACKAGE}._validation",
    }


def test_leaves_import_only_leaves():
    assert _violations("leaf", {"root", "core", "data", "models", "engine"}) == []


def test_models_import_neither_data_nor_engine():
    assert _violations("models", {"data", "engine"}) == []


def test_data_imports_neither_models_nor_engine():
    assert _violations("data", {"models", "engine"}) == []


def test_core_imports_neither_data_models_nor_engine():
    assert _violations("core", {"root", "data", "models", "engine"}) == []


@pytest.mark.parametrize("source", ["leaf", "core", "models", "data"])
def test_lazy_imports_do_not_cross_layers(source):
    """Lazy imports are allowed, but none crosses a layer today; keep the list above current."""
    forbidden = {
        "leaf": {"root", "core", "data", "models", "engine"},
        "core": {"root", "data", "models", "engine"},
        "models": {"root", "data", "engine"},
        "data": {"root", "models", "engine"},
    }[source]
    crossing = sorted(
        f"{m} -> {t}"
        for m in MODULES
        if layer(m) == source
        for t in LAZY[m]
        if layer(t) in forbidden
    )
    assert crossing == []


def test_nothing_imports_the_tools():
    """``sdcl_toolkit.tools`` is the top (console scripts): no other layer imports it, even
    lazily, so the library never depends on its optional plotting / ONNX packages."""
    importers = sorted(
        f"{m} -> {t}"
        for m in MODULES
        if layer(m) != "tools"
        for t in RUNTIME[m] | TYPING[m] | LAZY[m]
        if layer(t) == "tools"
    )
    assert importers == []
