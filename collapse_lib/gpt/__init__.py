"""Character-level GPT experiments on Shakespeare (Section 4 of Seddik et al., 2024).

Modules: ``data`` (corpus, tokenizer, batches), ``model`` (GPT + KV cache), ``sample``
(cached and naive samplers, top-k), ``train`` (AdamW + cosine schedule), ``runner``
(recursive training with checkpoints and resume), ``bench`` (benchmarks), ``cli``.
Command line: ``python -m collapse_lib.gpt run --out DIR [--quick] ...`` and ``... bench``.
"""

from .data import ALPHABET, CharTokenizer, load_corpus_text
from .model import GPT, GPTConfig, KVCache
from .measure import context_probs, distribution_metrics
from .runner import Chain, RunConfig, Runner, quick_config
from .sample import sample, sample_naive, sample_streams, top_k_filter
from .train import TrainConfig, evaluate_loss, train

__all__ = ["ALPHABET", "CharTokenizer", "load_corpus_text", "GPT", "GPTConfig", "KVCache", "RunConfig",
           "Runner", "Chain", "context_probs", "distribution_metrics", "quick_config", "sample",
           "sample_naive", "sample_streams", "top_k_filter", "TrainConfig",
           "evaluate_loss", "train"]
