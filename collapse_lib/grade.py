"""Autograde a submitted assignment notebook.

``python -m collapse_lib.grade SUBMISSION.ipynb [--json] [--timeout S]``

The submission runs top to bottom in a fresh kernel (nbclient, errors allowed,
so one failing cell does not stop the rest; ``--timeout`` seconds per cell,
after which the cell is interrupted).  Each autograder test cell is then scored
by nbgrader's own rule (``nbgrader.utils.determine_grade``): an error or output
on stderr gives 0, a number returned by the cell gives partial credit, anything
else full credit.

Locked test cells are protected in two ways, as in nbgrader's autograder:

* the checksum nbgrader stored when the student version was generated
  (``nbgrader.utils.compute_checksum``) flags test cells that were edited;
* when the submission comes from one of the course chapters (notebook metadata
  ``collapse_assignment.chapter``, or matching grade ids), every test cell is
  replaced by the chapter's original before running — hidden tests included —
  and test cells the student deleted count as missing (0 points).

User errors (not a notebook, no autograder cells) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import nbformat
from nbformat import NotebookNode

from collapse_lib import assignments

DEFAULT_TIMEOUT = 120.0


class GradeError(ValueError):
    """A submission that cannot be graded (user error, reported without traceback)."""


@dataclass
class CellScore:
    grade_id: str
    points: float
    max_points: float
    status: str                    # pass | partial | fail | missing
    error: str | None = None       # exception name, "timeout", "stderr output", ...
    message: str = ""              # first line of the exception message, if any
    tampered: bool = False         # source differs from the released test cell
    restored: bool = False         # original test cell was put back before running


@dataclass
class Report:
    notebook: str
    cells: list[CellScore]
    points: float
    max_points: float
    seconds: float
    chapter: str | None = None
    manual: list[str] = field(default_factory=list)   # manually graded answers (not scored here)
    notes: list[str] = field(default_factory=list)

    @property
    def tampered(self) -> list[str]:
        return [c.grade_id for c in self.cells if c.tampered]


# --------------------------------------------------------------------------
# Reading and checking the submission
# --------------------------------------------------------------------------

def read_submission(path: Path) -> NotebookNode:
    """Read and validate a notebook; GradeError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GradeError(f"{path}: no such file")
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except UnicodeDecodeError:
        raise GradeError(f"{path}: not a Jupyter notebook (not a text file)") from None
    except nbformat.reader.NotJSONError:
        raise GradeError(f"{path}: not a Jupyter notebook (not JSON)") from None
    except Exception as err:  # jsonschema / nbformat validation errors, bad versions
        first = str(err).strip().split("\n", 1)[0]
        raise GradeError(f"{path}: not a valid Jupyter notebook ({first})") from None
    return nb


def _grade_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if assignments.is_grade_cell(c)]


def _released_checksum_ok(cell: NotebookNode) -> bool | None:
    """None when no checksum was stored, else whether the cell is unchanged."""
    from nbgrader.utils import compute_checksum
    stored = cell.metadata.get("nbgrader", {}).get("checksum")
    if stored is None:
        return None
    try:
        return stored == compute_checksum(cell)
    except (KeyError, ValueError, TypeError):
        return False


# --------------------------------------------------------------------------
# Reference: the original test cells from the course's chapters
# --------------------------------------------------------------------------

@dataclass
class _Reference:
    chapter: str
    source: dict[str, NotebookNode]     # grade_id -> test cell with hidden tests
    release: dict[str, NotebookNode]    # grade_id -> test cell as students got it


def _reference_for(nb: NotebookNode, chapters_dir: Path) -> _Reference | None:
    chapters_dir = Path(chapters_dir)
    if not chapters_dir.is_dir():
        return None
    wanted = nb.metadata.get(assignments.ASSIGNMENT_METADATA_KEY, {}).get("chapter")
    candidates = [chapters_dir / f"{wanted}.ipynb"] if wanted else []
    candidates += [p for p in assignments.chapters_with_graded_cells(chapters_dir) if p not in candidates]
    ids = {c.metadata["nbgrader"].get("grade_id") for c in _grade_cells(nb)}
    for path in candidates:
        if not path.is_file():
            continue
        chapter = assignments.read_notebook(path)
        if assignments.find_exercises_heading(chapter) is None:
            continue
        source = assignments.make_source(chapter, path.stem)
        release = assignments.make_release(source)
        src = {c.metadata.nbgrader.grade_id: c for c in _grade_cells(source)}
        if path.stem == wanted or ids & set(src):
            rel = {c.metadata.nbgrader.grade_id: c for c in _grade_cells(release)}
            return _Reference(path.stem, src, rel)
    return None


# --------------------------------------------------------------------------
# Execution and scoring
# --------------------------------------------------------------------------

def _execute(nb: NotebookNode, timeout: float, kernel: str, cwd: Path, notes: list[str]) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    os.environ.setdefault("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    try:
        # the kernel's own log lines (e.g. ipykernel's transport warning) are not the student's
        client.execute(stderr=subprocess.DEVNULL)
    except DeadKernelError:
        notes.append("the kernel died; cells after that point did not run")
    except CellTimeoutError:
        notes.append(f"a cell exceeded the {timeout:g} s timeout and could not be interrupted")


def _error(cell: NotebookNode) -> tuple[str | None, str]:
    """(name, first line of message) of the cell's error, or of its stderr output."""
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            if out.ename == "KeyboardInterrupt":
                return "timeout", "interrupted after the time limit"
            return out.ename, _first_line(out.evalue)
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.name == "stderr":
            return "stderr output", _first_line(out.text)
    return None, ""


def _first_line(text: str, width: int = 100) -> str:
    line = next((x.strip() for x in str(text).splitlines() if x.strip()), "")
    return line if len(line) <= width else line[:width - 3] + "..."


def _score(cell: NotebookNode, executed: bool) -> tuple[float, float, str | None, str]:
    from nbgrader.utils import determine_grade
    max_points = float(cell.metadata["nbgrader"]["points"])
    if not executed:
        return 0.0, max_points, "not executed", ""
    points, max_points = determine_grade(cell)
    return (float(points or 0.0), float(max_points)) + _error(cell)


def grade_notebook(nb: NotebookNode, *, name: str = "<notebook>", timeout: float = DEFAULT_TIMEOUT,
                   kernel: str = "python3", cwd: Path | None = None,
                   chapters_dir: Path | None = assignments.CHAPTERS_DIR) -> Report:
    """Run a notebook and score its autograder cells (see the module docstring).

    ``chapters_dir=None`` disables restoring the original test cells.
    """
    if not _grade_cells(nb):
        raise GradeError(f"{name}: no autograded test cells (nbgrader grade=true code cells) "
                         "- is this an assignment notebook?")
    nb = copy.deepcopy(nb)
    notes: list[str] = []
    ref = _reference_for(nb, chapters_dir) if chapters_dir is not None else None
    flags: dict[str, tuple[bool, bool]] = {}
    for cell in _grade_cells(nb):
        gid = cell.metadata["nbgrader"].get("grade_id", "?")
        ok = _released_checksum_ok(cell)
        tampered = ok is False
        restored = False
        if ref is not None and gid in ref.source:
            original = ref.source[gid]
            known = {original.source, ref.release[gid].source}
            tampered = cell.source not in known or \
                float(cell.metadata["nbgrader"].get("points", -1)) != float(original.metadata.nbgrader.points)
            cell.source = original.source
            cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
            restored = True
        flags[gid] = (tampered, restored)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    start = time.perf_counter()
    _execute(nb, timeout, kernel, Path(cwd) if cwd else Path.cwd(), notes)
    seconds = time.perf_counter() - start

    cells: list[CellScore] = []
    for cell in _grade_cells(nb):
        gid = cell.metadata["nbgrader"].get("grade_id", "?")
        executed = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        points, max_points, error, message = _score(cell, executed)
        tampered, restored = flags[gid]
        if tampered and not restored:
            points, error = 0.0, error or "test cell edited"
        status = "pass" if points >= max_points else ("fail" if points <= 0 else "partial")
        cells.append(CellScore(gid, points, max_points, status, error, message, tampered, restored))
    if ref is not None:
        present = {c.grade_id for c in cells}
        for gid, original in ref.source.items():
            if gid not in present:
                cells.append(CellScore(gid, 0.0, float(original.metadata.nbgrader.points),
                                       "missing", "test cell deleted"))
    manual = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
              if assignments.is_solution_cell(c) and c.metadata["nbgrader"].get("grade")]
    return Report(name, cells, sum(c.points for c in cells), sum(c.max_points for c in cells),
                  seconds, ref.chapter if ref else None, manual, notes)


def grade_file(path: Path, **kwargs) -> Report:
    """Read ``path`` and grade it; the kernel runs in the chapters folder when it exists."""
    path = Path(path)
    nb = read_submission(path)
    if kwargs.get("cwd") is None:
        chapters = kwargs.get("chapters_dir", assignments.CHAPTERS_DIR)
        kwargs["cwd"] = chapters if chapters is not None and Path(chapters).is_dir() else path.parent
    return grade_notebook(nb, name=str(path), **kwargs)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def format_report(r: Report) -> str:
    width = max([len("grade_id")] + [len(c.grade_id) for c in r.cells])
    lines = [f"Grading {r.notebook}" + (f" (chapter {r.chapter})" if r.chapter else ""),
             f"{'grade_id':<{width}}  {'points':>9}  result"]
    for c in r.cells:
        detail = f"{c.error}: {c.message}" if c.message else c.error
        result = c.status + (f" ({detail})" if c.error and c.status != "pass" else "")
        if c.tampered:
            result += " [test cell edited: " + ("original restored]" if c.restored else "no points]")
        lines.append(f"{c.grade_id:<{width}}  {c.points:>4g} / {c.max_points:<3g}  {result}")
    pct = 100.0 * r.points / r.max_points if r.max_points else 0.0
    lines.append(f"Total: {r.points:g} / {r.max_points:g} ({pct:.0f}%)   "
                 f"[executed in {r.seconds:.1f} s]")
    if r.manual:
        lines.append(f"Written answers to grade by hand: {', '.join(r.manual)}")
    lines += [f"Note: {n}" for n in r.notes]
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collapse_lib.grade",
                                     description="Autograde a submitted assignment notebook.")
    parser.add_argument("submission", type=Path, help="the .ipynb to grade")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per cell before it is interrupted (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    parser.add_argument("--chapters", type=Path, default=assignments.CHAPTERS_DIR,
                        help="chapters folder holding the original tests")
    parser.add_argument("--no-restore", action="store_true",
                        help="run the test cells as submitted (only flag edits by checksum)")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        report = grade_file(args.submission, timeout=args.timeout, kernel=args.kernel,
                            chapters_dir=None if args.no_restore else args.chapters)
    except GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        data = asdict(report)
        data["tampered"] = report.tampered
        print(json.dumps(data, indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
