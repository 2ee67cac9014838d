"""Plain functions behind Chapters 4 and 5 (Partially Synthetic training, deviation bounds).

Setting (Seddik et al., 2024, Sec. 2.2 and eq. (17)): p^(1) is the empirical distribution of
N real samples, and for m >= 2

    p^(m) = (1 - alpha) p^(1) + alpha * p_hat^(m-1),   alpha = n / (N + n),

where p_hat^(m-1) is the empirical distribution of n fresh samples of p^(m-1); the SAME N
real samples enter every generation.

Course additions (beyond the paper; derived in Chapters 4 and 5):

* :func:`drift_variance` -- the exact conditional second moment of the drift,
  E[(p_i^(m) - q_i)^2 | p^(1) = q] = alpha q_i (1 - q_i) (1 - beta^(m-1)) / (N D),
  with beta = alpha^2 (1 - 1/n) and D = 1 + (1 + 1/N) alpha.
* :func:`drift_l1_bound` -- the resulting rigorous bound on E||p^(m) - p^(1)||_1 (Jensen,
  token by token), and :func:`drift_l1_gaussian`, the same times sqrt(2/pi) (Gaussian
  heuristic, not a bound).
* :func:`safe_synthetic_samples` -- the largest n that keeps either of them below eps.
* :func:`l1_tail_exact` -- the exact law of ||p_hat - p||_1 for small s and n by
  enumerating count vectors (to test Lemma 1).

Figures: :func:`sigma_drift_panels` (one column of Figures 5 and 6), :func:`figure5`,
:func:`figure6` and the widget function :func:`explore_partially_synthetic`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.special import gammaln, xlogy
from scipy.stats import binom

from .. import distributions as dist
from .. import theory
from ..plotting import THEORY_COLOR, new_axes, plot_runs
from ..simulate import PartiallySynthetic, SimulationResult, simulate

__all__ = [
    "PRINTED_COLOR",
    "FIGURE6_SPECS",
    "drift_variance",
    "mean_binomial_sd",
    "drift_l1_bound",
    "drift_l1_gaussian",
    "safe_synthetic_samples",
    "stationary_drift",
    "l1_tail_exact",
    "sigma_drift_panels",
    "figure5",
    "figure6",
    "explore_partially_synthetic",
]

#: colour of the printed (uncorrected) eq. (9) where a figure shows it next to the corrected one.
PRINTED_COLOR = "#7f7f7f"
#: (support size, S0) of the four initial distributions on s = 600 tokens of the course's Figure 6.
FIGURE6_SPECS: tuple[tuple[int, float], ...] = ((600, 0.005), (600, 0.05), (52, 0.1), (10, 0.4))


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _geometry(N: int, n: int, m) -> tuple[float, np.ndarray]:
    """alpha (1 - beta^(m-1)) / (N D) for generation(s) m >= 1 (0 at m = 1)."""
    N = _check_int("N", N, 1)
    n = _check_int("n", n, 1)
    m_arr = np.asarray(m)
    if m_arr.size == 0 or np.any(m_arr != np.round(m_arr)) or np.any(m_arr < 1):
        raise ValueError(f"generation m must be an integer >= 1, got {m!r}")
    alpha, beta = theory.partially_synthetic_alpha_beta(N, n)
    D = 1.0 + (1.0 + 1.0 / N) * alpha
    return alpha / (N * D), 1.0 - beta ** (m_arr.astype(np.int64) - 1)


def drift_variance(q, N: int, n: int, m) -> np.ndarray:
    """Exact E[(p_i^(m) - q_i)^2 | p^(1) = q] in the Partially Synthetic setting (course result).

    With d_m = p^(m) - p^(1): d_m = alpha (p_hat^(m-1) - p^(m-1)) + alpha d_(m-1), d_1 = 0, the
    two terms are uncorrelated given the past, and E[p^(m-1) | q] = q, so
    v_m = beta v_(m-1) + alpha^2 q_i (1 - q_i) / n with beta = alpha^2 (1 - 1/n); solving,
    v_m = alpha q_i (1 - q_i) (1 - beta^(m-1)) / (N D), D = 1 + (1 + 1/N) alpha.
    `q` is one distribution (s,) or a batch (runs, s); scalar m only.
    """
    q = dist.validate(q, ndim=(1, 2), name="q")
    if np.ndim(m) != 0:
        raise ValueError("drift_variance takes a scalar generation m")
    scale, growth = _geometry(N, n, m)
    return scale * float(growth) * q * (1.0 - q)


def mean_binomial_sd(p, N: int) -> float:
    """A(p, N) = E sum_i sqrt(q_i (1 - q_i)) where q = p^(1) is the empirical law of N samples of p.

    Computed exactly: N q_i ~ Binomial(N, p_i), so each token contributes
    sum_k Bin(k; N, p_i) sqrt((k/N)(1 - k/N)).
    """
    p = dist.validate(p, name="p")
    N = _check_int("N", N, 1)
    k = np.arange(N + 1)
    x = k / N
    root = np.sqrt(x * (1.0 - x))
    pp = p[p > 0]
    pmf = binom.pmf(k[None, :], N, pp[:, None])
    return float((pmf * root[None, :]).sum())


def drift_l1_bound(p, N: int, n: int, m) -> np.ndarray | float:
    """Rigorous bound on E||p^(m) - p^(1)||_1 (course result, all m >= 1).

    E[|d_i| | q] <= sqrt(E[d_i^2 | q]) (Jensen) and :func:`drift_variance` give
    E||p^(m) - p^(1)||_1 <= sqrt(alpha (1 - beta^(m-1)) / (N D)) * A(p, N), with A from
    :func:`mean_binomial_sd`. `m` may be an array of generations.
    """
    scale, growth = _geometry(N, n, m)
    out = np.sqrt(scale * growth) * mean_binomial_sd(p, N)
    return out if np.ndim(m) else float(out)


def drift_l1_gaussian(p, N: int, n: int, m) -> np.ndarray | float:
    """Gaussian heuristic for E||p^(m) - p^(1)||_1: sqrt(2/pi) times :func:`drift_l1_bound`.

    If each d_i were centred normal given q, E|d_i| = sqrt(2/pi) sd(d_i). Not a bound; it is
    accurate when n is not tiny (each coordinate then sums many small independent moves).
    """
    return math.sqrt(2.0 / math.pi) * drift_l1_bound(p, N, n, m)


def safe_synthetic_samples(p, N: int, eps: float, heuristic: bool = False) -> float:
    """Largest n such that the (stationary) drift predictor stays <= eps (course rule).

    With A = :func:`mean_binomial_sd` (times sqrt(2/pi) if ``heuristic``) and r = (eps/A)^2,
    the stationary predictor A sqrt(alpha/(N D)) <= eps reads n / (N^2 + 2 N n + n) <= r, i.e.
    n (1 - r (2N + 1)) <= r N^2. Returns ``math.inf`` when every n qualifies
    (r (2N + 1) >= 1: the drift saturates below eps), else floor(r N^2 / (1 - r (2N + 1)))
    (0 means that no n >= 1 qualifies).
    """
    N = _check_int("N", N, 1)
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be > 0, got {eps!r}")
    A = mean_binomial_sd(p, N) * (math.sqrt(2.0 / math.pi) if heuristic else 1.0)
    if A == 0.0:
        return math.inf
    r = (eps / A) ** 2
    if r * (2 * N + 1) >= 1.0:
        return math.inf
    return float(math.floor(r * N**2 / (1.0 - r * (2 * N + 1)) + 1e-9))


def stationary_drift(p, N: int, n: int, runs: int = 200, window: int = 20, seed=0) -> tuple[float, float, SimulationResult]:
    """Measured stationary drift E||p^(m) - p^(1)||_1: (mean, standard error, simulation result).

    Runs `runs` chains for burn + `window` generations, where burn = ceil(5 / (1 - beta)) + 1
    makes beta^burn < e^-5 (the transient of Theorem 2 is over), averages each run's drift over
    the last `window` generations and returns the mean over runs and its Monte Carlo standard
    error (runs are independent; generations within a run are not, hence the per-run average).
    """
    N = _check_int("N", N, 1)
    n = _check_int("n", n, 1)
    runs = _check_int("runs", runs, 2)
    window = _check_int("window", window, 1)
    _, beta = theory.partially_synthetic_alpha_beta(N, n)
    burn = int(math.ceil(5.0 / (1.0 - beta))) + 1
    res = simulate(p, PartiallySynthetic(N, n), burn + window, runs, seed=seed)
    per_run = res.drift_first[:, burn + 1:].mean(axis=1)
    return float(per_run.mean()), float(per_run.std(ddof=1) / math.sqrt(runs)), res


def l1_tail_exact(p, n: int, eps, max_states: int = 2_000_000) -> np.ndarray:
    """Exact P(||p_hat - p||_1 >= eps) for the empirical distribution p_hat of n samples of p.

    Enumerates the C(n + s - 1, s - 1) count vectors (stars and bars) with their multinomial
    probabilities; refused above `max_states`. `eps` may be an array; a tolerance of 1e-12
    absorbs rounding at the atoms of the law of ||p_hat - p||_1.
    """
    p = dist.validate(p, name="p")
    n = _check_int("n", n, 1)
    s = p.size
    states = math.comb(n + s - 1, s - 1)
    if states > max_states:
        raise ValueError(f"{states} count vectors (> max_states={max_states}); use a smaller n or s")
    Y = theory._compositions(n, s)
    lp = xlogy(Y, np.broadcast_to(p, Y.shape)).sum(axis=1)  # 0 log 0 = 0
    prob = np.exp(gammaln(n + 1.0) - gammaln(Y + 1.0).sum(axis=1) + lp)
    dev = np.abs(Y / n - p[None, :]).sum(axis=1)
    order = np.argsort(dev)
    dev, prob = dev[order], prob[order]
    tail = np.concatenate([np.cumsum(prob[::-1])[::-1], [0.0]])  # tail[j] = P(dev >= dev[j])
    eps_arr = np.asarray(eps, dtype=float)
    idx = np.searchsorted(dev, eps_arr - 1e-12, side="left")
    out = tail[idx]
    return out if np.ndim(eps) else float(out)


def sigma_drift_panels(
    ax_sigma: Axes,
    ax_drift: Axes,
    p,
    N: int,
    n: int,
    generations: int = 50,
    runs: int = 100,
    seed=0,
    show_printed: bool = False,
) -> SimulationResult:
    """Draw one column of Figures 5/6: sigma_m (top axis) and ||p^(m) - p^(1)||_1 (bottom axis).

    One thin line per run and the red mean (:func:`collapse_lib.plotting.plot_runs`); dashed:
    S_m of Theorem 2 (corrected eq. (9)) on top, and the course's drift predictors below
    (Gaussian heuristic dashed, rigorous bound dotted). ``show_printed`` adds eq. (9) as
    printed. Generation 0 (p^(0) itself) is left out of the drift axis; the sigma axis starts
    at m = 0 with S_0. Returns the simulation result.
    """
    p = dist.validate(p, name="p")
    N = _check_int("N", N, 1)
    n = _check_int("n", n, 1)
    generations = _check_int("generations", generations, 2)
    runs = _check_int("runs", runs, 2)
    res = simulate(p, PartiallySynthetic(N, n), generations, runs, seed=seed)
    S0 = float(res.sigma[0, 0])
    m = np.arange(generations + 1)
    plot_runs(ax_sigma, res.sigma, m)
    ax_sigma.plot(m[1:], theory.partially_synthetic_S(m[1:], N, n, S0), ls="--", color=THEORY_COLOR,
                  lw=1.5, label="$S_m$, Theorem 2 (corrected)")
    if show_printed:
        ax_sigma.plot(m[2:], theory.partially_synthetic_S_printed(m[2:], N, n, S0), ls=":", color=PRINTED_COLOR,
                      lw=1.5, label="eq. (9) as printed")
    ax_sigma.set_xlabel("generation $m$")
    ax_sigma.set_ylabel(r"$\sigma_m$")
    plot_runs(ax_drift, res.drift_first[:, 1:], m[1:])
    ax_drift.plot(m[1:], drift_l1_gaussian(p, N, n, m[1:]), ls="--", color=THEORY_COLOR, lw=1.5,
                  label="Gaussian predictor")
    ax_drift.plot(m[1:], drift_l1_bound(p, N, n, m[1:]), ls=":", color=THEORY_COLOR, lw=1.5,
                  label="bound (Jensen)")
    ax_drift.set_xlabel("generation $m$")
    ax_drift.set_ylabel(r"$\|\mathbf{p}^{(m)} - \mathbf{p}^{(1)}\|_1$")
    return res


def figure5(
    p,
    N: int = 100,
    ns: Sequence[int] = (1, 10, 100, 1000),
    generations: int = 50,
    runs: int = 100,
    seed: int = 0,
) -> tuple[Figure, list[SimulationResult]]:
    """The course's version of the paper's Figure 5: one column per synthetic sample size n.

    Column j is seeded with ``[seed, j]``. Returns the figure and the simulation results.
    """
    if len(ns) == 0:
        raise ValueError("ns must list at least one sample size")
    fig, axes = new_axes(ncols=len(ns), nrows=2, width=3.3, height=2.8, sharey="row")
    results = []
    for j, n in enumerate(ns):
        res = sigma_drift_panels(axes[0, j], axes[1, j], p, N, n, generations, runs, seed=[seed, j])
        axes[0, j].set_title(f"N = {N}, n = {n}", fontsize=10)
        results.append(res)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    axes[1, 0].legend(fontsize=7, loc="upper left")
    return fig, results


def figure6(
    dists: Sequence[tuple[str, np.ndarray]],
    N: int = 100,
    n: int = 10,
    generations: int = 50,
    runs: int = 100,
    seed: int = 0,
) -> tuple[Figure, list[SimulationResult]]:
    """The course's version of the paper's Figure 6: one column per initial distribution.

    `dists` is a list of ``(label, p)``. Top row: p on a log scale; middle: sigma_m; bottom:
    the drift ||p^(m) - p^(1)||_1. Column j is seeded with ``[seed, j]``.
    """
    if len(dists) == 0:
        raise ValueError("dists must list at least one distribution")
    fig, axes = new_axes(ncols=len(dists), nrows=3, width=3.3, height=2.5)
    results = []
    for j, (label, p) in enumerate(dists):
        p = dist.validate(p, name=f"dists[{j}]")
        tokens = np.arange(1, p.size + 1)
        axes[0, j].semilogy(tokens[p > 0], p[p > 0], ".", ms=3, color=THEORY_COLOR)
        axes[0, j].set_xlabel("token $i$")
        axes[0, j].set_ylabel("$p_i$")
        axes[0, j].set_title(label, fontsize=9)
        res = sigma_drift_panels(axes[1, j], axes[2, j], p, N, n, generations, runs, seed=[seed, j])
        results.append(res)
    for row in (1, 2):
        ymax = max(ax.get_ylim()[1] for ax in axes[row])
        for ax in axes[row]:
            ax.set_ylim(0, ymax)
    axes[2, 0].legend(fontsize=7, loc="lower right")
    return fig, results


def explore_partially_synthetic(
    N: int = 100,
    n: int = 10,
    S0: float = 0.1,
    s: int = 600,
    support: int = 52,
    generations: int = 50,
    runs: int = 100,
    seed: int = 0,
) -> tuple[Figure, dict]:
    """Chapter 4 widget: sigma_m and the drift for one (N, n, S0), against theory.

    The initial distribution is ``zipf(s, support, S0)``. Left: sigma_m per run, its mean,
    S_m of Theorem 2 (corrected) and eq. (9) as printed. Right: ||p^(m) - p^(1)||_1 per run,
    its mean and the course's predictors. Returns ``(fig, numbers)`` with the arrays drawn:
    ``m``, ``S_theory``, ``S_printed`` (NaN at m = 1, where (9) is not stated), ``S_sim``,
    ``S_se``, ``drift_sim``, ``drift_se``, ``drift_bound``, ``drift_gauss``, ``alpha``, ``beta``.
    Raises ValueError on bad input.
    """
    N = _check_int("N", N, 1)
    n = _check_int("n", n, 1)
    s = _check_int("s", s, 2)
    support = _check_int("support", support, 2)
    if support > s:
        raise ValueError(f"support={support} exceeds s={s}")
    if not (np.isfinite(S0) and 1.0 / support <= S0 < 1.0):
        raise ValueError(f"S0 must lie in [1/support, 1) = [{1.0 / support:.4g}, 1), got {S0!r}")
    p = dist.zipf(s, support, float(S0))
    fig, (ax1, ax2) = new_axes(ncols=2, width=4.6, height=3.4)
    res = sigma_drift_panels(ax1, ax2, p, N, n, generations, runs, seed=seed, show_printed=True)
    alpha, beta = theory.partially_synthetic_alpha_beta(N, n)
    ax1.set_title(rf"N = {N}, n = {n}, $S_0$ = {S0:.3g} ($\alpha$ = {alpha:.2f}, $\beta$ = {beta:.2f})", fontsize=9)
    ax2.set_title(f"{runs} runs, support {support} of s = {s}", fontsize=9)
    ax1.legend(fontsize=7, loc="best")
    ax2.legend(fontsize=7, loc="lower right")
    m = np.arange(generations + 1)
    S_sim, S_se = res.mean_se("sigma")
    d_sim, d_se = res.mean_se("drift_first")
    S_pr = np.full(m.size, np.nan)
    S_pr[2:] = theory.partially_synthetic_S_printed(m[2:], N, n, float(S0))
    numbers = dict(
        m=m,
        S_theory=np.concatenate([[float(S0)], theory.partially_synthetic_S(m[1:], N, n, float(S0))]),
        S_printed=S_pr,
        S_sim=S_sim,
        S_se=S_se,
        drift_sim=d_sim,
        drift_se=d_se,
        drift_bound=np.concatenate([[np.nan], drift_l1_bound(p, N, n, m[1:])]),
        drift_gauss=np.concatenate([[np.nan], drift_l1_gaussian(p, N, n, m[1:])]),
        alpha=alpha,
        beta=beta,
    )
    return fig, numbers
