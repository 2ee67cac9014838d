"""Benchmarks: KV-cache sampler vs full recomputation, and training throughput.

Fairness of the sampler comparison: the same model (the experiment's architecture, seeded
random weights: speed does not depend on the weights), the same batch of prompts, the same
number of new tokens, the same re-window rule (see :mod:`collapse_lib.gpt.sample`) and the same
random generator seed, so both samplers produce the same tokens (checked and reported). The only
difference is that the naive sampler recomputes the whole window at every step. For reference we
also time nanoGPT's rule (``keep = block_size``: always the last ``block_size`` tokens), which has
no use for a cache.
"""

from __future__ import annotations

import time

import torch

from .model import GPT, GPTConfig
from .runner import environment
from .sample import sample, sample_naive
from .train import TrainConfig, train


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_sampler(config: GPTConfig | None = None, batch: int = 64, n_tokens: int = 1024, seed: int = 0,
                  keep: int | None = None, naive_crop: bool = True) -> dict:
    """Tokens/s of :func:`sample` (KV cache) and :func:`sample_naive` on the same work."""
    config = config or GPTConfig()
    torch.manual_seed(seed)
    model = GPT(config).eval()
    prompt = torch.zeros(batch, 1, dtype=torch.long)
    # cached run before and after the naive one, so that a change in machine load during the
    # (long) naive run affects both sides; the cached time is the mean of the two
    gen = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    t_cache1, a = _timed(lambda: sample(model, prompt, n_tokens, generator=gen(), keep=keep))
    t_naive, b = _timed(lambda: sample_naive(model, prompt, n_tokens, generator=gen(), keep=keep))
    t_cache2, a2 = _timed(lambda: sample(model, prompt, n_tokens, generator=gen(), keep=keep))
    t_cache = 0.5 * (t_cache1 + t_cache2)
    if not torch.equal(a, a2):
        raise RuntimeError("the cached sampler is not deterministic for a fixed seed")
    n = batch * n_tokens
    res = {
        "batch": batch,
        "new_tokens_per_stream": n_tokens,
        "block_size": config.block_size,
        "keep": config.block_size // 2 if keep is None else keep,
        "cached_tokens_per_s": n / t_cache,
        "cached_seconds": [t_cache1, t_cache2],
        "naive_seconds": t_naive,
        "naive_tokens_per_s": n / t_naive,
        "speedup": t_naive / t_cache,
        "identical_tokens_fraction": float((a == b).float().mean()),
    }
    if naive_crop:
        m = max(1, n_tokens // 4)  # stationary rate: a quarter of the tokens suffices
        t_crop, _ = _timed(lambda: sample_naive(model, prompt, m, generator=torch.Generator().manual_seed(seed),
                                                keep=config.block_size))
        res["naive_nanogpt_crop_tokens_per_s"] = batch * m / t_crop
        res["speedup_vs_nanogpt_crop"] = res["cached_tokens_per_s"] / res["naive_nanogpt_crop_tokens_per_s"]
    return res


def bench_training(config: GPTConfig | None = None, batch_size: int = 16, iters: int = 30, seed: int = 0) -> dict:
    """Training throughput (tokens/s) of the experiment's configuration on random tokens."""
    config = config or GPTConfig()
    torch.manual_seed(seed)
    model = GPT(config)
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(config.vocab_size, (100_000,), generator=g, device=g.device)
    hist = train(model, data, TrainConfig(max_iters=iters, batch_size=batch_size, warmup_iters=0, eval_interval=10**9),
                 torch.Generator().manual_seed(seed), progress=False)
    return {"batch_size": batch_size, "iters": iters, "tokens_per_s": hist["tokens_per_s"],
            "iters_per_s": iters / hist["wall_s"], "params": model.num_params()}


def bench_configs(devices: list[str] | None = None, iters: dict | None = None, streams: dict | None = None,
                  seed: int = 0) -> list[dict]:
    """Training tokens/s and sampling characters/s of the committed configuration and of the
    paper's (:func:`~collapse_lib.gpt.runner.paper_config`) on every available device, side by side.

    Training: ``iters[name]`` iterations of the configuration's own batch on random tokens (the
    speed does not depend on the data), after one warm-up iteration. Sampling: ``streams[name]``
    streams by the experiment's rule (:func:`~collapse_lib.gpt.sample.sample_streams`)."""
    from .runner import RunConfig, paper_config
    from .sample import sample_streams

    devices = devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    iters = iters or {"committed": 20, "paper": 3}
    streams = streams or {"committed": 256, "paper": 32}
    rows = []
    for name, cfg in (("committed", RunConfig()), ("paper", paper_config())):
        for dev in devices:
            torch.manual_seed(seed)
            model = GPT(cfg.model).to(dev)
            g = torch.Generator().manual_seed(seed)
            data = torch.randint(cfg.model.vocab_size, (200_000,), generator=g, device=g.device)
            tr = cfg.train
            warm = TrainConfig(**{**tr.to_dict(), "max_iters": 1, "warmup_iters": 0, "eval_interval": 10**9})
            train(model, data, warm, g, progress=False)
            run = TrainConfig(**{**tr.to_dict(), "max_iters": iters[name], "warmup_iters": 0, "eval_interval": 10**9})
            hist = train(model, data, run, g, progress=False)
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = sample_streams(model, streams[name], 0, torch.Generator().manual_seed(seed))
            t_sample = time.perf_counter() - t0
            rows.append({"config": name, "device": dev, "params": model.num_params(),
                         "batch": tr.batch_size, "context": cfg.model.block_size, "train_iters": iters[name],
                         "train_tokens_per_s": hist["tokens_per_s"], "train_s_per_iter": hist["wall_s"] / iters[name],
                         "sample_chars_per_s": (out.size(1) - 1) * out.size(0) / t_sample,
                         "sample_streams": streams[name],
                         "est_train_s_per_generation": hist["wall_s"] / iters[name] * tr.max_iters})
    return rows


def run_benchmarks(batch: int = 64, n_tokens: int = 1024) -> dict:
    """Both benchmarks on the experiment's default architecture, with environment info."""
    return {
        "sampler": bench_sampler(batch=batch, n_tokens=n_tokens),
        "training": bench_training(),
        "environment": environment(),
    }
