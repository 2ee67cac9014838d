"""The instruments of the experiment: what is measured on every generation's model and sample.

Both kinds of language model in the chapter (the GPT and the counting n-gram model of
:mod:`collapse_lib.gpt.ngram`) are measured by the same functions, on the same inputs:

* a matrix ``P`` of next-character distributions, one row per evaluation context ``c``
  (:func:`distribution_metrics`, computed by :mod:`collapse_lib.metrics`): drift ``(1/K) sum_c ||P(.|c) - Q(.|c)||_1`` to reference models,
  mean entropy, mean largest probability ``||P(.|c)||_inf`` and the mean *support*
  ``|{x : P(x|c) > threshold}|``, the number of characters still given a real chance;
* the generation's sample, a ``(streams, T + 1)`` array of token ids (:func:`sample_metrics`):
  distinct 4-gram rate, rare-character rate, and its cross-entropy under ``p^(0)``.
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
