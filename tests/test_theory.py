"""Tests of collapse_lib.theory: every closed form against simulation or exact values.

Monte Carlo comparisons use |mean - theory| <= K_SE * SE, SE computed from the sample.
"""

import math

import numpy as np
import pytest

from collapse_lib import distributions as D
from collapse_lib import simulate as S
from collapse_lib import theory as T

K_SE = 5  # tolerance in Monte Carlo standard errors


def _mean_se(x, axis=0):
    x = np.asarray(x, dtype=float)
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])


def _assert_mc(mean, se, target, k=K_SE):
    mean, se, target = np.broadcast_arrays(np.asarray(mean, float), np.asarray(se, float), np.asarray(target, float))
    tol = k * se + 1e-12
    bad = np.abs(mean - target) > tol
    assert not bad.any(), f"mean {mean[bad]} vs theory {target[bad]} (tolerance {tol[bad]})"


# ----------------------------------------------------------------------------- Theorem 1
@pytest.mark.parametrize(
    "p,n",
    [
        (D.uniform(10), 2),  # S0 = 1/support exactly, tiny n
        (D.zipf(50, 50, 1 / 50 + 1e-6), 50),  # S0 near 1/support
        (D.zipf(20, 5, 0.95), 10),  # S0 near 1
        (D.zipf(600, 52, 0.1), 400),  # paper's Fig. 2 distribution, n >> support
    ],
)
def test_theorem1_S_matches_simulation(p, n):
    S0 = float(np.sum(p**2))
    # generations where a fair number of the 3000 runs has not collapsed (else the SE is 0)
    ms = np.array([m for m in (1, 2, 5, 20) if (1 - 1 / n) ** m * (1 - S0) * 3000 > 30])
    r = S.simulate(p, S.FullySynthetic(n), 20, runs=3000, seed=10)
    mean, se = _mean_se(r.sigma[:, ms])
    _assert_mc(mean, se, T.fully_synthetic_S(ms, n, S0))
    assert T.fully_synthetic_S(0, n, S0) == pytest.approx(S0)


CHAIN_CASES = [(np.array([0.5, 0.3, 0.2]), 2), (np.array([0.5, 0.3, 0.2]), 10), (np.array([0.9, 0.1]), 20), (D.zipf(4, 4, 0.3), 8)]


@pytest.mark.parametrize("p,n", CHAIN_CASES)
def test_theorem1_bounds_hold_for_exact_values(p, n):
    S0, sup = float(np.sum(p**2)), int(np.count_nonzero(p))
    ms = np.arange(1, 80)
    rho = T.exact_collapse_probability(p, n, ms)
    lo, hi = T.collapse_probability_bounds(ms, n, S0, sup)
    assert np.all(lo <= rho + 1e-12) and np.all(rho <= hi + 1e-12)
    assert np.all(np.diff(rho) >= -1e-12)  # Dirac masses are absorbing
    ET = T.exact_collapse_time(p, n)
    tlo, thi = T.collapse_time_bounds(n, S0, sup)
    assert tlo <= ET <= thi
    # E[T] = sum_{k>=0} P(T > k) = 1 + sum_{k>=1} (1 - rho_k): consistency of the two exact routines
    tail = 1 + np.sum(1 - T.exact_collapse_probability(p, n, np.arange(1, 4000)))
    assert tail == pytest.approx(ET, rel=1e-9)


def test_exact_chain_two_tokens_by_hand():
    # p = (1/2, 1/2), n = 2: every generation is Dirac with probability 1/2
    p = np.array([0.5, 0.5])
    assert T.exact_collapse_time(p, 2) == pytest.approx(2.0)
    np.testing.assert_allclose(T.exact_collapse_probability(p, 2, [1, 2, 3]), [0.5, 0.75, 0.875])
    assert T.exact_collapse_time(p, 1) == 1.0
    assert T.exact_collapse_time(np.array([0.0, 1.0, 0.0]), 5) == 1.0


@pytest.mark.parametrize("p,n", CHAIN_CASES[1:3] + [(np.array([0.5, 0.5]), 40), (np.array([0.6, 0.3, 0.1]), 60)])
def test_exact_chain_matches_simulation(p, n):
    # n = 10, 20: the compiled kernel draws parents (many survivors relative to n);
    # n = 40, 60: it uses the chain of binomials (few survivors): both paths are checked
    r = S.simulate(p, S.FullySynthetic(n), 0, runs=4000, seed=3, until_collapse=True)
    mean, se = _mean_se(r.collapse_time)
    _assert_mc(mean, se, T.exact_collapse_time(p, n))
    # generations where both outcomes are frequent among the 4000 runs (else the SE is ~0)
    grid = np.array([1, 3, 10, 30, 60, 100])
    rho = T.exact_collapse_probability(p, n, grid)
    ms = grid[(rho * 4000 > 30) & ((1 - rho) * 4000 > 30)]
    assert ms.size >= 2
    hits = (r.collapse_time[:, None] <= ms[None, :]).astype(float)
    mean, se = _mean_se(hits)
    _assert_mc(mean, se, T.exact_collapse_probability(p, n, ms))


def test_proposition1_fixation_probabilities():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    r = S.simulate(p, S.FullySynthetic(5), 0, runs=4000, seed=8, until_collapse=True)
    freq, se = _mean_se(r.winner[:, None] == np.arange(4)[None, :])
    _assert_mc(freq, np.sqrt(p * (1 - p) / 4000), T.fixation_probabilities(p))
    assert freq[3] == 0


def test_diffusion_time_close_to_exact_and_simulation():
    # measured: the diffusion formula overestimates by ~1-2 generations (relative error ~ 1/n)
    p = np.array([0.5, 0.3, 0.2])
    for n in (10, 20, 40):
        ex = T.exact_collapse_time(p, n)
        for form in ("formula", "average"):
            d = T.diffusion_collapse_time(p, n, first_draw=form)
            assert 0 < d - ex < 2.0
    # two alleles: -2n [x ln x + (1-x) ln(1-x)]
    x, n = 0.3, 50
    assert T.diffusion_collapse_time(np.array([x, 1 - x]), n) == pytest.approx(
        -2 * n * (x * math.log(x) + (1 - x) * math.log(1 - x))
    )
    # large case out of reach of the exact chain: diffusion vs simulation within 5 %
    q = D.zipf(600, 52, 0.1)
    r = S.simulate(q, S.FullySynthetic(100), 0, runs=400, seed=1, until_collapse=True)
    mean, se = _mean_se(r.collapse_time)
    assert abs(T.diffusion_collapse_time(q, 100) - mean) < 0.05 * mean + K_SE * se
    lo, hi = T.collapse_time_bounds(100, 0.1, 52)
    assert lo < mean < hi


# ----------------------------------------------------------------------------- Theorem 2
@pytest.mark.parametrize("N,n", [(100, 5), (50, 50), (2, 100), (5, 500), (1, 1), (1000, 3)])
def test_theorem2_closed_form_equals_recursion(N, n):
    ms = np.arange(1, 15)
    for S0 in (0.02, 0.3, 0.95):
        rec = T.partially_synthetic_S_recursion(ms, N, n, S0)
        np.testing.assert_allclose(T.partially_synthetic_S(ms, N, n, S0), rec, rtol=0, atol=1e-13)
        # the printed form differs by -2(1-1/N) S0 alpha beta^(m-1)/(N D)
        alpha, beta = T.partially_synthetic_alpha_beta(N, n)
        gap = -2 * (1 - 1 / N) * S0 * alpha * beta ** (ms - 1) / (N * (1 + (1 + 1 / N) * alpha))
        np.testing.assert_allclose(T.partially_synthetic_S_printed(ms, N, n, S0) - rec, gap, atol=1e-13)
    assert T.partially_synthetic_S_recursion(0, N, n, 0.3) == pytest.approx(0.3)
    assert T.partially_synthetic_S(1, N, n, 0.3) == pytest.approx(1 / N + (1 - 1 / N) * 0.3)
    alpha, beta = T.partially_synthetic_alpha_beta(N, n)
    assert beta == pytest.approx(alpha**2 * (1 - 1 / n))


PARTIAL_CASES = [
    (100, 5, D.zipf(600, 52, 0.1)),  # n << N
    (50, 50, D.uniform(50)),  # n ~ N, S0 = 1/support
    (2, 100, D.zipf(20, 3, 0.95)),  # n >> N, S0 near 1
    (5, 200, D.zipf(600, 52, 0.1)),  # n >> N
]


@pytest.mark.parametrize("N,n,p", PARTIAL_CASES)
def test_theorem2_corrected_matches_simulation(N, n, p):
    S0 = float(np.sum(p**2))
    ms = np.array([1, 2, 3, 5])
    r = S.simulate(p, S.PartiallySynthetic(N, n), 5, runs=4000, seed=21)
    mean, se = _mean_se(r.sigma[:, ms])
    _assert_mc(mean, se, T.partially_synthetic_S(ms, N, n, S0))
    if N <= 5:  # n >> N: the printed eq. (9) is rejected at the same K_SE level
        printed = T.partially_synthetic_S_printed(ms[1:], N, n, S0)
        assert np.all(np.abs(mean[1:] - printed) > K_SE * se[1:])


def test_theorem2_schedule_reproduces_partially_synthetic():
    N, n, p = 5, 20, D.zipf(30, 10, 0.2)
    sc = S.Schedule(lambda m: [N] if m == 1 else [N] + [0] * (m - 2) + [n])
    r = S.simulate(p, sc, 4, runs=4000, seed=2)
    mean, se = _mean_se(r.sigma[:, 1:])
    _assert_mc(mean, se, T.partially_synthetic_S(np.arange(1, 5), N, n, 0.2))


def test_accumulate_S_matches_simulation():
    p = D.zipf(50, 20, 0.2)
    ms = np.array([1, 2, 5, 30])
    r = S.simulate(p, S.Accumulate(5), 30, runs=4000, seed=1)
    mean, se = _mean_se(r.sigma[:, ms])
    _assert_mc(mean, se, T.accumulate_S(ms, 5, 0.2))
    lim = T.accumulate_S(np.inf, 5, 0.2)
    assert lim == pytest.approx(1 - 0.8 * math.sin(math.pi / math.sqrt(5)) / (math.pi / math.sqrt(5)))
    assert T.accumulate_S(5000, 5, 0.2) == pytest.approx(lim, abs=1e-4)


# ----------------------------------------------------------------------------- Lemma 1, Theorems 3-4
def test_phi_properties():
    x = np.linspace(1e-4, 0.5, 2001)
    f = T.phi(x)
    assert np.all(np.diff(f) < 0) and T.phi(0.5) == 2.0 and T.phi(0.0) == np.inf
    assert T.phi(0.5 - 1e-7) == pytest.approx(2.0, abs=1e-9)
    assert T.phi(0.25) == pytest.approx(math.log(3) / 0.5)
    # x -> phi(x)^(-1/2) is concave (used with Jensen in the proof of Theorem 4)
    g = f ** -0.5
    assert np.all(g[:-2] - 2 * g[1:-1] + g[2:] <= 1e-12)


def test_pi_p_exact_methods_agree():
    rng = np.random.default_rng(0)
    for _ in range(30):
        k = rng.integers(1, 11)
        p = rng.dirichlet(np.ones(k))
        brute = max(
            min(p[list(A)].sum(), 1 - p[list(A)].sum())
            for r in range(k + 1)
            for A in __import__("itertools").combinations(range(k), r)
        )
        assert T.pi_p(p) == pytest.approx(brute, abs=1e-12)
        counts = rng.multinomial(37, p)
        assert T.pi_p(counts / 37, denominator=37) == pytest.approx(T.pi_p(counts / 37), abs=1e-12)
    assert T.pi_p(np.array([0.7, 0.3])) == pytest.approx(0.3)
    assert T.pi_p(np.array([1.0, 0.0])) == 0.0
    big = np.full(500, 1 / 500)
    assert T.pi_p(big, denominator=500) == 0.5
    with pytest.raises(ValueError, match="max_support"):
        T.pi_p(big)


def test_lemma1_G_forms_agree_for_integers():
    for n in range(1, 120):
        for s in range(1, 500, 7):
            assert T.lemma1_G(n, s, "10") == T.lemma1_G(n, s, "13")
    assert T.lemma1_G(100, 5) == 2**5 - 2
    assert T.lemma1_G(10, 600) == pytest.approx(T.C1 * 600 * math.exp(T.C0 * 10 / (2 * math.e)))


def test_lemma1_tail_bound_holds():
    rng = np.random.default_rng(4)
    for p, n in [(np.array([0.5, 0.5]), 40), (np.array([0.5, 0.3, 0.2]), 50), (np.array([0.6, 0.3, 0.1]), 200)]:
        X = rng.multinomial(n, p, size=40000) / n
        dev = np.abs(X - p).sum(axis=1)
        pi = T.pi_p(p)
        for eps in (0.1, 0.2, 0.3, 0.4):
            hit, se = _mean_se(dev >= eps)
            assert hit <= T.lemma1_bound(n, p.size, eps, pi) + K_SE * se


def test_theorems_3_and_4_bound_the_drift():
    p = np.array([0.5, 0.3, 0.2])
    N, n, s = 100, 10, 3
    r = S.simulate(p, S.PartiallySynthetic(N, n), 10, runs=3000, seed=6, keep_history=True)
    drift_mean, drift_se = _mean_se(r.drift_first[:, 2:])
    b3 = T.deviation_bound(N, n, s)
    assert b3 < 2  # non-vacuous here
    assert np.all(drift_mean + K_SE * drift_se < b3)
    pis = np.array([T.pi_p(q, denominator=N) for q in r.history[:, 1]])
    lam, lam_se = _mean_se(pis * (1 - pis))
    zeta = T.zeta_thm4(N, n, min(0.25, lam + K_SE * lam_se))
    b4 = T.deviation_bound_thm4(N, n, s, zeta)
    assert b4 <= b3 + 1e-12
    assert np.all(drift_mean + K_SE * drift_se < b4)


def test_eq11_max_synthetic_samples():
    s = 600
    for N in (10**5, 10**7, 10**9, 10**12):
        for eps in (0.05, 0.5):
            n_paper = T.max_synthetic_samples(N, s, eps)
            n_exact = T.max_synthetic_samples(N, s, eps, form="exact")
            assert n_exact >= n_paper >= 0
            for n in {n_paper, n_exact} - {0}:
                assert T.C0 * n / math.e + 2 <= s
                assert T.deviation_bound(N, n, s) < eps
            if n_exact + 1 <= math.e * (s - 2) / T.C0:
                assert T.deviation_bound(N, n_exact + 1, s) >= eps
    assert T.max_synthetic_samples(10, 600, 0.1) == 0  # the log in (11) is negative


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: T.fully_synthetic_S(1, 0, 0.5), "n must be a positive integer"),
        (lambda: T.fully_synthetic_S(-1, 5, 0.5), "generation m"),
        (lambda: T.fully_synthetic_S(1, 5, 1.5), "S0 must be in"),
        (lambda: T.collapse_probability_bounds(0, 5, 0.5, 3), "generation m"),
        (lambda: T.collapse_probability_bounds(1, 5, 0.1, 3), "impossible"),
        (lambda: T.collapse_time_bounds(5, 0.5, 1), "support must be >= 2"),
        (lambda: T.partially_synthetic_S(0, 5, 5, 0.5), "generation m"),
        (lambda: T.partially_synthetic_S(1, 0, 5, 0.5), "N must be"),
        (lambda: T.phi(0.6), "defined on"),
        (lambda: T.pi_p([0.5, 0.6]), "sum to 1"),
        (lambda: T.pi_p([0.5, 0.5], denominator=3), "counts/denominator"),
        (lambda: T.lemma1_G(10, 10, form="12"), "form must be"),
        (lambda: T.lemma1_bound(10, 3, 0.0, 0.5), "eps must be"),
        (lambda: T.zeta_thm4(10, 10, 0.3), "lambda_1"),
        (lambda: T.max_synthetic_samples(10, 600, 0.1, form="tight"), "form must be"),
        (lambda: T.max_synthetic_samples(10, 2, 0.1), "s >= 3"),
        (lambda: T.diffusion_collapse_time([0.5, 0.5], 10, first_draw="x"), "first_draw"),
        (lambda: T.exact_collapse_time(D.uniform(6), 60), "state space too big"),
        (lambda: T.exact_collapse_probability([0.5, 0.5], 4, 0), "generation m"),
        (lambda: T.accumulate_S(-1, 4, 0.5), "generation m"),
    ],
)
def test_theory_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- the law of T (course)
def test_collapse_time_moments_two_tokens_n2_by_hand():
    """n = 2: T - 1 is 0 w.p. S0, else geometric with mean 2 and variance 2 (collapse w.p. 1/2 per step)."""
    for p in (np.array([0.5, 0.5]), np.array([0.7, 0.2, 0.1])):
        S0 = float(p @ p)
        mean, var = T.exact_collapse_time_moments(p, 2)
        assert mean == pytest.approx(1 + 2 * (1 - S0), rel=1e-12)
        assert var == pytest.approx(6 * (1 - S0) - 4 * (1 - S0) ** 2, rel=1e-12)
        assert mean == pytest.approx(T.exact_collapse_time(p, 2), rel=1e-12)
    assert T.exact_collapse_time_moments(np.array([0.0, 1.0]), 7) == (1.0, 0.0)


@pytest.mark.parametrize("p,n", [(np.array([0.5, 0.3, 0.2]), 10), (np.array([0.4, 0.3, 0.2, 0.1]), 6)])
def test_collapse_time_law_matches_simulation(p, n):
    R = 20_000
    res = S.simulate(p, S.FullySynthetic(n), generations=0, runs=R, seed=[71, n], until_collapse=True)
    t = res.collapse_time.astype(float)
    mean, var = T.exact_collapse_time_moments(p, n)
    _assert_mc(t.mean(), t.std(ddof=1) / math.sqrt(R), mean)
    se_var = math.sqrt(np.mean((t - t.mean()) ** 4) - t.var(ddof=1) ** 2) / math.sqrt(R)
    _assert_mc(t.var(ddof=1), se_var, var)
    # a plausible wrong answer, the geometric law with the same mean, is rejected
    wrong = (mean - 1) * mean
    assert abs(t.var(ddof=1) - wrong) > K_SE * se_var
    # distribution: P(T > m) at a few m, binomial SE
    surv = T.collapse_time_survival(p, n, 5 * n)
    for m in (1, n // 2, n, 3 * n):
        f = float(np.mean(t > m))
        _assert_mc(f, math.sqrt(surv[m] * (1 - surv[m]) / R), surv[m])


def test_collapse_time_survival_within_eq7_and_tail_rate():
    p, n = np.array([0.5, 0.3, 0.2]), 10
    surv = T.collapse_time_survival(p, n, 400)
    assert surv[0] == 1.0 and np.all(np.diff(surv) <= 1e-15)
    lo, hi = T.collapse_probability_bounds(np.arange(1, 401), n, float(p @ p), 3)
    assert np.all(1 - hi <= surv[1:] + 1e-12) and np.all(surv[1:] <= 1 - lo + 1e-12)
    ratio = surv[301] / surv[300]
    assert ratio == pytest.approx(T.collapse_tail_rate(n), abs=1e-6)
    assert abs(ratio - (1 - 1 / (n + 1))) > 1e-3  # a neighbouring rate is distinguishable
    pmf = -np.diff(surv)
    assert np.all(pmf >= -1e-15) and pmf.sum() == pytest.approx(1 - surv[-1], abs=1e-12)
    assert T.collapse_tail_rate(1) == 0.0


def test_expected_surviving_tokens_exact_and_simulated():
    p = D.zipf(40, 30, 0.1)
    n = 20
    ms = np.array([0, 1, 2, 5, 20, 60])
    exact = T.expected_surviving_tokens(p, n, ms)
    assert exact[0] == 30
    assert exact[1] == pytest.approx(np.sum(1 - (1 - p) ** n), rel=1e-12)
    assert np.all(np.diff(exact) < 0)
    res = S.simulate(p, S.FullySynthetic(n), generations=int(ms.max()), runs=5000, seed=72)
    mean, se = _mean_se(res.support_size[:, ms])
    _assert_mc(mean[1:], se[1:], exact[1:])
    # two tokens lumped: a token is alive unless the binomial chain has hit 0
    x = np.array([0.3, 0.7])
    e2 = T.expected_surviving_tokens(x, 5, 3)
    rho = T.exact_collapse_probability(x, 5, 3)
    assert e2 == pytest.approx(2 - rho, rel=1e-12)


def test_expected_max_collapse_time():
    p, n = np.array([0.5, 0.3, 0.2]), 8
    assert T.expected_max_collapse_time(p, n, 1) == pytest.approx(T.exact_collapse_time(p, n), rel=1e-8)
    c, R = 20, 3000
    res = S.simulate(p, S.FullySynthetic(n), generations=0, runs=c * R, seed=73, until_collapse=True)
    mx = res.collapse_time.reshape(R, c).max(axis=1)
    exact = T.expected_max_collapse_time(p, n, c)
    _assert_mc(mx.mean(), mx.std(ddof=1) / math.sqrt(R), exact)
    assert T.expected_max_collapse_time(p, n, 2 * c) > exact


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: T.collapse_tail_rate(0), "n must be"),
        (lambda: T.collapse_time_survival([0.5, 0.5], 4, 0), "m_max must be"),
        (lambda: T.exact_collapse_time_moments([0.5, 0.6], 4), "sum to 1"),
        (lambda: T.expected_surviving_tokens([0.5, 0.5], 3000, 1), "max_n"),
        (lambda: T.expected_surviving_tokens([0.5, 0.5], 4, -1), "generation m"),
        (lambda: T.expected_max_collapse_time([0.5, 0.5], 4, 0), "c must be"),
        (lambda: T.expected_max_collapse_time([0.5, 0.5], 4, 2, tol=0), "tol must be"),
    ],
)
def test_law_of_T_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_expected_surviving_tokens_per_token():
    p = np.array([0.5, 0.25, 0.25, 0.0])
    per = T.expected_surviving_tokens(p, 6, [0, 1, 4], per_token=True)
    assert per.shape == (3, 4)
    assert np.allclose(per[0], [1, 1, 1, 0]) and np.all(per[:, 3] == 0)
    assert np.allclose(per[1], 1 - (1 - p) ** 6)
    assert per[2, 1] == per[2, 2]
    assert np.allclose(per.sum(axis=1), T.expected_surviving_tokens(p, 6, [0, 1, 4]))


# ----------------------------------------------------------------------------- probabilities stay in [0, 1]
def test_exact_collapse_probability_never_above_one_at_the_extreme():
    # without the clip this returned 1.0000000000000007 (issue 26)
    rho = T.exact_collapse_probability([0.5, 0.5], 4, 10**6)
    assert rho == 1.0
    arr = T.exact_collapse_probability([0.25] * 4, 3, np.arange(1, 3000))
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert isinstance(rho, float)


def test_every_probability_of_theory_is_in_unit_interval_at_the_extremes():
    m = np.arange(1, 2000)
    # S0 = 1 (a Dirac p^(0)): S_m = 1 exactly; the closed form rounded to 1 + 2.2e-16 before the clip
    for N, n in [(3, 7), (10**6, 1), (7, 3)]:
        S = T.partially_synthetic_S(m, N, n, 1.0)
        assert S.max() <= 1.0 and np.allclose(S, 1.0, rtol=0, atol=1e-15)
        assert T.partially_synthetic_S_recursion(m, N, n, 1.0).max() <= 1.0
    for n in (1, 2, 1000):
        assert T.fully_synthetic_S(m, n, 1.0).max() <= 1.0
        assert T.accumulate_S(m, n, 1.0).max() <= 1.0
        lo, up = T.collapse_probability_bounds(m, n, 0.25, 4)
        assert 0.0 <= lo.min() and lo.max() <= 1.0 and 0.0 <= up.min() and up.max() <= 1.0
    surv = T.collapse_time_survival([0.5, 0.5], 4, 3000)
    assert surv.min() >= 0.0 and surv.max() <= 1.0
    alive = T.expected_surviving_tokens([0.5, 0.5], 4, np.arange(300), per_token=True)
    assert alive.min() >= 0.0 and alive.max() <= 1.0


def test_probability_clip_keeps_scalars_scalar():
    assert isinstance(T._probability(np.float64(1.0 + 1e-16)), float)
    assert T._probability(-1e-17) == 0.0
    out = T._probability(np.array([-1e-17, 0.5, 1 + 4e-16]))
    assert out.tolist() == [0.0, 0.5, 1.0]
