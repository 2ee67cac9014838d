"""Recursive training of the paper's statistical language model, for many runs at once.

Model (Seddik et al., 2024, Section 2): for one fixed context, a "model" is a
next-token distribution p^(m) on s tokens, and training = counting. Generation m is
the empirical distribution of its training data, eq. (5):

    p^(m) = (1 / n^(m)) * sum_t sum_{l <= n_t^(m)} y_l^(t),

where y^(t) are one-hot samples from p^(t) (t = 0: real data from p^(0)). Scenarios
below fix the sample sizes n_t^(m). Generation 1 is always trained on real samples
drawn from p^(0).

Scenarios (frozen dataclasses; each has ``decoding: Decoding | None`` applied to a
model p^(t), t >= 1, before synthetic samples are drawn from it; real data are never
transformed):

* :class:`FullySynthetic` (n): p^(m) from n samples of p^(m-1).
* :class:`PartiallySynthetic` (N, n): the SAME N real samples at every generation
  (the paper's setting): p^(1) = empirical distribution of N real samples and, for
  m >= 2, p^(m) = (N p^(1) + counts of n samples of p^(m-1)) / (N + n).
* :class:`RecentModels` (n, K): floor(n/K) fresh samples from each of the models
  p^(t), max(0, m-K) <= t <= m-1 (paper Sec. 9.2); "model" 0 is p^(0) (fresh real
  samples). Early generations m < K: ``early="paper"`` (default) follows the paper's
  formula literally, floor(n/K) samples from each of the m existing models (so
  n^(m) = m floor(n/K) < n, and generation 1 uses floor(n/K) real samples);
  ``early="fill"`` spreads n over the existing models, floor(n/min(m, K)) each.
* :class:`RandomPool` (n): each of the n samples comes from a model p^(g) with g
  uniform on {0, ..., m-1} (paper Sec. 9.2), drawn afresh (g = 0: a fresh real
  sample). Drawing g then a token is the same as drawing a token from the average
  (1/m) sum_t p^(t), which is how it is simulated.
* :class:`Accumulate` (n): generation 1 trains on n real samples; each later
  generation adds n samples of the current model to the data set and trains on all of
  it (Gerstgrasser et al., 2024).
* :class:`AccumulateSubsample` (n): the pool grows as in Accumulate, but each
  generation trains on a uniformly random subset of n points of the pool, drawn
  without replacement (Kazdan et al., 2024).
* :class:`Schedule` (counts): general n_t^(m) of eq. (5). Real data are a fixed
  corpus (generation m uses its first n_0^(m) points, as in eq. (5)); synthetic
  samples from p^(t), t >= 1, are drawn afresh each time they are used.

Engine: runs are rows of (runs, k) arrays, vectorised with numpy
(``Generator.multinomial`` with 2-D pvals). Tokens are packed per run: column j of
run r stands for token ``tok[r, j]``; tokens that no future data source can produce
are dropped, so after generation 1 the width k follows the number of surviving
tokens (at most n for fully synthetic), not s. A run whose every data source is the
same single token is *absorbed* (nothing can change any more); it is removed from the
batch and its per-generation records are filled forward with their (constant) values.
With ``until_collapse=True``, the unrecorded generations of :class:`FullySynthetic`
(without decoding) run in a compiled per-run Wright-Fisher kernel
(:mod:`collapse_lib._wf_kernel`, numba), with a pure-numpy fallback; see
``benchmarks/bench_simulate.py`` for the speed-up over a plain loop.
Results are deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ._wf_kernel import wf_until_collapse
from .decoding import Decoding, _apply
from .distributions import validate

__all__ = [
    "FullySynthetic",
    "PartiallySynthetic",
    "RecentModels",
    "RandomPool",
    "Accumulate",
    "AccumulateSubsample",
    "Schedule",
    "SimulationResult",
    "simulate",
]

_DIRAC_TOL = 1e-12


# ----------------------------------------------------------------------------- scenarios
def _pos_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _check_decoding(d) -> None:
    if d is not None and not isinstance(d, Decoding):
        raise ValueError(f"decoding must be a Decoding or None, got {type(d).__name__}")


@dataclass(frozen=True)
class FullySynthetic:
    """Train generation m on n samples of p^(m-1) only (paper Sec. 2.2).

    ``n`` may also be a sequence of positive integers, one sample size per run (it is
    stored as a tuple); this lets one :func:`simulate` call cover a whole sweep over n,
    e.g. the paper's Figure 2, with a 2-D p0.
    """

    n: int | tuple[int, ...]
    decoding: Decoding | None = None

    def __post_init__(self):
        if isinstance(self.n, (int, np.integer)) and not isinstance(self.n, bool):
            _pos_int("n", self.n)
        else:
            try:
                vals = tuple(self.n)
            except TypeError:
                raise ValueError(f"n must be a positive integer or a sequence of them, got {self.n!r}") from None
            if not vals:
                raise ValueError("n must not be an empty sequence")
            for v in vals:
                _pos_int("n", v)
            object.__setattr__(self, "n", tuple(int(v) for v in vals))
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class PartiallySynthetic:
    """Same N real samples at every generation plus n samples of p^(m-1) (paper Sec. 2.2)."""

    N: int
    n: int
    decoding: Decoding | None = None

    def __post_init__(self):
        _pos_int("N", self.N)
        _pos_int("n", self.n)
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class RecentModels:
    """floor(n/K) samples from each of the last K models (paper Sec. 9.2, "Most Recent Models")."""

    n: int
    K: int
    early: str = "paper"
    decoding: Decoding | None = None

    def __post_init__(self):
        _pos_int("n", self.n)
        _pos_int("K", self.K)
        if self.K > self.n:
            raise ValueError(f"K={self.K} must be <= n={self.n} so that floor(n/K) >= 1")
        if self.early not in ("paper", "fill"):
            raise ValueError(f"early must be 'paper' or 'fill', got {self.early!r}")
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class _SampleSizeScenario:
    """Common part of the scenarios described by one sample size n (and a decoding)."""

    n: int
    decoding: Decoding | None = None

    def __post_init__(self):
        _pos_int("n", self.n)
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class RandomPool(_SampleSizeScenario):
    """Each of n samples from a generation drawn uniformly from {0..m-1} (paper Sec. 9.2)."""


@dataclass(frozen=True)
class Accumulate(_SampleSizeScenario):
    """Keep all data; add n samples of the current model per generation (Gerstgrasser et al. 2024)."""


@dataclass(frozen=True)
class AccumulateSubsample(_SampleSizeScenario):
    """Accumulate a pool, train on a random subset of size n of it (Kazdan et al. 2024)."""


@dataclass(frozen=True)
class Schedule:
    """General schedule n_t^(m) of eq. (5).

    ``counts`` is either a callable ``m -> sequence of length m`` giving
    (n_0^(m), ..., n_{m-1}^(m)), or a 2-D array-like whose row m-1 holds n_t^(m) in its
    first m entries (later entries must be 0). Every n^(m) = sum_t n_t^(m) must be >= 1.
    Real data are a fixed corpus (prefix of length n_0^(m)); synthetic samples are
    drawn afresh from p^(t) (decoded if ``decoding`` is set).
    """

    counts: Callable[[int], Sequence[int]] | Sequence[Sequence[int]] | np.ndarray = field(compare=False)
    decoding: Decoding | None = None

    def __post_init__(self):
        if not callable(self.counts):
            arr = np.asarray(self.counts)
            if arr.ndim != 2 or arr.shape[0] < 1:
                raise ValueError("Schedule counts must be a callable or a 2-D array (generations x generations)")
        _check_decoding(self.decoding)

    def table(self, generations: int) -> list[np.ndarray]:
        """Validated list [n^(1), ..., n^(G)] where n^(m) = (n_0^(m), ..., n_{m-1}^(m))."""
        out = []
        if not callable(self.counts):
            arr = np.asarray(self.counts)
            if arr.shape[0] < generations:
                raise ValueError(f"Schedule array has {arr.shape[0]} rows < generations={generations}")
        for m in range(1, generations + 1):
            if callable(self.counts):
                row = np.asarray(self.counts(m))
                if row.shape != (m,):
                    raise ValueError(f"Schedule counts({m}) must have length {m}, got shape {row.shape}")
            else:
                full = np.asarray(arr[m - 1])
                if full.shape[0] < m:
                    raise ValueError(f"Schedule array row {m - 1} is shorter than {m}")
                if np.any(full[m:] != 0):
                    raise ValueError(f"Schedule row {m - 1}: n_t^({m}) must be 0 for t >= {m}")
                row = full[:m]
            if not np.all(np.isfinite(row)) or np.any(row < 0) or np.any(row != np.round(row)):
                raise ValueError(f"Schedule n_t^({m}) must be non-negative integers, got {row}")
            row = row.astype(np.int64)
            if row.sum() < 1:
                raise ValueError(f"Schedule: generation {m} has no training samples")
            out.append(row)
        return out


Scenario = FullySynthetic | PartiallySynthetic | RecentModels | RandomPool | Accumulate | AccumulateSubsample | Schedule


# ----------------------------------------------------------------------------- result
@dataclass
class SimulationResult:
    """Output of :func:`simulate`.

    Per-generation arrays have shape (runs, generations+1); column m is generation m,
    column 0 is p^(0). ``drift_first[:, m] = ||p^(m) - p^(1)||_1`` with column 0 defined as
    ||p^(0) - p^(1)||_1; ``drift_true[:, m] = ||p^(m) - p^(0)||_1``. ``collapse_time`` is the
    first m >= 1 with p^(m) a Dirac mass (-1 if none was seen), ``winner`` the token of
    the final distribution if it is a Dirac mass (-1 otherwise), ``absorption_time`` the
    generation from which nothing can change any more (every data source is the same
    single token; -1 if not reached). ``final`` holds the last simulated distribution of
    each run (p^(generations) normally; the distribution at absorption or at
    ``max_generations`` in ``until_collapse`` mode). ``history`` (runs, generations+1, s)
    is filled only with ``keep_history=True``. ``generations_run`` is the last
    generation simulated for any run.
    """

    scenario: object
    sigma: np.ndarray
    max_prob: np.ndarray
    drift_first: np.ndarray
    drift_true: np.ndarray
    support_size: np.ndarray
    collapse_time: np.ndarray
    winner: np.ndarray
    absorption_time: np.ndarray
    final: np.ndarray
    generations: int
    generations_run: int
    seed: object = None
    history: np.ndarray | None = None

    @property
    def runs(self) -> int:
        return self.sigma.shape[0]

    def mean_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs of a per-generation array and its Monte Carlo standard error."""
        a = np.asarray(getattr(self, name), dtype=float)
        r = a.shape[0]
        return a.mean(axis=0), (a.std(axis=0, ddof=1) / math.sqrt(r) if r > 1 else np.full(a.shape[1:], np.nan))


# ----------------------------------------------------------------------------- engine state
class _State:
    """Packed per-run arrays. Arrays in `extra` have runs on axis 0 and packed tokens on
    the last axis; arrays in `seqs` hold packed column indices (remapped on repack)."""

    def __init__(self, tok: np.ndarray, p0p: np.ndarray):
        self.tok = tok
        self.p0p = p0p
        self.P = p0p.copy()
        self.p1p = np.zeros_like(p0p)
        self.p0_out = np.zeros(tok.shape[0])
        self.p1_out = np.zeros(tok.shape[0])
        self.extra: dict[str, np.ndarray] = {}
        self.seqs: dict[str, np.ndarray] = {}
        self.rowvec: dict[str, np.ndarray] = {}  # per-run scalars (e.g. sample sizes)

    @property
    def k(self) -> int:
        return self.tok.shape[1]

    def take_rows(self, rows: np.ndarray) -> None:
        for name in ("tok", "p0p", "P", "p1p", "p0_out", "p1_out"):
            setattr(self, name, getattr(self, name)[rows])
        self.extra = {key: a[rows] for key, a in self.extra.items()}
        self.seqs = {key: a[rows] for key, a in self.seqs.items()}
        self.rowvec = {key: a[rows] for key, a in self.rowvec.items()}

    def repack(self, alive: np.ndarray, kmin: int = 1) -> None:
        """Move each run's alive columns to the left and drop columns beyond the widest run."""
        knew = max(int(alive.sum(axis=1).max()), kmin)
        order = np.argsort(~alive, axis=1, kind="stable")
        keep, drop = order[:, :knew], order[:, knew:]
        self.p0_out = self.p0_out + np.take_along_axis(self.p0p, drop, axis=1).sum(axis=1)
        self.p1_out = self.p1_out + np.take_along_axis(self.p1p, drop, axis=1).sum(axis=1)
        for name in ("tok", "p0p", "P", "p1p"):
            setattr(self, name, np.take_along_axis(getattr(self, name), keep, axis=1))
        for key, a in self.extra.items():
            idx = keep.reshape(keep.shape[:1] + (1,) * (a.ndim - 2) + keep.shape[1:])
            self.extra[key] = np.take_along_axis(a, idx, axis=-1)
        if self.seqs:
            inv = np.full(alive.shape, -1, dtype=np.int64)
            np.put_along_axis(inv, keep, np.arange(knew)[None, :].repeat(keep.shape[0], 0), axis=1)
            for key, a in self.seqs.items():
                self.seqs[key] = np.take_along_axis(inv, a, axis=1)


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
    raise ValueError(f"unknown scenario {sc!r}")


# ----------------------------------------------------------------------------- driver
def _pack_counts(X: np.ndarray, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the non-zero columns of each row of X to the left; drop all-zero trailing columns."""
    alive = X > 0
    knew = int(alive.sum(axis=1).max())
    keep = np.argsort(~alive, axis=1, kind="stable")[:, :knew]
    return np.take_along_axis(X, keep, axis=1), np.take_along_axis(tok, keep, axis=1)


def _fully_tail(st: _State, act: np.ndarray, m: int, m_stop: int, nvec: np.ndarray, rng: np.random.Generator,
                ctime: np.ndarray, atime: np.ndarray, final: np.ndarray) -> int:
    """Unrecorded generations of FullySynthetic without decoding, until every run is a Dirac mass.

    Same Markov chain as the generic loop (counts X^(m) ~ Multinomial(n, X^(m-1)/n)) on
    integer counts, with the bookkeeping cut to the minimum. Runs are split in two groups:
    runs with three or more surviving tokens (group A: one 2-D multinomial draw per
    generation, columns re-packed every 4 generations) and runs with exactly two survivors
    (group B: the count a of the first survivor is Binomial(n, a/n), one cheap vectorised
    draw). Runs move from A to B once, and leave when they become a Dirac mass.
    Writes collapse/absorption times and final distributions; returns the last generation.
    When numba is available (it is pinned in requirements.txt) the compiled per-run kernel
    :data:`collapse_lib._wf_kernel.wf_until_collapse` runs the same chain instead.
    """
    nA = nvec.astype(np.int64)
    XA = np.rint(st.P * nA[:, None]).astype(np.int64)
    XA, tokA = _pack_counts(XA, st.tok)
    if wf_until_collapse is not None:
        seed = int(rng.integers(0, 2**32 - 1))
        Tm, Mm = wf_until_collapse(XA, nA, m, m_stop, seed)
        done = Tm > 0
        rows = act[done]
        ctime[rows] = np.where(ctime[rows] < 0, Tm[done], ctime[rows])
        atime[rows] = Tm[done]
        dense = np.zeros((act.size, final.shape[1]))
        np.put_along_axis(dense, tokA, XA / nA[:, None], axis=1)
        final[act] = dense
        return int(Mm.max()) if Mm.size else m
    actA = act
    empty_i = np.zeros(0, dtype=np.int64)
    actB, nB, aB, t1B, t2B = empty_i, empty_i, empty_i, empty_i, empty_i

    def finish(rows, tokens):
        ctime[rows] = np.where(ctime[rows] < 0, m, ctime[rows])
        atime[rows] = m
        final[rows, tokens] = 1.0

    def split(X, tok, act_, n_):
        """Remove collapsed runs of group A and move two-token runs to group B."""
        nonlocal actB, nB, aB, t1B, t2B
        alive = X > 0
        cnt = alive.sum(axis=1)
        if cnt.min() > 2:
            return X, tok, act_, n_
        one = cnt == 1
        if one.any():
            finish(act_[one], tok[one, X[one].argmax(axis=1)])
        two = cnt == 2
        if two.any():
            al = alive[two]
            first = al.argmax(axis=1)
            last = al.shape[1] - 1 - al[:, ::-1].argmax(axis=1)
            r = np.nonzero(two)[0]
            actB = np.concatenate([actB, act_[two]])
            nB = np.concatenate([nB, n_[two]])
            aB = np.concatenate([aB, X[r, first]])
            t1B = np.concatenate([t1B, tok[r, first]])
            t2B = np.concatenate([t2B, tok[r, last]])
        keep = cnt > 2
        return X[keep], tok[keep], act_[keep], n_[keep]

    XA, tokA, actA, nA = split(XA, tokA, actA, nA)
    while (actA.size or actB.size) and m < m_stop:
        m += 1
        if actB.size:
            aB = rng.binomial(nB, aB / nB)
            done = (aB == 0) | (aB == nB)
            if done.any():
                finish(actB[done], np.where(aB[done] > 0, t1B[done], t2B[done]))
                keep = ~done
                actB, nB, aB, t1B, t2B = actB[keep], nB[keep], aB[keep], t1B[keep], t2B[keep]
        if actA.size:
            k = XA.shape[1]
            XA = rng.multinomial(nA, XA / nA[:, None])
            XA, tokA, actA, nA = split(XA, tokA, actA, nA)
            if actA.size and (m & 3) == 0 and np.count_nonzero(XA, axis=1).max() <= 0.75 * k:
                XA, tokA = _pack_counts(XA, tokA)
    # runs still alive at max_generations: record their current distribution
    if actA.size:
        dense = np.zeros((actA.size, final.shape[1]))
        np.put_along_axis(dense, tokA, XA / nA[:, None], axis=1)
        final[actA] = dense
    if actB.size:
        final[actB, t1B] = aB / nB
        final[actB, t2B] = 1.0 - aB / nB
    return m


def _initial_packing(P0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    R = P0.shape[0]
    mask = P0 > 0
    if np.all(mask == mask[0]):
        idx = np.nonzero(mask[0])[0]
        tok = np.broadcast_to(idx, (R, idx.size)).copy()
    else:
        order = np.argsort(~mask, axis=1, kind="stable")
        tok = order[:, : int(mask.sum(axis=1).max())]
    return tok, np.take_along_axis(P0, tok, axis=1)


def simulate(
    p0,
    scenario,
    generations: int,
    runs: int | None = None,
    seed=None,
    until_collapse: bool = False,
    max_generations: int = 100_000,
    keep_history: bool = False,
) -> SimulationResult:
    """Run `runs` independent recursive-training chains (eq. (5)) and record collapse metrics.

    Parameters
    ----------
    p0 : array (s,) or (runs, s)
        True next-token distribution(s) p^(0). A 2-D p0 gives each run its own p^(0)
        (e.g. the 81 contexts of the paper's Figure 1); then `runs` may be omitted.
    scenario : one of the scenario dataclasses of this module.
    generations : int >= 0
        Number of generations recorded in the per-generation arrays (and simulated, unless
        `until_collapse`). Must be >= 1 unless `until_collapse`.
    runs : int, number of independent runs (default 1 for a 1-D p0).
    seed : seed for ``numpy.random.default_rng``; same seed, same result.
    until_collapse : bool
        Keep simulating each run past `generations` until it is absorbed (fully synthetic:
        p^(m) is a Dirac mass; most recent models: the last K models are the same Dirac
        mass), capped at `max_generations`. Only the first `generations` generations are
        recorded per generation (absorbed runs are filled forward, which is exact);
        `collapse_time`, `absorption_time`, `winner` and `final` cover the whole run.
        Only for scenarios where absorption is possible (FullySynthetic, RecentModels).
    keep_history : bool
        Also return every p^(m), m <= generations, as ``history`` (runs, generations+1, s);
        refused above 5e7 numbers.
    """
    P0 = validate(p0, ndim=(1, 2), name="p0")
    if P0.ndim == 1:
        if runs is None:
            runs = 1
        _pos_int("runs", runs)
        P0 = np.broadcast_to(P0, (runs, P0.size))
    else:
        if runs is not None and runs != P0.shape[0]:
            raise ValueError(f"runs={runs} does not match p0 with {P0.shape[0]} rows")
        runs = P0.shape[0]
    if isinstance(generations, bool) or not isinstance(generations, (int, np.integer)) or generations < 0:
        raise ValueError(f"generations must be a non-negative integer, got {generations!r}")
    if generations == 0 and not until_collapse:
        raise ValueError("generations must be >= 1 (or use until_collapse=True)")
    _pos_int("max_generations", max_generations)
    if until_collapse and generations > max_generations:
        raise ValueError("generations must be <= max_generations")
    R, s = P0.shape
    G = int(generations)
    if keep_history and R * (G + 1) * s > 5e7:
        raise ValueError(f"keep_history would store {R * (G + 1) * s:.3g} numbers (> 5e7); reduce runs, s or generations")
    stepper = _make_stepper(scenario, G)
    if until_collapse and not stepper.absorbing:
        raise ValueError(
            f"{type(scenario).__name__} is never absorbed in general (real data or old models keep "
            "feeding diversity); until_collapse is only for FullySynthetic and RecentModels"
        )
    if isinstance(scenario, AccumulateSubsample):
        horizon = max_generations if until_collapse else G
        if horizon * scenario.n >= 1e9:
            raise ValueError("AccumulateSubsample pool would exceed 1e9 points (numpy hypergeometric limit)")
    rng = np.random.default_rng(seed)
    m_stop = max_generations if until_collapse else G

    # records
    shape = (R, G + 1)
    sig = np.empty(shape)
    mxp = np.empty(shape)
    dfirst = np.empty(shape)
    dtrue = np.empty(shape)
    supp = np.empty(shape, dtype=np.int64)
    sig[:, 0] = np.einsum("ij,ij->i", P0, P0)
    mxp[:, 0] = P0.max(axis=1)
    dtrue[:, 0] = 0.0
    supp[:, 0] = np.count_nonzero(P0, axis=1)
    ctime = np.full(R, -1, dtype=np.int64)
    atime = np.full(R, -1, dtype=np.int64)
    final = np.zeros((R, s))
    hist = None
    if keep_history:
        hist = np.zeros((R, G + 1, s))
        hist[:, 0] = P0

    tok, p0p = _initial_packing(np.ascontiguousarray(P0))
    st = _State(tok, p0p)
    if isinstance(scenario, FullySynthetic) and isinstance(scenario.n, tuple):
        if len(scenario.n) != R:
            raise ValueError(f"FullySynthetic has {len(scenario.n)} per-run sample sizes but there are {R} runs")
        st.rowvec["n"] = np.asarray(scenario.n, dtype=np.int64)
    act = np.arange(R)  # original run index of each active row
    fast_tail = until_collapse and isinstance(scenario, FullySynthetic) and (
        scenario.decoding is None or scenario.decoding.is_identity
    )
    m_last = 0

    def scatter(rows_act: np.ndarray, P: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        dense = np.zeros((rows_act.size, s))
        np.put_along_axis(dense, tokens, P, axis=1)  # duplicate padding columns carry p = 0
        return dense

    for m in range(1, m_stop + 1):
        st.P = stepper.step(st, m, rng)
        m_last = m
        P = st.P
        if m == 1:
            st.p1p = P.copy()
            dfirst[:, 0] = np.abs(P - st.p0p).sum(axis=1) + st.p0_out
        mx = P.max(axis=1)
        newly = (mx >= 1.0 - _DIRAC_TOL) & (ctime[act] < 0)
        if newly.any():
            ctime[act[newly]] = m
        if m <= G:
            sig[act, m] = np.einsum("ij,ij->i", P, P)
            mxp[act, m] = mx
            supp[act, m] = np.count_nonzero(P, axis=1)
            dfirst[act, m] = np.abs(P - st.p1p).sum(axis=1) + st.p1_out
            dtrue[act, m] = np.abs(P - st.p0p).sum(axis=1) + st.p0_out
            if hist is not None:
                hist[act, m] = scatter(act, P, st.tok)
        # which tokens can still appear, and which runs can no longer change
        alive = P > 0
        for a in stepper.sources(st, m):
            alive |= (a > 0) if a.ndim == 2 else (a > 0).any(axis=1)
        cnt = alive.sum(axis=1)
        absorbed = (cnt == 1) & (mx >= 1.0 - _DIRAC_TOL)
        if absorbed.any():
            rows = act[absorbed]
            atime[rows] = m
            final[rows] = scatter(rows, P[absorbed], st.tok[absorbed])
            if m < G:
                for arr in (sig, mxp, supp, dfirst, dtrue):
                    arr[rows, m + 1:] = arr[rows, m][:, None]
                if hist is not None:
                    hist[rows, m + 1:] = hist[rows, m][:, None, :]
            keep = ~absorbed
            act = act[keep]
            st.take_rows(keep)
            alive, cnt = alive[keep], cnt[keep]
            if act.size == 0:
                break
        if m == m_stop:
            break
        if fast_tail and m >= G:
            nvec = st.rowvec["n"] if "n" in st.rowvec else np.full(act.size, scenario.n)
            m_last = _fully_tail(st, act, m, m_stop, nvec, rng, ctime, atime, final)
            act = act[:0]
            break
        if cnt.max() <= 0.75 * st.k:
            st.repack(alive)

    if act.size:
        final[act] = scatter(act, st.P, st.tok)
    win = np.where(final.max(axis=1) >= 1.0 - _DIRAC_TOL, final.argmax(axis=1), -1)
    return SimulationResult(
        scenario=scenario,
        sigma=sig,
        max_prob=mxp,
        drift_first=dfirst,
        drift_true=dtrue,
        support_size=supp,
        collapse_time=ctime,
        winner=win,
        absorption_time=atime,
        final=final,
        generations=G,
        generations_run=m_last,
        seed=seed,
        history=hist,
    )
