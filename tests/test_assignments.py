"""Assignments generated from the chapters' exercise sections.

First on a small synthetic chapter (every construct the generator handles), then on every
real chapter. Grading is tested in test_grade.py and test_grade_attacks.py, which reuse the
synthetic chapter defined here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_tools import assignments as A

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# --------------------------------------------------------------------------
# A synthetic chapter
# --------------------------------------------------------------------------

def _nbg(gid: str, *, grade: bool, solution: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": gid, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


# Strings that appear only in solutions: none may reach the student version.
SECRETS = ["WRITTEN-ANSWER-MARKER", "CODE-ANSWER-MARKER", "HIDDEN-MARKER",
           "PROSE-ANSWER-MARKER", "DEMO-MARKER", "OPEN-ANSWER-MARKER", "BEGIN SOLUTION",
           "BEGIN HIDDEN TESTS"]


def synthetic_chapter() -> nbformat.NotebookNode:
    md, code = new_markdown_cell, new_code_cell
    cells = [
        md("# A synthetic chapter\n\nProse citing {cite}`seddik2024bad`."),
        code("EARLIER = 1  # exercises must not depend on this"),
        md("## Exercises\n\nFour exercises."),
        code("import math"),
        md("```{exercise} Derive a sum\n:label: ex-syn-derive\n"
           "Show that $1+\\dots+n = n(n+1)/2$; compare {prf:ref}`thm-x`.\n```\n\n"
           "```{solution} ex-syn-derive\n:class: dropdown\nWRITTEN-ANSWER-MARKER: pair the terms.\n```"),
        md("```{exercise} Squares\n:label: ex-syn-square\nWrite `square(x)` returning {math}`x^2`.\n```"),
        md("```{solution-start} ex-syn-square\n:class: dropdown\n```"),
        code("def square(x):\n    ### BEGIN SOLUTION\n    return x * x  # CODE-ANSWER-MARKER\n"
             "    ### END SOLUTION", metadata=_nbg("ex-syn-square-solution", grade=False, solution=True)),
        code("assert square(3) == 9\n### BEGIN HIDDEN TESTS\nassert square(-2) == 4  # HIDDEN-MARKER\n"
             "### END HIDDEN TESTS", metadata=_nbg("ex-syn-square-tests", grade=True, solution=False, points=2)),
        md("PROSE-ANSWER-MARKER: integer multiplication is exact,\n```{math}\n3 \\cdot 3 = 9\n```\n"
           "so the test is exact."),
        code("print([square(k) for k in range(4)])  # DEMO-MARKER"),
        md("```{solution-end}\n```"),
        md("```{exercise} Cubes\n:label: ex-syn-cube\nWrite `cube(x)`.\n```"),
        md("```{solution-start} ex-syn-cube\n:class: dropdown\n```"),
        code("def cube(x):\n    ### BEGIN SOLUTION\n    return x ** 3\n    ### END SOLUTION",
             metadata=_nbg("ex-syn-cube-solution", grade=False, solution=True)),
        code("assert cube(2) == 8\nassert math.isclose(cube(0.5), 0.125)",
             metadata=_nbg("ex-syn-cube-tests", grade=True, solution=False, points=3)),
        md("```{solution-end}\n```"),
        md("```{exercise} Open question\n:label: ex-syn-open\nWhat happens for large $n$?\n```\n"
           "````{solution} ex-syn-open\n:class: dropdown\nOPEN-ANSWER-MARKER\n```{math}\nn^2\n```\n````"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    chapters = root / "chapters"
    chapters.mkdir()
    nbformat.write(synthetic_chapter(), str(chapters / "99_synth.ipynb"))
    no_ex = new_notebook(cells=[new_markdown_cell("# No exercises here")])
    nbformat.write(no_ex, str(chapters / "98_plain.ipynb"))
    made = A.build(chapters, root / "assignments")
    src, rel = A.assignment_paths(root / "assignments", "99_synth")
    return {"root": root, "chapters": chapters, "made": made, "source": src, "release": rel}


def _by_id(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------

def test_build_lays_out_an_nbgrader_course(course):
    assert list(course["made"]) == ["99_synth"]          # the chapter without exercises is skipped
    assert course["source"].is_file() and course["release"].is_file()
    assert (course["root"] / "assignments" / "nbgrader_config.py").is_file()
    ex = course["made"]["99_synth"]
    assert [e.label for e in ex] == ["ex-syn-derive", "ex-syn-square", "ex-syn-cube", "ex-syn-open"]
    assert [e.points for e in ex] == [0, 2, 3, 0]
    assert [e.kind for e in ex] == ["written", "autograded + written", "autograded", "written"]
    assert ex[1].answer_ids == ["ex-syn-square-answer"]    # one answer cell for one prose cell
    assert ex[1].solution_ids == ["ex-syn-square-solution", "ex-syn-square-code"]


def test_student_version_has_no_solutions(course):
    source = nbformat.read(str(course["source"]), 4)
    release = nbformat.read(str(course["release"]), 4)
    src_text, rel_text = json.dumps(source), json.dumps(release)
    for secret in SECRETS:
        assert secret in src_text, secret
        assert secret not in rel_text, secret
    assert "EARLIER" not in src_text                       # only the exercise section
    cells = _by_id(release)
    assert "raise NotImplementedError()" in cells["ex-syn-square-solution"].source
    assert cells["ex-syn-square-solution"].source.startswith("def square(x):")
    assert cells["ex-syn-derive-answer"].source == "YOUR ANSWER HERE"
    assert cells["ex-syn-square-tests"].source == "assert square(3) == 9"
    # test cells locked, checksums recorded, outputs cleared
    for gid in ("ex-syn-square-tests", "ex-syn-cube-tests"):
        assert cells[gid].metadata["editable"] is False and cells[gid].metadata["deletable"] is False
        assert "checksum" in cells[gid].metadata["nbgrader"]
    assert all(c.outputs == [] for c in release.cells if c.cell_type == "code")
    # statements kept and readable in Jupyter (no MyST directives left)
    text = "\n".join(c.source for c in release.cells if c.cell_type == "markdown")
    assert "### Exercise 2: Squares" in text and "returning $x^2$" in text
    assert "{exercise}" not in text and "{solution" not in text
    header = release.cells[0].source
    assert header.startswith("# Assignment: A synthetic chapter") and "5 autograded points" in header


def test_jupyter_markdown_rewrites_myst():
    src = ("See {cite}`a2024` and {prf:ref}`thm-one` or {doc}`the notes <notes>`.\n"
           "```{math}\nx^2\n```\n"
           "````{admonition} Hint\nUse ```{math}``` blocks:\n```python\nprint(1)\n```\n````")
    out = A.jupyter_markdown(src)
    assert "[a2024]" in out and "`thm-one`" in out and "the notes" in out
    assert "$$\nx^2\n$$" in out
    assert "> **Hint**" in out and "> ```python" in out


@pytest.mark.parametrize("cells, message", [
    ([new_markdown_cell("# T\n\nno exercise heading")], "no markdown cell"),
    ([new_markdown_cell("## Exercises"), new_markdown_cell("```{solution-start} ex-a\n```")],
     "no solution-end"),
    ([new_markdown_cell("## Exercises"),
      new_code_cell("assert 1", metadata=_nbg("t", grade=True, solution=False, points=1)),
      new_code_cell("assert 1", metadata=_nbg("t", grade=True, solution=False, points=1))],
     "duplicate"),
])
def test_make_source_rejects_bad_chapters(cells, message):
    with pytest.raises(ValueError, match=message):
        A.make_source(new_notebook(cells=cells), "bad")


def test_release_equals_nbgrader_generate_assignment(course, tmp_path):
    """A teacher can drop the sources into an nbgrader course: nbgrader's own
    command makes the same student notebook as `make assignments`."""
    root = tmp_path / "nbcourse"
    src_dir = root / "source" / "99_synth"
    src_dir.mkdir(parents=True)
    src_dir.joinpath("99_synth.ipynb").write_bytes(course["source"].read_bytes())
    root.joinpath("nbgrader_config.py").write_text(A.NBGRADER_CONFIG)
    env = dict(os.environ, PATH=f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(Path(PYTHON).parent / "nbgrader"), "generate_assignment", "99_synth",
                           "--force"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = nbformat.read(str(root / "release" / "99_synth" / "99_synth.ipynb"), 4)
    ours = nbformat.read(str(course["release"]), 4)
    assert [(c.cell_type, c.source, c.metadata) for c in theirs.cells] == \
           [(c.cell_type, c.source, c.metadata) for c in ours.cells]


# --------------------------------------------------------------------------
# The real chapters
# --------------------------------------------------------------------------

GRADED_CHAPTERS = A.chapters_with_graded_cells()
CHAPTER_IDS = [p.stem for p in GRADED_CHAPTERS]


@pytest.fixture(scope="module")
def chapter_versions():
    cache: dict[str, tuple] = {}

    def get(path: Path):
        if path.stem not in cache:
            source, exercises = A._build_source(A.read_notebook(path), path.stem, 0.0)
            cache[path.stem] = (source, A.make_release(source), exercises)
        return cache[path.stem]
    return get


@pytest.mark.parametrize("path", A.chapters_with_exercises(), ids=lambda p: p.stem)
def test_chapter_release_has_no_solutions(path, chapter_versions):
    source, release, exercises = chapter_versions(path)
    text = json.dumps(release)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    for cell in source.cells:
        if A.is_solution_cell(cell) and cell.cell_type == "markdown":
            body = cell.source.split("\n", 2)[-1].strip()
            assert body not in text, f"written solution of {cell.metadata.nbgrader.grade_id} leaked"
    assert [e.kind for e in exercises], f"{path.stem}: exercise section has no exercises"


def test_instructors_page_table_matches_the_notebooks():
    assert A.page_table(REPO / "instructors.md") == A.exercise_table(), \
        "run: .venv/bin/python -m course_tools.assignments --update-page"
