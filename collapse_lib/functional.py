"""Functional approximation error: recursive training of a linear softmax model with shared embeddings.

The paper's model gives every context its own row of logits (one-hot embeddings), so the fitted
model is the table of empirical frequencies. Its Section 5 proposes Gaussian context embeddings
instead, so that the embedding dimension d controls capacity. This module implements that
extension (course chapter 8).

Model. c contexts with fixed embeddings x_j in R^d (rows of X, shape (c, d)), s tokens, weights
W in R^{d x s} and

    p_jk(W) = softmax(W^T x_j)_k.

Fit. Given training frequencies F (c, s) (row j: empirical next-token distribution of the data of
context j), the fitted model minimises the sum over contexts of the per-context cross-entropy plus
an L2 penalty ("weight decay on the mean loss", so its strength does not depend on n):

    L(W) = - sum_j sum_k F_jk log p_jk(W) + (lam / 2) ||W||_F^2,                     (F1)
    grad L = - X^T (F - P(W)) + lam W,                                                 (F2)

so at the optimum X^T (F - P) = lam W (moment matching when lam = 0). (F1) is minimised by a
batched damped Newton method (all runs at once). With lam = 0 the infimum need not be attained
(a token absent from the data of some contexts can be pushed to logit -inf, as in chapter 1); the
model is then the limit of a minimising sequence, the *extended* maximum-likelihood estimate.
Which probabilities vanish in the limit is decided by the geometry of X, not by the data alone: a
token with no data anywhere gets probability 0 in every context only if some direction w has
x_j^T w < 0 for every j (for X = (1, -1)^T and d = 1 no such w exists, and the MLE keeps such a
token alive). Newton (with step expansion along separating directions) drives the vanishing
logits to about -40, and fitted probabilities below ``SNAP = 1e-6`` are set to 0 (a token of
probability 1e-6 would be drawn with probability below 1e-6 n per generation anyway). When lam = 0
and X has rank c (d >= c), every table of positive rows is a model, the fit is the frequency table
F itself (closed form, used unless ``method="newton"``): the paper's model is the case X = I_c.

Loop. Same scenarios as :mod:`collapse_lib.simulate` (its ``FullySynthetic`` and
``PartiallySynthetic`` dataclasses): generation 1 is fitted to real data (n, resp. N, samples per
context from p^(0)); generation m >= 2 to n samples per context of p^(m-1) (plus, partially
synthetic, the same N real samples, F = (N F_real + n F_syn) / (N + n)).

Exact values and measurements for the chapter: :func:`exact_total_collapse_time` (eq. F3, the
time to total collapse of the count model, d >= c, from the exact chain of chapter 3) and
:func:`metastability` (collapsed samples of a penalised run and the escapes from them, against
eq. F4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from . import theory
from .distributions import validate

__all__ = [
    "SNAP",
    "canonical_embeddings",
    "gaussian_embeddings",
    "leverages",
    "FitResult",
    "fit",
    "refit_noise_free",
    "LinearRun",
    "simulate_linear",
    "exact_total_collapse_time",
    "Metastability",
    "metastability",
]

SNAP = 1e-6  # fitted probabilities below this are the numerical trace of an exact zero (lam = 0)
_DIRAC_TOL = 1e-12
_ZMAX = 40.0  # step expansion stops at |logit| = 40 (p ~ 1e-17): larger weights only add round-off


# ----------------------------------------------------------------------------- embeddings
def canonical_embeddings(c: int) -> np.ndarray:
    """X = I_c: one-hot contexts, the paper's model (d = c)."""
    return np.eye(V.integer("c", c, minimum=1))


def gaussian_embeddings(c: int, d: int, seed=None) -> np.ndarray:
    """X (c, d) with i.i.d. N(0, 1/d) entries, so that E||x_j||^2 = 1 as for canonical vectors.

    For nested capacities use the first d columns of one draw with d = c, rescaled by sqrt(c/d)
    (see the chapter); this function draws a fresh matrix.
    """
    c, d = V.integer("c", c, minimum=1), V.integer("d", d, minimum=1)
    return V.rng_from_seed("seed", seed).standard_normal((c, d)) / math.sqrt(d)


def leverages(X) -> np.ndarray:
    """Leverages h_j = x_j^T (X^T X)^+ x_j, the diagonal of the hat matrix of X (sum = rank X).

    h_j = 1 for every j when X has rank c (e.g. canonical); on average d/c for Gaussian d < c.
    """
    X = _check_X(X)
    return np.einsum("jd,de,je->j", X, np.linalg.pinv(X.T @ X), X)


# ----------------------------------------------------------------------------- checks
def _check_X(X) -> np.ndarray:
    return V.real_array("X (embeddings, shape (c, d))", X, ndim=(2,))


def _check_lam(lam) -> float:
    return V.real("lam (L2 penalty)", lam, low=0.0)


def _full_rank_rows(X: np.ndarray) -> bool:
    return X.shape[1] >= X.shape[0] and np.linalg.matrix_rank(X) == X.shape[0]


# ----------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """Output of :func:`fit`: weights W (R, d, s) (NaN where the limit has infinite weights, i.e.
    the closed form), probabilities P (R, c, s), Newton iterations per run, and the largest final
    gradient entry |grad L| per run (0 for the closed form)."""

    W: np.ndarray
    P: np.ndarray
    iterations: np.ndarray
    grad_max: np.ndarray


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=-1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=-1, keepdims=True)


def _objective(W, X, F, lam):
    Z = np.einsum("jd,rds->rjs", X, W)
    m = Z.max(axis=-1, keepdims=True)
    logp = Z - m - np.log(np.exp(Z - m).sum(axis=-1, keepdims=True))
    ce = -np.where(F > 0, F * logp, 0.0).sum(axis=(1, 2))
    return ce + 0.5 * lam * (W**2).sum(axis=(1, 2)), _softmax(Z)


_PURE_NEWTON = 1e-8  # Newton decrement lam^2 below which the full step is taken without a line search


def fit(F, X, lam: float = 0.0, W0=None, tol: float = 1e-10, max_iter: int = 300, method: str = "auto") -> FitResult:
    """Minimise (F1) for a batch of frequency tables F (R, c, s) (or one table (c, s)).

    ``method="auto"`` uses the closed form P = F when lam = 0 and X has rank c, and Newton
    otherwise; ``"newton"`` always runs Newton (used to check the closed form). ``W0`` (R, d, s)
    warm-starts Newton (the previous generation's weights). Every run ends with
    max |grad L| <= ``tol``; RuntimeError if one has not after ``max_iter`` iterations.

    Newton: H = sum_j (diag p_j - p_j p_j^T) (x) x_j x_j^T + lam I on the flattened (d, s)
    weights, step v = -H^{-1} g, Newton decrement delta^2 = g^T H^{-1} g = -g^T v (the predicted
    decrease of L is delta^2 / 2). While delta^2 > 1e-8 a backtracking line search (Armijo) damps
    the step; below it (the quadratic region, where L can no longer resolve the decrease in
    floating point) the full step is taken, so the gradient keeps converging quadratically to
    ``tol`` instead of stalling where the loss stops changing. With lam = 0, a full step that is
    accepted is doubled while L keeps decreasing (along a separating direction the logits must go
    to -inf, and plain Newton would only move them by about 1 per iteration), up to |logit| = 40.
    With lam = 0 the softmax gauge W -> W + v 1^T is fixed by keeping the column of the most
    frequent token at 0.
    """
    X = _check_X(X)
    lam = _check_lam(lam)
    F = V.real_array("F", F, ndim=(2, 3))
    single = F.ndim == 2
    F = F[None] if single else F
    if F.ndim != 3 or F.shape[1] != X.shape[0]:
        raise V.InvalidArgument(f"F must have shape (c, s) or (runs, c, s) with c = {X.shape[0]} rows of X, got {F.shape}")
    validate(F, ndim=3, name="F")
    V.choice("method", method, ("auto", "newton"))
    tol = V.real("tol", tol, low=0.0, low_open=True)
    max_iter = V.integer("max_iter", max_iter, minimum=1)
    R, c, s = F.shape
    d = X.shape[1]
    if lam == 0 and method == "auto" and _full_rank_rows(X):
        out = FitResult(np.full((R, d, s), np.nan), F.copy(), np.zeros(R, dtype=np.int64), np.zeros(R))
        return _squeeze(out) if single else out
    if lam == 0 and np.linalg.matrix_rank(X) < d:
        raise V.InvalidArgument(f"with lam = 0, X must have rank d (got rank {np.linalg.matrix_rank(X)} < d = {d}); "
                                "use lam > 0 or fewer columns")
    W = np.zeros((R, d, s)) if W0 is None else np.array(V.real_array("W0", W0, ndim=(3,)), copy=True)
    if W.shape != (R, d, s):
        raise V.InvalidArgument(f"W0 must have shape {(R, d, s)}, got {W.shape}")
    fixed = np.zeros((R, s), dtype=bool)
    if lam == 0:
        ref = F.sum(axis=1).argmax(axis=1)  # gauge: the most frequent token keeps logits 0
        fixed[np.arange(R), ref] = True
        W[np.broadcast_to(fixed[:, None, :], W.shape)] = 0.0
    fixed_flat = np.broadcast_to(fixed[:, None, :], (R, d, s)).reshape(R, d * s)
    XX = np.einsum("ja,jb->jab", X, X).reshape(c, d * d)
    iters = np.zeros(R, dtype=np.int64)
    gmax = np.full(R, np.inf)
    L, P = _objective(W, X, F, lam)
    active = np.arange(R)
    for it in range(max_iter + 1):
        G = -np.einsum("jd,rjs->rds", X, F[active] - P[active]) + lam * W[active]
        g = G.reshape(active.size, d * s)
        g[fixed_flat[active]] = 0.0
        gm = np.abs(g).max(axis=1)
        gmax[active] = gm
        keep = gm > tol
        active, g = active[keep], g[keep]
        if active.size == 0 or it == max_iter:
            break
        iters[active] += 1
        Pa = P[active]
        A = -np.einsum("rjk,rjl->rjkl", Pa, Pa)
        idx = np.arange(s)
        A[:, :, idx, idx] += Pa
        Hk = np.matmul(A.reshape(active.size, c, s * s).transpose(0, 2, 1), XX)  # (r, s*s, d*d)
        H = Hk.reshape(active.size, s, s, d, d).transpose(0, 3, 1, 4, 2).reshape(active.size, d * s, d * s)
        H = H + (lam + 1e-13) * np.eye(d * s)
        fa = fixed_flat[active]
        H[fa] = 0.0
        H.transpose(0, 2, 1)[fa] = 0.0
        H[:, np.arange(d * s), np.arange(d * s)] += fa
        step = -np.linalg.solve(H, g[..., None])[..., 0]
        slope = (g * step).sum(axis=1)  # -delta^2
        t = np.ones(active.size)
        Wa, La = W[active], L[active]
        pure = -slope <= _PURE_NEWTON  # quadratic region: full Newton step, no line search
        if pure.any():
            rows = active[pure]
            W[rows] = Wa[pure] + step[pure].reshape(-1, d, s)
            L[rows], P[rows] = _objective(W[rows], X, F[rows], lam)
        todo = np.nonzero(~pure)[0]
        for _ in range(60):  # backtracking (Armijo)
            if todo.size == 0:
                break
            Wt = Wa[todo] + (t[todo, None] * step[todo]).reshape(todo.size, d, s)
            Lt, Pt = _objective(Wt, X, F[active[todo]], lam)
            ok = Lt <= La[todo] + 1e-4 * t[todo] * slope[todo]
            rows = active[todo[ok]]
            W[rows], L[rows], P[rows] = Wt[ok], Lt[ok], Pt[ok]
            todo = todo[~ok]
            t[todo] *= 0.5
        if lam == 0:  # expansion: along a separating direction the loss keeps falling (logits -> -inf)
            grow = np.nonzero((t == 1.0) & ~pure)[0]
            for _ in range(12):
                if grow.size == 0:
                    break
                t[grow] *= 2.0
                Wt = Wa[grow] + (t[grow, None] * step[grow]).reshape(grow.size, d, s)
                Lt, Pt = _objective(Wt, X, F[active[grow]], lam)
                zmax = np.abs(np.einsum("jd,rds->rjs", X, Wt)).max(axis=(1, 2))
                ok = (Lt < L[active[grow]]) & (zmax <= _ZMAX)
                rows = active[grow[ok]]
                W[rows], L[rows], P[rows] = Wt[ok], Lt[ok], Pt[ok]
                grow = grow[ok]
    bad = gmax > tol
    if np.any(bad):
        worst = int(np.argmax(np.where(bad, gmax, -1)))
        raise RuntimeError(f"Newton did not converge for {int(bad.sum())} run(s) "
                           f"(worst max|grad| = {gmax[worst]:.3g} > tol = {tol:.3g} after {iters[worst]} iterations)")
    if lam == 0:
        P = np.where(P < SNAP, 0.0, P)
        P /= P.sum(axis=-1, keepdims=True)
    out = FitResult(W, P, iters, gmax)
    return _squeeze(out) if single else out


def _squeeze(r: FitResult) -> FitResult:
    return FitResult(r.W[0], r.P[0], r.iterations[0], r.grad_max[0])


def refit_noise_free(P, X, lam: float = 0.0, generations: int = 1) -> np.ndarray:
    """The noise-free recursion (n = infinity): P <- argmin (F1) with F = P, ``generations`` times.

    Returns the array (generations + 1, c, s) of iterates, row 0 = P. With lam = 0 one step is the
    information projection onto the model family and every later step leaves it unchanged; with
    lam > 0 the iterates converge to the uniform table (chapter 8).
    """
    P = validate(P, ndim=2, name="P")
    generations = V.integer("generations", generations, minimum=0)
    out = [P]
    W = None
    for _ in range(generations):
        r = fit(out[-1], X, lam, W0=W)
        W = None if np.isnan(r.W).any() else r.W[None]
        out.append(r.P)
    return np.stack(out)


# ----------------------------------------------------------------------------- the loop
@dataclass
class LinearRun:
    """Output of :func:`simulate_linear`.

    Per-generation, per-context arrays have shape (runs, generations+1, c); column m is
    generation m, column 0 is p^(0): ``sigma`` = sum_k p_jk^2, ``entropy`` (nats), ``dirac``
    (p_j is a Dirac mass), ``drift_first`` = ||p_j^(m) - p_j^(1)||_1, ``drift_true`` =
    ||p_j^(m) - p_j^(0)||_1, ``seen`` = number of distinct tokens in the training data of
    generation m (for the count model, the support of p_j^(m); column 0: support of p^(0)).
    ``total_collapse`` (runs,) is the first m >= 1 at which every context is a Dirac mass (an
    absorbing state when lam = 0, Fully Synthetic), -1 if not reached within the simulated
    generations; ``context_collapse`` (runs, c) the first m at which context j is a Dirac mass. ``final`` (runs, c, s) is the last simulated table of each run
    (at absorption with ``until_collapse``); ``history`` (runs, generations+1, c, s) holds every
    recorded p^(m).
    ``newton_iterations`` is the total number of Newton iterations.
    """

    sigma: np.ndarray
    entropy: np.ndarray
    dirac: np.ndarray
    drift_first: np.ndarray
    drift_true: np.ndarray
    seen: np.ndarray
    total_collapse: np.ndarray
    context_collapse: np.ndarray
    final: np.ndarray
    history: np.ndarray
    newton_iterations: int

    @property
    def runs(self) -> int:
        return self.sigma.shape[0]

    def mean_se(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs and contexts of a per-generation array, and its Monte Carlo SE.

        Contexts of one run are dependent, so the SE is computed from the per-run context means
        (runs are independent)."""
        a = np.asarray(getattr(self, name), dtype=float).mean(axis=-1)
        return a.mean(axis=0), a.std(axis=0, ddof=1) / math.sqrt(a.shape[0])


def _entropy(P: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0).sum(axis=-1)


def simulate_linear(p0, X, scenario, generations: int, runs: int = 1, lam: float = 0.0, seed=None,
                    method: str = "auto", until_collapse: bool = False, max_generations: int = 10_000) -> LinearRun:
    """Run ``runs`` independent recursive-training chains of the linear softmax model.

    Parameters
    ----------
    p0 : array (c, s), true next-token distribution of each context (one row per context).
    X : array (c, d), context embeddings (:func:`gaussian_embeddings`, :func:`canonical_embeddings`).
    scenario : ``collapse_lib.simulate.FullySynthetic(n)`` or ``PartiallySynthetic(N, n)`` (without
        decoding, one sample size): n samples per context and generation.
    generations : int >= 1, generations recorded (and simulated unless ``until_collapse``).
    runs : number of independent runs.
    lam : L2 penalty of (F1), >= 0.
    seed : seed for ``numpy.random.default_rng``; same seed, same result.
    method : passed to :func:`fit`.
    until_collapse : keep simulating (without recording) until every run is absorbed or
        ``max_generations``; only Fully Synthetic with lam = 0 has absorbing states.

    A run is *absorbed* when every row of p^(m) is a Dirac mass: its samples then reproduce
    p^(m), whose fit is p^(m) again (likelihood 1), so nothing changes any more; absorbed runs are
    frozen (not refitted).
    """
    from .simulate import FullySynthetic, PartiallySynthetic  # the scenarios (imported here: simulate loads numba)

    P0 = validate(p0, ndim=2, name="p0")
    X = _check_X(X)
    lam = _check_lam(lam)
    c, s = P0.shape
    if X.shape[0] != c:
        raise V.InvalidArgument(f"X has {X.shape[0]} rows (contexts) but p0 has {c}")
    if isinstance(scenario, FullySynthetic):
        n, N = scenario.n, 0
    elif isinstance(scenario, PartiallySynthetic):
        n, N = scenario.n, scenario.N
    else:
        raise V.InvalidArgument(f"scenario must be FullySynthetic or PartiallySynthetic, got {type(scenario).__name__}")
    if getattr(scenario, "decoding", None) is not None:
        raise V.InvalidArgument("scenario.decoding must be None for the linear softmax model")
    if not isinstance(n, (int, np.integer)):
        raise V.InvalidArgument(f"scenario.n must be one positive integer here, got {n!r}")
    G = V.integer("generations", generations, minimum=1)
    R = V.integer("runs", runs, minimum=1)
    V.integer("max_generations", max_generations, minimum=1)
    until_collapse = V.boolean("until_collapse", until_collapse)
    V.choice("method", method, ("auto", "newton"))
    absorbing = N == 0 and lam == 0
    if until_collapse and not absorbing:
        raise V.InvalidArgument("until_collapse needs FullySynthetic and lam = 0 (otherwise no state is absorbing)")
    if R * (G + 1) * c * s > 5e7:
        raise V.InvalidArgument(f"history would store {R * (G + 1) * c * s:.3g} numbers (> 5e7); reduce runs or generations")
    rng = V.rng_from_seed("seed", seed)

    def draw(P, k):  # frequencies of k samples per context, (r, c, s)
        return rng.multinomial(k, P.reshape(-1, s)).reshape(P.shape) / k

    hist = np.empty((R, G + 1, c, s))
    hist[:, 0] = P0
    seen = np.empty((R, G + 1, c), dtype=np.int64)
    seen[:, 0] = np.count_nonzero(P0, axis=1)
    P = np.array(np.broadcast_to(P0, (R, c, s)))
    F_real = draw(P, N) if N else None
    W = None
    total = np.full(R, -1, dtype=np.int64)
    ctx = np.full((R, c), -1, dtype=np.int64)
    act = np.arange(R)
    iters = 0
    m_stop = max(G, max_generations) if until_collapse else G
    last = 0  # last recorded generation
    for m in range(1, m_stop + 1):
        if act.size == 0:
            break
        if m == 1:
            F = F_real if N else draw(P, n)
        else:
            Fs = draw(P[act], n)
            F = (N * F_real + n * Fs) / (N + n) if N else Fs
        r = fit(F, X, lam, W0=W, method=method)
        iters += int(r.iterations.sum())
        P[act] = r.P
        W = None if np.isnan(r.W).any() else r.W
        dir_rows = r.P.max(axis=2) >= 1 - _DIRAC_TOL
        sub = ctx[act]
        sub[dir_rows & (sub < 0)] = m
        ctx[act] = sub
        if m <= G:
            seen[act, m] = np.count_nonzero(F, axis=2)
            hist[:, m] = P
            last = m
        if absorbing:
            done = dir_rows.all(axis=1)
            total[act[done]] = m
            keep = ~done
            act = act[keep]
            if N:
                F_real = F_real[keep]
            W = None if W is None else W[keep]
    if last < G:  # every run was absorbed before generation G: the later tables are the absorbed ones
        hist[:, last + 1:] = P[:, None]
    if absorbing:  # frozen runs keep p^(m) (hist was filled from P); their data are one token
        for m in range(2, G + 1):
            seen[(total >= 1) & (total < m), m] = 1
    dirac = hist.max(axis=3) >= 1 - _DIRAC_TOL
    return LinearRun(
        sigma=np.einsum("rmjs,rmjs->rmj", hist, hist),
        entropy=_entropy(hist),
        dirac=dirac,
        drift_first=np.concatenate([np.abs(hist[:, :1] - hist[:, 1:2]).sum(axis=3),
                                    np.abs(hist[:, 1:] - hist[:, 1:2]).sum(axis=3)], axis=1),
        drift_true=np.abs(hist - P0).sum(axis=3),
        seen=seen,
        total_collapse=total,
        context_collapse=ctx,
        final=P,
        history=hist,
        newton_iterations=iters,
    )


# ----------------------------------------------------------------------------- exact values at d >= c
def exact_total_collapse_time(p0, n: int, tol: float = 1e-12) -> float:
    """Exact E[T_total] for the count model (d >= c, lam = 0, Fully Synthetic): contexts independent.

    T_total = max_j T_j with independent T_j (:func:`fit` is the frequency table, lemma
    lem-ch08-capacity), so

        E[T_total] = sum_{m >= 0} P(max_j T_j > m) = sum_{m >= 0} [1 - prod_j (1 - P(T_j > m))],   (F3)

    with P(T_j > m) from the exact chain of chapter 3 (:func:`collapse_lib.theory.collapse_time_survival`).
    The sum is cut at the first m where the bound sum_j P(T_j > m) <= c n (1 - 1/n)^m (eq. (7) of
    the paper) puts the remaining terms, at most c n^2 (1 - 1/n)^m, below ``tol``.
    """
    P = validate(p0, ndim=2, name="p0")
    n = V.integer("n", n, minimum=1)
    tol = V.real("tol", tol, low=0.0, low_open=True)
    if n == 1:
        return 1.0  # one sample per context: every p^(1) is a Dirac mass
    c = P.shape[0]
    m_max = max(1, math.ceil(math.log(tol / (c * n * n)) / math.log1p(-1.0 / n)))
    surv = np.array([theory.collapse_time_survival(p, n, m_max) for p in P])  # (c, m_max + 1)
    return float((1.0 - np.prod(1.0 - surv, axis=0)).sum())


# ----------------------------------------------------------------------------- metastability (lam > 0)
@dataclass
class Metastability:
    """Output of :func:`metastability`, per run (arrays of shape (runs,)).

    A generation's sample is *collapsed* when the n samples of every context are one token (at
    lam = 0 and a separable labelling, the fit is then an absorbing Dirac table). ``first``: the first
    generation m >= 1 with a collapsed sample (``generations + 1`` if none was recorded); ``visits``:
    generations 1 <= m < G with a collapsed sample; ``escapes``: those followed by a sample that is not
    collapsed; ``predicted``: the sum over visits of the exact escape probability given p^(m),
    q = 1 - prod_j sum_k p_jk^n (eq. F4); ``predicted_var``: the sum of q (1 - q)."""

    first: np.ndarray
    visits: np.ndarray
    escapes: np.ndarray
    predicted: np.ndarray
    predicted_var: np.ndarray
    generations: int

    def escape_rate(self) -> tuple[float, float]:
        """Escapes per visit (pooled over runs) and its SE (ratio estimator, runs independent); NaN if no visit."""
        v, e = self.visits.astype(float), self.escapes.astype(float)
        if v.sum() == 0:
            return math.nan, math.nan
        r = e.sum() / v.sum()
        R = v.size
        se = math.sqrt(((e - r * v) ** 2).sum() * R / max(R - 1, 1)) / v.sum()
        return float(r), float(se)

    def time_to_collapse(self) -> tuple[float, float, float]:
        """(fraction of runs with a collapsed sample by generation G, restricted mean of
        min(first, G + 1), its SE over runs)."""
        f = np.minimum(self.first, self.generations + 1).astype(float)
        R = f.size
        return (float(np.mean(self.first <= self.generations)), float(f.mean()),
                float(f.std(ddof=1) / math.sqrt(R)) if R > 1 else math.nan)


def metastability(run: LinearRun, n: int) -> Metastability:
    """Collapsed samples and escapes from them in a Fully Synthetic run of :func:`simulate_linear`.

    Given p^(m), the next sample is collapsed with probability prod_j sum_k p_jk^n, so a visit at m
    escapes with probability

        q(p^(m)) = 1 - prod_j sum_k (p_jk^(m))^n,                                        (F4)

    the number the measured escape frequency is compared with. ``n`` is the run's sample size.
    """
    if not isinstance(run, LinearRun):
        raise V.InvalidArgument(f"run must be a LinearRun (from simulate_linear), got {type(run).__name__}")
    n = V.integer("n", n, minimum=1)
    G = run.seen.shape[1] - 1
    if G < 2:
        raise V.InvalidArgument("run must record at least 2 generations")
    col = (run.seen == 1).all(axis=2)  # (R, G + 1): sample of generation m collapsed
    col[:, 0] = False
    first = np.where(col[:, 1:].any(axis=1), col[:, 1:].argmax(axis=1) + 1, G + 1)
    vis = col[:, 1:G]  # visits at m = 1 .. G - 1 (the next sample is recorded)
    esc = vis & ~col[:, 2:]
    q = 1.0 - np.prod((run.history[:, 1:G] ** n).sum(axis=3), axis=2)  # (R, G - 1), eq. (F4)
    q = np.clip(q, 0.0, 1.0)
    return Metastability(first=first, visits=vis.sum(axis=1), escapes=esc.sum(axis=1),
                         predicted=(q * vis).sum(axis=1), predicted_var=(q * (1 - q) * vis).sum(axis=1),
                         generations=G)
