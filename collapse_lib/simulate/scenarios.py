"""The training schedules ("scenarios") of the recursive-training model, as frozen dataclasses.

Each scenario fixes the sample sizes n_t^(m) of eq. (5) (Seddik et al., 2024): how many
samples generation m draws from each earlier model p^(t) (t = 0: real data from p^(0)).
Each has ``decoding: Decoding | None``, applied to a model p^(t), t >= 1, before synthetic
samples are drawn from it; real data are never transformed.

* :class:`FullySynthetic` (n): p^(m) from n samples of p^(m-1).
* :class:`PartiallySynthetic` (N, n): the SAME N real samples at every generation (the
  paper's setting): p^(1) = empirical distribution of N real samples and, for m >= 2,
  p^(m) = (N p^(1) + counts of n samples of p^(m-1)) / (N + n).
* :class:`RecentModels` (n, K): floor(n/K) fresh samples from each of the models p^(t),
  max(0, m-K) <= t <= m-1 (paper Sec. 9.2); "model" 0 is p^(0). Early generations m < K:
  ``early="paper"`` (default) follows the paper's formula literally, floor(n/K) samples
  from each of the m existing models; ``early="fill"`` spreads n over them,
  floor(n/min(m, K)) each.
* :class:`RandomPool` (n): each of the n samples comes from a model p^(g), g uniform on
  {0, ..., m-1} (paper Sec. 9.2), i.e. from the average (1/m) sum_t p^(t).
* :class:`Accumulate` (n): each generation adds n samples of the current model to the
  data set and trains on all of it (Gerstgrasser et al., 2024).
* :class:`AccumulateSubsample` (n): the pool grows as in Accumulate, but each generation
  trains on a uniformly random subset of n points of the pool (Kazdan et al., 2024).
* :class:`Schedule` (counts): general n_t^(m) of eq. (5). Real data are a fixed corpus
  (generation m uses its first n_0^(m) points); synthetic samples from p^(t), t >= 1, are
  drawn afresh each time they are used.

Arguments are checked on construction (collapse_lib's validation contract: sizes are
integers, exactly integral floats accepted, never truncated); a ``Schedule``'s table is
checked when :func:`~collapse_lib.simulate.simulate` asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .._validate import ArgumentTypeError, InvalidArgument, _numeric_array, choice, integer
from ..decoding import Decoding

__all__ = [
    "FullySynthetic",
    "PartiallySynthetic",
    "RecentModels",
    "RandomPool",
    "Accumulate",
    "AccumulateSubsample",
    "Schedule",
    "Scenario",
    "MAX_SAMPLE_SIZE",
]

MAX_SAMPLE_SIZE = 2**53  # counts / n stay exact in float64


def _size(name: str, v) -> int:
    return integer(name, v, minimum=1, maximum=MAX_SAMPLE_SIZE)


def _check_decoding(d) -> None:
    if d is not None and not isinstance(d, Decoding):
        raise ArgumentTypeError(f"decoding must be a Decoding or None, got {type(d).__name__}")


@dataclass(frozen=True)
class FullySynthetic:
    """Train generation m on n samples of p^(m-1) only (paper Sec. 2.2).

    ``n`` may also be a sequence of positive integers, one sample size per run (stored as a
    tuple); one :func:`simulate` call then covers a sweep over n, e.g. the paper's Figure 2,
    with a 2-D p0.
    """

    n: int | tuple[int, ...]
    decoding: Decoding | None = None

    def __post_init__(self):
        if isinstance(self.n, (str, bytes)) or np.ndim(self.n) == 0:
            object.__setattr__(self, "n", _size("n", self.n))
        else:
            vals = tuple(np.asarray(self.n, dtype=object).ravel()) if np.ndim(self.n) == 1 else None
            if vals is None:
                raise InvalidArgument(f"n must be a positive integer or a flat sequence of them, got {self.n!r}"[:200])
            if not vals:
                raise InvalidArgument("n must not be an empty sequence")
            object.__setattr__(self, "n", tuple(_size("n", v) for v in vals))
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class PartiallySynthetic:
    """Same N real samples at every generation plus n samples of p^(m-1) (paper Sec. 2.2)."""

    N: int
    n: int
    decoding: Decoding | None = None

    def __post_init__(self):
        object.__setattr__(self, "N", _size("N", self.N))
        object.__setattr__(self, "n", _size("n", self.n))
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class RecentModels:
    """floor(n/K) samples from each of the last K models (paper Sec. 9.2, "Most Recent Models")."""

    n: int
    K: int
    early: str = "paper"
    decoding: Decoding | None = None

    def __post_init__(self):
        object.__setattr__(self, "n", _size("n", self.n))
        object.__setattr__(self, "K", _size("K", self.K))
        if self.K > self.n:
            raise InvalidArgument(f"K={self.K} must be <= n={self.n} so that floor(n/K) >= 1")
        choice("early", self.early, ("paper", "fill"))
        _check_decoding(self.decoding)


@dataclass(frozen=True)
class _SampleSizeScenario:
    """Common part of the scenarios described by one sample size n (and a decoding)."""

    n: int
    decoding: Decoding | None = None

    def __post_init__(self):
        object.__setattr__(self, "n", _size("n", self.n))
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
            arr = _numeric_array("counts", self.counts)
            if arr.ndim != 2 or arr.shape[0] < 1:
                raise InvalidArgument(
                    "Schedule counts must be a callable or a 2-D array (generations x generations), "
                    f"got shape {arr.shape}"
                )
        _check_decoding(self.decoding)

    def table(self, generations: int) -> list[np.ndarray]:
        """Validated list [n^(1), ..., n^(G)] where n^(m) = (n_0^(m), ..., n_{m-1}^(m))."""
        out = []
        arr = None
        if not callable(self.counts):
            arr = _numeric_array("counts", self.counts)
            if arr.shape[0] < generations:
                raise InvalidArgument(f"Schedule counts array has {arr.shape[0]} rows < generations={generations}")
        for m in range(1, generations + 1):
            if arr is None:
                try:
                    raw = self.counts(m)
                except Exception as e:  # the caller's function failed: say where
                    raise InvalidArgument(f"Schedule counts({m}) raised {type(e).__name__}: {e}") from e
                row = _numeric_array(f"Schedule counts({m})", raw)
                if row.shape != (m,):
                    raise InvalidArgument(f"Schedule counts({m}) must have length {m}, got shape {row.shape}")
            else:
                full = arr[m - 1]
                if full.shape[0] < m:
                    raise InvalidArgument(f"Schedule counts array row {m - 1} is shorter than {m}")
                if np.any(full[m:] != 0):
                    raise InvalidArgument(f"Schedule counts row {m - 1}: n_t^({m}) must be 0 for t >= {m}")
                row = full[:m]
            f = row.astype(float)
            if not np.all(np.isfinite(f)) or np.any(f < 0) or np.any(f != np.round(f)):
                raise InvalidArgument(f"Schedule counts n_t^({m}) must be non-negative integers, got {row}")
            if f.sum() > MAX_SAMPLE_SIZE:
                raise InvalidArgument(f"Schedule counts: generation {m} has {f.sum():.3g} samples (> 2**53)")
            row = f.astype(np.int64)
            if row.sum() < 1:
                raise InvalidArgument(f"Schedule counts: generation {m} has no training samples")
            out.append(row)
        return out


Scenario = FullySynthetic | PartiallySynthetic | RecentModels | RandomPool | Accumulate | AccumulateSubsample | Schedule
SCENARIO_TYPES = (FullySynthetic, PartiallySynthetic, RecentModels, RandomPool, Accumulate, AccumulateSubsample, Schedule)
