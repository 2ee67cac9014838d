"""The bridge from theory to text: a character n-gram model trained by counting.

With context = the previous ``k`` characters of the stream, the maximum-likelihood language
model is the table of empirical next-character frequencies of each context (Chapter 1): this *is*
the paper's statistical language model, run on real text. Pushed through the same recursive loop
as the GPT (same streams of :func:`~collapse_lib.gpt.sample.sample_streams`, same sizes, same
metrics), every context ``c`` is its own little chain, and the theory predicts, from the context's
own counts, how its collision probability ``S(c) = sum_x p(x|c)^2`` grows.

Theorem 1 with a sample size that changes from generation to generation
------------------------------------------------------------------------
If, given ``p^(j-1)(.|c)``, the ``n_j(c)`` characters that follow ``c`` in generation ``j``'s data
are i.i.d. draws from ``p^(j-1)(.|c)``, the proof of Theorem 1 (one step of
``E[sum_x phat_x^2] = sum_x q_x^2 + (1 - sum_x q_x^2)/n``) gives

    E[1 - S_j(c) | S_{j-1}(c), n_j(c)] = (1 - 1/n_j(c)) (1 - S_{j-1}(c)),            (B1)

hence ``E[1 - S_m] = (1 - S_1) prod_{j=2}^m (1 - 1/n_j)`` (eq. (6) when all ``n_j = n``). In
text the premise holds only approximately: how often ``c`` occurs can depend on what followed
earlier occurrences of ``c`` in the same stream. :func:`bridge_fully` measures how well (B1) holds.

Partially synthetic: with ``N(c)`` real occurrences (fixed: the real set is reused) and
``n_j(c)`` synthetic ones, ``p^(j) = lam_j r + (1 - lam_j) qhat_j`` with ``r = p^(1)(.|c)`` the real
frequencies and ``lam_j = N/(N + n_j)``. Taking expectations of ``S_j`` and of ``<r, p^(j)>``:

    E[S_j]      = lam^2 S_r + 2 lam (1 - lam) <r, p^(j-1)> + (1 - lam)^2 (S_{j-1} + (1 - S_{j-1})/n_j)
    E[<r, p^j>] = lam S_r + (1 - lam) <r, p^(j-1)>                                          (B2)

a linear recursion that reduces to Theorem 2 (corrected eq. (9)) for constant ``n_j = n``,
``N(c) = N`` (tested).

Tempered sampling (B1T)
-----------------------
At temperature ``T != 1`` the characters that follow ``c`` in generation ``j``'s data are drawn from
``D_T p^(j-1)(.|c)``, with ``D_T(p)_x = p_x^(1/T) / sum_y p_y^(1/T)`` (Chapter 7), not from
``p^(j-1)(.|c)``: (B1) no longer holds. The same binomial second moment, taken with the tempered law
(Chapter 7's lemma on the conditional mean under decoding, applied per context), gives

    E[1 - S_j(c) | p^(j-1)(.|c), n_j(c)] = (1 - 1/n_j(c)) (1 - sigma(D_T p^(j-1)(.|c))),     (B1T)

``sigma(q) = sum_x q_x^2``. It is not linear in ``S_{j-1}``, so it is used one step at a time, from
each context's measured ``p^(j-1)(.|c)`` (:func:`predicted_S_tempered`); for ``T = 1`` it is the
one-step form of (B1). ``ngram.json`` labels which formula applies to each chain.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decoding import apply_decoding

#: the per-context predictions of :func:`bridge_fully` / :func:`bridge_partially` (``ngram.json``)
FORMULAS: dict[str, str] = {
    "B1": "unbiased sampling, iterated from generation 1: E[1 - S_m] = (1 - S_1) prod_{j=2..m} (1 - 1/n_j)",
    "B1T": "tempered sampling, one step from the measured p^(j-1): "
           "E[1 - S_j | p^(j-1)] = (1 - 1/n_j) (1 - sigma(D_T p^(j-1)))",
    "B2": "partially synthetic, unbiased sampling: the affine recursion of E[S_j] and E[<r, p^(j)>]",
}


def context_codes(streams: np.ndarray, k: int, vocab_size: int) -> np.ndarray:
    """Integer code of the context of every predicted position: ``codes[s, t-1]`` encodes the
    last ``min(k, t)`` tokens before position ``t`` of stream ``s`` (``t = 1..T``); positions
    before the stream start are a padding symbol, so contexts of different lengths differ."""
    a = np.asarray(streams, dtype=np.int64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"streams must be (streams, T + 1) with T >= 1, got shape {a.shape}")
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    base = vocab_size + 1
    if base ** max(k, 1) >= 2**62:
        raise ValueError(f"k={k} too large to encode contexts over {vocab_size} symbols in 64 bits")
    S, L = a.shape
    padded = np.concatenate([np.full((S, k), vocab_size, dtype=np.int64), a], axis=1)
    codes = np.zeros((S, L - 1), dtype=np.int64)
    for j in range(k):  # context of target position t (padded index t + k) is padded[t : t + k]
        codes = codes * base + padded[:, j + 1 : j + L]
    return codes


def _last_codes(streams: np.ndarray, t: int, j: int, vocab_size: int) -> np.ndarray:
    """Codes (as in :func:`context_codes`) of the contexts of target position ``t``: the last
    ``min(j, t)`` tokens before ``t``, padded."""
    base = vocab_size + 1
    codes = np.zeros(len(streams), dtype=np.int64)
    for i in range(t - j, t):
        codes = codes * base + (streams[:, i] if i >= 0 else vocab_size)
    return codes


def tempered(P: np.ndarray, temperature: float) -> np.ndarray:
    """Rows of ``P`` under temperature ``T``: ``D_T(p)_x = p_x^(1/T) / sum_y p_y^(1/T)``, zeros stay
    zero (Chapter 7's definition; :func:`collapse_lib.decoding.apply_decoding`, in the log domain).
    ``T = 1`` returns ``P`` itself."""
    if not (isinstance(temperature, (int, float, np.floating)) and np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    P = np.asarray(P, dtype=float)
    if temperature == 1.0 or P.size == 0:
        return P
    return apply_decoding(P, float(temperature), check=False)


@dataclass
class CountModel:
    """Next-character frequencies ``p(x | c) = count(c, x) / count(c)`` of every context seen."""

    k: int
    vocab_size: int
    codes: np.ndarray  # sorted unique context codes, shape (C,)
    counts: np.ndarray  # (C, vocab) next-character counts

    @classmethod
    def fit(cls, streams: np.ndarray, k: int, vocab_size: int) -> "CountModel":
        """Maximum-likelihood fit (the frequency table) on ``(streams, T + 1)`` token ids."""
        codes = context_codes(streams, k, vocab_size).ravel()
        nxt = np.asarray(streams, dtype=np.int64)[:, 1:].ravel()
        uniq, inv = np.unique(codes, return_inverse=True)
        counts = np.bincount(inv * vocab_size + nxt, minlength=len(uniq) * vocab_size).reshape(len(uniq), vocab_size)
        return cls(k, vocab_size, uniq, counts)

    @property
    def totals(self) -> np.ndarray:
        return self.counts.sum(axis=1)

    def probs(self) -> np.ndarray:
        return self.counts / self.totals[:, None]

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Row index of each context code, ``-1`` where the context was never seen."""
        codes = np.asarray(codes, dtype=np.int64)
        i = np.searchsorted(self.codes, codes).clip(0, max(len(self.codes) - 1, 0))
        found = len(self.codes) > 0
        return np.where(found & (self.codes[i] == codes), i, -1)

    def sample(self, n_streams: int, T: int, start: int, rng: np.random.Generator, temperature: float = 1.0,
               data: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """``n_streams`` streams of ``T + 1`` tokens under the sampling rule of the GPT chains:
        ``start`` then ``T`` characters, each drawn given the stream so far (here: its last ``k``
        characters), at ``temperature`` (``p^(1/T)`` renormalised; zeros stay zero).

        A sampled character may have been seen only at the *end* of training streams, so that the
        context it forms has no recorded successor. Such a context backs off to the longest suffix
        that has one (lower-order tables fitted on ``data``, the model's training streams). Returns
        the streams and the number of such back-off draws (reported by the experiment: they are
        the one place where the model is not the pure frequency table)."""
        out = np.empty((n_streams, T + 1), dtype=np.int64)
        out[:, 0] = start
        tables: dict[int, tuple[CountModel, np.ndarray]] = {}

        def table(j: int) -> tuple[CountModel, np.ndarray]:
            if j not in tables:
                if j == self.k:
                    model = self
                else:
                    if data is None:
                        raise RuntimeError("sampling reached an unseen context: pass the training data for back-off")
                    model = CountModel.fit(data, j, self.vocab_size)
                tables[j] = (model, np.cumsum(tempered(model.probs(), temperature), axis=1))
            return tables[j]

        backoffs = 0
        for t in range(1, T + 1):
            todo = np.arange(n_streams)
            for j in range(self.k, -1, -1):
                model, cdf = table(j)
                codes = _last_codes(out[todo], t, j, self.vocab_size)
                row = model.lookup(codes)
                ok = row >= 0
                u = rng.random(int(ok.sum()))
                out[todo[ok], t] = np.minimum((cdf[row[ok]] < u[:, None]).sum(axis=1), self.vocab_size - 1)
                if j < self.k:
                    backoffs += int(ok.sum())
                todo = todo[~ok]
                if len(todo) == 0:
                    break
        return out, backoffs

    def code_of(self, stream: np.ndarray) -> int:
        """Code of the context this model uses after the token prefix ``stream``: its last
        ``min(k, len(stream))`` tokens, padded as in :func:`context_codes`."""
        base, code = self.vocab_size + 1, 0
        t = len(stream)
        for j in range(t - self.k, t):
            code = code * base + (int(stream[j]) if j >= 0 else self.vocab_size)
        return code

    def probs_at(self, contexts: np.ndarray, lengths: np.ndarray, data: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Next-character distributions at evaluation contexts ``contexts[i, :lengths[i]]`` (token
        prefixes of streams). A context this model never saw (possible for contexts drawn from
        ``p^(0)``, never during sampling) backs off to the order ``k-1, k-2, ..., 0`` models fitted
        on ``data`` (the model's training streams). Returns the ``(K, vocab)`` matrix and a boolean
        array flagging the contexts that needed a back-off."""
        K = len(lengths)
        P = np.zeros((K, self.vocab_size))
        backed = np.zeros(K, dtype=bool)
        mine = self.probs()
        lower: dict[int, CountModel] = {}
        for i in range(K):
            stream = np.asarray(contexts[i, : lengths[i]], dtype=np.int64)
            r = self.lookup(np.array([self.code_of(stream)]))[0]
            if r >= 0:
                P[i] = mine[r]
                continue
            backed[i] = True
            if data is None:
                raise ValueError("an evaluation context is unseen: pass the training data for the back-off")
            for j in range(self.k - 1, -1, -1):
                if j not in lower:
                    lower[j] = CountModel.fit(data, j, self.vocab_size)
                r = lower[j].lookup(np.array([lower[j].code_of(stream)]))[0]
                if r >= 0:
                    P[i] = lower[j].counts[r] / lower[j].counts[r].sum()
                    break
        return P, backed


# ----------------------------------------------------------------------------- theory per context
def predicted_S_tempered(S_prev_tempered: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(B1T), one step: ``E[S_j | p^(j-1), n_j] = 1 - (1 - 1/n_j)(1 - sigma(D_T p^(j-1)))``,
    elementwise, from ``S_prev_tempered = sigma(D_T p^(j-1)(.|c))`` (the collision probability of the
    tempered law the data of generation ``j`` are drawn from) and the counts ``n = n_j(c) >= 1``."""
    St = np.asarray(S_prev_tempered, dtype=float)
    n = np.asarray(n, dtype=float)
    if St.shape != n.shape:
        raise ValueError(f"S_prev_tempered and n must have the same shape, got {St.shape} and {n.shape}")
    if (n < 1).any():
        raise ValueError("every n_j must be >= 1 (the context must occur)")
    if ((St < 0) | (St > 1 + 1e-12)).any():
        raise ValueError("S_prev_tempered must lie in [0, 1] (a collision probability)")
    return 1.0 - (1.0 - 1.0 / n) * (1.0 - St)


def predicted_S_fully(S1: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(B1) iterated: ``E[S_m] = 1 - (1 - S_1) prod_{j=2}^m (1 - 1/n_j)`` for each context (rows),
    with ``n[:, j-2] = n_j`` for ``j = 2..m``; returns ``(contexts, m)`` with column 0 = ``S_1``."""
    S1 = np.asarray(S1, dtype=float)
    n = np.asarray(n, dtype=float).reshape(len(S1), -1)
    if (n < 1).any():
        raise ValueError("every n_j must be >= 1 (the context must occur)")
    surv = np.cumprod(1.0 - 1.0 / n, axis=1)
    return np.concatenate([S1[:, None], 1.0 - (1.0 - S1[:, None]) * surv], axis=1)


def predicted_S_partially(S1: np.ndarray, N: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(B2) iterated from ``p^(1) = r`` (``S_1 = S_r``, ``<r, p^(1)> = S_r``): the expected ``S_m`` of
    each context with ``N`` real and ``n[:, j-2]`` synthetic occurrences in generation ``j``."""
    Sr = np.asarray(S1, dtype=float)
    N = np.asarray(N, dtype=float)
    n = np.asarray(n, dtype=float).reshape(len(Sr), -1)
    if (n < 1).any() or (N < 1).any():
        raise ValueError("every N and n_j must be >= 1")
    S, R = Sr.copy(), Sr.copy()
    cols = [S.copy()]
    for j in range(n.shape[1]):
        lam = N / (N + n[:, j])
        S = lam**2 * Sr + 2 * lam * (1 - lam) * R + (1 - lam) ** 2 * (S + (1 - S) / n[:, j])
        R = lam * Sr + (1 - lam) * R
        cols.append(S.copy())
    return np.stack(cols, axis=1)


def _binomial_step(a: int, b: int, cache: dict) -> np.ndarray:
    """``M[i, j] = P(Bin(b, i/a) = j)``: one generation of a character's count (``a`` -> ``b`` draws)."""
    if (a, b) not in cache:
        from scipy.stats import binom

        cache[(a, b)] = binom.pmf(np.arange(b + 1)[None, :], b, (np.arange(a + 1) / a)[:, None])
    return cache[(a, b)]


def predicted_support_fully(counts1: np.ndarray, n: np.ndarray, max_count: int = 400) -> np.ndarray:
    """Expected support (characters with positive probability) of each context under the premise
    of :func:`predicted_S_fully`: a character with count ``X_{j-1}`` out of ``n_{j-1}`` follows the
    context ``X_j ~ Binomial(n_j, X_{j-1}/n_{j-1})`` times in generation ``j`` (the Wright-Fisher
    chain of chapter 3 with a varying population), and it is lost once ``X_j = 0``.

    ``counts1`` is ``(contexts, vocab)`` (generation-1 counts), ``n`` is ``(contexts, m-1)``
    (counts of the context in generations ``2..m``). Exact forward computation of the law of each
    count; contexts with a count above ``max_count`` in any generation get NaN (cost grows like
    the square of the count). Returns ``(contexts, m)`` with column 0 the generation-1 support."""
    counts1 = np.asarray(counts1, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64).reshape(len(counts1), -1)
    out = np.full((len(counts1), n.shape[1] + 1), np.nan)
    cache: dict = {}
    for c in range(len(counts1)):
        a = int(counts1[c].sum())
        x = counts1[c][counts1[c] > 0]
        out[c, 0] = len(x)
        if a > max_count or (n.shape[1] and n[c].max() > max_count) or (n[c] < 1).any():
            continue
        law = np.zeros((len(x), a + 1))
        law[np.arange(len(x)), x] = 1.0
        for j, b in enumerate(n[c]):
            law = law @ _binomial_step(a, int(b), cache)
            a = int(b)
            out[c, j + 1] = float((1.0 - law[:, 0]).sum())
    return out


# ----------------------------------------------------------------------------- chains
def run_chain(real: np.ndarray, k: int, vocab_size: int, generations: int, scheme: str, n_streams: int,
              rng: np.random.Generator, temperature: float = 1.0, start: int = 0,
              keep_models: bool = False) -> dict:
    """Push an order-``k`` count model through the recursive loop on real streams ``real``.

    Generation 1 is fitted on ``real[:n_streams]``; generation ``m >= 2`` on ``n_streams`` streams
    sampled from generation ``m - 1`` (*fully*) or on the real streams plus those (*partially*).
    Returns, for every generation, the fitted model (if ``keep_models``) and the samples' arrays,
    plus the per-context trajectories of the generation-1 contexts: ``S[c, m-1]``, the collision
    probability ``S_tempered[c, m-1]`` of the tempered law ``D_T p^(m)(.|c)`` that generation
    ``m + 1``'s data are drawn from (equal to ``S`` at ``T = 1``), the synthetic count ``n[c, m-1]``
    (0 for generation 1 and where the context vanished), the real count ``N`` and the support
    ``support[c, m-1]`` (characters with positive probability; ``0`` once gone).
    """
    if scheme not in ("fully", "partially"):
        raise ValueError(f"scheme must be 'fully' or 'partially', got {scheme!r}")
    if generations < 1:
        raise ValueError(f"generations must be >= 1, got {generations}")
    T = real.shape[1] - 1
    base_real = real[:n_streams]
    model = CountModel.fit(base_real, k, vocab_size)
    ref = model.codes
    C = len(ref)
    S = np.zeros((C, generations))
    St = np.zeros((C, generations))
    n = np.zeros((C, generations))
    sup = np.zeros((C, generations))
    Nreal = model.totals.astype(float)
    counts1 = model.counts.copy()
    P = model.probs()
    S[:, 0], sup[:, 0] = (P**2).sum(axis=1), (P > 0).sum(axis=1)
    St[:, 0] = (tempered(P, temperature) ** 2).sum(axis=1)
    models = [model] if keep_models else []
    datas = [base_real] if keep_models else []
    samples = []
    backoffs = []
    data = base_real
    for m in range(2, generations + 1):
        synth, b = model.sample(n_streams, T, start, rng, temperature, data)
        samples.append(synth)
        backoffs.append(b)
        syn_model = CountModel.fit(synth, k, vocab_size)
        data = synth if scheme == "fully" else np.concatenate([base_real, synth])
        model = CountModel.fit(data, k, vocab_size)
        rows = model.lookup(ref)
        alive = rows >= 0
        P = model.probs()
        S[alive, m - 1] = (P[rows[alive]] ** 2).sum(axis=1)
        S[~alive, m - 1] = np.nan
        St[alive, m - 1] = (tempered(P[rows[alive]], temperature) ** 2).sum(axis=1)
        St[~alive, m - 1] = np.nan
        sup[alive, m - 1] = (P[rows[alive]] > 0).sum(axis=1)
        srow = syn_model.lookup(ref)
        n[:, m - 1] = np.where(srow >= 0, syn_model.totals[srow.clip(0)], 0)
        if keep_models:
            models.append(model)
            datas.append(data)
    synth, b = model.sample(n_streams, T, start, rng, temperature, data)
    samples.append(synth)
    backoffs.append(b)
    return {"S": S, "S_tempered": St, "temperature": float(temperature), "n": n, "N": Nreal, "counts1": counts1,
            "support": sup, "models": models, "data": datas, "samples": samples,
            "backoff_fraction": [b / (n_streams * T) for b in backoffs]}


def _pooled(measured: list[np.ndarray], predicted: list[np.ndarray]) -> dict:
    """Means over chains of per-chain measured and predicted curves, and the standard error over
    chains of their difference (chains are the independent replicates)."""
    meas, pred = np.array(measured), np.array(predicted)
    R = len(meas)
    se = (meas - pred).std(axis=0, ddof=1) / np.sqrt(R) if R > 1 else np.zeros(meas.shape[1])
    return {"measured": meas.mean(axis=0).tolist(), "predicted": pred.mean(axis=0).tolist(), "se": se.tolist()}


def bridge_fully(chains: list[dict], m_max: int | None = None, support: bool = True) -> dict:
    """Measured against predicted mean ``S_m`` over the contexts alive in every generation up to
    ``m`` (fully synthetic chains), pooled over chains; also the one-step residual of (B1),
    ``(1 - S_j) - (1 - 1/n_j)(1 - S_{j-1})``, whose mean must be 0 if (B1) holds, and the support
    comparison of :func:`_support_bridge`.

    Returns arrays over ``m = 1..m_max``: ``measured``, ``predicted`` ((B1), which assumes unbiased
    sampling), ``se`` (standard error of the mean difference over chains), ``predicted_tempered`` and
    ``se_tempered`` ((B1T), one step from each context's measured ``p^(m-1)``; the prediction for a
    chain sampled at ``T != 1``), ``formula`` (``"B1"`` or ``"B1T"``: the one that applies to these
    chains' temperature), ``contexts`` (mean number of contexts used), and ``residual``,
    ``residual_se`` for the one-step check of (B1) (all steps pooled, per chain means).
    ``support=False`` skips the support comparison (its exact laws are the slow part)."""
    gens = chains[0]["S"].shape[1] if m_max is None else m_max
    temps = {float(ch.get("temperature", 1.0)) for ch in chains}
    if len(temps) != 1:
        raise ValueError(f"chains must share one temperature, got {sorted(temps)}")
    meas, pred, predT, counts, res_chain = [], [], [], [], []
    for ch in chains:
        S, n = ch["S"][:, :gens], ch["n"][:, :gens]
        St = ch.get("S_tempered", ch["S"])[:, :gens]
        alive = np.isfinite(S).all(axis=1) & (n[:, 1:] > 0).all(axis=1)
        meas.append(S[alive].mean(axis=0))
        pred.append(predicted_S_fully(S[alive, 0], n[alive, 1:]).mean(axis=0))
        predT.append(np.concatenate([S[alive, :1], predicted_S_tempered(St[alive, :-1], n[alive, 1:])],
                                    axis=1).mean(axis=0))
        counts.append(alive.sum())
        r = []
        for j in range(1, gens):
            ok = np.isfinite(S[:, j]) & np.isfinite(S[:, j - 1]) & (n[:, j] > 0)
            r.append((1 - S[ok, j]) - (1 - 1 / n[ok, j]) * (1 - S[ok, j - 1]))
        res_chain.append(np.concatenate(r).mean())
    R = len(chains)
    pt = _pooled(meas, predT)
    return {"m": list(range(1, gens + 1)), **_pooled(meas, pred), "predicted_tempered": pt["predicted"],
            "se_tempered": pt["se"], "formula": "B1" if temps == {1.0} else "B1T",
            "contexts": float(np.mean(counts)),
            **(_support_bridge(chains, gens) if support else {}), "residual": float(np.mean(res_chain)),
            "residual_se": float(np.std(res_chain, ddof=1) / np.sqrt(R)) if R > 1 else 0.0}


def _support_bridge(chains: list[dict], gens: int, max_count: int = 400) -> dict:
    """Measured against predicted (:func:`predicted_support_fully`) mean support of the
    generation-1 contexts alive in every generation whose counts stay below ``max_count``."""
    meas, pred, counts = [], [], []
    for ch in chains:
        S, n, sup = ch["S"][:, :gens], ch["n"][:, :gens], ch["support"][:, :gens]
        alive = np.isfinite(S).all(axis=1) & (n[:, 1:] > 0).all(axis=1)
        alive &= (ch["counts1"].sum(axis=1) <= max_count) & (n[:, 1:] <= max_count).all(axis=1)
        meas.append(sup[alive].mean(axis=0))
        pred.append(predicted_support_fully(ch["counts1"][alive], n[alive, 1:], max_count).mean(axis=0))
        counts.append(alive.sum())
    out = _pooled(meas, pred)
    return {"support_measured": out["measured"], "support_predicted": out["predicted"], "support_se": out["se"],
            "support_contexts": float(np.mean(counts))}


def bridge_partially(chains: list[dict]) -> dict:
    """As :func:`bridge_fully` for partially synthetic chains, with prediction (B2)."""
    gens = chains[0]["S"].shape[1]
    meas, pred, counts = [], [], []
    for ch in chains:
        S, n, N = ch["S"], ch["n"], ch["N"]
        ok = np.isfinite(S).all(axis=1) & (n[:, 1:] > 0).all(axis=1)
        meas.append(S[ok].mean(axis=0))
        pred.append(predicted_S_partially(S[ok, 0], N[ok], n[ok, 1:]).mean(axis=0))
        counts.append(ok.sum())
    temps = {float(ch.get("temperature", 1.0)) for ch in chains}
    # (B2) assumes unbiased sampling; no partially synthetic chain of the runs samples at T != 1
    return {"m": list(range(1, gens + 1)), **_pooled(meas, pred), "contexts": float(np.mean(counts)),
            "formula": "B2" if temps == {1.0} else "B2 (assumes T = 1: no prediction for this temperature)"}


# ----------------------------------------------------------------------------- the experiment
def run_ngram_experiment(out: str | Path, orders: tuple[int, ...] = (1, 2, 4, 8), seeds: int = 5,
                         xent_seeds: int = 2, chains: list[dict] | None = None,
                         dest: str | Path | None = None, generations: int | None = None) -> dict:
    """Every chain of the GPT run ``out`` (same real set, sizes, temperatures, generations and
    evaluation contexts), with order-``k`` count models in place of the GPT, ``seeds`` chains
    each. Needs the run's ``p0`` stage. Writes and returns ``dest`` (default ``out/ngram.json``):
    per order and chain, the per-generation means and standard errors over seeds of the GPT
    chapter's metrics, and the per-context bridge to Theorems 1 and 2 (:func:`bridge_fully`,
    :func:`bridge_partially`; each labelled with the formula of :data:`FORMULAS` that applies).
    ``chains`` (dicts with keys name, scheme, n, temperature, as in a run's ``config.json``)
    replaces the run's own chains: a count model needs only the run's ``p0`` stage, so the chains
    of another run with the same ``p^(0)`` can be pushed through it (the random streams depend on
    the run seed, the order, the chain's name and the seed, so they are reproduced exactly), and
    ``generations`` replaces the run's number of generations.
    The cross-entropy under ``p^(0)`` needs a GPT forward pass, so it is computed for the first
    ``xent_seeds`` seeds only."""
    import torch

    from .measure import distribution_metrics, sample_metrics
    from .runner import RunConfig, StageRunner

    out = Path(out)
    if not (out / "config.json").is_file():
        raise FileNotFoundError(f"{out / 'config.json'} not found: run the GPT experiment first")
    if not orders or any(not isinstance(k, int) or k < 0 for k in orders):
        raise ValueError(f"orders must be non-negative integers, got {orders!r}")
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 (standard errors over seeds), got {seeds}")
    if generations is not None and (not isinstance(generations, int) or generations < 2):
        raise ValueError(f"generations must be an integer >= 2 or None, got {generations!r}")
    cfg = RunConfig(**json.loads((out / "config.json").read_text()))
    st = StageRunner(cfg, out)
    if not st.done("p0"):
        raise FileNotFoundError(f"{out} has no completed p0 stage yet")
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    ck0 = st.load("p0")
    p0 = st.model_from("p0")
    real = ck0["real"].numpy().astype(np.int64)
    ctx, lengths = ck0["contexts"].numpy(), ck0["context_lengths"].numpy()
    P0 = ck0["p0"].numpy()
    rare = np.array(ck0["rare"], dtype=bool)
    V, T = cfg.model.vocab_size, cfg.model.block_size
    if chains is None:
        todo = list(cfg.chains)
    else:
        from .runner import Chain

        todo = [Chain(name=c["name"], scheme=c["scheme"], n=int(c["n"]), temperature=float(c.get("temperature", 1.0)))
                for c in chains]
    G = cfg.generations if generations is None else generations
    result: dict = {"orders": list(orders), "seeds": seeds, "generations": G, "formulas": FORMULAS,
                    "p0_run": str(out), "chains": {}}
    for k in orders:
        for chain in todo:
            n_streams = -(-chain.n // T)
            rows = []
            runs = []
            for s in range(seeds):
                rng = np.random.default_rng([cfg.seed, k, zlib_crc(chain.name), s])
                run = run_chain(real, k, V, G, chain.scheme, n_streams, rng, chain.temperature,
                                st.start, keep_models=True)
                gen_rows = []
                P1 = None
                for m, (model, smp, dat) in enumerate(zip(run["models"], run["samples"], run["data"]), start=1):
                    P, backed = model.probs_at(ctx, lengths, dat)
                    P1 = P if m == 1 else P1
                    met = distribution_metrics(torch.from_numpy(P), {"p0": torch.from_numpy(P0),
                                                                     "p1": torch.from_numpy(P1)},
                                               cfg.support_threshold)
                    met = {key: v for key, v in met.items() if not key.endswith("_c")}
                    met["backoff_fraction"] = float(backed.mean())  # evaluation contexts never seen
                    met["sampling_backoff"] = run["backoff_fraction"][m - 1]  # dead-end draws of its sample
                    met["support_exact"] = float((P > 0).sum(axis=1).mean())
                    met["contexts_in_model"] = int(len(model.codes))
                    sm = sample_metrics(torch.from_numpy(smp.astype(np.uint8)), rare,
                                        p0 if s < xent_seeds else None, cfg.sample_metric_chars)
                    met.update(sm)
                    gen_rows.append(met)
                rows.append(gen_rows)
                runs.append(run)
            summary = _summarise(rows)
            bridge = bridge_fully(runs) if chain.scheme == "fully" else bridge_partially(runs)
            surv = [np.nanmean(r["support"], axis=0).tolist() for r in runs]
            result["chains"][f"k{k}/{chain.name}"] = {"k": k, "chain": chain.name, "scheme": chain.scheme, "n": chain.n,
                                                     "temperature": chain.temperature, "metrics": summary,
                                                     "bridge": bridge,
                                                     "support_generation1_contexts": np.mean(surv, axis=0).tolist()}
    result["wall_s"] = time.perf_counter() - t_start
    dest = out / "ngram.json" if dest is None else Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(dest)
    return result


def add_tempered_predictions(out: str | Path, ngram_path: str | Path, chains: list[dict],
                             dest: str | Path | None = None) -> dict:
    """Add the tempered prediction (B1T) to an ``ngram.json`` written before it existed, without
    recomputing the rest: every chain of ``chains`` (as in a run's ``config.json``) sampled at
    ``T != 1`` is re-run with the same random streams as :func:`run_ngram_experiment` (same run
    seed, order, chain name and seed, and the ``p0`` stage of the run ``out``, which must hold the
    same real set), its bridge is recomputed without the support comparison, and its measured
    ``S`` is compared with the stored one. If they are equal (same real set), the bridge gains
    ``predicted_tempered``, ``se_tempered`` and ``formula``; if not (the run ``out`` drew another
    real set from ``p^(0)``), the stored bridge is kept as it is (labelled (B1), the formula it was
    computed with) and the recomputed one, measured and predicted on the same chains, is stored
    beside it as ``bridge_tempered`` with ``same_real_set: false``. Also writes the temperature,
    scheme and size into every entry, and :data:`FORMULAS`; returns the result."""
    from .runner import RunConfig, StageRunner

    out, ngram_path = Path(out), Path(ngram_path)
    res = json.loads(ngram_path.read_text())
    cfg = RunConfig(**json.loads((out / "config.json").read_text()))
    st = StageRunner(cfg, out)
    if not st.done("p0"):
        raise FileNotFoundError(f"{out} has no completed p0 stage yet")
    real = st.load("p0")["real"].numpy().astype(np.int64)
    V, T, G = cfg.model.vocab_size, cfg.model.block_size, res["generations"]
    by_name = {c["name"]: c for c in chains}
    dest = ngram_path if dest is None else Path(dest)
    res["formulas"] = FORMULAS
    res["tempered_added_from"] = str(out)

    def write() -> None:  # after every re-run chain, so that an interruption keeps what is done
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(dest)

    for key, e in res["chains"].items():
        c = by_name.get(e["chain"])
        if c is None:
            raise ValueError(f"{key}: chain {e['chain']!r} is not in `chains`")
        temp = float(c.get("temperature", 1.0))
        e.update(scheme=c["scheme"], n=int(c["n"]), temperature=temp)
        b = e["bridge"]
        if temp == 1.0:
            b["formula"] = "B1" if c["scheme"] == "fully" else "B2"
            continue
        if c["scheme"] != "fully":
            raise ValueError(f"{key}: no tempered prediction for a partially synthetic chain")
        n_streams = -(-int(c["n"]) // T)
        runs = [run_chain(real, e["k"], V, G, "fully", n_streams,
                          np.random.default_rng([cfg.seed, e["k"], zlib_crc(c["name"]), s]), temp,
                          int(st.start)) for s in range(res["seeds"])]
        nb = bridge_fully(runs, support=False)
        same = bool(np.allclose(nb["measured"], b["measured"], rtol=0, atol=1e-12))
        if same:
            b.update(predicted_tempered=nb["predicted_tempered"], se_tempered=nb["se_tempered"],
                     formula=nb["formula"])
        else:
            b["formula"] = "B1"
            e["bridge_tempered"] = {**nb, "same_real_set": False, "p0_run": str(out)}
        write()
    write()
    return res


def zlib_crc(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def _summarise(rows: list[list[dict]]) -> dict:
    """Mean and standard error over seeds of every numeric metric, per generation."""
    keys = [k for k, v in rows[0][0].items() if isinstance(v, (int, float))]
    out: dict = {}
    for key in keys:
        vals = np.array([[g.get(key, np.nan) for g in r] for r in rows], dtype=float)
        ok = np.isfinite(vals)
        cnt = ok.sum(axis=0)
        mean = np.where(cnt > 0, np.nansum(vals, axis=0) / np.maximum(cnt, 1), np.nan)
        sd = np.array([np.nanstd(vals[:, j], ddof=1) if cnt[j] > 1 else np.nan for j in range(vals.shape[1])])
        out[key] = {"mean": mean.tolist(), "se": (sd / np.sqrt(np.maximum(cnt, 1))).tolist()}
    return out
