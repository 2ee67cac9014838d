"""Scoring: every reference test cell scored by nbgrader's rule, after the grader has given an
error output to each test that must score 0 (not run, compromised, failed)."""
from __future__ import annotations

from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

from course_tools.grade_common import ROLE, _first_line
from course_tools.grade_execute import Execution
from course_tools.grade_sanitise import Reference

@dataclass
class CellScore:
    grade_id: str
    points: float
    max_points: float
    status: str                    # pass | partial | fail | missing
    error: str | None = None       # exception name, "timeout", "stderr output", ...
    message: str = ""              # first line of the exception message, if any


@dataclass
class Report:
    notebook: str
    assignment: str
    cells: list[CellScore]
    points: float
    max_points: float
    seconds: float
    sandbox: str                                         # "bubblewrap" or why not
    ignored: list[str] = field(default_factory=list)     # extra / duplicate test cells
    manual: list[str] = field(default_factory=list)      # written answers to grade by hand
    notes: list[str] = field(default_factory=list)
    grader_peak_rss_mb: float = 0.0


def _grader_error(text: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename="GraderError", evalue=text, traceback=[text])


def mark_failures(nb: NotebookNode, info: Execution) -> None:
    """Give every test cell that must score 0 an error output, so that nbgrader's
    ``determine_grade`` (and nbgrader's own gradebook) score it 0 too."""
    from nbgrader.utils import get_partial_grade
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get(ROLE, {}).get("role") != "test":
            continue
        points = float(cell.metadata.nbgrader.points)
        for out in [o for o in cell.outputs if o.output_type == "execute_result"]:
            try:                           # a value nbgrader would choke on is no partial credit
                get_partial_grade(out, points)
            except (ValueError, TypeError, KeyError):
                cell.outputs.remove(out)
        # first, so that determine_grade stops there (an injected execute_result cannot win)
        if index in info.compromised:
            cell.outputs.insert(0, _grader_error(info.compromised[index]))
        elif index not in info.replies:
            cell.outputs.insert(0, _grader_error("not executed" + (f": {info.stopped}" if info.stopped else "")))
        elif info.replies[index] != "ok":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            first = errors[0] if errors else _grader_error("the kernel reported an error but showed none")
            if errors:
                cell.outputs.remove(first)
            cell.outputs.insert(0, first)


def _error(cell: NotebookNode) -> tuple[str | None, str]:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            if out.ename == "KeyboardInterrupt":
                return "timeout", "interrupted after the time limit"
            return out.ename, _first_line(out.evalue)
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.name == "stderr":
            return "stderr output", _first_line(out.text)
    return None, ""


def score_cells(nb: NotebookNode, ref: Reference) -> list[CellScore]:
    """One score per reference test cell, in the reference's order (missing ones 0)."""
    from nbgrader.utils import determine_grade
    found = {c.metadata[ROLE]["grade_id"]: c for c in nb.cells
             if c.metadata.get(ROLE, {}).get("role") == "test"}
    scores = []
    for gid, original in ref.tests.items():
        max_points = float(original.metadata.nbgrader.points)
        cell = found.get(gid)
        if cell is None:
            scores.append(CellScore(gid, 0.0, max_points, "missing", "test cell deleted"))
            continue
        try:
            points, _ = determine_grade(cell)
        except (ValueError, TypeError, KeyError):       # an output nbgrader cannot read
            points = 0.0
        points = min(max(float(points or 0.0), 0.0), max_points)
        error, message = _error(cell)
        status = "pass" if points >= max_points else ("fail" if points <= 0 else "partial")
        scores.append(CellScore(gid, points, max_points, status, error, message))
    return scores
