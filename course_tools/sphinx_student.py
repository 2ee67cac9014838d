"""Sphinx extension of the student edition: hide gated solutions too; student notebooks zip.

sphinx-exercise's ``hide_solutions`` (1.2.1) drops ``{solution}`` blocks, but for a gated
solution (``{solution-start}`` ... ``{solution-end}``, used when a solution holds code cells)
it drops only the opening directive: the code cells and prose in between stay, and the
orphaned ``solution-end`` node makes the HTML writer fail ("unknown node type"). This
extension replaces ``solution-start`` by a marker when ``hide_solutions`` is on, and removes
everything from the marker to the matching ``solution-end``.

At the end of the HTML build it (re)writes ``downloads/model-collapse-notebooks.zip`` -- the
file the *Downloads* page links to -- with the student notebooks
(:func:`course_tools.student_edition.write_zip`), after ``_ext/site_downloads.py`` wrote the
instructor notebooks there. The book's PDF (``make pdf``) is printed from the full edition,
solutions included, and the student edition prints none: the *Downloads* page of this edition
drops the list item that links to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx_exercise.directive import SolutionStartDirective
from sphinx_exercise.nodes import solution_end_node


class hidden_solution_start(nodes.Element):
    """Where a hidden gated solution began (removed by :class:`RemoveHiddenSolutions`)."""


class HiddenSolutionStart(SolutionStartDirective):
    def run(self):
        result = super().run()              # keeps sphinx-exercise's gated-directive registry
        if not self.env.app.config.hide_solutions:
            return result
        return [hidden_solution_start()]


class RemoveHiddenSolutions(SphinxTransform):
    """Remove marker .. solution-end, siblings included (sphinx-exercise requires gated
    directives to be siblings too)."""

    default_priority = 5                    # before sphinx-exercise's MergeGatedSolutions (10)

    def apply(self, **kwargs: Any) -> None:
        for marker in list(self.document.findall(hidden_solution_start)):
            parent = marker.parent
            start = parent.index(marker)
            end = next((i for i in range(start + 1, len(parent.children))
                        if isinstance(parent.children[i], solution_end_node)), None)
            if end is None:
                raise ValueError(f"{self.env.docname}: solution-start without a solution-end "
                                 "at the same level")
            for child in parent.children[start:end + 1]:
                parent.remove(child)


PDF_ITEM = re.compile(r"[ \t]*<li>\s*<a href=\"downloads/[^\"]*\.pdf\">.*?</li>\n?", re.S)


def drop_pdf_link(app: Sphinx, docname: str, source: list[str]) -> None:
    """On the Downloads page, remove the list item linking the PDF (not built for this edition)."""
    if app.config.hide_solutions and docname == "downloads":
        source[0] = PDF_ITEM.sub("", source[0])


def write_student_zip(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.name != "html" or not app.config.hide_solutions:
        return
    from course_tools.student_edition import ZIP_NAME, write_zip
    write_zip(Path(app.outdir) / "downloads" / ZIP_NAME, Path(app.srcdir))


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx_exercise")
    app.connect("build-finished", write_student_zip, priority=900)   # after site_downloads
    app.connect("source-read", drop_pdf_link)
    app.add_directive("solution-start", HiddenSolutionStart, override=True)
    app.add_node(hidden_solution_start)
    app.add_transform(RemoveHiddenSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
