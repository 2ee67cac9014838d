"""The validation contract of collapse_lib (issue 16), stated as hypothesis properties.

Contract (collapse_lib._validate): a refused argument raises ``InvalidArgument`` (a
ValueError; also a TypeError for wrong types) raised by collapse_lib itself, whose message
names the argument; integers are accepted as int, numpy integers or exactly integral
floats and never truncated; nothing refused comes back as NaN, inf or a clipped value;
allocations are estimated before they happen. Valid inputs give finite, in-range answers.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from collapse_lib import distributions as D
from collapse_lib import metrics as M
from collapse_lib import simulate as S
from collapse_lib import theory as T
from collapse_lib._validate import ArgumentTypeError, InvalidArgument
from collapse_lib.decoding import Decoding, apply_decoding

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def _refused(call, name):
    """call() must raise collapse_lib's InvalidArgument naming `name`."""
    with pytest.raises(InvalidArgument) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert name.lower() in str(info.value).lower(), str(info.value)
    return info.value


# values that are never a valid positive integer
not_positive_int = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x >= 1 and x == int(x))),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(1, 5), min_size=1, max_size=2),
    st.complex_numbers(allow_nan=False, allow_infinity=False).filter(lambda z: z.imag != 0),
)

POSITIVE_INT_ARGS = [
    ("s", lambda v: D.uniform(v)),
    ("s", lambda v: D.zipf(v, 1, 0.5)),
    ("support", lambda v: D.zipf_exponent(v, 0.5)),
    ("s", lambda v: D.dirichlet(v)),
    ("size", lambda v: D.dirichlet(3, size=v)),
    ("n", lambda v: S.FullySynthetic(v)),
    ("N", lambda v: S.PartiallySynthetic(v, 3)),
    ("K", lambda v: S.RecentModels(6, v)),
    ("n", lambda v: S.Accumulate(v)),
    ("runs", lambda v: S.simulate([0.5, 0.5], S.FullySynthetic(3), 2, runs=v)),
    ("max_generations", lambda v: S.simulate([0.5, 0.5], S.FullySynthetic(3), 0, until_collapse=True, max_generations=v)),
    ("top_k", lambda v: Decoding(top_k=v)),
    ("top_k", lambda v: apply_decoding([0.5, 0.5], top_k=v)),
    ("n", lambda v: T.fully_synthetic_S(1, v, 0.5)),
    ("n", lambda v: T.collapse_time_bounds(v, 0.5, 4)),
    ("N", lambda v: T.partially_synthetic_S(2, v, 5, 0.5)),
    ("s", lambda v: T.lemma1_G(10, v)),
    ("n", lambda v: T.diffusion_collapse_time([0.5, 0.5], v)),
    ("denominator", lambda v: T.pi_p([0.5, 0.5], denominator=v)),
]


@pytest.mark.parametrize("name,call", POSITIVE_INT_ARGS, ids=[f"{i}-{a[0]}" for i, a in enumerate(POSITIVE_INT_ARGS)])
@SETTINGS
@given(v=not_positive_int)
def test_positive_integer_arguments_are_refused_by_name(name, call, v):
    assume(not (v is None and name in ("size", "runs", "top_k", "denominator")))  # None is their default
    assume(not (isinstance(v, list) and call is POSITIVE_INT_ARGS[5][1]))  # FullySynthetic: one n per run
    e = _refused(lambda: call(v), name)
    if isinstance(v, (str, type(None), list, complex)) or isinstance(v, bool):
        assert isinstance(e, TypeError) and isinstance(e, ArgumentTypeError)


@pytest.mark.parametrize("v", [3, np.int64(3), np.int32(3), 3.0, np.float64(3.0)])
def test_integers_and_integral_floats_are_accepted_exactly(v):
    assert D.uniform(v).shape == (3,)
    assert S.FullySynthetic(v).n == 3 and type(S.FullySynthetic(v).n) is int
    assert Decoding(top_k=v).top_k == 3


@SETTINGS
@given(g=st.one_of(st.integers(max_value=-1), st.floats(0.1, 1e6).filter(lambda x: x != int(x)), st.just(math.nan)))
def test_generations_refused(g):
    _refused(lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), g, runs=2), "generations")


# ----------------------------------------------------------------------------- probability vectors
@st.composite
def not_a_distribution(draw):
    s = draw(st.integers(1, 8))
    p = np.asarray(draw(st.lists(st.floats(0, 1), min_size=s, max_size=s)))
    kind = draw(st.sampled_from(["negative", "nan", "inf", "sum"]))
    i = draw(st.integers(0, s - 1))
    if kind == "negative":
        p[i] = -draw(st.floats(1e-9, 10))
    elif kind == "nan":
        p[i] = np.nan
    elif kind == "inf":
        p[i] = np.inf
    else:
        total = p.sum()
        assume(total > 0 and abs(total - 1) > 1e-6)
    return p


DIST_ARGS = [
    ("p", lambda p: D.validate(p)),
    ("p", lambda p: M.sigma(p)),
    ("p", lambda p: M.entropy(p)),
    ("p", lambda p: M.winner(p)),
    ("q", lambda p: M.l1(np.full(p.size, 1 / p.size), p)),
    ("p", lambda p: apply_decoding(p, temperature=0.5)),
    ("p", lambda p: T.fixation_probabilities(p)),
    ("p", lambda p: T.diffusion_collapse_time(p, 10)),
    ("p0", lambda p: S.simulate(p, S.FullySynthetic(3), 2, runs=2)),
    ("p0", lambda p: S.simulate(p, S.RecentModels(4, 2), 0, runs=2, until_collapse=True)),
]


@pytest.mark.parametrize("name,call", DIST_ARGS, ids=[f"{i}-{a[0]}" for i, a in enumerate(DIST_ARGS)])
@SETTINGS
@given(p=not_a_distribution())
def test_non_distributions_are_refused(name, call, p):
    _refused(lambda: call(p), name)


@SETTINGS
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=12).filter(lambda v: sum(v) > 0),
       temperature=st.floats(1e-320, 1e308))
def test_valid_distributions_give_finite_in_range_answers(p, temperature):
    p = np.asarray(p) / np.sum(p)
    assume(abs(p.sum() - 1) < 1e-12)
    s = p.size
    sig = M.sigma(p)
    assert 1 / s - 1e-12 <= sig <= 1 + 1e-12
    assert 0 <= M.entropy(p) <= math.log(s) + 1e-9
    q = apply_decoding(p, temperature=temperature)
    assert np.all(np.isfinite(q)) and abs(q.sum() - 1) < 1e-9 and np.all(q[p == 0] == 0)
    r = S.simulate(p, S.FullySynthetic(4), 3, runs=3, seed=0)
    for name in ("sigma", "max_prob", "drift_first", "drift_true", "final"):
        assert np.all(np.isfinite(getattr(r, name)))
    assert np.all((r.drift_true >= -1e-12) & (r.drift_true <= 2 + 1e-12))


def test_sum_tolerance_is_consistent_with_the_sampler():
    """validate accepts a sum off by < 1e-9; simulate renormalises instead of failing in numpy."""
    for sc in (S.FullySynthetic(5), S.PartiallySynthetic(3, 3), S.Accumulate(3), S.RecentModels(4, 2)):
        r = S.simulate([1 + 5e-10], sc, 3, runs=2, seed=0)
        assert np.all(r.final == 1.0)
        r = S.simulate([0.5, 0.5 - 9e-10], sc, 3, runs=2, seed=0)
        np.testing.assert_allclose(r.final.sum(1), 1.0)


# ----------------------------------------------------------------------------- real-valued arguments
bad_unit = st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0 < x <= 1),
                     st.text(max_size=2), st.none(), st.booleans())


@SETTINGS
@given(S0=bad_unit)
def test_S0_refused(S0):
    _refused(lambda: T.fully_synthetic_S(1, 5, S0), "S0")
    _refused(lambda: T.accumulate_S(1, 5, S0), "S0")


@SETTINGS
@given(t=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x > 0)),
                   st.text(max_size=2), st.none()))
def test_temperature_refused(t):
    _refused(lambda: apply_decoding([0.6, 0.4], temperature=t), "temperature")
    _refused(lambda: Decoding(temperature=t), "temperature")


@SETTINGS
@given(m=st.one_of(st.integers(max_value=-1), st.floats(allow_infinity=True, allow_nan=True).filter(
    lambda x: not (math.isfinite(x) and x >= 0 and x == int(x)))))
def test_generation_m_refused(m):
    _refused(lambda: T.fully_synthetic_S(m, 5, 0.5), "m")


def test_no_nan_or_silent_answers_where_the_paper_formulas_break_down():
    # the direct formula gives 0 * inf = NaN; in log space the bound is e^(+8.8e4): vacuous, +inf in floats
    assert T.lemma1_bound(10**6, 2 * 10**6, 1.0, 0.5) == math.inf
    assert T.lemma1_bound(10**6, 10, 1.0, 0.5) == 0.0  # e^(-5e5) G with G = 2^10 - 2: underflows to 0
    _refused(lambda: T.deviation_bound_thm4(10, 5, 600, 0.0), "zeta")
    _refused(lambda: T.accumulate_S(math.nan, 5, 0.5), "m")
    _refused(lambda: T.fully_synthetic_S(math.inf, 10, 0.5), "m")
    assert T.accumulate_S(math.inf, 5, 0.5) == pytest.approx(1 - 0.5 * math.sin(math.pi / math.sqrt(5)) * math.sqrt(5) / math.pi)
    _refused(lambda: M.l1([0.5, 0.5], [1.0]), "q")
    _refused(lambda: M.tail_mass([0.5, 0.5], [-1]), "tokens")
    _refused(lambda: M.tail_mass([0.5, 0.5], [1, 1]), "tokens")
    assert M.tail_mass([0.5, 0.5], []) == 0.0
    _refused(lambda: M.collapse_time(np.array([[1.0, 0.0]])), "history")
    _refused(lambda: S.simulate(np.zeros((0, 3)), S.FullySynthetic(3), 2), "p0")


# ----------------------------------------------------------------------------- memory and traps
@pytest.mark.parametrize(
    "name,call",
    [
        ("s", lambda: D.uniform(10**15)),
        ("runs", lambda: S.simulate(D.uniform(600), S.FullySynthetic(5), 5, runs=10**9, seed=0)),
        ("generations", lambda: S.simulate([0.5, 0.5], S.FullySynthetic(3), 10**12, runs=10)),
        ("K", lambda: S.simulate(D.uniform(600), S.RecentModels(10**9, 10**9), 2, runs=1000)),
        ("max_states", lambda: T.exact_collapse_time(D.uniform(12), 60, max_states=10**18)),
        ("denominator", lambda: T.pi_p([0.5, 0.5], denominator=10**15)),
    ],
)
def test_memory_is_estimated_before_allocating(name, call):
    e = _refused(call, name)
    assert "memory" in str(e) and "B" in str(e)  # says how much (kB/MB/GB/TB)


def test_until_collapse_horizon_is_not_a_cap():
    e = _refused(lambda: S.simulate(D.uniform(50), S.FullySynthetic(10), 100_000, runs=200, seed=0, until_collapse=True),
                 "generations")
    assert "max_generations" in str(e)
    r = S.simulate(D.uniform(50), S.FullySynthetic(10), 0, runs=200, seed=0, until_collapse=True, max_generations=100_000)
    assert r.sigma.shape == (200, 1) and np.all(r.collapse_time >= 1)


def test_huge_sample_size_until_collapse_is_bounded_by_the_cap():
    r = S.simulate(D.uniform(5), S.FullySynthetic(10**12), 0, runs=2, seed=0, until_collapse=True, max_generations=50)
    assert r.generations_run == 50 and np.all(r.collapse_time == -1)
    np.testing.assert_allclose(r.final.sum(1), 1.0)
    _refused(lambda: S.FullySynthetic(2**63), "n")
