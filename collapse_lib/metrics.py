"""Quantities of a next-token distribution that track model collapse (row-wise).

All functions accept a 1-D distribution or an array whose last axis indexes tokens
(e.g. (runs, s) or (runs, generations, s)) and reduce over that last axis. They do
not validate their input (they are called in inner loops); use
:func:`collapse_lib.distributions.validate` for that.

Paper notation (Seddik et al., 2024, Section 3): sigma_m = ||p^(m)||_2^2,
||p^(m)||_inf, L1 drift ||p^(m) - p^(1)||_1, collapse time T = inf{m >= 1 : p^(m) is a
Dirac mass}.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sigma",
    "max_prob",
    "l1",
    "is_dirac",
    "collapse_time",
    "winner",
    "support_size",
    "tail_mass",
    "entropy",
]

DIRAC_ATOL = 1e-12


def sigma(p) -> np.ndarray:
    """sigma = sum_i p_i^2 (the paper's sigma_m; 1 iff p is a Dirac mass)."""
    p = np.asarray(p, dtype=float)
    return np.einsum("...i,...i->...", p, p)


def max_prob(p) -> np.ndarray:
    """||p||_inf = max_i p_i."""
    return np.asarray(p, dtype=float).max(axis=-1)


def l1(p, q) -> np.ndarray:
    """||p - q||_1 = sum_i |p_i - q_i| (twice the total-variation distance)."""
    return np.abs(np.asarray(p, dtype=float) - np.asarray(q, dtype=float)).sum(axis=-1)


def is_dirac(p, atol: float = DIRAC_ATOL) -> np.ndarray:
    """True where p is a Dirac mass, i.e. max_i p_i >= 1 - atol."""
    return max_prob(p) >= 1.0 - atol


def winner(p, atol: float = DIRAC_ATOL) -> np.ndarray:
    """Index of the token a Dirac mass sits on; -1 where p is not a Dirac mass."""
    p = np.asarray(p, dtype=float)
    return np.where(is_dirac(p, atol), p.argmax(axis=-1), -1)


def support_size(p, tol: float = 0.0) -> np.ndarray:
    """Number of tokens with p_i > tol (surviving tokens)."""
    return np.count_nonzero(np.asarray(p) > tol, axis=-1)


def tail_mass(p, tokens) -> np.ndarray:
    """Total probability sum_{i in tokens} p_i of a set of tokens (e.g. the rare tail of p^(0)).

    `tokens` is a sequence of indices or a boolean mask over the last axis.
    """
    p = np.asarray(p, dtype=float)
    idx = np.asarray(tokens)
    if idx.dtype == bool:
        if idx.shape[-1] != p.shape[-1]:
            raise ValueError("boolean token mask must have the length of the last axis of p")
        return (p * idx).sum(axis=-1)
    return p[..., idx].sum(axis=-1)


def entropy(p) -> np.ndarray:
    """Shannon entropy -sum_i p_i log p_i in nats (0 log 0 = 0)."""
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -t.sum(axis=-1)


def collapse_time(history, atol: float = DIRAC_ATOL) -> np.ndarray:
    """First generation m >= 1 at which p^(m) is a Dirac mass; -1 if none.

    `history` has shape (generations+1, s) (one run, row m = p^(m), row 0 = p^(0)) or
    (runs, generations+1, s). Generation 0 is ignored, following the paper's
    definition T = inf{m >= 1 : ||p^(m)||_inf = 1}.
    """
    h = np.asarray(history, dtype=float)
    if h.ndim < 2:
        raise ValueError("history must have shape (generations+1, s) or (runs, generations+1, s)")
    d = is_dirac(h, atol)[..., 1:]
    first = d.argmax(axis=-1) + 1
    return np.where(d.any(axis=-1), first, -1)
