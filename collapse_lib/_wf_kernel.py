"""Compiled Wright-Fisher kernel for fully synthetic runs until total collapse (numba).

Used by :func:`collapse_lib.simulate.simulate` for the unrecorded generations of
``FullySynthetic`` runs with ``until_collapse=True`` and no decoding. The chain is
X^(m) ~ Multinomial(n, X^(m-1)/n) on the counts of the surviving tokens (eq. (5) with
n_{m-1}^(m) = n), stopped when one token holds all n samples. Nothing recorded depends
on the path before that: a run that collapses reports its collapse time T and its
winner. The kernel draws exactly those two, with the law of the chain, without drawing
the multinomials:

* **Winner.** Each count X_i^(m)/n is a bounded martingale and the chain is absorbed,
  so the winner is token i with probability c_i/n given the current counts c
  (Proposition 1 of Seddik et al., 2024). It is drawn first.
* **Collapse time given the winner.** Lumping all other tokens into one, X_i alone is
  the two-type chain x -> Binomial(n, x/n), and {i wins} = {X_i reaches n}, an event of
  X_i's path. Conditioned on it (Doob's h-transform with h(x) = x/n), the transition is

      P(x -> y | i wins) = C(n, y) (x/n)^y (1 - x/n)^(n-y) * y/x
                         = C(n-1, y-1) (x/n)^(y-1) (1 - x/n)^(n-y),

  because y C(n, y) = n C(n-1, y-1): the winner's next count is **1 + Binomial(n-1, x/n)**.
  T is the first generation at which this chain reaches n. One draw per generation,
  whatever the number of survivors: inversion in a table of the n+1 cdfs of
  Binomial(n-1, c/n) with a guide table (n <= 1024; built once per n, cached), otherwise
  Hormann's BTRS (:func:`_binomial`).
* **A run cut by the cap** (``max_generations`` reached before collapse) must also report
  its whole distribution at the cap. The path of the token that would eventually win is
  replayed from the saved generator state (the same draws), and the other tokens are drawn
  along it: given its counts x -> y, the other n - y samples pick parents uniformly among
  the other n - x, so they are Multinomial(n - y, c_others/(n - x)) (a chain of conditional
  binomials). Since X_i is a Markov chain on its own (its next count depends only on its
  current one), the law of the whole chain factorises into the law of X_i's path times
  these kernels, so given the whole path of X_i, and hence given {i wins}, the others are
  drawn step by step by this kernel.

Exactness is that of double precision: the cdf tables agree with scipy's binomial cdf to
4e-13 (n = 1024), uniforms are multiples of 2^-53, and the winner is drawn by exact
integer rejection (n <= 2^53).

Generation 1 from p^(0) (``wf_from_distribution``) draws the n samples of each run from
p^(0) with Walker's alias table (one table per distinct row of p^(0)), or, when n > 4 s,
as a chain of conditional binomials over the s tokens; it reports the drift
||p^(1) - p^(0)||_1 that the engine records.

Uniforms come from xoshiro256+ (Blackman and Vigna, 2018), a small generator inlined in
the compiled code (about 4x cheaper per draw than calling numpy's Generator from numba).
Its states are seeded from the caller's ``numpy.random.Generator`` (:func:`rng_state`):
one stream for the winner's path and generation 1, one for the other tokens of runs cut
by the cap. Results are deterministic for a given seed; the stream differs from the
pure-numpy path of the engine, which draws every multinomial of the same chain.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is pinned in requirements.txt
    njit = None

TABLE_MAX_N = 1024  # cdf + guide tables are (n+1) x n float64 + int32: 12.6 MB at n = 1024


def _binomial_tables(n):  # pragma: no cover - compiled
    """cdf[c, j] = P(Binomial(n-1, c/n) <= j) and guide[c, g] = min{j : cdf[c, j] > g/n}, c = 0..n.

    Below the mode the cdf is summed from j = 0, above it as 1 - P(X > j) summed from j = n-1,
    so that neither tail is lost to rounding; the guide thresholds are lowered by 1e-12 so
    that a rounded bucket index int(u n) never starts the search past the answer.
    """
    k = n - 1  # trials
    cdf = np.zeros((n + 1, k + 1))
    guide = np.zeros((n + 1, k + 1), dtype=np.int32)
    lf = _log_factorials(k)
    pmf = np.empty(k + 1)
    for c in range(n + 1):
        if c == 0 or k == 0:
            cdf[c, :] = 1.0
        elif c == n:
            cdf[c, k] = 1.0
        else:
            lp = math.log(c / n)
            lq = math.log((n - c) / n)
            for j in range(k + 1):
                pmf[j] = math.exp(lf[k] - lf[j] - lf[k - j] + j * lp + (k - j) * lq)
            mode = (c * k) // n
            acc = 0.0
            for j in range(mode):
                acc += pmf[j]
                cdf[c, j] = acc
            tail = 0.0
            for j in range(k, mode - 1, -1):
                cdf[c, j] = 1.0 - tail
                tail += pmf[j]
            for j in range(1, k + 1):
                if cdf[c, j] < cdf[c, j - 1]:
                    cdf[c, j] = cdf[c, j - 1]
        j = 0
        for g in range(k + 1):
            while cdf[c, j] <= g / (k + 1.0) - 1e-12:
                j += 1
            guide[c, g] = j
    return cdf, guide


def _bits53(st):  # pragma: no cover - compiled
    """Next output of xoshiro256+ (Blackman and Vigna, 2018), state st (uint64[4]): its top 53 bits.

    (The "+" scrambler's low bits are weak; the top 53 are what the authors use for doubles.)
    """
    s0 = st[0]
    s1 = st[1]
    s2 = st[2]
    s3 = st[3]
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    st[0] = s0
    st[1] = s1
    st[2] = s2
    st[3] = s3
    return np.int64(result >> np.uint64(11))


def _uniform(st):  # pragma: no cover - compiled
    """Next double in [0, 1): a uniform multiple of 2^-53."""
    return _bits53(st) * (1.0 / 9007199254740992.0)


def _below(st, n):  # pragma: no cover - compiled
    """A uniform integer in [0, n): exact for n <= 2^53 (rejection), int(u n) above."""
    if n > 9007199254740992:
        return min(int(_uniform(st) * n), n - 1)
    lim = (9007199254740992 // n) * n
    while True:
        r = _bits53(st)
        if r < lim:
            return r % n


def _table_draw(rng, cdf, guide, c):  # pragma: no cover - compiled
    """Binomial(n-1, c/n) by inversion in the tables: the first j with cdf[c, j] > u."""
    u = _uniform(rng)
    j = guide[c, int(u * cdf.shape[1])]
    while cdf[c, j] <= u:
        j += 1
    return j


def _binomial(rng, m, p, q, lf):  # pragma: no cover - compiled
    """X ~ Binomial(m, p), with q = 1 - p given by the caller (from integers where it can, so
    that a p near 1 keeps its precision): inversion from 0 when m min(p, q) < 10, else BTRS.

    BTRS is Hormann's transformed rejection with squeeze (W. Hormann, "The generation of
    binomial random variates", J. Statist. Comput. Simul. 46, 1993). Its acceptance test
    needs log(f(x)/f(mode)), made of differences of log-factorials: :func:`_log_fact_ratio`
    computes them without cancellation at any m.
    """
    if m <= 0 or p <= 0.0:
        return 0
    if q <= 0.0:
        return m
    flip = p > q
    if flip:
        p, q = q, p
    if m * p < 10.0:
        r = math.exp(m * math.log1p(-p))  # P(X = 0); log1p keeps the precision of a small p
        ratio = p / q
        a = (m + 1) * ratio
        u = _uniform(rng)
        x = 0
        while u > r:
            u -= r
            x += 1
            if x >= m:
                x = m
                break
            r *= a / x - ratio
    else:
        spq = math.sqrt(m * p * q)
        b = 1.15 + 2.53 * spq
        a = -0.0873 + 0.0248 * b + 0.01 * p
        c = m * p + 0.5
        vr = 0.92 - 4.2 / b
        alpha = (2.83 + 5.1 / b) * spq
        lpq = math.log(p / q)
        mode = int((m + 1) * p)
        while True:
            u = _uniform(rng) - 0.5
            v = _uniform(rng)
            us = 0.5 - abs(u)
            if us == 0.0:  # u = -1/2 (probability 2^-53): no proposal
                continue
            kf = math.floor((2.0 * a / us + b) * u + c)
            if kf < 0 or kf > m:
                continue
            x = int(kf)
            if us >= 0.07 and v <= vr:
                break
            v = math.log(v * alpha / (a / (us * us) + b))
            if v <= _log_fact_ratio(lf, mode, x) + _log_fact_ratio(lf, m - mode, m - x) + (x - mode) * lpq:
                break
    return m - x if flip else x


def _stirling_rest(j):  # pragma: no cover - compiled
    """fc(j) = log j! - [(j + 1/2) log(j + 1) - (j + 1) + log(2 pi)/2] (Stirling's remainder)."""
    if j < 16:
        return math.lgamma(j + 1.0) - ((j + 0.5) * math.log(j + 1.0) - (j + 1.0) + 0.9189385332046728)
    r = 1.0 / (j + 1.0)
    r2 = r * r
    return (1.0 / 12.0 - (1.0 / 360.0 - r2 / 1260.0) * r2) * r


def _log_fact_ratio(lf, a, b):  # pragma: no cover - compiled
    """log(a!/b!): the table lf (log j!) when both are in it, otherwise Stirling's series

    log a! - log b! = (a + 1/2) log1p((a - b)/(b + 1)) + (a - b)(log(b + 1) - 1) + fc(a) - fc(b),

    whose terms are of the size of the result (a difference of two lgamma values near 10^10
    would lose six digits at a = 10^9).
    """
    if a < lf.size and b < lf.size:
        return lf[a] - lf[b]
    return ((a + 0.5) * math.log1p((a - b) / (b + 1.0)) + (a - b) * (math.log(b + 1.0) - 1.0)
            + _stirling_rest(a) - _stirling_rest(b))


def _winner_step(rng, x, n, cdf, guide, use_tab, lf):  # pragma: no cover - compiled
    """The winner's next count given x, conditioned on its fixation: 1 + Binomial(n-1, x/n)."""
    if use_tab:
        return 1 + _table_draw(rng, cdf, guide, x)
    return 1 + _binomial(rng, n - 1, x / n, (n - x) / n, lf)


def _advance(rng, rng2, pos, cnt, a, n, m, m_stop, cdf, guide, use_tab, lf):  # pragma: no cover - compiled
    """Advance one run (its a survivors in pos/cnt, at generation m) to collapse or m = m_stop.

    Returns (a, m); pos/cnt hold the survivors at the end (the winner alone if collapsed).
    """
    if a == 1 or m >= m_stop:
        return a, m
    # the winner: the token of a uniformly picked sample, P(i) = c_i / n
    k = _below(rng, n)
    i = 0
    acc = cnt[0]
    while acc <= k and i < a - 1:
        i += 1
        acc += cnt[i]
    c = cnt[i]
    cnt[i] = cnt[0]
    cnt[0] = c
    t = pos[i]
    pos[i] = pos[0]
    pos[0] = t
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]  # to replay the winner's path
    x = c
    m1 = m
    while x < n and m1 < m_stop:
        m1 += 1
        x = _winner_step(rng, x, n, cdf, guide, use_tab, lf)
    if x == n:
        cnt[0] = n
        return 1, m1
    # cut by the cap: replay the winner's path and draw the other tokens along it
    rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3
    x = c
    while m < m_stop:
        m += 1
        y = _winner_step(rng, x, n, cdf, guide, use_tab, lf)
        left = n - y  # the others' samples, parents among the other n - x
        rem = n - x
        b = 1
        for t in range(1, a):
            c = cnt[t]
            z = _binomial(rng2, left, c / rem, (rem - c) / rem, lf) if left > 0 else 0
            rem -= c
            left -= z
            if z > 0:
                pos[b] = pos[t]
                cnt[b] = z
                b += 1
        a = b
        x = y
        cnt[0] = y
    return a, m


def _from_counts(X, tok, n, m0, m_stop, rng, cdf, guide, final, T, M):  # pragma: no cover - compiled
    """Runs given by packed counts X (R, k) of tokens tok (R, k), all with sample size n."""
    R, k = X.shape
    use_tab = cdf.shape[0] == n + 1
    pos = np.empty(k, dtype=np.int64)
    cnt = np.empty(k, dtype=np.int64)
    lf = _log_factorials(n)
    for r in range(R):
        a = 0
        for j in range(k):
            if X[r, j] > 0:
                pos[a] = tok[r, j]
                cnt[a] = X[r, j]
                a += 1
        a, m = _advance(rng[0], rng[1], pos, cnt, a, n, m0, m_stop, cdf, guide, use_tab, lf)
        for t in range(a):
            final[r, pos[t]] = cnt[t] / n
        T[r] = m if a == 1 else -1
        M[r] = m


def _log_factorials(n):  # pragma: no cover - compiled
    """Table of log j! for j <= min(n, 2^16)."""
    size = min(n, 65536) + 1
    lf = np.empty(size)
    for j in range(size):
        lf[j] = math.lgamma(j + 1.0)
    return lf


def _alias_table(p):  # pragma: no cover - compiled
    """Walker's alias table of a probability vector p (Vose's construction)."""
    s = p.size
    prob = np.empty(s)
    alias = np.zeros(s, dtype=np.int64)
    scaled = p * s
    small = np.empty(s, dtype=np.int64)
    large = np.empty(s, dtype=np.int64)
    ns = 0
    nl = 0
    for i in range(s):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        sm = small[ns]
        nl -= 1
        lg = large[nl]
        prob[sm] = scaled[sm]
        alias[sm] = lg
        scaled[lg] = (scaled[lg] + scaled[sm]) - 1.0
        if scaled[lg] < 1.0:
            small[ns] = lg
            ns += 1
        else:
            large[nl] = lg
            nl += 1
    for i in range(nl):
        prob[large[i]] = 1.0
    for i in range(ns):  # only rounding leftovers
        prob[small[i]] = 1.0
    return prob, alias


def _from_distribution(P0, row_of_run, n, m_stop, rng, cdf, guide, final, T, M, D1):  # pragma: no cover
    """Runs starting at p^(0) = P0[row_of_run[r]]: generation 1 is n alias draws from p^(0).

    D1[r] receives ||p^(1) - p^(0)||_1.
    """
    U, s = P0.shape
    R = row_of_run.size
    use_tab = cdf.shape[0] == n + 1
    probs = np.empty((U, s))
    aliases = np.empty((U, s), dtype=np.int64)
    if n <= 4 * s:
        for u in range(U):
            probs[u], aliases[u] = _alias_table(P0[u])
    k = min(n, s)
    pos = np.empty(k, dtype=np.int64)
    cnt = np.empty(k, dtype=np.int64)
    lf = _log_factorials(n)
    st = rng[0]
    dense = np.zeros(s, dtype=np.int64)
    for r in range(R):
        u = row_of_run[r]
        a = 0
        if n <= 4 * s:  # n alias draws, one uniform each
            for _ in range(n):
                v = _uniform(st) * s
                i = int(v)
                if i >= s:
                    i = s - 1
                if v - i >= probs[u, i]:
                    i = aliases[u, i]
                if dense[i] == 0:
                    pos[a] = i
                    a += 1
                dense[i] += 1
        else:  # large n: chain of conditional binomials over the tokens
            left = n
            rest = 1.0
            ilast = s - 1
            while P0[u, ilast] <= 0.0:
                ilast -= 1
            for i in range(s):
                q = P0[u, i]
                if q <= 0.0:
                    continue
                x = left if i == ilast else _binomial(st, left, min(q / rest, 1.0), max(rest - q, 0.0) / rest, lf)
                rest -= q
                if x > 0:
                    pos[a] = i
                    dense[i] = x
                    a += 1
                    left -= x
                if left == 0:
                    break
        d = 1.0
        for t in range(a):
            i = pos[t]
            cnt[t] = dense[i]
            dense[i] = 0
            q = P0[u, i]
            d += abs(cnt[t] / n - q) - q
        D1[r] = d
        a, m = _advance(st, rng[1], pos, cnt, a, n, 1, m_stop, cdf, guide, use_tab, lf)
        for t in range(a):
            final[r, pos[t]] = cnt[t] / n
        T[r] = m if a == 1 else -1
        M[r] = m


if njit is not None:
    _jit = njit(cache=True, nogil=True)
    _binomial_tables = _jit(_binomial_tables)
    _bits53 = _jit(_bits53)
    _uniform = _jit(_uniform)
    _below = _jit(_below)
    _table_draw = _jit(_table_draw)
    _binomial = _jit(_binomial)
    _winner_step = _jit(_winner_step)
    _advance = _jit(_advance)
    _alias_table = _jit(_alias_table)
    _log_factorials = _jit(_log_factorials)
    _stirling_rest = _jit(_stirling_rest)
    _log_fact_ratio = _jit(_log_fact_ratio)
    wf_from_counts = _jit(_from_counts)
    wf_from_distribution = _jit(_from_distribution)
    AVAILABLE = True
else:  # pragma: no cover
    wf_from_counts = wf_from_distribution = None
    AVAILABLE = False

def rng_state(rng: np.random.Generator) -> np.ndarray:
    """Two xoshiro256+ states (uint64[2, 4], rows not all zero) drawn from the caller's Generator."""
    return rng.integers(1, 2**63, size=(2, 4), dtype=np.int64).astype(np.uint64)


_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_TABLES_MAX_BYTES = 128 * 2**20  # cache budget for the (cdf, guide) tables
_NO_TABLE = (np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int32))


def tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached (cdf, guide) tables for sample size n (a 1x1 placeholder above TABLE_MAX_N).

    The cache keeps the most recently built tables within 128 MB (a whole sweep over n,
    e.g. Figure 2's n <= 400, fits).
    """
    if n > TABLE_MAX_N:
        return _NO_TABLE
    if n in _TABLES:
        _TABLES[n] = _TABLES.pop(n)  # most recently used last
        return _TABLES[n]
    new = _binomial_tables(n)
    size = new[0].nbytes + new[1].nbytes
    while _TABLES and size + sum(a.nbytes + b.nbytes for a, b in _TABLES.values()) > _TABLES_MAX_BYTES:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[n] = new
    return new
