"""Sphinx extension: the chapter notebooks as one zip file in the built site.

At the end of an HTML build it writes ``<outdir>/downloads/model-collapse-notebooks.zip`` with
every notebook of the table of contents (as committed: without outputs, each with its hidden
set-up cell) and a short README, so that a reader can take the whole course home from the
"Downloads" page. The PDF next to it is printed by ``make pdf`` (tools/print_pdf.py), which
``make book`` runs after this build.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

DOWNLOADS = "downloads"
ZIP_NAME = "model-collapse-notebooks.zip"
PDF_NAME = "model-collapse-course.pdf"
README = """\
The chapter notebooks of the course "Model collapse, executable", without outputs.

They import the course library collapse_lib, which is not on PyPI: install it from a copy of
the course repository (`pip install -e .`, or `make venv`, in its root folder), then open the
notebooks with Jupyter. Each runs top to bottom in a fresh kernel in under a minute on a laptop.
"""

# Zip entries get a fixed time stamp so that the file only changes when a notebook does.
FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def write_notebooks_zip(srcdir: Path, docnames: list[str], out: Path) -> int:
    """Zip the notebooks among `docnames` (found under `srcdir`); return how many."""
    notebooks = sorted(srcdir / f"{d}.ipynb" for d in docnames if (srcdir / f"{d}.ipynb").is_file())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("model-collapse-notebooks/README.txt", FIXED_TIME), README)
        for path in notebooks:
            info = zipfile.ZipInfo(f"model-collapse-notebooks/{path.name}", FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    tmp.replace(out)
    return len(notebooks)


def on_build_finished(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.name != "html":
        return
    write_notebooks_zip(Path(app.srcdir), sorted(app.env.found_docs),
                        Path(app.outdir) / DOWNLOADS / ZIP_NAME)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("build-finished", on_build_finished)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
