"""Tests of collapse_lib.icl (chapter 9: in-context learning under recursive training).

Monte Carlo checks compare a sample mean with its target within K_SE standard errors computed
from the same sample, at generations where the target differs clearly from its neighbours (the
checks bind); seeds are fixed. The population recursion is the limit of many pretraining tasks,
so the simulated loops use enough tasks and stop before finite-sample anisotropy (Proposition
prop-ch09-anisotropy of the chapter) becomes visible.
"""

import math

import numpy as np
import pytest

from collapse_lib import icl
from collapse_lib._validate import InvalidArgument

K_SE = 4
BASE = dict(d=4, N=16, sigma=0.5)


def _z(run, theory, name, gens):
    mu, se = run.mean_se(name)
    return np.abs((mu[gens] - getattr(theory, name)[gens]) / se[gens])


# ----------------------------------------------------------------------------- theory, exact
def test_real_data_gain_is_the_known_optimum():
    """Generation 1 (real data): Gamma* = N / (N + d + 1 + sigma^2) I (Zhang et al.; Wu et al.)."""
    for d, N, sigma in [(1, 3, 0.0), (5, 20, 0.5), (10, 7, 2.0)]:
        s = icl.ICLSetting(d=d, N=N, sigma=sigma)
        assert icl.recursion(s, 1).g[1] == pytest.approx(N / (N + d + 1 + sigma**2), rel=1e-14)
        real = icl.recursion(icl.ICLSetting(d=d, N=N, sigma=sigma, K=N + 1), 50)
        np.testing.assert_allclose(real.g[1:], 1 / s.a, rtol=1e-13)           # K = N + 1: no drift


def test_fully_synthetic_closes_on_the_effective_ridge():
    """K = 0: g_m = 1 / (b + u_{m-1}), u_m = u_{m-1}(b + u_{m-1}) (I6); rho_m = c_m = prod g."""
    for kw in [BASE, dict(d=2, N=50, sigma=1.0, writer_sigma=0.3)]:
        s = icl.ICLSetting(**kw)
        r, u = icl.recursion(s, 300), icl.effective_ridge(s, 300)
        np.testing.assert_allclose(r.g[2:], 1 / (s.b + u[1:-1]), rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(r.rho, r.c, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(r.c[1:], np.cumprod(r.g[1:]), rtol=1e-10, atol=1e-300)
        live = r.g[2:] > 0
        assert np.all(np.diff(r.g[2:])[live[1:]] < 0) and r.g[-1] < 1e-6    # total collapse
        assert r.risk[-1] == pytest.approx(s.sigma**2 + s.d, rel=1e-6)         # the null predictor
        assert np.all(u[2:] >= s.b * u[1:-1])                                  # at least geometric


def test_noise_free_writer_keeps_the_gain():
    """writer_sigma = 0: g_m = 1/b for m >= 2 while c_m shrinks by 1/b per generation."""
    s = icl.ICLSetting(d=3, N=10, sigma=0.5, writer_sigma=0.0)
    r = icl.recursion(s, 30)
    np.testing.assert_allclose(r.g[2:], 1 / s.b, rtol=1e-12)
    np.testing.assert_allclose(r.c[2:] / r.c[1:-1], 1 / s.b, rtol=1e-12)


def test_partial_overlap_mixes_like_the_paper():
    """rho_m = g_m (kappa + (1 - kappa) rho_{m-1}), kappa = K / (N + 1), and g_m stays above
    gain_lower_bound for K >= 2 (no total collapse), over a long horizon."""
    for d, N, sigma in [(4, 16, 0.5), (5, 20, 1.0), (1, 5, 2.0)]:
        for K in range(0, N + 2):
            s = icl.ICLSetting(d=d, N=N, sigma=sigma, K=K)
            r = icl.recursion(s, 400)
            kappa = K / (N + 1)
            np.testing.assert_allclose(r.rho[2:], r.g[2:] * (kappa + (1 - kappa) * r.rho[1:-1]), rtol=1e-12,
                                       atol=1e-300)
            assert np.all(r.c <= 1 + 1e-12) and np.all(r.rho**2 <= r.c * (1 + 1e-12))   # Cauchy-Schwarz
            if K >= 2:
                assert np.all(r.g[2:] >= icl.gain_lower_bound(s) * (1 - 1e-12))
                assert icl.gain_lower_bound(s) > 0
    assert icl.recursion(icl.ICLSetting(d=2, N=100, sigma=0.1, K=1), 2000).g[-1] > 0.5   # K = 1 may survive
    assert icl.recursion(icl.ICLSetting(d=5, N=20, sigma=0.5, K=1), 2000).g[-1] < 1e-9   # ... or collapse


# ----------------------------------------------------------------------------- theory vs Monte Carlo
def test_risk_formula_by_monte_carlo():
    """(I5) for a fixed, non-isotropic Gamma on 40 000 real prompts."""
    s = icl.ICLSetting(d=3, N=8, sigma=0.7)
    rng = np.random.default_rng(0)
    gamma = 0.6 * np.eye(3) + 0.2 * rng.standard_normal((3, 3))
    P = 40_000
    beta, X, xq = rng.standard_normal((P, 3)), rng.standard_normal((P, 8, 3)), rng.standard_normal((P, 3))
    Y = np.einsum("pnd,pd->pn", X, beta) + s.sigma * rng.standard_normal((P, 8))
    yq = np.einsum("pd,pd->p", xq, beta) + s.sigma * rng.standard_normal(P)
    h = np.einsum("pn,pnd->pd", Y, X) / 8
    err = (yq - np.einsum("pd,de,pe->p", xq, gamma, h)) ** 2
    assert abs(err.mean() - icl.real_risk(gamma, s)) <= K_SE * err.std(ddof=1) / math.sqrt(P)
    assert abs(err.mean() - icl.real_risk(np.eye(3), s)) > K_SE * err.std(ddof=1) / math.sqrt(P)  # binds


def test_fully_synthetic_loop_matches_the_recursion():
    """Closed-form fits, K = 0: g, rho, c within K_SE SE of (I4) at m = 1..5 (c falls by half)."""
    s = icl.ICLSetting(**BASE)
    run = icl.simulate(s, 5, tasks=5000, runs=6, seed=11)
    th = icl.recursion(s, 5)
    for name in ("g", "rho", "c"):
        assert _z(run, th, name, slice(1, 6)).max() <= K_SE, name
    assert th.c[5] < 0.35                                                       # it binds: c moved a lot
    wrong = icl.recursion(icl.ICLSetting(d=4, N=16, sigma=0.5, K=8), 5)        # another loop is rejected
    assert np.abs((run.mean_se("c")[0][5] - wrong.c[5]) / run.mean_se("c")[1][5]) > K_SE


def test_partially_synthetic_loop_matches_the_recursion():
    s = icl.ICLSetting(d=4, N=16, sigma=0.5, K=4)
    run = icl.simulate(s, 5, tasks=4000, runs=6, seed=12)
    th = icl.recursion(s, 5)
    for name in ("g", "rho", "c"):
        assert _z(run, th, name, slice(1, 6)).max() <= K_SE, name
    full = icl.recursion(icl.ICLSetting(**BASE), 5)
    assert np.abs((run.mean_se("rho")[0][5] - full.rho[5]) / run.mean_se("rho")[1][5]) > K_SE


def test_anisotropic_step_and_its_instability():
    """One generation on tasks with covariance diag(alpha): Gamma = diag(g_i) with
    g_i = alpha_i / ((1 + 1/N) alpha_i + tr(alpha)/N + sigma^2/N); larger alpha, larger gain."""
    d, N, sigma, T, R = 3, 10, 0.5, 6000, 6
    alpha = np.array([1.0, 0.3, 0.05])
    target = alpha / ((1 + 1 / N) * alpha + alpha.sum() / N + sigma**2 / N)
    rng = np.random.default_rng(13)
    diag = []
    for _ in range(R):
        beta = rng.standard_normal((T, d)) * np.sqrt(alpha)
        X = rng.standard_normal((T, N + 1, d))
        Y = np.einsum("tnd,td->tn", X, beta) + sigma * rng.standard_normal((T, N + 1))
        diag.append(np.diag(icl.fit_closed(X, Y)))
    diag = np.array(diag)
    z = np.abs(diag.mean(0) - target) / (diag.std(0, ddof=1) / math.sqrt(R))
    assert z.max() <= K_SE
    assert target[0] > target[1] > target[2]                    # the ratio alpha_i g_i / alpha_j g_j grows


# ----------------------------------------------------------------------------- trained model
def test_trained_attention_matches_the_closed_form():
    """A linear self-attention layer trained by gradient descent (torch) on real sequences: its
    Gamma is the least-squares Gamma up to its two extra terms, and its gain is within K_SE SE of
    N / (N + d + 1 + sigma^2) over seeds."""
    s = icl.ICLSetting(d=3, N=10, sigma=0.5)
    rng = np.random.default_rng(14)
    gains, paired = [], []
    for _ in range(4):
        T = 400
        beta = rng.standard_normal((T, 3))
        X = rng.standard_normal((T, 11, 3))
        Y = np.einsum("tnd,td->tn", X, beta) + 0.5 * rng.standard_normal((T, 11))
        fit = icl.fit_trained(X, Y, steps=200, lr=0.05, seed=rng)
        closed = icl.fit_closed(X, Y)
        gains.append(np.trace(fit.gamma) / 3)
        paired.append(np.abs(fit.gamma - closed).max())
    mu, se = np.mean(gains), np.std(gains, ddof=1) / 2
    assert abs(mu - 1 / s.a) <= K_SE * se and abs(mu - 1.0) > K_SE * se
    assert max(paired) < 0.02


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, name", [
    (lambda: icl.ICLSetting(d=0, N=5, sigma=1.0), "d"),
    (lambda: icl.ICLSetting(d=2, N=2.5, sigma=1.0), "N"),
    (lambda: icl.ICLSetting(d=2, N=5, sigma=-1.0), "sigma"),
    (lambda: icl.ICLSetting(d=2, N=5, sigma=1.0, K=7), "K"),
    (lambda: icl.ICLSetting(d=2, N=5, sigma=1.0, writer_sigma=float("nan")), "writer_sigma"),
    (lambda: icl.recursion(icl.ICLSetting(d=2, N=5, sigma=1.0), 0), "generations"),
    (lambda: icl.recursion((2, 5, 1.0), 3), "setting"),
    (lambda: icl.real_risk(np.eye(3), icl.ICLSetting(d=2, N=5, sigma=1.0)), "gamma"),
    (lambda: icl.simulate(icl.ICLSetting(d=2, N=5, sigma=1.0), 2, tasks=1), "tasks"),
    (lambda: icl.simulate(icl.ICLSetting(d=2, N=5, sigma=1.0), 2, tasks=10, fit="adam"), "fit"),
    (lambda: icl.fit_closed(np.zeros((4, 3, 2)), np.zeros((4, 2))), "Y"),
    (lambda: icl.fit_trained(np.zeros((4, 3, 2)), np.zeros((4, 3)), steps=0), "steps"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(InvalidArgument) as info:
        call()
    assert name in str(info.value)


def test_widget_figure_numbers_and_refusal():
    import matplotlib

    matplotlib.use("Agg")
    from collapse_lib.widgets.icl import icl_figure

    fig, numbers = icl_figure(N=20, K=0, sigma=0.5, d=5, generations=40)
    r = icl.recursion(icl.ICLSetting(d=5, N=20, sigma=0.5), 40)
    assert numbers["risk_1"] == pytest.approx(r.risk[1]) and numbers["risk_last"] == pytest.approx(5.25, rel=1e-6)
    assert numbers["collapse"] == int(np.argmax(r.g[1:] < 0.5)) + 1
    assert icl_figure(N=20, K=8)[1]["collapse"] == "none"
    with pytest.raises(ValueError, match="K"):
        icl_figure(N=10, K=12)
