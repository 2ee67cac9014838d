"""Benchmark: batched Newton fit of `collapse_lib.functional` vs a per-run scipy L-BFGS loop.

Workload (chapter 8): `runs` frequency tables of n = 20 samples per context from the chapter's
initial table (c = 8 contexts, s = 4 tokens), Gaussian embeddings of dimension d, L2 penalty
lam = 0.01 (the penalised loss (F1) has a unique minimiser, so both sides must find the same
model). One generation of a simulation is exactly this: one fit per run.

* batched: one ``functional.fit(F, X, lam)`` call for all runs (Newton, line search);
* plain loop: for each run, ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on the same
  loss and gradient (F1)-(F2), started at W = 0, with gtol 1e-9.

Both sides run in this process, interleaved, ``--repeats`` times; the median ratio is reported,
for wall-clock time (time.perf_counter) and CPU time of this process (time.process_time); on a
shared machine the CPU-time ratio is the fairer one. The largest difference between the fitted
probabilities of the two sides is printed (it must be below 1e-5). Target (issue 17): >= 10x.

Usage: python benchmarks/bench_functional.py [--runs R] [--repeats K] [--d D]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import minimize

from collapse_lib import functional as fn
from collapse_lib.distributions import dirichlet


def loss_grad(w: np.ndarray, F: np.ndarray, X: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
    """(F1) and (F2) for one table, with W flattened (d * s)."""
    d, s = X.shape[1], F.shape[1]
    W = w.reshape(d, s)
    Z = X @ W
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    L = -(F * logp).sum() + 0.5 * lam * (W**2).sum()
    G = -X.T @ (F - np.exp(logp)) + lam * W
    return float(L), G.ravel()


def plain_fit(F: np.ndarray, X: np.ndarray, lam: float) -> np.ndarray:
    """Reference: one scipy L-BFGS minimisation per run; returns the fitted tables (R, c, s)."""
    R, c, s = F.shape
    d = X.shape[1]
    out = np.empty_like(F)
    for r in range(R):
        res = minimize(loss_grad, np.zeros(d * s), args=(F[r], X, lam), jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-9, "ftol": 1e-15, "maxiter": 10_000})
        Z = X @ res.x.reshape(d, s)
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        out[r] = E / E.sum(axis=1, keepdims=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--d", type=int, default=4)
    ap.add_argument("--lam", type=float, default=0.01)
    args = ap.parse_args()
    c, s, n = 8, 4, 20
    p0 = dirichlet(s, 1.0, seed=3, size=c)
    X = np.random.default_rng(0).standard_normal((c, c))[:, : args.d] / math.sqrt(args.d)
    rng = np.random.default_rng(1)
    ratios_wall, ratios_cpu = [], []
    for rep in range(args.repeats):
        F = rng.multinomial(n, p0, size=(args.runs, c)) / n
        t, u = time.perf_counter(), time.process_time()
        P_batch = fn.fit(F, X, args.lam).P
        tb, ub = time.perf_counter() - t, time.process_time() - u
        t, u = time.perf_counter(), time.process_time()
        P_plain = plain_fit(F, X, args.lam)
        tp, up = time.perf_counter() - t, time.process_time() - u
        diff = float(np.abs(P_batch - P_plain).max())
        print(f"repeat {rep}: batched {tb:.3f} s wall / {ub:.3f} s CPU, plain loop {tp:.3f} s / {up:.3f} s; "
              f"max |P_batched - P_plain| = {diff:.1e}")
        if diff > 1e-5:
            raise SystemExit(f"the two sides disagree: max difference {diff:.3g} > 1e-5")
        ratios_wall.append(tp / tb)
        ratios_cpu.append(up / max(ub, 1e-9))
    print(f"runs = {args.runs}, c = {c}, s = {s}, d = {args.d}, lam = {args.lam}: speed-up (median over "
          f"{args.repeats}) {np.median(ratios_wall):.1f}x wall, {np.median(ratios_cpu):.1f}x CPU (target >= 10x)")


if __name__ == "__main__":
    main()
