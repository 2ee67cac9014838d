"""Quantities of a next-token distribution that track model collapse (row-wise).

All functions accept a 1-D distribution or an array whose last axis indexes tokens
(e.g. (runs, s) or (runs, generations, s)) and reduce over that last axis. The public
functions validate their input (every row a probability vector, see
:func:`collapse_lib.distributions.validate`); the underscored kernels (``_sigma``,
``_l1``, ...) compute the same quantities without checks and are what the simulation
engine (:mod:`collapse_lib.simulate`) calls in its inner loop, so every per-generation
record of a :class:`~collapse_lib.simulate.SimulationResult` is defined here.

Paper notation (Seddik et al., 2024, Section 3): sigma_m = ||p^(m)||_2^2,
||p^(m)||_inf, L1 drift ||p^(m) - p^(1)||_1, collapse time T = inf{m >= 1 : p^(m) is a
Dirac mass}.
"""

from __future__ import annotations

import numpy as np

from ._validate import ArgumentTypeError, InvalidArgument, real
from .distributions import validate

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
_ANY_NDIM = tuple(range(1, 33))


def _dist(p, name: str = "p", ndim: tuple[int, ...] = _ANY_NDIM) -> np.ndarray:
    return validate(p, ndim=ndim, name=name)


def _atol(atol) -> float:
    return real("atol", atol, 0.0, 1.0, high_open=True)


# ----------------------------------------------------------------------------- kernels (no checks)
def _sigma(p: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", p, p)


def _max_prob(p: np.ndarray) -> np.ndarray:
    return p.max(axis=-1)


def _l1(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.abs(p - q).sum(axis=-1)


def _is_dirac(p: np.ndarray, atol: float = DIRAC_ATOL) -> np.ndarray:
    return _max_prob(p) >= 1.0 - atol


def _winner(p: np.ndarray, atol: float = DIRAC_ATOL) -> np.ndarray:
    return np.where(_is_dirac(p, atol), p.argmax(axis=-1), -1)


def _support_size(p: np.ndarray, tol: float = 0.0) -> np.ndarray:
    return np.count_nonzero(p > tol, axis=-1)


# ----------------------------------------------------------------------------- public
def sigma(p) -> np.ndarray:
    """sigma = sum_i p_i^2 (the paper's sigma_m; 1 iff p is a Dirac mass)."""
    return _sigma(_dist(p))


def max_prob(p) -> np.ndarray:
    """||p||_inf = max_i p_i."""
    return _max_prob(_dist(p))


def l1(p, q) -> np.ndarray:
    """||p - q||_1 = sum_i |p_i - q_i| (twice the total-variation distance).

    p and q must have the same number of tokens (last axis); their leading axes broadcast
    (e.g. a history (runs, G+1, s) against its first generation (runs, 1, s)).
    """
    a, b = _dist(p, "p"), _dist(q, "q")
    if a.shape[-1] != b.shape[-1]:
        raise InvalidArgument(f"q has {b.shape[-1]} tokens but p has {a.shape[-1]} (last axes must match)")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise InvalidArgument(f"q of shape {b.shape} does not broadcast against p of shape {a.shape}") from None
    return _l1(a, b)


def is_dirac(p, atol: float = DIRAC_ATOL) -> np.ndarray:
    """True where p is a Dirac mass, i.e. max_i p_i >= 1 - atol (0 <= atol < 1)."""
    return _is_dirac(_dist(p), _atol(atol))


def winner(p, atol: float = DIRAC_ATOL) -> np.ndarray:
    """Index of the token a Dirac mass sits on; -1 where p is not a Dirac mass."""
    return _winner(_dist(p), _atol(atol))


def support_size(p, tol: float = 0.0) -> np.ndarray:
    """Number of tokens with p_i > tol (surviving tokens), 0 <= tol < 1."""
    return _support_size(_dist(p), real("tol", tol, 0.0, 1.0, high_open=True))


def tail_mass(p, tokens) -> np.ndarray:
    """Total probability sum_{i in tokens} p_i of a set of tokens (e.g. the rare tail of p^(0)).

    `tokens` is a boolean mask over the last axis, or a set of distinct token indices in
    [0, s) (an empty sequence is the empty set, mass 0). Negative indices (no wrap-around),
    repeated indices and out-of-range indices are refused.
    """
    arr = _dist(p)
    s = arr.shape[-1]
    if isinstance(tokens, (str, bytes)) or tokens is None:
        raise ArgumentTypeError(f"tokens must be a boolean mask or a sequence of token indices, got {tokens!r}")
    try:
        idx = np.asarray(tokens)
    except (TypeError, ValueError):
        raise InvalidArgument("tokens must be a boolean mask or a flat sequence of token indices") from None
    if idx.ndim != 1:
        raise InvalidArgument(f"tokens must be 1-D, got shape {idx.shape}")
    if idx.dtype == bool:
        if idx.shape[0] != s:
            raise InvalidArgument(f"tokens: a boolean mask must have the length {s} of the last axis of p, got {idx.shape[0]}")
        return (arr * idx).sum(axis=-1)
    if idx.size == 0:
        return arr.sum(axis=-1) * 0.0
    if idx.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"tokens must hold integer token indices, got dtype {idx.dtype}")
    f = idx.astype(float)
    if np.any(~np.isfinite(f)) or np.any(f != np.floor(f)):
        raise InvalidArgument(f"tokens must be integer token indices, got {tokens!r}"[:200])
    if np.any(f < 0) or np.any(f >= s):
        raise InvalidArgument(f"tokens must be indices in [0, {s}) (no negative wrap-around), got {tokens!r}"[:200])
    ii = f.astype(np.int64)
    if np.unique(ii).size != ii.size:
        raise InvalidArgument("tokens must not repeat an index (each token counts once)")
    return arr[..., ii].sum(axis=-1)


def entropy(p) -> np.ndarray:
    """Shannon entropy -sum_i p_i log p_i in nats (0 log 0 = 0)."""
    arr = _dist(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(arr > 0, arr * np.log(np.where(arr > 0, arr, 1.0)), 0.0)
    return -t.sum(axis=-1)


def collapse_time(history, atol: float = DIRAC_ATOL) -> np.ndarray:
    """First generation m >= 1 at which p^(m) is a Dirac mass; -1 if none.

    `history` has shape (generations+1, s) (one run, row m = p^(m), row 0 = p^(0)) or
    (runs, generations+1, s), with generations >= 1. Generation 0 is ignored, following
    the paper's definition T = inf{m >= 1 : ||p^(m)||_inf = 1}.
    """
    h = _dist(history, "history", ndim=(2, 3))
    if h.shape[-2] < 2:
        raise InvalidArgument(
            f"history must hold generations 0..G with G >= 1 (shape (G+1, s) or (runs, G+1, s)), got shape {h.shape}"
        )
    d = _is_dirac(h, _atol(atol))[..., 1:]
    first = d.argmax(axis=-1) + 1
    return np.where(d.any(axis=-1), first, -1)
