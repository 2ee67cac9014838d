"""Each chapter opens with its time estimate and its prerequisites, and each widget has a
kernel-free version (issue 14).

The opening is checked in the first cell of every chapter notebook (chapters 1-7 carry it in a
"Before you start" admonition; any `**Time...**` and `**Prerequisites...**` pair counts). The
kernel-free versions are checked statically here (a cell that calls `interact` also carries
`kernel_free` metadata or calls `kernel_free(...)`), and in the browser by the site test.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from collapse_lib.widgets import kernel_free as kf

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_time_and_prerequisites(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "no title cell"
    time = re.search(r"\*\*Time[.:]?\*\*[.:]?\s*(.+)", first.source)
    prereq = re.search(r"\*\*Prerequisites[.:]?\*\*[.:]?\s*(.+)", first.source)
    assert time and re.search(r"\d|an hour|minutes", time.group(1)), f"{path.name}: no time estimate"
    assert prereq and len(prereq.group(1).strip()) > 10, f"{path.name}: no prerequisites"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_interact_cell_has_a_kernel_free_version(path: Path) -> None:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or not re.search(r"\binteract(_manual)?\(", cell.source):
            continue
        spec = cell.metadata.get("kernel_free")
        if spec is not None:
            kf.check_spec(spec)  # raises WidgetSpecError naming the bad key
        else:
            assert "kernel_free(" in cell.source, (
                f"{path.name}, cell {cell.get('id')}: an interact cell without a kernel-free version "
                "(metadata `kernel_free` or a kernel_free(...) call; see collapse_lib/widgets/kernel_free.py)")
