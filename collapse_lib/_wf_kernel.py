"""Compiled Wright-Fisher kernel for fully synthetic runs until total collapse (numba).

Used by :func:`collapse_lib.simulate.simulate` for the unrecorded generations of
``FullySynthetic`` runs with ``until_collapse=True`` and no decoding. Each run is advanced
on its own in compiled code on the counts of its surviving tokens. The multinomial draw
Multinomial(n, X^(m-1)/n) is made either as a chain of conditional binomials (one per
survivor; used when there are few survivors) or by picking the n parents uniformly with
replacement and counting their tokens (O(n); used when more than n/8 tokens survive).
In the binomial chain the largest survivor goes first and its count, Binomial(n, c/n),
is drawn by inverse-cdf lookup in a table of the n+1 binomial cdfs built once per n
(n <= 1024; binary search on one uniform); with two survivors (most generations before
collapse) that lookup is the whole draw. It is the same Markov chain
as the numpy path; only the random stream differs (numba's generator, seeded from the
caller's numpy Generator, so results are deterministic for a given seed).
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is pinned in requirements.txt
    njit = None


_TABLE_MAX_N = 1024  # two-survivor lookup tables are (n+1)^2 doubles: 8 MB at n = 1024


def _binomial_cdf_table(n):  # pragma: no cover - compiled
    """cdf[c, j] = P(Binomial(n, c/n) <= j) for c, j in 0..n (last entry forced to 1)."""
    tab = np.zeros((n + 1, n + 1))
    lf = np.empty(n + 1)
    for j in range(n + 1):
        lf[j] = math.lgamma(j + 1.0)
    for c in range(n + 1):
        if c == 0:
            tab[c, :] = 1.0
            continue
        if c == n:
            tab[c, n] = 1.0
            continue
        lp = math.log(c / n)
        lq = math.log(1.0 - c / n)
        acc = 0.0
        for j in range(n + 1):
            acc += math.exp(lf[n] - lf[j] - lf[n - j] + j * lp + (n - j) * lq)
            tab[c, j] = acc
        tab[c, n] = 1.0
    return tab


def _binomial_inversion(m, p):  # pragma: no cover - compiled
    """Binomial(m, p) by sequential inversion from 0 (fast when m p is small)."""
    q = 1.0 - p
    if q <= 0.0:
        return m
    r = math.exp(m * math.log(q))
    ratio = p / q
    a = (m + 1) * ratio
    u = np.random.random()
    x = 0
    while u > r:
        u -= r
        x += 1
        if x >= m:
            return m
        r *= a / x - ratio
    return x


def _kernel(X, nvec, m0, m_stop, seed):  # pragma: no cover - compiled
    np.random.seed(seed)
    tab_n = -1
    tab = np.zeros((1, 1))
    R, k = X.shape
    T = np.full(R, -1, dtype=np.int64)
    M = np.full(R, m0, dtype=np.int64)
    pos = np.empty(k, dtype=np.int64)
    cnt = np.empty(k, dtype=np.int64)
    parent = np.empty(max(nvec.max(), 1), dtype=np.int64)
    for r in range(R):
        n = nvec[r]
        a = 0
        for j in range(k):
            if X[r, j] > 0:
                pos[a] = j
                cnt[a] = X[r, j]
                a += 1
        m = m0
        while a > 1 and m < m_stop:
            m += 1
            if a * 8 > n:
                # many survivors: draw the n parents uniformly (O(n) cheap draws)
                i = 0
                for t in range(a):
                    for _ in range(cnt[t]):
                        parent[i] = t
                        i += 1
                    cnt[t] = 0
                for _ in range(n):
                    cnt[parent[int(np.random.random() * n)]] += 1
            else:
                # few survivors: chain of conditional binomials (one per survivor but the last).
                # The largest survivor goes first; its draw is Binomial(n, c/n), taken by
                # inverse-cdf lookup in a table built once per n (binary search on one uniform).
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
                first = 0
                left = n
                rem = n
                if n <= _TABLE_MAX_N:
                    if tab_n != n:
                        tab = _binomial_cdf_table(n)
                        tab_n = n
                    u = np.random.random()
                    lo = 0
                    hi = n
                    while lo < hi:  # first j with cdf[c, j] > u
                        mid = (lo + hi) // 2
                        if tab[c, mid] > u:
                            hi = mid
                        else:
                            lo = mid + 1
                    cnt[0] = lo
                    left = n - lo
                    rem = n - c
                    first = 1
                for t in range(first, a - 1):
                    c = cnt[t]
                    if left == 0:
                        x = 0
                    elif left * c < 30 * rem:  # mean < 30: inversion beats numba's BTPE
                        x = _binomial_inversion(left, c / rem)
                    else:
                        x = np.random.binomial(left, c / rem)
                    rem -= c
                    left -= x
                    cnt[t] = x
                cnt[a - 1] = left
            b = 0
            for t in range(a):  # drop tokens that died
                if cnt[t] > 0:
                    pos[b] = pos[t]
                    cnt[b] = cnt[t]
                    b += 1
            a = b
        for j in range(k):
            X[r, j] = 0
        for t in range(a):
            X[r, pos[t]] = cnt[t]
        if a == 1:
            T[r] = m
        M[r] = m
    return T, M


if njit is not None:
    _binomial_cdf_table = njit(cache=True, nogil=True)(_binomial_cdf_table)
    _binomial_inversion = njit(cache=True, nogil=True)(_binomial_inversion)
    wf_until_collapse = njit(cache=True, nogil=True)(_kernel)
else:  # pragma: no cover
    wf_until_collapse = None
