"""Tests of collapse_lib.functional (chapter 8: the linear softmax model with shared embeddings).

Monte Carlo checks compare a sample mean with its target within K_SE standard errors computed
from the same sample; seeds are fixed.
"""

import math

import numpy as np
import pytest

from collapse_lib import functional as fn
from collapse_lib import theory
from collapse_lib.distributions import dirichlet
from collapse_lib.simulate import FullySynthetic, PartiallySynthetic, RandomPool

K_SE = 4
C, S = 4, 3
P0 = dirichlet(S, 1.0, seed=5, size=C)


def _mean_se(x):
    x = np.asarray(x, dtype=float)
    return x.mean(), x.std(ddof=1) / math.sqrt(x.size)


def _freqs(seed, runs, n, p=P0):
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, p, size=(runs, p.shape[0])) / n


# ----------------------------------------------------------------------------- the fit
def test_newton_reaches_the_frequency_table_when_d_equals_c():
    """d = c, rank c, lam = 0: the MLE is the frequency table, zero counts included (limit)."""
    X = fn.gaussian_embeddings(C, C, seed=1)
    F = _freqs(2, 50, 5)
    assert np.any(F == 0)
    r = fn.fit(F, X, 0.0, method="newton")
    assert np.abs(r.P - F).max() < 1e-6
    assert np.array_equal(r.P == 0, F == 0)  # exact zeros where the counts are zero
    assert np.array_equal(fn.fit(F, X, 0.0).P, F)  # closed form
    r = fn.fit(F, fn.canonical_embeddings(C), 0.0, method="newton")
    assert np.abs(r.P - F).max() < 1e-6


def test_moment_matching_below_capacity():
    """lam = 0, d < c: X^T P = X^T F (eq. F2 with lam = 0), while P != F."""
    X = fn.gaussian_embeddings(8, 2, seed=3)
    F = _freqs(4, 30, 20, dirichlet(S, 1.0, seed=6, size=8))
    r = fn.fit(F, X, 0.0)
    mism = np.abs(np.einsum("jd,rjs->rds", X, F - r.P)).max()
    assert mism < 1e-5
    assert np.abs(r.P - F).max() > 0.05
    np.testing.assert_allclose(r.P.sum(axis=-1), 1.0, atol=1e-12)


def test_penalised_fit_stationarity_and_full_support():
    X = fn.gaussian_embeddings(6, 3, seed=7)
    F = _freqs(8, 20, 4, dirichlet(S, 1.0, seed=9, size=6))
    lam = 0.05
    r = fn.fit(F, X, lam)
    grad = -np.einsum("jd,rjs->rds", X, F - r.P) + lam * r.W
    assert np.abs(grad).max() < 1e-9
    assert np.all(r.P > 0)  # finite weights: every token keeps positive probability
    np.testing.assert_allclose(r.W.sum(axis=-1), 0.0, atol=1e-9)  # sum_k w_k = 0 at the optimum


@pytest.mark.parametrize("rep", range(20))
def test_warm_start_gives_the_same_fit(rep):
    """Both fits meet the documented tolerance, so they agree to far better than 1e-9 (20 tables)."""
    X = fn.gaussian_embeddings(6, 2, seed=1 + rep)
    F = _freqs(3 + rep, 10, 10, dirichlet(S, 1.0, seed=2 + rep, size=6))
    a = fn.fit(F, X, 0.1)
    b = fn.fit(F, X, 0.1, W0=a.W + 0.3)
    assert a.grad_max.max() <= 1e-10 and b.grad_max.max() <= 1e-10
    assert np.abs(a.P - b.P).max() < 1e-9


def test_a_token_without_data_is_not_forced_to_zero():
    """x = (1, -1), d = 1: no w has x_j w < 0 for both contexts, so the unseen token stays alive.

    The loss of every W is at least 2 log 3 there (issue 23); the MLE is the uniform table."""
    X = np.array([[1.0], [-1.0]])
    F = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    r = fn.fit(F, X)
    np.testing.assert_allclose(r.P, np.full((2, 3), 1 / 3), atol=1e-8)
    assert r.grad_max <= 1e-10


@pytest.mark.parametrize("d", [1, 2])
def test_one_token_everywhere_is_not_a_dirac_below_capacity(d):
    """Every context emits only token 0; with mixed-sign embeddings the MLE is not a Dirac table.

    It must satisfy moment matching X^T (F - P) = 0 with P strictly positive on some other token."""
    X = fn.gaussian_embeddings(6, d, seed=7)
    F = np.zeros((6, S))
    F[:, 0] = 1.0
    r = fn.fit(F, X)
    assert r.P[:, 0].max() < 1 - 1e-3  # not Dirac
    np.testing.assert_allclose(X.T @ (F - r.P), 0.0, atol=1e-8)


def test_leverages():
    X = fn.gaussian_embeddings(10, 3, seed=0)
    h = fn.leverages(X)
    assert abs(h.sum() - 3) < 1e-9 and np.all((h > 0) & (h < 1))
    np.testing.assert_allclose(fn.leverages(fn.gaussian_embeddings(5, 5, seed=1)), 1.0)


# ----------------------------------------------------------------------------- anchor: Theorem 1
@pytest.mark.parametrize("embed", ["canonical", "gaussian-newton"])
def test_d_equals_c_reproduces_theorem_1(embed):
    """S_m of every context (eq. 6) and the mean collapse time (exact chain of chapter 2)."""
    n, R, G = 6, 400, 12
    if embed == "canonical":
        X, method = fn.canonical_embeddings(C), "auto"
    else:
        X, method = fn.gaussian_embeddings(C, C, seed=11), "newton"
    res = fn.simulate_linear(P0, X, FullySynthetic(n), G, runs=R, seed=12, method=method, until_collapse=True)
    assert np.all(res.total_collapse >= 1) and np.all(res.context_collapse >= 1)
    for j in range(C):
        S0 = float(P0[j] @ P0[j])
        for m in (1, 3, 6, 12):
            mu, se = _mean_se(res.sigma[:, m, j])
            assert abs(mu - theory.fully_synthetic_S(m, n, S0)) <= K_SE * se, (j, m)
        mu, se = _mean_se(res.context_collapse[:, j])
        assert abs(mu - theory.exact_collapse_time(P0[j], n)) <= K_SE * se, j
    mu, se = _mean_se(res.total_collapse)  # total collapse: eq. (F3) from the exact chain
    assert abs(mu - fn.exact_total_collapse_time(P0, n)) <= K_SE * se
    # total collapse: all contexts collapsed by m, independent contexts: product of rho_m
    for m in (3, 12):
        rho = np.prod([theory.exact_collapse_probability(P0[j], n, m) for j in range(C)])
        frac = np.mean((res.total_collapse >= 1) & (res.total_collapse <= m))
        assert abs(frac - rho) <= K_SE * math.sqrt(rho * (1 - rho) / R) + 1e-12


def test_d_equals_c_partially_synthetic_theorem_2():
    N, n, R = 5, 10, 400
    res = fn.simulate_linear(P0, fn.canonical_embeddings(C), PartiallySynthetic(N, n), 6, runs=R, seed=3)
    for j in range(C):
        S0 = float(P0[j] @ P0[j])
        for m in (1, 2, 6):
            mu, se = _mean_se(res.sigma[:, m, j])
            assert abs(mu - theory.partially_synthetic_S(m, N, n, S0)) <= K_SE * se, (j, m)


# ----------------------------------------------------------------------------- below capacity
def test_moments_are_a_martingale_but_probabilities_are_not():
    c, d, n, R = 8, 2, 10, 300
    p0 = dirichlet(S, 1.0, seed=21, size=c)
    X = fn.gaussian_embeddings(c, d, seed=22)
    res = fn.simulate_linear(p0, X, FullySynthetic(n), 8, runs=R, seed=23)
    mom = np.einsum("jd,rmjs->rmds", X, res.history)  # X^T P^(m)
    target = X.T @ p0
    for m in (1, 4, 8):
        z = (mom[:, m].mean(axis=0) - target) / (mom[:, m].std(axis=0, ddof=1) / math.sqrt(R))
        assert np.abs(z).max() <= K_SE + 0.5, (m, np.abs(z).max())  # 6 moments: allow a little
    # E p^(1) != p^(0): the functional approximation error is a bias, far beyond the noise
    p1 = res.history[:, 1]
    z = (p1.mean(axis=0) - p0) / (p1.std(axis=0, ddof=1) / math.sqrt(R))
    assert np.abs(z).max() > 3 * K_SE


def test_noise_free_recursion():
    c, d = 8, 3
    p0 = dirichlet(S, 1.0, seed=31, size=c)
    X = fn.gaussian_embeddings(c, d, seed=32)
    it = fn.refit_noise_free(p0, X, 0.0, generations=3)  # lam = 0: idempotent after one step
    assert np.abs(it[1] - p0).max() > 0.05
    assert np.abs(it[2] - it[1]).max() < 1e-6 and np.abs(it[3] - it[1]).max() < 1e-6
    it = fn.refit_noise_free(p0, X, 0.2, generations=200)  # lam > 0: to the uniform table
    H = -(it * np.log(it)).sum(axis=-1).mean(axis=-1)
    assert np.all(np.diff(H[1:]) > -1e-12)
    assert abs(H[-1] - math.log(S)) < 1e-3


def test_d1_absorbing_states_are_separable():
    """d = 1: a collapsed table gives one token to every x_j > 0 and one to every x_j < 0."""
    c, n = 8, 5
    X = fn.gaussian_embeddings(c, 1, seed=41)
    pos = X[:, 0] > 0
    assert 0 < pos.sum() < c
    p0 = dirichlet(S, 1.0, seed=42, size=c)
    res = fn.simulate_linear(p0, X, FullySynthetic(n), 1, runs=20, seed=43, until_collapse=True, max_generations=5000)
    assert np.all(res.total_collapse >= 1)
    for r in range(20):
        assert np.all(res.final[r].max(axis=1) == 1.0)
        lab = res.final[r].argmax(axis=1)
        assert len(set(lab[pos])) == 1 and len(set(lab[~pos])) == 1
        assert lab[pos][0] != lab[~pos][0]  # exactly two tokens (one token everywhere is not a limit of the model)


def test_history_is_filled_when_every_run_is_absorbed_early():
    """All runs absorbed long before the last recorded generation: later tables are the absorbed ones."""
    res = fn.simulate_linear(P0, fn.canonical_embeddings(C), FullySynthetic(3), 200, runs=5, seed=61)
    assert np.all((res.total_collapse >= 1) & (res.total_collapse < 200))
    for r in range(5):
        T = res.total_collapse[r]
        np.testing.assert_array_equal(res.history[r, T:], np.broadcast_to(res.final[r], res.history[r, T:].shape))
    assert np.all(np.isfinite(res.entropy)) and np.all(res.seen[:, -1] == 1)


def test_exact_total_collapse_time():
    """(F3): one context is E[T]; c equal contexts is E[max of c i.i.d. T]; a Dirac row changes nothing."""
    assert abs(fn.exact_total_collapse_time(P0[:1], 6) - theory.exact_collapse_time(P0[0], 6)) < 1e-9
    rep = np.repeat(P0[:1], 3, axis=0)
    assert abs(fn.exact_total_collapse_time(rep, 6) - theory.expected_max_collapse_time(P0[0], 6, 3)) < 1e-7
    with_dirac = np.vstack([P0[:2], [1.0, 0.0, 0.0]])
    assert abs(fn.exact_total_collapse_time(with_dirac, 6) - fn.exact_total_collapse_time(P0[:2], 6)) < 1e-9
    assert fn.exact_total_collapse_time(P0, 1) == 1.0
    with pytest.raises(ValueError, match="n"):
        fn.exact_total_collapse_time(P0, 0)


def test_metastability_escapes_follow_eq_F4():
    """With a small penalty, escapes from collapsed samples are Bernoulli(q) with q from eq. (F4);
    without a penalty (canonical X, every labelling separable) a collapsed sample never escapes."""
    c, n = 6, 5
    p0 = dirichlet(S, 1.0, seed=71, size=c)
    X = fn.gaussian_embeddings(c, 2, seed=72)
    ms = fn.metastability(fn.simulate_linear(p0, X, FullySynthetic(n), 120, runs=40, lam=1e-3, seed=73), n)
    assert ms.visits.sum() > 100  # the check has power
    z = (ms.escapes.sum() - ms.predicted.sum()) / math.sqrt(ms.predicted_var.sum())
    assert abs(z) <= K_SE, z
    rate, se = ms.escape_rate()
    assert 0 < rate < 1 and se > 0
    frac, t_mean, t_se = ms.time_to_collapse()
    assert 0 < frac <= 1 and 1 <= t_mean <= 121
    ms0 = fn.metastability(fn.simulate_linear(p0, fn.canonical_embeddings(c), FullySynthetic(n), 60, runs=20,
                                              seed=74), n)
    assert ms0.escapes.sum() == 0 and ms0.predicted.sum() == 0 and ms0.visits.sum() > 0
    with pytest.raises(ValueError, match="run"):
        fn.metastability("not a run", n)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(X=np.ones((3, 2))), "X"),
        (dict(X=np.full((C, 2), np.nan)), "X"),
        (dict(lam=-1.0), "lam"),
        (dict(lam=float("nan")), "lam"),
        (dict(scenario=RandomPool(5)), "scenario"),
        (dict(generations=0), "generations"),
        (dict(runs=0), "runs"),
        (dict(p0=np.ones((C, S))), "p0"),
    ],
)
def test_bad_input_names_the_argument(kwargs, word):
    args = dict(p0=P0, X=fn.canonical_embeddings(C), scenario=FullySynthetic(5), generations=2, runs=2, lam=0.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        fn.simulate_linear(**args)


def test_bad_fit_input():
    X = fn.gaussian_embeddings(C, 2, seed=0)
    with pytest.raises(ValueError, match="F"):
        fn.fit(np.ones((2, C + 1, S)) / S, X)
    with pytest.raises(ValueError, match="method"):
        fn.fit(np.ones((C, S)) / S, X, method="bfgs")
    with pytest.raises(ValueError, match="W0"):
        fn.fit(np.ones((C, S)) / S, X, 0.1, W0=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="rank"):
        fn.fit(np.ones((C, S)) / S, np.ones((C, 2)), 0.0)
    with pytest.raises(ValueError, match="until_collapse"):
        fn.simulate_linear(P0, X, FullySynthetic(5), 2, lam=0.1, until_collapse=True)


def test_landing_moments_d1():
    """Proposition (landing moments), d = 1: A+ P(a = k) - A- P(b = k) = sum_j x_j p_jk."""
    c, n, R = 5, 2, 1000
    X = fn.gaussian_embeddings(c, 1, seed=51)
    pos = X[:, 0] > 0
    assert 0 < pos.sum() < c
    p0 = dirichlet(S, 1.0, seed=52, size=c)
    res = fn.simulate_linear(p0, X, FullySynthetic(n), 1, runs=R, seed=53, until_collapse=True, max_generations=5000)
    assert np.all(res.total_collapse >= 1)
    lab = res.final.argmax(axis=2)
    a, b = lab[:, np.argmax(pos)], lab[:, np.argmin(pos)]
    assert np.all(res.final.max(axis=2) == 1.0)
    assert np.all(a != b)  # absorbed tables use exactly two tokens (theorem), in all 1000 runs
    x = X[:, 0]
    lhs = np.array([x[pos].sum() * (a == k) + x[~pos].sum() * (b == k) for k in range(S)])
    mu, se = lhs.mean(axis=1), lhs.std(axis=1, ddof=1) / math.sqrt(R)
    assert np.all(np.abs(mu - x @ p0) <= K_SE * se), (mu, x @ p0, se)
    assert np.max(se) < 0.04  # power: the targets sum_j x_j p_jk are of order 0.1 to 1
