"""Plain functions behind Chapters 2 and 3 (Fully Synthetic training, Wright-Fisher view).

* :func:`figure2_distributions` builds the four initial distributions of the course's
  version of the paper's Figure 2 (Seddik et al., 2024): Zipf-like laws on s = 600 tokens
  with chosen support size and S0 = sum_i p_i^2.
* :func:`collapse_time_sweep` measures the collapse time T over a grid of sample sizes n
  (bottom panel of Figure 2). Chapters 2 and 3 call it with the same seed, so they show
  the same simulated numbers.
* :func:`explore_fully_synthetic` is the chapter-2 widget: S_m of eq. (6) against
  simulation, and the distribution of T against the bounds of eq. (8) and the
  Wright-Fisher diffusion approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .. import distributions as dist
from .. import theory
from ..plotting import MEAN_COLOR, RUN_COLOR, THEORY_COLOR, new_axes
from ..simulate import FullySynthetic, simulate

__all__ = [
    "FIGURE2_SPECS",
    "FIGURE2_NS",
    "DIFFUSION_COLOR",
    "figure2_distributions",
    "CollapseSweep",
    "collapse_time_sweep",
    "explore_fully_synthetic",
]

#: (support size, S0) of the four initial distributions on s = 600 tokens (Figure 2, top).
FIGURE2_SPECS: tuple[tuple[int, float], ...] = ((600, 0.005), (600, 0.1), (100, 0.3), (10, 0.6))
#: sample sizes of the paper's Figure 2 (bottom): n in {10, 50, 100, 150, ..., 400}.
FIGURE2_NS: tuple[int, ...] = (10,) + tuple(range(50, 401, 50))
#: colour of the Wright-Fisher diffusion approximation in the figures of Chapters 2 and 3.
DIFFUSION_COLOR = "#2e8b57"


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def figure2_distributions(
    s: int = 600, specs: Sequence[tuple[int, float]] = FIGURE2_SPECS
) -> list[tuple[str, np.ndarray]]:
    """The initial distributions of Figure 2: ``[(label, p), ...]``, one Zipf law per spec.

    Each spec is ``(support, S0)``; the distribution is
    :func:`collapse_lib.distributions.zipf(s, support, S0) <collapse_lib.distributions.zipf>`.
    """
    s = _check_int("s", s, 2)
    if len(specs) == 0:
        raise ValueError("specs must list at least one (support, S0) pair")
    out = []
    for support, S0 in specs:
        p = dist.zipf(s, support, S0)
        out.append((f"support {support}, $S_0$ = {S0:g}", p))
    return out


@dataclass
class CollapseSweep:
    """Collapse times of a sweep: ``times[d, j, r]`` is T of run r for distribution d and n = ns[j]."""

    ns: np.ndarray
    times: np.ndarray

    @property
    def runs(self) -> int:
        return self.times.shape[-1]

    @property
    def mean(self) -> np.ndarray:
        """Mean collapse time per (distribution, n)."""
        return self.times.mean(axis=-1)

    @property
    def se(self) -> np.ndarray:
        """Monte Carlo standard error of :attr:`mean` (sample std / sqrt(runs))."""
        return self.times.std(axis=-1, ddof=1) / np.sqrt(self.runs)


def collapse_time_sweep(
    ps: Sequence[np.ndarray],
    ns: Sequence[int] = FIGURE2_NS,
    runs: int = 100,
    seed: int = 0,
    max_generations: int = 1_000_000,
) -> CollapseSweep:
    """Simulate the Fully Synthetic chain until collapse for every p in `ps` and n in `ns`.

    Uses :func:`collapse_lib.simulate.simulate` with ``until_collapse=True``; the run for
    distribution d and sample size ns[j] is seeded with ``[seed, d, j]``. Raises ValueError
    if a run has not collapsed after `max_generations` generations (then the mean would be
    biased) or on bad input.
    """
    runs = _check_int("runs", runs, 2)
    ns_arr = np.asarray([_check_int("n", n, 1) for n in ns], dtype=np.int64)
    if ns_arr.size == 0 or len(ps) == 0:
        raise ValueError("need at least one distribution and one sample size")
    times = np.empty((len(ps), ns_arr.size, runs), dtype=np.int64)
    for d, p in enumerate(ps):
        dist.validate(p, name=f"ps[{d}]")
        for j, n in enumerate(ns_arr):
            res = simulate(
                p, FullySynthetic(int(n)), generations=0, runs=runs, seed=[seed, d, j],
                until_collapse=True, max_generations=max_generations,
            )
            if np.any(res.collapse_time < 1):
                raise ValueError(f"some runs did not collapse within {max_generations} generations (d={d}, n={n})")
            times[d, j] = res.collapse_time
    return CollapseSweep(ns=ns_arr, times=times)


def explore_fully_synthetic(
    n: int = 20,
    S0: float = 0.3,
    support: int = 10,
    runs: int = 2000,
    seed: int = 0,
) -> tuple[Figure, dict]:
    """Chapter 2 widget: one Fully Synthetic experiment against Theorem 1 and the diffusion.

    The initial distribution is ``zipf(support, support, S0)`` (a Zipf law on `support`
    tokens with sum p_i^2 = S0). The left panel draws S_m = E[sum_i (p_i^(m))^2]: eq. (6)
    against the mean of `runs` simulated chains (+- 2 standard errors), for
    m = 0, ..., 3n. The right panel is the histogram of the collapse time T with its mean,
    the two bounds of eq. (8) and the Wright-Fisher diffusion approximation
    -2n sum_i (1 - p_i) ln(1 - p_i).

    Returns ``(fig, numbers)``; `numbers` holds the arrays and scalars drawn: ``m``,
    ``S_theory``, ``S_sim``, ``S_se``, ``T`` (all collapse times), ``T_mean``, ``T_se``,
    ``T_lower``, ``T_upper``, ``T_diffusion``, ``S0``, ``support``, ``p``.
    Raises ValueError on bad input (n < 1, support < 2, S0 outside [1/support, 1), runs < 2).
    """
    n = _check_int("n", n, 1)
    support = _check_int("support", support, 2)
    runs = _check_int("runs", runs, 2)
    if not np.isfinite(S0) or not (1.0 / support <= S0 < 1.0):
        raise ValueError(f"S0 must lie in [1/support, 1) = [{1.0 / support:.4g}, 1), got {S0!r}")
    S0 = float(S0)
    p = dist.zipf(support, support, S0)
    G = 3 * n
    res = simulate(p, FullySynthetic(n), generations=G, runs=runs, seed=seed, until_collapse=True)
    if np.any(res.collapse_time < 1):  # pragma: no cover - max_generations is huge
        raise ValueError("some runs did not collapse; cannot compute E[T]")
    m = np.arange(G + 1)
    S_sim, S_se = res.mean_se("sigma")
    S_th = np.array([theory.fully_synthetic_S(int(k), n, S0) for k in m])
    T = res.collapse_time.astype(float)
    T_mean, T_se = float(T.mean()), float(T.std(ddof=1) / np.sqrt(runs))
    T_lo, T_hi = (float(v) for v in theory.collapse_time_bounds(n, S0, support))
    T_diff = float(theory.diffusion_collapse_time(p, n))

    fig, (ax1, ax2) = new_axes(ncols=2, width=4.6, height=3.4)
    ax1.fill_between(m, S_sim - 2 * S_se, S_sim + 2 * S_se, color=RUN_COLOR, alpha=0.5, label="simulation $\\pm$ 2 SE")
    ax1.plot(m, S_sim, color=MEAN_COLOR, lw=1.2, label="simulated mean of $\\sigma_m$")
    ax1.plot(m, S_th, color=THEORY_COLOR, ls="--", lw=1.5, label="$S_m$, eq. (6)")
    ax1.set_xlabel("generation $m$")
    ax1.set_ylabel("$S_m = \\mathbb{E}\\,\\sum_i (p_i^{(m)})^2$")
    ax1.set_title(f"n = {n}, support = {support}, $S_0$ = {S0:.3g}")
    ax1.legend(loc="lower right")

    bins = np.arange(0.5, T.max() + 1.5, max(1, int(np.ceil(T.max() / 40))))
    ax2.hist(T, bins=bins, color=RUN_COLOR, edgecolor="white", density=True)
    ax2.axvline(T_mean, color=MEAN_COLOR, lw=2, label=f"mean T = {T_mean:.1f} $\\pm$ {T_se:.1f}")
    ax2.axvline(T_lo, color=THEORY_COLOR, ls="--", label=f"lower bound (8) = {T_lo:.1f}")
    ax2.axvline(T_diff, color=DIFFUSION_COLOR, ls="-.", label=f"diffusion = {T_diff:.1f}")
    if T_hi <= bins[-1]:
        ax2.axvline(T_hi, color=THEORY_COLOR, ls=":", label=f"upper bound (8) = {T_hi:.0f}")
    else:
        ax2.plot([], [], color=THEORY_COLOR, ls=":", label=f"upper bound (8) = {T_hi:.0f} (off scale)")
    ax2.set_xlabel("collapse time $T$ (generations)")
    ax2.set_ylabel("fraction of runs per generation")
    ax2.set_title(f"{runs} runs")
    ax2.legend()
    numbers = dict(
        m=m, S_theory=S_th, S_sim=S_sim, S_se=S_se, T=T, T_mean=T_mean, T_se=T_se,
        T_lower=T_lo, T_upper=T_hi, T_diffusion=T_diff, S0=S0, support=support, p=p,
    )
    return fig, numbers
