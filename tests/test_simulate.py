"""Tests of collapse_lib.simulate (recursive-training engine) and collapse_lib.decoding.

Monte Carlo checks compare a sample mean with its target within K_SE standard errors
computed from the same sample; seeds are fixed.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collapse_lib import distributions as D
from collapse_lib import metrics as M
from collapse_lib import simulate as S
from collapse_lib.decoding import Decoding, apply_decoding

K_SE = 5  # tolerance in Monte Carlo standard errors


def _mean_se(x, axis=0):
    x = np.asarray(x, dtype=float)
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])


def _partial_schedule(N, n):
    return S.Schedule(lambda m: [N] if m == 1 else [N] + [0] * (m - 2) + [n])


SCENARIOS = [
    S.FullySynthetic(4),
    S.PartiallySynthetic(6, 4),
    S.RecentModels(6, 3),
    S.RecentModels(6, 3, early="fill"),
    S.RandomPool(4),
    S.Accumulate(3),
    S.AccumulateSubsample(4),
    _partial_schedule(5, 3),
    S.FullySynthetic(5, decoding=Decoding(temperature=0.7, top_p=0.9)),
]


# ----------------------------------------------------------------------------- engine consistency
@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: type(s).__name__)
def test_records_match_dense_history(sc):
    """Packed, run-dropping engine vs dense recomputation from the full history."""
    rng = np.random.default_rng(1)
    p0 = rng.dirichlet(np.full(30, 0.3), size=40)  # 40 runs, each its own p^(0)
    p0[:, 25:] = 0.0  # some tokens absent from p^(0)
    p0 /= p0.sum(axis=1, keepdims=True)
    G = 12
    r = S.simulate(p0, sc, G, seed=7, keep_history=True)
    h = r.history
    assert h.shape == (40, G + 1, 30)
    np.testing.assert_allclose(h[:, 0], p0)
    np.testing.assert_allclose(h.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.sigma, M.sigma(h), atol=1e-12)
    np.testing.assert_allclose(r.max_prob, M.max_prob(h), atol=1e-12)
    np.testing.assert_array_equal(r.support_size, M.support_size(h))
    np.testing.assert_allclose(r.drift_true, M.l1(h, h[:, :1]), atol=1e-12)
    np.testing.assert_allclose(r.drift_first, M.l1(h, h[:, 1:2]), atol=1e-12)
    ct = M.collapse_time(h)
    seen = r.collapse_time <= G
    np.testing.assert_array_equal(np.where(seen, r.collapse_time, -1), ct)
    np.testing.assert_allclose(r.final, h[:, -1], atol=1e-12)
    np.testing.assert_array_equal(r.winner, M.winner(h[:, -1]))


@pytest.mark.parametrize("sc", SCENARIOS[:3], ids=lambda s: type(s).__name__)
def test_history_matches_plain_records_same_seed(sc):
    """keep_history must not change the random stream or the records."""
    p = D.zipf(50, 30, 0.1)
    a = S.simulate(p, sc, 15, runs=20, seed=3)
    b = S.simulate(p, sc, 15, runs=20, seed=3, keep_history=True)
    for name in ("sigma", "drift_first", "drift_true", "support_size", "collapse_time", "final"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_counts_are_integers():
    p = D.zipf(40, 25, 0.08)
    r = S.simulate(p, S.PartiallySynthetic(7, 5), 6, runs=30, seed=0, keep_history=True)
    c = r.history[:, 1] * 7
    np.testing.assert_allclose(c, np.round(c), atol=1e-9)
    c = r.history[:, 2:] * 12
    np.testing.assert_allclose(c, np.round(c), atol=1e-9)
    r = S.simulate(p, S.Accumulate(5), 6, runs=30, seed=0, keep_history=True)
    for m in range(1, 7):
        c = r.history[:, m] * 5 * m
        np.testing.assert_allclose(c, np.round(c), atol=1e-9)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 30), support=st.integers(2, 40), gens=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_property_counts_sum_to_sample_size(n, support, gens, seed):
    p = D.zipf(support + 3, support, min(0.99, 1.5 / support + 0.05))
    r = S.simulate(p, S.FullySynthetic(n), gens, runs=8, seed=seed, keep_history=True)
    counts = r.history[:, 1:] * n
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    np.testing.assert_array_equal(np.round(counts).sum(-1), n)
    assert np.all(r.support_size[:, 1:] <= n)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    n=st.integers(2, 20),
    seed=st.integers(0, 10**6),
    which=st.sampled_from(["full", "partial", "recent", "pool", "acc", "accsub"]),
)
def test_property_martingale(n, seed, which):
    """E p^(m) = p for every unbiased scenario: mean over runs within K_SE standard errors."""
    sc = {
        "full": S.FullySynthetic(n),
        "partial": S.PartiallySynthetic(3, n),
        "recent": S.RecentModels(n, 2),
        "pool": S.RandomPool(n),
        "acc": S.Accumulate(n),
        "accsub": S.AccumulateSubsample(n),
    }[which]
    p = D.zipf(6, 5, 0.3)
    r = S.simulate(p, sc, 5, runs=3000, seed=seed)
    mean, se = _mean_se(r.final)
    ok = p > 0
    assert np.all(np.abs(mean[ok] - p[ok]) <= K_SE * se[ok] + 1e-12)
    assert np.all(mean[~ok] == 0)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_property_dirac_absorbing_fully_synthetic(n, seed):
    p = D.zipf(8, 4, 0.4)
    r = S.simulate(p, S.FullySynthetic(n), 30, runs=50, seed=seed, keep_history=True)
    dirac = M.is_dirac(r.history)
    for run in range(50):
        t = r.collapse_time[run]
        if t > 0:
            assert dirac[run, t:].all()
            assert np.all(r.history[run, t:].argmax(-1) == r.history[run, t].argmax())
            assert r.winner[run] == r.history[run, t].argmax()


def test_dirac_start_collapses_at_generation_one():
    p = np.zeros(5)
    p[2] = 1.0
    r = S.simulate(p, S.FullySynthetic(10), 3, runs=4, seed=0)
    np.testing.assert_array_equal(r.collapse_time, 1)
    np.testing.assert_array_equal(r.winner, 2)
    np.testing.assert_array_equal(r.sigma, 1.0)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10**6), which=st.integers(0, len(SCENARIOS) - 1))
def test_property_seed_determinism(seed, which):
    p = D.zipf(30, 20, 0.1)
    sc = SCENARIOS[which]
    a = S.simulate(p, sc, 6, runs=10, seed=seed)
    b = S.simulate(p, sc, 6, runs=10, seed=seed)
    c = S.simulate(p, sc, 6, runs=10, seed=seed + 1)
    for name in ("sigma", "drift_first", "drift_true", "final", "collapse_time"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.final, c.final)


def test_recent_models_K1_is_fully_synthetic():
    p = D.zipf(60, 40, 0.05)
    a = S.simulate(p, S.FullySynthetic(7), 40, runs=25, seed=11)
    b = S.simulate(p, S.RecentModels(7, 1), 40, runs=25, seed=11)
    np.testing.assert_array_equal(a.sigma, b.sigma)
    np.testing.assert_array_equal(a.collapse_time, b.collapse_time)


def test_recent_models_early_generations_sample_sizes():
    p = D.uniform(50)
    # early="paper": generation 1 uses floor(n/K) = 3 real samples -> p^(1) in multiples of 1/3
    r = S.simulate(p, S.RecentModels(10, 3), 4, runs=20, seed=0, keep_history=True)
    for m, denom in [(1, 3), (2, 6), (3, 9), (4, 9)]:
        c = r.history[:, m] * denom
        np.testing.assert_allclose(c, np.round(c), atol=1e-9)
    assert np.all(r.support_size[:, 1] <= 3)
    # early="fill": n split over the existing models: 10, 2 x 5, 3 x 3
    r = S.simulate(p, S.RecentModels(10, 3, early="fill"), 3, runs=20, seed=0, keep_history=True)
    for m, denom in [(1, 10), (2, 10), (3, 9)]:
        c = r.history[:, m] * denom
        np.testing.assert_allclose(c, np.round(c), atol=1e-9)


def test_until_collapse_fully_synthetic():
    p = D.zipf(100, 30, 0.1)
    r = S.simulate(p, S.FullySynthetic(10), 5, runs=60, seed=2, until_collapse=True)
    assert np.all(r.collapse_time >= 1)
    np.testing.assert_array_equal(r.collapse_time, r.absorption_time)
    assert np.all(r.winner >= 0) and np.all(r.winner < 30)
    assert np.all(M.is_dirac(r.final))
    np.testing.assert_array_equal(r.final.argmax(1), r.winner)
    assert r.generations_run == r.collapse_time.max()
    early = r.collapse_time <= 5
    assert np.all(r.sigma[early, -1] == 1.0)
    # the first 5 generations are the same as a plain 5-generation run
    b = S.simulate(p, S.FullySynthetic(10), 5, runs=60, seed=2)
    np.testing.assert_array_equal(r.sigma, b.sigma)


def test_until_collapse_recent_models_and_cap():
    p = D.zipf(40, 10, 0.2)
    r = S.simulate(p, S.RecentModels(6, 2), 0, runs=30, seed=1, until_collapse=True)
    assert np.all(r.absorption_time >= r.collapse_time) and np.all(r.collapse_time >= 1)
    assert r.sigma.shape == (30, 1)
    capped = S.simulate(D.uniform(50), S.FullySynthetic(200), 0, runs=5, seed=0, until_collapse=True, max_generations=20)
    assert capped.generations_run == 20 and np.all(capped.collapse_time == -1) and np.all(capped.winner == -1)


def test_decoding_top_k_one_collapses_at_generation_two():
    # real data (generation 1) are never transformed; from generation 2 on, top-1 sampling is argmax
    p = D.zipf(30, 20, 0.1)
    r = S.simulate(p, S.FullySynthetic(20, decoding=Decoding(top_k=1)), 4, runs=50, seed=0)
    assert np.all((r.collapse_time >= 1) & (r.collapse_time <= 2))
    assert np.any(r.collapse_time == 2)


def test_low_temperature_speeds_collapse():
    p = D.zipf(100, 50, 0.05)
    a = S.simulate(p, S.FullySynthetic(20), 0, runs=300, seed=5, until_collapse=True)
    b = S.simulate(p, S.FullySynthetic(20, decoding=Decoding(temperature=0.7)), 0, runs=300, seed=5, until_collapse=True)
    ma, sa = _mean_se(a.collapse_time)
    mb, sb = _mean_se(b.collapse_time)
    assert ma - mb > K_SE * np.hypot(sa, sb)


def test_schedule_array_form_equals_callable():
    G = 5
    A = np.zeros((G, G), dtype=int)
    for m in range(1, G + 1):
        A[m - 1, 0] = 5
        if m >= 2:
            A[m - 1, m - 1] = 3
    p = D.zipf(20, 10, 0.2)
    a = S.simulate(p, S.Schedule(A), G, runs=30, seed=4)
    b = S.simulate(p, _partial_schedule(5, 3), G, runs=30, seed=4)
    np.testing.assert_array_equal(a.sigma, b.sigma)


def test_schedule_real_data_is_a_fixed_corpus():
    # n_0^(m) = 4 real samples at every generation and nothing else: p^(m) = p^(1) forever
    p = D.zipf(20, 10, 0.2)
    r = S.simulate(p, S.Schedule(lambda m: [4] + [0] * (m - 1)), 6, runs=30, seed=4, keep_history=True)
    np.testing.assert_array_equal(r.history[:, 1:], np.repeat(r.history[:, 1:2], 6, axis=1))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(p0=[0.5, 0.6]), "sum to 1"),
        (dict(p0=[1.5, -0.5]), "negative"),
        (dict(generations=0), "generations must be >= 1"),
        (dict(generations=-1), "non-negative integer"),
        (dict(generations=2.5), "non-negative integer"),
        (dict(runs=0), "runs must be a positive integer"),
        (dict(p0=np.full((3, 2), 0.5), runs=4), "does not match"),
        (dict(scenario=S.PartiallySynthetic(5, 5), until_collapse=True), "until_collapse is only"),
        (dict(scenario=S.RandomPool(5), until_collapse=True), "until_collapse is only"),
        (dict(scenario="fully"), "scenario must be one of"),
        (dict(keep_history=True, runs=10**5, generations=1000), "keep_history"),
        (dict(scenario=S.Schedule(np.ones((2, 2), dtype=int))), "rows < generations"),
        (dict(scenario=S.Schedule(lambda m: [1] * (m + 1))), "must have length"),
        (dict(scenario=S.Schedule(lambda m: [0] * m)), "no training samples"),
        (dict(scenario=S.Schedule(lambda m: [-1] + [2] * (m - 1))), "non-negative integers"),
        (dict(scenario=S.Schedule(np.triu(np.ones((3, 3), dtype=int)))), "must be 0"),
    ],
)
def test_simulate_bad_input(kwargs, match):
    args = dict(p0=[0.5, 0.5], scenario=S.FullySynthetic(3), generations=3, runs=2, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        S.simulate(**args)


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: S.FullySynthetic(0), "n must be a positive integer"),
        (lambda: S.FullySynthetic(2.5), "n must be a positive integer"),
        (lambda: S.PartiallySynthetic(0, 3), "N must be a positive integer"),
        (lambda: S.RecentModels(3, 5), "K=5 must be <= n=3"),
        (lambda: S.RecentModels(6, 2, early="late"), "early must be"),
        (lambda: S.RandomPool(-1), "n must be"),
        (lambda: S.Accumulate(True), "n must be"),
        (lambda: S.AccumulateSubsample(0), "n must be"),
        (lambda: S.FullySynthetic(3, decoding=0.5), "decoding must be"),
        (lambda: S.Schedule([1, 2, 3]), "2-D array"),
        (lambda: Decoding(temperature=0), "temperature"),
        (lambda: Decoding(top_k=0), "top_k"),
        (lambda: Decoding(top_k=1.5), "top_k"),
        (lambda: Decoding(top_p=0), "top_p"),
        (lambda: Decoding(top_p=1.2), "top_p"),
    ],
)
def test_scenario_bad_input(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


# ----------------------------------------------------------------------------- decoding
def test_decoding_identity_and_copy():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = apply_decoding(p)
    assert np.array_equal(q, p) and q is not p
    assert Decoding().is_identity
    np.testing.assert_array_equal(Decoding()(p), p)


def test_top_k_keeps_k_largest():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(12), size=50)
    for k in (1, 3, 7, 12):
        Q = apply_decoding(P, top_k=k)
        np.testing.assert_allclose(Q.sum(1), 1.0)
        assert np.all(np.count_nonzero(Q, axis=1) == k)
        kept = Q > 0
        # every kept token is at least as likely as every dropped one, proportions unchanged
        assert np.all(np.where(kept, P, np.inf).min(1) >= np.where(kept, -np.inf, P).max(1))
        np.testing.assert_allclose(Q[kept], (P / np.where(kept, P, 0).sum(1, keepdims=True))[kept])


def test_top_p_is_minimal_nucleus():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(10), size=60)
    for top_p in (0.1, 0.5, 0.9, 0.99):
        Q = apply_decoding(P, top_p=top_p)
        kept = Q > 0
        mass = np.where(kept, P, 0).sum(1)
        assert np.all(mass >= top_p - 1e-12)
        smallest_kept = np.where(kept, P, np.inf).min(1)
        assert np.all(mass - smallest_kept < top_p)  # dropping any kept token goes below top_p
        assert np.all(np.where(kept, P, np.inf).min(1) >= np.where(kept, -np.inf, P).max(1))


def test_temperature_limits():
    p = np.array([0.1, 0.6, 0.3, 0.0])
    cold = apply_decoding(p, temperature=0.01)
    assert cold[1] > 1 - 1e-12 and cold[3] == 0
    hot = apply_decoding(p, temperature=1e6)
    np.testing.assert_allclose(hot[:3], 1 / 3, atol=1e-5)
    assert hot[3] == 0
    t = apply_decoding(p, temperature=0.5)
    np.testing.assert_allclose(t, p**2 / np.sum(p**2))


def test_decoding_rejects_bad_p():
    with pytest.raises(ValueError, match="sum to 1"):
        apply_decoding([0.5, 0.2])


# ----------------------------------------------------------------------------- fast paths
def test_until_collapse_numpy_fallback_matches_exact_chain():
    """Both tail implementations (numba kernel, numpy fallback) sample the same chain."""
    from collapse_lib import theory as T

    p, n = np.array([0.5, 0.3, 0.2]), 10
    exact = T.exact_collapse_time(p, n)
    r_fast = S.simulate(p, S.FullySynthetic(n), 0, runs=3000, seed=12, until_collapse=True)
    r_np = S.simulate(p, S.FullySynthetic(n), 0, runs=3000, seed=12, until_collapse=True, backend="numpy")
    assert r_fast.backend == "numba" and r_np.backend == "numpy"
    for r in (r_fast, r_np):
        mean, se = _mean_se(r.collapse_time)
        assert abs(mean - exact) <= K_SE * se
        assert np.all(M.is_dirac(r.final)) and np.all(r.final.argmax(1) == r.winner)
    for backend in ("numba", "numpy"):
        capped = S.simulate(D.uniform(40), S.FullySynthetic(300), 0, runs=6, seed=0, until_collapse=True,
                            max_generations=15, backend=backend)
        np.testing.assert_allclose(capped.final.sum(1), 1.0)
        assert capped.generations_run == 15 and np.all(capped.collapse_time == -1)


def test_per_run_sample_sizes():
    p0 = np.repeat(D.zipf(40, 20, 0.1)[None, :], 6, axis=0)
    ns = (3, 3, 7, 7, 50, 50)
    r = S.simulate(p0, S.FullySynthetic(ns), 4, seed=1, keep_history=True)
    for row, n in enumerate(ns):
        c = r.history[row, 1:] * n
        np.testing.assert_allclose(c, np.round(c), atol=1e-9)
    assert S.FullySynthetic([3, 4]).n == (3, 4)
    u = S.simulate(p0, S.FullySynthetic(ns), 0, seed=1, until_collapse=True)
    assert np.all(u.collapse_time >= 1)
    with pytest.raises(ValueError, match="per-run sample sizes"):
        S.simulate(p0, S.FullySynthetic((3, 4)), 2, seed=0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        S.FullySynthetic((3, 0))
    with pytest.raises(ValueError, match="empty"):
        S.FullySynthetic(())


# ----------------------------------------------------------------------------- compiled kernel vs the exact chain
@pytest.mark.parametrize(
    "p,n,runs",
    [
        ([0.5, 0.3, 0.2], 40, 4000),  # winner's path by the binomial tables; generation 1 by a binomial chain (n > 4 s)
        ([0.4, 0.3, 0.1, 0.1, 0.1], 12, 6000),  # alias draws of generation 1 with many tokens per sample
        ([0.5, 0.5], 1500, 500),  # n > TABLE_MAX_N: the winner's path by BTRS binomials, no table
    ],
)
def test_kernel_law_of_collapse_time_matches_exact_chain(p, n, runs):
    """Mean of T and P(T <= m) at three m against the exact Markov chain, both backends."""
    from collapse_lib import theory as T

    p = np.asarray(p, dtype=float)
    exact_mean = T.exact_collapse_time(p, n, max_states=50_000)
    for backend in ("numba", "numpy") if n <= 100 else ("numba",):
        r = S.simulate(p, S.FullySynthetic(n), 0, runs=runs, seed=2024, until_collapse=True, backend=backend)
        assert r.backend == backend and np.all(r.collapse_time >= 1)
        mean, se = _mean_se(r.collapse_time)
        assert abs(mean - exact_mean) <= K_SE * se, (backend, mean, se, exact_mean)
        if n <= 100:
            ms = np.unique(np.quantile(r.collapse_time, [0.25, 0.5, 0.75]).astype(int))
            rho = T.exact_collapse_probability(p, n, ms, max_states=50_000)
            for m, q in zip(ms, rho):
                f = np.mean(r.collapse_time <= m)
                assert abs(f - q) <= K_SE * np.sqrt(q * (1 - q) / runs) + 1e-12, (backend, m, f, q)
        # Proposition 1: the winner is token i with probability p_i
        freq = np.bincount(r.winner, minlength=p.size) / runs
        assert np.all(np.abs(freq - p) <= K_SE * np.sqrt(p * (1 - p) / runs))


@pytest.mark.parametrize("recorded", [0, 3])
def test_kernel_law_at_the_cap(recorded):
    """Runs cut by max_generations: the law of p^(m) at the cap m, both backends.

    The numba kernel draws the winner and its conditioned path, then replays that path and
    draws the other tokens along it; the numpy path draws every multinomial. Checked
    against three exact facts at m = 12 (about half of the runs have collapsed):
    E[p_i^(m)] = p_i (martingale), E[sum_i (p_i^(m))^2] = 1 - (1 - sum_i p_i^2)(1 - 1/n)^m
    (heterozygosity decays by 1 - 1/n per generation), and P(collapsed by m) from the
    exact chain.
    """
    from collapse_lib import theory as T

    p = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    n, m, runs = 8, 12, 6000
    homo = 1 - (1 - np.sum(p**2)) * (1 - 1 / n) ** m
    rho = T.exact_collapse_probability(p, n, m)
    assert 0.2 < rho < 0.8  # the cap binds: both kinds of runs are present
    for backend in ("numba", "numpy"):
        r = S.simulate(p, S.FullySynthetic(n), recorded, runs=runs, seed=7, until_collapse=True,
                       max_generations=m, backend=backend)
        assert r.backend == backend and r.generations_run == m
        np.testing.assert_allclose(r.final.sum(1), 1.0)
        c = r.final * n
        np.testing.assert_allclose(c, np.round(c), atol=1e-9)  # counts out of n
        collapsed = r.collapse_time > 0
        assert np.array_equal(collapsed, M.is_dirac(r.final))
        mean, se = _mean_se(r.final)
        assert np.all(np.abs(mean - p) <= K_SE * se), (backend, mean, se)
        h_mean, h_se = _mean_se(np.sum(r.final**2, axis=1))
        assert abs(h_mean - homo) <= K_SE * h_se, (backend, h_mean, h_se, homo)
        f = collapsed.mean()
        assert abs(f - rho) <= K_SE * np.sqrt(rho * (1 - rho) / runs), (backend, f, rho)


def _exact_law_at_cap(p, n, cap):
    """Exact law of the outcome of a fully synthetic run cut at generation `cap`.

    Outcomes: ("T", m, i) for a collapse on token i at generation m <= cap, ("X", counts) for
    a run not collapsed at the cap; by enumerating the count vectors of the chain.
    """
    from itertools import product

    from scipy.stats import multinomial

    s = len(p)
    states = [c for c in product(range(n + 1), repeat=s) if sum(c) == n]
    law = {c: multinomial.pmf(c, n, p) for c in states}  # generation 1
    out = {}
    for m in range(1, cap + 1):
        if m > 1:
            new = dict.fromkeys(states, 0.0)
            for c, w in law.items():
                if w > 0:
                    for d in states:
                        new[d] += w * multinomial.pmf(d, n, np.array(c) / n)
            law = new
        for c in states:
            if max(c) == n and law[c] > 0:
                out[("T", m, int(np.argmax(c)))] = law[c]
                law[c] = 0.0
    for c, w in law.items():
        if w > 0:
            out[("X", c)] = w
    return out


@pytest.mark.parametrize("recorded", [0, 1])
def test_kernel_joint_law_at_the_cap_is_exact(recorded):
    """The whole law of (collapse time and winner, or counts at the cap) against the enumerated
    chain, by a chi-square test on 21 outcomes, both backends (p = (.5, .3, .2), n = 4, cap 3)."""
    from scipy.stats import chisquare

    p, n, cap, runs = np.array([0.5, 0.3, 0.2]), 4, 3, 60_000
    law = _exact_law_at_cap(p, n, cap)
    keys = sorted(law, key=str)
    expected = np.array([law[k] for k in keys]) * runs
    assert abs(expected.sum() - runs) < 1e-6 * runs and len(keys) > 15
    for backend in ("numba", "numpy"):
        r = S.simulate(p, S.FullySynthetic(n), recorded, runs=runs, seed=11, until_collapse=True,
                       max_generations=cap, backend=backend)
        counts = dict.fromkeys(keys, 0)
        for t, w, row in zip(r.collapse_time, r.winner, r.final):
            key = ("T", int(t), int(w)) if t > 0 else ("X", tuple(int(v) for v in np.rint(row * n)))
            assert key in counts, (backend, key)  # no impossible outcome
            counts[key] += 1
        observed = np.array([counts[k] for k in keys])
        stat, pval = chisquare(observed, expected)
        assert pval > 1e-3, (backend, stat, pval)


def test_kernel_cap_without_tables():
    """n > TABLE_MAX_N: the winner's path by BTRS and its replay at the cap (martingale and
    heterozygosity at the cap, as in test_kernel_law_at_the_cap)."""
    p = np.array([0.5, 0.3, 0.2])
    n, m, runs = 1500, 200, 3000
    r = S.simulate(p, S.FullySynthetic(n), 0, runs=runs, seed=3, until_collapse=True, max_generations=m,
                   backend="numba")
    assert r.generations_run == m and np.all(r.collapse_time == -1)  # E[T] is in the thousands
    c = r.final * n
    np.testing.assert_allclose(c, np.round(c), atol=1e-6)
    mean, se = _mean_se(r.final)
    assert np.all(np.abs(mean - p) <= K_SE * se), (mean, se)
    homo = 1 - (1 - np.sum(p**2)) * (1 - 1 / n) ** m
    h_mean, h_se = _mean_se(np.sum(r.final**2, axis=1))
    assert abs(h_mean - homo) <= K_SE * h_se, (h_mean, h_se, homo)


def test_kernel_drift_first_and_records_of_generation_zero():
    """The compiled G = 0 path fills drift_first[:, 0] = ||p^(1) - p^(0)||_1 like the generic loop."""
    p = D.zipf(30, 12, 0.15)
    a = S.simulate(p, S.FullySynthetic(8), 0, runs=3000, seed=5, until_collapse=True, backend="numba")
    b = S.simulate(p, S.FullySynthetic(8), 0, runs=3000, seed=5, until_collapse=True, backend="numpy")
    for name in ("sigma", "max_prob", "support_size", "drift_true"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    ma, sa = _mean_se(a.drift_first[:, 0])
    mb, sb = _mean_se(b.drift_first[:, 0])
    assert abs(ma - mb) <= K_SE * np.hypot(sa, sb)
    assert np.all((a.drift_first[:, 0] >= 0) & (a.drift_first[:, 0] <= 2))
    assert a.generations_run == a.collapse_time.max()
    np.testing.assert_array_equal(a.winner, M.winner(a.final))
    assert np.all(M.is_dirac(a.final))


def test_kernel_per_run_sample_sizes_and_two_d_p0():
    p0 = np.stack([D.zipf(20, 10, 0.2), D.uniform(20), D.zipf(20, 3, 0.5)])
    r = S.simulate(p0, S.FullySynthetic((5, 30, 2000)), 0, seed=1, until_collapse=True)
    assert np.all(r.collapse_time >= 1) and np.all(M.is_dirac(r.final))
    assert r.winner[2] < 3  # p^(0) of run 2 lives on tokens 0..2


# ----------------------------------------------------------------------------- long calls: progress bar
def test_progress_bar_shows_on_request_and_changes_no_number(capsys):
    from collapse_lib.simulate import PartiallySynthetic, simulate

    p = np.array([0.5, 0.3, 0.2])
    quiet = simulate(p, PartiallySynthetic(5, 5), 200, runs=3, seed=11, progress=False)
    assert capsys.readouterr().err == ""
    shown = simulate(p, PartiallySynthetic(5, 5), 200, runs=3, seed=11, progress=True)
    err = capsys.readouterr().err
    assert "simulate: generations" in err and "/200" in err
    np.testing.assert_array_equal(quiet.sigma, shown.sigma)
    np.testing.assert_array_equal(quiet.final, shown.final)
    # the default shows a bar only after PROGRESS_DELAY_S: a short call prints nothing
    simulate(p, PartiallySynthetic(5, 5), 200, runs=3, seed=11)
    assert capsys.readouterr().err == ""


def test_progress_default_delay_and_bad_value():
    from collapse_lib._validate import ArgumentTypeError
    from collapse_lib.simulate import PartiallySynthetic, engine, simulate

    assert engine.PROGRESS_DELAY_S == 20.0
    with pytest.raises(ArgumentTypeError, match="progress"):
        simulate([0.5, 0.5], PartiallySynthetic(5, 5), 3, progress="yes")
