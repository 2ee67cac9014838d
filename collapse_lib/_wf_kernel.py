"""Compiled Wright-Fisher kernel for fully synthetic runs until total collapse (numba).

Used by :func:`collapse_lib.simulate.simulate` for the unrecorded generations of
``FullySynthetic`` runs with ``until_collapse=True`` and no decoding. Each run is advanced
on its own, in compiled code, on the counts c_1..c_a of its a surviving tokens; one
generation is one draw X ~ Multinomial(n, c/n) (eq. (5) with n_{m-1}^(m) = n). The draw is
exact and split by cost:

* a = 2 (most generations before collapse): X_1 ~ Binomial(n, c_1/n) by inversion in a
  table of the n+1 binomial cdfs (built once per n <= 1024 and cached across calls) with
  a guide table, so a draw is one uniform and about one comparison;
* a >= 3: the multinomial is drawn as a chain of conditional binomials over the "big"
  survivors (count >= ``_BIG``; the largest first, by the table), and the samples left
  over go to the "small" survivors by picking a parent uniformly among their
  sum_small c_i individuals (one uniform per sample). Conditioning on the big survivors'
  counts leaves a Multinomial(left, c_small / sum c_small), which is what the picks draw.
  A conditional binomial is drawn by inversion when its mean is below 10 and by Hormann's
  transformed rejection with squeeze (BTRS) otherwise (:func:`_binomial`).

Measured costs behind these choices (``benchmarks/bench_simulate.py``, Figure 2 sweep): a
table draw ~10 ns, a pick ~3 ns, a conditional binomial ~40-60 ns; about 45 % of the
run-generations have three or more survivors and take most of the time.

Generation 1 from p^(0) (``wf_from_distribution``) draws the n samples of each run from
p^(0) with Walker's alias table (one table per distinct row of p^(0)), or, when n > 4 s,
as a chain of conditional binomials over the s tokens.

Uniforms come from xoshiro256+ (Blackman and Vigna, 2018), a small generator inlined in
the compiled code (about 4x cheaper per draw than calling numpy's Generator from numba),
whose 256-bit state is seeded from the caller's ``numpy.random.Generator`` (see
:func:`rng_state`), so results are deterministic for a given seed. The stream differs from
the pure-numpy path of the engine, which draws the same Markov chain differently.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is pinned in requirements.txt
    njit = None

TABLE_MAX_N = 1024  # cdf + guide tables are (n+1)^2 float64 + int32: 12.6 MB at n = 1024
_BIG = 16  # survivors with at least this count get their own binomial draw


def _binomial_tables(n):  # pragma: no cover - compiled
    """cdf[c, j] = P(Binomial(n, c/n) <= j) and guide[c, g] = min{j : cdf[c, j] > g/(n+1)}."""
    cdf = np.zeros((n + 1, n + 1))
    guide = np.zeros((n + 1, n + 1), dtype=np.int32)
    lf = np.empty(n + 1)
    for j in range(n + 1):
        lf[j] = math.lgamma(j + 1.0)
    for c in range(n + 1):
        if c == 0:
            cdf[c, :] = 1.0
        elif c == n:
            cdf[c, n] = 1.0
        else:
            lp = math.log(c / n)
            lq = math.log(1.0 - c / n)
            acc = 0.0
            for j in range(n + 1):
                acc += math.exp(lf[n] - lf[j] - lf[n - j] + j * lp + (n - j) * lq)
                cdf[c, j] = acc
            cdf[c, n] = 1.0
        j = 0
        for g in range(n + 1):
            while cdf[c, j] <= g / (n + 1.0):
                j += 1
            guide[c, g] = j
    return cdf, guide


def _uniform(st):  # pragma: no cover - compiled
    """Next double in [0, 1) of xoshiro256+ (Blackman and Vigna, 2018) with state st (uint64[4]).

    The top 53 bits of s0 + s3 (the "+" scrambler is meant for floating-point output).
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
    return (result >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def _table_draw(rng, cdf, guide, c, n):  # pragma: no cover - compiled
    """X ~ Binomial(n, c/n) by inversion: first j with cdf[c, j] > u."""
    u = _uniform(rng)
    j = guide[c, int(u * (n + 1))]
    while cdf[c, j] <= u:
        j += 1
    return j


def _binomial(rng, m, p, lf, lpq=np.nan):  # pragma: no cover - compiled
    """X ~ Binomial(m, p), exact: inversion from 0 when m min(p, 1-p) < 10, otherwise BTRS.

    BTRS is Hormann's transformed rejection with squeeze (W. Hormann, "The generation of
    binomial random variates", J. Statist. Comput. Simul. 46, 1993); ``lf[j] = log j!``
    is a table for small j (larger j use lgamma); ``lpq = log(p/(1-p))`` may be passed when
    the caller has it from a table (NaN: computed here).
    """
    if m <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return m
    flip = p > 0.5
    if flip:
        p = 1.0 - p
        lpq = -lpq
    q = 1.0 - p
    if m * p < 10.0:
        r = math.exp(m * math.log(q))
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
        if lpq != lpq:  # NaN: not given
            lpq = math.log(p / q)
        mode = int((m + 1) * p)
        h = _lfact(lf, mode) + _lfact(lf, m - mode)
        while True:
            u = _uniform(rng) - 0.5
            v = _uniform(rng)
            us = 0.5 - abs(u)
            kf = math.floor((2.0 * a / us + b) * u + c)
            if kf < 0 or kf > m:
                continue
            x = int(kf)
            if us >= 0.07 and v <= vr:
                break
            v = math.log(v * alpha / (a / (us * us) + b))
            if v <= h - _lfact(lf, x) - _lfact(lf, m - x) + (x - mode) * lpq:
                break
    return m - x if flip else x


def _advance(rng, pos, cnt, a, n, m, m_stop, cdf, guide, use_tab, parent, newc, lf, lg):  # pragma: no cover
    """Advance one run (its a survivors in pos/cnt) until one token is left or m = m_stop.

    Returns (a, m); pos/cnt hold the survivors at the end.
    """
    while a > 2 and m < m_stop:
        m += 1
        # the largest survivor first (its draw is a table lookup when the table exists)
        big = 0
        for t in range(1, a):
            if cnt[t] > cnt[big]:
                big = t
        c = cnt[big]
        cnt[big] = cnt[0]
        cnt[0] = c
        p0 = pos[big]
        pos[big] = pos[0]
        pos[0] = p0
        left = n
        rem = n
        nsmall = 0
        for t in range(a):
            c = cnt[t]
            if c >= _BIG or t == 0:
                if t == 0 and use_tab:
                    x = _table_draw(rng, cdf, guide, c, n)
                else:
                    x = _binomial(rng, left, c / rem, lf, lg[c] - lg[rem - c] if rem < lg.size else np.nan)
                rem -= c
                left -= x
                newc[t] = x
            else:
                for _ in range(c):
                    parent[nsmall] = t
                    nsmall += 1
                newc[t] = 0
        # without small survivors the last big one had p = c/rem = 1 and took what was left
        for _ in range(left if nsmall > 0 else 0):
            newc[parent[int(_uniform(rng) * nsmall)]] += 1
        b = 0
        for t in range(a):  # keep the tokens that survived
            if newc[t] > 0:
                pos[b] = pos[t]
                cnt[b] = newc[t]
                b += 1
        a = b
    if a == 2 and m < m_stop:
        c = cnt[0]
        if use_tab:
            while 0 < c < n and m < m_stop:
                m += 1
                c = _table_draw(rng, cdf, guide, c, n)
        else:
            while 0 < c < n and m < m_stop:
                m += 1
                c = _binomial(rng, n, c / n, lf)
        if c == 0:
            pos[0] = pos[1]
            cnt[0] = n
            a = 1
        elif c == n:
            cnt[0] = n
            a = 1
        else:
            cnt[0] = c
            cnt[1] = n - c
    return a, m


def _from_counts(X, tok, n, m0, m_stop, rng, cdf, guide, final, T, M):  # pragma: no cover - compiled
    """Runs given by packed counts X (R, k) of tokens tok (R, k), all with sample size n."""
    R, k = X.shape
    use_tab = cdf.shape[0] == n + 1
    pos = np.empty(k, dtype=np.int64)
    cnt = np.empty(k, dtype=np.int64)
    newc = np.empty(k, dtype=np.int64)
    parent = np.empty(_BIG * k, dtype=np.int64)  # individuals of the small survivors
    lf = _log_factorials(n)
    lg = np.log(np.arange(min(n, 65536) + 1.0))  # log j for the conditional binomials (lg[0] = -inf)
    for r in range(R):
        a = 0
        for j in range(k):
            if X[r, j] > 0:
                pos[a] = tok[r, j]
                cnt[a] = X[r, j]
                a += 1
        a, m = _advance(rng, pos, cnt, a, n, m0, m_stop, cdf, guide, use_tab, parent, newc, lf, lg)
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


def _lfact(lf, j):  # pragma: no cover - compiled
    return lf[j] if j < lf.size else math.lgamma(j + 1.0)


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
    newc = np.empty(k, dtype=np.int64)
    parent = np.empty(_BIG * k, dtype=np.int64)  # individuals of the small survivors
    lf = _log_factorials(n)
    lg = np.log(np.arange(min(n, 65536) + 1.0))  # log j for the conditional binomials (lg[0] = -inf)
    dense = np.zeros(s, dtype=np.int64)
    for r in range(R):
        u = row_of_run[r]
        a = 0
        if n <= 4 * s:  # n alias draws, one uniform each
            for _ in range(n):
                v = _uniform(rng) * s
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
                x = left if i == ilast else _binomial(rng, left, min(q / rest, 1.0), lf)
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
        if a == 1:
            a, m = 1, 1
        else:
            a, m = _advance(rng, pos, cnt, a, n, 1, m_stop, cdf, guide, use_tab, parent, newc, lf, lg)
        for t in range(a):
            final[r, pos[t]] = cnt[t] / n
        T[r] = m if a == 1 else -1
        M[r] = m


if njit is not None:
    _jit = njit(cache=True, nogil=True)
    _binomial_tables = _jit(_binomial_tables)
    _uniform = _jit(_uniform)
    _table_draw = _jit(_table_draw)
    _binomial = _jit(_binomial)
    _advance = _jit(_advance)
    _alias_table = _jit(_alias_table)
    _log_factorials = _jit(_log_factorials)
    _lfact = _jit(_lfact)
    wf_from_counts = _jit(_from_counts)
    wf_from_distribution = _jit(_from_distribution)
    AVAILABLE = True
else:  # pragma: no cover
    wf_from_counts = wf_from_distribution = None
    AVAILABLE = False

def rng_state(rng: np.random.Generator) -> np.ndarray:
    """A xoshiro256+ state (uint64[4], not all zero) drawn from the caller's Generator."""
    return rng.integers(1, 2**63, size=4, dtype=np.int64).astype(np.uint64)


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
