"""The stall guard (course_tools/kernel_guard.py), on a pair of local sockets: no kernel needed.

A missed wake-up is simulated the way it shows in the course's builds: the asyncio socket's
``poll(timeout)`` is not woken by the message and returns only at its timeout (pyzmq's final check
then finds the message). The plain jupyter_client wait then costs the whole timeout; the guarded
one costs one slice. The grader's end-to-end version is tests/test_grade_stall.py; the probe on
real kernels is benchmarks/kernel_stall_probe.py (`make probe`).
"""

from __future__ import annotations

import asyncio
import time
from queue import Empty

import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from course_tools import kernel_guard


def _pair(ctx: zmq.asyncio.Context, name: str):
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind(f"inproc://{name}")
    b.connect(f"inproc://{name}")
    return a, b


@pytest.fixture
def deaf_sockets(monkeypatch):
    """Every asyncio socket poll with a timeout misses its wake-up: it returns at its timeout
    (shared with tests/test_grade_stall.py)."""
    original = zmq.asyncio.Socket.poll

    def deaf_poll(self, timeout=None, flags=zmq.POLLIN):
        if not timeout:
            return original(self, timeout, flags)

        async def at_the_timeout():
            await asyncio.sleep(timeout / 1000)
            return await original(self, 0, flags)

        return asyncio.ensure_future(at_the_timeout())

    monkeypatch.setattr(zmq.asyncio.Socket, "poll", deaf_poll)


async def _wait_for_reply(channel_class, timeout: float, send: bool = True) -> tuple[object, float]:
    ctx = zmq.asyncio.Context()
    a, b = _pair(ctx, f"stall-{id(channel_class)}-{time.monotonic_ns()}")
    session = Session()
    channel = channel_class(b, session)
    try:
        async def reply_soon():
            await asyncio.sleep(0.05)
            session.send(a, "execute_reply", {"status": "ok"})

        task = asyncio.ensure_future(reply_soon()) if send else None
        t0 = time.monotonic()
        try:
            msg = await channel.get_msg(timeout=timeout)
        except Empty:
            msg = None
        if task is not None:
            await task
        return msg, time.monotonic() - t0
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()


def test_plain_wait_loses_the_timeout_on_a_missed_wakeup(deaf_sockets):
    msg, took = asyncio.run(_wait_for_reply(AsyncZMQSocketChannel, 3.0))
    assert msg is not None and msg["msg_type"] == "execute_reply"
    assert took >= 2.9                       # the stall: the reply was there after 0.05 s


def test_guarded_wait_costs_one_slice(deaf_sockets):
    before = kernel_guard.STATS["recovered"]
    msg, took = asyncio.run(_wait_for_reply(kernel_guard.guarded_channel_class(), 3.0))
    assert msg is not None and msg["msg_type"] == "execute_reply"
    assert took < kernel_guard.SLICE_S + 1.0
    assert kernel_guard.STATS["recovered"] == before + 1


def test_guarded_wait_is_prompt_and_keeps_its_timeout():
    msg, took = asyncio.run(_wait_for_reply(kernel_guard.guarded_channel_class(), 3.0))
    assert msg is not None and took < 1.0
    msg, took = asyncio.run(_wait_for_reply(kernel_guard.guarded_channel_class(), 1.2, send=False))
    assert msg is None and 1.1 <= took < 2.5     # Empty at the caller's timeout, as before


def test_install_is_idempotent_and_reversible():
    original = AsyncZMQSocketChannel.get_msg
    was = kernel_guard.installed()
    kernel_guard.uninstall()
    plain = AsyncZMQSocketChannel.get_msg
    try:
        kernel_guard.install()
        kernel_guard.install()
        assert kernel_guard.installed() and AsyncZMQSocketChannel.get_msg is kernel_guard._sliced_get_msg
        kernel_guard.uninstall()
        assert not kernel_guard.installed() and AsyncZMQSocketChannel.get_msg is plain
    finally:
        if was:
            kernel_guard.install()
    assert AsyncZMQSocketChannel.get_msg is original


def test_book_command_installs_the_guard(capsys):
    from course_tools import book

    was = kernel_guard.installed()
    try:
        assert book.main(["--version"]) == 0
        assert "Jupyter Book" in capsys.readouterr().out
        assert kernel_guard.installed()
    finally:
        if not was:
            kernel_guard.uninstall()


def test_guarded_client_kwargs_are_accepted_by_jupyter_client():
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name="python3")
    kc = km.client(**kernel_guard.guarded_client_kwargs())
    assert kc.shell_channel_class is kernel_guard.guarded_channel_class()
    assert kc.iopub_channel_class is kernel_guard.guarded_channel_class()


@pytest.mark.parametrize("jobs", ["0", "x"])
def test_execute_notebooks_refuses_bad_jobs(jobs, tmp_path, capsys):
    from course_tools import execute_notebooks

    with pytest.raises(SystemExit) as stop:
        execute_notebooks.main(["--jobs", jobs, "--cache", str(tmp_path / "c"), "missing.ipynb"])
    assert stop.value.code == 2 and "--jobs must be a positive integer or auto" in capsys.readouterr().err
