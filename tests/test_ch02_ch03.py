"""Tests of the plain functions behind Chapters 2 and 3 (collapse_lib.widgets.fully_synthetic)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from collapse_lib import theory
from collapse_lib.widgets.fully_synthetic import (
    FIGURE2_NS,
    FIGURE2_SPECS,
    collapse_time_sweep,
    explore_fully_synthetic,
    figure2_distributions,
)

K_SE = 4


@pytest.fixture(scope="module")
def explored():
    fig, numbers = explore_fully_synthetic(n=8, S0=0.4, support=5, runs=4000, seed=1)
    yield fig, numbers
    plt.close(fig)


def test_explore_returns_figure_with_two_panels(explored):
    fig, numbers = explored
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    assert numbers["m"].shape == (3 * 8 + 1,)
    assert numbers["T"].shape == (4000,)
    assert np.all(numbers["T"] >= 1)


def test_explore_S_matches_eq6_within_se(explored):
    _, numbers = explored
    m = numbers["m"]
    assert np.allclose(numbers["S_theory"], 1 - (1 - 1 / 8) ** m * (1 - 0.4))
    assert numbers["S_sim"][0] == pytest.approx(0.4, abs=1e-12)  # p^(0) is not random
    z = (numbers["S_sim"][1:] - numbers["S_theory"][1:]) / numbers["S_se"][1:]
    # the 24 generations are strongly correlated; a single K_SE band is the honest test
    assert np.max(np.abs(z)) <= K_SE, np.max(np.abs(z))


def test_explore_collapse_time_numbers(explored):
    _, numbers = explored
    lo, hi = theory.collapse_time_bounds(8, 0.4, 5)
    assert numbers["T_lower"] == pytest.approx(lo) and numbers["T_upper"] == pytest.approx(hi)
    assert numbers["T_mean"] == pytest.approx(numbers["T"].mean())
    assert lo - K_SE * numbers["T_se"] <= numbers["T_mean"] <= hi + K_SE * numbers["T_se"]
    exact = theory.exact_collapse_time(numbers["p"], 8)
    assert abs(numbers["T_mean"] - exact) <= K_SE * numbers["T_se"], (numbers["T_mean"], exact)
    assert numbers["T_diffusion"] == pytest.approx(theory.diffusion_collapse_time(numbers["p"], 8))


def test_explore_n_equal_one_collapses_at_once():
    fig, numbers = explore_fully_synthetic(n=1, S0=0.5, support=2, runs=50, seed=0)
    plt.close(fig)
    assert np.all(numbers["T"] == 1)
    assert numbers["T_lower"] == numbers["T_upper"] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0),
        dict(n=2.5),
        dict(n=True),
        dict(support=1),
        dict(S0=0.05, support=10),  # below 1/support
        dict(S0=1.0),
        dict(S0=float("nan")),
        dict(runs=1),
    ],
)
def test_explore_bad_inputs_raise(kwargs):
    with pytest.raises(ValueError):
        explore_fully_synthetic(**kwargs)


def test_figure2_distributions_match_specs():
    dists = figure2_distributions()
    assert len(dists) == len(FIGURE2_SPECS)
    for (label, p), (support, S0) in zip(dists, FIGURE2_SPECS):
        assert p.shape == (600,)
        assert np.count_nonzero(p) == support
        assert float(p @ p) == pytest.approx(S0, abs=1e-9)
        assert str(support) in label
    assert FIGURE2_NS == (10, 50, 100, 150, 200, 250, 300, 350, 400)


def test_figure2_distributions_bad_input():
    with pytest.raises(ValueError):
        figure2_distributions(s=1)
    with pytest.raises(ValueError):
        figure2_distributions(specs=())
    with pytest.raises(ValueError):
        figure2_distributions(s=50, specs=((100, 0.1),))  # support larger than s


def test_sweep_shapes_determinism_and_exact_values():
    p = np.array([0.5, 0.3, 0.2])
    sw = collapse_time_sweep([p], ns=[2, 5], runs=3000, seed=3)
    assert sw.times.shape == (1, 2, 3000) and sw.runs == 3000
    assert np.array_equal(sw.ns, [2, 5])
    again = collapse_time_sweep([p], ns=[2, 5], runs=3000, seed=3)
    assert np.array_equal(sw.times, again.times)
    for j, n in enumerate([2, 5]):
        exact = theory.exact_collapse_time(p, n)
        assert abs(sw.mean[0, j] - exact) <= K_SE * sw.se[0, j], (n, sw.mean[0, j], exact)
    # n = 2: E[T] = 1 + 2 (1 - S0) exactly
    assert theory.exact_collapse_time(p, 2) == pytest.approx(1 + 2 * (1 - p @ p))


@pytest.mark.parametrize(
    "args",
    [
        dict(ps=[], ns=[5]),
        dict(ps=[np.array([0.5, 0.5])], ns=[]),
        dict(ps=[np.array([0.5, 0.6])], ns=[5]),  # not a distribution
        dict(ps=[np.array([0.5, 0.5])], ns=[0]),
        dict(ps=[np.array([0.5, 0.5])], ns=[5], runs=1),
    ],
)
def test_sweep_bad_inputs_raise(args):
    with pytest.raises(ValueError):
        collapse_time_sweep(**args)


def test_sweep_refuses_runs_that_did_not_collapse():
    with pytest.raises(ValueError, match="did not collapse"):
        collapse_time_sweep([np.full(10, 0.1)], ns=[200], runs=5, seed=0, max_generations=3)


# --- Chapter 3 widget: the diffusion against n and S0 (collapse_lib.widgets.wright_fisher)

from collapse_lib import distributions as dist  # noqa: E402
from collapse_lib.widgets.wright_fisher import WIDGET_NS, explore_diffusion  # noqa: E402


@pytest.fixture(scope="module")
def diffusion_frame():
    fig, numbers = explore_diffusion(n=5, S0=0.3, support=4, runs=4000, seed=2)
    yield fig, numbers
    plt.close(fig)


def test_explore_diffusion_numbers_are_the_chapter_formulas(diffusion_frame):
    fig, numbers = diffusion_frame
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    p = dist.zipf(4, 4, 0.3)
    assert np.allclose(numbers["p"], p)
    assert numbers["T_diffusion"] == pytest.approx(theory.diffusion_collapse_time(p, 5))
    assert numbers["T_lower"] == pytest.approx(theory.collapse_time_bounds(5, 0.3, 4)[0])
    # the corollary's sandwich 2n(1 - S0) <= t(p) <= 2n(1 - S0/2)
    assert numbers["sandwich_lo"] == pytest.approx(7.0) and numbers["sandwich_hi"] == pytest.approx(8.5)
    assert numbers["sandwich_lo"] <= numbers["T_diffusion"] <= numbers["sandwich_hi"]
    assert numbers["rel_error"] == pytest.approx((numbers["T_diffusion"] - numbers["T_mean"]) / numbers["T_mean"])


def test_explore_diffusion_simulation_matches_the_exact_chain(diffusion_frame):
    _, numbers = diffusion_frame
    exact = theory.exact_collapse_time(numbers["p"], 5)
    assert abs(numbers["T_mean"] - exact) <= K_SE * numbers["T_se"], (numbers["T_mean"], exact, numbers["T_se"])
    # at n = 5 the diffusion's bias is resolved by 4000 runs: the widget shows a real gap, not noise
    assert numbers["z"] > K_SE


def test_explore_diffusion_right_panel_covers_the_sample_sizes(diffusion_frame):
    fig, _ = diffusion_frame
    right = fig.axes[1]
    xs = set()
    for container in right.containers:  # the errorbar of the simulated means
        xs |= set(np.asarray(container.lines[0].get_xdata(), dtype=int).tolist())
    assert set(WIDGET_NS) | {5} <= xs


@pytest.mark.parametrize("kwargs, word", [
    (dict(n=0), "n"), (dict(n=2.5), "n"), (dict(support=1), "support"),
    (dict(S0=0.05, support=10), "S0"), (dict(S0=1.0), "S0"), (dict(S0=float("nan")), "S0"), (dict(runs=1), "runs"),
])
def test_explore_diffusion_bad_inputs_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        explore_diffusion(**kwargs)
