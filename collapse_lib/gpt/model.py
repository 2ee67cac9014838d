"""A small decoder-only GPT in the style of nanoGPT (Karpathy), with an optional KV cache.

Architecture (pre-norm transformer, as in GPT-2):

    x_0 = wte[idx] + wpe[positions]
    x_{l+1} = x_l' + MLP(LN(x_l')),  x_l' = x_l + Attn(LN(x_l))     for l = 0..n_layer-1
    logits = lm_head(LN(x_L))       (lm_head shares its weight with wte when tie_weights)

``Attn`` is causal multi-head self-attention. The model defines, for every context
``c = (x_1..x_t)`` with ``t <= block_size``, a next-character distribution
``p(. | c) = softmax(logits[t])``: the object whose drift across generations we measure.

The KV cache (:class:`KVCache`) stores each layer's keys and values so that sampling one more
token costs one token's worth of computation instead of re-running the whole context.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (defaults: nanoGPT's Shakespeare-on-CPU config)."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Per-layer key/value buffers for ``B`` streams and up to ``block_size`` positions.

    Keys are stored transposed, ``kt[layer]`` of shape ``(B * n_head, head_dim, block_size)``,
    values as ``v[layer]`` of shape ``(B * n_head, block_size, head_dim)``: one new query then
    attends to the cache with two contiguous batched matrix products (``q @ kt``, ``att @ v``),
    which on a CPU is several times faster than attention over a strided slice of the cache.
    ``length`` is the number of positions already stored. Supported updates: a *prefill* of
    ``T`` tokens into an empty cache, or single-token steps while ``length < block_size``.
    """

    def __init__(self, config: GPTConfig, batch_size: int, device, dtype=torch.float32):
        hd = config.n_embd // config.n_head
        bh, T = batch_size * config.n_head, config.block_size
        self.kt = [torch.zeros(bh, hd, T, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(bh, T, hd, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0
        self.capacity = T

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hd = C // self.n_head
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        if cache is None or cache.length == 0:
            if cache is not None:  # prefill: store keys (transposed) and values for later steps
                cache.kt[layer][:, :, :T] = k.reshape(B * self.n_head, T, hd).transpose(1, 2)
                cache.v[layer][:, :T] = v.reshape(B * self.n_head, T, hd)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:  # one new token (T == 1) at position `start`: it attends to positions 0..start
            start, kt, vc = cache.length, cache.kt[layer], cache.v[layer]
            kt[:, :, start] = k.reshape(B * self.n_head, hd)
            vc[:, start] = v.reshape(B * self.n_head, hd)
            mask = torch.zeros(1, 1, cache.capacity, device=x.device, dtype=x.dtype)
            mask[..., start + 1 :] = float("-inf")  # unused slots of the buffer get weight 0
            att = torch.baddbmm(mask, q.reshape(B * self.n_head, 1, hd), kt, alpha=hd**-0.5)
            y = torch.bmm(F.softmax(att, dim=-1), vc).view(B, self.n_head, 1, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer language model over a character vocabulary."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, vocab)`` for token ids ``idx`` ``(B, T)``, and the mean cross-entropy
        against ``targets`` when given. With ``cache``, ``idx`` continues the cached positions
        (a prefill into an empty cache, or one token) and the cache is advanced."""
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} exceeds block_size={self.config.block_size}")
        if cache is not None and start > 0 and T != 1:
            raise ValueError("a non-empty KV cache can only be extended one token at a time")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length = start + T
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def next_token_probs(self, contexts: torch.Tensor) -> torch.Tensor:
        """``p(. | c)`` for each row ``c`` of ``contexts`` ``(B, t)``, ``t <= block_size``: the
        softmax of the logits at the last position, shape ``(B, vocab)``."""
        logits, _ = self(contexts)
        return F.softmax(logits[:, -1, :].float(), dim=-1)
