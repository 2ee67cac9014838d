"""Grade a whole class with nbgrader's own pipeline, executed safely.

``python -m course_tools.grade_class SUBMISSIONS_DIR --assignment NAME [--out DIR]``

``SUBMISSIONS_DIR`` holds one notebook per student (``alice.ipynb``, ``bob.ipynb``...; the
file name without ``.ipynb`` is the student id). ``--out`` (default ``grades/NAME``) becomes an
nbgrader course directory, and nbgrader does the bookkeeping:

1. ``source/NAME/NAME.ipynb`` is the instructor notebook (:func:`course_tools.grade.load_reference`),
   and ``nbgrader generate_assignment`` records its cells, points and checksums in
   ``gradebook.db``;
2. each submission is sanitized by :func:`course_tools.grade.sanitize` (reference tests in
   place, extra / duplicate test cells unmarked) into ``submitted/STUDENT/NAME/NAME.ipynb``;
3. ``nbgrader autograde`` runs its sanitizing and scoring preprocessors, with its ``Execute``
   preprocessor replaced by :class:`SafeExecute` (the sandbox, deadlines, output cap, hook
   reset and sentinels of :mod:`course_tools.grade`);
4. ``nbgrader generate_feedback`` writes ``feedback/STUDENT/NAME/NAME.html`` and
   ``nbgrader export`` the gradebook ``grades.csv``.

The course directory can then be opened in nbgrader's formgrader to grade the written
answers by hand. A submission that is not a readable notebook gets no file (nbgrader scores
it 0) and is listed in the summary.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import nbformat
from traitlets import Bool, Float, Integer

from course_tools import assignments
from course_tools import grade as G

from nbgrader.preprocessors import NbGraderPreprocessor

COURSE_ID = "model-collapse"


class SafeExecute(NbGraderPreprocessor):
    """nbgrader preprocessor that executes a notebook the way :mod:`course_tools.grade` does.

    Test cells that must score 0 (killed, not executed, compromised kernel) get an error
    output, so that nbgrader's ``SaveAutoGrades`` scores them 0; the sentinel cells are
    removed again before nbgrader writes the graded notebook and the feedback.
    """

    timeout = Float(G.DEFAULT_TIMEOUT, help="seconds per cell").tag(config=True)
    deadline = Float(G.DEFAULT_DEADLINE, help="seconds for the whole notebook").tag(config=True)
    max_output = Integer(G.DEFAULT_MAX_OUTPUT, help="bytes of output kept per cell").tag(config=True)
    sandbox = Bool(True, allow_none=True, help="require bubblewrap (None: when available)").tag(config=True)

    def preprocess(self, nb, resources):
        nonce = secrets.token_hex(8)
        G.add_sentinels(nb, nonce)
        info, label = G.execute_safely(nb, timeout=self.timeout, deadline=self.deadline,
                                       max_output=self.max_output, sandbox=self.sandbox, nonce=nonce)
        G.mark_failures(nb, info)
        nb.cells = [c for c in nb.cells if c.metadata.get(G.ROLE, {}).get("role") != "sentinel"]
        for cell in nb.cells:
            cell.metadata.pop(G.ROLE, None)
        if info.stopped:
            self.log.warning("%s: execution stopped: %s", resources.get("nbgrader", {}).get("student"),
                             info.stopped)
        return nb, resources


NBGRADER_CONFIG = '''\
# Written by course_tools.grade_class: nbgrader's autograde, with its Execute preprocessor
# replaced by the course's sandboxed one.
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                    LimitOutput, SaveAutoGrades)
from course_tools.grade_class import SafeExecute

c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course!r}
c.Autograde.autograde_preprocessors = [SafeExecute, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]
c.SafeExecute.timeout = {timeout!r}
c.SafeExecute.deadline = {deadline!r}
c.SafeExecute.sandbox = {sandbox!r}
'''


def student_id(path: Path) -> str:
    """The student id of a submission file: its name without ``.ipynb``, made safe."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip(".") or "student"


def _nbgrader(args: list[str], root: Path) -> None:
    exe = Path(sys.executable).parent / "nbgrader"
    env = dict(os.environ, PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(exe)] + args, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [x for x in proc.stderr.splitlines() if "ERROR" in x or "Error" in x]
        raise RuntimeError(f"nbgrader {args[0]} failed: {(errors or proc.stderr.splitlines() or ['?'])[-1]}")


def grade_class(submissions: Path, assignment: str, out: Path, *,
                chapters_dir: Path = assignments.CHAPTERS_DIR, source_dir: Path | None = None,
                timeout: float = G.DEFAULT_TIMEOUT, deadline: float = G.DEFAULT_DEADLINE,
                sandbox: bool | None = None, force: bool = False) -> dict:
    """Grade every ``*.ipynb`` of ``submissions``; returns the summary (also ``out/summary.json``)."""
    ref = G.load_reference(assignment, chapters_dir, source_dir)
    submissions, out = Path(submissions), Path(out).resolve()
    if not submissions.is_dir():
        raise G.GradeError(f"SUBMISSIONS {submissions}: not a folder")
    files = sorted(submissions.glob("*.ipynb"))
    if not files:
        raise G.GradeError(f"SUBMISSIONS {submissions}: no .ipynb files")
    ids = [student_id(p) for p in files]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise G.GradeError(f"SUBMISSIONS {submissions}: two files give the same student id {dup[0]!r}")
    if sandbox is None:
        sandbox = G.bwrap_status()[0] or None
    if (out / "gradebook.db").exists():
        if not force:
            raise G.GradeError(f"--out {out}: holds a gradebook already (use --force to start again)")
        for sub in ("gradebook.db", "source", "release", "submitted", "autograded", "feedback"):
            p = out / sub
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(
        root=str(out), course=COURSE_ID, timeout=float(timeout), deadline=float(deadline), sandbox=sandbox))
    src = out / "source" / assignment / f"{assignment}.ipynb"
    src.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(ref.notebook, str(src))
    _nbgrader(["generate_assignment", assignment, "--force"], out)

    students: dict[str, dict] = {}
    for path, sid in zip(files, ids):
        entry: dict = {"file": path.name, "ignored": [], "missing": []}
        dest = out / "submitted" / sid / assignment / f"{assignment}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            prep = G.sanitize(G.read_submission(path), ref)
        except G.GradeError as err:
            entry["error"] = str(err)
        else:
            nbformat.write(prep.nb, str(dest))
            entry.update(ignored=prep.ignored, missing=prep.missing)
        students[sid] = entry
    _nbgrader(["autograde", assignment, "--force"], out)
    _nbgrader(["generate_feedback", assignment, "--force"], out)
    _nbgrader(["export", "--to", str(out / "grades.csv")], out)

    with open(out / "grades.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["student_id"] in students and row["assignment"] == assignment:
                students[row["student_id"]].update(score=float(row["score"]), max_score=float(row["max_score"]))
    total = sum(float(c.metadata.nbgrader.points) for c in ref.tests.values())
    for sid, entry in students.items():
        entry.setdefault("score", 0.0)
        entry.setdefault("max_score", total)
        html = out / "feedback" / sid / assignment / f"{assignment}.html"
        entry["feedback"] = str(html.relative_to(out)) if html.is_file() else None
    summary = {"assignment": assignment, "sandbox": "bubblewrap" if sandbox else G.bwrap_status()[1],
               "gradebook": "grades.csv", "students": students}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict, out: Path) -> str:
    lines = [f"Assignment {summary['assignment']} (sandbox: {summary['sandbox']})"]
    for sid, e in summary["students"].items():
        score = f"{e.get('score', 0):g} / {e.get('max_score', 0):g}"
        extra = []
        if e.get("error"):
            extra.append(f"not graded: {e['error']}")
        if e["ignored"]:
            extra.append("ignored test cells: " + ", ".join(e["ignored"]))
        if e["missing"]:
            extra.append("deleted test cells: " + ", ".join(e["missing"]))
        lines.append(f"{sid:<20} {score:>10}" + (f"   ({'; '.join(extra)})" if extra else ""))
    lines.append(f"Gradebook: {out / 'grades.csv'}; feedback: {out / 'feedback'}/<student>/"
                 f"{summary['assignment']}/{summary['assignment']}.html")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = G._Parser(prog="python -m course_tools.grade_class",
                       description="Grade a folder of submissions (one .ipynb per student) with nbgrader.")
    parser.add_argument("submissions", type=Path, help="folder of STUDENT.ipynb files")
    parser.add_argument("--assignment", required=True, help="assignment name, e.g. 02_fully_synthetic")
    parser.add_argument("--out", type=Path, default=None, help="nbgrader course folder to write (default grades/NAME)")
    parser.add_argument("--force", action="store_true", help="start again when --out holds a gradebook")
    parser.add_argument("--timeout", type=G._positive(float), default=G.DEFAULT_TIMEOUT, help="seconds per cell")
    parser.add_argument("--deadline", type=G._positive(float), default=G.DEFAULT_DEADLINE,
                        help="seconds per notebook")
    parser.add_argument("--chapters", type=Path, default=assignments.CHAPTERS_DIR)
    parser.add_argument("--source", type=Path, default=None, help="nbgrader source folder instead of the chapters")
    parser.add_argument("--no-sandbox", dest="sandbox", action="store_false", default=None,
                        help="run without bubblewrap (still in throw-away folders)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        out = args.out or Path("grades") / G.check_name(args.assignment)
        summary = grade_class(args.submissions, args.assignment, out, chapters_dir=args.chapters,
                              source_dir=args.source, timeout=args.timeout, deadline=args.deadline,
                              sandbox=args.sandbox, force=args.force)
    except G.GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
