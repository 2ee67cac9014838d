"""The engine's packed per-run state, shared by the engine and the steppers.

Runs are rows; column j of run r stands for token ``tok[r, j]`` (tokens packed to the left,
padding columns carry probability 0). :class:`_State` is written by
:func:`~collapse_lib.simulate.engine.simulate` and read and updated by the update rules of
:mod:`~collapse_lib.simulate.steppers`; it lives in its own module so that neither of those
imports the other for it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["_State", "_initial_packing", "_scatter"]


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
