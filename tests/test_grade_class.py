"""`make grade-class`: a small class of made-up submissions (full, partial, empty, cheating,
unreadable) through nbgrader's pipeline with the safe executor: CSV gradebook, feedback HTML."""

from __future__ import annotations

import copy
import csv
import subprocess
import sys

import nbformat

from course_tools import assignments as A
from test_assignments import _by_id, synthetic_chapter
from test_grade_attacks import ATTACKS

NAME = "99_synth"


def test_grade_a_class_with_nbgrader(tmp_path):
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    nbformat.write(synthetic_chapter(), str(chapters / f"{NAME}.ipynb"))
    A.build(chapters, tmp_path / "assignments")
    src, rel = A.assignment_paths(tmp_path / "assignments", NAME)
    source, release = nbformat.read(str(src), 4), nbformat.read(str(rel), 4)
    subs = tmp_path / "submissions"
    subs.mkdir()
    nbformat.write(source, str(subs / "full.ipynb"))
    partial = copy.deepcopy(release)
    _by_id(partial)["ex-syn-cube-solution"].source = _by_id(source)["ex-syn-cube-solution"].source
    nbformat.write(partial, str(subs / "partial.ipynb"))
    nbformat.write(release, str(subs / "empty.ipynb"))
    ctx = {"release": release, "source": source}
    cheat = ATTACKS["custom-exc"][2](ctx)
    cheat.cells += ATTACKS["extra-cell-1000"][2](ctx).cells[-1:]     # and a 1000-point bonus cell
    nbformat.write(cheat, str(subs / "cheat.ipynb"))
    (subs / "lost.ipynb").write_text("my dog ate it")

    out = tmp_path / "grades"
    proc = subprocess.run([sys.executable, "-m", "course_tools.grade_class", str(subs), "--assignment", NAME,
                           "--out", str(out), "--chapters", str(chapters), "--timeout", "30"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student_id"]: (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(f)}
    assert rows == {"full": (5, 5), "partial": (3, 5), "empty": (0, 5), "cheat": (0, 5)}
    for student in rows:
        html = (out / "feedback" / student / NAME / f"{NAME}.html").read_text()
        assert "ex-syn-cube-tests" in html and "grader sentinel" not in html
    assert "lost" in proc.stdout and "not graded" in proc.stdout
    assert "bonus (not in the reference)" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "course_tools.grade_class", str(subs), "--assignment", NAME,
                            "--out", str(out), "--chapters", str(chapters)], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
