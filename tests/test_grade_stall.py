"""A stall never costs a submission points (issue 26).

Two faults are simulated inside the grader's process (the kernel is untouched):

* a missed wake-up: the client's asyncio socket is not told that the reply has arrived, so a
  plain ``await socket.poll(timeout)`` only returns when its timer runs out (the stall seen in
  the course's builds: a cell that takes milliseconds waits its whole timeout). The grader's
  guard (course_tools/kernel_guard.py) polls in slices, so each such wait costs at most one
  slice; without the guard the same submission runs out of its deadline and loses points,
  which shows that the test can fail;
* a lost status message: the "idle" that ends a cell on IOPub never reaches the client; nbclient
  then stops waiting for outputs after ``iopub_timeout`` and the score is unchanged.
"""

from __future__ import annotations

import pytest

from course_tools import kernel_guard
from test_grade import course, grade, scores, solved  # noqa: F401 - course is a fixture
from test_kernel_stall import deaf_sockets  # noqa: F401 - a fixture

FULL = {"ex-syn-square-tests": 2, "ex-syn-cube-tests": 3}


def test_missed_wakeups_cost_a_slice_not_the_timeout(course, deaf_sockets):  # noqa: F811
    before = kernel_guard.STATS["recovered"]
    report = grade(course["source"], course, timeout=20, deadline=90)
    assert scores(report) == FULL, report.notes
    assert not any("stopped" in n for n in report.notes)
    assert kernel_guard.STATS["recovered"] - before >= 7     # one per cell at least: the fault was there
    assert report.seconds < 60


def test_without_the_guard_missed_wakeups_cost_points(course, deaf_sockets, monkeypatch):  # noqa: F811
    monkeypatch.setattr(kernel_guard, "guarded_client_kwargs", lambda: {})
    report = grade(course["source"], course, timeout=10, deadline=15)
    assert report.points < 5, report.notes
    assert any(n.startswith("execution stopped") for n in report.notes), report.notes


def test_lost_idle_status_keeps_the_honest_score(course, monkeypatch):  # noqa: F811
    cls = kernel_guard.guarded_channel_class()
    original = cls.get_msg
    dropped: list[str] = []

    async def lossy(self, timeout=None):
        while True:
            msg = await original(self, timeout)
            if (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"
                    and msg["parent_header"].get("msg_type") == "execute_request" and len(dropped) < 2):
                dropped.append(msg["parent_header"]["msg_id"])
                continue
            return msg

    monkeypatch.setattr(cls, "get_msg", lossy)
    report = grade(solved(course, "ex-syn-square-solution"), course, timeout=20, deadline=120)
    assert len(dropped) == 2
    assert scores(report) == {"ex-syn-square-tests": 2, "ex-syn-cube-tests": 0}, report.notes
    assert not any("stopped" in n for n in report.notes)
