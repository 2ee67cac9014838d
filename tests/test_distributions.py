"""Tests of collapse_lib.distributions (initial distributions and validation)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from collapse_lib import distributions as D


@pytest.mark.parametrize(
    "s,support,S0",
    [(600, 52, 0.1), (600, 600, 1 / 600 + 1e-7), (600, 20, 0.3), (100, 100, 0.05), (10, 3, 0.999), (5, 5, 0.2)],
)
def test_zipf_hits_target(s, support, S0):
    p = D.zipf(s, support, S0)
    assert p.shape == (s,)
    assert np.count_nonzero(p) == support
    assert np.all(p[:support] > 0) and np.all(p[support:] == 0)
    assert np.all(np.diff(p[:support]) <= 0)  # decreasing
    assert abs(p.sum() - 1) < 1e-12
    assert abs(np.sum(p**2) - S0) < 1e-9


def test_zipf_exponent_zero_is_uniform():
    p = D.zipf(40, 8, 1 / 8)
    np.testing.assert_allclose(p[:8], 1 / 8, rtol=0, atol=1e-15)
    assert D.zipf_exponent(8, 1 / 8) == 0.0


@pytest.mark.parametrize(
    "args,match",
    [
        ((600, 52, 0.01), "out of reach"),  # S0 < 1/52
        ((600, 52, 1.0), "out of reach"),
        ((600, 52, 1.5), "out of reach"),
        ((600, 601, 0.1), "support must be in"),
        ((600, 0, 0.1), "support must be in"),
        ((0, 1, 0.5), "s must be a positive integer"),
        ((10, 1, 0.5), "out of reach"),
    ],
)
def test_zipf_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        D.zipf(*args)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(support=st.integers(2, 300), u=st.floats(0.0, 0.999))
def test_zipf_property(support, u):
    S0 = 1 / support + u * (1 - 1 / support)  # anywhere in [1/support, 1)
    if S0 >= 1:
        return
    p = D.zipf(support + 5, support, S0)
    assert abs(np.sum(p**2) - S0) < 1e-9
    assert np.count_nonzero(p) == support


def test_uniform_and_dirichlet():
    u = D.uniform(7)
    assert np.allclose(u, 1 / 7) and abs(u.sum() - 1) < 1e-15
    a = D.dirichlet(20, 0.5, seed=3)
    b = D.dirichlet(20, 0.5, seed=3)
    c = D.dirichlet(20, 0.5, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.sum() - 1) < 1e-12 and np.all(a >= 0)
    batch = D.dirichlet(3, [1.0, 2.0, 3.0], seed=0, size=81)
    assert batch.shape == (81, 3)
    D.validate(batch, ndim=2)
    with pytest.raises(ValueError, match="alpha"):
        D.dirichlet(3, -1.0)
    with pytest.raises(ValueError, match="s must be"):
        D.uniform(0)


def test_validate_accepts_and_never_renormalises():
    p = np.array([0.5, 0.5 + 5e-10])
    out = D.validate(p)
    assert out.dtype == float and np.array_equal(out, p)
    D.validate(np.array([[0.2, 0.8], [1.0, 0.0]]), ndim=2)


@pytest.mark.parametrize(
    "p,kw,match",
    [
        ([0.5, -0.1, 0.6], {}, "negative"),
        ([0.5, np.nan, 0.5], {}, "NaN or infinite"),
        ([0.5, np.inf], {}, "NaN or infinite"),
        ([0.3, 0.3], {}, "sum to 1"),
        ([0.5, 0.5 + 1e-8], {}, "sum to 1"),
        ([[0.5, 0.5]], {}, "ndim"),
        (np.ones((2, 2, 2)) / 2, {"ndim": (1, 2)}, "ndim"),
        (np.zeros(0), {}, "at least one token"),
        ([[0.5, 0.5], [0.9, 0.0]], {"ndim": 2}, "sum to 1"),
    ],
)
def test_validate_rejects(p, kw, match):
    with pytest.raises(ValueError, match=match):
        D.validate(p, **kw)
