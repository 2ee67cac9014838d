"""The engine: many independent recursive-training runs at once, with their records.

Runs are rows of (runs, k) arrays, vectorised with numpy (``Generator.multinomial`` with
2-D pvals). Tokens are packed per run: column j of run r stands for token ``tok[r, j]``;
tokens that no future data source can produce are dropped, so after generation 1 the
width k follows the number of surviving tokens (at most n for fully synthetic), not s. A
run whose every data source is the same single token is *absorbed* (nothing can change
any more); it leaves the batch and its per-generation records are filled forward with
their (constant) values. The records are the quantities of :mod:`collapse_lib.metrics`
(computed by its unchecked kernels). Scenario update rules live in
:mod:`~collapse_lib.simulate.steppers`; fully synthetic runs past the recorded horizon
go to :mod:`~collapse_lib.simulate.tail` (compiled with numba, or pure numpy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .._validate import ArgumentTypeError, InvalidArgument, boolean, check_memory, choice, integer, rng_from_seed
from ..distributions import validate
from ..metrics import _is_dirac, _l1, _max_prob, _sigma, _support_size, _winner
from . import tail
from .result import SimulationResult
from .scenarios import SCENARIO_TYPES, AccumulateSubsample, FullySynthetic, RecentModels, Schedule
from .state import _initial_packing, _scatter, _State
from .steppers import _make_stepper, _Stepper

__all__ = ["simulate", "MAX_RECORDED_UNTIL_COLLAPSE", "HISTORY_MAX_NUMBERS"]

MAX_RECORDED_UNTIL_COLLAPSE = 10_000  # recorded horizon refused above this with until_collapse=True
HISTORY_MAX_NUMBERS = 5e7  # keep_history refused above this many stored numbers


def _check_memory_plan(sc, R: int, s: int, k0: int, G: int, keep_history: bool, horizon: int) -> None:
    """Refuse before allocating when the arrays of this call would not fit in memory."""
    rec = 40.0 * R * (G + 1)  # five per-generation records
    check_memory("runs" if R > G + 1 else "generations", rec, f"the records of {R} runs x {G + 1} generations")
    work = 8.0 * R * (3 * s + 10 * k0)  # p0 copy, final, scatter + packed state and temporaries
    check_memory("runs", work, f"simulating {R} runs on {s} tokens")
    if keep_history:
        check_memory("keep_history", 8.0 * R * (G + 1) * s, f"keep_history for {R} runs x {G + 1} generations x {s} tokens")
    if isinstance(sc, RecentModels):
        check_memory("K", 8.0 * R * sc.K * k0 * 2, f"the last K={sc.K} models of {R} runs")
    if isinstance(sc, FullySynthetic):
        nmax = max(sc.n) if isinstance(sc.n, tuple) else sc.n
        if nmax > 2**62:  # pragma: no cover - MAX_SAMPLE_SIZE is smaller
            raise InvalidArgument(f"n={nmax} is too large")
    if isinstance(sc, AccumulateSubsample) and horizon * sc.n >= 1e9:
        raise InvalidArgument(
            f"AccumulateSubsample: the pool of n x generations = {sc.n} x {horizon} points would exceed 1e9 "
            "(numpy's hypergeometric limit); reduce n or generations"
        )


def simulate(
    p0,
    scenario,
    generations: int,
    runs: int | None = None,
    seed=None,
    until_collapse: bool = False,
    max_generations: int = 100_000,
    keep_history: bool = False,
    backend: str = "auto",
    progress: bool | None = None,
) -> SimulationResult:
    """Run `runs` independent recursive-training chains (eq. (5)) and record collapse metrics.

    Parameters
    ----------
    p0 : array (s,) or (runs, s)
        True next-token distribution(s) p^(0). A 2-D p0 gives each run its own p^(0)
        (e.g. the 81 contexts of the paper's Figure 1); then `runs` may be omitted. Rows
        are accepted within 1e-9 of summing to 1 (:func:`~collapse_lib.distributions.validate`)
        and divided by their sum before sampling.
    scenario : one of the scenario dataclasses of :mod:`collapse_lib.simulate`.
    generations : int >= 0
        The recorded horizon: the per-generation arrays have generations+1 columns. Without
        `until_collapse` it is also the number of generations simulated (then >= 1).
    runs : int >= 1, number of independent runs (default 1 for a 1-D p0).
    seed : None, int >= 0, sequence of them, SeedSequence or Generator, for
        ``numpy.random.default_rng``; same seed, same result (on the same backend).
    until_collapse : bool
        Keep simulating each run past `generations` until it is absorbed (fully synthetic:
        p^(m) is a Dirac mass; most recent models: the last K models are the same Dirac
        mass). Only for scenarios where absorption is possible (FullySynthetic,
        RecentModels). `collapse_time`, `absorption_time`, `winner` and `final` cover the
        whole run; the first `generations` generations are also recorded per generation
        (absorbed runs filled forward, which is exact).
    max_generations : int >= 1
        The cap of `until_collapse`: no run goes past generation `max_generations` (runs
        still alive there keep collapse_time = -1). **Horizon and cap are separate**:
        ``generations`` is what is recorded, ``max_generations`` how far runs may go. To
        simulate until collapse with a cap of 10^5 and record nothing per generation, pass
        ``generations=0, max_generations=100_000``; a recorded horizon above
        MAX_RECORDED_UNTIL_COLLAPSE = 10^4 with `until_collapse` is refused with that advice.
    keep_history : bool
        Also return every p^(m), m <= generations, as ``history`` (runs, generations+1, s);
        refused above 5e7 numbers.
    backend : "auto" (default), "numba" or "numpy"
        Which implementation draws the unrecorded generations of FullySynthetic runs
        without decoding in `until_collapse` mode (everything else is numpy). "auto" uses
        numba when it is installed. **The numba and pure-numpy paths draw different random
        streams**: the same seed gives different (equally valid) runs on the two paths,
        and ``SimulationResult.backend`` says which one ran. They also draw the chain
        differently: numpy draws every multinomial X^(m) ~ Multinomial(n, X^(m-1)/n);
        numba draws each run's winner (token i with probability c_i/n) and then the
        winner's count conditioned on winning, x -> 1 + Binomial(n-1, x/n), one draw per
        generation whatever the number of survivors (the same law of collapse time,
        winner and final distribution; derivation in :mod:`collapse_lib._wf_kernel`).

    progress : None (default), True or False
        A tqdm progress bar on stderr over the generations of the loop: None shows it only once
        the call has run for PROGRESS_DELAY_S = 20 s (a long call, e.g. 10^6 generations of
        PartiallySynthetic, says how far it is and how long it will take; short calls print
        nothing); True from the start; False never. It does not change the numbers. No bar
        without tqdm installed.

    Every argument is checked first (collapse_lib's validation contract, see
    :mod:`collapse_lib._validate`), including an estimate of the memory the call needs.
    """
    plan = _check_arguments(p0, scenario, generations, runs, until_collapse, max_generations, keep_history,
                            backend, progress)
    rng = rng_from_seed("seed", seed)
    _check_plan_memory(plan, scenario)
    rec = _Records(plan)
    if plan.fast_tail and plan.G == 0 and plan.use_numba:
        m_last, used = _compiled_from_p0(plan, rec, rng), "numba"
    else:
        m_last, used = _generation_loop(plan, rec, rng)
    return rec.result(scenario, seed, m_last, used)


# ----------------------------------------------------------------------------- the steps of simulate()
@dataclass
class _Plan:
    """The checked arguments of one :func:`simulate` call and what follows from them."""

    P0: np.ndarray          # p^(0), rows normalised: (s,) or (runs, s)
    rows0: np.ndarray       # p^(0) as rows: (1, s) or (runs, s)
    one_row: bool
    R: int                  # runs
    s: int                  # tokens
    G: int                  # recorded horizon
    m_stop: int             # last generation that may be simulated
    until_collapse: bool
    keep_history: bool
    use_numba: bool
    fast_tail: bool         # fully synthetic without decoding, until collapse: the tail module may finish
    progress: bool | None
    stepper: _Stepper | None = None  # the scenario's update rule, set by _check_plan_memory
    nvec: np.ndarray | None = None   # per-run sample size (FullySynthetic), set after the memory checks


def _check_arguments(p0, scenario, generations, runs, until_collapse, max_generations, keep_history, backend,
                     progress) -> _Plan:
    """Every check of :func:`simulate` that needs no memory estimate, in the documented order."""
    P0 = validate(p0, ndim=(1, 2), name="p0")
    if not isinstance(scenario, SCENARIO_TYPES):
        raise ArgumentTypeError(
            "scenario must be one of FullySynthetic, PartiallySynthetic, RecentModels, RandomPool, "
            f"Accumulate, AccumulateSubsample, Schedule; got {type(scenario).__name__}"
        )
    G = integer("generations", generations, minimum=0)
    until_collapse = boolean("until_collapse", until_collapse)
    keep_history = boolean("keep_history", keep_history)
    max_generations = integer("max_generations", max_generations, minimum=1)
    backend = choice("backend", backend, ("auto", "numba", "numpy"))
    if progress is not None:
        progress = boolean("progress", progress)
    if backend == "numba" and not tail.numba_available():
        raise InvalidArgument("backend='numba' needs numba, which is not installed; use backend='auto'")
    use_numba = backend != "numpy" and tail.numba_available()
    one_row = P0.ndim == 1
    if one_row:
        runs = 1 if runs is None else integer("runs", runs, minimum=1)
        P0 = P0 / P0.sum()
    else:
        if runs is not None and integer("runs", runs, minimum=1) != P0.shape[0]:
            raise InvalidArgument(f"runs={runs} does not match p0 with {P0.shape[0]} rows")
        runs = P0.shape[0]
        P0 = P0 / P0.sum(axis=1, keepdims=True)
    R, s = runs, P0.shape[-1]
    if G == 0 and not until_collapse:
        raise InvalidArgument("generations must be >= 1 (or use until_collapse=True)")
    if until_collapse and G > max_generations:
        raise InvalidArgument(f"generations={G} must be <= max_generations={max_generations}")
    if until_collapse and G > MAX_RECORDED_UNTIL_COLLAPSE:
        raise InvalidArgument(
            f"with until_collapse=True, generations is the recorded horizon (columns of the per-generation "
            f"arrays), not a cap: generations={G} would record {R} x {G + 1} values per metric. Pass "
            f"generations=0 (or the few generations you want recorded) and max_generations={G} as the cap."
        )
    if isinstance(scenario, FullySynthetic) and isinstance(scenario.n, tuple) and len(scenario.n) != R:
        raise InvalidArgument(f"FullySynthetic has {len(scenario.n)} per-run sample sizes n but there are {R} runs")
    if keep_history and R * (G + 1) * s > HISTORY_MAX_NUMBERS:
        raise InvalidArgument(
            f"keep_history would store {R * (G + 1) * s:.3g} numbers (> {HISTORY_MAX_NUMBERS:.0e}); "
            "reduce runs, s or generations"
        )
    fast_tail = until_collapse and isinstance(scenario, FullySynthetic) and (
        scenario.decoding is None or scenario.decoding.is_identity
    )
    return _Plan(P0=P0, rows0=P0[None, :] if one_row else P0, one_row=one_row, R=R, s=s, G=G,
                 m_stop=max_generations if until_collapse else G, until_collapse=until_collapse,
                 keep_history=keep_history, use_numba=use_numba, fast_tail=fast_tail, progress=progress)


def _check_plan_memory(plan: _Plan, scenario) -> None:
    """The memory estimates, then the checks that need the scenario's update rule (fills plan.stepper
    and plan.nvec; nothing of size `runs` is allocated before the estimates)."""
    k0 = int(_support_size(plan.P0).max())
    _check_memory_plan(scenario, plan.R, plan.s, k0, plan.G, plan.keep_history, plan.m_stop)
    plan.stepper = _make_stepper(scenario, plan.G)
    if plan.until_collapse and not plan.stepper.absorbing:
        raise InvalidArgument(
            f"until_collapse: {type(scenario).__name__} is never absorbed in general (real data or old models "
            "keep feeding diversity); until_collapse is only for FullySynthetic and RecentModels"
        )
    if isinstance(scenario, Schedule) and plan.stepper.L > 0:
        check_memory("counts", 16.0 * plan.R * plan.stepper.L, f"a real corpus of {plan.stepper.L} points for {plan.R} runs")
    if isinstance(scenario, FullySynthetic):
        n = scenario.n
        plan.nvec = np.asarray(n, dtype=np.int64) if isinstance(n, tuple) else np.full(plan.R, n)


class _Records:
    """What a call returns: the per-generation records (runs x generations+1) and per-run outcomes."""

    def __init__(self, plan: _Plan):
        R, G, s, rows0 = plan.R, plan.G, plan.s, plan.rows0
        self.G, self.s = G, s
        shape = (R, G + 1)
        self.sig, self.mxp, self.dfirst, self.dtrue = (np.empty(shape) for _ in range(4))
        self.supp = np.empty(shape, dtype=np.int64)
        self.sig[:, 0] = _sigma(rows0)
        self.mxp[:, 0] = _max_prob(rows0)
        self.supp[:, 0] = _support_size(rows0)
        self.dtrue[:, 0] = 0.0
        self.ctime = np.full(R, -1, dtype=np.int64)
        self.atime = np.full(R, -1, dtype=np.int64)
        self.final = np.zeros((R, s))
        self.hist = None
        if plan.keep_history:
            self.hist = np.zeros((R, G + 1, s))
            self.hist[:, 0] = plan.P0

    def generation(self, act: np.ndarray, m: int, st: _State) -> None:
        """Record generation m (1 <= m <= G) of the active runs `act`."""
        P = st.P
        self.sig[act, m] = _sigma(P)
        self.mxp[act, m] = _max_prob(P)
        self.supp[act, m] = _support_size(P)
        self.dfirst[act, m] = _l1(P, st.p1p) + st.p1_out
        self.dtrue[act, m] = _l1(P, st.p0p) + st.p0_out
        if self.hist is not None:
            self.hist[act, m] = _scatter(P, st.tok, self.s)

    def absorbed(self, rows: np.ndarray, m: int, P: np.ndarray, tok: np.ndarray) -> None:
        """Runs `rows` are absorbed at generation m: their outcome, and their records filled forward."""
        self.atime[rows] = m
        self.final[rows] = _scatter(P, tok, self.s)
        if m < self.G:
            for arr in (self.sig, self.mxp, self.supp, self.dfirst, self.dtrue):
                arr[rows, m + 1:] = arr[rows, m][:, None]
            if self.hist is not None:
                self.hist[rows, m + 1:] = self.hist[rows, m][:, None, :]

    def result(self, scenario, seed, m_last: int, used: str) -> SimulationResult:
        return SimulationResult(
            scenario=scenario, sigma=self.sig, max_prob=self.mxp, drift_first=self.dfirst, drift_true=self.dtrue,
            support_size=self.supp, collapse_time=self.ctime, winner=_winner(self.final),
            absorption_time=self.atime, final=self.final, generations=self.G, generations_run=m_last, seed=seed,
            history=self.hist, backend=used,
        )


def _compiled_from_p0(plan: _Plan, rec: _Records, rng: np.random.Generator) -> int:
    """Nothing recorded past p^(0): every generation, the first included, in compiled code."""
    P0u = np.ascontiguousarray(plan.rows0)
    row_of_run = np.zeros(plan.R, dtype=np.int64) if plan.one_row else np.arange(plan.R)
    d1 = np.empty(plan.R)
    m_last = tail.tail_from_p0(P0u, row_of_run, plan.nvec, plan.m_stop, rng, rec.ctime, rec.atime, rec.final, d1)
    rec.dfirst[:, 0] = d1
    return m_last


PROGRESS_DELAY_S = 20.0
"""With ``progress=None``, the bar of :func:`simulate` appears once a call has run this long."""


def _progress_bar(plan: _Plan):
    """A tqdm bar over the generations of the loop (None: no bar; see ``progress`` of simulate)."""
    if plan.progress is False:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the course
        return None
    return tqdm(total=plan.m_stop, desc="simulate: generations", unit="gen", leave=False, file=sys.stderr,
                delay=0.0 if plan.progress else PROGRESS_DELAY_S, mininterval=0.5)


def _generation_loop(plan: _Plan, rec: _Records, rng: np.random.Generator) -> tuple[int, str]:
    """Generations 1, 2, ... of every active run, vectorised; (last generation simulated, backend used).

    Each generation: the scenario's update rule draws p^(m); the records and collapse times are
    written; runs that can no longer change leave the batch; fully synthetic runs past the recorded
    horizon go to the tail module; the packed columns are compacted when a quarter is dead.
    """
    G, m_stop, stepper, ctime = plan.G, plan.m_stop, plan.stepper, rec.ctime
    assert stepper is not None, "_check_plan_memory sets the update rule"
    tok, p0p = _initial_packing(np.ascontiguousarray(np.broadcast_to(plan.rows0, (plan.R, plan.s))))
    st = _State(tok, p0p)
    if plan.nvec is not None and isinstance(stepper.sc.n, tuple):
        st.rowvec["n"] = plan.nvec
    act = np.arange(plan.R)  # original run index of each active row
    m_last, used = 0, "numpy"
    bar = _progress_bar(plan)
    try:
        for m in range(1, m_stop + 1):
            st.P = stepper.step(st, m, rng)
            m_last = m
            if bar is not None:
                bar.update(1)
            P = st.P
            if m == 1:
                st.p1p = P.copy()
                rec.dfirst[:, 0] = _l1(P, st.p0p) + st.p0_out
            dirac = _is_dirac(P)
            newly = dirac & (ctime[act] < 0)
            if newly.any():
                ctime[act[newly]] = m
            if m <= G:
                rec.generation(act, m, st)
            # which tokens can still appear, and which runs can no longer change
            alive = P > 0
            for a in stepper.sources(st, m):
                alive |= (a > 0) if a.ndim == 2 else (a > 0).any(axis=1)
            cnt = alive.sum(axis=1)
            absorbed = (cnt == 1) & dirac
            if absorbed.any():
                rec.absorbed(act[absorbed], m, P[absorbed], st.tok[absorbed])
                keep = ~absorbed
                act = act[keep]
                st.take_rows(keep)
                alive, cnt = alive[keep], cnt[keep]
                if act.size == 0:
                    break
            if m == m_stop:
                break
            if plan.fast_tail and m >= G:
                used = "numba" if plan.use_numba else "numpy"
                nrows = st.rowvec.get("n", plan.nvec[act] if plan.nvec is not None else None)
                m_last = tail.tail_from_counts(st, act, m, m_stop, nrows, rng, ctime, rec.atime, rec.final, used)
                act = act[:0]
                break
            if cnt.max() <= 0.75 * st.k:
                st.repack(alive)
    finally:
        if bar is not None:
            bar.close()
    if act.size:
        rec.final[act] = _scatter(st.P, st.tok, plan.s)
    return m_last, used
