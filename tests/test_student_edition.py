"""`make book-student`: student notebooks without solutions, the derived configuration, and
gated solutions hidden (sphinx-exercise's hide_solutions alone leaves them on the page)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from course_tools import assignments as A
from course_tools import student_edition as S

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", S.toc_notebooks(), ids=lambda p: p.stem)
def test_student_notebook_keeps_the_chapter_and_drops_the_solutions(path):
    chapter = A.read_notebook(path)
    nb = S.student_notebook(chapter, path.stem)       # raises if a solution marker remains
    start = A.find_exercises_heading(chapter)
    if start is None:
        assert [c.source for c in nb.cells] == [c.source for c in chapter.cells]
        return
    assert [c.source for c in nb.cells[:start]] == [c.source for c in chapter.cells[:start]]
    text = json.dumps(nb)
    assert "raise NotImplementedError()" in text or "YOUR ANSWER HERE" in text
    source = A.make_source(chapter, path.stem)
    for cell in source.cells:                          # no written solution survives
        if A.is_solution_cell(cell) and cell.cell_type == "markdown":
            assert cell.source.split("\n", 2)[-1].strip() not in text


def test_zip_holds_notebooks_library_and_results(tmp_path):
    entries = S.write_zip(tmp_path / "nb.zip")
    names = set(entries)
    assert {f"chapters/{p.name}" for p in S.toc_notebooks()} <= names
    assert "collapse_lib/__init__.py" in names and "README.txt" in names
    with zipfile.ZipFile(tmp_path / "nb.zip") as zf:
        for name in zf.namelist():
            if name.endswith(".ipynb"):
                assert "BEGIN SOLUTION" not in zf.read(name).decode()


def test_student_config_overrides_without_touching_config_yml():
    before = (REPO / "_config.yml").read_bytes()
    cfg = S.student_config()
    assert (REPO / "_config.yml").read_bytes() == before
    assert cfg["sphinx"]["config"]["hide_solutions"] is True
    assert cfg["sphinx"]["config"]["html_theme_options"]["use_download_button"] is False
    assert "course_tools.sphinx_student" in cfg["sphinx"]["extra_extensions"]
    assert all(Path(p).is_absolute() for p in cfg["sphinx"]["local_extensions"].values())
    assert cfg["launch_buttons"]["binderhub_url"] == cfg["launch_buttons"]["colab_url"] == ""


PAGE = """\
    # A page

    ```{exercise} First
    :label: ex-a
    VISIBLE-EXERCISE
    ```

    ```{solution-start} ex-a
    :class: dropdown
    ```
    SECRET-GATED prose.

    ```python
    print("SECRET-CODE")
    ```

    ```{solution-end}
    ```

    ```{exercise} Second
    :label: ex-b
    VISIBLE-TWO
    ```

    ```{solution} ex-b
    :class: dropdown
    SECRET-DROPDOWN
    ```

    VISIBLE-AFTER
    """


DOWNLOADS = """\
    # Downloads

    ```{raw} html
    <ul class="course-downloads">
      <li><a href="downloads/model-collapse-course.pdf">PDF-ITEM</a>
          (printed from this site).</li>
      <li><a href="downloads/model-collapse-notebooks.zip">ZIP-ITEM</a></li>
    </ul>
    ```
    """


def _build_tiny_book(root: Path, extensions: list[str]) -> tuple[int, str, str]:
    """(exit code, build log, text of page.html and downloads.html, or "")."""
    root.mkdir()
    (root / "_config.yml").write_text(textwrap.dedent(f"""\
        title: tiny
        execute:
          execute_notebooks: "off"
        sphinx:
          extra_extensions: {json.dumps(extensions)}
          config:
            hide_solutions: true
        """))
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: page\n  - file: downloads\n")
    (root / "index.md").write_text("# Tiny\n")
    (root / "page.md").write_text(textwrap.dedent(PAGE))
    (root / "downloads.md").write_text(textwrap.dedent(DOWNLOADS))
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(root), "-W", "--path-output", str(root / "out")],
                          capture_output=True, text=True, timeout=600)
    html = root / "out" / "_build" / "html"
    pages = [html / "page.html", html / "downloads.html"]
    return proc.returncode, proc.stdout + proc.stderr, "".join(p.read_text() for p in pages if p.is_file())


def test_gated_solutions_hidden_only_with_the_extension(tmp_path):
    # hide_solutions alone cannot build a page with a gated solution: sphinx-exercise drops the
    # solution-start but keeps a solution-end node no writer knows (and the code in between).
    code, log, _ = _build_tiny_book(tmp_path / "plain", ["sphinx_exercise"])
    assert code != 0 and "solution_end_node" in log
    # the student edition prints no PDF: its Downloads page keeps the zip and drops the PDF link
    code, log, student = _build_tiny_book(tmp_path / "student", ["sphinx_exercise", "course_tools.sphinx_student"])
    assert code == 0, log[-3000:]
    for visible in ("VISIBLE-EXERCISE", "VISIBLE-TWO", "VISIBLE-AFTER", "ZIP-ITEM"):
        assert visible in student
    assert "PDF-ITEM" not in student and "model-collapse-course.pdf" not in student
    for secret in ("SECRET-GATED", "SECRET-CODE", "SECRET-DROPDOWN"):
        assert secret not in student
