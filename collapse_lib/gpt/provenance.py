"""Write ``results/gpt/README.md`` from a finished run (numbers are read, never typed by hand).

    python -m collapse_lib.gpt.provenance RUN_DIR results/gpt
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .report import floor, load_run, ngram_summary, seed_summary


def _pm(mean: float, se: float) -> str:
    return f"{mean:.3f} ± {se:.3f}" if np.isfinite(se) else f"{mean:.3f} (one seed)"


def chain_rows(run: dict) -> list[str]:
    """One Markdown table row per chain: seeds, final drift (± s.e. over seeds), floor band, and
    the trends of drift from p^(0), entropy, largest probability, support, distinct 4-grams."""
    G = run["config"]["generations"]
    rows = []
    for c in run["config"]["chains"]:
        name = c["name"]
        cells = [name, str(len(c["seeds"]))]
        _, d, se = seed_summary(run, name, "l1_to_p1")
        cells.append(_pm(d[-1], se[-1]))
        fl = floor(run, c["n"])
        cells.append(f"{fl['min']:.3f}-{fl['max']:.3f}" if fl else "-")
        for key in ("l1_to_p0", "entropy", "max_prob", "support", "distinct4", "xent_p0", "loss_real"):
            _, v, _ = seed_summary(run, name, key)
            cells.append(f"{v[0]:.3f} → {v[G - 1]:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def write_readme(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy ``metrics.json``, ``config.json`` and ``ngram.json`` (when present) from ``run_dir`` to
    ``dest`` and write a README with the reproduction commands, machine, timings and summary tables."""
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "config.json", "ngram.json"):
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, dest / name)
    run = load_run(dest)
    cfg, env, stages = run["config"], run["environment"], run["stages"]
    tr, mo = cfg["train"], cfg["model"]
    walls = run.get("invocation_wall_s", {})
    cpu = sum(s.get("cpu_s", 0.0) for s in stages.values())
    stage_wall = [s["wall_s"] for k, s in stages.items() if k != "p0" and s.get("train_s", 0) > 0]
    p0 = stages.get("p0", {})
    lines = [
        "# GPT recursive-training results (chapter 9; Figure 3 and Section 4 of Seddik et al., 2024)",
        "",
        "Produced by `collapse_lib.gpt`. Reproduce (each command resumes where it stopped; a run",
        "directory that holds another configuration is refused):",
        "",
        "```",
        "python -m collapse_lib.gpt run --out runs/gpt_full              # all chains, seeds and the floor",
        "python -m collapse_lib.gpt ngram --out runs/gpt_full            # the counting n-gram bridge",
        "python -m collapse_lib.gpt.provenance runs/gpt_full results/gpt # this README + the JSON files",
        "```",
        "",
        "Checkpoints stay in `runs/` (not in git). Files here: `metrics.json` (configuration, machine,",
        "the metrics of every stage, the retraining floor), `config.json`, `ngram.json` (count models).",
        "",
        "## Configuration",
        "",
        f"- model: {mo['n_layer']} layers, {mo['n_head']} heads, embedding {mo['n_embd']}, context {mo['block_size']}; "
        f"every generation (p^(0) included) trained from scratch with the same recipe: {tr['max_iters']} iterations, "
        f"batch {tr['batch_size']}, AdamW lr {tr['learning_rate']} → {tr['min_lr']} (warm-up {tr['warmup_iters']}, cosine), "
        f"held-out loss every {tr['eval_interval']} iterations",
        f"- sampling rule (making data and measuring): independent streams of {mo['block_size'] + 1} characters, a newline "
        f"followed by {mo['block_size']} characters each drawn given the whole stream so far; training batches are whole streams",
        f"- real set: N = {cfg['n_real']:,} characters from p^(0); {cfg['n_contexts']} evaluation contexts, each a prefix "
        f"(uniform length 1-{mo['block_size']}) of its own p^(0) stream; support threshold {cfg['support_threshold']}",
        "- chains: " + "; ".join(f"{c['name']} ({c['scheme']}, n = {c['n']:,}, T = {c['temperature']}, seeds "
                                 f"{', '.join(map(str, c['seeds']))})" for c in cfg["chains"]),
        f"- generations per chain: {cfg['generations']}; generation-1 seeds per sample size (floor): {cfg['floor_seeds']}; "
        f"run seed {cfg['seed']}",
        "",
        "## Machine and time",
        "",
        f"- {env['platform']}, {env['cpu_count']} CPUs ({env['processor']}), torch {env['torch']}, "
        f"{cfg['workers']} worker processes × {cfg['threads']} thread(s), Python {env['python']}, device {env['device']}",
        f"- wall time of the run: {sum(walls.values()) / 60:.1f} min over {len(walls)} invocation(s); CPU time of all "
        f"stages: {cpu / 60:.1f} min (so {cpu / 60 / cfg['workers']:.1f} min of wall time on {cfg['workers']} otherwise idle cores)",
        f"- p^(0): {p0.get('wall_s', float('nan')):.0f} s; training stages: {np.mean(stage_wall):.0f} s each on average "
        f"(min {min(stage_wall):.0f}, max {max(stage_wall):.0f})" if stage_wall else "- no training stage yet",
        "",
        "## Results",
        "",
        f"p^(0): loss on real Shakespeare {p0.get('loss_real', float('nan')):.3f}, mean entropy "
        f"{p0.get('entropy', float('nan')):.3f}, distinct 4-gram rate of the real set {p0.get('distinct4', float('nan')):.3f}.",
        "",
        "Per chain (means over seeds; ± one standard error over seeds; trends from generation 1 to the last):",
        "",
        "| chain | seeds | drift from p^(1), last gen. | floor band | drift from p^(0) | entropy | largest prob. | "
        "support | distinct 4-grams | cross-entropy under p^(0) | loss on Shakespeare |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *chain_rows(run),
        "",
    ]
    if "ngram" in run:
        ng = run["ngram"]
        lines += ["## Count models (`ngram.json`)", "",
                  f"Orders k = {', '.join(map(str, ng['orders']))}, {ng['seeds']} chains each; trends from generation 1 "
                  "to the last, and the bridge: measured against predicted (B1/B2) mean S over the generation-1 "
                  "contexts alive throughout, last generation.", "",
                  "| k | chain | entropy | support (p > 0) | distinct 4-grams | S measured | S predicted | ± s.e. |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, e in ng["chains"].items():
            _, ent, _ = ngram_summary(run, e["k"], e["chain"], "entropy")
            _, sup, _ = ngram_summary(run, e["k"], e["chain"], "support_exact")
            _, d4, _ = ngram_summary(run, e["k"], e["chain"], "distinct4")
            b = e["bridge"]
            lines.append(f"| {e['k']} | {e['chain']} | {ent[0]:.3f} → {ent[-1]:.3f} | {sup[0]:.2f} → {sup[-1]:.2f} | "
                         f"{d4[0]:.3f} → {d4[-1]:.3f} | {b['measured'][-1]:.4f} | {b['predicted'][-1]:.4f} | "
                         f"{b['se'][-1]:.4f} |")
        ratios = {key: (e["bridge"]["measured"][-1] - e["bridge"]["measured"][0])
                  / (e["bridge"]["predicted"][-1] - e["bridge"]["predicted"][0]) for key, e in ng["chains"].items()}
        warm = [v for key, v in ratios.items() if not key.endswith("T0.8") and not key.startswith("k1/")]
        cold = [v for key, v in ratios.items() if key.endswith("T0.8")]
        lines += ["", "**What the bridge shows.** A counting n-gram model on the same real set is the paper's estimator, "
                  "and with unbiased sampling it follows Theorem 1 (and the corrected Theorem 2) context by context: "
                  f"for contexts of two or more characters the measured change of S is {min(warm):.2f}-{max(warm):.2f} "
                  "times the change predicted from each context's own counts, while at temperature 0.8 it is "
                  f"{min(cold):.2f}-{max(cold):.2f} times. The GPT behaves like this estimator only when it memorises "
                  "(n = 20k) or samples cold (T = 0.8); at n = 100k with unbiased sampling it drifts by smoothing "
                  "(more distinct 4-grams and tail mass, less typical of p^(0)), which the paper's statistical model "
                  "does not describe.", ""]
    out = dest / "README.md"
    out.write_text("\n".join(lines))
    return out


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        sys.exit("usage: python -m collapse_lib.gpt.provenance RUN_DIR DEST_DIR")
    print(write_readme(sys.argv[1], sys.argv[2]))
