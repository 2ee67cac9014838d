"""Running the prepared notebook under the grader's limits: per-cell timeout with interrupt,
overall deadline, output caps, the hook reset before each test, and the stall guard
(:mod:`course_tools.kernel_guard`: a reply whose wake-up the client missed costs at most
half a second, never a cell's timeout)."""
from __future__ import annotations

import ast
import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_tools import assignments, kernel_guard
from course_tools.grade_common import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_TIMEOUT,
    INTERRUPT_GRACE,
    MAX_MESSAGE,
    REPO_ROOT,
    ROLE,
    GradeError,
    _first_line,
)
from course_tools.grade_sandbox import _under, bwrap_status, kernel_argv, kernel_environment

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
        kc = km.client(context=ctx, **kernel_guard.guarded_client_kwargs())
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
