"""Write ``results/gpt/README.md`` from a finished run (numbers are read, never typed by hand).

    python -m collapse_lib.gpt.provenance RUN_DIR results/gpt
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def _row(r: dict) -> str:
    return (f"| {r['generation']} | {r['l1_to_p1']:.4f} ± {r.get('l1_to_p1_se', 0):.4f} | {r['l1_to_p0']:.4f} | "
            f"{r['val_loss_gen0']:.4f} | {r['val_loss_real']:.4f} | {r['entropy']:.3f} | "
            f"{r['train_s']:.0f} + {r['sample_s']:.0f} + {r['eval_s']:.0f} |")


def write_readme(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy ``metrics.json``, ``config.json`` (and ``floor.json`` if present) from ``run_dir`` to
    ``dest`` and write a README with the reproduction command, machine and timings."""
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "config.json", "floor.json"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, dest / name)
    res = json.loads((dest / "metrics.json").read_text())
    cfg, env, R = res["config"], res["environment"], res["results"]
    g0 = R["gen0"]
    stages = [g0, R["gen1"]] + [r for rows in R["schemes"].values() for r in rows if r["generation"] > 1]
    per = [r["train_s"] + r["sample_s"] + r["eval_s"] for r in stages[1:]]
    total = sum(r["train_s"] + r["sample_s"] + r["eval_s"] for r in stages)
    lines = [
        "# GPT recursive-training results (Figure 3 of Seddik et al., 2024)",
        "",
        "Produced by `collapse_lib.gpt` (chapter 9 of the course). Reproduce with",
        "",
        "```",
        "python -m collapse_lib.gpt run --out runs/gpt_full --threads 1   # resumable: rerun the same command",
        "python -m collapse_lib.gpt floor --out runs/gpt_full --replicas 2  # optional: training-noise floor",
        "python -m collapse_lib.gpt bench --json results/gpt/bench.json    # sampler / training benchmark",
        "python -m collapse_lib.gpt.provenance runs/gpt_full results/gpt    # this README + copies of the JSON",
        "```",
        "",
        "Checkpoints stay in the run directory (`runs/`, not in git). Files here: `metrics.json` (all",
        "metrics per generation and scheme, configuration, library versions, machine, timings),",
        "`config.json`, optionally `floor.json` and `bench.json`.",
        "",
        "## Configuration",
        "",
        f"- model: {cfg['model']['n_layer']} layers, {cfg['model']['n_head']} heads, embedding {cfg['model']['n_embd']}, "
        f"context {cfg['model']['block_size']}, dropout {cfg['model']['dropout']}, tied embeddings: {cfg['model']['tie_weights']}",
        f"- training: AdamW lr {cfg['train']['learning_rate']} -> {cfg['train']['min_lr']} (warm-up {cfg['train']['warmup_iters']}, cosine), "
        f"batch {cfg['train']['batch_size']}, generation 0: {cfg['gen0_iters']} iterations, later generations: {cfg['train']['max_iters']}",
        f"- data: real set N = {cfg['n_real']:,} characters sampled from generation 0; n = {cfg['n_synth']:,} synthetic characters per generation; "
        f"partially synthetic = real set + synthetic (alpha = n/(N+n) = {cfg['n_synth'] / (cfg['n_real'] + cfg['n_synth']):.2f})",
        f"- sampling: temperature {cfg['temperature']}, top-k {cfg['top_k']}, {cfg['sample_streams']} streams; "
        f"K = {cfg['n_contexts']} contexts of {cfg['model']['block_size']} characters from generation 0; seed {cfg['seed']}",
        "",
        "## Machine and time",
        "",
        f"- {env['platform']}, {env['cpu_count']} CPUs ({env['processor']}), torch {env['torch']} with {env['torch_threads']} thread(s), "
        f"Python {env['python']}, device {env['device']}; the machine was shared with other jobs.",
        f"- generation 0: {g0['train_s']:.0f} s training ({g0['tokens_per_s']:.0f} tokens/s) + {g0['sample_s']:.0f} s sampling",
        f"- later generations: {sum(per) / len(per):.0f} s each on average (train + sample + evaluate), min {min(per):.0f} s, max {max(per):.0f} s",
        f"- total over all stages: {total / 60:.1f} min",
        "",
        "## Results",
        "",
        f"Generation 0: loss on held-out generation-0 text {g0['val_loss_gen0']:.4f}, on Shakespeare validation {g0['val_loss_real']:.4f}, "
        f"entropy {g0['entropy']:.3f}.",
        "",
    ]
    for scheme, rows in R["schemes"].items():
        lines += [f"### {scheme} synthetic", "",
                  "| m | L1 to p^(1) (± s.e.) | L1 to p^(0) | loss gen-0 text | loss Shakespeare | entropy | time (s) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_row(r) for r in rows]
        lines.append("")
    if (dest / "floor.json").exists():
        fl = json.loads((dest / "floor.json").read_text())
        vals = ", ".join(f"{r['l1_to_p1']:.4f}" for r in fl["replicas"])
        lines += ["## Training-noise floor", "",
                  f"Generation 1 retrained on the same real set with other seeds: L1 to p^(1) = {vals}.", ""]
    if (dest / "bench.json").exists():
        b = json.loads((dest / "bench.json").read_text())
        sm, tr = b["sampler"], b["training"]
        lines += ["## Benchmark (`bench.json`)", "",
                  f"Same model (the configuration above), batch {sm['batch']}, {sm['new_tokens_per_stream']} new tokens per "
                  f"stream, re-window rule keep = {sm['keep']} for both samplers (identical tokens: "
                  f"{sm['identical_tokens_fraction']:.3f}), torch threads {b['environment']['torch_threads']}:", "",
                  f"- KV cache: {sm['cached_tokens_per_s']:,.0f} tokens/s; full recomputation of the window at every step: "
                  f"{sm['naive_tokens_per_s']:,.0f} tokens/s; speed-up **{sm['speedup']:.1f}x**",
                  f"- nanoGPT's rule (always recompute the last {sm['block_size']} tokens): "
                  f"{sm['naive_nanogpt_crop_tokens_per_s']:,.0f} tokens/s, {sm['speedup_vs_nanogpt_crop']:.1f}x slower than the cached sampler",
                  f"- training: {tr['tokens_per_s']:,.0f} tokens/s at batch {tr['batch_size']} ({tr['params']:,} parameters)", ""]
    out = dest / "README.md"
    out.write_text("\n".join(lines))
    return out


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        sys.exit("usage: python -m collapse_lib.gpt.provenance RUN_DIR DEST_DIR")
    print(write_readme(sys.argv[1], sys.argv[2]))
