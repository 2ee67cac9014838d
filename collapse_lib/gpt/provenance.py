"""Write ``results/gpt/README.md`` from a finished run (numbers are read, never typed by hand).

    python -m collapse_lib.gpt.provenance RUN_DIR results/gpt
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .report import chain_floor, floor, load_run, ngram_summary, seed_summary, values


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
        "# GPT recursive-training results (chapter 10; Figure 3 and Section 4 of Seddik et al., 2024)",
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
        lines += ngram_lines(run)
    if (dest / "controls" / "metrics.json").is_file():  # keep the controls run's section
        lines += ["", *controls_lines(load_run(dest / "controls"), main=run)]
    out = dest / "README.md"
    out.write_text("\n".join(lines))
    return out


def ngram_lines(run: dict) -> list[str]:
    """The count-model part of the README (``run["ngram"]``, from ``ngram.json``): one row per order
    and chain with its trends and the bridge at the last generation, measured against the formula
    that applies to the chain (labelled: (B1) unbiased, (B1T) tempered, (B2) partially synthetic;
    :data:`collapse_lib.gpt.ngram.FORMULAS`), and what the bridge shows."""
    from .report import bridge_rows

    ng = run["ngram"]
    formulas = ng.get("formulas", {})
    lines = ["## Count models (`ngram.json`)", "",
             f"Orders k = {', '.join(map(str, ng['orders']))}, {ng['seeds']} chains each"
             + (f", on the p^(0) stage of `{ng['p0_run']}`" if "p0_run" in ng else "")
             + (f" (tempered predictions added by `collapse_lib.gpt.ngram.add_tempered_predictions` from the "
                f"p^(0) stage of `{ng['tempered_added_from']}`"
                + ("; that run drew another real set from p^(0), so the chains sampled at T != 1 were re-run on it "
                   "with the same seeds, and the S columns of their rows (marked *) come from the re-run, measured "
                   "and predicted alike, while their other columns are the stored chains'"
                   if any("bridge_tempered" in e for e in ng["chains"].values()) else "") + ")"
                if "tempered_added_from" in ng else "")
             + "; trends from generation 1 to the last, and the bridge: measured mean S over the "
             "generation-1 contexts alive throughout, last generation, against the prediction from each "
             "context's own counts by the formula that applies to the chain's sampling:", ""]
    lines += [f"- **{key}**: {text}" for key, text in formulas.items()]
    lines += ["", "| k | chain | formula | entropy | support (p > 0) | distinct 4-grams | S measured | "
              "S predicted | ± s.e. | z |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = {(r["k"], r["chain"]): r for r in bridge_rows(run)}
    for e in ng["chains"].values():
        _, ent, _ = ngram_summary(run, e["k"], e["chain"], "entropy")
        _, sup, _ = ngram_summary(run, e["k"], e["chain"], "support_exact")
        _, d4, _ = ngram_summary(run, e["k"], e["chain"], "distinct4")
        r = rows[(e["k"], e["chain"])]
        lines.append(f"| {e['k']} | {e['chain']} | {r['formula']}{'*' if r.get('rerun') else ''} | "
                     f"{ent[0]:.3f} → {ent[-1]:.3f} | "
                     f"{sup[0]:.2f} → {sup[-1]:.2f} | {d4[0]:.3f} → {d4[-1]:.3f} | {r['measured']:.4f} | "
                     f"{r['predicted']:.4f} | {r['se']:.4f} | {r['z']:+.1f} |")
    warm = [r for r in rows.values() if r["temperature"] == 1.0 and r["k"] >= 2]
    cold = [r for r in rows.values() if r["temperature"] != 1.0]
    text = ("**What the bridge shows.** A counting n-gram model on the same real set is the paper's estimator. "
            "With unbiased sampling Theorem 1 (and the corrected Theorem 2) is an identity for it, context by "
            "context, once the draws after a context are independent of how often it occurs; the agreement checks "
            "the code and that premise (dependence of draws inside a stream): for contexts of two or more "
            f"characters the measured change of S is {min(r['ratio'] for r in warm):.2f}-"
            f"{max(r['ratio'] for r in warm):.2f} times the predicted change. ")
    if cold and all(r["formula"] == "B1T" for r in cold):
        text += ("At temperature " + ", ".join(sorted({f"{r['temperature']:g}" for r in cold})) + " the unbiased "
                 f"formula (B1) misses by {min(r['z_unbiased'] for r in cold):.0f}-"
                 f"{max(r['z_unbiased'] for r in cold):.0f} standard errors, and the tempered one-step formula "
                 "(B1T, Chapter 7's identity applied per context) predicts the last generation within "
                 f"{max(abs(r['z']) for r in cold):.1f} standard errors at every order. ")
    elif cold:
        text += (f"At temperature {cold[0]['temperature']:g} the unbiased formula does not apply (this file holds no "
                 f"tempered prediction): measured over predicted change {min(r['ratio'] for r in cold):.2f}-"
                 f"{max(r['ratio'] for r in cold):.2f}. ")
    text += ("The lesson is the contrast with the GPT: at n = 100k with unbiased sampling the GPT's samples gain "
             "distinct 4-grams and lose typicality under p^(0), where the count models' samples lose the first "
             "and keep the second.")
    return lines + ["", text, ""]


# ----------------------------------------------------------------------------- the controls run
CONTROLS_START, CONTROLS_END = "<!-- controls:start -->", "<!-- controls:end -->"


def _last_complete(run: dict, name: str) -> int:
    """The last generation that every seed of chain ``name`` has completed (0 if none)."""
    v = values(run, name, "entropy")
    ok = np.isfinite(v).all(axis=0)
    return int(np.flatnonzero(ok)[-1] + 1) if ok.any() else 0


def kept_passes(run: dict, name: str) -> np.ndarray:
    """``(seeds, generations)`` passes over the training characters made by the weights each
    generation kept: ``passes`` (of all iterations trained) scaled by ``best_iter / iters_trained``
    under the rule ``stop=best``, unchanged under fixed iterations."""
    p, it = values(run, name, "passes"), values(run, name, "iters_trained")
    best = np.full_like(p, np.nan)
    c = next(c for c in run["config"]["chains"] if c["name"] == name)
    for i, s in enumerate(c["seeds"]):
        for m in range(p.shape[1]):
            st = run["stages"].get(f"{name}/s{s}/gen{m + 1}")
            if st is not None:
                best[i, m] = st.get("best_iter") or st["iters_trained"]
    return p * best / it


def controls_rows(run: dict) -> list[str]:
    """One Markdown row per chain of a controls run: seeds, passes per generation (generation 1;
    later generations, mean over seeds and generations), iterations trained, the drift from p^(1)
    at the last generation all seeds completed (± s.e. over seeds) against the chain's own null
    (the retraining floor of its generation 1: mean and range over seed pairs), and the trends of
    drift from p^(0), entropy, support, distinct 4-grams, loss on Shakespeare and the two in-context
    instruments from generation 1 to that generation."""
    rows = []
    for c in run["config"]["chains"]:
        name = c["name"]
        G = _last_complete(run, name)
        if G == 0:
            rows.append(f"| {name} | {len(c['seeds'])} | not started | | | | | | | | | | |")
            continue
        pv = kept_passes(run, name)
        later = pv[:, 1:G]
        passes = f"{np.nanmean(pv[:, 0]):.1f}; {np.nanmean(later):.1f}" if G > 1 else f"{np.nanmean(pv[:, 0]):.1f}; -"
        it = values(run, name, "iters_trained")[:, 1:G]
        iters = f"{np.nanmean(it):.0f} ({np.nanmin(it):.0f}-{np.nanmax(it):.0f})" if G > 1 else "-"
        _, d, se = seed_summary(run, name, "l1_to_p1")
        fl = chain_floor(run, name)
        null = f"{fl['mean']:.3f} ({fl['min']:.3f}-{fl['max']:.3f}, {len(fl['pairs'])} pairs)" if fl else "-"
        cells = [name, str(len(c["seeds"])), passes, iters, f"{G}: {_pm(d[G - 1], se[G - 1])}", null]
        for key in ("l1_to_p0", "entropy", "support", "distinct4", "loss_real", "icl_copy_gain", "icl_context_gain"):
            _, v, _ = seed_summary(run, name, key)
            cells.append(f"{v[0]:.3f} → {v[G - 1]:.3f}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _same_models_note(run: dict, main: dict | None) -> str:
    """Whether the controls run's p^(0) and generation-1 models at n = 100k are the main run's."""
    if main is None or "p0" not in run["stages"] or "p0" not in main["stages"]:
        return ""
    a, b = run["stages"]["p0"], main["stages"]["p0"]
    if a["curve"] == b["curve"] and a["loss_real"] == b["loss_real"]:
        return " These are bit for bit the main run's models (same curves, same loss)."
    d = abs(a["loss_real"] - b["loss_real"])
    g = [k for k in ("gen1/n100000/s0", "gen1/n100000/s1") if k in run["stages"] and k in main["stages"]]
    gd = max((abs(run["stages"][k]["loss_real"] - main["stages"][k]["loss_real"]) for k in g), default=float("nan"))
    return (f" **Not bit for bit:** p^(0)'s loss on Shakespeare differs from the main run's by {d:.1e} (its training "
            f"curve from the first evaluation on), because this host ({run['environment']['platform']}) computes in "
            f"floating point differently from the main run's ({main['environment']['platform']}); the code gives "
            "bit-identical numbers on one host (the quick run before and after the device change). The difference "
            "reaches the real set through sampling, so the generation-1 models at n = 100k are new draws of the same "
            f"recipe (loss on Shakespeare differs by up to {gd:.3f}), not the main run's models: a chain of this run "
            "and a chain of the main run are not paired by seed; compare them through their floors or as "
            "independent samples.")


def controls_lines(run: dict, where: str = "controls/", main: dict | None = None) -> list[str]:
    """The README section of a controls run (``run`` = its loaded ``metrics.json``; ``main``, the
    main run's, to say whether their shared stages are the same models)."""
    cfg, env, stages = run["config"], run["environment"], run["stages"]
    G = cfg["generations"]
    walls = run.get("invocation_wall_s", {})
    cpu = sum(s.get("cpu_s", 0.0) for s in stages.values())
    total = len(stages)
    from .runner import RunConfig, stage_graph

    graph = stage_graph(RunConfig(**cfg))
    by: dict[str, list[float]] = {}
    for k, st in stages.items():
        group = "p0" if k == "p0" else ("generation 1 (floor seeds included)" if k.startswith("gen1/") else k.split("/")[0])
        by.setdefault(group, []).append(st.get("cpu_s", 0.0))
    where_time = "; ".join(f"{g}: {sum(v) / 60:.1f} min CPU over {len(v)} stages" for g, v in by.items())
    p0 = stages.get("p0", {})
    chains_txt = "; ".join(
        f"{c['name']} ({c['scheme']}, n = {c['n']:,}"
        + (f", N = {c['n_real']:,} real" if c.get("n_real") else "")
        + (f", generation 1 on {c['gen1_n']:,} real" if c.get("gen1_n") else "")
        + (f", rule {', '.join(f'{k}={v}' for k, v in c['train'].items())}" if c.get("train") else "")
        + f", seeds {', '.join(map(str, c['seeds']))})" for c in cfg["chains"])
    status = "complete" if total == len(graph) else f"PARTIAL: {total} of {len(graph)} stages done"
    return [
        CONTROLS_START,
        "## Controls run (issue 21: matched controls, stopping rule, in-context instruments)",
        "",
        f"Files in `{where}`: `metrics.json`, `config.json` (with `planned_passes`). Status: **{status}**.",
        "Reproduce: `python -m collapse_lib.gpt run --preset controls --out runs/gpt_controls`, then "
        "`python -m collapse_lib.gpt.provenance --controls runs/gpt_controls results/gpt`.",
        "",
        f"- same recipe, run seed ({cfg['seed']}) and stage seeds as the main run, so p^(0) and the generation-1 models "
        f"at n = 100k are the main run's models up to floating point (p^(0) here: loss on Shakespeare "
        f"{p0.get('loss_real', float('nan')):.4f}); the real set is extended by {cfg.get('n_real_extra', 0):,} characters "
        "drawn after everything else of p^(0)." + _same_models_note(run, main),
        f"- chains: {chains_txt}; {G} generations; {cfg['floor_seeds']} generation-1 seeds per size and rule (floor)",
        "- passes = iterations x batch x tokens per stream / training characters; rule `stop=best`: held-out loss of "
        "the generation's own held-out split every 100 iterations, best weights kept, stop after 3 evaluations "
        "without improvement (learning-rate schedule over 1200 iterations)",
        "- in-context instruments (`collapse_lib.gpt.measure`): copy gain = loss on the first copy of a repeated "
        "random 32-character string minus loss on the second (64 fixed strings); context gain = loss with the last "
        "8 characters minus loss with the whole prefix (>= 32 characters), on 64 held-out p^(0) streams",
        f"- machine: {env['platform']}, {env['cpu_count']} CPUs, torch {env['torch']}, device {env['device']}, "
        f"{env.get('executor', 'local process pool')} x {env['torch_threads']} thread(s); no GPU was available",
        f"- wall time: {sum(walls.values()) / 60:.1f} min over {len(walls)} invocation(s); CPU time of all stages "
        f"{cpu / 60:.1f} min; where it went: {where_time}",
        "- the machine was shared with other jobs during the run, so wall times are longer than on an idle machine "
        "(compare CPU times)",
        "",
        "Per chain (means over seeds; ± one standard error over seeds; trends from generation 1 to the last generation "
        "all seeds completed; passes of the weights kept: generation 1; later generations, mean; iterations trained "
        "in generations >= 2: mean (range)):",
        "",
        "| chain | seeds | passes | iterations (gen >= 2) | drift from p^(1), last gen. | null: floor of its gen. 1 | "
        "drift from p^(0) | entropy | support | distinct 4-grams | loss on Shakespeare | copy gain | context gain |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *controls_rows(run),
        CONTROLS_END,
        "",
    ]


def bench_lines(bench: dict) -> list[str]:
    """Markdown table of ``bench_configs.json`` (``python -m collapse_lib.gpt bench --configs``)."""
    env = bench["environment"]
    rows = [f"| {r['config']} | {r['device']} | {r['params'] / 1e6:.2f}M | {r['batch']} x {r['context']} | "
            f"{r['train_tokens_per_s']:,.0f} | {r['train_s_per_iter']:.3f} | {r['est_train_s_per_generation']:,.0f} | "
            f"{r['sample_chars_per_s']:,.0f} |" for r in bench["configs"]]
    return ["### Throughput per configuration and device (`bench_configs.json`)", "",
            f"`python benchmarks/bench_gpt.py --configs` on {env['platform']}, torch {env['torch']}, "
            f"{env['torch_threads']} torch thread(s), a shared machine (no GPU was available, so the GPU choices: "
            "bf16 autocast, TF32, flash attention, pinned memory, are unmeasured).", "",
            "| configuration | device | parameters | batch x context | training tokens/s | s per iteration | "
            "s per generation (its iterations) | sampling characters/s |",
            "|---|---|---|---|---|---|---|---|", *rows]


def write_controls(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy a controls run's ``metrics.json`` and ``config.json`` to ``dest/controls/``, write
    ``dest/controls/README.md`` and put the same section into ``dest/README.md`` (replacing the
    previous one). Works on a run in progress (a partial snapshot, marked as such)."""
    run_dir, dest = Path(run_dir), Path(dest)
    out = dest / "controls"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "config.json"):
        shutil.copyfile(run_dir / name, out / name)
    main = load_run(dest) if (dest / "metrics.json").is_file() else None
    lines = controls_lines(load_run(out), main=main)
    if (dest / "bench_configs.json").is_file():
        lines[-2:-2] = ["", *bench_lines(json.loads((dest / "bench_configs.json").read_text()))]
    (out / "README.md").write_text("\n".join(["# GPT controls run", "", *lines[2:-2], ""]).replace(
        "## Controls run", "Controls run"))
    readme = dest / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if CONTROLS_START in text:
        head, rest = text.split(CONTROLS_START, 1)
        tail = rest.split(CONTROLS_END, 1)[1] if CONTROLS_END in rest else ""
        text = head + "\n".join(lines[:-1]) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    readme.write_text(text)
    return out


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 4 and sys.argv[1] == "--controls":
        print(write_controls(sys.argv[2], sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) != 3:
        sys.exit("usage: python -m collapse_lib.gpt.provenance [--controls] RUN_DIR DEST_DIR")
    print(write_readme(sys.argv[1], sys.argv[2]))
