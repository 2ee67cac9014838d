"""Closed forms and bounds of Seddik et al. (2024), re-derived, plus population-genetics results.

Notation: p = p^(0) the true next-token distribution, S0 = sum_i p_i^2, support = s~ =
|{i : p_i > 0}|, n synthetic samples per generation, N real samples (partially
synthetic), S_m = E[sigma_m] = E[sum_i (p_i^(m))^2], rho_m = P(p^(m) is a Dirac mass),
T = inf{m >= 1 : p^(m) is a Dirac mass}.

Errata found while re-deriving (details in the docstrings):

* Theorem 2, eq. (9): the S0 term must read ``1 + alpha + alpha beta^m / N`` (plus sign);
  the printed ``- alpha beta^m / N`` is off. :func:`partially_synthetic_S` is the corrected
  form, :func:`partially_synthetic_S_printed` the printed one. The error is visible when
  n >> N and N is small (e.g. N = 2, n = 100, m = 2: the printed form is low by ~0.2 S0).
  In the proof (appendix 8.3) the intermediate expression for nu_i^(m+1) has
  ``alpha(2 - alpha)`` in its p_i coefficient where the recursion gives ``alpha(2 alpha - 1)``;
  the final p_i coefficient of (9) is nevertheless right, the slip is in the p_i^2 term.
* Eq. (11) is a valid but conservative sufficient condition: it drops the sqrt(n) factor
  of Theorem 3 and compensates with a factor 2 in the exponent.
  :func:`max_synthetic_samples` with ``form="exact"`` returns the largest n that
  Theorem 3 allows in that regime.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy.special import gammaln, xlogy
from scipy.stats import binom

from ._validate import InvalidArgument, check_memory, choice, int_array, integer, real, real_array
from .distributions import validate

__all__ = [
    "fully_synthetic_S",
    "collapse_probability_bounds",
    "collapse_time_bounds",
    "fixation_probabilities",
    "partially_synthetic_alpha_beta",
    "partially_synthetic_S",
    "partially_synthetic_S_printed",
    "partially_synthetic_S_recursion",
    "C0",
    "C1",
    "phi",
    "pi_p",
    "lemma1_G",
    "lemma1_bound",
    "deviation_bound",
    "deviation_bound_thm4",
    "zeta_thm4",
    "max_synthetic_samples",
    "accumulate_S",
    "diffusion_collapse_time",
    "exact_collapse_time",
    "exact_collapse_probability",
    "collapse_tail_rate",
    "collapse_time_survival",
    "exact_collapse_time_moments",
    "expected_surviving_tokens",
    "expected_max_collapse_time",
]

C0 = math.e**3 / (2 * math.pi)  # ~ 3.197
C1 = 6 * math.e / math.pi**1.5  # ~ 2.929


# ----------------------------------------------------------------------------- checks
# Argument checks follow the contract of collapse_lib._validate: InvalidArgument (a
# ValueError; also a TypeError for wrong types) naming the argument; integers may be given
# as exactly integral floats, never truncated.
def _pos_int(name: str, v) -> int:
    return integer(name, v, minimum=1)


def _m_array(m, minimum: int = 0):
    return int_array("m", m, minimum, label="generation m")


def _check_S0(S0: float, support: int | None = None) -> float:
    S0 = real("S0", S0, 0.0, 1.0, low_open=True)
    if support is not None and S0 < 1.0 / support - 1e-12:
        raise InvalidArgument(f"S0={S0} < 1/support={1.0 / support:.6g} is impossible")
    if support is not None and support >= 2 and S0 >= 1.0:
        raise InvalidArgument(f"S0=1 is a Dirac mass, impossible with support={support} >= 2")
    return S0


def _probability(x):
    """A computed probability put back into [0, 1] (same shape; a float stays a float).

    Products of transition matrices and sums of many terms can leave an exact probability a few
    units in the last place outside [0, 1] (``exact_collapse_probability([0.5, 0.5], 4, 10**6)``
    gave 1.0000000000000007); every probability and collision probability S_m returned by this
    module goes through here, so none is ever above 1 or below 0.
    """
    out = np.clip(x, 0.0, 1.0)
    return out if np.ndim(out) else float(out)


def _exp_or_inf(logv: float) -> float:
    """exp(logv), inf above the float range (a vacuous bound), 0 for logv = -inf."""
    return math.exp(logv) if logv < 709.0 else math.inf


# ----------------------------------------------------------------------------- Theorem 1
def fully_synthetic_S(m, n: int, S0: float):
    """Theorem 1, eq. (6): S_m = 1 - (1 - 1/n)^m (1 - S0) in the fully synthetic setting.

    Derivation: given p^(m-1), n p_i^(m) ~ Binomial(n, p_i^(m-1)), so
    E[(p_i^(m))^2 | p^(m-1)] = p_i^(m-1)/n + (1 - 1/n)(p_i^(m-1))^2. Summing over i,
    S_m = 1/n + (1 - 1/n) S_{m-1} (eq. (14)), i.e. 1 - S_m = (1 - 1/n)(1 - S_{m-1}).
    """
    n = _pos_int("n", n)
    S0 = _check_S0(S0)
    m = _m_array(m)
    return _probability(1.0 - (1.0 - 1.0 / n) ** m * (1.0 - S0))


def collapse_probability_bounds(m, n: int, S0: float, support: int):
    """Theorem 1, eq. (7): bounds on rho_m = P(p^(m) is a Dirac mass), m >= 1.

    Returns (lower, upper) with lower = max(0, 1 - n (1 - S0)(1 - 1/n)^m) and
    upper = 1 - (1 - S0)(1 - 1/n)^m / (1 - 1/support), both kept in [0, 1].
    Derivation: sigma_m >= 1/support always and ||p^(m)||_inf <= 1 - 1/n unless p^(m) is
    a Dirac mass, so rho_m + (1 - rho_m)/support <= S_m <= E||p^(m)||_inf
    <= rho_m + (1 - 1/n)(1 - rho_m); insert (6).
    """
    n = _pos_int("n", n)
    support = _pos_int("support", support)
    if support < 2:
        raise InvalidArgument("support must be >= 2 (a Dirac p^(0) has collapsed already)")
    S0 = _check_S0(S0, support)
    m = _m_array(m, minimum=1)
    q = (1.0 - S0) * (1.0 - 1.0 / n) ** m
    lower = _probability(1.0 - n * q)
    upper = _probability(1.0 - q / (1.0 - 1.0 / support))
    return lower, upper


def collapse_time_bounds(n: int, S0: float, support: int) -> tuple[float, float]:
    """Theorem 1, eq. (8): 1 + (1-S0)(n-1)/(1-1/support) <= E[T] <= 1 + (1-S0) n (n-1).

    Derivation: E[T] = sum_{k>=0} P(T > k) = 1 + sum_{k>=1} (1 - rho_k); bound 1 - rho_k by
    (7) and sum the geometric series sum_{k>=1} (1-1/n)^k = n - 1.
    """
    n = _pos_int("n", n)
    support = _pos_int("support", support)
    if support < 2:
        raise InvalidArgument("support must be >= 2")
    S0 = _check_S0(S0, support)
    lower = 1.0 + (1.0 - S0) * (n - 1) / (1.0 - 1.0 / support)
    upper = 1.0 + (1.0 - S0) * n * (n - 1)
    return lower, upper


def fixation_probabilities(p) -> np.ndarray:
    """Proposition 1: P(lim p^(m) = delta_i) = p_i (fully synthetic).

    Derivation: p_i^(m) is a bounded martingale (E[p^(m) | p^(m-1)] = p^(m-1)), it converges
    a.s. to a Dirac mass, so p_i = E[p_i^(infinity)] = P(the limit is delta_i).
    """
    return validate(p).copy()


# ----------------------------------------------------------------------------- Theorem 2
def partially_synthetic_alpha_beta(N: int, n: int) -> tuple[float, float]:
    """alpha = n/(N+n) and beta = alpha[(1 + 1/N) alpha - 1/N] = alpha^2 (1 - 1/n) of Theorem 2."""
    N, n = _pos_int("N", N), _pos_int("n", n)
    alpha = n / (N + n)
    beta = alpha * ((1 + 1 / N) * alpha - 1 / N)
    return alpha, beta


def partially_synthetic_S_recursion(m, N: int, n: int, S0: float):
    """Exact S_m of the partially synthetic setting by iterating its linear recursion.

    Derivation (per token i, c = p_i^(1), x = p_i^(m) from n samples of p^(m-1),
    alpha = n/(N+n)): p_i^(m) = (1-alpha) c + alpha x for m >= 2, with
    E[c^2] = nu1 = p_i/N + (1-1/N) p_i^2, E[x^2] = p_i/n + (1-1/n) nu^(m-1), and
    E[c p_i^(m-1)] = nu1 for all m >= 2 (induction: it is (1-alpha) nu1 + alpha nu1).
    Hence nu^(m) = (1 - alpha^2) nu1 + alpha^2 p_i/n + alpha^2 (1 - 1/n) nu^(m-1), and summing
    over i: S_1 = 1/N + (1-1/N) S0, S_m = (1-alpha^2) S_1 + alpha^2/n + beta S_{m-1},
    beta = alpha^2 (1 - 1/n) (equal to the paper's beta). S_0 = S0.
    """
    N, n = _pos_int("N", N), _pos_int("n", n)
    S0 = _check_S0(S0)
    m_arr = _m_array(m)
    alpha = n / (N + n)
    beta = alpha**2 * (1 - 1 / n)
    S1 = 1 / N + (1 - 1 / N) * S0
    const = (1 - alpha**2) * S1 + alpha**2 / n
    M = int(m_arr.max()) if m_arr.size else 0
    if M > 10**7:
        raise InvalidArgument(f"m={M}: the recursion is iterated step by step (m <= 1e7); "
                              "use partially_synthetic_S (closed form) for larger m")
    seq = np.empty(max(M, 1) + 1)
    seq[0] = S0
    seq[1] = S1
    for k in range(2, M + 1):
        seq[k] = const + beta * seq[k - 1]
    out = _probability(seq[m_arr])
    return out if np.ndim(m) else float(out)


def _partial_closed(m, N, n, S0, sign: float):
    N, n = _pos_int("N", N), _pos_int("n", n)
    S0 = _check_S0(S0)
    m_arr = _m_array(m, minimum=1)
    alpha, beta = partially_synthetic_alpha_beta(N, n)
    bm = beta ** (m_arr - 1)  # formula (9) is written for S_{m+1}: exponent = generation - 1
    D = 1 + (1 + 1 / N) * alpha
    first = (1 / N) * (1 + 2 * alpha - (1 - 1 / N) * alpha * bm) / D
    second = (1 - 1 / N) * S0 * (1 + alpha + sign * alpha * bm / N) / D
    out = first + second
    return out if np.ndim(m) else float(out)


def partially_synthetic_S(m, N: int, n: int, S0: float):
    """Theorem 2, eq. (9), CORRECTED: S_m for generation m >= 1 (partially synthetic).

    With alpha = n/(N+n), beta = alpha[(1+1/N) alpha - 1/N], D = 1 + (1+1/N) alpha and
    k = m - 1 (the paper states (9) for S_{k+1}, k >= 1; it also holds at k = 0):

        S_m = (1/N)[1 + 2 alpha - (1-1/N) alpha beta^k] / D
              + (1-1/N) S0 [1 + alpha + alpha beta^k / N] / D.

    Derivation: solve S_{k+1} = a + beta S_k (see :func:`partially_synthetic_S_recursion`),
    S_{k+1} = a (1 - beta^k)/(1 - beta) + beta^k S_1 with 1 - beta = (1-alpha) D. The p_i^2
    part gives (1-1/N)[(1+alpha)(1-beta^k) + D beta^k]/D and D - (1+alpha) = +alpha/N.
    Erratum: the paper prints "- alpha beta^m / N" in the S0 term (see
    :func:`partially_synthetic_S_printed`); the corrected form gives S_1 exactly at k = 0
    and S_m -> S_1 as n/N -> infinity at fixed m, as it must.
    """
    return _probability(_partial_closed(m, N, n, S0, +1.0))


def partially_synthetic_S_printed(m, N: int, n: int, S0: float):
    """Theorem 2, eq. (9) AS PRINTED in the paper (with k = m - 1; stated for m >= 2).

    Differs from the correct value :func:`partially_synthetic_S` by
    -2 (1-1/N) S0 alpha beta^(m-1) / (N D); kept to show the erratum.
    """
    return _partial_closed(m, N, n, S0, -1.0)


# ----------------------------------------------------------------------------- Lemma 1, Theorems 3-4
def phi(x):
    """phi(x) = log((1-x)/x) / (1-2x) on [0, 1/2] (Section 7), phi(1/2) = 2 by continuity.

    Written as phi = 2 artanh(y)/y with y = 1 - 2x (stable near x = 1/2); phi(0) = inf.
    """
    x = real_array("x", x)
    if np.any(x < 0) or np.any(x > 0.5):
        raise InvalidArgument("x must be in [0, 1/2] (phi is defined on [0, 1/2])")
    y = 1.0 - 2.0 * x
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where(np.abs(y) < 1e-6, 2.0 * (1.0 + y**2 / 3.0), 2.0 * np.arctanh(y) / np.where(y == 0, 1.0, y))
    val = np.where(x == 0, np.inf, val)
    return val if val.ndim else float(val)


def _subset_sums(vals: np.ndarray) -> np.ndarray:
    sums = np.zeros(1)
    for v in vals:
        sums = np.concatenate([sums, sums + v])
    return sums


def pi_p(p, denominator: int | None = None, max_support: int = 40) -> float:
    """pi_p = max over subsets A of min(p(A), 1 - p(A)) (eq. (12)).

    It is the largest achievable subset sum <= 1/2 (a sum above 1/2 is matched by its
    complement). Exact methods:
    * ``denominator=n`` when p = counts/n (e.g. an empirical distribution): dynamic
      programming over the integer subset sums 0..n, any support size, O(support * n);
    * otherwise meet-in-the-middle over the support (2 * 2^(support/2) sums), refused with
      ValueError above ``max_support`` (default 40) non-zero entries.
    """
    p = validate(p)
    vals = p[p > 0]
    if denominator is not None:
        n = _pos_int("denominator", denominator)
        check_memory("denominator", 3.0 * (n + 1), f"the subset-sum table over 0..{n}")
        counts = np.rint(vals * n).astype(np.int64)
        if np.any(np.abs(counts - vals * n) > 1e-6):
            raise InvalidArgument("p is not of the form counts/denominator")
        reach = np.zeros(n + 1, dtype=bool)
        reach[0] = True
        for c in counts:
            reach[c:] |= reach[: n + 1 - c].copy()
        best = max(i for i in range(n // 2 + 1) if reach[i])
        return best / n
    max_support = _pos_int("max_support", max_support)
    if vals.size <= max_support:
        check_memory("max_support", 40.0 * 2.0 ** ((vals.size + 1) // 2),
                     f"meet-in-the-middle over a support of {vals.size} tokens")
    if vals.size > max_support:
        raise InvalidArgument(
            f"pi_p: support {vals.size} > max_support={max_support} (exact search is exponential); "
            "pass denominator=n for an empirical distribution counts/n"
        )
    half = vals.size // 2
    a = _subset_sums(vals[:half])
    b = np.sort(_subset_sums(vals[half:]))
    target = 0.5 + 1e-12
    j = np.searchsorted(b, target - a, side="right") - 1
    ok = j >= 0
    best = float(np.max(a[ok] + b[j[ok]]))
    return min(best, 0.5)


def lemma1_G(n: int, s: int, form: str = "10") -> float:
    """G_n(s) of Theorem 3, eq. (10) (default) or Lemma 1, eq. (13) (``form="13"``).

    (10): C1 s e^{C0 n/(2e)} if C0 n/e + 2 <= s; C1 s (C0 n/s)^{s/2} if
    C0 n/4 + 2 <= s < C0 n/e + 2; 2^s - 2 if s < C0 n/4 + 2.
    (13) lists the same three expressions with closed intervals that overlap at the two
    boundaries (and in a different order); ``form="13"`` takes the middle expression there.
    The two statements can only differ exactly at s = C0 n/4 + 2 or s = C0 n/e + 2, that is
    when C0 n/4 = e^3 n/(8 pi) or C0 n/e = e^2 n/(2 pi) is an integer. Whether e^3/pi or e^2/pi
    is irrational is not known, so this is not excluded in general; it does not happen for
    n <= 10^5 (checked in Chapter 5, the products stay more than 1e-7 away from integers), and
    for those n (10) and (13) agree (tested). As printed, the first regime of Lemma 1 is false
    (Chapter 5, erratum: uniform p on s >> n letters). G is not continuous at the
    boundaries (e.g. the middle expression at s just below C0 n/e + 2 is not equal to
    C1 s e^{C0 n/(2e)}).
    Computed in log space; returns inf above the float range (huge s: 2^s overflow).
    """
    n, s = _pos_int("n", n), _pos_int("s", s)
    if _lemma1_case(n, s, form) == "two" and s < 1024:
        return float(2**s - 2)  # exact
    return _exp_or_inf(_lemma1_logG(n, s, form))


def _lemma1_logG(n: int, s: int, form: str = "10") -> float:
    """log G_n(s) (see :func:`lemma1_G`); -inf for s = 1 (G = 2^1 - 2 = 0)."""
    n, s = _pos_int("n", n), _pos_int("s", s)
    case = _lemma1_case(n, s, form)
    if case == "exp":
        return math.log(C1 * s) + C0 * n / (2 * math.e)
    if case == "pow":
        return math.log(C1 * s) + 0.5 * s * math.log(C0 * n / s)
    return -math.inf if s == 1 else s * math.log(2.0) + math.log1p(-(2.0 ** (1 - s)))


def _lemma1_case(n: int, s: int, form: str) -> str:
    """Which expression of G_n(s) applies: "exp", "pow" or "two" (2^s - 2)."""
    form = choice("form", form, ("10", "13"))
    b_hi = C0 * n / math.e + 2
    b_lo = C0 * n / 4 + 2
    if form == "10":
        if s >= b_hi:
            case = "exp"
        elif s >= b_lo:
            case = "pow"
        else:
            case = "two"
    elif form == "13":
        if b_lo <= s <= b_hi:
            case = "pow"
        elif s >= b_hi:
            case = "exp"
        else:
            case = "two"
    else:  # pragma: no cover - form checked above
        raise InvalidArgument("form must be '10' or '13'")
    return case


def lemma1_bound(n: int, s: int, eps: float, pi: float) -> float:
    """Lemma 1 (Mardia et al., 2020): P(||p_hat - p||_1 >= eps) <= exp(-n phi(pi_p) eps^2/4) G_n(s).

    p_hat is the empirical distribution of n samples of p, pi = pi_p. Values >= 1 are vacuous.
    """
    n, s = _pos_int("n", n), _pos_int("s", s)
    eps = real("eps", eps, 0.0, low_open=True)
    pi = real("pi", pi, 0.0, 0.5)
    # in log space: exp(-n phi eps^2/4) underflows to 0 where G_n(s) overflows to inf
    return _exp_or_inf(-n * phi(pi) * eps**2 / 4 + _lemma1_logG(n, s))


def deviation_bound(N: int, n: int, s: int) -> float:
    """Theorem 3: E||p^(m) - p^(1)||_1 < (1/N) sqrt(pi n / 2) G_n(s) for m >= 2 (partially synthetic).

    Derivation (appendix 8.3): p^(k+1) - p^(1) = alpha (p_hat^(k) - p^(1)), triangle
    inequality and recursion give E||p^(k+1)-p^(1)|| <= sum_j alpha^(k+1-j) E||p_hat^(j)-p^(j)||;
    integrating Lemma 1's tail gives E||p_hat - p|| <= G sqrt(pi/(n phi)), phi >= 2 and
    sum_j alpha^j < alpha/(1-alpha) = n/N.
    """
    N, n, s = _pos_int("N", N), _pos_int("n", n), _pos_int("s", s)
    return _exp_or_inf(0.5 * math.log(math.pi * n / 2) + _lemma1_logG(n, s) - math.log(N))


def zeta_thm4(N: int, n: int, lambda1_mean: float) -> float:
    """zeta of Theorem 4: 1/2 - (1/2 - 2 E[lambda_1]) (N/(N+n))^2, lambda_1 = max_A p1(A) p1(A^c).

    Note lambda_1 = pi_{p^(1)} (1 - pi_{p^(1)}).
    """
    N, n = _pos_int("N", N), _pos_int("n", n)
    lambda1_mean = real("lambda1_mean (E[lambda_1])", lambda1_mean, 0.0, 0.25)
    return 0.5 - (0.5 - 2 * lambda1_mean) * (N / (N + n)) ** 2


def deviation_bound_thm4(N: int, n: int, s: int, zeta: float) -> float:
    """Theorem 4, eq. (16): E||p^(k+1) - p^(1)||_1 < (1/N) sqrt(n pi / phi(zeta)) G_n(s)."""
    N, n, s = _pos_int("N", N), _pos_int("n", n), _pos_int("s", s)
    zeta = real("zeta", zeta, 0.0, 0.5, low_open=True)  # zeta of Theorem 4 lies in (0, 1/2]
    return _exp_or_inf(0.5 * math.log(math.pi * n / phi(zeta)) + _lemma1_logG(n, s) - math.log(N))


def max_synthetic_samples(N: int, s: int, eps: float, form: str = "paper") -> int:
    """Largest n keeping the Theorem 3 bound on E||p^(m) - p^(1)||_1 below eps, regime C0 n/e + 2 <= s.

    ``form="paper"``: eq. (11), n = floor(2 pi e^-2 min[s - 2, log(sqrt(2) pi N eps/(6 e s))]),
    0 when the log is negative (no n >= 1 is certified).
    ``form="exact"``: the largest n >= 0 with n <= e (s-2)/C0 and
    (1/N) sqrt(pi n/2) C1 s e^{C0 n/(2e)} < eps. Re-derivation: with C0/(2e) = e^2/(4 pi) =: c,
    the bound reads sqrt(n) e^{c n} < A := sqrt(2) pi N eps / (6 e s). Eq. (11) takes
    n <= log(A)/(2c), which implies e^{cn} <= sqrt(A) and sqrt(n) <= sqrt(A), so it is
    sufficient but conservative (the sqrt(n) factor is dropped, a factor 2 is paid instead).
    """
    N, s = _pos_int("N", N), _pos_int("s", s)
    eps = real("eps", eps, 0.0, low_open=True)
    form = choice("form", form, ("paper", "exact"))
    if s < 3:
        raise InvalidArgument("need s >= 3 for the regime C0 n/e + 2 <= s to contain n >= 1")
    A = math.sqrt(2) * math.pi * N * eps / (6 * math.e * s)
    if form == "paper":
        if A <= 1:
            return 0
        return int(math.floor(2 * math.pi * math.exp(-2) * min(s - 2, math.log(A))))
    if form == "exact":
        n_reg = int(math.floor(math.e * (s - 2) / C0 + 1e-12))
        # in the regime the bound sqrt(pi n/2) C1 s e^{c n}/N increases with n: bisect for the
        # largest n with bound < eps (0 if even n = 1 is not certified)
        lo, hi = 0, n_reg
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if deviation_bound(N, mid, s) < eps:
                lo = mid
            else:
                hi = mid - 1
        return lo
    raise InvalidArgument("form must be 'paper' or 'exact'")  # pragma: no cover - checked above


# ----------------------------------------------------------------------------- beyond the paper
def accumulate_S(m, n: int, S0: float):
    """S_m when data accumulate (Gerstgrasser et al., 2024): generation m trains on all m n samples.

    Derivation (beyond the paper): p^(m) = ((m-1) p^(m-1) + x)/m with x the empirical
    distribution of n samples of p^(m-1), so E[(p_i^(m))^2] =
    [((m-1)^2 + 2(m-1) + 1 - 1/n) nu + p_i/n]/m^2 with nu = E[(p_i^(m-1))^2]. Summing,
    1 - S_m = (1 - 1/(n m^2)) (1 - S_{m-1}), hence 1 - S_m = (1 - S0) prod_{j<=m} (1 - 1/(n j^2))
    -> (1 - S0) sin(pi/sqrt(n)) / (pi/sqrt(n)) as m -> infinity: sigma stays bounded away
    from 1, no collapse (m = inf is accepted).
    """
    n = _pos_int("n", n)
    S0 = _check_S0(S0)
    m_arr = int_array("m", m, 0, allow_inf=True, label="generation m").astype(float)
    x = 1.0 / math.sqrt(n)
    limit = math.sin(math.pi * x) / (math.pi * x) if n > 1 else 0.0
    finite = np.where(np.isfinite(m_arr), m_arr, 0).astype(np.int64)
    M = int(finite.max()) if finite.size else 0
    check_memory("m", 24.0 * (M + 1), f"the product over generations 1..{M}")
    prods = np.concatenate([[1.0], np.cumprod(1.0 - 1.0 / (n * np.arange(1, M + 1) ** 2.0))])
    prod = np.where(np.isfinite(m_arr), prods[finite], limit)
    out = _probability(1.0 - (1.0 - S0) * prod)
    return out if np.ndim(m) else float(out)


def _wf_h(x, n: int):
    """Diffusion absorption time -2n sum_i (1-x_i) log(1-x_i) (rows of x)."""
    return -2.0 * n * xlogy(1.0 - x, 1.0 - x).sum(axis=-1)


def diffusion_collapse_time(p, n: int, first_draw: str = "formula"):
    """Wright-Fisher diffusion approximation of E[T] (fully synthetic, beyond the paper).

    The fully synthetic chain is the neutral haploid Wright-Fisher model with n copies:
    frequencies move by variance x(1-x)/n per generation, generator (x(1-x)/(2n)) d^2/dx^2.
    The expected time until one type remains solves that generator applied to t = -1 with
    t = 0 on the vertices; for two types t(x) = -2n[x ln x + (1-x) ln(1-x)], and for many
    types (Littler, 1975) E[T] ~ -2n sum_i (1-p_i) ln(1-p_i).

    ``first_draw``: "formula" (default) evaluates it at p (p^(0) -> p^(1) is itself a
    Wright-Fisher step, so the chain started at p^(0) is the whole story); "average" uses
    1 + E[t(p^(1))] over the first multinomial draw, computed exactly from the binomial
    marginals of the counts (the formula is a sum over tokens). Measured against
    :func:`exact_collapse_time` (support 2-5, n = 5-40) both overestimate E[T] by about
    1-2 generations (relative error ~ 1/n: +16 % at n = 5, +3 % at n = 40); "average" is
    closer by at most 0.2 generations, so the simpler "formula" is the default. Rows of a
    2-D p are
    treated separately.
    """
    n = _pos_int("n", n)
    p = validate(p, ndim=(1, 2))
    first_draw = choice("first_draw", first_draw, ("formula", "average"))
    if first_draw == "average":
        check_memory("n", 32.0 * p.size * (n + 1), f"the binomial laws of {p.size} tokens over 0..{n}")
    if first_draw == "formula":
        out = _wf_h(p, n)
    elif first_draw == "average":
        k = np.arange(n + 1)
        pmf = binom.pmf(k[None, :], n, p.reshape(-1, 1))  # (tokens, n+1)
        y = 1.0 - k / n
        per_tok = -2.0 * n * (pmf * xlogy(y, y)[None, :]).sum(axis=1)
        out = 1.0 + per_tok.reshape(p.shape).sum(axis=-1)
    else:  # pragma: no cover - checked above
        raise InvalidArgument("first_draw must be 'formula' or 'average'")
    return out if np.ndim(out) else float(out)


def _compositions(n: int, k: int) -> np.ndarray:
    """All count vectors of length k summing to n (stars and bars), shape (C(n+k-1, k-1), k)."""
    if k == 1:
        return np.array([[n]], dtype=np.int64)
    bars = np.array(list(combinations(range(n + k - 1), k - 1)), dtype=np.int64)
    edges = np.concatenate([np.full((bars.shape[0], 1), -1), bars, np.full((bars.shape[0], 1), n + k - 1)], axis=1)
    return np.diff(edges, axis=1) - 1


@lru_cache(maxsize=16)
def _lumped_chain(n: int, k: int, max_states: int):
    """Wright-Fisher chain on compositions of n into k parts, lumped by sorting (exchangeability).

    Returns (compositions, class index of each composition, lumped transition matrix M over
    classes, index of the absorbed class (n, 0, ..., 0)). M[a, b] = P(class b | class a).
    """
    S = math.comb(n + k - 1, k - 1)
    if S > max_states:
        raise InvalidArgument(
            f"state space too big: {S} compositions of n={n} into {k} parts (> max_states={max_states}); "
            "use a smaller n or support, or the diffusion approximation"
        )
    P_est = _partitions_at_most(n, k)
    check_memory("max_states", S * (24.0 * k + 150.0) + 16.0 * P_est**2,
                 f"the Wright-Fisher chain on {S} compositions ({P_est} lumped states)")
    Y = _compositions(n, k)
    keys = -np.sort(-Y, axis=1)
    classes, cls = np.unique(keys, axis=0, return_inverse=True)
    cls = cls.ravel()
    P = classes.shape[0]
    logfact = gammaln(Y + 1.0).sum(axis=1)
    M = np.zeros((P, P))
    for a in range(P):
        q = classes[a] / n
        with np.errstate(divide="ignore"):
            lq = np.log(q)
        lp = xlogy(Y, np.broadcast_to(q, Y.shape)).sum(axis=1) if np.any(q == 0) else Y @ lq
        logpmf = gammaln(n + 1.0) - logfact + lp
        pmf = np.exp(logpmf)
        # compositions that put mass on a zero-probability column have probability 0
        if np.any(q == 0):
            pmf[(Y[:, q == 0] > 0).any(axis=1)] = 0.0
        M[a] = np.bincount(cls, weights=pmf, minlength=P)
    absorbed = int(np.nonzero(classes[:, 0] == n)[0][0])
    return Y, cls, M, absorbed


def _partitions_at_most(n: int, k: int) -> int:
    """Number of partitions of n into at most k parts (the lumped states), by dynamic programming."""
    ways = [1] + [0] * n
    for part in range(1, k + 1):  # partitions into parts <= k, conjugate to at most k parts
        for total in range(part, n + 1):
            ways[total] += ways[total - part]
    return ways[n]


def _first_draw(p: np.ndarray, n: int, max_states: int):
    max_states = _pos_int("max_states", max_states)
    vals = validate(p)
    vals = vals[vals > 0]
    k = vals.size
    Y, cls, M, absorbed = _lumped_chain(n, k, max_states)
    logpmf = gammaln(n + 1.0) - gammaln(Y + 1.0).sum(axis=1) + Y @ np.log(vals)
    v1 = np.bincount(cls, weights=np.exp(logpmf), minlength=M.shape[0])
    return v1, M, absorbed, k


def exact_collapse_time(p, n: int, max_states: int = 20000) -> float:
    """Exact E[T] for the fully synthetic chain from the Markov chain on count vectors.

    States are the count vectors of n samples over the support of p. Generation 1 is the
    multinomial draw from p, so E[T] = 1 + sum_x P(p^(1) = x/n) h(x), where h is the
    expected absorption time from x: h = 0 on Dirac states and h = 1 + Q h on the others
    (one dense linear solve). Exchangeability of the tokens makes h depend on x only through
    its sorted counts, so the chain is lumped onto partitions of n before solving.
    Raises ValueError above ``max_states`` count vectors.
    """
    n = _pos_int("n", n)
    v1, M, absorbed, k = _first_draw(p, n, max_states)
    if k == 1:
        return 1.0
    trans = np.array([i for i in range(M.shape[0]) if i != absorbed], dtype=np.int64)
    Q = M[np.ix_(trans, trans)]
    h = np.zeros(M.shape[0])
    h[trans] = np.linalg.solve(np.eye(trans.size) - Q, np.ones(trans.size))
    return float(1.0 + v1 @ h)


def exact_collapse_probability(p, n: int, m, max_states: int = 20000):
    """Exact rho_m = P(p^(m) is a Dirac mass), fully synthetic, m >= 1 (scalar or array).

    Distribution of the (sorted) count vector after the first draw from p, pushed forward
    m - 1 times by the lumped Wright-Fisher transition matrix.
    """
    n = _pos_int("n", n)
    m_arr = _m_array(m, minimum=1)
    v, M, absorbed, k = _first_draw(p, n, max_states)
    if k == 1:
        out = np.ones(m_arr.shape)
        return out if np.ndim(m) else float(out)
    M_max = int(m_arr.max())
    if M_max > 10**7 or (M_max - 1) * float(M.shape[0]) ** 2 > 2e10:
        raise InvalidArgument(
            f"m={M_max}: pushing the law of {M.shape[0]} lumped states forward m-1 times costs about "
            f"{(M_max - 1) * float(M.shape[0]) ** 2:.2g} operations; reduce m (or n)"
        )
    rho = np.empty(M_max + 1)
    rho[1] = v[absorbed]
    for j in range(2, M_max + 1):
        v = v @ M
        rho[j] = v[absorbed]
    out = _probability(rho[m_arr])
    return out if np.ndim(m) else float(out)


# ----------------------------------------------------------------------------- the law of T (course)
def collapse_tail_rate(n: int) -> float:
    """Geometric rate of the tail of the collapse time: P(T > m)^(1/m) -> 1 - 1/n (fully synthetic).

    Derivation (course): eq. (7) squeezes P(T > m) = 1 - rho_m, m >= 1, between
    (1 - S0)(1 - 1/n)^m / (1 - 1/support) and n (1 - S0)(1 - 1/n)^m; both sides decay like
    (1 - 1/n)^m, so the tail is geometric with rate exactly 1 - 1/n whatever p (S0 < 1).
    Equivalently, the heterozygosity H(x) = 1 - sum_i x_i^2 satisfies E[H(p^(m)) | p^(m-1)] =
    (1 - 1/n) H(p^(m-1)) (eq. (14)), vanishes on the Dirac masses and is positive on every other
    state: it is a positive eigenvector of the transient block of the chain, whose spectral radius
    is therefore 1 - 1/n (Perron-Frobenius). The exact ratio P(T > m + 1) / P(T > m) from
    :func:`collapse_time_survival` converges to this value (tested).
    """
    n = _pos_int("n", n)
    return 1.0 - 1.0 / n


def collapse_time_survival(p, n: int, m_max: int, max_states: int = 20000) -> np.ndarray:
    """Exact law of T (fully synthetic): the array P(T > m) for m = 0, 1, ..., m_max.

    P(T > 0) = 1 (T >= 1 by definition) and, because Dirac masses absorb, P(T > m) = 1 - rho_m
    for m >= 1: the mass that the law of the first draw, pushed forward m - 1 times by the lumped
    chain (as in :func:`exact_collapse_probability`), leaves on non-Dirac states. The probability mass
    function is ``-np.diff(survival)``: P(T = m) = P(T > m - 1) - P(T > m).
    """
    n = _pos_int("n", n)
    m_max = _pos_int("m_max", m_max)
    v, M, absorbed, k = _first_draw(p, n, max_states)
    out = np.zeros(m_max + 1)
    out[0] = 1.0
    if k == 1:
        return out
    alive = np.ones(M.shape[0], dtype=bool)
    alive[absorbed] = False
    for j in range(1, m_max + 1):  # summing the transient mass keeps full relative precision in the tail
        out[j] = float(v[alive].sum())
        if j < m_max:
            v = v @ M
    return _probability(out)


def exact_collapse_time_moments(p, n: int, max_states: int = 20000) -> tuple[float, float]:
    """Exact (E[T], Var[T]) for the fully synthetic chain, from the lumped Markov chain.

    With tau(x) the absorption time from a state x of generation 1 and Q the transient block,
    h = E[tau] solves (I - Q) h = 1 and h2 = E[tau^2] solves (I - Q) h2 = 1 + 2 Q h (one step,
    then tau = 1 + tau'; the fundamental-matrix identity E[tau^2] = (2 (I-Q)^-1 - I) h of
    Kemeny and Snell). T = 1 + tau(p^(1)), so E[T] = 1 + v.h and Var T = v.h2 - (v.h)^2 with v
    the law of the first draw. Raises ValueError above ``max_states`` count vectors.
    """
    n = _pos_int("n", n)
    v1, M, absorbed, k = _first_draw(p, n, max_states)
    if k == 1:
        return 1.0, 0.0
    trans = np.array([i for i in range(M.shape[0]) if i != absorbed], dtype=np.int64)
    Q = M[np.ix_(trans, trans)]
    lu = np.eye(trans.size) - Q
    h = np.linalg.solve(lu, np.ones(trans.size))
    h2 = np.linalg.solve(lu, 1.0 + 2.0 * (Q @ h))
    w = v1[trans]
    mean_tau, second_tau = float(w @ h), float(w @ h2)
    return 1.0 + mean_tau, max(second_tau - mean_tau**2, 0.0)


def expected_surviving_tokens(p, n: int, m, max_n: int = 2000, per_token: bool = False):
    """Exact E[#{i : p_i^(m) > 0}], the number of tokens still alive at generation m (fully synthetic).

    Lumping token i against all the others gives a two-type Wright-Fisher chain on the count
    k in {0..n} of token i, with binomial transitions P[k, j] = Bin(j; n, k/n) and first draw
    Bin(n, p_i). Token i is alive at generation m >= 1 unless that chain sits at 0, so
    E[alive at m] = sum_i (1 - P(count_i^(m) = 0)); at m = 0 it is the support of p. At m = 1
    this is sum_i [1 - (1 - p_i)^n]. With ``per_token=True`` the survival probability of every
    token is returned instead, shape ``np.shape(m) + (len(p),)`` (sum it over any set of tokens,
    e.g. a head and a tail). Costs O(#distinct p_i * n^2) per generation; ``n`` above ``max_n``
    is refused with ValueError.
    """
    n = _pos_int("n", n)
    max_n = _pos_int("max_n", max_n)
    if n > max_n:
        raise ValueError(f"n={n} > max_n={max_n}: the (n+1) x (n+1) transition matrix is too large")
    p = validate(p)
    m_arr = _m_array(m)
    vals, inverse, mult = np.unique(p, return_inverse=True, return_counts=True)
    M = int(m_arr.max()) if m_arr.size else 0
    alive = np.empty((M + 1, vals.size))  # survival probability of a token with probability vals[j]
    alive[0] = vals > 0
    k = np.arange(n + 1)
    P = binom.pmf(k[None, :], n, k[:, None] / n)
    V = binom.pmf(k[None, :], n, vals[:, None])  # law of the count of each distinct p_i at m = 1
    for j in range(1, M + 1):
        alive[j] = _probability(1.0 - V[:, 0])
        if j < M:
            V = V @ P
    if per_token:
        return alive[m_arr][..., inverse.ravel()]
    out = alive[m_arr] @ mult.astype(float)
    return out if np.ndim(m) else float(out)


def expected_max_collapse_time(p, n: int, c: int, max_states: int = 20000, tol: float = 1e-10) -> float:
    """Exact E[max_j T_j] for c independent contexts with the same p and n (fully synthetic).

    E[max_j T_j] = sum_{m >= 0} P(max_j T_j > m) = sum_{m >= 0} [1 - (1 - P(T > m))^c], with P(T > m)
    from the exact chain. The sum is cut when the remaining terms, at most
    c P(T > m) n / (1 - ...) by the geometric tail (:func:`collapse_tail_rate`), fall below ``tol``.
    For c = 1 it is :func:`exact_collapse_time`.
    """
    n = _pos_int("n", n)
    c = _pos_int("c", c)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    v, M, absorbed, k = _first_draw(p, n, max_states)
    if k == 1:
        return 1.0
    alive = np.ones(M.shape[0], dtype=bool)
    alive[absorbed] = False
    total = 1.0  # m = 0: T >= 1
    while True:
        surv = float(v[alive].sum())
        total += float(-np.expm1(c * np.log1p(-surv))) if surv < 1.0 else 1.0
        if c * surv * n < tol:
            return total
        v = v @ M
