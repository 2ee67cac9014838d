"""The grader's input: the submission read and checked, the instructor's reference chosen by
name, and the notebook that runs (the submission with the reference's tests and a sentinel
before each)."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_tools import assignments
from course_tools.grade_common import _NAME, ROLE, GradeError, _first_line, _nbgrader

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
        raise GradeError(f"{path}: not a valid Jupyter notebook ({_first_line(str(err))})") from None
    return nb


# --------------------------------------------------------------------------
# The reference: the instructor's notebook, chosen by name
# --------------------------------------------------------------------------

@dataclass
class Reference:
    name: str
    notebook: NotebookNode
    tests: dict[str, NotebookNode]      # grade_id -> test cell (hidden tests included), in order
    answers: list[str]                  # grade ids of the other nbgrader cells (solutions, answers)


def check_name(name: str) -> str:
    """An assignment name: letters, digits, ``_.-``; never a path."""
    if not isinstance(name, str) or not name:
        raise GradeError("--assignment: give the assignment's name, e.g. 02_fully_synthetic")
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name) \
            or name in (".", "..") or not _NAME.match(name):
        raise GradeError(f"--assignment {name!r}: an assignment name, not a path "
                         "(letters, digits, '_', '.', '-')")
    return name


def known_assignments(chapters_dir: Path = assignments.CHAPTERS_DIR,
                      source_dir: Path | None = None) -> dict[str, Path]:
    """``{name: notebook}`` of the gradable assignments."""
    if source_dir is not None:
        return {p.name: p / f"{p.name}.ipynb" for p in sorted(Path(source_dir).iterdir())
                if (p / f"{p.name}.ipynb").is_file()} if Path(source_dir).is_dir() else {}
    return {p.stem: p for p in assignments.chapters_with_graded_cells(chapters_dir)}


def load_reference(name: str, chapters_dir: Path = assignments.CHAPTERS_DIR,
                   source_dir: Path | None = None) -> Reference:
    """The instructor notebook of assignment ``name`` (GradeError when unknown)."""
    check_name(name)
    known = known_assignments(chapters_dir, source_dir)
    if name not in known:
        where = source_dir if source_dir is not None else chapters_dir
        raise GradeError(f"--assignment {name!r}: unknown assignment in {where} "
                         f"(known: {', '.join(known) or 'none'})")
    nb = assignments.read_notebook(known[name])
    if source_dir is None:
        nb = assignments.make_source(nb, name)
    tests = {c.metadata.nbgrader.grade_id: c for c in nb.cells if assignments.is_grade_cell(c)}
    if not tests:
        raise GradeError(f"assignment {name!r} has no autograder test cells")
    answers = [_nbgrader(c)["grade_id"] for c in nb.cells if isinstance(_nbgrader(c).get("grade_id"), str)
               and not assignments.is_grade_cell(c)]
    return Reference(name, nb, tests, answers)


# --------------------------------------------------------------------------
# The notebook that runs: submission + reference tests + sentinels
# --------------------------------------------------------------------------

@dataclass
class Prepared:
    nb: NotebookNode
    ignored: list[str]
    missing: list[str]
    manual: list[str]


def sanitize(submission: NotebookNode, ref: Reference) -> Prepared:
    """The submission with the reference's test cells (source, hidden tests, points) in place
    of its own; every other nbgrader marking a test or answer the reference does not have
    (extra, duplicate, without grade_id) is removed, so that cell runs as plain code."""
    nb = copy.deepcopy(submission)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    seen: set[str] = set()
    ignored: list[str] = []
    for cell in nb.cells:
        cell.metadata.pop(ROLE, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        meta = _nbgrader(cell)
        gid = meta.get("grade_id")
        gid = gid if isinstance(gid, str) else None
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            if gid in ref.tests and gid not in seen:
                seen.add(gid)
                cell.source = ref.tests[gid].source
                cell.metadata["nbgrader"] = copy.deepcopy(ref.tests[gid].metadata["nbgrader"])
                continue
            ignored.append(f"{gid or '<no grade_id>'} ({'duplicate' if gid in seen else 'not in the reference'})")
            cell.metadata.pop("nbgrader", None)
        elif "nbgrader" in cell.metadata and (gid not in ref.answers or gid in seen):
            cell.metadata.pop("nbgrader", None)           # unknown marking: plain cell
        elif gid is not None:
            seen.add(gid)
    missing = [g for g in ref.tests if g not in seen]
    manual = [g for g in ref.answers if any(
        _nbgrader(c).get("grade_id") == g and _nbgrader(c).get("grade") for c in ref.notebook.cells)]
    return Prepared(nb, ignored, missing, manual)


def add_sentinels(nb: NotebookNode, nonce: str) -> NotebookNode:
    """Mark each autograder test cell (``metadata.course_grader.role = test``) and put before it
    a sentinel cell that must fail (``role = sentinel``). Works on a sanitized notebook."""
    cells = []
    for cell in nb.cells:
        if assignments.is_grade_cell(cell) and isinstance(_nbgrader(cell).get("grade_id"), str):
            sentinel = nbformat.v4.new_code_cell(f'assert False, "grader sentinel {nonce}"')
            sentinel.metadata[ROLE] = {"role": "sentinel"}
            cell.metadata[ROLE] = {"role": "test", "grade_id": cell.metadata.nbgrader.grade_id}
            cells.append(sentinel)
        cells.append(cell)
    nb.cells = cells
    return nb


def prepare(submission: NotebookNode, ref: Reference, nonce: str) -> Prepared:
    """:func:`sanitize`, then :func:`add_sentinels`: the notebook that runs."""
    prep = sanitize(submission, ref)
    add_sentinels(prep.nb, nonce)
    return prep
