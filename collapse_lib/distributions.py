"""Initial next-token distributions p^(0) and their validation.

The paper (Seddik et al., 2024, Fig. 2) starts its simulations from distributions
over s = 600 tokens with a chosen support size s~ and a chosen S0 = sum_i p_i^2.
:func:`zipf` builds such a distribution: a power law restricted to the first
`support` tokens whose exponent is solved numerically so that sum p_i^2 = S0.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from ._validate import InvalidArgument, check_memory, integer, real, rng_from_seed
from ._validate import _numeric_array

__all__ = ["validate", "zipf", "zipf_exponent", "uniform", "dirichlet"]

_SUM_TOL = 1e-9


def validate(p, ndim: int | tuple[int, ...] = 1, name: str = "p") -> np.ndarray:
    """Check that `p` is a probability vector (or a batch of them, row-wise).

    ``ndim`` is the allowed number of dimensions (an int or a tuple of ints >= 1); the last
    axis indexes tokens. Raises :class:`collapse_lib._validate.InvalidArgument` (a
    ValueError; a TypeError too for non-numeric data) on a wrong number of dimensions, an
    empty axis, NaN or infinite entries, negative entries, or a (row) sum farther than
    1e-9 from 1. Never renormalises: returns ``p`` as a float64 array, unchanged.
    """
    allowed = (ndim,) if isinstance(ndim, (int, np.integer)) and not isinstance(ndim, bool) else ndim
    if not isinstance(allowed, tuple) or not allowed or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in allowed
    ):
        raise InvalidArgument(f"ndim must be a positive int or a tuple of them, got {ndim!r}")
    arr = _numeric_array(name, p).astype(float, copy=False)
    if arr.ndim not in allowed:
        raise InvalidArgument(f"{name} must have ndim in {allowed}, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise InvalidArgument(f"{name} must have at least one token (empty last axis)")
    if arr.size == 0:
        raise InvalidArgument(f"{name} must hold at least one distribution, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument(f"{name} contains NaN or infinite entries")
    if np.any(arr < 0):
        raise InvalidArgument(f"{name} has negative entries (min {arr.min():.3g})")
    sums = arr.sum(axis=-1)
    bad = np.abs(sums - 1.0) > _SUM_TOL
    if np.any(bad):
        worst = float(np.max(np.abs(np.atleast_1d(sums) - 1.0)))
        raise InvalidArgument(
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
    support = integer("support", support, minimum=1)
    check_memory("support", 32.0 * support, f"a Zipf law on {support} tokens")
    S0 = real("S0", S0)
    if S0 < 1.0 / support - 1e-15 or S0 >= 1.0:
        raise InvalidArgument(
            f"S0={S0} is out of reach for support {support}: need 1/support "
            f"({1.0 / support:.6g}) <= S0 < 1"
        )
    if support == 1:  # pragma: no cover - caught by the range check above
        raise InvalidArgument("support 1 gives S0 = 1 only; need 1/support <= S0 < 1")
    if abs(S0 - 1.0 / support) <= 1e-15:
        return 0.0

    def f(a: float) -> float:
        p = _zipf_probs(a, support)
        return float(np.dot(p, p)) - S0

    hi = 1.0
    while f(hi) < 0:
        hi *= 2.0
        if hi > 1e6:  # pragma: no cover - S0 < 1 always brackets well before this
            raise InvalidArgument(f"S0: could not bracket the Zipf exponent for S0={S0}")
    return float(brentq(f, 0.0, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def zipf(s: int, support: int, S0: float) -> np.ndarray:
    """Zipf-like distribution on s tokens with `support` non-zero entries and sum p_i^2 = S0.

    The first `support` tokens get p_i proportional to (i+1)^(-a), decreasing in i; the
    other s - support tokens get 0. The exponent a is :func:`zipf_exponent` (a = 0 gives
    the uniform distribution on the support, S0 = 1/support). Raises ValueError when S0
    is out of reach (S0 < 1/support or S0 >= 1) or support > s.
    """
    s = integer("s", s, minimum=1)
    support = integer("support", support)
    if not 1 <= support <= s:
        raise InvalidArgument(f"support must be in [1, s={s}], got {support}")
    check_memory("s", 8.0 * s, f"a distribution on s={s} tokens")
    a = zipf_exponent(support, S0)
    p = np.zeros(s)
    p[:support] = _zipf_probs(a, support)
    err = abs(float(np.dot(p, p)) - S0)
    if err > 1e-9:  # pragma: no cover - guarded by brentq tolerances
        raise RuntimeError(f"Zipf solve missed S0 by {err:.3g}")
    return p


def uniform(s: int) -> np.ndarray:
    """Uniform distribution on s tokens (S0 = 1/s)."""
    s = integer("s", s, minimum=1)
    check_memory("s", 8.0 * s, f"a distribution on s={s} tokens")
    return np.full(s, 1.0 / s)


def dirichlet(s: int, alpha: float | np.ndarray = 1.0, seed=None, size: int | None = None) -> np.ndarray:
    """Random distribution(s) on s tokens drawn from Dirichlet(alpha).

    `alpha` is a positive scalar (symmetric Dirichlet) or a length-s vector. With
    `size`, returns an array of shape (size, s) (one distribution per row). Rows sum to 1
    to rounding; a draw whose entries all underflow to 0 (tiny alpha) is refused rather
    than returned as NaN.
    """
    s = integer("s", s, minimum=1)
    if size is not None:
        size = integer("size", size, minimum=1)
    a = _numeric_array("alpha", alpha).astype(float)
    if a.ndim > 1 or (a.ndim == 1 and a.size != s):
        raise InvalidArgument(f"alpha must be a scalar or a vector of length s={s}, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InvalidArgument("alpha must be finite and > 0")
    check_memory("size" if size is not None else "s", 8.0 * s * (size or 1) * 2, "the Dirichlet draw")
    rng = rng_from_seed("seed", seed)
    alpha_vec = np.broadcast_to(a, (s,)).copy()
    out = rng.dirichlet(alpha_vec, size=size)
    if not np.all(np.isfinite(out)):
        raise InvalidArgument(f"alpha={alpha!r} is so small that the Dirichlet draw underflowed; use alpha >= 1e-3")
    return out
