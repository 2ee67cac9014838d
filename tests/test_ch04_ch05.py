"""Tests of collapse_lib.widgets.partially_synthetic (Chapters 4 and 5)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from collapse_lib import distributions as dist  # noqa: E402
from collapse_lib import theory  # noqa: E402
from collapse_lib.simulate import PartiallySynthetic, simulate  # noqa: E402
from collapse_lib.widgets import partially_synthetic as ps  # noqa: E402

P52 = dist.zipf(600, 52, 0.1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- drift moments
def test_drift_variance_zero_at_first_generation_and_increasing():
    q = np.array([0.5, 0.3, 0.2, 0.0])
    assert np.all(ps.drift_variance(q, 10, 5, 1) == 0)
    v = [ps.drift_variance(q, 10, 5, m) for m in (2, 3, 10, 1000)]
    assert all(np.all(a <= b + 1e-18) for a, b in zip(v, v[1:]))
    assert v[-1][3] == 0  # a token absent from the real data never moves


def test_drift_variance_sums_to_theorem2_increment():
    """Averaged over q = p^(1), sum_i E[d_i^2 | q] must equal S_m - S_1 (Remark in Chapter 4)."""
    N, n, m = 7, 30, 4
    p = np.array([0.4, 0.35, 0.25])
    # exact average over the trinomial law of N q
    total = 0.0
    for a in range(N + 1):
        for b in range(N + 1 - a):
            c = N - a - b
            q = np.array([a, b, c]) / N
            w = math.factorial(N) / (math.factorial(a) * math.factorial(b) * math.factorial(c)) * np.prod(p ** [a, b, c])
            total += w * ps.drift_variance(q, N, n, m).sum()
    S0 = float(p @ p)
    expected = theory.partially_synthetic_S(m, N, n, S0) - theory.partially_synthetic_S(1, N, n, S0)
    assert total == pytest.approx(expected, rel=1e-12)


def test_drift_variance_matches_simulation():
    """Conditional second moment against chains run from one fixed real sample."""
    rng = np.random.default_rng(1)
    real = np.array([5, 3, 2, 0])
    N, n, m, R = 10, 8, 4, 20000
    q = real / N
    P = np.broadcast_to(q, (R, 4)).copy()
    for _ in range(2, m + 1):
        P = (real + rng.multinomial(n, P)) / (N + n)
    sq = (P - q) ** 2
    mean, se = sq.mean(axis=0), sq.std(axis=0, ddof=1) / math.sqrt(R)
    th = ps.drift_variance(q, N, n, m)
    assert np.all(np.abs(mean - th) <= 5 * se + 1e-15)


def test_mean_binomial_sd_exact_small_case():
    # N = 2, p = (1/2, 1/2): q_1 in {0, 1/2, 1} w.p. 1/4, 1/2, 1/4; sum_i sqrt(q_i(1-q_i)) = 1 at q = (1/2, 1/2)
    assert ps.mean_binomial_sd(np.array([0.5, 0.5]), 2) == pytest.approx(0.5)
    assert ps.mean_binomial_sd(np.array([1.0, 0.0]), 5) == 0.0


def test_drift_bound_is_above_simulated_drift():
    N, n = 100, 30
    res = simulate(P52, PartiallySynthetic(N, n), 15, 300, seed=2)
    mean, se = res.mean_se("drift_first")
    m = np.arange(1, 16)
    bound = ps.drift_l1_bound(P52, N, n, m)
    assert np.all(mean[1:] <= bound + 5 * se[1:])
    gauss = ps.drift_l1_gaussian(P52, N, n, 15)
    assert gauss == pytest.approx(math.sqrt(2 / math.pi) * float(bound[-1]))
    assert abs(mean[15] - gauss) < 0.1 * gauss  # the heuristic is within 10% here (n >= 30)


def test_safe_synthetic_samples_is_the_threshold():
    N = 100
    for eps in (0.05, 0.1, 0.2):
        for heuristic in (False, True):
            n_max = ps.safe_synthetic_samples(P52, N, eps, heuristic=heuristic)
            f = ps.drift_l1_gaussian if heuristic else ps.drift_l1_bound
            if n_max >= 1:
                assert f(P52, N, int(n_max), 10**9) <= eps * (1 + 1e-9)
            assert f(P52, N, int(n_max) + 1, 10**9) > eps
    assert ps.safe_synthetic_samples(P52, N, 0.5) == math.inf  # drift saturates below 0.5


def test_l1_tail_exact_small_cases():
    # p = (1/2, 1/2), n = 2: ||p_hat - p||_1 is 0 or 1 with probability 1/2 each
    t = ps.l1_tail_exact(np.array([0.5, 0.5]), 2, [0.0, 0.5, 1.0, 1.01])
    assert np.allclose(t, [1.0, 0.5, 0.5, 0.0])
    # a Dirac p never deviates
    assert ps.l1_tail_exact(np.array([0.0, 1.0, 0.0]), 5, 1e-9) == 0.0


def test_l1_tail_exact_against_monte_carlo():
    p = np.array([0.5, 0.3, 0.2])
    n, R = 12, 200_000
    rng = np.random.default_rng(3)
    dev = np.abs(rng.multinomial(n, p, size=R) / n - p).sum(axis=1)
    for eps in (0.2, 0.5, 0.8):
        mc = float((dev >= eps - 1e-12).mean())
        se = math.sqrt(mc * (1 - mc) / R)
        assert abs(mc - ps.l1_tail_exact(p, n, eps)) < 5 * se + 1e-12


# ----------------------------------------------------------------------------- figures / widget
def test_explore_partially_synthetic_default_figure_and_numbers():
    fig, num = ps.explore_partially_synthetic(runs=50, generations=20)
    assert len(fig.axes) == 2
    assert num["m"].shape == (21,) and num["S_sim"].shape == (21,)
    assert np.isnan(num["S_printed"][1]) and not np.isnan(num["S_printed"][2])
    # simulated mean of sigma_m agrees with Theorem 2 (corrected) within 5 SE at the last generation
    assert abs(num["S_sim"][-1] - num["S_theory"][-1]) < 5 * num["S_se"][-1]
    assert num["drift_sim"][1] == 0.0
    assert np.all(num["drift_sim"][2:] <= num["drift_bound"][2:] + 5 * num["drift_se"][2:])


def test_explore_shows_erratum_when_real_data_scarce():
    _, num = ps.explore_partially_synthetic(N=3, n=200, S0=0.5, runs=20, generations=5)
    assert np.all(num["S_theory"][2:] > num["S_printed"][2:])


def test_panel_grid_and_distributions_panel_shapes():
    ns = (2, 20, 200)
    res = [simulate(P52, PartiallySynthetic(50, n), 5, 10, seed=j) for j, n in enumerate(ns)]
    fig = ps.panel_grid(res, "sigma", [f"n = {n}" for n in ns])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 4 and len(visible) == 3  # 2 x 2 grid, the fourth panel hidden
    fig = ps.panel_grid(res, "drift", [f"n = {n}" for n in ns], ps=[P52] * 3, ncols=3)
    assert len(fig.axes) == 3 and fig.axes[0].get_ylim()[0] == 0
    assert fig.get_size_inches()[0] <= 8.0 + 1e-9  # never wider than the column
    dists = [("a", dist.zipf(600, 52, 0.1)), ("b", dist.zipf(600, 10, 0.4))]
    fig = ps.distributions_panel(dists)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2


def test_panel_grid_rejects_bad_input():
    res = [simulate(P52, PartiallySynthetic(50, 5), 3, 4, seed=0)]
    with pytest.raises(ValueError, match="kind"):
        ps.panel_grid(res, "entropy", ["a"])
    with pytest.raises(ValueError, match="title"):
        ps.panel_grid(res, "sigma", ["a", "b"])
    with pytest.raises(ValueError, match="ps"):
        ps.panel_grid(res, "drift", ["a"])
    with pytest.raises(ValueError, match="ncols"):
        ps.panel_grid(res, "sigma", ["a"], ncols=0)
    with pytest.raises(ValueError, match="PartiallySynthetic"):
        ps.draw_sigma(plt.gca(), "not a result")
    with pytest.raises(ValueError):
        ps.distributions_panel([])


def test_explore_drift_numbers_and_bound():
    fig, num = ps.explore_drift(N=100, n=30, generations=30, runs=60)
    assert len(fig.axes) == 1
    # the rigorous bound holds and is sharp (n >= 10), the Gaussian predictor close (n >= 30)
    assert num["drift_end"] <= num["bound_end"] + 4 * num["drift_end_se"]
    assert num["bound_ratio"] < 1.6
    assert abs(num["gauss_end"] / num["drift_end"] - 1) < 0.05 + 4 * num["drift_end_se"] / num["drift_end"]
    assert num["thm3"] > 2 and "times the measured drift" in num["thm3_text"]
    _, small = ps.explore_drift(N=100, n=1, generations=5, runs=5, s=2, support=2, S0=0.5)
    assert small["thm3"] < 2 and "drawn" in small["thm3_text"]  # two letters: Theorem 3 is informative


@pytest.mark.parametrize("kwargs", [dict(N=0), dict(n=1.5), dict(runs=1), dict(generations=1), dict(support=700),
                                    dict(S0=1.0)])
def test_explore_drift_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        ps.explore_drift(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(N=0),
        dict(n=0),
        dict(n=2.5),
        dict(N=True),
        dict(S0=1.0),
        dict(S0=0.01),  # below 1/support = 1/52
        dict(S0=float("nan")),
        dict(runs=1),
        dict(generations=1),
        dict(support=700),
        dict(s=1),
    ],
)
def test_explore_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        ps.explore_partially_synthetic(**kwargs)


def test_helpers_reject_bad_input():
    q = np.array([0.5, 0.5])
    with pytest.raises(ValueError):
        ps.drift_variance(np.array([0.5, 0.6]), 10, 5, 2)  # not a distribution
    with pytest.raises(ValueError):
        ps.drift_variance(q, 10, 5, 0)
    with pytest.raises(ValueError):
        ps.drift_variance(q, 10, 5, [2, 3])
    with pytest.raises(ValueError):
        ps.drift_l1_bound(q, 0, 5, 2)
    with pytest.raises(ValueError):
        ps.drift_l1_bound(q, 10, 5, 1.5)
    with pytest.raises(ValueError):
        ps.safe_synthetic_samples(q, 10, 0.0)
    with pytest.raises(ValueError):
        ps.mean_binomial_sd(np.array([-0.1, 1.1]), 10)
    with pytest.raises(ValueError):
        ps.l1_tail_exact(np.ones(10) / 10, 200, 0.1)  # too many count vectors


def test_stationary_drift_matches_predictor_and_rejects_bad_input():
    d, d_se, res = ps.stationary_drift(P52, 100, 100, runs=50, window=10, seed=4)
    assert res.drift_first.shape[0] == 50 and d_se > 0
    assert abs(d - ps.drift_l1_gaussian(P52, 100, 100, 10**9)) < 0.1 * d  # Gaussian predictor within 10%
    with pytest.raises(ValueError):
        ps.stationary_drift(P52, 100, 0)
    with pytest.raises(ValueError):
        ps.stationary_drift(P52, 100, 10, runs=1)


# ----------------------------------------------------------------------------- Lemma 1 and Theorem 3 (issue 15)
@pytest.mark.parametrize("s,n", [(60, 10), (200, 40), (600, 100)])
def test_lemma1_large_vocabulary_regime_as_printed_is_false(s, n):
    """Uniform p on s letters, n < s samples: ||p_hat - p||_1 >= 2 (1 - n/s) surely (at most n letters
    charged), while the printed Lemma 1 in its large-vocabulary regime (s >= C0 n/e + 2: the first case
    of eq. (10), the second of eq. (13)) bounds that probability below 0.1."""
    assert s >= theory.C0 * n / math.e + 2
    eps = 2 * (1 - n / s)
    assert theory.lemma1_bound(n, s, eps, 0.5) < 0.1
    rng = np.random.default_rng(s + n)
    l1 = np.abs(rng.multinomial(n, np.full(s, 1 / s), size=500) / n - 1 / s).sum(axis=1)
    assert np.all(l1 >= eps - 1e-12)


def test_theorem3_follows_from_the_second_moment_bound():
    """G_n(s) >= sqrt(2 (s-1) / pi) everywhere, so sqrt(n (s-1)) / N (course bound) <= Theorem 3."""
    for n in range(1, 150, 7):
        for s in range(2, 700, 13):
            assert theory.lemma1_G(n, s) >= math.sqrt(2 * (s - 1) / math.pi), (n, s)
    for N, n in [(100, 10), (1000, 1), (50, 500)]:
        stationary = ps.drift_l1_bound(P52, N, n, 10**9)
        assert stationary < math.sqrt(n * (52 - 1)) / N <= theory.deviation_bound(N, n, 600)


def test_theorem3_binds_on_two_letters():
    """Where Theorem 3 is informative (s = 2: G = 2), it holds and is within a factor 15 of the drift."""
    p = np.array([0.5, 0.5])
    for n in (1, 10, 100):
        d, d_se, _ = ps.stationary_drift(p, 100, n, seed=[8, n])
        b3 = theory.deviation_bound(100, n, 2)
        assert d + 4 * d_se < b3 < 2
        assert b3 / d < 15
