"""The student edition of the site: no solutions, student notebooks to download.

``python -m course_tools.student_edition build``  (``make book-student``) builds the book into
``_build/student/_build/html`` with a configuration derived from ``_config.yml`` (which is not
changed) and written to ``_build/student-config.yml``:

* sphinx-exercise's ``hide_solutions``, plus :mod:`course_tools.sphinx_student`, which also
  hides gated solutions (``solution-start`` .. ``solution-end``, whose code cells sphinx-exercise
  would leave on the page);
* no download button on the pages (it would hand out the notebook with its solutions) and no
  launch buttons (they open the repository's notebooks, solutions included);
* the notebooks zip of the *Downloads* page (``downloads/model-collapse-notebooks.zip``) holds the
  student notebooks: each chapter as committed up to its exercise section, then the exercise
  section as in the nbgrader student version (solutions replaced by ``YOUR CODE HERE`` /
  ``YOUR ANSWER HERE``, hidden tests removed) -- made by :func:`student_notebook`.

Notebook execution reuses the main build's cache (``_build/.jupyter_cache``), so the student
edition after ``make book`` costs little more than writing the pages.

``python -m course_tools.student_edition zip OUT.zip`` writes only the zip.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable

import nbformat
import yaml
from nbformat import NotebookNode

from course_tools import assignments

REPO_ROOT = assignments.REPO_ROOT
OUT_DIR = REPO_ROOT / "_build" / "student"
CONFIG_PATH = REPO_ROOT / "_build" / "student-config.yml"
ZIP_NAME = "model-collapse-notebooks.zip"          # the name the Downloads page links to
ZIP_ROOT = "model-collapse-notebooks"
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
LEAKS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "{solution}", "{solution-start}")
README = """\
The chapter notebooks of the course "Model collapse, executable" (student edition), without
outputs and without solutions: in each chapter's exercise section, code to write says
`YOUR CODE HERE` and written answers `YOUR ANSWER HERE`. The test cells after your code check
it (your teacher's grader also runs hidden tests).

The notebooks import the course library collapse_lib, included here: from this folder,
`pip install numpy scipy matplotlib` (see requirements.txt for the versions) and start Jupyter
here, so that `import collapse_lib` finds it.
"""


def student_notebook(chapter: NotebookNode, name: str) -> NotebookNode:
    """A chapter for students: unchanged up to ``## Exercises``, then the nbgrader student
    version of its exercise section (without the assignment header cell)."""
    nb = copy.deepcopy(chapter)
    start = assignments.find_exercises_heading(nb)
    if start is not None:
        release = assignments.make_release(assignments.make_source(chapter, name))
        nb.cells = nb.cells[:start] + release.cells[1:]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    text = json.dumps(nb)
    leaked = [x for x in LEAKS if x in text]
    if leaked:
        raise ValueError(f"{name}: the student notebook still holds {leaked[0]!r} "
                         "(a solution outside the exercise section?)")
    return nb


def toc_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """The notebooks of ``_toc.yml``, in order."""
    def files(node) -> Iterable[str]:
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for v in node.values():
                yield from files(v)
        elif isinstance(node, list):
            for v in node:
                yield from files(v)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    paths = [root / f"{f}.ipynb" for f in [toc.get("root", "")] + list(files(toc.get("parts", toc)))]
    return [p for p in paths if p.is_file()]


def write_zip(out: Path, root: Path = REPO_ROOT) -> list[str]:
    """The student notebooks, ``collapse_lib`` and ``results`` as a zip; returns the entries."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    entries: list[str] = []
    tmp = out.with_suffix(".tmp")

    def add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(f"{ZIP_ROOT}/{name}", FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
        entries.append(name)

    with zipfile.ZipFile(tmp, "w") as zf:
        add(zf, "README.txt", README.encode())
        for path in toc_notebooks(root):
            nb = student_notebook(assignments.read_notebook(path), path.stem)
            add(zf, str(path.relative_to(root)), nbformat.writes(nb).encode())
        for folder in ("collapse_lib", "results"):
            for p in sorted((root / folder).rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts:
                    add(zf, str(p.relative_to(root)), p.read_bytes())
        if (root / "requirements.txt").is_file():
            add(zf, "requirements.txt", (root / "requirements.txt").read_bytes())
    tmp.replace(out)
    return entries


def student_config(root: Path = REPO_ROOT) -> dict:
    """``_config.yml`` with the student edition's overrides (the file itself is not changed)."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    sphinx = config.setdefault("sphinx", {})
    sphinx["recursive_update"] = True
    extensions = sphinx.setdefault("extra_extensions", [])
    extensions.append("course_tools.sphinx_student")
    sphinx["local_extensions"] = {k: str((root / v).resolve())
                                  for k, v in (sphinx.get("local_extensions") or {}).items()}
    cfg = sphinx.setdefault("config", {})
    cfg["hide_solutions"] = True
    cfg.setdefault("html_theme_options", {})["use_download_button"] = False
    config["launch_buttons"] = {"notebook_interface": "jupyterlab", "binderhub_url": "", "colab_url": ""}
    config["title"] = f"{config.get('title', 'Course')} (student edition)"
    execute = config.setdefault("execute", {})
    execute.setdefault("cache", str((root / "_build" / ".jupyter_cache").resolve()))
    return config


def build(root: Path = REPO_ROOT, extra: Iterable[str] = ()) -> int:
    """Write the configuration, then run Jupyter Book (the zip is written by the extension)."""
    CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
    CONFIG_PATH.write_text(yaml.safe_dump(student_config(root), sort_keys=False))
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--config", str(CONFIG_PATH),
           "--path-output", str(OUT_DIR), "-W", "-n", "--keep-going", *extra]
    print(" ".join(cmd), flush=True)
    code = subprocess.call(cmd)
    if code == 0:
        print(f"Student edition: {OUT_DIR / '_build' / 'html' / 'index.html'}")
    return code


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.student_edition", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the student edition into _build/student")
    z = sub.add_parser("zip", help="write only the student notebooks zip")
    z.add_argument("out", type=Path)
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        if args.command == "zip":
            entries = write_zip(args.out)
            print(f"{args.out}: {len(entries)} files")
            return 0
        return build()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
