"""Biased decoding: temperature, top-k and top-p (nucleus) truncation.

The paper assumes that synthetic data are drawn from the trained model p^(m) itself
(unbiased sampling). Real systems sample with a temperature T and/or truncate the
distribution. :func:`apply_decoding` maps a model p to the distribution actually
sampled from:

1. temperature: q_i proportional to p_i^(1/T)  (T = 1: unchanged; T -> 0: argmax);
2. top-k: keep the k most likely tokens of q;
3. top-p: keep the smallest set of most likely tokens whose mass is >= top_p;
4. renormalise.

In :mod:`collapse_lib.simulate` the transform is applied to p^(t) before synthetic
samples are drawn from it; real data are never transformed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import boolean, integer, real
from .distributions import validate

__all__ = ["Decoding", "apply_decoding"]

_TOP_P_TOL = 1e-12


def _check_params(temperature, top_k, top_p) -> tuple[float, int | None, float | None]:
    """Validated (temperature, top_k, top_p): T finite > 0, top_k integer >= 1 or None, top_p in (0, 1] or None."""
    t = real("temperature", temperature, 0.0, low_open=True)
    k = None if top_k is None else integer("top_k", top_k, minimum=1)
    q = None if top_p is None else real("top_p", top_p, 0.0, 1.0, low_open=True)
    return t, k, q


@dataclass(frozen=True)
class Decoding:
    """Decoding options used when a model generates synthetic data.

    temperature > 0, top_k a positive integer or None, top_p in (0, 1] or None.
    ``Decoding()`` is unbiased sampling (the identity transform).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        t, k, q = _check_params(self.temperature, self.top_k, self.top_p)
        object.__setattr__(self, "temperature", t)
        object.__setattr__(self, "top_k", k)
        object.__setattr__(self, "top_p", q)

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and self.top_k is None and (self.top_p is None or self.top_p == 1.0)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return apply_decoding(p, self.temperature, self.top_k, self.top_p)


def _apply(p: np.ndarray, temperature: float, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Row-wise transform without validation (p is 2-D, rows sum to 1)."""
    q = p
    if temperature != 1.0:
        # q_i = exp((log p_i - log max p) / T): subtracting before dividing keeps every
        # exponent <= 0 (no overflow to inf - inf = NaN for tiny T); exp(-inf) = 0 keeps
        # zero tokens at zero and T -> 0 gives the uniform law on the argmax set.
        with np.errstate(divide="ignore", over="ignore"):
            lp = np.log(p)
            z = (lp - lp.max(axis=-1, keepdims=True)) / temperature
        q = np.exp(z)
        q = q / q.sum(axis=-1, keepdims=True)
    k = q.shape[-1]
    if top_k is not None and top_k < k:
        # keep the top_k largest entries of each row (ties broken by lower index)
        order = np.argsort(-q, axis=-1, kind="stable")
        drop = order[:, top_k:]
        q = q.copy()
        np.put_along_axis(q, drop, 0.0, axis=-1)
        q = q / q.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-q, axis=-1, kind="stable")
        qs = np.take_along_axis(q, order, axis=-1)
        before = np.cumsum(qs, axis=-1) - qs  # mass strictly before each sorted token
        keep_sorted = before < top_p - _TOP_P_TOL
        keep_sorted[:, 0] = True
        mask = np.zeros_like(keep_sorted)
        np.put_along_axis(mask, order, keep_sorted, axis=-1)
        q = np.where(mask, q, 0.0)
        q = q / q.sum(axis=-1, keepdims=True)
    return q


def apply_decoding(p, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   check: bool = True) -> np.ndarray:
    """Distribution sampled from under biased decoding (row-wise on 2-D input).

    q = p^(1/T) renormalised, then restricted to the top_k most likely tokens, then to
    the nucleus (smallest most-likely set with mass >= top_p), then renormalised.
    Temperature 1 with no truncation returns a copy of p. Zero-probability tokens stay
    at zero. ``check=False`` skips the validation of p (used inside the simulator).
    """
    temperature, top_k, top_p = _check_params(temperature, top_k, top_p)
    arr = validate(p, ndim=(1, 2)) if boolean("check", check) else np.asarray(p, dtype=float)
    one_d = arr.ndim == 1
    q = _apply(arr[None, :] if one_d else arr, temperature, top_k, top_p)
    if np.shares_memory(q, arr):
        q = q.copy()
    return q[0] if one_d else q
