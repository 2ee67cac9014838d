"""Fully synthetic runs until total collapse, past the recorded generations.

With ``until_collapse=True`` and a :class:`~collapse_lib.simulate.FullySynthetic` scenario
without decoding, the generations after the recorded horizon only need each run's counts:
X^(m) ~ Multinomial(n, X^(m-1)/n) (eq. (5) with n_{m-1}^(m) = n), until one token is left.
Two implementations of that same Markov chain:

* ``"numba"``: the compiled per-run kernels of :mod:`collapse_lib._wf_kernel`
  (:func:`tail_from_counts` after recorded generations, :func:`tail_from_p0` when nothing
  is recorded, so that even generation 1 is drawn in compiled code). They draw each run's
  winner, then the winner's count conditioned on winning (1 + Binomial(n-1, x/n) per
  generation), and the other tokens only for runs cut by the cap;
* ``"numpy"``: :func:`_tail_numpy`, vectorised over runs (one 2-D multinomial draw per
  generation for runs with three or more survivors, one binomial for two-token runs).

They consume random numbers differently, so the same seed gives different (equally
valid) runs on the two paths; each is deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from .. import _wf_kernel as K

__all__ = ["tail_from_counts", "tail_from_p0", "numba_available"]


def numba_available() -> bool:
    """True when the compiled kernels can be used (numba is installed)."""
    return K.AVAILABLE


def _pack_counts(X: np.ndarray, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the non-zero columns of each row of X to the left; drop all-zero trailing columns."""
    alive = X > 0
    knew = int(alive.sum(axis=1).max())
    keep = np.argsort(~alive, axis=1, kind="stable")[:, :knew]
    return np.take_along_axis(X, keep, axis=1), np.take_along_axis(tok, keep, axis=1)


def tail_from_counts(st, act: np.ndarray, m: int, m_stop: int, nvec: np.ndarray, rng: np.random.Generator,
                     ctime: np.ndarray, atime: np.ndarray, final: np.ndarray, backend: str) -> int:
    """Continue the active runs (engine state `st` at generation m) up to collapse or m_stop.

    Writes collapse/absorption times (original run indices `act`) and final distributions;
    returns the last generation simulated.
    """
    nA = np.asarray(nvec, dtype=np.int64)
    XA = np.rint(st.P * nA[:, None]).astype(np.int64)
    XA, tokA = _pack_counts(XA, st.tok)
    if backend == "numpy":
        return _tail_numpy(XA, tokA, act, nA, m, m_stop, rng, ctime, atime, final)
    last = m
    for n in np.unique(nA):
        rows = np.nonzero(nA == n)[0]
        cdf, guide = K.tables(int(n))
        sub = np.zeros((rows.size, final.shape[1]))
        T = np.empty(rows.size, dtype=np.int64)
        M = np.empty(rows.size, dtype=np.int64)
        K.wf_from_counts(np.ascontiguousarray(XA[rows]), np.ascontiguousarray(tokA[rows]), int(n), m, m_stop, K.rng_state(rng),
                         cdf, guide, sub, T, M)
        _record(act[rows], T, sub, ctime, atime, final)
        last = max(last, int(M.max()))
    return last


def tail_from_p0(P0: np.ndarray, row_of_run: np.ndarray, nvec: np.ndarray, m_stop: int, rng: np.random.Generator,
                 ctime: np.ndarray, atime: np.ndarray, final: np.ndarray, drift1: np.ndarray) -> int:
    """Runs r = 0..R-1 from p^(0) = P0[row_of_run[r]], generation 1 included (compiled path only).

    Also writes drift1[r] = ||p^(1) - p^(0)||_1 (the engine's drift_first[:, 0]).
    Returns the last generation simulated.
    """
    nA = np.asarray(nvec, dtype=np.int64)
    last = 1
    single = bool(np.all(nA == nA[0]))
    for n in (nA[:1] if single else np.unique(nA)):
        rows = np.arange(nA.size) if single else np.nonzero(nA == n)[0]
        cdf, guide = K.tables(int(n))
        sub = final if single else np.zeros((rows.size, final.shape[1]))  # final starts at 0
        T = np.empty(rows.size, dtype=np.int64)
        M = np.empty(rows.size, dtype=np.int64)
        D1 = np.empty(rows.size)
        K.wf_from_distribution(P0, np.ascontiguousarray(row_of_run[rows]), int(n), m_stop, K.rng_state(rng), cdf, guide, sub, T, M, D1)
        _record(rows, T, sub, ctime, atime, final)
        drift1[rows] = D1
        last = max(last, int(M.max()))
    return last


def _record(rows: np.ndarray, T: np.ndarray, sub: np.ndarray, ctime, atime, final) -> None:
    done = T > 0
    r = rows[done]
    ctime[r] = np.where(ctime[r] < 0, T[done], ctime[r])
    atime[r] = T[done]
    if sub is not final:
        final[rows] = sub


def _tail_numpy(XA: np.ndarray, tokA: np.ndarray, act: np.ndarray, nA: np.ndarray, m: int, m_stop: int,
                rng: np.random.Generator, ctime: np.ndarray, atime: np.ndarray, final: np.ndarray) -> int:
    """Pure-numpy tail on packed counts XA of tokens tokA (same chain as the compiled kernel).

    Runs are split in two groups: runs with three or more surviving tokens (group A: one
    2-D multinomial draw per generation, columns re-packed every 4 generations) and runs
    with exactly two survivors (group B: the count a of the first survivor is
    Binomial(n, a/n), one cheap vectorised draw). Runs move from A to B once, and leave
    when they become a Dirac mass.
    """
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
