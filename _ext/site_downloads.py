"""Sphinx extension: the whole course, runnable, as one zip file in the built site.

At the end of an HTML build it writes ``<outdir>/downloads/model-collapse-notebooks.zip`` with
every notebook of the table of contents (as committed: without outputs, each with its hidden
set-up cell, under ``chapters/``), the course library ``collapse_lib``, the committed results
that the chapters read (``results/``), the files that install the library (``pyproject.toml``,
``README.md``, the requirements and their lock) and a short README, so that a reader can take
the whole course home from the "Downloads" page even when the site names no repository. The PDF next to it is printed by ``make pdf`` (tools/print_pdf.py), which
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
The course "Model collapse, executable": the chapter notebooks (without outputs, in chapters/),
the course library collapse_lib, the committed results the chapters read (results/), and what
installs them. From this folder, with Python 3.11 or newer:

    python -m venv .venv && . .venv/bin/activate
    pip install -r requirements.txt -c requirements-lock.txt
    pip install --no-deps -r requirements-nodeps.txt
    pip install --no-deps -e .
    jupyter lab chapters/

Each notebook runs top to bottom in a fresh kernel, in about a minute or less on a laptop.
"""

# Besides the notebooks: the library, the results the chapters read, and what installs them.
FOLDERS = ("collapse_lib", "results")
FILES = ("pyproject.toml", "README.md", "requirements.txt", "requirements-lock.txt", "requirements-nodeps.txt")

# Zip entries get a fixed time stamp so that the file only changes when a notebook does.
FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def write_notebooks_zip(srcdir: Path, docnames: list[str], out: Path) -> int:
    """Zip the notebooks among `docnames` (found under `srcdir`) with the library, the results and
    the install files; return how many notebooks."""
    notebooks = sorted(srcdir / f"{d}.ipynb" for d in docnames if (srcdir / f"{d}.ipynb").is_file())
    extra = [p for f in FILES if (p := srcdir / f).is_file()]
    for folder in FOLDERS:
        extra += sorted(p for p in (srcdir / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("model-collapse-notebooks/README.txt", FIXED_TIME), README)
        for path in notebooks + extra:
            info = zipfile.ZipInfo(f"model-collapse-notebooks/{path.relative_to(srcdir).as_posix()}", FIXED_TIME)
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
