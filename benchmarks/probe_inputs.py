"""Bad-input probe of collapse_lib's public functions (issue 16).

Calls the public functions of ``distributions``, ``decoding``, ``metrics``, ``theory`` and
``simulate`` (every scenario) with several hundred bad or edge-case inputs, each in a
worker process (address space limited to ``--mem-gb``, default 3 GB; a case that runs
longer than ``--timeout`` seconds is killed and counted as a hang), and sorts the
outcomes into categories:

refused inputs (the call should raise)
  clear        ValueError/TypeError raised in collapse_lib whose message names the argument
  unnamed      ValueError/TypeError raised in collapse_lib, message does not name the argument
  obscure      any other exception, or one raised inside numpy/scipy/numba/Python
  silent       no exception, finite output (silently accepted or answered wrongly)
  nan_inf      no exception, output contains NaN or inf
accepted inputs (valid edge cases, the call should answer)
  ok           answered, output passes its check
  wrong        answered, output fails its check (NaN, inf, wrong value)
  false_refusal raised on a valid input
both
  hang         killed after the timeout

Usage: python benchmarks/probe_inputs.py [--timeout S] [--mem-gb G] [--verbose] [--only SUBSTR]
Prints one line per case that is not clear/ok with ``--verbose``, then the counts.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import sys
import time
import traceback
from collections import Counter

import numpy as np

NAN, INF = float("nan"), float("inf")


class Case:
    __slots__ = ("label", "expect", "arg", "call", "check")

    def __init__(self, label, expect, arg, call, check=None):
        self.label, self.expect, self.arg, self.call, self.check = label, expect, arg, call, check


def _finite(x) -> bool:
    """True if every number in x (nested tuples, arrays, result objects) is finite."""
    if x is None or isinstance(x, (str, bool)):
        return True
    if isinstance(x, tuple):
        return all(_finite(v) for v in x)
    if hasattr(x, "sigma") and hasattr(x, "final"):  # SimulationResult
        return all(_finite(getattr(x, k)) for k in ("sigma", "max_prob", "drift_first", "drift_true", "final"))
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return True
    return bool(np.all(np.isfinite(a)))


def build_cases() -> list[Case]:
    from collapse_lib import distributions as D
    from collapse_lib import metrics as M
    from collapse_lib import simulate as S
    from collapse_lib import theory as T
    from collapse_lib.decoding import Decoding, apply_decoding

    C: list[Case] = []

    def bad(label, arg, call):
        C.append(Case(label, "refuse", arg, call))

    def good(label, call, check=None):
        C.append(Case(label, "accept", None, call, check))

    # values that are not acceptable where a positive integer is required
    bad_pos_int = [0, -1, 2.5, "3", None, True, NAN, INF, -INF, [3], np.float64(2.5), 3 + 0j, 1e300]
    # values that are not acceptable where a probability vector is required
    bad_p = [
        [], [0.5, 0.6], [1.5, -0.5], [NAN, 1.0], [INF, 0.0], "abc", None, [[[0.5, 0.5]]], [0.5, "a"],
        [0.5 + 0j, 0.5], np.array([0.5, 0.5], dtype=object), [0.2, 0.2], [-0.0, -1.0],
    ]
    bad_unit = [NAN, INF, -INF, -0.1, 1.5, "0.5", None, [0.5, 0.2]]

    # ---------------------------------------------------------------- distributions
    for v in bad_p:
        bad(f"validate(p={v!r})", "p", lambda v=v: D.validate(v))
    bad("validate(ndim=3)", "ndim", lambda: D.validate([0.5, 0.5], ndim=3))
    bad("validate(ndim='1')", "ndim", lambda: D.validate([0.5, 0.5], ndim="1"))
    bad("validate 2-D empty batch", "p", lambda: D.validate(np.zeros((0, 3)), ndim=2))
    good("validate sum off by 5e-10", lambda: D.validate([0.5, 0.5 + 5e-10]))
    good("validate 2-D", lambda: D.validate([[0.5, 0.5], [1.0, 0.0]], ndim=2))
    for v in bad_pos_int:
        bad(f"uniform(s={v!r})", "s", lambda v=v: D.uniform(v))
        bad(f"zipf(s={v!r})", "s", lambda v=v: D.zipf(v, 1, 0.5))
        bad(f"zipf(support={v!r})", "support", lambda v=v: D.zipf(600, v, 0.1))
        bad(f"zipf_exponent(support={v!r})", "support", lambda v=v: D.zipf_exponent(v, 0.1))
        bad(f"dirichlet(s={v!r})", "s", lambda v=v: D.dirichlet(v))
    good("uniform(np.int64(3))", lambda: D.uniform(np.int64(3)), lambda r: r.shape == (3,))
    good("uniform(3.0)", lambda: D.uniform(3.0), lambda r: r.shape == (3,))
    good("uniform(1)", lambda: D.uniform(1), lambda r: r[0] == 1.0)
    bad("uniform(10**12) memory", "s", lambda: D.uniform(10**12))
    bad("zipf(10**12, 10, .2) memory", "s", lambda: D.zipf(10**12, 10, 0.2))
    for v in bad_unit + [0.0, 1.0, 0.001]:
        bad(f"zipf(S0={v!r})", "S0", lambda v=v: D.zipf(600, 52, v))
    bad("zipf(S0=1/600 - 1e-9)", "S0", lambda: D.zipf(600, 600, 1 / 600 - 1e-9))
    good("zipf(S0=1/support)", lambda: D.zipf(50, 10, 0.1), lambda r: abs(r.sum() - 1) < 1e-12)
    good("zipf(S0=0.999999)", lambda: D.zipf(50, 10, 0.999999), lambda r: abs((r**2).sum() - 0.999999) < 1e-9)
    for v in [0, -1, NAN, INF, "1", None, [1.0, -1.0, 1.0], [1.0, 1.0], np.ones((2, 3))]:
        bad(f"dirichlet(alpha={v!r})", "alpha", lambda v=v: D.dirichlet(3, v))
    for v in [-1, 2.5, "x", [1, 2], 0, True]:
        bad(f"dirichlet(size={v!r})", "size", lambda v=v: D.dirichlet(3, 1.0, size=v))
    for v in [-1, "abc", 1.5, [1, -2]]:
        bad(f"dirichlet(seed={v!r})", "seed", lambda v=v: D.dirichlet(3, 1.0, seed=v))
    bad("dirichlet(size=10**9) memory", "size", lambda: D.dirichlet(600, 1.0, size=10**9))
    good("dirichlet(alpha=1e-3) sums to 1", lambda: D.dirichlet(20, 1e-3, seed=1),
         lambda r: abs(r.sum() - 1) < 1e-9 and np.all(np.isfinite(r)))

    # ---------------------------------------------------------------- decoding
    for v in bad_p:
        bad(f"apply_decoding(p={v!r})", "p", lambda v=v: apply_decoding(v))
    bad("apply_decoding 3-D", "p", lambda: apply_decoding(np.full((2, 2, 2), 0.5)))
    for v in [0, -1.0, NAN, INF, "1", None, True, [1.0], 1 + 1j]:
        bad(f"apply_decoding(temperature={v!r})", "temperature", lambda v=v: apply_decoding([0.6, 0.4], temperature=v))
        bad(f"Decoding(temperature={v!r})", "temperature", lambda v=v: Decoding(temperature=v))
    for v in [0, -1, 1.5, "2", NAN, INF, True, [2]]:
        bad(f"apply_decoding(top_k={v!r})", "top_k", lambda v=v: apply_decoding([0.6, 0.4], top_k=v))
        bad(f"Decoding(top_k={v!r})", "top_k", lambda v=v: Decoding(top_k=v))
    for v in [0, -0.5, 1.5, NAN, INF, "0.9", True, [0.5]]:
        bad(f"apply_decoding(top_p={v!r})", "top_p", lambda v=v: apply_decoding([0.6, 0.4], top_p=v))
        bad(f"Decoding(top_p={v!r})", "top_p", lambda v=v: Decoding(top_p=v))
    for t in [1e-309, 1e-300, 1e-30, 1e300, 1e308]:
        good(f"apply_decoding(temperature={t})", lambda t=t: apply_decoding([0.6, 0.4, 0.0], temperature=t),
             lambda r: np.all(np.isfinite(r)) and abs(r.sum() - 1) < 1e-12 and r[2] == 0)
    good("apply_decoding tie at T->0", lambda: apply_decoding([0.4, 0.4, 0.2], temperature=1e-300),
         lambda r: np.allclose(r, [0.5, 0.5, 0.0]))
    good("apply_decoding top_k=10 > s", lambda: apply_decoding([0.6, 0.4], top_k=10), lambda r: np.allclose(r, [0.6, 0.4]))
    good("apply_decoding top_k=2.0", lambda: apply_decoding([0.6, 0.3, 0.1], top_k=2.0), lambda r: r[2] == 0)
    good("apply_decoding tiny p", lambda: apply_decoding([1 - 1e-300, 1e-300], temperature=0.5),
         lambda r: np.all(np.isfinite(r)) and abs(r.sum() - 1) < 1e-12)

    # ---------------------------------------------------------------- metrics
    for name, f in [("sigma", M.sigma), ("max_prob", M.max_prob), ("entropy", M.entropy), ("is_dirac", M.is_dirac),
                    ("winner", M.winner), ("support_size", M.support_size)]:
        for v in [v for v in bad_p if not (isinstance(v, list) and v and isinstance(v[0], list))]:  # any ndim is valid
            bad(f"metrics.{name}(p={v!r})", "p", lambda v=v, f=f: f(v))
    bad("metrics.l1 length mismatch", "q", lambda: M.l1([0.5, 0.5], [1.0]))
    bad("metrics.l1 bad p", "p", lambda: M.l1([0.5, 0.6], [0.5, 0.5]))
    bad("metrics.l1 bad q", "q", lambda: M.l1([0.5, 0.5], [NAN, 1.0]))
    bad("metrics.l1 q='a'", "q", lambda: M.l1([0.5, 0.5], "a"))
    bad("metrics.l1 empty", "p", lambda: M.l1([], []))
    good("metrics.l1 broadcast leading axes", lambda: M.l1(np.eye(3)[None], np.eye(3)[:1]), lambda r: r.shape == (1, 3))
    for v in [[5], [-1], [0, 0], [1.5], "a", None, [[0, 1]], np.array([True]), [True, False, True]]:
        bad(f"tail_mass(tokens={v!r})", "tokens", lambda v=v: M.tail_mass([0.5, 0.3, 0.2, 0.0], v))
    good("tail_mass empty set", lambda: M.tail_mass([0.5, 0.5], []), lambda r: r == 0.0)
    good("tail_mass mask", lambda: M.tail_mass([0.5, 0.3, 0.2], [False, True, True]), lambda r: abs(r - 0.5) < 1e-15)
    for v in [-1e-3, 1.0, NAN, INF, "0", None]:
        bad(f"is_dirac(atol={v!r})", "atol", lambda v=v: M.is_dirac([1.0, 0.0], atol=v))
        bad(f"winner(atol={v!r})", "atol", lambda v=v: M.winner([1.0, 0.0], atol=v))
        bad(f"collapse_time(atol={v!r})", "atol", lambda v=v: M.collapse_time(np.eye(2), atol=v))
    for v in [-0.5, 1.0, NAN, "0"]:
        bad(f"support_size(tol={v!r})", "tol", lambda v=v: M.support_size([0.5, 0.5], tol=v))
    bad("collapse_time one generation", "history", lambda: M.collapse_time(np.array([[1.0, 0.0]])))
    bad("collapse_time 1-D", "history", lambda: M.collapse_time([1.0, 0.0]))
    bad("collapse_time bad rows", "history", lambda: M.collapse_time([[0.5, 0.5], [0.7, 0.7]]))
    bad("collapse_time NaN", "history", lambda: M.collapse_time([[0.5, 0.5], [NAN, 1.0]]))
    bad("collapse_time empty", "history", lambda: M.collapse_time(np.zeros((0, 3))))
    bad("collapse_time empty runs", "history", lambda: M.collapse_time(np.zeros((0, 3, 2))))
    good("collapse_time two generations", lambda: M.collapse_time(np.array([[0.5, 0.5], [1.0, 0.0]])), lambda r: r == 1)

    # ---------------------------------------------------------------- theory
    for v in bad_pos_int:
        bad(f"fully_synthetic_S(n={v!r})", "n", lambda v=v: T.fully_synthetic_S(1, v, 0.5))
        bad(f"collapse_time_bounds(n={v!r})", "n", lambda v=v: T.collapse_time_bounds(v, 0.5, 4))
        bad(f"partially_synthetic_S(N={v!r})", "N", lambda v=v: T.partially_synthetic_S(2, v, 5, 0.5))
        bad(f"lemma1_G(s={v!r})", "s", lambda v=v: T.lemma1_G(10, v))
    for v in bad_unit + [0.0]:
        bad(f"fully_synthetic_S(S0={v!r})", "S0", lambda v=v: T.fully_synthetic_S(1, 5, v))
        bad(f"accumulate_S(S0={v!r})", "S0", lambda v=v: T.accumulate_S(1, 5, v))
        bad(f"partially_synthetic_S_recursion(S0={v!r})", "S0", lambda v=v: T.partially_synthetic_S_recursion(2, 5, 5, v))
    for v in [-1, 2.5, NAN, INF, "3", None, [1, -1], [0.5], np.array([1.5]), True]:
        bad(f"fully_synthetic_S(m={v!r})", "m", lambda v=v: T.fully_synthetic_S(v, 5, 0.5))
        bad(f"partially_synthetic_S(m={v!r})", "m", lambda v=v: T.partially_synthetic_S(v, 5, 5, 0.5))
        bad(f"exact_collapse_probability(m={v!r})", "m", lambda v=v: T.exact_collapse_probability([0.5, 0.5], 4, v))
    for v in [NAN, -1, 2.5, "x", None, -INF]:
        bad(f"accumulate_S(m={v!r})", "m", lambda v=v: T.accumulate_S(v, 5, 0.5))
    good("accumulate_S(m=inf)", lambda: T.accumulate_S(INF, 5, 0.5), lambda r: 0.5 < r < 1)
    good("fully_synthetic_S(m=array)", lambda: T.fully_synthetic_S(np.arange(4), 5, 0.5), lambda r: r.shape == (4,))
    good("fully_synthetic_S(m=2.0)", lambda: T.fully_synthetic_S(2.0, 5, 0.5), lambda r: abs(r - (1 - 0.64 * 0.5)) < 1e-12)
    bad("fully_synthetic_S(m=empty list)", "m", lambda: T.fully_synthetic_S([], 5, 0.5))
    bad("partially_synthetic_S_recursion(m=10**10) memory", "m", lambda: T.partially_synthetic_S_recursion(10**10, 5, 5, 0.5))
    bad("accumulate_S(m=10**10) memory", "m", lambda: T.accumulate_S(10**10, 5, 0.5))
    bad("exact_collapse_probability(m=10**9)", "m", lambda: T.exact_collapse_probability([0.5, 0.5], 4, 10**9))
    bad("collapse_probability_bounds(support=1)", "support", lambda: T.collapse_probability_bounds(1, 5, 0.5, 1))
    bad("collapse_probability_bounds(S0 < 1/support)", "S0", lambda: T.collapse_probability_bounds(1, 5, 0.1, 3))
    bad("collapse_time_bounds(support=2.5)", "support", lambda: T.collapse_time_bounds(5, 0.5, 2.5))
    bad("collapse_time_bounds(S0=1)", "S0", lambda: T.collapse_time_bounds(5, 1.0, 4))
    for v in bad_p:
        bad(f"fixation_probabilities(p={v!r})", "p", lambda v=v: T.fixation_probabilities(v))
        bad(f"pi_p(p={v!r})", "p", lambda v=v: T.pi_p(v))
        bad(f"diffusion_collapse_time(p={v!r})", "p", lambda v=v: T.diffusion_collapse_time(v, 10))
        bad(f"exact_collapse_time(p={v!r})", "p", lambda v=v: T.exact_collapse_time(v, 4))
    for v in bad_pos_int:
        if v is not None:  # None is the default (no denominator)
            bad(f"pi_p(denominator={v!r})", "denominator", lambda v=v: T.pi_p([0.5, 0.5], denominator=v))
        bad(f"exact_collapse_time(n={v!r})", "n", lambda v=v: T.exact_collapse_time([0.5, 0.5], v))
        bad(f"diffusion_collapse_time(n={v!r})", "n", lambda v=v: T.diffusion_collapse_time([0.5, 0.5], v))
    bad("pi_p(denominator=10**12) memory", "denominator", lambda: T.pi_p([0.5, 0.5], denominator=10**12))
    bad("pi_p(max_support=-1)", "max_support", lambda: T.pi_p([0.5, 0.5], max_support=-1))
    bad("pi_p(max_support=200) with support 100", "max_support", lambda: T.pi_p(D.uniform(100), max_support=200))
    bad("exact_collapse_time(max_states=1e18) memory", "max_states",
        lambda: T.exact_collapse_time(D.uniform(12), 60, max_states=10**18))
    bad("exact_collapse_time(max_states=0)", "max_states", lambda: T.exact_collapse_time([0.5, 0.5], 4, max_states=0))
    bad("diffusion_collapse_time average n=10**9", "n", lambda: T.diffusion_collapse_time(D.uniform(600), 10**9, first_draw="average"))
    bad("diffusion_collapse_time 3-D", "p", lambda: T.diffusion_collapse_time(np.full((2, 2, 2), 0.5), 10))
    for v in [-0.1, 0.6, NAN, INF, "0.3", None]:
        bad(f"phi({v!r})", "x", lambda v=v: T.phi(v))
    good("phi(0) = inf", lambda: T.phi(0.0), lambda r: r == INF)
    good("phi(0.5) = 2", lambda: T.phi(0.5), lambda r: abs(r - 2) < 1e-12)
    for v in [0.0, -1.0, NAN, INF, "1", None]:
        bad(f"lemma1_bound(eps={v!r})", "eps", lambda v=v: T.lemma1_bound(10, 3, v, 0.4))
    for v in [-0.1, 0.6, NAN, "0.3", None]:
        bad(f"lemma1_bound(pi={v!r})", "pi", lambda v=v: T.lemma1_bound(10, 3, 0.5, v))
    good("lemma1_bound(1e6, 2e6, 1, .5)", lambda: T.lemma1_bound(10**6, 2 * 10**6, 1.0, 0.5), lambda r: not math.isnan(r))
    good("lemma1_bound(n=10, s=3, pi=0)", lambda: T.lemma1_bound(10, 3, 0.5, 0.0), lambda r: r == 0.0)
    for v in bad_pos_int:
        bad(f"lemma1_bound(n={v!r})", "n", lambda v=v: T.lemma1_bound(v, 3, 0.5, 0.4))
        bad(f"deviation_bound(n={v!r})", "n", lambda v=v: T.deviation_bound(10, v, 600))
        bad(f"zeta_thm4(N={v!r})", "N", lambda v=v: T.zeta_thm4(v, 5, 0.1))
        bad(f"max_synthetic_samples(N={v!r})", "N", lambda v=v: T.max_synthetic_samples(v, 600, 0.1))
    for v in [0.0, -0.1, 0.6, NAN, INF, "0.3", None]:
        bad(f"deviation_bound_thm4(zeta={v!r})", "zeta", lambda v=v: T.deviation_bound_thm4(10, 5, 600, v))
    for v in [-0.1, 0.3, NAN, "0.1", None]:
        bad(f"zeta_thm4(lambda1_mean={v!r})", "lambda1_mean", lambda v=v: T.zeta_thm4(10, 5, v))
    for v in [0.0, -1.0, NAN, INF, "1", None]:
        bad(f"max_synthetic_samples(eps={v!r})", "eps", lambda v=v: T.max_synthetic_samples(10, 600, v))
    good("max_synthetic_samples(s=10**15, exact) = 0", lambda: T.max_synthetic_samples(10**6, 10**15, 1e9, form="exact"),
         lambda r: r == 0)
    good("max_synthetic_samples(s=10**15, huge eps, exact)", lambda: T.max_synthetic_samples(10**6, 10**15, 1e300, form="exact"),
         lambda r: r > 0 and T.deviation_bound(10**6, r, 10**15) < 1e300 <= T.deviation_bound(10**6, r + 1, 10**15))
    bad("lemma1_G(form=10)", "form", lambda: T.lemma1_G(10, 10, form=10))
    bad("partially_synthetic_alpha_beta(N=0)", "N", lambda: T.partially_synthetic_alpha_beta(0, 5))
    bad("partially_synthetic_alpha_beta(n=2.5)", "n", lambda: T.partially_synthetic_alpha_beta(5, 2.5))
    bad("partially_synthetic_S_printed(m=1)", "m", lambda: T.partially_synthetic_S_printed(0, 5, 5, 0.5))
    good("lemma1_G huge s", lambda: T.lemma1_G(10, 10**6), lambda r: r > 0)

    # ---------------------------------------------------------------- scenarios
    for v in bad_pos_int:
        if not isinstance(v, list):  # a list is one sample size per run
            bad(f"FullySynthetic(n={v!r})", "n", lambda v=v: S.FullySynthetic(v))
        bad(f"PartiallySynthetic(N={v!r})", "N", lambda v=v: S.PartiallySynthetic(v, 3))
        bad(f"RecentModels(K={v!r})", "K", lambda v=v: S.RecentModels(6, v))
        bad(f"Accumulate(n={v!r})", "n", lambda v=v: S.Accumulate(v))
        bad(f"RandomPool(n={v!r})", "n", lambda v=v: S.RandomPool(v))
        bad(f"AccumulateSubsample(n={v!r})", "n", lambda v=v: S.AccumulateSubsample(v))
    for v in [[3, 0], [3, 2.5], (), "ab", [[3]], np.array([[3, 4]]), [3, None]]:
        bad(f"FullySynthetic(n={v!r}) sequence", "n", lambda v=v: S.FullySynthetic(v))
    bad("RecentModels(K > n)", "K", lambda: S.RecentModels(3, 5))
    bad("RecentModels(early='x')", "early", lambda: S.RecentModels(6, 2, early="x"))
    bad("RecentModels(early=None)", "early", lambda: S.RecentModels(6, 2, early=None))
    for v in [0.5, "top_k", Decoding, 1]:
        bad(f"FullySynthetic(decoding={v!r})", "decoding", lambda v=v: S.FullySynthetic(3, decoding=v))
    for v in [[1, 2, 3], "abc", 5, None, np.zeros((0, 0)), [[1.5]], [[-1]], [[NAN]], [["a"]]]:
        bad(f"Schedule(counts={v!r})", "counts", lambda v=v: S.simulate([0.5, 0.5], S.Schedule(v), 1, runs=2, seed=0))
    bad("Schedule(counts=lambda -> None)", "counts", lambda: S.simulate([0.5, 0.5], S.Schedule(lambda m: None), 2, runs=2))
    bad("Schedule(counts=lambda -> str)", "counts", lambda: S.simulate([0.5, 0.5], S.Schedule(lambda m: "a" * m), 2, runs=2))
    bad("Schedule(counts=lambda -> float)", "counts",
        lambda: S.simulate([0.5, 0.5], S.Schedule(lambda m: [2.5] * m), 2, runs=2))
    bad("Schedule huge counts", "counts", lambda: S.simulate([0.5, 0.5], S.Schedule(lambda m: [10**15] * m), 2, runs=2))
    good("FullySynthetic(np.int64(3))", lambda: S.FullySynthetic(np.int64(3)), lambda r: True)

    # ---------------------------------------------------------------- simulate
    scen = {
        "full": S.FullySynthetic(3), "partial": S.PartiallySynthetic(3, 3), "recent": S.RecentModels(4, 2),
        "pool": S.RandomPool(3), "acc": S.Accumulate(3), "accsub": S.AccumulateSubsample(3),
        "sched": S.Schedule(lambda m: [2] + [0] * (m - 2) + ([2] if m > 1 else [])),
        "fulldec": S.FullySynthetic(3, decoding=Decoding(temperature=0.5)),
    }
    for key, sc in scen.items():
        for v in [[0.5, 0.6], [], [NAN, 1.0], np.zeros((0, 3)), np.full((2, 2, 2), 0.5), "p", None]:
            bad(f"simulate[{key}](p0={v!r})", "p0", lambda v=v, sc=sc: S.simulate(v, sc, 2, runs=2, seed=0))
        for v in [-1, 2.5, "3", None, NAN, True, 0]:
            bad(f"simulate[{key}](generations={v!r})", "generations", lambda v=v, sc=sc: S.simulate([0.5, 0.5], sc, v, runs=2))
        for v in [0, -2, 2.5, "2", True, NAN]:
            bad(f"simulate[{key}](runs={v!r})", "runs", lambda v=v, sc=sc: S.simulate([0.5, 0.5], sc, 2, runs=v))
        for v in [-1, "abc", 1.5, [1, -2]]:
            bad(f"simulate[{key}](seed={v!r})", "seed", lambda v=v, sc=sc: S.simulate([0.5, 0.5], sc, 2, runs=2, seed=v))
        good(f"simulate[{key}] 1+5e-10", lambda sc=sc: S.simulate([1 + 5e-10], sc, 3, runs=2, seed=0),
             lambda r: np.all(r.final == 1.0))
        good(f"simulate[{key}] p0 sum 1-9e-10", lambda sc=sc: S.simulate([0.5, 0.5 - 9e-10], sc, 3, runs=3, seed=0),
             lambda r: np.allclose(r.final.sum(1), 1.0))
        good(f"simulate[{key}] int64 sizes", lambda sc=sc: S.simulate(np.array([0.25] * 4), sc, np.int64(3), runs=np.int64(2), seed=0),
             lambda r: r.sigma.shape == (2, 4))
        bad(f"simulate[{key}] runs=10**6, s=600 memory", "runs", lambda sc=sc: S.simulate(D.uniform(600), sc, 5, runs=10**6, seed=0))
        bad(f"simulate[{key}] keep_history huge", "keep_history",
            lambda sc=sc: S.simulate(D.uniform(600), sc, 1000, runs=1000, seed=0, keep_history=True))
        bad(f"simulate[{key}] keep_history='yes'", "keep_history",
            lambda sc=sc: S.simulate([0.5, 0.5], sc, 2, runs=2, keep_history="yes"))
        bad(f"simulate[{key}] until_collapse='yes'", "until_collapse",
            lambda sc=sc: S.simulate([0.5, 0.5], sc, 2, runs=2, until_collapse="yes"))
        bad(f"simulate[{key}] generations=10**9 records", "generations",
            lambda sc=sc: S.simulate([0.5, 0.5], sc, 10**9, runs=10, seed=0))
    bad("simulate runs mismatch 2-D p0", "runs", lambda: S.simulate(np.full((3, 2), 0.5), S.FullySynthetic(3), 2, runs=4))
    bad("simulate per-run n mismatch", "n", lambda: S.simulate(np.full((3, 2), 0.5), S.FullySynthetic((3, 4)), 2))
    bad("simulate scenario='full'", "scenario", lambda: S.simulate([0.5, 0.5], "full", 2))
    bad("simulate scenario=None", "scenario", lambda: S.simulate([0.5, 0.5], None, 2))
    for v in ["gpu", None, 1]:
        bad(f"simulate(backend={v!r})", "backend", lambda v=v: S.simulate([0.5, 0.5], S.FullySynthetic(3), 2, backend=v))
    good("simulate backend='numpy' until_collapse", lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 0, runs=4, seed=1,
         until_collapse=True, backend="numpy"), lambda r: r.backend == "numpy" and np.all(r.collapse_time >= 1))
    bad("simulate until_collapse partial", "until_collapse",
        lambda: S.simulate([0.5, 0.5], S.PartiallySynthetic(3, 3), 2, until_collapse=True))
    for v in [0, -5, 2.5, "100", None, NAN]:
        bad(f"simulate(max_generations={v!r})", "max_generations",
            lambda v=v: S.simulate([0.5, 0.5], S.FullySynthetic(3), 0, runs=2, until_collapse=True, max_generations=v))
    bad("simulate generations > max_generations", "max_generations",
        lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 50, runs=2, until_collapse=True, max_generations=10))
    bad("simulate until_collapse generations as cap (trap)", "generations",
        lambda: S.simulate(D.uniform(50), S.FullySynthetic(10), 100_000, runs=200, seed=0, until_collapse=True))
    good("simulate FullySynthetic(10**12) until_collapse (bounded by the cap)",
         lambda: S.simulate(D.uniform(5), S.FullySynthetic(10**12), 0, runs=2, seed=0, until_collapse=True),
         lambda r: r.generations_run == 100_000 and np.all(r.collapse_time == -1) and np.allclose(r.final.sum(1), 1))
    bad("simulate FullySynthetic(2**63) ", "n", lambda: S.simulate(D.uniform(5), S.FullySynthetic(2**63), 1, runs=2, seed=0))
    bad("simulate RecentModels huge K memory", "K",
        lambda: S.simulate(D.uniform(600), S.RecentModels(10**6, 10**6), 2, runs=100, seed=0))
    bad("simulate AccumulateSubsample pool", "n",
        lambda: S.simulate(D.uniform(5), S.AccumulateSubsample(10**9), 3, runs=2, seed=0))
    good("simulate until_collapse generations=0", lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 0, runs=5, seed=0, until_collapse=True),
         lambda r: np.all(r.collapse_time >= 1))
    good("simulate 2-D p0 with Dirac rows", lambda: S.simulate(np.eye(3), S.FullySynthetic(3), 2, seed=0),
         lambda r: np.all(r.collapse_time == 1))
    good("simulate FullySynthetic(10**9) one generation", lambda: S.simulate(D.uniform(5), S.FullySynthetic(10**9), 1, runs=2, seed=0),
         lambda r: np.allclose(r.final, 0.2, atol=1e-3))
    good("mean_se('sigma')", lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 2, runs=3, seed=0).mean_se("sigma"),
         lambda r: r[0].shape == (3,))
    bad("mean_se('nope')", "name", lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 2, runs=3, seed=0).mean_se("nope"))
    bad("mean_se one run", "runs", lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 2, runs=1, seed=0).mean_se("sigma"))
    return C


# ----------------------------------------------------------------------------- running
def _classify(case: Case, exc: BaseException | None, tb, out) -> tuple[str, str]:
    if case.expect == "refuse":
        if exc is None:
            return ("nan_inf" if not _finite(out) else "silent"), f"returned {_short(out)}"
        frames = traceback.extract_tb(tb)
        where = frames[-1].filename if frames else "?"
        inside = f"{os.sep}collapse_lib{os.sep}" in where
        msg = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (ValueError, TypeError)) or not inside:
            return "obscure", f"{msg[:160]} [at {os.path.basename(where)}]"
        if case.arg.lower() not in str(exc).lower():
            return "unnamed", msg[:160]
        return "clear", msg[:160]
    if exc is not None:
        return "false_refusal", f"{type(exc).__name__}: {str(exc)[:160]}"
    if not (_finite(out) or case.check is not None):
        return "wrong", f"returned {_short(out)}"
    try:
        good = case.check(out) if case.check is not None else True
    except Exception as e:  # noqa: BLE001
        return "wrong", f"check failed: {e!r}"
    return ("ok" if good else "wrong"), f"returned {_short(out)}"


def _short(x) -> str:
    if hasattr(x, "sigma") and hasattr(x, "final"):
        return f"SimulationResult(final={np.array2string(np.asarray(x.final)[:2], precision=3)})"
    s = repr(x)
    return s if len(s) < 120 else s[:117] + "..."


def _worker(conn, mem_gb: float) -> None:
    if mem_gb > 0:
        lim = int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    import warnings

    warnings.simplefilter("ignore")
    cases = build_cases()
    conn.send(len(cases))
    while True:
        i = conn.recv()
        if i is None:
            return
        case = cases[i]
        try:
            out = case.call()
            exc, tb = None, None
        except BaseException as e:  # noqa: BLE001
            out, exc, tb = None, e, e.__traceback__
        conn.send(_classify(case, exc, tb, out))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="address-space limit of the worker (0: none)")
    ap.add_argument("--verbose", action="store_true", help="print every case that is not clear/ok")
    ap.add_argument("--only", default=None, help="run only cases whose label contains this string")
    args = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    labels = [(c.label, c.expect) for c in build_cases()]
    todo = [i for i, (lab, _) in enumerate(labels) if args.only is None or args.only in lab]
    counts: Counter = Counter()
    per_expect: Counter = Counter()
    proc = conn = None
    t0 = time.perf_counter()

    def start():
        a, b = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(b, args.mem_gb), daemon=True)
        p.start()
        a.recv()
        return p, a

    for i in todo:
        if proc is None:
            proc, conn = start()
        conn.send(i)
        if conn.poll(args.timeout):
            try:
                cat, detail = conn.recv()
            except EOFError:
                cat, detail = "obscure", "worker died (crash)"
                proc.join()
                proc = None
        else:
            cat, detail = "hang", f"no answer after {args.timeout:.0f} s"
            proc.kill()
            proc.join()
            proc = None
        if proc is not None and not proc.is_alive():
            proc = None
        counts[cat] += 1
        per_expect[labels[i][1]] += 1
        if args.verbose and cat not in ("clear", "ok"):
            print(f"[{cat:>13}] {labels[i][0]}: {detail}", flush=True)
    if proc is not None:
        conn.send(None)
        proc.join(5)
    total = sum(counts.values())
    print(f"\n{total} cases ({per_expect['refuse']} should be refused, {per_expect['accept']} valid edge cases) "
          f"in {time.perf_counter() - t0:.0f} s")
    order = ["clear", "unnamed", "obscure", "silent", "nan_inf", "hang", "ok", "wrong", "false_refusal"]
    for k in order:
        print(f"  {k:>13}: {counts.get(k, 0)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
