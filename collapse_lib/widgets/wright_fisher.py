"""Chapter 3 widget: the diffusion's expected collapse time against n and S0, beside simulation.

:func:`explore_diffusion` draws, for Zipf laws on ``support`` tokens
(:func:`collapse_lib.distributions.zipf`), the Wright-Fisher diffusion time
``t(p) = -2n sum_i (1 - p_i) ln(1 - p_i)`` (Littler; Kimura and Ohta: the chapter's theorem on many
tokens), the sandwich ``2n(1 - S0) <= t(p) <= 2n(1 - S0/2)`` of the chapter's corollary, the lower
bound of eq. (8) of Seddik et al. (2024), and the mean collapse time of simulated Fully Synthetic
chains with its standard error.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import distributions as dist
from .. import theory
from .._validate import integer, real
from ..plotting import MEAN_COLOR, THEORY_COLOR, new_axes
from ..simulate import FullySynthetic, simulate
from .fully_synthetic import DIFFUSION_COLOR

__all__ = ["WIDGET_NS", "explore_diffusion"]

#: sample sizes of the right panel (E[T] / n against n).
WIDGET_NS: tuple[int, ...] = (2, 5, 10, 20, 50, 100)


def _mean_se(p: np.ndarray, n: int, runs: int, seed) -> tuple[float, float]:
    """Mean collapse time of `runs` Fully Synthetic chains from p with sample size n, and its SE."""
    res = simulate(p, FullySynthetic(n), generations=0, runs=runs, seed=seed, until_collapse=True)
    t = res.collapse_time.astype(float)
    if np.any(t < 1):  # pragma: no cover - max_generations is huge
        raise ValueError("some runs did not collapse; cannot compute E[T]")
    return float(t.mean()), float(t.std(ddof=1) / np.sqrt(runs))


def explore_diffusion(
    n: int = 20,
    S0: float = 0.3,
    support: int = 10,
    runs: int = 1000,
    seed: int = 0,
) -> tuple[Figure, dict]:
    """The diffusion approximation of E[T] against n and S0, beside simulation (two panels).

    Left: E[T] against S0 at sample size `n`, for Zipf laws on `support` tokens: the diffusion
    time t(p), the sandwich 2n(1 - S0) <= t(p) <= 2n(1 - S0/2), the lower bound of eq. (8), and
    the simulated mean (+- 2 SE, `runs` chains) at five values of S0 including the chosen one.
    Right: E[T] / n against n in :data:`WIDGET_NS` (and `n`) at the chosen S0: the diffusion
    (constant in n), the lower bound of (8) and the simulated means, which approach the diffusion
    from below as n grows (the error is of order (ln n)/n).

    Returns ``(fig, numbers)`` with ``T_mean``, ``T_se`` (simulation at n, S0), ``T_diffusion``,
    ``rel_error`` ((diffusion - simulated) / simulated), ``z`` ((diffusion - simulated) / SE),
    ``sandwich_lo``, ``sandwich_hi``, ``T_lower`` (eq. (8)), ``n``, ``S0``, ``support``, ``p``.
    Raises ValueError on bad input (n < 1, support < 2, S0 outside [1/support, 1), runs < 2).
    """
    n = integer("n", n, minimum=1)
    support = integer("support", support, minimum=2)
    runs = integer("runs", runs, minimum=2)
    seed = integer("seed", seed, minimum=0)
    S0 = real("S0", S0)
    if not (1.0 / support <= S0 < 1.0):
        raise ValueError(f"S0 must lie in [1/support, 1) = [{1.0 / support:.4g}, 1), got {S0!r}")
    p = dist.zipf(support, support, S0)

    # left panel: against S0 at fixed n
    S_curve = np.linspace(1.0 / support, 0.95, 40)
    t_curve = np.array([theory.diffusion_collapse_time(dist.zipf(support, support, s), n) for s in S_curve])
    lo8 = np.array([theory.collapse_time_bounds(n, s, support)[0] for s in S_curve])
    S_pts = np.unique(np.round(np.r_[np.linspace(max(1.0 / support, 0.15), 0.85, 4), S0], 6))
    sims = [_mean_se(dist.zipf(support, support, float(s)), n, runs, [seed, 0, k]) for k, s in enumerate(S_pts)]
    T_mean, T_se = sims[int(np.argmin(np.abs(S_pts - S0)))]

    # right panel: against n at fixed S0
    ns = np.array(sorted(set(WIDGET_NS) | {n}))
    t_per_n = theory.diffusion_collapse_time(p, 1)  # t(p) is linear in n
    sims_n = [_mean_se(p, int(m), runs, [seed, 1, j]) for j, m in enumerate(ns)]
    lo8_n = np.array([theory.collapse_time_bounds(int(m), S0, support)[0] for m in ns])

    fig, (ax1, ax2) = new_axes(ncols=2)
    ax1.fill_between(S_curve, 2 * n * (1 - S_curve), 2 * n * (1 - S_curve / 2), color=DIFFUSION_COLOR, alpha=0.12,
                     label="$2n(1 - S_0)$ to $2n(1 - S_0/2)$")
    ax1.plot(S_curve, t_curve, color=DIFFUSION_COLOR, label="diffusion $t(\\boldsymbol{p})$")
    ax1.plot(S_curve, lo8, "--", color=THEORY_COLOR, lw=1, label="lower bound (8)")
    means, ses = np.array(sims).T
    ax1.errorbar(S_pts, means, yerr=2 * ses, fmt="o", color=MEAN_COLOR, ms=4, capsize=3, label="simulation $\\pm$ 2 SE")
    ax1.axvline(S0, color="0.6", lw=0.8)
    ax1.set_xlabel("$S_0 = \\sum_i p_i^2$")
    ax1.set_ylabel("$\\mathbb{E}[T]$ (generations)")
    ax1.set_title(f"n = {n}, Zipf on {support} tokens")
    top = max(2 * n * (1 - S_curve[0] / 2), float(np.max(means + 2 * ses)))
    ax1.set_ylim(0, 1.6 * top)  # room for the legend above the curves
    ax1.legend(loc="upper right")

    means_n, ses_n = np.array(sims_n).T
    ax2.axhline(t_per_n, color=DIFFUSION_COLOR, label="diffusion $t(\\boldsymbol{p})/n$")
    ax2.plot(ns, lo8_n / ns, "--", color=THEORY_COLOR, lw=1, label="lower bound (8) / n")
    ax2.errorbar(ns, means_n / ns, yerr=2 * ses_n / ns, fmt="o", color=MEAN_COLOR, ms=4, capsize=3,
                 label="simulation / n")
    ax2.axvline(n, color="0.6", lw=0.8)
    ax2.set_xscale("log")
    ax2.set_xlabel("sample size $n$")
    ax2.set_ylabel("$\\mathbb{E}[T] / n$")
    ax2.set_title(f"$S_0$ = {S0:g}")
    ax2.set_ylim(bottom=0)
    ax2.legend(loc="lower right")

    t_diff = float(theory.diffusion_collapse_time(p, n))
    numbers = dict(
        T_mean=T_mean, T_se=T_se, T_diffusion=t_diff, rel_error=(t_diff - T_mean) / T_mean,
        z=(t_diff - T_mean) / T_se if T_se > 0 else float("inf"),
        sandwich_lo=2 * n * (1 - S0), sandwich_hi=2 * n * (1 - S0 / 2),
        T_lower=float(theory.collapse_time_bounds(n, S0, support)[0]), n=n, S0=S0, support=support, p=p,
    )
    return fig, numbers
