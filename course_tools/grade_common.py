"""What every part of the grader shares: limits, the metadata key, the error type, small helpers.

The grader (``python -m course_tools.grade``, :mod:`course_tools.grade`) is split by role:
:mod:`~course_tools.grade_sanitise` (reading the submission and the reference, the notebook that
runs), :mod:`~course_tools.grade_sandbox` (the kernel's folder, environment and bubblewrap),
:mod:`~course_tools.grade_execute` (running it under limits) and :mod:`~course_tools.grade_score`
(scoring by nbgrader's rule).
"""
from __future__ import annotations

import re

from nbformat import NotebookNode

from course_tools import assignments

REPO_ROOT = assignments.REPO_ROOT
DEFAULT_TIMEOUT = 60.0          # seconds per cell before it is interrupted
DEFAULT_DEADLINE = 600.0        # seconds for the whole run, kernel start included
DEFAULT_MAX_OUTPUT = 1_000_000  # bytes of output kept per cell
MAX_MESSAGE = 8 * 2**20         # ZMQ_MAXMSGSIZE of the client sockets
MAX_FILE_SIZE = 256 * 2**20     # RLIMIT_FSIZE of the kernel
INTERRUPT_GRACE = 5.0           # seconds a cell gets to stop after the interrupt
ROLE = "course_grader"          # cell metadata key of the cells the grader adds or marks
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class GradeError(ValueError):
    """A submission or request that cannot be graded (reported in one line, exit 2)."""



def _first_line(text: str, width: int = 120) -> str:
    line = next((x.strip() for x in str(text).splitlines() if x.strip()), "")
    return line if len(line) <= width else line[:width - 3] + "..."


def _nbgrader(cell: NotebookNode) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


