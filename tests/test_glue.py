"""Static check of glued numbers in chapters 1-7 (issue 15): every ``{glue:text}`key``` in the prose
is produced by a ``glue("key", ...)`` call in a code cell of the same notebook.

The book build (``-W``) catches a missing key too, but only after executing everything; this test
runs in a fraction of a second. Keys built with f-strings (``glue(f"ch5-b{n}", ...)``) match any
text in place of each ``{...}`` field.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "chapters").glob("*.ipynb"))
ROLE = re.compile(r"\{glue:text\}`([^`]+)`")
CALL = re.compile(r"""glue\(\s*(f?)(["'])(.+?)\2""")
# a notebook-local wrapper, `def g(name, value): glue("ch8-" + name, ...)`, glues "ch8-" + its key
WRAPPER = re.compile(r"""def (\w+)\((\w+)[^)]*\)[^:]*:(?:\s*\"\"\"[^"]*\"\"\")?\s*glue\(\s*(?:(["'])([^"']*)\3\s*\+\s*)?\2\b""")


def _keys(nb) -> tuple[set[str], list[re.Pattern]]:
    literal, templates = set(), []
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    calls = [(CALL, "")] + [(re.compile(rf"""\b{name}\(\s*(f?)(["'])(.+?)\2"""), prefix or "")
                            for name, _, _, prefix in WRAPPER.findall(code)]
    for pattern, prefix in calls:
        for is_f, _, key in pattern.findall(code):
            key = prefix + key
            if is_f and "{" in key:
                parts = re.split(r"\{[^}]*\}", key)
                templates.append(re.compile("^" + ".+".join(re.escape(p) for p in parts) + "$"))
            else:
                literal.add(key)
    return literal, templates


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_glued_reference_is_defined(path):
    nb = nbformat.read(path, as_version=4)
    literal, templates = _keys(nb)
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for ref in ROLE.findall(cell.source):
            key = ref.split("::")[-1].rsplit(":", 1)[0] if ":" in ref else ref
            if key not in literal and not any(t.match(key) for t in templates):
                missing.append(key)
    assert not missing, f"{path.name}: glued keys never defined: {missing}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_glue_keys_carry_the_chapter_prefix(path):
    """Keys are global to a page; a chapter prefix keeps them unique across the book."""
    nb = nbformat.read(path, as_version=4)
    literal, _ = _keys(nb)
    prefix = f"ch{int(path.name[:2])}-"
    assert all(k.startswith(prefix) for k in literal), sorted(k for k in literal if not k.startswith(prefix))
