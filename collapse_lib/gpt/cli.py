"""Command line: ``python -m collapse_lib.gpt {run,bench,corpus} ...``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import torch


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m collapse_lib.gpt",
                                description="Recursive training of character-level GPTs on Shakespeare.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run or resume the recursive-training experiment")
    r.add_argument("--out", required=True, help="run directory (checkpoints + metrics.json); resumes if it exists "
                   "and holds the same configuration, refuses otherwise")
    r.add_argument("--quick", action="store_true", help="small model and data (about a minute), for demos and tests "
                   "(the same as --preset quick)")
    r.add_argument("--preset", choices=("default", "quick", "paper", "controls"), default=None,
                   help="named configuration: default (the committed experiment), quick (the demo), paper (the "
                   "paper's nanoGPT scale: 6 layers x 384, context 256, batch 64, 2000 iterations; meant for a GPU), "
                   "controls (the matched controls and early-stopped chains of issue 21); recorded in config.json")
    r.add_argument("--generations", type=_positive_int, help="generations per chain (default 6; the preset's)")
    r.add_argument("--iters", type=_positive_int, help="training iterations of every generation (default 1200; "
                   "the preset's)")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where models train and sample (default auto: CUDA when available); random draws always "
                   "come from CPU generators, so a seed gives the same streams on every device")
    r.add_argument("--batch-size", type=_positive_int)
    r.add_argument("--seed", type=int)
    r.add_argument("--workers", type=_positive_int, help="stages trained in parallel processes (default 2)")
    r.add_argument("--threads", type=_positive_int, help="torch threads per worker (default 1; recorded in the "
                   "configuration)")
    r.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    r.add_argument("--scheduler", metavar="ADDRESS", help="run the stages on an existing Dask cluster (e.g. "
                   "tcp://host:8786, or a dask-jobqueue cluster's address); its workers must see --out at the same "
                   "path. Without it, --workers local processes run them")

    ng = sub.add_parser("ngram", help="the counting n-gram model pushed through the same loop (needs the p0 stage)")
    ng.add_argument("--out", required=True, help="a run directory whose p0 stage is complete")
    ng.add_argument("--orders", type=_positive_int, nargs="+", default=[1, 2, 4, 8],
                    help="context lengths k of the count models")
    ng.add_argument("--seeds", type=_positive_int, default=5, help="independent chains per order and chain")

    b = sub.add_parser("bench", help="KV-cache sampler vs full recomputation; training throughput")
    b.add_argument("--batch", type=_positive_int, default=64)
    b.add_argument("--tokens", type=_positive_int, default=1024, help="new tokens per stream")
    b.add_argument("--threads", type=_positive_int)
    b.add_argument("--json", help="also write the results to this JSON file")
    b.add_argument("--configs", action="store_true", help="instead: training tokens/s and sampling characters/s "
                   "of the committed and the paper's configuration on every available device, side by side")

    sub.add_parser("corpus", help="build the Shakespeare corpus and print its size, checksum and vocabulary")
    return p


def config_from_args(args: argparse.Namespace):
    from .runner import PRESETS, RunConfig

    preset = "quick" if args.quick else (args.preset or "default")
    if args.quick and args.preset not in (None, "quick"):
        raise ValueError(f"--quick and --preset {args.preset} contradict each other")
    cfg = PRESETS[preset]() if preset != "default" else RunConfig()
    train = cfg.train
    if args.iters is not None:
        train = replace(train, max_iters=args.iters, warmup_iters=min(train.warmup_iters, args.iters))
    if args.batch_size is not None:
        train = replace(train, batch_size=args.batch_size)
    kw = {"train": train}
    for name in ("generations", "seed", "workers", "threads", "device"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    return replace(cfg, **kw)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench" and args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "run":
        from .runner import Runner

        try:
            cfg = config_from_args(args)
            res = Runner(cfg, args.out, progress=False if args.no_progress else None,
                         log=lambda s: print(s, flush=True), scheduler=args.scheduler).run()
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"done: {args.out}/metrics.json ({len(res['stages'])} stages)")
    elif args.command == "ngram":
        from .ngram import run_ngram_experiment

        try:
            res = run_ngram_experiment(args.out, orders=tuple(args.orders), seeds=args.seeds)
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"done: {args.out}/ngram.json ({res['wall_s']:.0f} s)")
    elif args.command == "bench":
        from .bench import bench_configs, run_benchmarks
        from .runner import environment

        if args.configs:
            res = {"configs": bench_configs(), "environment": environment()}
            for r in res["configs"]:
                print(f"{r['config']:>9} {r['device']:>4}: train {r['train_tokens_per_s']:>9.0f} tokens/s "
                      f"({r['train_s_per_iter']:.3f} s/iter, {r['est_train_s_per_generation']:.0f} s per generation), "
                      f"sample {r['sample_chars_per_s']:>8.0f} chars/s")
        else:
            res = run_benchmarks(batch=args.batch, n_tokens=args.tokens)
        if not args.configs:
            print(json.dumps(res, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
    elif args.command == "corpus":
        from . import data as D

        text = D.load_corpus_text()
        print(f"{len(text)} characters, sha256 {D.sha256(text)}")
        print(f"vocabulary ({D.CharTokenizer().vocab_size} symbols, {len(set(text))} used): {D.ALPHABET!r}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
