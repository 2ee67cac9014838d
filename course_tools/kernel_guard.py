"""A guard against stalled notebook executions: kernel replies that the client never notices.

The symptom (issue 26): under load, an nbclient execution sometimes sits idle for a cell's whole
timeout although the cell takes milliseconds, then carries on as if nothing had happened. Both
processes are idle in their event loops. nbclient waits for the ``execute_reply`` with
``await socket.poll(timeout)`` on a ``zmq.asyncio`` socket (jupyter_client's
``AsyncZMQSocketChannel.get_msg``); the asyncio socket learns of a message through the
edge-triggered ``zmq.FD`` of the socket, and when that edge is missed the poll only returns when its
timer runs out, at which point pyzmq's final non-blocking ``zmq_poll`` finds the message that had
been waiting all along (so the cell "succeeds", one timeout late). A lost message would instead end
in an error; nbval, whose blocking client polls with ``zmq_poll`` directly (level-triggered), never
stalled. See pyzmq issues 1085 and 2173 for this class of missed wake-up.

The guard polls in short slices (:data:`SLICE_S`): a poll whose wake-up was missed ends at its
slice, finds the message and returns it, so a missed edge costs at most one slice instead of the
cell's timeout. The overall timeout still holds. It replaces ``get_msg`` of jupyter_client's
``AsyncZMQSocketChannel`` (the channel class of every async kernel client: nbclient, myst-nb's
execution through jupyter-cache, the grader), see :func:`install`.

``STATS`` counts the slices that ended with a message ready at the end of the slice: an upper bound
on the missed wake-ups the guard recovered (a message arriving within the last instant of a slice
would be counted too).
"""
from __future__ import annotations

import time
import typing as t
from queue import Empty

SLICE_S: float = 0.5
"""Longest time one poll waits before looking at the socket again (seconds)."""

STATS: dict[str, int] = {"polls": 0, "recovered": 0}
"""Slices polled, and slices that found a message only when their timer ran out."""

_ORIGINAL: dict[str, t.Any] = {}


async def _sliced_get_msg(self: t.Any, timeout: float | None = None) -> dict[str, t.Any]:
    """``AsyncZMQSocketChannel.get_msg`` with the wait cut into slices of at most ``SLICE_S``."""
    assert self.socket is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        slice_s = SLICE_S if remaining is None else min(SLICE_S, remaining)
        started = time.monotonic()
        ready = await self.socket.poll(int(slice_s * 1000))
        STATS["polls"] += 1
        if ready:
            if slice_s > 0 and time.monotonic() - started >= 0.95 * slice_s:
                STATS["recovered"] += 1
            return await self._recv()
        if deadline is not None and time.monotonic() >= deadline:
            raise Empty


def guarded_channel_class() -> type:
    """A subclass of jupyter_client's ``AsyncZMQSocketChannel`` whose ``get_msg`` polls in slices.

    For one client only: ``km.client(**guarded_client_kwargs())`` (the grader does this);
    :func:`install` changes every client of the process instead.
    """
    from jupyter_client.channels import AsyncZMQSocketChannel

    global _GUARDED
    if _GUARDED is None:
        _GUARDED = type("GuardedZMQSocketChannel", (AsyncZMQSocketChannel,), {
            "get_msg": _sliced_get_msg,
            "__doc__": "AsyncZMQSocketChannel that polls in slices of SLICE_S (course_tools.kernel_guard).",
        })
    return _GUARDED


_GUARDED: type | None = None


def guarded_client_kwargs() -> dict[str, type]:
    """Keyword arguments of ``KernelManager.client`` for a client with guarded shell and IOPub waits."""
    cls = guarded_channel_class()
    return {"shell_channel_class": cls, "iopub_channel_class": cls}


def install() -> None:
    """Make every async kernel client of this process poll in slices (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    if "get_msg" not in _ORIGINAL:
        _ORIGINAL["get_msg"] = AsyncZMQSocketChannel.get_msg
        AsyncZMQSocketChannel.get_msg = _sliced_get_msg  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore jupyter_client's own ``get_msg`` (for the probe's unguarded runs and tests)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    if "get_msg" in _ORIGINAL:
        AsyncZMQSocketChannel.get_msg = _ORIGINAL.pop("get_msg")  # type: ignore[method-assign]


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return "get_msg" in _ORIGINAL


def setup(app: t.Any) -> dict[str, t.Any]:
    """Sphinx extension entry point: ``extra_extensions: [course_tools.kernel_guard]`` in
    ``_config.yml`` guards myst-nb's execution in every build of the book (``make book`` already
    runs Jupyter Book through :mod:`course_tools.book`, which installs the guard)."""
    install()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
