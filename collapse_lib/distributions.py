"""Initial next-token distributions p^(0) and their validation.

The paper (Seddik et al., 2024, Fig. 2) starts its simulations from distributions
over s = 600 tokens with a chosen support size s~ and a chosen S0 = sum_i p_i^2.
:func:`zipf` builds such a distribution: a power law restricted to the first
`support` tokens whose exponent is solved numerically so that sum p_i^2 = S0.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

__all__ = ["validate", "zipf", "zipf_exponent", "uniform", "dirichlet"]

_SUM_TOL = 1e-9


def validate(p, ndim: int | tuple[int, ...] = 1, name: str = "p") -> np.ndarray:
    """Check that `p` is a probability vector (or a batch of them, row-wise).

    Raises ValueError on a wrong number of dimensions, an empty last axis, NaN or
    infinite entries, negative entries, or a (row) sum farther than 1e-9 from 1.
    Never renormalises: returns ``p`` as a float64 array, unchanged.
    """
    arr = np.asarray(p, dtype=float)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        raise ValueError(f"{name} must have ndim in {allowed}, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one token (empty last axis)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative entries (min {arr.min():.3g})")
    sums = arr.sum(axis=-1)
    bad = np.abs(sums - 1.0) > _SUM_TOL
    if np.any(bad):
        worst = float(np.max(np.abs(np.atleast_1d(sums) - 1.0)))
        raise ValueError(
            f"{name} must sum to 1 along its last axis (off by {worst:.3g}); "
            "it is not renormalised silently"
        )
    return arr


def _zipf_probs(a: float, support: int) -> np.ndarray:
    """p_i proportional to (i+1)^(-a), i < support, computed in log space."""
    logw = -a * np.log(np.arange(1, support + 1, dtype=float))
    logw -= logw.max()
    w = np.exp(logw)
    return w / w.sum()


def zipf_exponent(support: int, S0: float) -> float:
    """Exponent a >= 0 such that the Zipf law (i+1)^(-a) on `support` tokens has sum p_i^2 = S0.

    S(a) = sum_i p_i(a)^2 increases continuously from 1/support (a = 0, uniform)
    towards 1 (a -> infinity, Dirac on token 0), so the root is unique; it is found
    by bracketing and scipy.optimize.brentq.
    """
    support = int(support)
    if support < 1:
        raise ValueError(f"support must be >= 1, got {support}")
    if not np.isfinite(S0) or S0 < 1.0 / support - 1e-15 or S0 >= 1.0:
        raise ValueError(
            f"S0={S0} is out of reach for support {support}: need 1/support "
            f"({1.0 / support:.6g}) <= S0 < 1"
        )
    if support == 1:
        raise ValueError("support 1 gives S0 = 1 only; need 1/support <= S0 < 1")
    if abs(S0 - 1.0 / support) <= 1e-15:
        return 0.0

    def f(a: float) -> float:
        p = _zipf_probs(a, support)
        return float(np.dot(p, p)) - S0

    hi = 1.0
    while f(hi) < 0:
        hi *= 2.0
        if hi > 1e6:  # pragma: no cover - S0 < 1 always brackets well before this
            raise ValueError(f"could not bracket the Zipf exponent for S0={S0}")
    return float(brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def zipf(s: int, support: int, S0: float) -> np.ndarray:
    """Zipf-like distribution on s tokens with `support` non-zero entries and sum p_i^2 = S0.

    The first `support` tokens get p_i proportional to (i+1)^(-a), decreasing in i; the
    other s - support tokens get 0. The exponent a is :func:`zipf_exponent` (a = 0 gives
    the uniform distribution on the support, S0 = 1/support). Raises ValueError when S0
    is out of reach (S0 < 1/support or S0 >= 1) or support > s.
    """
    s, support = int(s), int(support)
    if s < 1:
        raise ValueError(f"s must be >= 1, got {s}")
    if not 1 <= support <= s:
        raise ValueError(f"support must be in [1, s={s}], got {support}")
    a = zipf_exponent(support, S0)
    p = np.zeros(s)
    p[:support] = _zipf_probs(a, support)
    err = abs(float(np.dot(p, p)) - S0)
    if err > 1e-9:  # pragma: no cover - guarded by brentq tolerances
        raise RuntimeError(f"Zipf solve missed S0 by {err:.3g}")
    return p


def uniform(s: int) -> np.ndarray:
    """Uniform distribution on s tokens (S0 = 1/s)."""
    s = int(s)
    if s < 1:
        raise ValueError(f"s must be >= 1, got {s}")
    return np.full(s, 1.0 / s)


def dirichlet(s: int, alpha: float | np.ndarray = 1.0, seed=None, size: int | None = None) -> np.ndarray:
    """Random distribution(s) on s tokens drawn from Dirichlet(alpha).

    `alpha` is a positive scalar (symmetric Dirichlet) or a length-s vector. With
    `size`, returns an array of shape (size, s) (one distribution per row).
    """
    s = int(s)
    if s < 1:
        raise ValueError(f"s must be >= 1, got {s}")
    alpha_vec = np.broadcast_to(np.asarray(alpha, dtype=float), (s,)).copy()
    if not np.all(np.isfinite(alpha_vec)) or np.any(alpha_vec <= 0):
        raise ValueError("alpha must be finite and > 0")
    rng = np.random.default_rng(seed)
    return rng.dirichlet(alpha_vec, size=size)
