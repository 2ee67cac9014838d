"""Probe for stalled notebook executions (issue 26).

Runs a small notebook (prints, a plot, a slider, a sum; 20 cells) many times under nbclient, each
in a fresh kernel, and counts the executions with a stall: a cell whose execute_reply the client
took in more than half the per-cell timeout after the kernel had sent it (the reply's header date,
written by the kernel, against the client's clock on the same machine), i.e. the client waited for
a reply that was already there (see course_tools/kernel_guard.py). A cell that is merely slow under
load (the kernel itself late) is not a stall; executions that hit the timeout for that reason are
counted apart ("timeouts"). Adapted from the probe of the issue (shared/tools/kernel_stall_probe.py).

    .venv/bin/python benchmarks/kernel_stall_probe.py --runs 200 --timeout 10 --load 2
    .venv/bin/python benchmarks/kernel_stall_probe.py --runs 200 --timeout 10 --load 2 --no-guard

--load N   keep N busy processes running beside the probe (the stall is load-dependent)
--no-guard the plain nbclient/jupyter_client wait (the "before"); default: the course's guard
--quick    the short form that `make test` runs (8 runs, guarded, timeout 30 s, fails on any stall)
Prints one line per stall and a summary; exits 1 if a guarded run stalled.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbclient import NotebookClient  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

from course_tools import kernel_guard  # noqa: E402

CELLS = ["import numpy as np, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nimport ipywidgets as w",
         "for i in range(50): print(i)",
         "fig, ax = plt.subplots(); ax.plot(np.arange(10)); plt.show()",
         "w.interact(lambda a=1: print(a), a=w.IntSlider(1, 0, 5))",
         "x = sum(range(10**6)); x"] * 4


def run_once(timeout: int) -> tuple[str, list[tuple[int, float]], float]:
    """Execute the notebook once in a fresh kernel: verdict, (cell, lag in s) per cell, total.

    The lag of a cell: how long after the kernel sent its execute_reply the client had it.
    """
    nb = new_notebook(cells=[new_code_cell(c) for c in CELLS])
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3")
    times: list[tuple[int, float]] = []
    original = client._async_poll_for_reply

    async def timed(msg_id, cell, *args, **kwargs):
        reply = await original(msg_id, cell, *args, **kwargs)
        sent = reply["header"]["date"]
        lag = datetime.now(timezone.utc) - (sent if sent.tzinfo else sent.replace(tzinfo=timezone.utc))
        times.append((len(times), lag.total_seconds()))
        return reply

    client._async_poll_for_reply = timed
    t0 = time.perf_counter()
    try:
        client.execute()
        verdict = "ok"
    except Exception as exc:  # a timeout error is also a stall
        verdict = type(exc).__name__
    return verdict, times, time.perf_counter() - t0


def _burn() -> None:
    while True:
        sum(i * i for i in range(10_000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--timeout", type=int, default=10, help="nbclient's per-cell timeout (s)")
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the probe")
    parser.add_argument("--no-guard", action="store_true", help="plain jupyter_client wait")
    parser.add_argument("--quick", action="store_true", help="short form for make test")
    parser.add_argument("--every", type=int, default=0, help="print a progress line every N runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.timeout, args.no_guard = 8, 30, False
    if args.no_guard:
        kernel_guard.uninstall()
    else:
        kernel_guard.install()
    burners = [mp.Process(target=_burn, daemon=True) for _ in range(args.load)]
    for p in burners:
        p.start()
    stalls, timeouts, t_start, totals = 0, 0, time.perf_counter(), []
    try:
        for k in range(args.runs):
            verdict, times, total = run_once(args.timeout)
            totals.append(total)
            slow = [(i, round(d, 1)) for i, d in times if d >= 0.5 * args.timeout]
            if slow:
                stalls += 1
                print(f"run {k}: {total:.1f} s, {verdict}, stalled cells (index, lag s): {slow}", flush=True)
            elif verdict != "ok":
                timeouts += 1
                print(f"run {k}: {total:.1f} s, {verdict} (the kernel was late: load, not a stall)", flush=True)
            if args.every and (k + 1) % args.every == 0:
                print(f"  {k + 1} runs, {stalls} stalls, {timeouts} timeouts, {time.perf_counter() - t_start:.0f} s, "
                      f"recovered wake-ups {kernel_guard.STATS['recovered']}", flush=True)
    finally:
        for p in burners:
            p.terminate()
            p.join()
    import ipykernel
    import jupyter_client
    import nbclient
    import zmq
    totals.sort()
    print(f"{stalls} stalls in {args.runs} runs ({timeouts} timeouts under load; timeout {args.timeout} s, load {args.load}, "
          f"guard {'off' if args.no_guard else 'on'}; median run {totals[len(totals) // 2]:.1f} s, "
          f"all {time.perf_counter() - t_start:.0f} s; recovered wake-ups {kernel_guard.STATS['recovered']} "
          f"of {kernel_guard.STATS['polls']} polls; ipykernel {ipykernel.__version__}, jupyter_client "
          f"{jupyter_client.__version__}, nbclient {nbclient.__version__}, pyzmq {zmq.__version__}, "
          f"pid {os.getpid()})", flush=True)
    return 1 if stalls and not args.no_guard else 0


if __name__ == "__main__":
    sys.exit(main())
