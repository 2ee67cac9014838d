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
    r.add_argument("--out", required=True, help="run directory (checkpoints + metrics.json); resumes if it exists")
    r.add_argument("--quick", action="store_true", help="tiny model and data (seconds), for demos and tests")
    r.add_argument("--generations", type=_positive_int, help="number of generations G (default 10; quick: 2)")
    r.add_argument("--scheme", choices=["fully", "partially", "both"], default="both")
    r.add_argument("--iters", type=_positive_int, help="training iterations of generations >= 1")
    r.add_argument("--gen0-iters", type=_positive_int, help="training iterations of generation 0")
    r.add_argument("--batch-size", type=_positive_int)
    r.add_argument("--n-real", type=_positive_int, help="characters in the real set sampled from generation 0")
    r.add_argument("--n-synth", type=_positive_int, help="synthetic characters sampled per generation")
    r.add_argument("--temperature", type=_positive_float)
    r.add_argument("--top-k", type=_positive_int)
    r.add_argument("--seed", type=int)
    r.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    r.add_argument("--no-progress", action="store_true", help="disable tqdm progress bars")

    b = sub.add_parser("bench", help="KV-cache sampler vs full recomputation; training throughput")
    b.add_argument("--batch", type=_positive_int, default=64)
    b.add_argument("--tokens", type=_positive_int, default=1024, help="new tokens per stream")
    b.add_argument("--threads", type=_positive_int)
    b.add_argument("--json", help="also write the results to this JSON file")

    f = sub.add_parser("floor", help="retrain generation 1 with other seeds: the training-noise floor of the drift")
    f.add_argument("--out", required=True, help="a run directory with completed gen0 and gen1 stages")
    f.add_argument("--replicas", type=_positive_int, default=2)
    f.add_argument("--threads", type=_positive_int)

    sub.add_parser("corpus", help="build the Shakespeare corpus and print its size, checksum and vocabulary")
    return p


def config_from_args(args: argparse.Namespace):
    from .runner import RunConfig, quick_config

    cfg = quick_config() if args.quick else RunConfig()
    train = cfg.train
    if args.iters is not None:
        train = replace(train, max_iters=args.iters, warmup_iters=min(train.warmup_iters, args.iters))
    if args.batch_size is not None:
        train = replace(train, batch_size=args.batch_size)
    kw = {"train": train}
    for name in ("generations", "gen0_iters", "n_real", "n_synth", "temperature", "top_k", "seed"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    kw["schemes"] = ("fully", "partially") if args.scheme == "both" else (args.scheme,)
    return replace(cfg, **kw)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.command == "run":
        from .runner import Runner

        cfg = config_from_args(args)
        res = Runner(cfg, args.out, progress=False if args.no_progress else None,
                     log=lambda s: print(s, flush=True)).run()
        print(f"done: {args.out}/metrics.json (stage time {res['stage_time_total_s']:.0f}s)")
    elif args.command == "bench":
        from .bench import run_benchmarks

        res = run_benchmarks(batch=args.batch, n_tokens=args.tokens)
        print(json.dumps(res, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
    elif args.command == "floor":
        import json as _json
        from pathlib import Path

        from .runner import RunConfig, Runner

        path = Path(args.out) / "config.json"
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 2
        cfg = RunConfig(**_json.loads(path.read_text()))
        res = Runner(cfg, args.out, progress=False, log=lambda s: print(s, flush=True)).noise_floor(args.replicas)
        print(f"done: {args.out}/floor.json ({len(res['replicas'])} replicas)")
    elif args.command == "corpus":
        from . import data as D

        text = D.load_corpus_text()
        print(f"{len(text)} characters, sha256 {D.sha256(text)}")
        print(f"vocabulary ({D.CharTokenizer().vocab_size} symbols, {len(set(text))} used): {D.ALPHABET!r}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
