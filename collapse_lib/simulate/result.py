"""The result type of :func:`collapse_lib.simulate.simulate`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import InvalidArgument, choice

__all__ = ["SimulationResult", "PER_GENERATION"]

PER_GENERATION = ("sigma", "max_prob", "drift_first", "drift_true", "support_size")


@dataclass
class SimulationResult:
    """Output of :func:`~collapse_lib.simulate.simulate`.

    Per-generation arrays have shape (runs, generations+1); column m is generation m,
    column 0 is p^(0). They are the quantities of :mod:`collapse_lib.metrics` applied to
    each p^(m): ``sigma`` = sum_i p_i^2, ``max_prob`` = ||p||_inf, ``support_size``,
    ``drift_first[:, m] = ||p^(m) - p^(1)||_1`` (column 0: ||p^(0) - p^(1)||_1) and
    ``drift_true[:, m] = ||p^(m) - p^(0)||_1``. ``collapse_time`` is the first m >= 1 with
    p^(m) a Dirac mass (-1 if none was seen), ``winner`` the token of the final
    distribution if it is a Dirac mass (-1 otherwise), ``absorption_time`` the generation
    from which nothing can change any more (every data source is the same single token;
    -1 if not reached). ``final`` holds the last simulated distribution of each run
    (p^(generations) normally; the distribution at absorption or at ``max_generations`` in
    ``until_collapse`` mode). ``history`` (runs, generations+1, s) is filled only with
    ``keep_history=True``. ``generations_run`` is the last generation simulated for any
    run; ``backend`` says which code drew the unrecorded tail ("numba" or "numpy").
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
    backend: str = "numpy"

    @property
    def runs(self) -> int:
        return self.sigma.shape[0]

    def mean_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs of a per-generation array and its Monte Carlo standard error.

        `name` is one of "sigma", "max_prob", "drift_first", "drift_true", "support_size";
        the standard error (sample standard deviation / sqrt(runs)) needs runs >= 2.
        """
        choice("name", name, PER_GENERATION)
        r = self.runs
        if r < 2:
            raise InvalidArgument(f"mean_se needs runs >= 2 for a standard error, this result has runs={r}")
        a = np.asarray(getattr(self, name), dtype=float)
        return a.mean(axis=0), a.std(axis=0, ddof=1) / math.sqrt(r)
