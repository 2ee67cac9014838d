"""Batched sampling from :class:`~collapse_lib.gpt.model.GPT`, with and without a KV cache.

Context window beyond ``block_size``
------------------------------------
The model has learned position embeddings for ``block_size`` positions only, so a long stream
must be generated from a window of the most recent tokens. Cached keys cannot simply be rolled:
a key computed at absolute position ``j`` with the tokens before it as context is not the key the
model would compute for the same token at position 0 of a shorter window. Both samplers below
therefore follow the same *re-window* rule, which makes them produce exactly the same
distribution:

* the context of the next token is ``tokens[w0:]`` where the window start ``w0`` only moves
  when the window would exceed ``block_size``: then ``w0`` jumps so that the last ``keep``
  tokens remain (``1 <= keep <= block_size``; default ``block_size // 2``).

So the context length cycles through ``keep .. block_size``. ``keep = block_size`` is nanoGPT's
rule (always the last ``block_size`` tokens), for which a cache is useless. The cached sampler
re-fills its cache with one forward pass of ``keep`` tokens at each jump and otherwise feeds one
token per step; :func:`sample_naive` recomputes the whole window at every step. For identical
random draws both give the same tokens (up to float round-off in the probabilities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import GPT, KVCache


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row and set the others to ``-inf`` (ties at the
    k-th value are kept). ``k=None`` returns the logits unchanged."""
    if k is None:
        return logits
    if not 1 <= k:
        raise ValueError(f"top_k must be a positive integer, got {k}")
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def draw_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``probs`` ``(B, V)``, shape ``(B, 1)``, on ``probs``' device.

    **Device rule of the package.** Every random draw is made on the device of its generator,
    which is a CPU ``torch.Generator`` everywhere in :mod:`collapse_lib.gpt` (``None`` means the
    CPU default generator): the probabilities are copied to the CPU, drawn from there, and the
    indices copied back. So a seed gives the same stream of draws on a CPU and on a GPU (equal
    tokens wherever the two devices compute the same probabilities up to round-off), and on a CPU
    nothing is copied: the draws are bit for bit those of ``torch.multinomial(probs, 1, generator)``.
    """
    gdev = generator.device if generator is not None else torch.device("cpu")
    idx = torch.multinomial(probs.to(gdev), 1, generator=generator)
    return idx.to(probs.device)


def logits_to_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """Sampling distribution ``softmax(top_k(logits) / temperature)`` over the last axis."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return F.softmax(top_k_filter(logits.float() / temperature, top_k), dim=-1)


def _check(model: GPT, prompt: torch.Tensor, n_new: int, keep: int | None) -> int:
    if prompt.dim() != 2 or prompt.size(1) < 1:
        raise ValueError(f"prompt must have shape (batch, t) with t >= 1, got {tuple(prompt.shape)}")
    if n_new < 0:
        raise ValueError(f"n_new must be non-negative, got {n_new}")
    bs = model.config.block_size
    keep = bs // 2 if keep is None else keep
    if not 1 <= keep <= bs:
        raise ValueError(f"keep must lie in [1, block_size={bs}], got {keep}")
    return keep


def _window_start(length: int, w0: int, block_size: int, keep: int) -> int:
    """Window start after the stream has grown to ``length`` tokens (the re-window rule)."""
    if length - w0 > block_size:
        return length - keep
    return w0


@torch.inference_mode()
def sample(
    model: GPT,
    prompt: torch.Tensor,
    n_new: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    keep: int | None = None,
    return_probs: bool = False,
):
    """Extend each row of ``prompt`` ``(B, t)`` by ``n_new`` sampled tokens using a KV cache.

    Returns the ``(B, t + n_new)`` tokens, and with ``return_probs`` also the ``(B, n_new, V)``
    sampling distributions used at each step.
    """
    keep = _check(model, prompt, n_new, keep)
    bs = model.config.block_size
    B = prompt.size(0)
    device = prompt.device
    out = torch.empty(B, prompt.size(1) + n_new, dtype=torch.long, device=device)
    out[:, : prompt.size(1)] = prompt
    length = prompt.size(1)
    w0 = _window_start(length, 0, bs, keep)
    cache = KVCache(model.config, B, device, dtype=next(model.parameters()).dtype)
    logits, _ = model(out[:, w0:length], cache=cache)
    probs_all = []
    for _ in range(n_new):
        probs = logits_to_probs(logits[:, -1, :], temperature, top_k)
        if return_probs:
            probs_all.append(probs)
        nxt = draw_categorical(probs, generator)
        out[:, length] = nxt[:, 0]
        length += 1
        if length == out.size(1):
            break
        new_w0 = _window_start(length, w0, bs, keep)
        if new_w0 != w0:  # window jump: refill the cache from scratch
            w0 = new_w0
            cache.reset()
            logits, _ = model(out[:, w0:length], cache=cache)
        else:
            logits, _ = model(nxt, cache=cache)
    if return_probs:
        return out, torch.stack(probs_all, dim=1) if probs_all else torch.empty(B, 0, model.config.vocab_size)
    return out


@torch.inference_mode()
def sample_naive(
    model: GPT,
    prompt: torch.Tensor,
    n_new: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    keep: int | None = None,
    forced: torch.Tensor | None = None,
    return_probs: bool = False,
):
    """Reference sampler: recompute the full window ``tokens[w0:]`` at every step (no cache).

    With ``forced`` ``(B, n_new)`` the given tokens are appended instead of sampled (teacher
    forcing), which lets a test compare step-by-step probabilities with :func:`sample`.
    """
    keep = _check(model, prompt, n_new, keep)
    bs = model.config.block_size
    out = torch.cat([prompt, torch.empty(prompt.size(0), n_new, dtype=torch.long, device=prompt.device)], 1)
    length = prompt.size(1)
    w0 = _window_start(length, 0, bs, keep)
    probs_all = []
    for i in range(n_new):
        logits, _ = model(out[:, w0:length])
        probs = logits_to_probs(logits[:, -1, :], temperature, top_k)
        if return_probs:
            probs_all.append(probs)
        nxt = forced[:, i] if forced is not None else draw_categorical(probs, generator)[:, 0]
        out[:, length] = nxt
        length += 1
        w0 = _window_start(length, w0, bs, keep)
    if return_probs:
        return out, torch.stack(probs_all, dim=1) if probs_all else torch.empty(prompt.size(0), 0, model.config.vocab_size)
    return out


def sample_streams(
    model: GPT,
    n_streams: int,
    start_token: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    batch: int = 2048,
) -> torch.Tensor:
    """``n_streams`` independent streams of ``block_size + 1`` tokens, shape ``(n_streams, T + 1)``.

    **The sampling rule of the experiment.** Each stream is a fresh document: ``start_token``
    followed by ``T = block_size`` characters, the ``t``-th drawn from ``p(. | x_0 .. x_{t-1})``,
    the model's distribution given *everything* before it in the stream. No context is ever cut
    or re-windowed, so the KV cache is exact, and the contexts a stream is sampled with are the
    stream prefixes on which the next generation trains (2-D data in
    :func:`~collapse_lib.gpt.data.get_batch`) and on which the drift is measured.
    """
    if not isinstance(n_streams, int) or n_streams <= 0:
        raise ValueError(f"n_streams must be a positive integer, got {n_streams!r}")
    if batch <= 0:
        raise ValueError(f"batch must be positive, got {batch}")
    device = next(model.parameters()).device
    T = model.config.block_size
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, n_streams, batch):
        b = min(batch, n_streams - i)
        prompt = torch.full((b, 1), start_token, dtype=torch.long, device=device)
        out.append(sample(model, prompt, T, temperature, None, generator, keep=T).cpu())
    model.train(was_training)
    return torch.cat(out).to(torch.uint8)
