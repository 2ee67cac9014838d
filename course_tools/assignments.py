"""Classroom assignments generated from the chapters' exercise sections.

Every chapter ends with a markdown cell whose first line is ``## Exercises``;
from there to the end the notebook runs on its own.  This module turns that
section into the two notebooks of an nbgrader course::

    assignments/source/<chapter>/<chapter>.ipynb    instructor version (solutions)
    assignments/release/<chapter>/<chapter>.ipynb   student version

The *source* notebook is the exercise section plus a header cell, rewritten
for Jupyter: sphinx-exercise blocks become plain markdown, and every piece of
a solution gets nbgrader metadata, so that nbgrader's own pipeline (``nbgrader
generate_assignment`` or :func:`make_release`, which runs the same
preprocessors) removes it:

* code solution cells (``nbgrader.solution``) keep their metadata; the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub;
* written solutions (a ``{solution}`` dropdown, or prose between
  ``{solution-start}`` and ``{solution-end}``) become "manually graded answer"
  cells (markdown, ``solution`` and ``grade``, 0 points by default), which the
  student version shows as ``YOUR ANSWER HERE``;
* plain code cells inside a gated solution (a plot of the answer, say) become
  solution cells, so they are stubbed too;
* locked autograder test cells are kept; hidden test regions
  (``### BEGIN HIDDEN TESTS``) are removed from the student version.

Command line: ``python -m course_tools.assignments [--out DIR]``; ``--table``
prints the exercise table of ``instructors.md`` and ``--update-page`` rewrites
it in place.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import nbformat
from markdown_it import MarkdownIt
from mdit_py_plugins.colon_fence import colon_fence_plugin
from nbformat import NotebookNode

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS_DIR = REPO_ROOT / "chapters"
DEFAULT_OUT = REPO_ROOT / "assignments"
INSTRUCTORS_PAGE = REPO_ROOT / "instructors.md"

EXERCISES_HEADING = "## Exercises"
#: Suggested working time (minutes) when an exercise's markdown cell carries no
#: ``metadata.exercise.minutes``: autograded (code) and written exercises.
MINUTES_AUTOGRADED = 20
MINUTES_WRITTEN = 30
TABLE_BEGIN = "<!-- BEGIN EXERCISE TABLE (generated: python -m course_tools.assignments --update-page) -->"
TABLE_END = "<!-- END EXERCISE TABLE -->"
ASSIGNMENT_METADATA_KEY = "collapse_assignment"


# --------------------------------------------------------------------------
# nbgrader metadata helpers
# --------------------------------------------------------------------------

def _nbgrader(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_grade_cell(cell: NotebookNode) -> bool:
    """True for an autograder test cell (code, ``nbgrader.grade`` and not a solution)."""
    meta = _nbgrader(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell: NotebookNode) -> bool:
    return bool(_nbgrader(cell).get("solution"))


def _nbgrader_meta(grade_id: str, *, grade: bool, solution: bool, locked: bool,
                   points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


# --------------------------------------------------------------------------
# MyST markdown -> Jupyter markdown
# --------------------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark").use(colon_fence_plugin)
_DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.-]+)\}\s*(?P<arg>.*?)\s*$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
_ROLE = re.compile(r"\{(?P<role>[\w:.-]+)\}`(?P<content>[^`]*)`")


@dataclass
class _Block:
    """A top-level piece of a markdown cell: plain text or one directive."""

    text: str
    name: str | None = None          # directive name, None for plain text
    arg: str = ""
    options: dict = field(default_factory=dict)
    body: str = ""


def _split_blocks(source: str) -> list[_Block]:
    """Split markdown into plain-text pieces and top-level fenced directives.

    The fences (backticks, or colons as MyST's ``colon_fence``) are found by
    markdown-it-py, CommonMark's parser that MyST itself uses; plain code fences
    stay inside the text so their content is not parsed.
    """
    lines = source.split("\n")
    blocks: list[_Block] = []
    text: list[str] = []
    pos = 0
    for tok in _MARKDOWN.parse(source):
        d = _DIRECTIVE_INFO.match(tok.info.strip()) if tok.type in ("fence", "colon_fence") else None
        if d is None or tok.level != 0 or tok.map is None:
            continue
        start, end = tok.map
        text.extend(lines[pos:start])
        if text:
            blocks.append(_Block("\n".join(text)))
            text = []
        body_lines = tok.content.split("\n")
        options: dict[str, str] = {}
        if body_lines and body_lines[0].strip() == "---":      # YAML option block
            k = 1
            while k < len(body_lines) and body_lines[k].strip() != "---":
                key, _, value = body_lines[k].partition(":")
                options[key.strip()] = value.strip()
                k += 1
            body_lines = body_lines[k + 1:]
        else:
            while body_lines and _OPTION.match(body_lines[0].strip()):
                o = _OPTION.match(body_lines[0].strip())
                options[o.group("key")] = o.group("value")
                body_lines = body_lines[1:]
        blocks.append(_Block("\n".join(lines[start:end]), d.group("name"), d.group("arg"), options,
                             "\n".join(body_lines).strip("\n")))
        pos = end
    text.extend(lines[pos:])
    if text:
        blocks.append(_Block("\n".join(text)))
    return blocks


def _role(m: re.Match) -> str:
    role, content = m.group("role"), m.group("content")
    if role == "math":
        return f"${content}$"
    if role.startswith("cite"):
        return f"[{content}]"
    link = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^>]*)>$", content)
    if link and link.group("text"):
        return link.group("text")
    return f"`{content}`"


def jupyter_markdown(source: str) -> str:
    """Rewrite MyST-only syntax (roles, directives) as markdown Jupyter renders.

    ``{math}`` blocks become ``$$ ... $$``; other directives (admonitions,
    ``prf:`` environments) become block quotes headed by their title.
    """
    out = []
    for block in _split_blocks(source):
        if block.name is None:
            text = "\n".join(x for x in block.text.split("\n") if not _TARGET.match(x.strip()))
            out.append(_ROLE.sub(_role, text))
        elif block.name == "math":
            out.append("$$\n" + block.body + "\n$$")
        else:
            title = block.arg or block.name.split(":")[-1].replace("-", " ").capitalize()
            body = jupyter_markdown(block.body)
            quoted = "\n".join("> " + line if line else ">" for line in body.split("\n"))
            out.append(f"> **{_ROLE.sub(_role, title)}**\n>\n{quoted}")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Exercise section -> instructor (source) notebook
# --------------------------------------------------------------------------

@dataclass
class Exercise:
    """One exercise of an assignment, as found in its source notebook."""

    label: str
    title: str = ""
    number: int = 0
    solution_ids: list[str] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)
    answer_ids: list[str] = field(default_factory=list)
    points: float = 0.0              # autograded points (sum over its test cells)
    minutes: int | None = None       # from metadata.exercise.minutes, if given

    @property
    def autograded(self) -> bool:
        return bool(self.test_ids)

    @property
    def kind(self) -> str:
        if self.autograded and self.answer_ids:
            return "autograded + written"
        return "autograded" if self.autograded else "written"

    @property
    def expected_minutes(self) -> int:
        if self.minutes is not None:
            return self.minutes
        return MINUTES_AUTOGRADED if self.autograded else MINUTES_WRITTEN


_TARGET = re.compile(r"^\([\w:.-]+\)=\s*$")     # a MyST label line such as (ch2-exercises)=


def find_exercises_heading(nb: NotebookNode) -> int | None:
    """Index of the markdown cell whose first line is exactly ``## Exercises``
    (MyST label lines such as ``(ch2-exercises)=`` before it are allowed)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            lines = [x.rstrip() for x in cell.source.split("\n") if x.strip()]
            while lines and _TARGET.match(lines[0]):
                lines.pop(0)
            if lines and lines[0] == EXERCISES_HEADING:
                return i
    return None


def chapter_title(nb: NotebookNode) -> str:
    """The text of the first ``# Title`` line of the notebook (empty if none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.split("\n"):
                if line.startswith("# "):
                    return _ROLE.sub(_role, line[2:].strip())
    return ""


class _SourceBuilder:
    """Walks an exercise section once and emits the instructor notebook's cells."""

    def __init__(self, name: str, written_points: float) -> None:
        self.name = name
        self.written_points = written_points
        self.cells: list[NotebookNode] = []
        self.exercises: dict[str, Exercise] = {}
        self.current: str | None = None          # label of the latest exercise
        self.gated_solution: str | None = None   # label while inside solution-start/end
        self.ids: set[str] = set()

    # -- bookkeeping -------------------------------------------------------
    def _exercise(self, label: str) -> Exercise:
        if label not in self.exercises:
            self.exercises[label] = Exercise(label=label, number=len(self.exercises) + 1)
        return self.exercises[label]

    def _unique_id(self, base: str) -> str:
        gid, k = base, 2
        while gid in self.ids:
            gid, k = f"{base}-{k}", k + 1
        self.ids.add(gid)
        return gid

    def _owner(self, fallback: str) -> str:
        return self.gated_solution or self.current or fallback

    # -- cells ---------------------------------------------------------------
    def add_markdown(self, cell: NotebookNode) -> None:
        statement: list[str] = []   # exercise statements and ordinary prose of this cell
        answer: list[str] = []      # prose inside a gated solution

        def flush() -> None:
            self._flush_statement(statement, cell)
            if answer:
                self._answer(self.gated_solution or self._owner("solution"), "\n".join(answer))
            statement.clear()
            answer.clear()

        for block in _split_blocks(cell.source):
            name = block.name
            if name in ("exercise", "exercise-start"):
                flush()
                label = block.options.get("label") or f"{self.name}-exercise-{len(self.exercises) + 1}"
                ex = self._exercise(label)
                ex.title = _ROLE.sub(_role, block.arg)
                minutes = cell.metadata.get("exercise", {}).get("minutes")
                if minutes is not None:
                    ex.minutes = int(minutes)
                self.current = label
                heading = f"### Exercise {ex.number}" + (f": {ex.title}" if ex.title else "")
                statement.append(heading + "\n\n" + jupyter_markdown(block.body) if block.body else heading)
            elif name == "exercise-end":
                continue
            elif name == "solution":
                flush()
                self._answer(block.arg.strip() or self._owner("solution"), jupyter_markdown(block.body))
            elif name == "solution-start":
                flush()
                self.gated_solution = block.arg.strip() or self._owner("solution")
            elif name == "solution-end":
                flush()
                self.gated_solution = None
            elif self.gated_solution is not None:
                answer.append(jupyter_markdown(block.text))
            else:
                statement.append(jupyter_markdown(block.text))
        flush()

    def _flush_statement(self, parts: list[str], template: NotebookNode) -> None:
        text = "\n".join(parts).strip("\n")
        if text.strip():
            new = nbformat.v4.new_markdown_cell(text)
            extra = {k: v for k, v in template.metadata.items() if k not in ("nbgrader",)}
            new.metadata.update(copy.deepcopy(extra))
            self.cells.append(new)

    def _answer(self, label: str, text: str) -> None:
        if not text.strip():
            return
        ex = self._exercise(label)
        gid = self._unique_id(f"{label}-answer")
        ex.answer_ids.append(gid)
        cell = nbformat.v4.new_markdown_cell("**Solution.**\n\n" + text.strip("\n"))
        cell.metadata["nbgrader"] = _nbgrader_meta(gid, grade=True, solution=True, locked=False,
                                                   points=self.written_points)
        self.cells.append(cell)

    def add_code(self, cell: NotebookNode) -> None:
        new = copy.deepcopy(cell)
        meta = _nbgrader(new)
        if meta.get("grade") or meta.get("solution") or meta.get("locked"):
            gid = meta.get("grade_id")
            if not gid:
                raise ValueError(f"{self.name}: nbgrader cell without grade_id:\n{cell.source}")
            if gid in self.ids:
                raise ValueError(f"{self.name}: duplicate nbgrader grade_id {gid!r}")
            self.ids.add(gid)
            owner = self._owner(re.sub(r"-(solution|tests?)$", "", gid))
            ex = self._exercise(owner)
            if is_grade_cell(new):
                if "points" not in meta:
                    raise ValueError(f"{self.name}: test cell {gid!r} has no points")
                ex.test_ids.append(gid)
                ex.points += float(meta["points"])
            elif meta.get("solution"):
                ex.solution_ids.append(gid)
        elif self.gated_solution is not None:
            ex = self._exercise(self.gated_solution)
            gid = self._unique_id(f"{self.gated_solution}-code")
            new.metadata["nbgrader"] = _nbgrader_meta(gid, grade=False, solution=True, locked=False)
            ex.solution_ids.append(gid)
        self.cells.append(new)


def _header_cell(name: str, title: str, exercises: list[Exercise], hidden: bool) -> NotebookNode:
    auto = [e for e in exercises if e.autograded]
    total = sum(e.points for e in auto)
    lines = [
        f"# Assignment: {title or name}",
        "",
        f"The exercises of the chapter *{title or name}* (`chapters/{name}.ipynb`) of the course "
        "*Model collapse, executable*.",
        "",
        "**How to work.** Replace every `# YOUR CODE HERE` / `raise NotImplementedError()` with your "
        "code, and write your written answers in the cells that say `YOUR ANSWER HERE`. "
        "The cells with `assert` statements are locked autograder tests: run them to check your "
        "work, but do not edit them (edits are detected, and grading uses the original tests). "
        "Before you hand in, restart the kernel and run all cells.",
        "",
        f"**Points.** {_fmt(total)} autograded points in {len(auto)} exercise(s); written answers "
        "are graded by your teacher.",
    ]
    if hidden:
        lines += ["", "Some test cells also contain hidden tests that run only at grading time."]
    lines += ["", "| Exercise | Kind | Autograded points |", "|---|---|---|"]
    for e in exercises:
        lines.append(f"| {e.number}. {e.title or e.label} | {e.kind} | {_fmt(e.points) if e.autograded else '-'} |")
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.metadata["nbgrader"] = _nbgrader_meta(f"{name}-header", grade=False, solution=False, locked=True)
    return cell


def _fmt(x: float) -> str:
    return f"{x:g}"


def _build_source(chapter: NotebookNode, name: str, written_points: float
                  ) -> tuple[NotebookNode, list[Exercise]]:
    start = find_exercises_heading(chapter)
    if start is None:
        raise ValueError(f"{name}: no markdown cell starting with {EXERCISES_HEADING!r}")
    builder = _SourceBuilder(name, written_points)
    for cell in chapter.cells[start:]:
        if cell.cell_type == "markdown":
            builder.add_markdown(cell)
        elif cell.cell_type == "code":
            builder.add_code(cell)
        else:
            builder.cells.append(copy.deepcopy(cell))
    if builder.gated_solution is not None:
        raise ValueError(f"{name}: solution-start {builder.gated_solution!r} has no solution-end")
    exercises = list(builder.exercises.values())
    hidden = any("BEGIN HIDDEN TESTS" in c.source for c in builder.cells if is_grade_cell(c))
    nb = nbformat.v4.new_notebook()
    nb.metadata = copy.deepcopy(chapter.metadata)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                          "language": "python"})
    nb.metadata[ASSIGNMENT_METADATA_KEY] = {"chapter": name}
    nb.cells = [_header_cell(name, chapter_title(chapter), exercises, hidden)] + builder.cells
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    from nbgrader.nbgraderformat import MetadataValidator
    MetadataValidator().validate_nb(nb)
    return nb, exercises


def make_source(chapter: NotebookNode, name: str, *, written_points: float = 0.0) -> NotebookNode:
    """Instructor notebook of one chapter: its exercise section, with solutions.

    Raises ``ValueError`` when the chapter has no ``## Exercises`` cell or its
    nbgrader metadata is inconsistent (missing grade_id or points, duplicate ids,
    unclosed gated solution).
    """
    return _build_source(chapter, name, written_points)[0]


def chapter_exercises(chapter: NotebookNode, name: str) -> list[Exercise]:
    """The exercises of a chapter's exercise section, in order, with their points."""
    return _build_source(chapter, name, 0.0)[1]


def release_preprocessors() -> list:
    """nbgrader's generate_assignment preprocessors that need no course database.

    Same order as ``nbgrader.converters.GenerateAssignment.preprocessors``
    (IncludeHeaderFooter, InstantiateTests and SaveCells are left out: they need
    course configuration or a database).
    """
    from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                        ClearOutput, ClearSolutions, ComputeChecksums, LockCells)
    return [LockCells(), ClearSolutions(), ClearOutput(), CheckCellMetadata(), ComputeChecksums(),
            ClearHiddenTests(), ClearMarkScheme(), ComputeChecksums(), CheckCellMetadata()]


def make_release(source: NotebookNode) -> NotebookNode:
    """Student notebook: solutions stubbed, hidden tests removed, outputs cleared,
    test cells locked, checksums recorded — by nbgrader's own preprocessors."""
    nb = copy.deepcopy(source)
    resources: dict = {}
    for pp in release_preprocessors():
        nb, resources = pp.preprocess(nb, resources)
    return nb


# --------------------------------------------------------------------------
# Chapters -> assignments/ ; exercise table
# --------------------------------------------------------------------------

def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def chapters_with_exercises(chapters_dir: Path = CHAPTERS_DIR) -> list[Path]:
    """Chapter notebooks (sorted) that have an ``## Exercises`` section."""
    return [p for p in sorted(Path(chapters_dir).glob("*.ipynb"))
            if find_exercises_heading(read_notebook(p)) is not None]


def chapters_with_graded_cells(chapters_dir: Path = CHAPTERS_DIR) -> list[Path]:
    """Chapters whose exercise section holds at least one autograder test cell."""
    out = []
    for p in chapters_with_exercises(chapters_dir):
        nb = read_notebook(p)
        start = find_exercises_heading(nb)
        if any(is_grade_cell(c) for c in nb.cells[start:]):
            out.append(p)
    return out


def assignment_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """(source, release) notebook paths of a chapter in the nbgrader course layout."""
    out_dir = Path(out_dir)
    return (out_dir / "source" / name / f"{name}.ipynb",
            out_dir / "release" / name / f"{name}.ipynb")


NBGRADER_CONFIG = '''\
# nbgrader configuration of the generated course directory (made by course_tools.assignments).
# Usage from this directory:  nbgrader generate_assignment 02_fully_synthetic --force
c = get_config()  # noqa: F821
c.CourseDirectory.root = "."
c.CourseDirectory.course_id = "model-collapse"
'''


def build(chapters_dir: Path = CHAPTERS_DIR, out_dir: Path = DEFAULT_OUT, *,
          written_points: float = 0.0) -> dict[str, list[Exercise]]:
    """Write source and release notebooks of every chapter with exercises.

    Returns ``{chapter name: exercises}``.
    """
    made: dict[str, list[Exercise]] = {}
    for path in chapters_with_exercises(chapters_dir):
        name = path.stem
        source, exercises = _build_source(read_notebook(path), name, written_points)
        release = make_release(source)
        src_path, rel_path = assignment_paths(out_dir, name)
        for p, nb in ((src_path, source), (rel_path, release)):
            p.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(p))
        made[name] = exercises
    config = Path(out_dir) / "nbgrader_config.py"
    if made and not config.exists():
        config.write_text(NBGRADER_CONFIG)
    return made


def exercise_table(chapters_dir: Path = CHAPTERS_DIR) -> str:
    """Markdown table of every chapter's exercises: kind, points, suggested time."""
    rows = ["| Chapter | Exercise | Kind | Autograded points | Suggested time (min) |",
            "|---|---|---|---|---|"]
    total_points, total_minutes, n = 0.0, 0, 0
    for path in chapters_with_exercises(chapters_dir):
        for e in chapter_exercises(read_notebook(path), path.stem):
            pts = _fmt(e.points) if e.autograded else "-"
            title = (e.title or e.label).replace("|", "\\|")
            rows.append(f"| `{path.stem}` | {e.number}. {title} (`{e.label}`) "
                        f"| {e.kind} | {pts} | {e.expected_minutes} |")
            total_points += e.points
            total_minutes += e.expected_minutes
            n += 1
    rows.append(f"| **all** | {n} exercises | | **{_fmt(total_points)}** | {total_minutes} |")
    return "\n".join(rows)


def page_table(page: Path = INSTRUCTORS_PAGE) -> str:
    """The generated table currently written in the instructors page."""
    text = Path(page).read_text()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError(f"{page}: table markers not found")
    return text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip("\n")


def update_page(page: Path = INSTRUCTORS_PAGE, chapters_dir: Path = CHAPTERS_DIR) -> bool:
    """Rewrite the table between the markers of the instructors page; True if it changed."""
    text = Path(page).read_text()
    old = page_table(page)
    new = exercise_table(chapters_dir)
    if old == new:
        return False
    head, rest = text.split(TABLE_BEGIN, 1)
    tail = rest.split(TABLE_END, 1)[1]
    Path(page).write_text(f"{head}{TABLE_BEGIN}\n{new}\n{TABLE_END}{tail}")
    return True


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_tools.assignments",
        description="Build nbgrader source (instructor) and release (student) notebooks "
                    "from the chapters' exercise sections.")
    parser.add_argument("--chapters", type=Path, default=CHAPTERS_DIR, help="chapter notebooks folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="course folder to write")
    parser.add_argument("--written-points", type=float, default=0.0,
                        help="points of each manually graded written answer (default 0)")
    parser.add_argument("--table", action="store_true", help="print the exercise table and exit")
    parser.add_argument("--update-page", nargs="?", const=INSTRUCTORS_PAGE, type=Path,
                        metavar="PAGE", help="rewrite the exercise table of instructors.md and exit")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        if args.table:
            print(exercise_table(args.chapters))
            return 0
        if args.update_page is not None:
            changed = update_page(args.update_page, args.chapters)
            print(f"{args.update_page}: table {'updated' if changed else 'already up to date'}")
            return 0
        made = build(args.chapters, args.out, written_points=args.written_points)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not made:
        print(f"no chapter in {args.chapters} has an '{EXERCISES_HEADING}' section")
    for name, exercises in made.items():
        auto = [e for e in exercises if e.autograded]
        src, rel = assignment_paths(args.out, name)
        print(f"{name}: {len(exercises)} exercises, {len(auto)} autograded "
              f"({_fmt(sum(e.points for e in auto))} points) -> {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
