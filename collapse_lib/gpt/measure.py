"""The instruments of the experiment: what is measured on every generation's model and sample.

Both kinds of language model in the chapter (the GPT and the counting n-gram model of
:mod:`collapse_lib.gpt.ngram`) are measured by the same functions, on the same inputs:

* a matrix ``P`` of next-character distributions, one row per evaluation context ``c``
  (:func:`distribution_metrics`, computed by :mod:`collapse_lib.metrics`): drift ``(1/K) sum_c ||P(.|c) - Q(.|c)||_1`` to reference models,
  mean entropy, mean largest probability ``||P(.|c)||_inf`` and the mean *support*
  ``|{x : P(x|c) > threshold}|``, the number of characters still given a real chance;
* the generation's sample, a ``(streams, T + 1)`` array of token ids (:func:`sample_metrics`):
  distinct 4-gram rate, rare-character rate, and its cross-entropy under ``p^(0)``;
* the GPT's in-context behaviour (:func:`in_context_metrics`, the bridge to the in-context
  chapter): the loss on the second copy of a repeated random string against the first copy
  (:func:`copy_losses`, copying or induction), and the loss gain from a long context over a short
  one on held-out ``p^(0)`` text (:func:`context_gain`). Their inputs are fixed: random strings
  from a CPU generator with the fixed seed :data:`ICL_SEED`, and the run's held-out ``p^(0)``
  streams, so every generation is measured on the same strings.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import metrics
from .model import GPT


@torch.no_grad()
def context_probs(model: GPT, contexts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``p(. | c_i)`` for contexts of different lengths, shape ``(K, vocab)``, float64 on the CPU.

    ``contexts`` is ``(K, L)`` with context ``i`` in ``contexts[i, :lengths[i]]`` (the rest is
    padding). Attention is causal, so the logits at position ``lengths[i] - 1`` do not depend on
    the padding: one forward pass scores all contexts.
    """
    if contexts.dim() != 2 or lengths.shape != (contexts.size(0),):
        raise ValueError(f"need contexts (K, L) and lengths (K,), got {tuple(contexts.shape)}, {tuple(lengths.shape)}")
    if int(lengths.min()) < 1 or int(lengths.max()) > min(contexts.size(1), model.config.block_size):
        raise ValueError("context lengths must lie in [1, min(L, block_size)]")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, _ = model(contexts.long().to(device))
    model.train(was_training)
    last = logits[torch.arange(len(lengths)), lengths.to(device) - 1]
    return torch.softmax(last.double(), dim=-1).cpu()


def distribution_metrics(P: torch.Tensor, refs: dict[str, torch.Tensor], support_threshold: float = 1e-3) -> dict:
    """Summaries of a ``(K, vocab)`` matrix of next-character distributions.

    For each ``name -> Q`` in ``refs``: ``l1_to_<name>`` (mean over contexts of
    ``||P(.|c) - Q(.|c)||_1``) and ``l1_to_<name>_se`` (its standard error over contexts).
    Always: ``entropy`` (mean nats), ``max_prob`` (mean ``||P(.|c)||_inf``), ``support`` (mean number of
    characters with probability above ``support_threshold``), and the per-context arrays
    ``entropy_c`` and ``support_c`` (lists) for finer analyses.
    """
    if P.dim() != 2:
        raise ValueError(f"P must be (contexts, vocab), got {tuple(P.shape)}")
    p = P.double().numpy()
    out: dict = {}
    for name, Q in refs.items():
        if Q.shape != P.shape:
            raise ValueError(f"reference {name!r} has shape {tuple(Q.shape)}, P has {tuple(P.shape)}")
        d = metrics.l1(p, Q.double().numpy())
        out[f"l1_to_{name}"] = float(d.mean())
        out[f"l1_to_{name}_se"] = float(d.std(ddof=1) / len(d) ** 0.5) if len(d) > 1 else 0.0
    ent = metrics.entropy(p)
    sup = metrics.support_size(p, tol=support_threshold)
    out.update(entropy=float(ent.mean()), max_prob=float(metrics.max_prob(p).mean()), support=float(sup.mean()),
               entropy_c=[round(float(v), 5) for v in ent], support_c=[int(v) for v in sup])
    return out


def distinct_ngram_rate(streams: torch.Tensor | np.ndarray, k: int = 4, max_chars: int | None = None) -> float:
    """Number of distinct ``k``-grams divided by the number of ``k``-grams, counting ``k``-grams
    inside the sampled part of each stream (the start token excluded). With ``max_chars`` only the
    first streams holding that many sampled characters are used, so that samples of different
    sizes are compared at equal size (the rate falls with sample size)."""
    a = np.asarray(streams)[:, 1:].astype(np.int64)
    if max_chars is not None:
        a = a[: max(1, -(-max_chars // a.shape[1]))]
    if a.shape[1] < k:
        raise ValueError(f"streams are shorter than k={k}")
    codes = np.zeros((a.shape[0], a.shape[1] - k + 1), dtype=np.int64)
    for j in range(k):
        codes = codes * 256 + a[:, j : j + codes.shape[1]]
    return float(len(np.unique(codes)) / codes.size)


def rare_char_rate(streams: torch.Tensor | np.ndarray, rare: np.ndarray) -> float:
    """Fraction of sampled characters (start tokens excluded) whose id is flagged in ``rare``
    (a boolean array over the vocabulary)."""
    a = np.asarray(streams)[:, 1:]
    return float(np.asarray(rare, dtype=bool)[a].mean())


def rare_characters(streams: torch.Tensor | np.ndarray, vocab_size: int, below: float = 2e-3) -> np.ndarray:
    """Boolean mask of the characters whose frequency in ``streams`` (sampled part) is positive
    but below ``below``: the rare characters of the reference text."""
    a = np.asarray(streams)[:, 1:].ravel()
    f = np.bincount(a, minlength=vocab_size) / a.size
    return (f > 0) & (f < below)


def sample_metrics(streams: torch.Tensor, rare: np.ndarray, p0: GPT | None = None, max_chars: int = 20_000) -> dict:
    """``distinct4`` (distinct 4-gram rate over the first ``max_chars`` sampled characters),
    ``rare_rate`` and, when the ground-truth model ``p0`` is given, ``xent_p0``: the mean
    cross-entropy (nats per character) of the sample under ``p^(0)``, every character scored given
    its whole stream prefix (the sampling rule)."""
    from .train import evaluate_loss

    out = {"distinct4": distinct_ngram_rate(streams, 4, max_chars), "rare_rate": rare_char_rate(streams, rare)}
    if p0 is not None:
        out["xent_p0"] = evaluate_loss(p0, streams, max_windows=max(1, -(-max_chars // (streams.size(1) - 1))))
    return out


#: Seed of the random strings of :func:`copy_losses` (the same strings for every model).
ICL_SEED: int = 20_240_624


def _token_losses(model: GPT, x: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy ``-log p(x[:, t+1] | x[:, :t+1])``, shape ``(B, L - 1)``, float64 CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits, _ = model(x[:, :-1].long().to(device))
    model.train(was_training)
    logp = torch.log_softmax(logits.double(), dim=-1)
    return -logp.gather(-1, x[:, 1:].long().to(device).unsqueeze(-1)).squeeze(-1).cpu()


def copy_losses(model: GPT, n_strings: int = 64, length: int | None = None, seed: int = ICL_SEED) -> dict:
    """The repeated-random-string probe of in-context copying (induction).

    A string ``s`` of ``L`` characters drawn uniformly from the vocabulary (a CPU generator seeded
    with ``seed``: the same strings for every model) is fed twice, ``s s`` (``2L <= block_size``,
    default ``L = block_size // 2``). ``copy1`` is the mean loss (nats) of predicting ``s_2..s_L``
    in the first copy, where nothing can be known, and ``copy2`` of the same characters in the
    second copy, where each is the successor of the previous character's first occurrence; the
    difference ``copy_gain = copy1 - copy2`` (paired over the same targets, with its standard error
    ``copy_gain_se`` over strings) is what the model gains by copying from its context.
    """
    T = model.config.block_size
    L = T // 2 if length is None else length
    if not isinstance(L, int) or L < 2 or 2 * L > T:
        raise ValueError(f"length must be an integer in [2, block_size // 2 = {T // 2}], got {L!r}")
    if not isinstance(n_strings, int) or n_strings < 2:
        raise ValueError(f"n_strings must be an integer >= 2, got {n_strings!r}")
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(model.config.vocab_size, (n_strings, L), generator=g, device=g.device)
    loss = _token_losses(model, torch.cat([s, s], dim=1))  # position t predicts token t + 1
    c1 = loss[:, 0 : L - 1].mean(dim=1)          # targets s_2..s_L of copy 1
    c2 = loss[:, L : 2 * L - 1].mean(dim=1)      # the same targets in copy 2
    d = (c1 - c2).numpy()
    return {"copy1": float(c1.mean()), "copy2": float(c2.mean()), "copy_gain": float(d.mean()),
            "copy_gain_se": float(d.std(ddof=1) / len(d) ** 0.5)}


def context_gain(model: GPT, streams: torch.Tensor, short: int = 8, n_streams: int = 64) -> dict:
    """Loss gain from a long context on held-out text: the same targets scored twice.

    ``streams`` ``(S, T + 1)`` are held-out ``p^(0)`` streams (the first ``n_streams`` are used).
    Targets are the characters at positions ``T/2 + 1 .. T`` of each stream; ``loss_full`` scores
    each given its whole stream prefix (at least ``T/2`` characters), ``loss_short`` given only the
    last ``short`` characters. ``context_gain = loss_short - loss_full`` (nats, paired, with its
    standard error ``context_gain_se`` over streams) is what the model draws from the farther context.
    """
    T = model.config.block_size
    if streams.dim() != 2 or streams.size(1) != T + 1:
        raise ValueError(f"streams must have shape (S, block_size + 1 = {T + 1}), got {tuple(streams.shape)}")
    if not isinstance(short, int) or not 1 <= short <= T // 2:
        raise ValueError(f"short must be an integer in [1, block_size // 2 = {T // 2}], got {short!r}")
    x = streams[:n_streams].long()
    S, h = x.size(0), T // 2
    full = _token_losses(model, x)[:, h:]                     # targets x[:, h+1 .. T]
    idx = torch.arange(h, T)                                  # last context position of each target
    win = torch.stack([x[:, t - short + 1 : t + 2] for t in idx.tolist()], dim=1)  # (S, h, short + 1)
    part = _token_losses(model, win.reshape(-1, short + 1))[:, -1].reshape(S, -1)
    d = (part - full).mean(dim=1).numpy()
    return {"loss_short": float(part.mean()), "loss_full": float(full.mean()), "context_short": short,
            "context_gain": float(d.mean()), "context_gain_se": float(d.std(ddof=1) / len(d) ** 0.5)}


def in_context_metrics(model: GPT, heldout_streams: torch.Tensor) -> dict:
    """Both in-context instruments (:func:`copy_losses`, :func:`context_gain`) with their defaults,
    keys prefixed ``icl_``."""
    out = {**copy_losses(model), **context_gain(model, heldout_streams)}
    return {f"icl_{k}": v for k, v in out.items()}
