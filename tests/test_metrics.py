"""Tests of collapse_lib.metrics (pure row-wise functions)."""

import numpy as np
import pytest

from collapse_lib import metrics as M


def test_scalar_metrics_on_known_vectors():
    p = np.array([0.5, 0.25, 0.25, 0.0])
    q = np.array([0.0, 0.5, 0.5, 0.0])
    assert M.sigma(p) == pytest.approx(0.375)
    assert M.max_prob(p) == 0.5
    assert M.l1(p, q) == pytest.approx(1.0)
    assert M.support_size(p) == 3
    assert M.tail_mass(p, [2, 3]) == pytest.approx(0.25)
    assert M.tail_mass(p, np.array([False, True, True, False])) == pytest.approx(0.5)
    assert M.entropy(p) == pytest.approx(-(0.5 * np.log(0.5) + 0.5 * np.log(0.25)))
    assert not M.is_dirac(p) and M.winner(p) == -1
    d = np.array([0.0, 0.0, 1.0, 0.0])
    assert M.is_dirac(d) and M.winner(d) == 2 and M.sigma(d) == 1.0 and M.entropy(d) == 0.0


def test_row_wise_shapes():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(5), size=(4, 3))  # (runs, gens, s)
    assert M.sigma(P).shape == (4, 3)
    assert M.l1(P, P[:, :1]).shape == (4, 3)
    np.testing.assert_allclose(M.sigma(P), (P**2).sum(-1))
    np.testing.assert_allclose(M.max_prob(P), P.max(-1))
    assert M.support_size(P).shape == (4, 3)


def test_collapse_time_from_history():
    e0, e1 = np.eye(3)[0], np.eye(3)[1]
    mix = np.array([0.5, 0.5, 0.0])
    h1 = np.stack([e0, mix, mix, e1, e1])  # p^(0) is a Dirac (ignored), collapse at m = 3
    h2 = np.stack([mix, mix, mix, mix, mix])
    assert M.collapse_time(h1) == 3
    assert M.collapse_time(h2) == -1
    np.testing.assert_array_equal(M.collapse_time(np.stack([h1, h2])), [3, -1])
    with pytest.raises(ValueError, match="history"):
        M.collapse_time(mix)


def test_tail_mass_mask_length_checked():
    with pytest.raises(ValueError, match="mask"):
        M.tail_mass(np.array([0.5, 0.5]), np.array([True, False, True]))


def test_dirac_tolerance():
    p = np.array([1 - 1e-14, 1e-14])
    assert M.is_dirac(p)
    assert not M.is_dirac(np.array([1 - 1e-6, 1e-6]))


def test_metrics_validate_their_input():
    from collapse_lib._validate import InvalidArgument

    for call, name in [
        (lambda: M.l1([0.5, 0.5], [1.0]), "q"),  # no broadcasting over tokens
        (lambda: M.sigma([0.5, 0.6]), "p"),
        (lambda: M.tail_mass([0.5, 0.5], [-1]), "tokens"),  # no negative wrap-around
        (lambda: M.tail_mass([0.5, 0.5], [1, 1]), "tokens"),  # no double counting
        (lambda: M.tail_mass([0.5, 0.5], [2]), "tokens"),
        (lambda: M.tail_mass([0.5, 0.5], [0.5]), "tokens"),
        (lambda: M.collapse_time(np.array([[1.0, 0.0]])), "history"),  # needs generations 0..G, G >= 1
        (lambda: M.is_dirac([1.0, 0.0], atol=1.0), "atol"),
        (lambda: M.support_size([1.0, 0.0], tol=-1e-3), "tol"),
    ]:
        with pytest.raises(InvalidArgument, match=name):
            call()
    assert M.tail_mass([0.5, 0.5], []) == 0.0
    assert M.tail_mass([0.5, 0.3, 0.2], [2.0, 0]) == pytest.approx(0.7)  # integral floats are indices
