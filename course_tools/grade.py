"""Grade one untrusted assignment notebook safely.

``python -m course_tools.grade SUBMISSION.ipynb --assignment NAME [--json] [--timeout S]``

The submission is hostile input.  What it can choose and what it cannot:

* **The reference is the instructor's.**  ``--assignment`` names a chapter (no path
  separators); its instructor notebook is rebuilt from ``chapters/NAME.ipynb`` (or read from
  ``--source DIR/NAME/NAME.ipynb``).  Only the reference's autograder test cells are scored,
  with the reference's source (hidden tests included) and points; the submission's metadata,
  points and checksums are never trusted.  A test cell the submission adds or duplicates
  runs as ordinary code and is listed as ignored; a deleted one scores 0.
* **Execution is contained.**  The kernel runs in a throw-away folder outside the course
  tree, with a cleaned environment (no variables of the teacher's shell, a fresh ``HOME``),
  inside a bubblewrap sandbox when ``bwrap`` works on this machine (no network; only the
  system folders, Python, ``collapse_lib`` and ``results`` visible, read-only -- not the
  chapters, solutions, ``.git`` or other students' work; only that folder writable; its own
  process namespace; no capabilities) and with resource limits (no core files, a cap on file size).
* **Time and output are bounded.**  Each cell is interrupted after ``--timeout`` seconds; a
  cell that ignores the interrupt, or a run past ``--deadline`` seconds in total, gets the
  kernel killed -- the report is written anyway.  Messages over 8 MB are refused by the
  client socket, and each cell keeps at most ``--max-output`` bytes of output.
* **Failures count.**  Before each test cell, IPython's hooks that can swallow a failure
  (custom exception handler, input and AST transformers, pre/post-run callbacks, methods
  patched on the shell) are reset through ``user_expressions`` (which no input transformer
  sees), a fingerprint of the shell's error-reporting machinery is compared with the one
  taken before the submission ran, and a sentinel test that must fail is run; if any of
  these checks fails, the test cell scores 0.

Each test cell is then scored by nbgrader's own rule (``nbgrader.utils.determine_grade``):
an error (or stderr output) gives 0, a number returned by the cell partial credit, anything
else full marks; a cell whose execute reply says ``error`` also gets 0.

Any malformed input (not a notebook, a bad assignment name, ...) prints one line and exits 2.
No scheme stops every trick that runs inside the kernel; ``instructors.md`` lists what is and
is not prevented.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import copy
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import nbformat
from nbformat import NotebookNode

from course_tools import assignments

REPO_ROOT = assignments.REPO_ROOT
DEFAULT_TIMEOUT = 60.0          # seconds per cell before it is interrupted
DEFAULT_DEADLINE = 600.0        # seconds for the whole run, kernel start included
DEFAULT_MAX_OUTPUT = 1_000_000  # bytes of output kept per cell
MAX_MESSAGE = 8 * 2**20         # ZMQ_MAXMSGSIZE of the client sockets
MAX_FILE_SIZE = 256 * 2**20     # RLIMIT_FSIZE of the kernel
INTERRUPT_GRACE = 5.0           # seconds a cell gets to stop after the interrupt
ROLE = "course_grader"          # cell metadata key of the cells the grader adds or marks
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class GradeError(ValueError):
    """A submission or request that cannot be graded (reported in one line, exit 2)."""


@dataclass
class CellScore:
    grade_id: str
    points: float
    max_points: float
    status: str                    # pass | partial | fail | missing
    error: str | None = None       # exception name, "timeout", "stderr output", ...
    message: str = ""              # first line of the exception message, if any


@dataclass
class Report:
    notebook: str
    assignment: str
    cells: list[CellScore]
    points: float
    max_points: float
    seconds: float
    sandbox: str                                         # "bubblewrap" or why not
    ignored: list[str] = field(default_factory=list)     # extra / duplicate test cells
    manual: list[str] = field(default_factory=list)      # written answers to grade by hand
    notes: list[str] = field(default_factory=list)
    grader_peak_rss_mb: float = 0.0


# --------------------------------------------------------------------------
# Reading the submission
# --------------------------------------------------------------------------

def read_submission(path: Path) -> NotebookNode:
    """Read and validate a notebook; GradeError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise GradeError(f"{path}: no such file")
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except UnicodeDecodeError:
        raise GradeError(f"{path}: not a Jupyter notebook (not a text file)") from None
    except nbformat.reader.NotJSONError:
        raise GradeError(f"{path}: not a Jupyter notebook (not JSON)") from None
    except Exception as err:  # jsonschema / nbformat validation errors, bad versions
        raise GradeError(f"{path}: not a valid Jupyter notebook ({_first_line(str(err))})") from None
    return nb


def _first_line(text: str, width: int = 120) -> str:
    line = next((x.strip() for x in str(text).splitlines() if x.strip()), "")
    return line if len(line) <= width else line[:width - 3] + "..."


def _nbgrader(cell: NotebookNode) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


# --------------------------------------------------------------------------
# The reference: the instructor's notebook, chosen by name
# --------------------------------------------------------------------------

@dataclass
class Reference:
    name: str
    notebook: NotebookNode
    tests: dict[str, NotebookNode]      # grade_id -> test cell (hidden tests included), in order
    answers: list[str]                  # grade ids of the other nbgrader cells (solutions, answers)


def check_name(name: str) -> str:
    """An assignment name: letters, digits, ``_.-``; never a path."""
    if not isinstance(name, str) or not name:
        raise GradeError("--assignment: give the assignment's name, e.g. 02_fully_synthetic")
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name) \
            or name in (".", "..") or not _NAME.match(name):
        raise GradeError(f"--assignment {name!r}: an assignment name, not a path "
                         "(letters, digits, '_', '.', '-')")
    return name


def known_assignments(chapters_dir: Path = assignments.CHAPTERS_DIR,
                      source_dir: Path | None = None) -> dict[str, Path]:
    """``{name: notebook}`` of the gradable assignments."""
    if source_dir is not None:
        return {p.name: p / f"{p.name}.ipynb" for p in sorted(Path(source_dir).iterdir())
                if (p / f"{p.name}.ipynb").is_file()} if Path(source_dir).is_dir() else {}
    return {p.stem: p for p in assignments.chapters_with_graded_cells(chapters_dir)}


def load_reference(name: str, chapters_dir: Path = assignments.CHAPTERS_DIR,
                   source_dir: Path | None = None) -> Reference:
    """The instructor notebook of assignment ``name`` (GradeError when unknown)."""
    check_name(name)
    known = known_assignments(chapters_dir, source_dir)
    if name not in known:
        where = source_dir if source_dir is not None else chapters_dir
        raise GradeError(f"--assignment {name!r}: unknown assignment in {where} "
                         f"(known: {', '.join(known) or 'none'})")
    nb = assignments.read_notebook(known[name])
    if source_dir is None:
        nb = assignments.make_source(nb, name)
    tests = {c.metadata.nbgrader.grade_id: c for c in nb.cells if assignments.is_grade_cell(c)}
    if not tests:
        raise GradeError(f"assignment {name!r} has no autograder test cells")
    answers = [_nbgrader(c)["grade_id"] for c in nb.cells if isinstance(_nbgrader(c).get("grade_id"), str)
               and not assignments.is_grade_cell(c)]
    return Reference(name, nb, tests, answers)


# --------------------------------------------------------------------------
# The notebook that runs: submission + reference tests + sentinels
# --------------------------------------------------------------------------

@dataclass
class Prepared:
    nb: NotebookNode
    ignored: list[str]
    missing: list[str]
    manual: list[str]


def sanitize(submission: NotebookNode, ref: Reference) -> Prepared:
    """The submission with the reference's test cells (source, hidden tests, points) in place
    of its own; every other nbgrader marking a test or answer the reference does not have
    (extra, duplicate, without grade_id) is removed, so that cell runs as plain code."""
    nb = copy.deepcopy(submission)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    seen: set[str] = set()
    ignored: list[str] = []
    for cell in nb.cells:
        cell.metadata.pop(ROLE, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        meta = _nbgrader(cell)
        gid = meta.get("grade_id")
        gid = gid if isinstance(gid, str) else None
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            if gid in ref.tests and gid not in seen:
                seen.add(gid)
                cell.source = ref.tests[gid].source
                cell.metadata["nbgrader"] = copy.deepcopy(ref.tests[gid].metadata["nbgrader"])
                continue
            ignored.append(f"{gid or '<no grade_id>'} ({'duplicate' if gid in seen else 'not in the reference'})")
            cell.metadata.pop("nbgrader", None)
        elif "nbgrader" in cell.metadata and (gid not in ref.answers or gid in seen):
            cell.metadata.pop("nbgrader", None)           # unknown marking: plain cell
        elif gid is not None:
            seen.add(gid)
    missing = [g for g in ref.tests if g not in seen]
    manual = [g for g in ref.answers if any(
        _nbgrader(c).get("grade_id") == g and _nbgrader(c).get("grade") for c in ref.notebook.cells)]
    return Prepared(nb, ignored, missing, manual)


def add_sentinels(nb: NotebookNode, nonce: str) -> NotebookNode:
    """Mark each autograder test cell (``metadata.course_grader.role = test``) and put before it
    a sentinel cell that must fail (``role = sentinel``). Works on a sanitized notebook."""
    cells = []
    for cell in nb.cells:
        if assignments.is_grade_cell(cell) and isinstance(_nbgrader(cell).get("grade_id"), str):
            sentinel = nbformat.v4.new_code_cell(f'assert False, "grader sentinel {nonce}"')
            sentinel.metadata[ROLE] = {"role": "sentinel"}
            cell.metadata[ROLE] = {"role": "test", "grade_id": cell.metadata.nbgrader.grade_id}
            cells.append(sentinel)
        cells.append(cell)
    nb.cells = cells
    return nb


def prepare(submission: NotebookNode, ref: Reference, nonce: str) -> Prepared:
    """:func:`sanitize`, then :func:`add_sentinels`: the notebook that runs."""
    prep = sanitize(submission, ref)
    add_sentinels(prep.nb, nonce)
    return prep


# --------------------------------------------------------------------------
# Sandbox and kernel
# --------------------------------------------------------------------------

_LAUNCHER = r'''
import resource, sys
for which, soft in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, {fsize})):
    try:
        hard = resource.getrlimit(which)[1]
        soft = soft if hard == resource.RLIM_INFINITY else min(soft, hard)
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        pass
sys.argv = ["ipykernel", "-f", sys.argv[1], "--HistoryManager.enabled=False"]
from ipykernel.kernelapp import launch_new_instance
launch_new_instance()
'''


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


#: What of the course the kernel sees (read-only): the science library and committed results.
#: Not the chapters, ``assignments/`` (solutions, hidden tests), ``.git``, ``_build`` or graded classes.
COURSE_VISIBLE = ("collapse_lib", "results")


def _bwrap_options(work: Path) -> list[str]:
    """bubblewrap arguments: the system folders, Python and :data:`COURSE_VISIBLE` read-only,
    ``work`` writable, nothing else; no network, own process namespace, no capabilities."""
    # the fresh /tmp first: a later bind (Python or the course living under /tmp) must sit on top of
    # it, not be hidden by it
    opts: list[str] = ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    bound: list[Path] = []
    for d in ("/usr", "/etc", "/sys", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(d)
        if p.is_symlink():
            opts += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            opts += ["--ro-bind", d, d]
            bound.append(p)
    for secret in ("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d"):
        if Path(secret).exists():
            opts += (["--tmpfs", secret] if Path(secret).is_dir() else ["--ro-bind", "/dev/null", secret])
    visible = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent]
    visible += [REPO_ROOT / d for d in COURSE_VISIBLE]
    for p in visible:
        p = p.resolve()
        if p.is_dir() and not any(_under(p, b) for b in bound):
            opts += ["--ro-bind", str(p), str(p)]
            bound.append(p)
    opts += ["--bind", str(work), str(work), "--unshare-all", "--die-with-parent",
             "--new-session", "--clearenv", "--hostname", "grader"]
    if os.geteuid() == 0:
        opts += ["--cap-drop", "ALL"]
    return opts


@lru_cache(maxsize=None)
def bwrap_status() -> tuple[bool, str]:
    """(works, description): whether bubblewrap can run a sandboxed Python here."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "not sandboxed: bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as tmp:
        cmd = [bwrap] + _bwrap_options(Path(tmp)) + [sys.executable, "-c", "pass"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"not sandboxed: bubblewrap failed ({err})"
    if proc.returncode != 0:
        return False, f"not sandboxed: bubblewrap does not work here ({_first_line(proc.stderr)})"
    return True, "bubblewrap"


def kernel_environment(work: Path) -> dict[str, str]:
    """The kernel's whole environment: nothing of the teacher's shell."""
    bindir = str(Path(sys.executable).parent)
    return {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"), "IPYTHONDIR": str(work / "home" / ".ipython"),
            "MPLCONFIGDIR": str(work / "tmp"), "NUMBA_CACHE_DIR": str(work / "tmp"),
            "MPLBACKEND": "Agg", "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
            "JUPYTER_PLATFORM_DIRS": "1"}


def kernel_argv(work: Path, sandbox: bool) -> list[str]:
    argv = [sys.executable, "-c", _LAUNCHER.replace("{fsize}", str(MAX_FILE_SIZE)), "{connection_file}"]
    if not sandbox:
        return argv
    env = kernel_environment(work)
    setenv = [x for k, v in env.items() for x in ("--setenv", k, v)]
    return [shutil.which("bwrap")] + _bwrap_options(work) + setenv + \
        ["--chdir", str(work / "run")] + argv


# --------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------

# Runs through ``user_expressions`` (plain eval: no input transformer sees it).  Resets the
# hooks that can swallow a failure and returns a fingerprint of the error machinery.
_RESET = r'''
import builtins, json, sys
from IPython import get_ipython
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
ip = get_ipython()
InteractiveShell.set_custom_exc(ip, (), None)
ip.input_transformer_manager = TransformerManager()
ip.input_transformers_post = []
ip.ast_transformers = []
for name in NAMES:
    if name != "CustomTB":
        ip.__dict__.pop(name, None)
if KEEP is None:          # first request, before any cell: cap what a cell can print
    class _Capped:
        def __init__(self, stream):
            self.__dict__.update(_stream=stream, used=0, noted=False)
        def write(self, text):
            text = str(text)
            room = CAP - self.used
            if len(text) > room:
                if not self.noted:
                    self.noted = True
                    self._stream.write(text[:max(room, 0)] + MARK)
                self.used = CAP
                return len(text)
            self.used += len(text)
            return self._stream.write(text)
        def __getattr__(self, name):
            return getattr(self._stream, name)
    sys.stdout, sys.stderr = _Capped(sys.stdout), _Capped(sys.stderr)
    def _new_cell(*args):
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _Capped):
                stream.used, stream.noted = 0, False
    ip.events.register("pre_run_cell", _new_cell)
else:
    for event, callbacks in ip.events.callbacks.items():
        callbacks[:] = [cb for cb in callbacks if id(cb) in KEEP.get(event, ())]
cls = type(ip)
result = json.dumps({
    "callbacks": {e: [id(cb) for cb in cbs] for e, cbs in ip.events.callbacks.items()},
    "fingerprint": [[n, id(getattr(cls, n, None))] for n in NAMES] + [
        ["builtins." + n, id(getattr(builtins, n, None))] for n in ("exec", "eval", "compile")] + [
        ["display_pub", id(type(ip.display_pub).__dict__.get("publish"))],
        ["session.send", id(type(ip.display_pub.session).send)],
        ["ip.display_pub", id(ip.display_pub)], ["ip.kernel", id(getattr(ip, "kernel", None))],
        ["session.send (instance)", id(vars(ip.display_pub.session).get("send"))]] + [
        ["kernel." + n, id(getattr(type(ip.kernel), n, None))]
        for n in ("send_response", "do_execute", "execute_request", "finish_metadata")] + [
        ["kernel." + n + " (instance)", id(vars(ip.kernel).get(n))]
        for n in ("send_response", "do_execute", "execute_request", "finish_metadata")],
})
'''
_SHELL_NAMES = ["showtraceback", "_showtraceback", "showsyntaxerror", "run_cell", "run_cell_async",
                "_run_cell", "run_ast_nodes", "run_code", "transform_cell", "transform_ast",
                "should_run_async", "get_exception_only", "_get_exc_info", "set_custom_exc",
                "user_expressions"]


TRUNCATION_MARK = "[grader: output beyond the limit dropped]"


def _reset_expression(keep: dict | None, cap: int = DEFAULT_MAX_OUTPUT) -> str:
    code = _RESET.replace("NAMES", repr(_SHELL_NAMES)).replace("KEEP", repr(keep)) \
        .replace("CAP", str(int(cap))).replace("MARK", repr("\n" + TRUNCATION_MARK + "\n"))
    return (f"(lambda ns: (__import__('builtins').exec({code!r}, ns), ns['result'])[1])"
            "({'__name__': '__grader__'})")


@dataclass
class Execution:
    replies: dict[int, str] = field(default_factory=dict)       # cell index -> reply status
    compromised: dict[int, str] = field(default_factory=dict)   # test cell index -> why
    truncated: set[int] = field(default_factory=set)
    stopped: str | None = None                                  # why execution stopped early
    seconds: float = 0.0


def _client_class():
    from nbclient import NotebookClient

    class GradingClient(NotebookClient):
        """nbclient with a cap on the output kept per cell and the reply status recorded."""

        max_output = DEFAULT_MAX_OUTPUT

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.kept: dict[int, int] = {}
            self.truncated: set[int] = set()
            self.last_reply: dict | None = None
            self.on_cell_executed = self._record

        def _record(self, cell, cell_index, execute_reply):
            self.last_reply = execute_reply

        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "error":
                c = msg["content"]
                c["evalue"] = str(c.get("evalue", ""))[:2000]
                c["traceback"] = [str(x)[:2000] for x in list(c.get("traceback", []))[-30:]]
                return super().output(outs, msg, display_id, cell_index)
            size = len(json.dumps(msg["content"], default=str))
            if msg["msg_type"] == "stream" and TRUNCATION_MARK in str(msg["content"].get("text", "")):
                self.truncated.add(cell_index)          # cut by the kernel-side cap
            used = self.kept.get(cell_index, 0)
            if used + size > self.max_output:
                if cell_index not in self.truncated:
                    self.truncated.add(cell_index)
                    text = TRUNCATION_MARK + "\n"
                    outs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
                return None
            self.kept[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)

    return GradingClient


async def _wait(coro, budget: float) -> tuple[bool, object]:
    """(finished in time, result or exception)."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=max(budget, 0.0))
    if not done:
        return False, task
    try:
        return True, task.result()
    except Exception as err:    # noqa: BLE001 - reported by the caller
        return True, err


async def _kill(km, task=None) -> None:
    try:
        await km.signal_kernel(signal.SIGKILL)
    except Exception:   # noqa: BLE001 - already dead
        pass
    if task is not None:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=5)
        if task.done() and not task.cancelled():
            task.exception()               # retrieved: the kernel's death is in the report


async def _execute(nb: NotebookNode, work: Path, info: Execution, *, timeout: float, deadline: float,
                   max_output: int, sandbox: bool, nonce: str) -> Execution:
    import zmq
    import zmq.asyncio
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.exceptions import DeadKernelError

    start = time.monotonic()
    end = start + deadline
    spec_dir = work / "kernels" / "course-grader"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(
        {"argv": kernel_argv(work, sandbox), "display_name": "grader", "language": "python",
         "interrupt_mode": "message"}))
    ctx = zmq.asyncio.Context()
    ctx.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
    km = AsyncKernelManager(kernel_name="course-grader", context=ctx, transport="ipc",
                            ip=str(work / "conn" / "k"), connection_file=str(work / "conn" / "kernel.json"),
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(work / "kernels")]))
    client = _client_class()(nb, km=km, timeout=int(max(1, round(timeout))), allow_errors=True,
                             interrupt_on_timeout=True, record_timing=False, iopub_timeout=4)
    client.max_output = max_output
    kc = None
    try:
        ok, res = await _wait(km.start_kernel(env=kernel_environment(work), cwd=str(work / "run"),
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                              stdin=subprocess.DEVNULL), end - time.monotonic())
        if not ok or isinstance(res, Exception):
            info.stopped = "the kernel did not start" + (f" ({res})" if isinstance(res, Exception) else "")
            await _kill(km, None if ok else res)
            return info
        kc = km.client(context=ctx)
        kc.start_channels()
        ok, res = await _wait(kc.wait_for_ready(timeout=max(1.0, end - time.monotonic())),
                              end - time.monotonic())
        if not ok or isinstance(res, Exception):
            info.stopped = "the kernel did not answer"
            await _kill(km, None if ok else res)
            return info
        client.kc = kc
        keep = None
        ok, first = await _wait(_reset(kc, None, max_output, max(30.0, timeout)), end - time.monotonic())
        if ok and isinstance(first, dict):
            keep = first["callbacks"]
            baseline = first["fingerprint"]
        else:
            info.stopped = "the kernel did not answer the grader's first request"
            return info
        count = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            role = cell.metadata.get(ROLE, {}).get("role")
            if role == "sentinel":
                ok, state = await _wait(_reset(kc, keep, max_output, max(30.0, timeout)),
                                        end - time.monotonic())
                why = None
                if not ok or not isinstance(state, dict):
                    why = "the grader could not reset the kernel's hooks"
                elif state["fingerprint"] != baseline:
                    changed = [a for (a, x), (_, y) in zip(baseline, state["fingerprint"]) if x != y]
                    why = "the submission replaced IPython internals: " + ", ".join(changed)
                if why:
                    info.compromised[index + 1] = why
            client.last_reply = None
            count += 1
            budget = min(timeout + INTERRUPT_GRACE, end - time.monotonic())
            ok, res = await _wait(client.async_execute_cell(cell, index, execution_count=count), budget)
            if not ok:
                over = time.monotonic() >= end
                info.stopped = (f"the overall deadline of {deadline:g} s was reached" if over else
                                f"a cell ignored the interrupt after the {timeout:g} s timeout") + \
                               "; the kernel was killed"
                if not over:
                    cell.outputs.append(nbformat.v4.new_output(
                        "error", ename="Timeout", evalue=f"still running {INTERRUPT_GRACE:g} s after "
                        "the interrupt; kernel killed", traceback=[]))
                await _kill(km, res)
                break
            if isinstance(res, DeadKernelError):
                info.stopped = "the kernel died"
                break
            if isinstance(res, Exception):
                info.stopped = f"execution failed ({type(res).__name__}: {_first_line(str(res))})"
                await _kill(km)
                break
            if client.last_reply is not None:
                info.replies[index] = client.last_reply["content"].get("status", "?")
            if role == "sentinel" and index + 1 not in info.compromised:
                errs = [o for o in cell.outputs if o.output_type == "error"]
                if info.replies.get(index) != "error" or not errs or errs[0].ename != "AssertionError" \
                        or nonce not in str(errs[0].evalue):
                    info.compromised[index + 1] = "a test that must fail passed (failures are swallowed)"
    finally:
        info.truncated = set(client.truncated)
        info.seconds = time.monotonic() - start
        try:
            ok, _ = await _wait(km.shutdown_kernel(now=True), 10)
            if not ok:
                await _kill(km)
        except Exception:  # noqa: BLE001
            await _kill(km)
        if kc is not None:
            kc.stop_channels()
        ctx.destroy(linger=0)
    return info


async def _reset(kc, keep: dict | None, cap: int = DEFAULT_MAX_OUTPUT, wait: float = 30.0) -> dict | None:
    msg_id = kc.execute("", silent=True, store_history=False,
                        user_expressions={"grader": _reset_expression(keep, cap)})
    while True:
        msg = await kc.get_shell_msg(timeout=wait)
        if msg["parent_header"].get("msg_id") == msg_id:
            break
    value = msg["content"].get("user_expressions", {}).get("grader", {})
    if value.get("status") != "ok":
        return None
    try:
        return json.loads(ast.literal_eval(value["data"]["text/plain"]))
    except (KeyError, ValueError, SyntaxError, TypeError):
        return None


def execute_safely(nb: NotebookNode, *, timeout: float = DEFAULT_TIMEOUT,
                   deadline: float = DEFAULT_DEADLINE, max_output: int = DEFAULT_MAX_OUTPUT,
                   sandbox: bool | None = None, chapters_dir: Path = assignments.CHAPTERS_DIR,
                   nonce: str) -> tuple[Execution, str]:
    """Run ``nb`` in place (outputs filled in) in a throw-away folder; (execution, sandbox text)."""
    works, why = bwrap_status()
    if sandbox is None:
        sandbox = works
    elif sandbox and not works:
        raise GradeError(f"--sandbox: {why}")
    label = "bubblewrap" if sandbox else (why if not works else "not sandboxed (--no-sandbox)")
    base = Path(tempfile.gettempdir())
    if _under(base, REPO_ROOT) or _under(base, Path(chapters_dir)):
        base = Path("/tmp")
    work = Path(tempfile.mkdtemp(prefix="grade-", dir=base))
    try:
        for sub in ("run", "home", "tmp", "conn"):
            (work / sub).mkdir()
        info = Execution()
        try:
            asyncio.run(asyncio.wait_for(
                _execute(nb, work, info, timeout=timeout, deadline=deadline, max_output=max_output,
                         sandbox=sandbox, nonce=nonce), deadline + 60))
        except asyncio.TimeoutError:
            info.stopped = f"the grader gave up {deadline + 60:g} s after the start"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return info, label


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------

def _grader_error(text: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename="GraderError", evalue=text, traceback=[text])


def mark_failures(nb: NotebookNode, info: Execution) -> None:
    """Give every test cell that must score 0 an error output, so that nbgrader's
    ``determine_grade`` (and nbgrader's own gradebook) score it 0 too."""
    from nbgrader.utils import get_partial_grade
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get(ROLE, {}).get("role") != "test":
            continue
        points = float(cell.metadata.nbgrader.points)
        for out in [o for o in cell.outputs if o.output_type == "execute_result"]:
            try:                           # a value nbgrader would choke on is no partial credit
                get_partial_grade(out, points)
            except (ValueError, TypeError, KeyError):
                cell.outputs.remove(out)
        # first, so that determine_grade stops there (an injected execute_result cannot win)
        if index in info.compromised:
            cell.outputs.insert(0, _grader_error(info.compromised[index]))
        elif index not in info.replies:
            cell.outputs.insert(0, _grader_error("not executed" + (f": {info.stopped}" if info.stopped else "")))
        elif info.replies[index] != "ok":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            first = errors[0] if errors else _grader_error("the kernel reported an error but showed none")
            if errors:
                cell.outputs.remove(first)
            cell.outputs.insert(0, first)


def _error(cell: NotebookNode) -> tuple[str | None, str]:
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            if out.ename == "KeyboardInterrupt":
                return "timeout", "interrupted after the time limit"
            return out.ename, _first_line(out.evalue)
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.name == "stderr":
            return "stderr output", _first_line(out.text)
    return None, ""


def score_cells(nb: NotebookNode, ref: Reference) -> list[CellScore]:
    """One score per reference test cell, in the reference's order (missing ones 0)."""
    from nbgrader.utils import determine_grade
    found = {c.metadata[ROLE]["grade_id"]: c for c in nb.cells
             if c.metadata.get(ROLE, {}).get("role") == "test"}
    scores = []
    for gid, original in ref.tests.items():
        max_points = float(original.metadata.nbgrader.points)
        cell = found.get(gid)
        if cell is None:
            scores.append(CellScore(gid, 0.0, max_points, "missing", "test cell deleted"))
            continue
        try:
            points, _ = determine_grade(cell)
        except (ValueError, TypeError, KeyError):       # an output nbgrader cannot read
            points = 0.0
        points = min(max(float(points or 0.0), 0.0), max_points)
        error, message = _error(cell)
        status = "pass" if points >= max_points else ("fail" if points <= 0 else "partial")
        scores.append(CellScore(gid, points, max_points, status, error, message))
    return scores


def grade_notebook(submission: NotebookNode, ref: Reference, *, name: str = "<notebook>",
                   timeout: float = DEFAULT_TIMEOUT, deadline: float = DEFAULT_DEADLINE,
                   max_output: int = DEFAULT_MAX_OUTPUT, sandbox: bool | None = None,
                   chapters_dir: Path = assignments.CHAPTERS_DIR) -> Report:
    """Run a submission against the reference and score it (see the module docstring)."""
    nonce = secrets.token_hex(8)
    prep = prepare(submission, ref, nonce)
    info, label = execute_safely(prep.nb, timeout=timeout, deadline=deadline, max_output=max_output,
                                 sandbox=sandbox, chapters_dir=chapters_dir, nonce=nonce)
    mark_failures(prep.nb, info)
    cells = score_cells(prep.nb, ref)
    notes = []
    if info.stopped:
        notes.append(f"execution stopped: {info.stopped}")
    notes += [f"{prep.nb.cells[i].metadata[ROLE]['grade_id']}: {why}" for i, why in sorted(info.compromised.items())]
    if info.truncated:
        notes.append(f"output of {len(info.truncated)} cell(s) truncated at {max_output} bytes")
    if label != "bubblewrap":
        notes.append(f"{label}; the submission ran with your user's rights")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return Report(name, ref.name, cells, sum(c.points for c in cells), sum(c.max_points for c in cells),
                  round(info.seconds, 2), label, prep.ignored, prep.manual, notes, round(peak, 1))


def grade_file(path: Path, assignment: str, *, chapters_dir: Path = assignments.CHAPTERS_DIR,
               source_dir: Path | None = None, **kwargs) -> Report:
    """Read ``path`` and grade it against assignment ``assignment``."""
    ref = load_reference(assignment, chapters_dir, source_dir)
    nb = read_submission(path)
    return grade_notebook(nb, ref, name=str(path), chapters_dir=chapters_dir, **kwargs)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def format_report(r: Report) -> str:
    width = max([len("grade_id")] + [len(c.grade_id) for c in r.cells])
    lines = [f"Grading {r.notebook} against assignment {r.assignment} (sandbox: {r.sandbox})",
             f"{'grade_id':<{width}}  {'points':>9}  result"]
    for c in r.cells:
        detail = f"{c.error}: {c.message}" if c.message else c.error
        result = c.status + (f" ({detail})" if c.error and c.status != "pass" else "")
        lines.append(f"{c.grade_id:<{width}}  {c.points:>4g} / {c.max_points:<3g}  {result}")
    if r.ignored:
        lines.append("Ignored test cells (not scored): " + ", ".join(r.ignored))
    if r.manual:
        lines.append(f"Written answers to grade by hand: {', '.join(r.manual)}")
    lines += [f"Note: {n}" for n in r.notes]
    lines.append(f"Executed in {r.seconds:.1f} s")
    lines.append(f"Score: {r.points:g} / {r.max_points:g}")
    return "\n".join(lines)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):     # one line, exit 2
        self.exit(2, f"error: {message}\n")


def main(argv: Iterable[str] | None = None) -> int:
    parser = _Parser(prog="python -m course_tools.grade",
                     description="Grade one untrusted assignment notebook safely.")
    parser.add_argument("submission", type=Path, help="the .ipynb to grade")
    parser.add_argument("--assignment", required=True,
                        help="assignment name (a chapter with autograder tests, e.g. 02_fully_synthetic)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT,
                        help=f"seconds per cell before it is interrupted (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--deadline", type=_positive(float), default=DEFAULT_DEADLINE,
                        help=f"seconds for the whole run; the kernel is killed after (default {DEFAULT_DEADLINE:g})")
    parser.add_argument("--max-output", type=_positive(int), default=DEFAULT_MAX_OUTPUT,
                        help=f"bytes of output kept per cell (default {DEFAULT_MAX_OUTPUT})")
    parser.add_argument("--chapters", type=Path, default=assignments.CHAPTERS_DIR,
                        help="chapters folder the reference is built from")
    parser.add_argument("--source", type=Path, default=None,
                        help="nbgrader source folder (SOURCE/NAME/NAME.ipynb) instead of the chapters")
    box = parser.add_mutually_exclusive_group()
    box.add_argument("--sandbox", dest="sandbox", action="store_true", default=None,
                     help="require the bubblewrap sandbox (error if it does not work)")
    box.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                     help="run the kernel without bubblewrap (still in a throw-away folder)")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        report = grade_file(args.submission, args.assignment, chapters_dir=args.chapters,
                            source_dir=args.source, timeout=args.timeout, deadline=args.deadline,
                            max_output=args.max_output, sandbox=args.sandbox)
    except GradeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
