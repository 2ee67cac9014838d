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

Figures: :func:`draw_sigma` and :func:`draw_drift` (one panel of the paper's Figures 5 and 6,
from a simulation result), :func:`panel_grid` (those panels for several results, the course's
split of Figures 5 and 6 into figures of at most two panels side by side),
:func:`distributions_panel` (the initial laws of Figure 6), :func:`sigma_drift_panels`
(simulate and draw both), and the widget functions :func:`explore_partially_synthetic`
(Chapter 4) and :func:`explore_drift` (Chapter 5: the bounds against the measured drift).
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
    "draw_sigma",
    "draw_drift",
    "sigma_drift_panels",
    "panel_grid",
    "distributions_panel",
    "explore_partially_synthetic",
    "explore_drift",
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


def _ps_result(res: SimulationResult) -> tuple[int, int]:
    """(N, n) of a Partially Synthetic simulation result; ValueError for any other scenario."""
    if not isinstance(res, SimulationResult) or not isinstance(res.scenario, PartiallySynthetic):
        raise ValueError(f"res must be the SimulationResult of a PartiallySynthetic run, got {type(res).__name__}")
    return res.scenario.N, res.scenario.n


def draw_sigma(ax: Axes, res: SimulationResult, show_printed: bool = False, legend: bool = False) -> None:
    """sigma_m of every run (thin lines), their mean (red) and S_m of the corrected eq. (9) (dashed).

    ``show_printed`` adds eq. (9) as printed (dotted). The axis starts at m = 0 with S_0.
    """
    N, n = _ps_result(res)
    S0 = float(res.sigma[0, 0])
    m = np.arange(res.sigma.shape[1])
    plot_runs(ax, res.sigma, m)
    ax.plot(m[1:], theory.partially_synthetic_S(m[1:], N, n, S0), ls="--", color=THEORY_COLOR,
            lw=1.5, label="$S_m$, corrected (9)")
    if show_printed:
        ax.plot(m[2:], theory.partially_synthetic_S_printed(m[2:], N, n, S0), ls=":", color=PRINTED_COLOR,
                lw=1.5, label="(9) as printed")
    ax.set_xlabel("generation $m$")
    ax.set_ylabel(r"$\sigma_m$")
    if legend:
        ax.legend(loc="best")


def draw_drift(ax: Axes, res: SimulationResult, p, legend: bool = False) -> None:
    """||p^(m) - p^(1)||_1 of every run from m = 1, their mean, and the course's predictors.

    Dashed: :func:`drift_l1_gaussian`; dotted: :func:`drift_l1_bound` (both for the initial law p).
    """
    N, n = _ps_result(res)
    p = dist.validate(p, name="p")
    m = np.arange(res.drift_first.shape[1])
    plot_runs(ax, res.drift_first[:, 1:], m[1:])
    ax.plot(m[1:], drift_l1_gaussian(p, N, n, m[1:]), ls="--", color=THEORY_COLOR, lw=1.5,
            label="Gaussian predictor")
    ax.plot(m[1:], drift_l1_bound(p, N, n, m[1:]), ls=":", color=THEORY_COLOR, lw=1.5,
            label="bound (Jensen)")
    ax.set_xlabel("generation $m$")
    ax.set_ylabel(r"$\|\mathbf{p}^{(m)} - \mathbf{p}^{(1)}\|_1$")
    if legend:
        ax.legend(loc="best")


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
    """Simulate one (N, n) and draw :func:`draw_sigma` on ``ax_sigma`` and :func:`draw_drift` on ``ax_drift``."""
    p = dist.validate(p, name="p")
    N = _check_int("N", N, 1)
    n = _check_int("n", n, 1)
    generations = _check_int("generations", generations, 2)
    runs = _check_int("runs", runs, 2)
    res = simulate(p, PartiallySynthetic(N, n), generations, runs, seed=seed)
    draw_sigma(ax_sigma, res, show_printed=show_printed)
    draw_drift(ax_drift, res, p)
    return res


def panel_grid(results: Sequence[SimulationResult], kind: str, titles: Sequence[str],
               ps: Sequence[np.ndarray] | None = None, ncols: int = 2) -> Figure:
    """One panel per simulation (the course's split of the paper's Figures 5 and 6), shared y axis.

    ``kind="sigma"`` draws :func:`draw_sigma`, ``kind="drift"`` :func:`draw_drift` (then ``ps``
    gives each run's initial law p). Rows of ``ncols`` panels (at most 3); legend in the first.
    """
    if kind not in ("sigma", "drift"):
        raise ValueError(f"kind must be 'sigma' or 'drift', got {kind!r}")
    if len(results) == 0 or len(titles) != len(results):
        raise ValueError(f"need one title per result, got {len(titles)} titles for {len(results)} results")
    if kind == "drift" and (ps is None or len(ps) != len(results)):
        raise ValueError("kind='drift' needs ps, one initial distribution per result")
    ncols = _check_int("ncols", ncols, 1)
    nrows = -(-len(results) // ncols)
    fig, axes = new_axes(ncols=ncols, nrows=nrows, height=2.7, sharey=True, squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= len(results):
            ax.set_visible(False)
            continue
        if kind == "sigma":
            draw_sigma(ax, results[j], legend=(j == 0))
        else:
            draw_drift(ax, results[j], ps[j], legend=(j == 0))
        ax.set_title(titles[j])
        if j % ncols:
            ax.set_ylabel("")
        if j < len(results) - ncols:
            ax.set_xlabel("")
    if kind == "drift":  # shared y axis: one call sets every panel
        axes.flat[0].set_ylim(0, axes.flat[0].get_ylim()[1])
    return fig


def distributions_panel(dists: Sequence[tuple[str, np.ndarray]]) -> Figure:
    """The initial laws of the paper's Figure 6 in one panel: p_i against the token index, log-log scale."""
    if len(dists) == 0:
        raise ValueError("dists must list at least one distribution")
    fig, ax = new_axes(height=3.2)
    for j, (label, p) in enumerate(dists):
        p = dist.validate(p, name=f"dists[{j}]")
        tokens = np.arange(1, p.size + 1)
        ax.loglog(tokens[p > 0], p[p > 0], ".-", ms=3, lw=0.8, label=label)
    ax.set_xlabel("token $i$ (log scale)")
    ax.set_ylabel("$p_i$")
    ax.legend(loc="upper right")
    return fig


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
    fig, (ax1, ax2) = new_axes(ncols=2, height=3.4)
    res = sigma_drift_panels(ax1, ax2, p, N, n, generations, runs, seed=seed, show_printed=True)
    alpha, beta = theory.partially_synthetic_alpha_beta(N, n)
    ax1.set_title(rf"$\sigma_m$: N = {N}, n = {n}, $S_0$ = {S0:.3g}")
    ax2.set_title(rf"drift ($\alpha$ = {alpha:.2f}, $\beta$ = {beta:.2f})")
    ax1.legend(loc="best")
    ax2.legend(loc="lower right")
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
    # scalars at the last generation, for the widget's caption
    numbers.update(S_end=float(S_sim[-1]), S_end_se=float(S_se[-1]), S_end_theory=float(numbers["S_theory"][-1]),
                   drift_end=float(d_sim[-1]), drift_end_se=float(d_se[-1]),
                   gauss_end=float(numbers["drift_gauss"][-1]), bound_end=float(numbers["drift_bound"][-1]))
    return fig, numbers


def _sci(x: float) -> str:
    """A number for a caption: 3 significant digits below 100, an integer below 10^5, else 'm × 10ᵉ'."""
    if not math.isfinite(x):
        return "∞"
    if abs(x) < 100:
        return f"{x:.3g}"
    if abs(x) < 1e5:
        return f"{x:,.0f}"
    mant, ex = f"{x:.2e}".split("e")
    return f"{mant} × 10{str(int(ex)).translate(str.maketrans('0123456789-', '⁰¹²³⁴⁵⁶⁷⁸⁹⁻'))}"


def explore_drift(N: int = 100, n: int = 10, generations: int = 60, runs: int = 100, seed: int = 0,
                  s: int = 600, support: int = 52, S0: float = 0.1) -> tuple[Figure, dict]:
    """Chapter 5 widget: the measured drift ||p^(m) - p^(1)||_1 against the bounds, for one (N, n).

    Initial law ``zipf(s, support, S0)`` (the paper's Figure 5 by default). Draws every run's drift,
    its mean, the rigorous bound :func:`drift_l1_bound` (the course's second-moment proposition, Jensen) and the Gaussian
    predictor at every generation, and states the paper's Theorem 3 bound (1/N) sqrt(pi n/2) G_n(s)
    (drawn only if it is below 2, the largest possible L1 distance). Returns ``(fig, numbers)``
    with the scalars at the last generation: ``drift_end``, ``drift_end_se``, ``bound_end``,
    ``gauss_end``, ``bound_ratio`` (bound / measured), ``thm3`` and ``thm3_text`` (the paper's
    bound and its ratio to the measurement, as text), ``alpha``, ``beta``, ``m_end``.
    """
    N = _check_int("N", N, 1)
    n = _check_int("n", n, 1)
    s = _check_int("s", s, 2)
    support = _check_int("support", support, 2)
    generations = _check_int("generations", generations, 2)
    runs = _check_int("runs", runs, 2)
    if support > s:
        raise ValueError(f"support={support} exceeds s={s}")
    if not (np.isfinite(S0) and 1.0 / support <= S0 < 1.0):
        raise ValueError(f"S0 must lie in [1/support, 1) = [{1.0 / support:.4g}, 1), got {S0!r}")
    p = dist.zipf(s, support, float(S0))
    res = simulate(p, PartiallySynthetic(N, n), generations, runs, seed=seed)
    fig, ax = new_axes(height=3.6)
    draw_drift(ax, res, p)
    thm3 = theory.deviation_bound(N, n, s)
    if thm3 < 2:
        ax.axhline(thm3, color="0.35", ls="-.", lw=1.2, label="the paper's Theorem 3")
    ax.legend(loc="lower right")
    alpha, beta = theory.partially_synthetic_alpha_beta(N, n)
    beta = max(beta, 0.0)  # rounding can give -1e-19 at n = 1: no '-0.000' in titles
    d_sim, d_se = res.mean_se("drift_first")
    bound_end = drift_l1_bound(p, N, n, generations)
    gauss_end = drift_l1_gaussian(p, N, n, generations)
    thm3_text = (f"{_sci(thm3)}, {_sci(thm3 / d_sim[-1])} times the measured drift" if thm3 >= 2
                 else f"{thm3:.3f} (drawn)")
    ax.set_title(rf"N = {N}, n = {n}: $\alpha$ = {alpha:.3f}, $\beta$ = {beta:.3f}; "
                 f"paper's Theorem 3: {_sci(thm3)}")
    ax.set_ylim(0, max(ax.get_ylim()[1], 1.15 * bound_end))
    numbers = dict(drift_end=float(d_sim[-1]), drift_end_se=float(d_se[-1]), bound_end=float(bound_end),
                   gauss_end=float(gauss_end), bound_ratio=float(bound_end / d_sim[-1]), thm3=float(thm3),
                   thm3_text=thm3_text, alpha=float(alpha), beta=float(beta), m_end=generations)
    return fig, numbers
