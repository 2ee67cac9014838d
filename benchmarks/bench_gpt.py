"""Benchmark the GPT code: KV-cache sampler vs full recomputation (same model, batch, rule and
seed, side by side), and training throughput; with --configs, training tokens/s and sampling
characters/s of the committed and the paper's configuration on every available device. Usage:

    .venv/bin/python benchmarks/bench_gpt.py [--batch 64] [--tokens 1024] [--json results/gpt/bench.json]
    .venv/bin/python benchmarks/bench_gpt.py --configs [--json results/gpt/bench_configs.json]

Equivalent to ``python -m collapse_lib.gpt bench``.
"""

import sys

from collapse_lib.gpt.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
