"""``python -m course_tools.book ARGS``: Jupyter Book's command line with the stall guard.

Exactly ``jupyter-book ARGS``, after :func:`course_tools.kernel_guard.install`: myst-nb executes
the chapters in this process (through jupyter-cache and nbclient), so every wait for a kernel
reply polls in short slices and a missed wake-up costs half a second instead of the cell's
timeout (issue 26). ``make book`` and ``make pdf`` build through here.
"""
from __future__ import annotations

import sys

from course_tools import kernel_guard


def main(argv: list[str] | None = None) -> int:
    """Run Jupyter Book's command line (``argv``: its arguments) with the guard installed."""
    kernel_guard.install()
    from jupyter_book.cli.main import main as jupyter_book

    sys.argv = ["jupyter-book"] + list(sys.argv[1:] if argv is None else argv)
    try:
        jupyter_book()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
