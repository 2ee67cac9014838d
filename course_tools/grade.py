"""Grade one untrusted assignment notebook safely.

``python -m course_tools.grade SUBMISSION.ipynb --assignment NAME [--json] [--timeout S]``

The submission is hostile input.  What it can choose and what it cannot:

* **The reference is the instructor's.**  ``--assignment`` names a chapter (no path
  separators); its instructor notebook is rebuilt from ``chapters/NAME.ipynb`` (or read from
  ``--source DIR/NAME/NAME.ipynb``).  Only the reference's autograder test cells are scored,
  with the reference's source (hidden tests included) and points; the submission's metadata,
  points and checksums are never trusted.  A test cell the submission adds or duplicates
  runs as ordinary code and is listed as ignored; a deleted one scores 0.
* **Execution is contained.**  The kernel runs in a throw-away folder outside the course
  tree, with a cleaned environment (no variables of the teacher's shell, a fresh ``HOME``),
  inside a bubblewrap sandbox when ``bwrap`` works on this machine (no network; only the
  system folders, Python, ``collapse_lib`` and ``results`` visible, read-only -- not the
  chapters, solutions, ``.git`` or other students' work; only that folder writable; its own
  process namespace; no capabilities) and with resource limits (no core files, a cap on file size).
* **Time and output are bounded.**  Each cell is interrupted after ``--timeout`` seconds; a
  cell that ignores the interrupt, or a run past ``--deadline`` seconds in total, gets the
  kernel killed -- the report is written anyway.  Messages over 8 MB are refused by the
  client socket, and each cell keeps at most ``--max-output`` bytes of output.
* **Failures count.**  Before each test cell, IPython's hooks that can swallow a failure
  (custom exception handler, input and AST transformers, pre/post-run callbacks, methods
  patched on the shell) are reset through ``user_expressions`` (which no input transformer
  sees), a fingerprint of the shell's error-reporting machinery is compared with the one
  taken before the submission ran, and a sentinel test that must fail is run; if any of
  these checks fails, the test cell scores 0.

Each test cell is then scored by nbgrader's own rule (``nbgrader.utils.determine_grade``):
an error (or stderr output) gives 0, a number returned by the cell partial credit, anything
else full marks; a cell whose execute reply says ``error`` also gets 0.

Any malformed input (not a notebook, a bad assignment name, ...) prints one line and exits 2.
No scheme stops every trick that runs inside the kernel; ``instructors.md`` lists what is and
is not prevented.

The grader is split by role: :mod:`~course_tools.grade_sanitise` (the submission, the
reference, the notebook that runs), :mod:`~course_tools.grade_sandbox` (the kernel's folder,
environment and bubblewrap), :mod:`~course_tools.grade_execute` (running it under limits) and
:mod:`~course_tools.grade_score` (scoring); this module is the command line and the whole
pipeline (:func:`grade_notebook`), and re-exports the parts' public names.
"""
from __future__ import annotations

import argparse
import json
import resource
import secrets
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from nbformat import NotebookNode

from course_tools import assignments
from course_tools.grade_common import (  # noqa: F401 - re-exported
    DEFAULT_DEADLINE,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_TIMEOUT,
    INTERRUPT_GRACE,
    MAX_FILE_SIZE,
    MAX_MESSAGE,
    REPO_ROOT,
    ROLE,
    GradeError,
    _first_line,
    _nbgrader,
)
from course_tools.grade_execute import (  # noqa: F401 - re-exported
    TRUNCATION_MARK,
    Execution,
    _reset_expression,
    execute_safely,
)
from course_tools.grade_sandbox import (  # noqa: F401 - re-exported
    COURSE_VISIBLE,
    bwrap_status,
    kernel_argv,
    kernel_environment,
)
from course_tools.grade_sanitise import (  # noqa: F401 - re-exported
    Prepared,
    Reference,
    add_sentinels,
    check_name,
    known_assignments,
    load_reference,
    prepare,
    read_submission,
    sanitize,
)
from course_tools.grade_score import CellScore, Report, mark_failures, score_cells  # noqa: F401


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):     # one line, exit 2
        self.exit(2, f"error: {message}\n")


def main(argv: Iterable[str] | None = None) -> int:
    parser = _Parser(prog="python -m course_tools.grade",
                     description="Grade one untrusted assignment notebook safely.")
    parser.add_argument("submission", type=Path, help="the .ipynb to grade")
    parser.add_argument("--assignment", required=True,
                        help="assignment name (a chapter with autograder tests, e.g. 02_fully_synthetic)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT,
                        help=f"seconds per cell before it is interrupted (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--deadline", type=_positive(float), default=DEFAULT_DEADLINE,
                        help=f"seconds for the whole run; the kernel is killed after (default {DEFAULT_DEADLINE:g})")
    parser.add_argument("--max-output", type=_positive(int), default=DEFAULT_MAX_OUTPUT,
                        help=f"bytes of output kept per cell (default {DEFAULT_MAX_OUTPUT})")
    parser.add_argument("--chapters", type=Path, default=assignments.CHAPTERS_DIR,
                        help="chapters folder the reference is built from")
    parser.add_argument("--source", type=Path, default=None,
                        help="nbgrader source folder (SOURCE/NAME/NAME.ipynb) instead of the chapters")
    box = parser.add_mutually_exclusive_group()
    box.add_argument("--sandbox", dest="sandbox", action="store_true", default=None,
                     help="require the bubblewrap sandbox (error if it does not work)")
    box.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                     help="run the kernel without bubblewrap (still in a throw-away folder)")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        report = grade_file(args.submission, args.assignment, chapters_dir=args.chapters,
                            source_dir=args.source, timeout=args.timeout, deadline=args.deadline,
                            max_output=args.max_output, sandbox=args.sandbox)
    except GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(format_report(report))
    return 0


# --------------------------------------------------------------------------
# The pipeline: prepare, execute, score
# --------------------------------------------------------------------------

def grade_notebook(submission: NotebookNode, ref: Reference, *, name: str = "<notebook>",
                   timeout: float = DEFAULT_TIMEOUT, deadline: float = DEFAULT_DEADLINE,
                   max_output: int = DEFAULT_MAX_OUTPUT, sandbox: bool | None = None,
                   chapters_dir: Path = assignments.CHAPTERS_DIR) -> Report:
    """Run a submission against the reference and score it (see the module docstring)."""
    nonce = secrets.token_hex(8)
    prep = prepare(submission, ref, nonce)
    info, label = execute_safely(prep.nb, timeout=timeout, deadline=deadline, max_output=max_output,
                                 sandbox=sandbox, chapters_dir=chapters_dir, nonce=nonce)
    mark_failures(prep.nb, info)
    cells = score_cells(prep.nb, ref)
    notes = []
    if info.stopped:
        notes.append(f"execution stopped: {info.stopped}")
    notes += [f"{prep.nb.cells[i].metadata[ROLE]['grade_id']}: {why}" for i, why in sorted(info.compromised.items())]
    if info.truncated:
        notes.append(f"output of {len(info.truncated)} cell(s) truncated at {max_output} bytes")
    if label != "bubblewrap":
        notes.append(f"{label}; the submission ran with your user's rights")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return Report(name, ref.name, cells, sum(c.points for c in cells), sum(c.max_points for c in cells),
                  round(info.seconds, 2), label, prep.ignored, prep.manual, notes, round(peak, 1))


def grade_file(path: Path, assignment: str, *, chapters_dir: Path = assignments.CHAPTERS_DIR,
               source_dir: Path | None = None, **kwargs) -> Report:
    """Read ``path`` and grade it against assignment ``assignment``."""
    ref = load_reference(assignment, chapters_dir, source_dir)
    nb = read_submission(path)
    return grade_notebook(nb, ref, name=str(path), chapters_dir=chapters_dir, **kwargs)


def format_report(r: Report) -> str:
    width = max([len("grade_id")] + [len(c.grade_id) for c in r.cells])
    lines = [f"Grading {r.notebook} against assignment {r.assignment} (sandbox: {r.sandbox})",
             f"{'grade_id':<{width}}  {'points':>9}  result"]
    for c in r.cells:
        detail = f"{c.error}: {c.message}" if c.message else c.error
        result = c.status + (f" ({detail})" if c.error and c.status != "pass" else "")
        lines.append(f"{c.grade_id:<{width}}  {c.points:>4g} / {c.max_points:<3g}  {result}")
    if r.ignored:
        lines.append("Ignored test cells (not scored): " + ", ".join(r.ignored))
    if r.manual:
        lines.append(f"Written answers to grade by hand: {', '.join(r.manual)}")
    lines += [f"Note: {n}" for n in r.notes]
    lines.append(f"Executed in {r.seconds:.1f} s")
    lines.append(f"Score: {r.points:g} / {r.max_points:g}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
