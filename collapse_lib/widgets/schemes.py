"""Plain functions behind Chapters 6 and 7 (mixing schemes, biased decoding).

* :func:`make_scenario` turns a scheme name (``"fully synthetic"``, ``"most recent K"``,
  ``"random pool"``, ``"accumulate"``, ``"accumulate-subsample"``) and its parameters into
  a scenario of :mod:`collapse_lib.simulate`, with optional biased decoding.
* :func:`collapse_times` picks the collapse time that makes sense for a scheme: the
  absorption time where a Dirac mass can be absorbing (fully synthetic, most recent K),
  the first generation at which p^(m) is a Dirac mass otherwise.
* :func:`accumulate_subsample_S` is the closed form for S_m under accumulate-subsample
  derived in Chapter 6 (Proposition "accumulate-subsample").
* :func:`figure4_runs` simulates the columns of the paper's Figure 4 (Seddik et al., 2024,
  Sec. 9.2) and :func:`figure4_row` draws one of its rows (sigma_m, the drift
  ||p^(m) - p^(1)||_1, or the collapse-time histograms) as a figure of its own, the
  schemes on a 2 x 2 grid, so that each figure makes one point and stays readable.
* :func:`compare_schemes` puts the mean curves of all schemes on one figure at equal
  compute (n fresh samples per generation).
* :func:`scheme_figure` is the widget function of Chapters 6 and 7: one scheme, its runs,
  its mean, the closed form where one exists and the fully synthetic mean for reference;
  :func:`scheme_widget` is the same figure with the numbers its kernel-free caption states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .. import distributions as dist
from .. import theory
from ..decoding import Decoding
from ..plotting import MEAN_COLOR, RUN_COLOR, THEORY_COLOR, new_axes, plot_runs
from ..simulate import (
    Accumulate,
    AccumulateSubsample,
    FullySynthetic,
    RandomPool,
    RecentModels,
    SimulationResult,
    simulate,
)

__all__ = [
    "SCHEMES",
    "SCHEME_COLORS",
    "default_p0",
    "make_scenario",
    "scheme_label",
    "collapse_times",
    "accumulate_subsample_S",
    "theory_S",
    "SchemeRun",
    "run_scheme",
    "figure4_runs",
    "figure4_row",
    "FIGURE4_ROWS",
    "compare_schemes",
    "scheme_figure",
    "scheme_widget",
]

#: scheme names accepted by :func:`make_scenario` (all draw n fresh samples per generation).
SCHEMES: tuple[str, ...] = (
    "fully synthetic",
    "most recent K",
    "random pool",
    "accumulate",
    "accumulate-subsample",
)
#: one colour per scheme for the comparison figures.
SCHEME_COLORS: dict[str, str] = {
    "fully synthetic": "#c0392b",
    "most recent K": "#e67e22",
    "random pool": "#8e44ad",
    "accumulate": "#1f5fa8",
    "accumulate-subsample": "#2e8b57",
}
_ABSORBING = ("fully synthetic", "most recent K")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    return scheme


def default_p0(s: int = 600, support: int = 52, S0: float = 0.1) -> np.ndarray:
    """The initial distribution of the paper's Figures 4-6: Zipf-like, s = 600, support 52, S0 = 0.1."""
    return dist.zipf(s, support, S0)


def make_scenario(scheme: str, n: int, K: int = 5, decoding: Decoding | None = None):
    """Scenario object of :mod:`collapse_lib.simulate` for a scheme name.

    ``"most recent K"`` uses ``RecentModels(n, K, early="fill")``: generations m < K spread
    their n samples over the m models that exist (the paper's literal formula would train
    them on only m floor(n/K) samples). K is ignored by the other schemes but must still be
    a positive integer; for ``"most recent K"`` it must also satisfy K <= n.
    """
    _check_scheme(scheme)
    n = _check_int("n", n, 1)
    K = _check_int("K", K, 1)
    if decoding is not None and not isinstance(decoding, Decoding):
        raise ValueError(f"decoding must be a Decoding or None, got {type(decoding).__name__}")
    if scheme == "fully synthetic":
        return FullySynthetic(n, decoding=decoding)
    if scheme == "most recent K":
        if K > n:
            raise ValueError(f"most recent K needs K <= n (floor(n/K) >= 1 sample per model), got K={K}, n={n}")
        return RecentModels(n, K, early="fill", decoding=decoding)
    if scheme == "random pool":
        return RandomPool(n, decoding=decoding)
    if scheme == "accumulate":
        return Accumulate(n, decoding=decoding)
    return AccumulateSubsample(n, decoding=decoding)


def scheme_label(scheme: str, K: int | None = None) -> str:
    """Short legend label (``"most recent K"`` shows its K)."""
    _check_scheme(scheme)
    if scheme == "most recent K" and K is not None:
        return f"most recent K={K}"
    return scheme


def collapse_times(scheme: str, result: SimulationResult) -> np.ndarray:
    """Collapse time per run (-1 if none): absorption time for fully synthetic and most
    recent K (from then on nothing can change), first generation with a Dirac mass p^(m)
    for the other schemes (which are never absorbed: old data keep every token alive)."""
    _check_scheme(scheme)
    return result.absorption_time if scheme in _ABSORBING else result.collapse_time


def accumulate_subsample_S(m, n: int, S0: float):
    """S_m = E[sigma_m] under accumulate-subsample (Chapter 6, beyond the paper).

    The pool after generation m holds m n points (n real, then n samples of each model);
    p^(m) is the empirical distribution of n points drawn from it without replacement
    (p^(1) = the n real points). With h_m = n (m-1)/(m n - 1) (the finite-population factor
    of the hypergeometric draw) and c_m = 1 + (1 - 1/n) h_m,

        1 - S_m = (1 - S0) (1 - 1/n) (1 - h_m/n) prod_{k=1}^{m-1} (1 - c_k / (n (k+1)^2)),

    and S_0 = S0. ``m`` is an integer or an array of integers >= 0.
    """
    n = _check_int("n", n, 1)
    if not (np.isfinite(S0) and 0 < S0 <= 1):
        raise ValueError(f"S0 must be in (0, 1], got {S0}")
    m_arr = np.asarray(m)
    if m_arr.size == 0 or np.any(m_arr < 0) or np.any(m_arr != np.round(m_arr)):
        raise ValueError(f"m must be integers >= 0, got {m!r}")
    m_int = m_arr.astype(np.int64)
    M = int(m_int.max())
    k = np.arange(1, M + 1, dtype=float)  # generation index 1..M
    h = np.where(k > 1, n * (k - 1) / np.maximum(k * n - 1, 1), 0.0)
    c = 1.0 + (1.0 - 1.0 / n) * h
    # prod_{j=1}^{m-1} (1 - c_j / (n (j+1)^2)), for m = 1..M
    factors = 1.0 - c / (n * (k + 1) ** 2)
    prods = np.concatenate([[1.0], np.cumprod(factors)[:-1]]) if M >= 1 else np.array([])
    one_minus = np.empty(M + 1)
    one_minus[0] = 1.0 - S0
    if M >= 1:
        one_minus[1:] = (1.0 - S0) * (1.0 - 1.0 / n) * (1.0 - h / n) * prods
    out = 1.0 - one_minus[m_int]
    return out if np.ndim(m) else float(out)


def theory_S(scheme: str, m, n: int, S0: float, decoding: Decoding | None = None):
    """Closed form of S_m for a scheme under unbiased sampling, or None where there is none.

    fully synthetic: Theorem 1, eq. (6); accumulate and random pool: the same product
    formula (Chapter 6), :func:`collapse_lib.theory.accumulate_S`; accumulate-subsample:
    :func:`accumulate_subsample_S`. Most recent K and any biased decoding: None.
    """
    _check_scheme(scheme)
    if decoding is not None and not decoding.is_identity:
        return None
    if scheme == "fully synthetic":
        return theory.fully_synthetic_S(m, n, S0)
    if scheme in ("accumulate", "random pool"):
        return theory.accumulate_S(m, n, S0)
    if scheme == "accumulate-subsample":
        return accumulate_subsample_S(m, n, S0)
    return None


@dataclass
class SchemeRun:
    """One scheme simulated: its scenario, the :class:`SimulationResult` and collapse times."""

    scheme: str
    K: int
    result: SimulationResult
    times: np.ndarray = field(repr=False)

    @property
    def label(self) -> str:
        return scheme_label(self.scheme, self.K)

    @property
    def collapsed_fraction(self) -> float:
        """Fraction of runs with a collapse time (see :func:`collapse_times`)."""
        return float(np.mean(self.times > 0))

    def mean_time(self) -> tuple[float, float]:
        """Mean collapse time over the runs that collapsed and its standard error (nan if < 2)."""
        t = self.times[self.times > 0].astype(float)
        if t.size < 2:
            return (float(t.mean()) if t.size else math.nan, math.nan)
        return float(t.mean()), float(t.std(ddof=1) / math.sqrt(t.size))


def run_scheme(
    scheme: str,
    n: int = 10,
    K: int = 5,
    generations: int = 500,
    runs: int = 100,
    seed=0,
    p0: np.ndarray | None = None,
    decoding: Decoding | None = None,
    until_collapse: bool = False,
    max_generations: int = 100_000,
) -> SchemeRun:
    """Simulate one scheme (``simulate`` with the scenario of :func:`make_scenario`).

    ``until_collapse=True`` is honoured only for the absorbing schemes (fully synthetic and
    most recent K): they are then run until absorption, so their collapse times are not
    censored at `generations`; it is ignored for the others.
    """
    scenario = make_scenario(scheme, n, K, decoding)
    generations = _check_int("generations", generations, 1)
    runs = _check_int("runs", runs, 2)
    p = default_p0() if p0 is None else dist.validate(p0, name="p0")
    uc = bool(until_collapse) and scheme in _ABSORBING
    res = simulate(p, scenario, generations, runs=runs, seed=seed, until_collapse=uc,
                   max_generations=max(max_generations, generations))
    return SchemeRun(scheme, int(K), res, collapse_times(scheme, res))


def _rasterize_runs(ax) -> None:
    """Draw the thin per-run lines of :func:`plot_runs` (unlabelled) as an image inside the SVG:
    a hundred runs of 500 generations would otherwise be megabytes of vector paths."""
    for line in ax.get_lines():
        if line.get_label().startswith("_"):
            line.set_rasterized(True)


def _hist(ax, run: SchemeRun, generations: int) -> None:
    t = run.times[run.times > 0]
    if t.size == 0:
        ax.text(0.5, 0.5, "no run reached\na Dirac mass", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0, generations)
    else:
        ax.hist(t, bins=20, color=RUN_COLOR, edgecolor="0.3", lw=0.5)
        ax.axvline(t.mean(), color=MEAN_COLOR, lw=2, label=f"mean {t.mean():.0f}")
        ax.legend(loc="upper right")
    if run.scheme not in _ABSORBING:
        ax.set_xlim(0, generations)
    word = "absorbed" if run.scheme in _ABSORBING else "hit a Dirac mass"
    ax.set_title(f"{run.label}: {run.collapsed_fraction:.0%} {word}")
    ax.set_xlabel("collapse time $T$")
    ax.set_ylabel("runs")


#: the rows of the paper's Figure 4, one figure each in the course (see :func:`figure4_row`).
FIGURE4_ROWS: tuple[str, ...] = ("sigma", "drift", "times")


def figure4_runs(
    columns: Sequence[tuple[str, int]] = (("fully synthetic", 1), ("most recent K", 5),
                                          ("most recent K", 10), ("random pool", 1)),
    n: int = 10,
    generations: int = 500,
    runs: int = 100,
    seed: int = 4,
    p0: np.ndarray | None = None,
) -> list[SchemeRun]:
    """Simulate the columns of the paper's Figure 4: one :class:`SchemeRun` per (scheme, K).

    Absorbing schemes are run until absorption (``until_collapse``), so their collapse times
    are not censored at `generations`. Column j is seeded with ``[seed, j]``.
    """
    if len(columns) == 0:
        raise ValueError("columns must list at least one (scheme, K) pair")
    if len(columns) > 4:
        raise ValueError(f"at most 4 columns fit the 2 x 2 grid of figure4_row, got {len(columns)}")
    return [run_scheme(scheme, n, K, generations, runs, seed=[seed, j], p0=p0, until_collapse=True)
            for j, (scheme, K) in enumerate(columns)]


def figure4_row(runs4: Sequence[SchemeRun], row: str) -> Figure:
    """One row of the paper's Figure 4 as a figure: one panel per scheme, on a 2 x 2 grid.

    ``row`` is ``"sigma"`` (sigma_m: one thin line per run, the red mean), ``"drift"``
    (||p^(m) - p^(1)||_1, same layout) or ``"times"`` (histogram of the collapse times of
    :func:`collapse_times` with its mean; a dotted line marks the recorded horizon when an
    absorbing scheme ran past it). The panels of a row share their y axis.
    """
    if row not in FIGURE4_ROWS:
        raise ValueError(f"row must be one of {FIGURE4_ROWS}, got {row!r}")
    if not 1 <= len(runs4) <= 4 or not all(isinstance(r, SchemeRun) for r in runs4):
        raise ValueError("runs4 must hold 1 to 4 SchemeRun objects (from figure4_runs)")
    ncols = 1 if len(runs4) == 1 else 2
    nrows = math.ceil(len(runs4) / ncols)
    shared = row != "times"  # histograms keep their own axes: collapse times differ by a factor 30
    fig, axes = new_axes(ncols=ncols, nrows=nrows, height=2.7, sharey=shared, sharex=shared)
    axes = np.atleast_1d(axes).ravel()
    for ax, run in zip(axes, runs4):
        r = run.result
        G = r.generations
        if row == "sigma":
            plot_runs(ax, r.sigma)
            _rasterize_runs(ax)
            ax.set_ylim(0, 1.02)
            ax.set_ylabel(r"$\sigma_m$")
        elif row == "drift":
            plot_runs(ax, r.drift_first[:, 1:], x=np.arange(1, G + 1))
            _rasterize_runs(ax)
            ax.set_ylabel(r"$\|p^{(m)} - p^{(1)}\|_1$")
        else:
            _hist(ax, run, G)
            if run.scheme in _ABSORBING and np.any(run.times > G):
                ax.axvline(G, color="0.4", ls=":", lw=1.2)
        if row != "times":
            ax.set_title(run.label if run.scheme != "fully synthetic" else "fully synthetic (K = 1)")
            ax.set_xlabel("generation $m$")
    for ax in axes[len(runs4):]:
        ax.set_visible(False)
    if shared:
        for ax in axes[:len(runs4)]:
            ax.label_outer()
    return fig


def compare_schemes(
    n: int = 10,
    K: int = 5,
    generations: int = 500,
    runs: int = 100,
    seed: int = 6,
    p0: np.ndarray | None = None,
    decoding: Decoding | None = None,
    schemes: Sequence[str] = SCHEMES,
) -> tuple[Figure, dict[str, SchemeRun]]:
    """Mean sigma_m, mean drift ||p^(m) - p^(1)||_1 and the fraction of runs whose p^(m) is a
    Dirac mass, for several schemes at equal compute (n fresh samples per generation).

    Closed forms of S_m (where :func:`theory_S` has one) are dashed. Scheme j is seeded with
    ``[seed, j]``. Returns the figure and ``{scheme: SchemeRun}``.
    """
    if len(schemes) == 0:
        raise ValueError("schemes must not be empty")
    for sc in schemes:
        _check_scheme(sc)
    p = default_p0() if p0 is None else dist.validate(p0, name="p0")
    S0 = float(np.dot(p, p))
    fig, axes = new_axes(ncols=3, height=3.0)
    gens = np.arange(generations + 1)
    out: dict[str, SchemeRun] = {}
    for j, sc in enumerate(schemes):
        run = run_scheme(sc, n, K, generations, runs, seed=[seed, j], p0=p, decoding=decoding)
        out[sc] = run
        col = SCHEME_COLORS[sc]
        r = run.result
        axes[0].plot(gens, r.sigma.mean(axis=0), color=col, label=run.label)
        th = theory_S(sc, gens, n, S0, decoding)
        if th is not None:
            axes[0].plot(gens, th, color=col, ls="--", lw=1)
        axes[1].plot(gens[1:], r.drift_first[:, 1:].mean(axis=0), color=col, label=run.label)
        axes[2].plot(gens, (r.max_prob >= 1 - 1e-12).mean(axis=0), color=col, label=run.label)
    axes[0].set_ylabel(r"mean $\sigma_m$ (dashed: closed form)")
    axes[1].set_ylabel(r"mean $\|p^{(m)} - p^{(1)}\|_1$")
    axes[2].set_ylabel(r"fraction with $p^{(m)}$ a Dirac mass")
    ticks = [t for t in (0, 10, 100, 1000, 10_000) if t <= generations]
    for ax in axes:
        ax.set_xlabel("generation $m$")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xticks(ticks, [str(t) for t in ticks])
    fig.legend(handles=axes[1].get_lines(), loc="outside lower center", ncols=3)
    return fig, out


def scheme_figure(
    scheme: str = "most recent K",
    n: int = 10,
    K: int = 5,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generations: int = 300,
    runs: int = 50,
    seed: int = 0,
    baseline: bool = True,
) -> tuple[Figure, SchemeRun]:
    """Widget function: one scheme with decoding (temperature, top-p), against fully synthetic.

    Panels: sigma_m (runs, mean, closed form when one exists), drift ||p^(m) - p^(1)||_1,
    histogram of collapse times within `generations`. With ``baseline`` the mean of the
    unbiased fully synthetic chain (same n) is drawn in grey for reference. Raises
    ValueError on an unknown scheme, n < 1, K < 1 or K > n for most recent K, temperature
    <= 0, top_p outside (0, 1], generations < 1 or runs < 2.
    """
    _check_scheme(scheme)
    if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    decoding = Decoding(float(temperature), None, None if top_p == 1 else float(top_p))
    run = run_scheme(scheme, n, K, generations, runs, seed=seed, decoding=decoding)
    r = run.result
    p0 = default_p0()
    S0 = float(np.dot(p0, p0))
    gens = np.arange(generations + 1)
    fig, axes = new_axes(ncols=3, height=3.0)
    plot_runs(axes[0], r.sigma)
    th = theory_S(scheme, gens, n, S0, decoding)
    if th is not None:
        axes[0].plot(gens, th, color=THEORY_COLOR, ls="--", lw=1.5, label="closed form $S_m$")
    plot_runs(axes[1], r.drift_first[:, 1:], x=gens[1:])
    if baseline:
        base = run_scheme("fully synthetic", n, 1, generations, runs, seed=seed).result
        axes[0].plot(gens, base.sigma.mean(axis=0), color="0.4", ls=":", lw=1.5, label="fully synthetic, T=1")
        axes[1].plot(gens[1:], base.drift_first[:, 1:].mean(axis=0), color="0.4", ls=":", lw=1.5,
                     label="fully synthetic, T=1")
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel(r"$\sigma_m$")
    axes[1].set_ylabel(r"$\|p^{(m)} - p^{(1)}\|_1$")
    for ax in axes[:2]:
        ax.set_xlabel("generation $m$")
        _rasterize_runs(ax)
    _hist(axes[2], run, generations)
    axes[2].set_title(f"{run.collapsed_fraction:.0%} " + ("absorbed" if scheme in _ABSORBING else "hit a Dirac mass"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig, run


def scheme_widget(
    scheme: str = "most recent K",
    n: int = 10,
    K: int = 5,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generations: int = 300,
    runs: int = 50,
    seed: int = 0,
) -> tuple[Figure, dict]:
    """:func:`scheme_figure` (with the fully synthetic baseline) and the numbers of its frame.

    The dict, for the kernel-free widget's caption, holds ``label``, ``collapsed`` (percentage
    of runs absorbed or at a Dirac mass within `generations`), ``mean_T`` (their mean collapse
    time with its standard error, or "none"), ``sigma_end`` (mean sigma at the last generation
    with its standard error) and ``base_end`` (the same for unbiased fully synthetic).
    """
    fig, run = scheme_figure(scheme, n, K, temperature, top_p, generations, runs, seed, baseline=True)
    sig = run.result.sigma[:, -1]
    base = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "fully synthetic, T=1"][0].get_ydata()[-1]
    t, se = run.mean_time()  # run_scheme without until_collapse: every time is within the horizon
    mean_T = "none" if math.isnan(t) else (f"{t:.0f}" if math.isnan(se) else f"{t:.0f} ± {se:.0f}")
    info = {
        "label": run.label,
        "collapsed": f"{run.collapsed_fraction:.0%}",
        "mean_T": mean_T,
        "sigma_end": f"{sig.mean():.3f} ± {sig.std(ddof=1) / math.sqrt(sig.size):.3f}",
        "base_end": f"{float(base):.3f}",
    }
    return fig, info
