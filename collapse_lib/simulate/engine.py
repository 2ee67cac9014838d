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

import numpy as np

from .._validate import ArgumentTypeError, InvalidArgument, boolean, check_memory, choice, integer, rng_from_seed
from ..distributions import validate
from ..metrics import _is_dirac, _l1, _max_prob, _sigma, _support_size, _winner
from . import tail
from .result import SimulationResult
from .scenarios import SCENARIO_TYPES, AccumulateSubsample, FullySynthetic, RecentModels, Schedule
from .steppers import _make_stepper

__all__ = ["simulate", "MAX_RECORDED_UNTIL_COLLAPSE", "HISTORY_MAX_NUMBERS"]

MAX_RECORDED_UNTIL_COLLAPSE = 10_000  # recorded horizon refused above this with until_collapse=True
HISTORY_MAX_NUMBERS = 5e7  # keep_history refused above this many stored numbers


class _State:
    """Packed per-run arrays. Arrays in `extra` have runs on axis 0 and packed tokens on
    the last axis; arrays in `seqs` hold packed column indices (remapped on repack)."""

    def __init__(self, tok: np.ndarray, p0p: np.ndarray):
        self.tok = tok
        self.p0p = p0p
        self.P = p0p.copy()
        self.p1p = np.zeros_like(p0p)
        self.p0_out = np.zeros(tok.shape[0])  # mass of p^(0) in dropped columns
        self.p1_out = np.zeros(tok.shape[0])  # mass of p^(1) in dropped columns
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


def _initial_packing(P0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and probabilities of each run's support, packed to the left."""
    R = P0.shape[0]
    mask = P0 > 0
    if np.all(mask == mask[0]):
        idx = np.nonzero(mask[0])[0]
        tok = np.broadcast_to(idx, (R, idx.size)).copy()
    else:
        order = np.argsort(~mask, axis=1, kind="stable")
        tok = order[:, : int(mask.sum(axis=1).max())]
    return tok, np.take_along_axis(P0, tok, axis=1)


def _scatter(P: np.ndarray, tokens: np.ndarray, s: int) -> np.ndarray:
    """Dense (rows, s) distributions from packed columns (padding columns carry p = 0)."""
    dense = np.zeros((P.shape[0], s))
    np.put_along_axis(dense, tokens, P, axis=1)
    return dense


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

    Every argument is checked first (collapse_lib's validation contract, see
    :mod:`collapse_lib._validate`), including an estimate of the memory the call needs.
    """
    # ------------------------------------------------------------------ arguments
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
    rng = rng_from_seed("seed", seed)
    m_stop = max_generations if until_collapse else G
    k0 = int(_support_size(P0).max())
    _check_memory_plan(scenario, R, s, k0, G, keep_history, m_stop)
    stepper = _make_stepper(scenario, G)
    if until_collapse and not stepper.absorbing:
        raise InvalidArgument(
            f"until_collapse: {type(scenario).__name__} is never absorbed in general (real data or old models "
            "keep feeding diversity); until_collapse is only for FullySynthetic and RecentModels"
        )
    if isinstance(scenario, Schedule) and stepper.L > 0:
        check_memory("counts", 16.0 * R * stepper.L, f"a real corpus of {stepper.L} points for {R} runs")

    # ------------------------------------------------------------------ records
    shape = (R, G + 1)
    sig, mxp, dfirst, dtrue = (np.empty(shape) for _ in range(4))
    supp = np.empty(shape, dtype=np.int64)
    rows0 = P0[None, :] if one_row else P0
    sig[:, 0] = _sigma(rows0)
    mxp[:, 0] = _max_prob(rows0)
    supp[:, 0] = _support_size(rows0)
    dtrue[:, 0] = 0.0
    ctime = np.full(R, -1, dtype=np.int64)
    atime = np.full(R, -1, dtype=np.int64)
    final = np.zeros((R, s))
    hist = None
    if keep_history:
        hist = np.zeros((R, G + 1, s))
        hist[:, 0] = P0
    nvec = None
    if isinstance(scenario, FullySynthetic):
        nvec = np.asarray(scenario.n, dtype=np.int64) if isinstance(scenario.n, tuple) else np.full(R, scenario.n)
    fast_tail = until_collapse and isinstance(scenario, FullySynthetic) and (
        scenario.decoding is None or scenario.decoding.is_identity
    )

    def result(m_last: int, used: str) -> SimulationResult:
        return SimulationResult(
            scenario=scenario, sigma=sig, max_prob=mxp, drift_first=dfirst, drift_true=dtrue, support_size=supp,
            collapse_time=ctime, winner=_winner(final), absorption_time=atime, final=final, generations=G,
            generations_run=m_last, seed=seed, history=hist, backend=used,
        )

    if fast_tail and G == 0 and use_numba:
        # nothing recorded past p^(0): every generation, the first included, in compiled code
        P0u = np.ascontiguousarray(rows0)
        row_of_run = np.zeros(R, dtype=np.int64) if one_row else np.arange(R)
        d1 = np.empty(R)
        m_last = tail.tail_from_p0(P0u, row_of_run, nvec, m_stop, rng, ctime, atime, final, d1)
        dfirst[:, 0] = d1
        return result(m_last, "numba")

    # ------------------------------------------------------------------ generic loop
    tok, p0p = _initial_packing(np.ascontiguousarray(np.broadcast_to(rows0, (R, s))))
    st = _State(tok, p0p)
    if nvec is not None and isinstance(scenario.n, tuple):
        st.rowvec["n"] = nvec
    act = np.arange(R)  # original run index of each active row
    m_last = 0
    used = "numpy"
    for m in range(1, m_stop + 1):
        st.P = stepper.step(st, m, rng)
        m_last = m
        P = st.P
        if m == 1:
            st.p1p = P.copy()
            dfirst[:, 0] = _l1(P, st.p0p) + st.p0_out
        dirac = _is_dirac(P)
        newly = dirac & (ctime[act] < 0)
        if newly.any():
            ctime[act[newly]] = m
        if m <= G:
            sig[act, m] = _sigma(P)
            mxp[act, m] = _max_prob(P)
            supp[act, m] = _support_size(P)
            dfirst[act, m] = _l1(P, st.p1p) + st.p1_out
            dtrue[act, m] = _l1(P, st.p0p) + st.p0_out
            if hist is not None:
                hist[act, m] = _scatter(P, st.tok, s)
        # which tokens can still appear, and which runs can no longer change
        alive = P > 0
        for a in stepper.sources(st, m):
            alive |= (a > 0) if a.ndim == 2 else (a > 0).any(axis=1)
        cnt = alive.sum(axis=1)
        absorbed = (cnt == 1) & dirac
        if absorbed.any():
            rows = act[absorbed]
            atime[rows] = m
            final[rows] = _scatter(P[absorbed], st.tok[absorbed], s)
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
            used = "numba" if use_numba else "numpy"
            m_last = tail.tail_from_counts(st, act, m, m_stop, st.rowvec.get("n", nvec[act]), rng, ctime, atime,
                                           final, used)
            act = act[:0]
            break
        if cnt.max() <= 0.75 * st.k:
            st.repack(alive)
    if act.size:
        final[act] = _scatter(st.P, st.tok, s)
    return result(m_last, used)
