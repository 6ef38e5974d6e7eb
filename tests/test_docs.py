"""Every Python code block of README.md and docs/*.md runs as written.

The test extracts each fenced block that opens with a ```python line from README.md and
every docs/*.md page and executes the blocks of one page in order, in one namespace per page
(so a later block may use what an earlier block of the same page defined), in a temporary
working directory, with the toolkit's generated-data cache (``SDCL_TOOLKIT_CACHE``) pointed
at a temporary folder shared by the pages. Blocks therefore define their inputs themselves,
with small generated data (``sdcl_toolkit.data.clustered_features``,
``sdcl_toolkit.data.synthetic``), so a reader can paste them as they are.

Convention for a block that cannot run here: put the HTML comment

    <!-- not-run: reason -->

on the line before its opening fence (blank lines in between are allowed). Use it only for
blocks that need what a test cannot have: a real dataset, a pretrained checkpoint, a GPU,
``torchrun`` or a full training run; give the reason. Such blocks are still compiled, so
they must be valid Python. API synopses (signatures with ``...``, ``-> Type``) go in
```text blocks. Blocks of other languages (bash, text) are not executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")

# pages that write a generated image dataset and load it (1-7 s on a loaded 2-core CPU)
SLOW_PAGES = {"datasets.md", "data_pipeline.md"}


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the reason, or None for a block that runs

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a page, in order, with their not-run reasons."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous = ""  # the last non-blank line outside a block
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        start, indent = i, len(fence["indent"])
        i += 1
        body = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i][indent:])
            i += 1
        i += 1  # closing fence
        if fence["lang"] == "python":
            marker = NOT_RUN.match(previous)
            reason = marker["reason"] if marker else None
            blocks.append(Block(page, start + 1, "\n".join(body) + "\n", reason))
        previous = ""
    return blocks


def _page_params():
    for page in PAGES:
        if not python_blocks(page):
            continue
        marks = [pytest.mark.slow] if page.name in SLOW_PAGES else []
        yield pytest.param(page, id=page.name, marks=marks)


@pytest.fixture(scope="module")
def docs_cache(tmp_path_factory) -> Path:
    """One generated-data cache for all pages (the datasets are written once)."""
    return tmp_path_factory.mktemp("docs_cache")


@pytest.mark.parametrize("page", list(_page_params()))
def test_page_blocks_run(page: Path, docs_cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SDCL_TOOLKIT_CACHE", str(docs_cache))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for block in python_blocks(page):
        code = compile(block.code, block.where, "exec")
        if block.not_run is not None:
            continue
        try:
            exec(code, namespace)
        except Exception as error:  # name the block in the failure
            raise AssertionError(f"code block at {block.where} failed: {error!r}") from error


def test_not_run_markers_are_explained_and_used() -> None:
    """Every ``<!-- not-run: ... -->`` gives a reason and precedes a ```python block."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        markers = list(re.finditer(r"<!--\s*not-run:(.*?)-->", text))
        used = [b for b in python_blocks(page) if b.not_run is not None]
        assert len(markers) == len(used), f"{page.name}: a not-run marker is not before a block"
        for block in used:
            assert block.not_run, f"{block.where}: a not-run marker needs a reason"


def test_blocks_are_found() -> None:
    """The extraction sees the README's blocks and marks the not-run ones."""
    readme = python_blocks(ROOT / "README.md")
    assert readme and all(block.not_run is None for block in readme)
    assert any(block.not_run for page in PAGES for block in python_blocks(page))
