"""Benchmark: vectorised `collapse_lib.simulate` vs a plain per-run Python loop.

Workload: the sweep of Figure 2 of Seddik et al. (2024): s = 600 tokens, four initial
distributions with different support and S0, n in {10, 50, 100, 150, ..., 400}, `runs`
independent runs per (distribution, n), each run simulated in the fully synthetic setting
until total collapse (p^(m) is a Dirac mass).

* engine: one ``simulate(p0, FullySynthetic(n), 0, runs, seed, until_collapse=True)`` call
  per (distribution, n), on a warm kernel: first one call that loads or compiles the numba
  kernel, then one untimed pass over the sweep that also builds the per-n binomial tables
  the kernel caches (both times are printed separately);
* plain loop: for each run, ``rng.multinomial(n, p)`` on the length-600 vector once per
  generation until the counts are a Dirac mass.

Both sides do the same work (same configurations, same number of runs). The ratio is
computed on the configurations the plain loop ran (``--plain-fraction`` < 1 runs the plain
loop on a random subset of the configurations; the engine's time is summed over the same
subset). Mean collapse times of both sides are printed and compared with the diffusion
approximation and the Theorem 1 lower bound (useful for the Fig. 2 chapter). The engine
does not draw the multinomials (it draws each run's winner and the winner's path
conditioned on winning, see ``collapse_lib._wf_kernel``), so the benchmark also checks that
both sides agree in law: for each configuration the z-score of the difference of their
mean collapse times, z = (mean_e - mean_p) / sqrt(se_e^2 + se_p^2), and the number of
|z| > 3 (about 0.3 % of configurations for two samples of the same law).

Both sides run interleaved in this process (engine then plain loop for each
configuration), the whole sweep ``--repeats`` times; each repetition gives a ratio and
the median is reported. Times are wall-clock (time.perf_counter) and CPU time of this
process (time.process_time); on a shared machine the CPU-time ratio is the fairer one,
both are printed. Both sides are single-threaded. Target (issue 16): >= 50x.

Usage: python benchmarks/bench_simulate.py [--quick] [--runs R] [--plain-fraction F] [--repeats K] [--seed S]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from collapse_lib import distributions as D
from collapse_lib import theory as T
from collapse_lib.simulate import FullySynthetic, simulate

S_VOCAB = 600
DISTRIBUTIONS = [(52, 0.1), (600, 0.005), (100, 0.05), (20, 0.3)]  # (support, S0), spanning Fig. 2
N_FULL = [10] + list(range(50, 401, 50))
N_QUICK = [10, 50, 100]


def plain_collapse_times(p: np.ndarray, n: int, runs: int, rng: np.random.Generator) -> np.ndarray:
    """Reference implementation: one multinomial draw per run per generation, no tricks."""
    out = np.empty(runs, dtype=np.int64)
    for r in range(runs):
        q = p
        m = 0
        while True:
            m += 1
            x = rng.multinomial(n, q)
            if x.max() == n:
                break
            q = x / n
        out[r] = m
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n in {10, 50, 100} and 50 runs")
    ap.add_argument("--runs", type=int, default=None, help="runs per configuration (default 100, quick 50)")
    ap.add_argument("--plain-fraction", type=float, default=1.0, help="fraction of configurations for the plain loop")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the median ratio is reported")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    runs = args.runs or (50 if args.quick else 100)
    ns = N_QUICK if args.quick else N_FULL
    if not 0 < args.plain_fraction <= 1:
        raise SystemExit("--plain-fraction must be in (0, 1]")
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    configs = [(sup, S0, n) for sup, S0 in DISTRIBUTIONS for n in ns]
    pick = np.random.default_rng(args.seed).random(len(configs)) < args.plain_fraction
    if not pick.any():
        pick[0] = True
    dists = {(sup, S0): D.zipf(S_VOCAB, sup, S0) for sup, S0 in DISTRIBUTIONS}

    t0 = time.perf_counter()
    simulate(D.uniform(3), FullySynthetic(5), 0, runs=2, seed=0, until_collapse=True)
    print(f"warm-up 1 (loading/compiling the numba kernel, once per process): {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    for i, (sup, S0, n) in enumerate(configs):  # builds and caches the binomial tables of each n
        simulate(dists[sup, S0], FullySynthetic(n), 0, runs=runs, seed=10**6 + i, until_collapse=True)
    print(f"warm-up 2 (one engine pass over the sweep, incl. the per-n binomial tables): {time.perf_counter() - t0:.2f} s")
    print(f"sweep: s={S_VOCAB}, {len(DISTRIBUTIONS)} distributions x n in {ns}, {runs} runs each, until collapse; "
          f"{args.repeats} interleaved repetitions (engine, then plain loop, per configuration)")
    print(f"{'support':>7} {'S0':>6} {'n':>4} | {'engine s':>8} {'E[T] eng':>9} {'+-SE':>6} | "
          f"{'plain s':>8} {'E[T] pl':>8} | {'diffusion':>9} {'Thm1 low':>8}")
    ratios_wall, ratios_cpu, zs = [], [], []
    for rep in range(args.repeats):
        eng_wall = eng_cpu = plain_wall = plain_cpu = eng_cpu_all = 0.0
        gens_total = 0
        for i, (sup, S0, n) in enumerate(configs):
            p = dists[sup, S0]
            seed = args.seed + 1000 * rep + i
            t0, c0 = time.perf_counter(), time.process_time()
            res = simulate(p, FullySynthetic(n), 0, runs=runs, seed=seed, until_collapse=True)
            te, ce = time.perf_counter() - t0, time.process_time() - c0
            assert np.all(res.collapse_time >= 1), "a run did not collapse"
            eng_cpu_all += ce
            ct = res.collapse_time
            gens_total += int(ct.sum())
            line = f"{sup:>7} {S0:>6.3f} {n:>4} | {te:>8.3f} {ct.mean():>9.1f} {ct.std(ddof=1) / np.sqrt(runs):>6.1f} | "
            if pick[i]:
                rng = np.random.default_rng(10_000 + seed)
                t0, c0 = time.perf_counter(), time.process_time()
                ctp = plain_collapse_times(p, n, runs, rng)
                tp, cp = time.perf_counter() - t0, time.process_time() - c0
                eng_wall, eng_cpu, plain_wall, plain_cpu = eng_wall + te, eng_cpu + ce, plain_wall + tp, plain_cpu + cp
                line += f"{tp:>8.3f} {ctp.mean():>8.1f} | "
                zs.append((ct.mean() - ctp.mean()) / np.sqrt((ct.var(ddof=1) + ctp.var(ddof=1)) / runs))
            else:
                line += f"{'-':>8} {'-':>8} | "
            lo, _ = T.collapse_time_bounds(n, S0, sup)
            line += f"{T.diffusion_collapse_time(p, n):>9.1f} {lo:>8.1f}"
            if rep == 0:
                print(line, flush=True)
        ratios_wall.append(plain_wall / eng_wall)
        ratios_cpu.append(plain_cpu / eng_cpu)
        print(f"repetition {rep + 1}: engine {eng_wall:.3f} s wall / {eng_cpu:.3f} s CPU "
              f"(whole sweep: {1e6 * eng_cpu_all / gens_total:.3f} us CPU per run-generation), plain loop {plain_wall:.2f} s wall / "
              f"{plain_cpu:.2f} s CPU on {int(pick.sum())}/{len(configs)} configurations; ratio "
              f"{ratios_wall[-1]:.1f}x wall, {ratios_cpu[-1]:.1f}x CPU", flush=True)
    zs = np.abs(np.array(zs))
    print(f"same law: engine vs plain loop mean collapse time, |z| max {zs.max():.2f} and median {np.median(zs):.2f} "
          f"over {zs.size} configuration-repetitions; {int(np.sum(zs > 3))} with |z| > 3")
    print(f"speed-up (equal work, median of {args.repeats}): {np.median(ratios_wall):.1f}x wall-clock, "
          f"{np.median(ratios_cpu):.1f}x CPU time")


if __name__ == "__main__":
    main()
