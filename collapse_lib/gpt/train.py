"""Training loop: AdamW, linear warm-up then cosine decay, periodic evaluation (nanoGPT style).

Everything random (initialisation is done by the caller; batch positions here) is drawn from an
explicit CPU ``torch.Generator``, so a run is reproducible given its seed, and the batches are the
same on every device. (Dropout masks, used only when ``dropout > 0``, come from the device's own
generator, seeded by ``torch.manual_seed``: those are reproducible on one device, not across.)

Two stopping rules (``TrainConfig.stop``): ``"iters"`` trains exactly ``max_iters`` iterations;
``"best"`` evaluates the held-out split every ``eval_interval`` iterations, keeps the weights with
the best held-out loss, stops after ``patience`` evaluations without improvement and returns the
best weights (the learning-rate schedule still spans ``max_iters``). A fixed number of passes over
the data is set by the caller (``passes``, resolved into ``max_iters`` by the runner).

On a CUDA device (and only there) the forward and backward passes of training run under bf16
autocast (:data:`GPU_AUTOCAST`; TF32 matmuls are enabled by the runner) and batches are copied from
pinned host memory; evaluation stays in float32. These GPU choices change no CPU number; their
speed and their effect on the results were not measured on a GPU by the course (none was available).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from .data import get_batch
from .model import GPT


@dataclass
class TrainConfig:
    """Optimisation hyper-parameters (defaults follow nanoGPT's character-level Shakespeare)."""

    max_iters: int = 1500
    batch_size: int = 16
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 500
    eval_windows: int = 256
    stop: str = "iters"
    patience: int = 3
    passes: float | None = None

    def __post_init__(self) -> None:
        if self.stop not in STOP_RULES:
            raise ValueError(f"stop must be one of {STOP_RULES}, got {self.stop!r}")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be a positive integer, got {self.patience!r}")
        if self.passes is not None and not (isinstance(self.passes, (int, float)) and 0 < self.passes < math.inf):
            raise ValueError(f"passes must be a positive number or None, got {self.passes!r}")
        if self.max_iters <= 0 or self.batch_size <= 0:
            raise ValueError(f"max_iters and batch_size must be positive, got {self.max_iters}, {self.batch_size}")
        if not 0 <= self.warmup_iters <= self.max_iters:
            raise ValueError(f"warmup_iters must lie in [0, max_iters], got {self.warmup_iters}")
        if not 0 < self.min_lr <= self.learning_rate:
            raise ValueError(f"need 0 < min_lr <= learning_rate, got {self.min_lr}, {self.learning_rate}")

    def to_dict(self) -> dict:
        """All fields, except the stopping-rule fields left at their defaults (so configurations
        written before those fields existed keep their fingerprint)."""
        d = asdict(self)
        for k, v in _OPTIONAL_DEFAULTS.items():
            if d.get(k) == v:
                d.pop(k)
        return d


STOP_RULES = ("iters", "best")
#: Autocast dtype of training on CUDA (``None`` switches autocast off).
GPU_AUTOCAST: torch.dtype | None = torch.bfloat16
_OPTIONAL_DEFAULTS = {"stop": "iters", "patience": 3, "passes": None}


def passes_over(data: torch.Tensor, iters: int, batch_size: int, block_size: int) -> float:
    """Passes over the training characters made by ``iters`` iterations of ``batch_size``
    windows of ``block_size`` scored tokens: ``iters * batch_size * block_size / characters``,
    where the characters are ``len(data)`` for a text and ``streams * block_size`` for streams."""
    chars = data.size(0) * block_size if data.dim() == 2 else len(data)
    return iters * batch_size * block_size / chars


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Learning rate at iteration ``it``: linear warm-up over ``warmup_iters`` steps, then cosine
    decay from ``learning_rate`` to ``min_lr`` at ``max_iters``."""
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    span = max(1, cfg.max_iters - cfg.warmup_iters)
    ratio = min(1.0, (it - cfg.warmup_iters) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


@torch.no_grad()
def evaluate_loss(model: GPT, data: torch.Tensor, max_windows: int = 256, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on ``data``.

    1-D ``data`` (a text): up to ``max_windows`` evenly spaced windows of ``block_size`` tokens.
    2-D ``data`` (streams of ``block_size + 1`` tokens): up to ``max_windows`` evenly spaced whole
    streams, every position scored. Deterministic (no RNG).
    """
    T = model.config.block_size
    if data.dim() == 2:
        if data.size(1) != T + 1 or data.size(0) < 1:
            raise ValueError(f"stream data must have shape (streams >= 1, {T + 1}), got {tuple(data.shape)}")
        n = min(max_windows, data.size(0))
        rows = data[torch.linspace(0, data.size(0) - 1, n).long()].long()
        windows = [(rows[i : i + batch_size, :-1], rows[i : i + batch_size, 1:]) for i in range(0, n, batch_size)]
    else:
        n_avail = len(data) - T - 1
        if n_avail < 0:
            raise ValueError(f"data has {len(data)} tokens, need at least block_size + 1 = {T + 1}")
        n = min(max_windows, n_avail + 1)
        starts = torch.linspace(0, n_avail, n).long().tolist()
        windows = []
        for i in range(0, n, batch_size):
            idx = starts[i : i + batch_size]
            windows.append((torch.stack([data[s : s + T] for s in idx]).long(),
                            torch.stack([data[s + 1 : s + T + 1] for s in idx]).long()))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for x, y in windows:
        _, loss = model(x.to(device), y.to(device))
        total += float(loss) * len(x)
        count += len(x)
    model.train(was_training)
    return total / count


def configure_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorm gains, positions)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))


def train(
    model: GPT,
    train_data: torch.Tensor,
    cfg: TrainConfig,
    generator: torch.Generator,
    val_data: dict[str, torch.Tensor] | None = None,
    progress: bool | None = None,
    desc: str = "train",
) -> dict:
    """Train ``model`` in place on random windows of ``train_data``.

    Returns a history dict with the iterations of each evaluation, the train loss (smoothed),
    the validation losses for each entry of ``val_data``, wall time and tokens/s, the iterations
    trained (``iters_trained``) and, for ``cfg.stop == "best"``, the iteration whose weights are
    returned (``best_iter``: the best loss on the first entry of ``val_data``).
    ``progress=None`` shows a tqdm bar only when stderr is a terminal.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    if cfg.stop == "best" and not val_data:
        raise ValueError("stop='best' needs val_data (the held-out split whose best loss is kept)")
    device = next(model.parameters()).device
    T = model.config.block_size
    opt = configure_optimizer(model, cfg)
    model.train()
    hist: dict = {"iter": [], "train_loss": [], "val": {k: [] for k in (val_data or {})}}
    ema = None
    best_loss, best_iter, best_state, bad = math.inf, None, None, 0
    key = next(iter(val_data)) if val_data else None
    it = -1
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.max_iters), desc=desc, disable=not progress, leave=False)
    for it in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(it, cfg)
        x, y = get_batch(train_data, cfg.batch_size, T, generator)
        if device.type == "cuda":
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
            amp = torch.autocast("cuda", dtype=GPU_AUTOCAST) if GPU_AUTOCAST else contextlib.nullcontext()
        else:
            amp = contextlib.nullcontext()
        with amp:
            _, loss = model(x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        lv = loss.item()
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        last = it == cfg.max_iters - 1
        if (it + 1) % cfg.eval_interval == 0 or last:
            hist["iter"].append(it + 1)
            hist["train_loss"].append(ema)
            for k, d in (val_data or {}).items():
                hist["val"][k].append(evaluate_loss(model, d, cfg.eval_windows))
            bar.set_postfix(loss=f"{ema:.3f}")
            if cfg.stop == "best":
                v = hist["val"][key][-1]
                if v < best_loss:
                    best_loss, best_iter, bad = v, it + 1, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
                    if bad >= cfg.patience:
                        break
    bar.close()
    wall = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    hist["wall_s"] = wall
    hist["iters_trained"] = it + 1
    hist["best_iter"] = best_iter
    hist["tokens_per_s"] = (it + 1) * cfg.batch_size * T / wall
    model.eval()
    return hist
