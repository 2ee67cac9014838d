"""The grader on honest submissions: the synthetic chapter of test_assignments.py, the
command line, malformed input, and every real chapter (instructor version full marks, one
exercise solved gets exactly its points, the others 0)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_tools import assignments as A
from course_tools import grade as G
from test_assignments import _by_id, _nbg, synthetic_chapter

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
NAME = "99_synth"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("gradecourse")
    chapters = root / "chapters"
    chapters.mkdir()
    nbformat.write(synthetic_chapter(), str(chapters / f"{NAME}.ipynb"))
    A.build(chapters, root / "assignments")
    src, rel = A.assignment_paths(root / "assignments", NAME)
    return {"root": root, "chapters": chapters, "ref": G.load_reference(NAME, chapters),
            "source": nbformat.read(str(src), 4), "release": nbformat.read(str(rel), 4),
            "release_path": rel}


def grade(nb, course, **kw) -> G.Report:
    kw.setdefault("timeout", 20)
    kw.setdefault("deadline", 120)
    return G.grade_notebook(nb, course["ref"], chapters_dir=course["chapters"], **kw)


def scores(report: G.Report) -> dict[str, float]:
    return {c.grade_id: c.points for c in report.cells}


def solved(course, *gids) -> nbformat.NotebookNode:
    """The student version with the instructor's code in the given solution cells."""
    nb = copy.deepcopy(course["release"])
    for gid in gids:
        _by_id(nb)[gid].source = _by_id(course["source"])[gid].source
    return nb


def test_sandbox_status_is_reported(course):
    """Where bubblewrap works (CI installs it, .ci/run) the kernel runs in it; where it does not,
    the report says so. COURSE_REQUIRE_SANDBOX=1 makes a missing sandbox a failure."""
    works, why = G.bwrap_status()
    if os.environ.get("COURSE_REQUIRE_SANDBOX"):
        assert works, why
    report = grade(course["release"], course)
    if works:
        assert report.sandbox == "bubblewrap" and not report.notes
    else:
        assert why.startswith("not sandboxed") and any(why in n for n in report.notes)


def test_full_empty_and_partial(course):
    full = grade(course["source"], course)
    assert scores(full) == {"ex-syn-square-tests": 2, "ex-syn-cube-tests": 3}
    assert (full.points, full.max_points, full.assignment) == (5, 5, NAME)
    assert full.manual == ["ex-syn-derive-answer", "ex-syn-square-answer", "ex-syn-open-answer"]
    assert not full.ignored and not full.notes

    empty = grade(course["release"], course)
    assert scores(empty) == {"ex-syn-square-tests": 0, "ex-syn-cube-tests": 0}
    assert {c.error for c in empty.cells} == {"NotImplementedError"}

    partial = grade(solved(course, "ex-syn-cube-solution"), course)
    assert scores(partial) == {"ex-syn-square-tests": 0, "ex-syn-cube-tests": 3}
    assert [c.status for c in partial.cells] == ["fail", "pass"] and partial.points == 3


def test_hidden_tests_run_at_grading(course):
    """square() passing the visible test but not the hidden one loses the points."""
    nb = copy.deepcopy(course["release"])
    _by_id(nb)["ex-syn-square-solution"].source = "def square(x):\n    return abs(x) * x"
    assert scores(grade(nb, course))["ex-syn-square-tests"] == 0


def test_deleted_test_cell_scores_zero_once(course):
    nb = solved(course, "ex-syn-square-solution", "ex-syn-cube-solution")
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "ex-syn-cube-tests"]
    report = grade(nb, course)
    assert [(c.grade_id, c.status) for c in report.cells] == \
        [("ex-syn-square-tests", "pass"), ("ex-syn-cube-tests", "missing")]
    assert (report.points, report.max_points) == (2, 5)


def test_timeout_stderr_and_partial_credit(course):
    meta = lambda gid: _nbg(gid, grade=True, solution=False, points=1)  # noqa: E731
    ref_nb = new_notebook(cells=[
        new_code_cell("assert x == 1", metadata=meta("runs-after-timeout")),
        new_code_cell("import sys\nprint('oops', file=sys.stderr)", metadata=meta("stderr")),
        new_code_cell("0.25", metadata=meta("partial")),
        new_code_cell("import time\ntime.sleep(60)", metadata=meta("slow")),
    ])
    ref = G.Reference("t", ref_nb, {c.metadata.nbgrader.grade_id: c for c in ref_nb.cells}, [])
    sub = new_notebook(cells=[new_code_cell("import time\ntime.sleep(60)"), new_code_cell("x = 1")]
                       + copy.deepcopy(ref_nb.cells))
    report = G.grade_notebook(sub, ref, timeout=2, deadline=60, chapters_dir=course["chapters"])
    got = {c.grade_id: (c.points, c.status, c.error) for c in report.cells}
    assert got == {"runs-after-timeout": (1, "pass", None), "stderr": (0, "fail", "stderr output"),
                   "partial": (0.25, "partial", None), "slow": (0, "fail", "timeout")}
    assert report.seconds < 30


# --------------------------------------------------------------------------
# Command line and malformed input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["text", "binary", "json", "bad-cell", "missing"])
def test_malformed_submissions_get_one_line_and_exit_2(kind, course, tmp_path, capsys):
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
    elif kind == "bad-cell":
        data = json.loads(nbformat.writes(course["release"]))
        data["cells"][1]["source"] = 42
        path.write_text(json.dumps(data))
        expected = "not a valid Jupyter notebook"
    else:
        path = tmp_path / "absent.ipynb"
        expected = "no such file"
    assert G.main([str(path), "--assignment", NAME, "--chapters", str(course["chapters"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("name, expected", [
    ("../99_synth", "not a path"), ("sub/99_synth", "not a path"), ("..", "not a path"),
    ("99_synth\\x", "not a path"), ("nope", "unknown assignment"), ("", "give the assignment"),
])
def test_assignment_names_are_checked(name, expected, course, capsys):
    code = G.main([str(course["release_path"]), "--assignment", name, "--chapters", str(course["chapters"])])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and err.count("\n") == 1


def test_command_line_text_and_json(course):
    env = dict(os.environ, MPLBACKEND="Agg")
    args = [PYTHON, "-m", "course_tools.grade", str(course["release_path"]), "--assignment", NAME,
            "--chapters", str(course["chapters"])]
    text = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.strip().splitlines()
    assert lines[-1] == "Score: 0 / 5"
    assert any(x.startswith("ex-syn-cube-tests") and "0 / 3" in x for x in lines)
    data = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, env=env,
                                     timeout=300).stdout)
    assert data["points"] == 0 and data["max_points"] == 5 and data["assignment"] == NAME
    assert [c["grade_id"] for c in data["cells"]] == ["ex-syn-square-tests", "ex-syn-cube-tests"]


def test_make_grade_target(course):
    """`make grade NB=... ASSIGNMENT=...` passes GRADE_ARGS through; last line is the score."""
    nb = course["root"] / "full.ipynb"
    nbformat.write(course["source"], str(nb))
    proc = subprocess.run(["make", "--no-print-directory", "-s", "grade", f"NB={nb}", f"ASSIGNMENT={NAME}",
                           f"GRADE_ARGS=--chapters {course['chapters']}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "Score: 5 / 5"


# --------------------------------------------------------------------------
# The real chapters
# --------------------------------------------------------------------------

GRADED_CHAPTERS = A.chapters_with_graded_cells()


@pytest.mark.parametrize("path", GRADED_CHAPTERS, ids=[p.stem for p in GRADED_CHAPTERS])
def test_chapter_solutions_earn_their_points_and_stubs_zero(path):
    """Two submissions of the student version: (A) every autograded exercise solved but the
    first, (B) only the first solved. Each exercise's tests earn exactly its points where it
    is solved and 0 where it is a stub; A + B is the instructor's full marks. (Each solution
    runs once, which keeps the test's time near one run of the instructor version.)"""
    source, exercises = A._build_source(A.read_notebook(path), path.stem, 0.0)
    release = A.make_release(source)
    ref = G.load_reference(path.stem)
    auto = [e for e in exercises if e.autograded]
    points = {g: float(ref.tests[g].metadata.nbgrader.points) for g in ref.tests}
    total = 0.0
    for solved_ex in (auto[1:], auto[:1]):
        nb = copy.deepcopy(release)
        src_cells, sub_cells = _by_id(source), _by_id(nb)
        for e in solved_ex:
            for gid in e.solution_ids:
                sub_cells[gid].source = src_cells[gid].source
        report = G.grade_notebook(nb, ref, timeout=120, deadline=300)
        solved_tests = {g for e in solved_ex for g in e.test_ids}
        expected = {g: (p if g in solved_tests else 0.0) for g, p in points.items()}
        got = scores(report)
        assert got == expected, [(c.grade_id, c.error, c.message) for c in report.cells
                                 if got[c.grade_id] != expected[c.grade_id]]
        total += report.points
    assert total == sum(points.values()) == sum(e.points for e in auto) > 0


def test_without_the_sandbox_it_still_grades_and_says_so(course):
    """--no-sandbox (what happens where bubblewrap does not work): same scores, a warning."""
    full = grade(course["source"], course, sandbox=False)
    empty = grade(course["release"], course, sandbox=False)
    assert (full.points, empty.points) == (5, 0)
    assert not full.sandbox.startswith("bubblewrap")
    assert any("ran with your user's rights" in n for n in full.notes)
