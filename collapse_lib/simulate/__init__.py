"""Recursive training of the paper's statistical language model, for many runs at once.

Model (Seddik et al., 2024, Section 2): for one fixed context, a "model" is a
next-token distribution p^(m) on s tokens, and training = counting. Generation m is
the empirical distribution of its training data, eq. (5):

    p^(m) = (1 / n^(m)) * sum_t sum_{l <= n_t^(m)} y_l^(t),

where y^(t) are one-hot samples from p^(t) (t = 0: real data from p^(0)). Generation 1 is
always trained on real samples drawn from p^(0).

The package reads in four parts:

* :mod:`~collapse_lib.simulate.scenarios`: the training schedules n_t^(m) (FullySynthetic,
  PartiallySynthetic, RecentModels, RandomPool, Accumulate, AccumulateSubsample, Schedule);
* :mod:`~collapse_lib.simulate.engine`: :func:`simulate`, the vectorised loop over
  generations and its records, with :mod:`~collapse_lib.simulate.steppers` (one update
  rule per scenario);
* :mod:`~collapse_lib.simulate.tail`: fully synthetic runs until total collapse past the
  recorded horizon, compiled (numba, :mod:`collapse_lib._wf_kernel`) or pure numpy; the
  two paths draw different random streams;
* :mod:`~collapse_lib.simulate.result`: :class:`SimulationResult`.

``benchmarks/bench_simulate.py`` measures the engine against a plain per-run loop.
Results are deterministic for a given seed (and backend).
"""

from .engine import simulate
from .result import SimulationResult
from .scenarios import (
    Accumulate,
    AccumulateSubsample,
    FullySynthetic,
    PartiallySynthetic,
    RandomPool,
    RecentModels,
    Schedule,
    Scenario,
)

__all__ = [
    "FullySynthetic",
    "PartiallySynthetic",
    "RecentModels",
    "RandomPool",
    "Accumulate",
    "AccumulateSubsample",
    "Schedule",
    "Scenario",
    "SimulationResult",
    "simulate",
]
