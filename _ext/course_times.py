"""Sphinx extension: the landing page's total reading and exercise time, computed from the chapters.

Every chapter's "Before you start" box states its time as
``**Time:** about <reading> to read and run ..., plus about <exercises> for the exercises``.
At ``config-inited`` this extension reads those lines from every chapter notebook of the table of
contents, sums them and sets the MyST substitutions ``reading_hours`` and ``exercise_hours`` (to the
nearest half hour), so that the landing page can never disagree with the chapters. A chapter whose
box cannot be read stops the build with a message naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

WORDS = {"an": 1, "one": 1, "two": 2, "three": 3, "half an": 0.5}
_AMOUNT = r"(?:(\d+(?:\.\d+)?)|(half an|an|one|two|three)) (minutes?|hours?)"
TIME_RE = re.compile(r"\*\*Time:\*\*\s+about\s+" + _AMOUNT + r"[^.]*?plus\s+about\s+" + _AMOUNT
                     + r"\s+for\s+the\s+exercises", re.S)


def _minutes(number: str | None, word: str | None, unit: str) -> float:
    value = float(number) if number else WORDS[word]
    return value * (60 if unit.startswith("hour") else 1)


def chapter_minutes(text: str) -> tuple[float, float]:
    """(reading, exercise) minutes stated in a chapter's text; ValueError if there is no such line."""
    m = TIME_RE.search(re.sub(r"\s+", " ", text))
    if not m:
        raise ValueError("no line '**Time:** about ... to read and run, plus about ... for the exercises'")
    g = m.groups()
    return _minutes(g[0], g[1], g[2]), _minutes(g[3], g[4], g[5])


def toc_chapters(root: Path) -> list[Path]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", []) if "file" in c]
    return [root / f"{f}.ipynb" for f in files if f.startswith("chapters/") and (root / f"{f}.ipynb").is_file()]


def course_hours(root: Path) -> tuple[float, float]:
    """Total (reading, exercise) hours over the chapters, each rounded to the nearest half hour."""
    reading = exercises = 0.0
    for path in toc_chapters(root):
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        try:
            r, e = chapter_minutes(text)
        except ValueError as err:
            raise ExtensionError(f"{path.name}: {err} in its 'Before you start' box") from err
        reading, exercises = reading + r, exercises + e
    return round(reading / 30) / 2, round(exercises / 30) / 2


def _fmt(hours: float) -> str:
    return f"{hours:g}"


def set_substitutions(app: Sphinx, config: Config) -> None:
    if not (Path(app.srcdir) / "_toc.yml").is_file():  # a single page built on its own: no landing page
        return
    reading, exercises = course_hours(Path(app.srcdir))
    subs = dict(getattr(config, "myst_substitutions", {}) or {})
    subs.update(reading_hours=_fmt(reading), exercise_hours=_fmt(exercises))
    config.myst_substitutions = subs


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", set_substitutions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
