"""Update rules: one class per scenario computes p^(m) from the engine's packed state.

A stepper's ``step(st, m, rng)`` draws generation m of every active run (rows of the
packed arrays of :class:`~collapse_lib.simulate.state._State`) and returns p^(m) as a
(runs, k) array; ``sources(st, m)`` lists the arrays whose positive entries are tokens a
future generation could still be trained on (the engine adds the current p^(m) itself),
which is how the engine knows when a token is gone for good and when a run is absorbed.
"""

from __future__ import annotations

import numpy as np

from .._validate import ArgumentTypeError
from ..decoding import Decoding, _apply
from .scenarios import (
    Accumulate,
    AccumulateSubsample,
    FullySynthetic,
    PartiallySynthetic,
    RandomPool,
    RecentModels,
    Schedule,
)
from .state import _State



def _decode(dec: Decoding | None, p: np.ndarray) -> np.ndarray:
    if dec is None or dec.is_identity:
        return p
    return _apply(p, dec.temperature, dec.top_k, dec.top_p)


def _normalise_rows(q: np.ndarray) -> np.ndarray:
    """Internal numerical clean-up of a mixture that sums to 1 up to rounding."""
    return q / q.sum(axis=1, keepdims=True)


def _mv_hypergeometric(rng: np.random.Generator, colors: np.ndarray, nsample: int) -> np.ndarray:
    """Row-wise multivariate hypergeometric draw (sampling without replacement).

    Sequential conditional draws over columns: the count of colour j among the remaining
    draws is hypergeometric(colors_j, remaining - colors_j, draws left).
    """
    R, k = colors.shape
    out = np.zeros_like(colors)
    left_pool = colors.sum(axis=1)
    left_draw = np.full(R, nsample, dtype=np.int64)
    for j in range(k):
        c = colors[:, j]
        if not left_draw.any():
            break
        x = rng.hypergeometric(c, left_pool - c, left_draw)
        out[:, j] = x
        left_pool = left_pool - c
        left_draw = left_draw - x
    return out



# ----------------------------------------------------------------------------- steppers
class _Stepper:
    """One scenario's update rule. `step` returns p^(m); `sources` lists arrays whose
    positive entries are tokens a future generation could still be trained on (the
    current p^(m) is always added by the engine)."""

    absorbing = True

    def __init__(self, sc):
        self.sc = sc
        self.dec = sc.decoding

    def step(self, st: _State, m: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def sources(self, st: _State, m: int) -> list[np.ndarray]:
        return []


class _FullyStep(_Stepper):
    def step(self, st, m, rng):
        pv = st.p0p if m == 1 else _decode(self.dec, st.P)
        n = st.rowvec["n"] if "n" in st.rowvec else self.sc.n
        return rng.multinomial(n, pv) / (n[:, None] if np.ndim(n) else n)


class _PartialStep(_Stepper):
    absorbing = False

    def step(self, st, m, rng):
        N, n = self.sc.N, self.sc.n
        if m == 1:
            st.extra["C"] = rng.multinomial(N, st.p0p)
            return st.extra["C"] / N
        X = rng.multinomial(n, _decode(self.dec, st.P))
        return (st.extra["C"] + X) / (N + n)
    # sources: p^(m) contains the real counts C, so the current model suffices


class _RecentStep(_Stepper):
    def step(self, st, m, rng):
        n, K = self.sc.n, self.sc.K
        R, k = st.P.shape
        if m == 1:
            st.extra["W"] = np.zeros((R, K, k))
            st.extra["W"][:, 0] = st.p0p
        W = st.extra["W"]
        w = min(m, K)
        b = n // K if self.sc.early == "paper" else n // w
        X = rng.multinomial(b, W[:, :w].reshape(R * w, k)).reshape(R, w, k).sum(axis=1)
        P = X / (b * w)
        W[:, m % K] = _decode(self.dec, P)
        return P

    def sources(self, st, m):
        w = min(m + 1, self.sc.K)
        return [st.extra["W"][:, i] for i in range(w)]


class _PoolStep(_Stepper):
    absorbing = False

    def step(self, st, m, rng):
        if m == 1:
            st.extra["S"] = st.p0p.copy()
        q = _normalise_rows(st.extra["S"] / m)
        P = rng.multinomial(self.sc.n, q) / self.sc.n
        st.extra["S"] = st.extra["S"] + _decode(self.dec, P)
        return P

    def sources(self, st, m):
        return [st.extra["S"]]


class _AccStep(_Stepper):
    absorbing = False

    def step(self, st, m, rng):
        n = self.sc.n
        pv = st.p0p if m == 1 else _decode(self.dec, st.P)
        X = rng.multinomial(n, pv)
        st.extra["D"] = X if m == 1 else st.extra["D"] + X
        return st.extra["D"] / (m * n)


class _AccSubStep(_Stepper):
    absorbing = False

    def step(self, st, m, rng):
        n = self.sc.n
        pv = st.p0p if m == 1 else _decode(self.dec, st.P)
        X = rng.multinomial(n, pv)
        if m == 1:
            st.extra["D"] = X
            return X / n
        st.extra["D"] = st.extra["D"] + X
        return _mv_hypergeometric(rng, st.extra["D"], n) / n

    def sources(self, st, m):
        return [st.extra["D"]]


class _ScheduleStep(_Stepper):
    absorbing = False

    def __init__(self, sc, generations):
        super().__init__(sc)
        self.table = sc.table(generations)
        self.L = int(max(row[0] for row in self.table))
        last = {}
        for m, row in enumerate(self.table, start=1):
            for t in np.nonzero(row)[0]:
                last[int(t)] = m
        self.last_use = last

    def _prefix_counts(self, seq: np.ndarray, c: int, k: int) -> np.ndarray:
        R = seq.shape[0]
        idx = seq[:, :c] + (np.arange(R) * k)[:, None]
        return np.bincount(idx.ravel(), minlength=R * k).reshape(R, k)

    def step(self, st, m, rng):
        R, k = st.P.shape
        row = self.table[m - 1]
        if m == 1 and self.L > 0:
            cdf = np.cumsum(st.p0p, axis=1)
            u = rng.random((R, self.L)) * cdf[:, -1:]
            seq = np.empty((R, self.L), dtype=np.int64)
            for r in range(R):
                seq[r] = np.minimum(np.searchsorted(cdf[r], u[r], side="right"), k - 1)
            st.seqs["real"] = seq
            st.extra["C"] = self._prefix_counts(seq, self.L, k)
        X = np.zeros((R, k), dtype=np.int64)
        if row[0] > 0:
            X += self._prefix_counts(st.seqs["real"], int(row[0]), k)
        for t in np.nonzero(row[1:])[0] + 1:
            X += rng.multinomial(int(row[t]), st.extra[f"M{t}"])
        P = X / row.sum()
        if self.last_use.get(m, 0) > m:
            st.extra[f"M{m}"] = _decode(self.dec, P)
        for t in [t for t in self.last_use if t >= 1 and self.last_use[t] <= m]:
            st.extra.pop(f"M{t}", None)
        return P

    def sources(self, st, m):
        return [a for key, a in st.extra.items()]


def _make_stepper(sc, generations: int) -> _Stepper:
    if isinstance(sc, FullySynthetic):
        return _FullyStep(sc)
    if isinstance(sc, PartiallySynthetic):
        return _PartialStep(sc)
    if isinstance(sc, RecentModels):
        return _RecentStep(sc)
    if isinstance(sc, RandomPool):
        return _PoolStep(sc)
    if isinstance(sc, Accumulate):
        return _AccStep(sc)
    if isinstance(sc, AccumulateSubsample):
        return _AccSubStep(sc)
    if isinstance(sc, Schedule):
        return _ScheduleStep(sc, generations)
    raise ArgumentTypeError(f"scenario must be one of the scenario dataclasses of collapse_lib.simulate, got {type(sc).__name__}")

