"""Assignments generated from the chapters' exercise sections, and their autograder.

First on a small synthetic chapter (every construct the generator handles),
then on every real chapter that has autograder cells: the instructor version
gets full marks, the student version zero on every exercise, and a submission
with one exercise solved gets exactly that exercise's points.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from collapse_lib import assignments as A
from collapse_lib import grade as G

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


def _grade(nb, chapters, **kw) -> G.Report:
    return G.grade_notebook(nb, chapters_dir=chapters, cwd=chapters, timeout=kw.pop("timeout", 60), **kw)


def _scores(report: G.Report) -> dict[str, float]:
    return {c.grade_id: c.points for c in report.cells}


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
# Grading the synthetic assignment
# --------------------------------------------------------------------------

def test_synthetic_full_zero_and_partial(course):
    source = nbformat.read(str(course["source"]), 4)
    release = nbformat.read(str(course["release"]), 4)
    chapters = course["chapters"]

    full = _grade(source, chapters)
    assert _scores(full) == {"ex-syn-square-tests": 2, "ex-syn-cube-tests": 3}
    assert full.points == full.max_points == 5 and full.chapter == "99_synth"
    assert set(full.manual) == {"ex-syn-derive-answer", "ex-syn-square-answer", "ex-syn-open-answer"}

    zero = _grade(release, chapters)
    assert _scores(zero) == {"ex-syn-square-tests": 0, "ex-syn-cube-tests": 0}
    assert {c.error for c in zero.cells} == {"NotImplementedError"}

    partial = copy.deepcopy(release)
    _by_id(partial)["ex-syn-cube-solution"].source = _by_id(source)["ex-syn-cube-solution"].source
    report = _grade(partial, chapters)
    assert _scores(report) == {"ex-syn-square-tests": 0, "ex-syn-cube-tests": 3}
    assert [c.status for c in report.cells] == ["fail", "pass"] and report.points == 3


def test_hidden_tests_run_at_grading(course):
    """A square() that passes the visible test but not the hidden one loses the points."""
    release = nbformat.read(str(course["release"]), 4)
    _by_id(release)["ex-syn-square-solution"].source = "def square(x):\n    return abs(x) * x"
    restored = _grade(release, course["chapters"])
    assert _scores(restored)["ex-syn-square-tests"] == 0
    as_released = _grade(release, None)          # no reference: only the visible test runs
    assert _scores(as_released)["ex-syn-square-tests"] == 2


def test_edited_and_deleted_test_cells(course):
    source = nbformat.read(str(course["source"]), 4)
    release = nbformat.read(str(course["release"]), 4)
    cheat = copy.deepcopy(release)
    _by_id(cheat)["ex-syn-cube-tests"].source = "pass"          # stubbed cube, neutered test
    _by_id(cheat)["ex-syn-square-solution"].source = _by_id(source)["ex-syn-square-solution"].source

    restored = _grade(cheat, course["chapters"])
    cube = {c.grade_id: c for c in restored.cells}["ex-syn-cube-tests"]
    assert cube.tampered and cube.restored and cube.points == 0
    assert restored.points == 2

    checksum_only = _grade(cheat, None)
    cube = {c.grade_id: c for c in checksum_only.cells}["ex-syn-cube-tests"]
    assert cube.tampered and not cube.restored and cube.points == 0
    assert restored.tampered == checksum_only.tampered == ["ex-syn-cube-tests"]

    deleted = copy.deepcopy(release)
    deleted.cells = [c for c in deleted.cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") != "ex-syn-square-tests"]
    report = _grade(deleted, course["chapters"])
    missing = {c.grade_id: c for c in report.cells}["ex-syn-square-tests"]
    assert missing.status == "missing" and missing.points == 0 and report.max_points == 5


def test_timeout_errors_stderr_and_partial_credit():
    meta = lambda gid: _nbg(gid, grade=True, solution=False, points=1)  # noqa: E731
    nb = new_notebook(cells=[
        new_code_cell("import time\ntime.sleep(60)"),                      # interrupted after 2 s
        new_code_cell("x = 1"),
        new_code_cell("assert x == 1", metadata=meta("runs-after-timeout")),
        new_code_cell("import sys\nprint('oops', file=sys.stderr)", metadata=meta("stderr")),
        new_code_cell("0.25", metadata=meta("partial")),
        new_code_cell("import time\ntime.sleep(60)", metadata=meta("slow")),
    ])
    report = G.grade_notebook(nb, timeout=2, chapters_dir=None)
    got = {c.grade_id: (c.points, c.status, c.error) for c in report.cells}
    assert got == {"runs-after-timeout": (1, "pass", None), "stderr": (0, "fail", "stderr output"),
                   "partial": (0.25, "partial", None), "slow": (0, "fail", "timeout")}
    assert report.seconds < 30


# --------------------------------------------------------------------------
# Command line and malformed input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["text", "binary", "json", "no-graded-cells", "missing"])
def test_malformed_submissions_get_a_clear_error(kind, tmp_path, capsys):
    path = tmp_path / "submission.ipynb"
    if kind == "text":
        path.write_text("this is my homework\n")
        expected = "not JSON"
    elif kind == "binary":
        path.write_bytes(bytes(range(256)))
        expected = "not a Jupyter notebook"
    elif kind == "json":
        path.write_text(json.dumps({"answer": 42}))
        expected = "not a valid Jupyter notebook"
    elif kind == "no-graded-cells":
        nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), str(path))
        expected = "no autograded test cells"
    else:
        path = tmp_path / "absent.ipynb"
        expected = "no such file"
    assert G.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_command_line_json_and_errors(course, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    ok = subprocess.run([PYTHON, "-m", "collapse_lib.grade", str(course["release"]), "--json",
                         "--chapters", str(course["chapters"])],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["points"] == 0 and data["max_points"] == 5 and data["chapter"] == "99_synth"
    assert {c["grade_id"] for c in data["cells"]} == {"ex-syn-square-tests", "ex-syn-cube-tests"}
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    proc = subprocess.run([PYTHON, "-m", "collapse_lib.grade", str(bad)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "not JSON" in proc.stderr


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


@pytest.mark.parametrize("path", GRADED_CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_instructor_version_gets_full_marks(path, chapter_versions):
    source, _, _ = chapter_versions(path)
    report = _grade(source, A.CHAPTERS_DIR, timeout=120)
    failed = [(c.grade_id, c.error, c.message) for c in report.cells if c.status != "pass"]
    assert not failed and report.points == report.max_points > 0, failed


@pytest.mark.parametrize("path", GRADED_CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_student_version_gets_zero(path, chapter_versions):
    _, release, _ = chapter_versions(path)
    report = _grade(release, A.CHAPTERS_DIR, timeout=120)
    passing = [c.grade_id for c in report.cells if c.points > 0]
    assert not passing, f"these tests pass on the stubbed student version: {passing}"
    assert not report.tampered


@pytest.mark.parametrize("path", GRADED_CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_one_solved_exercise_gets_its_points(path, chapter_versions):
    source, release, exercises = chapter_versions(path)
    solved = next(e for e in exercises if e.autograded)
    submission = copy.deepcopy(release)
    src_cells, sub_cells = _by_id(source), _by_id(submission)
    for gid in solved.solution_ids:
        sub_cells[gid].source = src_cells[gid].source
    report = _grade(submission, A.CHAPTERS_DIR, timeout=120)
    scores = _scores(report)
    assert {g: scores[g] for g in solved.test_ids} == \
           {g: float(src_cells[g].metadata.nbgrader.points) for g in solved.test_ids}
    assert report.points == solved.points, scores


def test_instructors_page_table_matches_the_notebooks():
    assert A.page_table(REPO / "instructors.md") == A.exercise_table(), \
        "run: .venv/bin/python -m collapse_lib.assignments --update-page"
