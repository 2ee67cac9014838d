"""Argument checks shared by the public functions of collapse_lib (the validation contract).

Contract: a public function of ``distributions``, ``decoding``, ``metrics``, ``theory`` or
``simulate`` refuses a bad argument by raising :class:`InvalidArgument` (a ``ValueError``)
whose message names the argument and says what was expected; a wrong *type* raises
:class:`ArgumentTypeError`, which is both a ``TypeError`` and an ``InvalidArgument``, so
``except ValueError`` catches every refusal. Refused inputs never produce NaN, inf, a
clipped value or an error from inside numpy, scipy or numba.

Integers. An integer argument (a size, a count, a generation) accepts a Python ``int``,
a numpy integer, or a float that is exactly an integer (``3.0``, ``1e4``; converted
exactly), at most 2^62 in absolute value (numpy and numba count in int64). It refuses
``bool``, strings, ``None``, non-finite values and non-integral floats (``2.5`` is an
error, never truncated to 2).

Memory. Functions whose memory grows with their arguments estimate the bytes they would
allocate before allocating and refuse (naming the argument and the estimate) above
:func:`memory_budget`: 80 % of the memory the system reports as available.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = [
    "InvalidArgument",
    "ArgumentTypeError",
    "integer",
    "real",
    "boolean",
    "choice",
    "int_array",
    "real_array",
    "check_memory",
    "memory_budget",
    "rng_from_seed",
]


class InvalidArgument(ValueError):
    """A refused argument of a collapse_lib function; the message names the argument."""


class ArgumentTypeError(InvalidArgument, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""


def _kind(v) -> str:
    return type(v).__name__


def _int_what(minimum: int | None) -> str:
    if minimum == 1:
        return "a positive integer"
    if minimum == 0:
        return "a non-negative integer"
    return "an integer" if minimum is None else f"an integer >= {minimum}"


INT_LIMIT = 2**62


def integer(name: str, v, minimum: int | None = None, maximum: int | None = INT_LIMIT) -> int:
    """`v` as a Python int, checked against the contract above and [minimum, maximum]."""
    what = _int_what(minimum)
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be {what}, got the bool {v!r}")
    if isinstance(v, numbers.Integral):
        out = int(v)
    elif isinstance(v, numbers.Real):
        x = float(v)
        if not math.isfinite(x):
            raise InvalidArgument(f"{name} must be {what}, got {v!r}")
        if x != math.floor(x):
            raise InvalidArgument(f"{name} must be {what}, got {v!r} (not truncated)")
        out = int(x)
    else:
        raise ArgumentTypeError(f"{name} must be {what}, got {_kind(v)} {v!r}"[:200])
    if minimum is not None and out < minimum:
        raise InvalidArgument(f"{name} must be {what}, got {out}")
    if maximum is not None and out > maximum:
        raise InvalidArgument(f"{name} must be an integer <= {maximum}, got {v!r}"[:200])
    if abs(out) > INT_LIMIT:
        raise InvalidArgument(f"{name} must be at most 2**62 in absolute value, got {v!r}"[:200])
    return out


def real(name: str, v, low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False, allow_inf: bool = False) -> float:
    """`v` as a float: a real number (not bool, str, complex), finite unless `allow_inf`, in the interval."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {_kind(v)} {v!r}"[:200])
    x = float(v)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise InvalidArgument(f"{name} must be a finite number, got {v!r}")
    lo_bad = low is not None and (x < low or (low_open and x == low))
    hi_bad = high is not None and (x > high or (high_open and x == high))
    if lo_bad or hi_bad:
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        lo_s = "-inf" if low is None else f"{low:g}"
        hi_s = "inf" if high is None else f"{high:g}"
        raise InvalidArgument(f"{name} must be in {lb}{lo_s}, {hi_s}{hb}, got {v!r}")
    return x


def boolean(name: str, v) -> bool:
    """`v` must be a bool (Python or numpy); 0/1, strings and None are refused."""
    if not isinstance(v, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {_kind(v)} {v!r}"[:200])
    return bool(v)


def choice(name: str, v, options: tuple) -> object:
    """`v` must be one of `options` (compared with ==, strings only match strings)."""
    if not isinstance(v, str) or v not in options:
        raise InvalidArgument(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {v!r}"[:200])
    return v


def _numeric_array(name: str, v) -> np.ndarray:
    """np.asarray(v) for real numeric data; refuses str/object/complex/bool and ragged input."""
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError) as e:  # ragged nested sequences
        raise InvalidArgument(f"{name} must be a rectangular array of numbers ({e})") from None
    if arr.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"{name} must hold real numbers, got dtype {arr.dtype} ({_kind(v)})")
    return arr


def real_array(name: str, v, ndim: tuple[int, ...] | None = None) -> np.ndarray:
    """float64 array of finite real numbers, non-empty, with ndim in `ndim` if given."""
    arr = _numeric_array(name, v).astype(float, copy=False)
    if ndim is not None and arr.ndim not in ndim:
        raise InvalidArgument(f"{name} must have ndim in {ndim}, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidArgument(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgument(f"{name} contains NaN or infinite entries")
    return arr


def int_array(name: str, v, minimum: int = 0, allow_inf: bool = False, label: str | None = None) -> np.ndarray:
    """Integer-valued array (int64; float64 when `allow_inf` and an entry is +inf), entries >= minimum.

    Accepts integers and exactly integral floats, like :func:`integer`; refuses NaN, -inf,
    non-integral values, bools, strings and empty arrays. `label` replaces `name` in messages.
    """
    what = label or name
    if isinstance(v, (bool, np.bool_)):
        raise ArgumentTypeError(f"{what} must be an integer or an array of integers, got the bool {v!r}")
    try:
        arr = np.asarray(v)
    except (ValueError, TypeError):
        raise InvalidArgument(f"{what} must be an integer or a rectangular array of integers") from None
    if arr.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"{what} must be an integer or an array of integers, got {_kind(v)} {v!r}"[:200])
    if arr.size == 0:
        raise InvalidArgument(f"{what} must not be empty")
    f = arr.astype(float)
    bad = np.isnan(f) | (f == -np.inf) | ((f == np.inf) & (not allow_inf))
    fin = np.isfinite(f)
    bad |= fin & (f != np.floor(np.where(fin, f, 0.0)))
    bad |= f < minimum
    if np.any(bad):
        extra = " or inf" if allow_inf else ""
        shown = v if np.ndim(v) == 0 else f"{f[bad].ravel()[:3]}..."
        raise InvalidArgument(f"{what} must be an integer >= {minimum}{extra}, got {shown!r}"[:200])
    if allow_inf and np.any(np.isinf(f)):
        return f
    if np.any(f >= 2.0**62):
        raise InvalidArgument(f"{what} is too large (>= 2**62)")
    return f.astype(np.int64) if arr.dtype.kind == "f" else arr.astype(np.int64)


def memory_budget() -> int:
    """Bytes a single allocation plan may use: 80 % of MemAvailable (Linux), else 4 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(0.8 * int(line.split()[1]) * 1024)
    except OSError:  # pragma: no cover - non-Linux
        pass
    return 4 * 2**30  # pragma: no cover


def _fmt_bytes(b: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} bytes"


def check_memory(name: str, nbytes: float, what: str) -> None:
    """Refuse a plan that would allocate `nbytes` (more than :func:`memory_budget`)."""
    if nbytes < 2**26:  # 64 MB: always fine, skip reading /proc/meminfo
        return
    budget = memory_budget()
    if nbytes > budget:
        raise InvalidArgument(
            f"{name}: {what} would need about {_fmt_bytes(nbytes)} of memory, more than the "
            f"{_fmt_bytes(budget)} available; reduce {name}"
        )


def rng_from_seed(name: str, seed) -> np.random.Generator:
    """numpy Generator from `seed` (None, int >= 0, sequence of them, SeedSequence or Generator)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_, float, str, bytes)):
        raise ArgumentTypeError(f"{name} must be None, a non-negative integer or a sequence of them, got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(
            f"{name} must be None, a non-negative integer or a sequence of them, got {seed!r} ({e})"[:240]
        ) from None
