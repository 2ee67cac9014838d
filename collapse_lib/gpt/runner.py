"""Recursive training of character-level GPTs on their own samples (Section 4 of the paper).

Stages (each writes one checkpoint, so an interrupted run resumes at the next stage):

``gen0``
    A GPT trained on the Shakespeare corpus. Its next-character distribution is the *ground
    truth* ``p^(0)``. From it we draw the **real set** (``n_real`` characters: the paper treats
    samples of ``p^(0)`` as the real data distribution), a held-out text of ``n_heldout``
    characters, and ``n_contexts`` evaluation contexts (``block_size`` characters each).
``gen1``
    A fresh GPT trained on the real set only: ``p^(1)``. It is shared by both schemes.
``<scheme>/gen<m>``, ``m = 2..G``
    *fully*: trained only on ``n_synth`` characters sampled from generation ``m - 1``;
    *partially*: trained on the real set concatenated with ``n_synth`` characters sampled from
    generation ``m - 1`` of the same scheme (with ``n_synth = n_real`` the mix is half real, half
    synthetic: the balanced case of the paper's partially synthetic setting).

All generations use the same architecture and optimisation settings (``iters`` iterations;
generation 0 uses ``gen0_iters``). Metrics of generation ``m`` (model ``p^(m)``):

* ``l1_to_p1`` and ``l1_to_p0``: ``(1/K) sum_c ||p^(m)(.|c) - p^(j)(.|c)||_1`` over the ``K``
  fixed contexts (the paper's drift measure, Fig. 3 top left), with its standard error;
* ``val_loss_gen0``: cross-entropy on the held-out generation-0 text;
* ``val_loss_real``: cross-entropy on the real Shakespeare validation split;
* ``entropy``: mean entropy (nats) of ``p^(m)(.|c)`` over the contexts; ``sample``: a text sample.

Randomness: every stage derives its own seed from the run seed and the stage name
(:func:`stage_seed`), so results do not depend on the order in which stages run, on which
schemes are selected, or on whether the run was interrupted. Each checkpoint also stores the RNG
states at its end.
"""

from __future__ import annotations

import json
import os
import platform
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import data as D
from .model import GPT, GPTConfig, default_device
from .sample import generate_corpus, sample
from .train import TrainConfig, evaluate_loss, train

SCHEMES = ("fully", "partially")


@dataclass
class RunConfig:
    """Everything that determines the numbers of a run (stored in ``config.json``)."""

    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_iters=600, batch_size=16, warmup_iters=60,
                                                                   eval_interval=10**9))
    gen0_iters: int = 2000
    generations: int = 10
    schemes: tuple[str, ...] = SCHEMES
    n_real: int = 100_000
    n_synth: int = 100_000
    n_heldout: int = 30_000
    n_contexts: int = 300
    sample_streams: int = 256
    temperature: float = 1.0
    top_k: int | None = None
    keep: int | None = None
    corpus_chars: int = D.TARGET_CHARS
    seed: int = 1234

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = GPTConfig(**self.model)
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        self.schemes = tuple(self.schemes)
        if self.generations < 1:
            raise ValueError(f"generations must be >= 1, got {self.generations}")
        if not self.schemes or any(s not in SCHEMES for s in self.schemes):
            raise ValueError(f"schemes must be a non-empty subset of {SCHEMES}, got {self.schemes}")
        for name in ("gen0_iters", "n_real", "n_synth", "n_heldout", "n_contexts", "sample_streams", "corpus_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("n_real", "n_synth", "n_heldout"):
            if getattr(self, name) <= self.model.block_size + 1:
                raise ValueError(f"{name} must exceed block_size + 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schemes"] = list(self.schemes)
        return d


def quick_config(**overrides) -> RunConfig:
    """A tiny configuration (seconds on a laptop CPU) for tests and the chapter's live demo."""
    base = RunConfig(
        model=GPTConfig(block_size=32, n_layer=2, n_head=2, n_embd=32),
        train=TrainConfig(max_iters=80, batch_size=16, warmup_iters=10, learning_rate=1e-2, min_lr=1e-3,
                          eval_interval=10**9, eval_windows=32),
        gen0_iters=200,
        generations=2,
        n_real=6000,
        n_synth=6000,
        n_heldout=3000,
        n_contexts=50,
        sample_streams=64,
        corpus_chars=120_000,
    )
    return replace(base, **overrides)


def stage_seed(seed: int, stage: str) -> int:
    """Seed of a stage: a deterministic function of the run seed and the stage name."""
    return (seed * 1_000_003 + zlib.crc32(stage.encode())) % (2**63 - 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def environment() -> dict:
    """Library versions and machine information recorded with the results."""
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": default_device(),
    }


@torch.no_grad()
def context_probs(model: GPT, contexts: torch.Tensor) -> torch.Tensor:
    """``p(.|c)`` for each context row, on the CPU in float64 (shape ``(K, vocab)``)."""
    device = next(model.parameters()).device
    model.eval()
    return model.next_token_probs(contexts.to(device)).double().cpu()


def l1_drift(p: torch.Tensor, q: torch.Tensor) -> tuple[float, float]:
    """Mean over contexts of ``||p(.|c) - q(.|c)||_1`` and its standard error (rows = contexts)."""
    if p.shape != q.shape or p.dim() != 2:
        raise ValueError(f"need two (contexts, vocab) arrays of equal shape, got {tuple(p.shape)}, {tuple(q.shape)}")
    d = (p - q).abs().sum(dim=1)
    se = float(d.std(unbiased=True) / len(d) ** 0.5) if len(d) > 1 else float("nan")
    return float(d.mean()), se


def mean_entropy(p: torch.Tensor) -> float:
    """Mean Shannon entropy (nats) of the rows of ``p``."""
    return float(-(p * torch.log(p.clamp_min(1e-300))).sum(dim=1).mean())


class Runner:
    """Runs (or resumes) the recursive-training experiment described in the module docstring."""

    def __init__(self, cfg: RunConfig, out: str | os.PathLike, progress: bool | None = None, log=print):
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        self.log = log
        self.device = default_device()
        self.tok = D.CharTokenizer()
        if cfg.model.vocab_size != self.tok.vocab_size:
            raise ValueError(f"model.vocab_size must be {self.tok.vocab_size}, got {cfg.model.vocab_size}")

    # -- files -----------------------------------------------------------------
    def _ckpt(self, stage: str) -> Path:
        return self.out / "checkpoints" / f"{stage}.pt"

    def _check_config(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "config.json"
        cfg = self.cfg.to_dict()
        if path.exists():
            old = json.loads(path.read_text())
            # the set of generations and schemes may grow on resume; everything else must match
            a = {k: v for k, v in old.items() if k not in ("generations", "schemes")}
            b = {k: v for k, v in json.loads(json.dumps(cfg)).items() if k not in ("generations", "schemes")}
            if a != b:
                raise ValueError(f"{path} holds a different configuration; use a new --out directory")
        path.write_text(json.dumps(cfg, indent=2))

    def _save(self, stage: str, payload: dict, gen: torch.Generator) -> None:
        payload = dict(payload, rng_state=gen.get_state(), torch_rng_state=torch.get_rng_state())
        path = self._ckpt(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written checkpoint

    def _load(self, stage: str) -> dict | None:
        path = self._ckpt(stage)
        return torch.load(path, weights_only=False) if path.exists() else None

    # -- pieces ------------------------------------------------------------------
    def _new_model(self, seed: int) -> GPT:
        torch.manual_seed(seed)
        return GPT(self.cfg.model).to(self.device)

    def _train(self, seed: int, train_data: torch.Tensor, iters: int, desc: str) -> tuple[GPT, dict]:
        model = self._new_model(seed)
        g = _gen(seed + 1)
        tcfg = replace(self.cfg.train, max_iters=iters, warmup_iters=min(self.cfg.train.warmup_iters, iters))
        hist = train(model, train_data, tcfg, g, progress=self.progress, desc=desc)
        return model, hist

    def _sample_text(self, model: GPT, n: int, g: torch.Generator) -> torch.Tensor:
        c = self.cfg
        toks = generate_corpus(model, n, self.tok.encode("\n")[0].item(), c.sample_streams, g,
                               c.temperature, c.top_k, c.keep)
        return toks.to(torch.uint8)

    def _metrics(self, model: GPT, ref: dict, g: torch.Generator) -> tuple[dict, torch.Tensor]:
        t0 = time.perf_counter()
        probs = context_probs(model, ref["contexts"])
        m = {}
        for j in (0, 1):
            key = f"p{j}"
            if key in ref:
                m[f"l1_to_p{j}"], m[f"l1_to_p{j}_se"] = l1_drift(probs, ref[key])
        m["entropy"] = mean_entropy(probs)
        m["max_prob"] = float(probs.max(dim=1).values.mean())
        w = self.cfg.train.eval_windows
        m["val_loss_gen0"] = evaluate_loss(model, ref["heldout"].long(), w)
        m["val_loss_real"] = evaluate_loss(model, ref["real_val"], w)
        prompt = self.tok.encode("\n").view(1, 1).to(self.device)
        m["sample"] = self.tok.decode(sample(model, prompt, 300, generator=g, keep=self.cfg.keep)[0, 1:].tolist())
        m["eval_s"] = time.perf_counter() - t0
        return m, probs

    # -- the experiment ------------------------------------------------------------
    def run(self) -> dict:
        """Run every missing stage, then write and return ``metrics.json``'s content."""
        c = self.cfg
        self._check_config()
        t_start = time.perf_counter()
        text = D.load_corpus_text() if c.corpus_chars == D.TARGET_CHARS else D.build_corpus_text(target_chars=c.corpus_chars)
        corpus = self.tok.encode(text)
        train_split, real_val = D.train_val_split(corpus, 0.1)
        ref: dict = {"real_val": real_val}
        results: dict = {"gen0": None, "gen1": None, "schemes": {s: [] for s in c.schemes}}

        # generation 0: the ground truth p^(0), the real set, held-out text and contexts
        ck = self._load("gen0")
        if ck is None:
            seed = stage_seed(c.seed, "gen0")
            g = _gen(seed)
            t0 = time.perf_counter()
            model, hist = self._train(seed, train_split, c.gen0_iters, "gen 0")
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            real = self._sample_text(model, c.n_real, g)
            heldout = self._sample_text(model, c.n_heldout, g)
            ctx_len = c.model.block_size
            contexts = self._sample_text(model, c.n_contexts * ctx_len, g).long().view(c.n_contexts, ctx_len)
            t_sample = time.perf_counter() - t0
            ref.update(contexts=contexts, heldout=heldout)
            m, p0 = self._metrics(model, ref, g)
            m.update(generation=0, train_s=t_train, sample_s=t_sample, train_tokens=len(train_split),
                     tokens_per_s=hist["tokens_per_s"], final_train_loss=hist["train_loss"][-1])
            ck = {"model": model.state_dict(), "metrics": m, "real": real, "heldout": heldout,
                  "contexts": contexts, "p0": p0}
            self._save("gen0", ck, g)
            self.log(f"gen 0: train {t_train:.0f}s, val_loss_real={m['val_loss_real']:.3f}")
        ref.update(contexts=ck["contexts"], heldout=ck["heldout"], p0=ck["p0"])
        real = ck["real"]
        results["gen0"] = ck["metrics"]

        # generation 1, shared by both schemes
        ck1 = self._load("gen1")
        if ck1 is None:
            ck1 = self._generation("gen1", 1, real.long(), ref, need_sample=c.generations > 1)
        ref["p1"] = ck1["p1"]
        results["gen1"] = ck1["metrics"]
        for s in c.schemes:
            results["schemes"][s].append(ck1["metrics"])
        if c.generations > 1:
            ck1 = self._ensure_synth("gen1", ck1)
        prev = {s: ck1.get("synth") for s in c.schemes}

        # generations 2..G, schemes interleaved so that a cut-off run has both curves
        for m in range(2, c.generations + 1):
            for s in c.schemes:
                stage = f"{s}/gen{m}"
                ckm = self._load(stage)
                if ckm is None:
                    synth = prev[s].long()
                    data = synth if s == "fully" else torch.cat([real.long(), synth])
                    ckm = self._generation(stage, m, data, ref, need_sample=m < c.generations)
                elif m < c.generations:
                    ckm = self._ensure_synth(stage, ckm)
                results["schemes"][s].append(ckm["metrics"])
                prev[s] = ckm.get("synth")
            self._write(results, time.perf_counter() - t_start)
        return self._write(results, time.perf_counter() - t_start)

    def _generation(self, stage: str, m: int, data: torch.Tensor, ref: dict, need_sample: bool) -> dict:
        seed = stage_seed(self.cfg.seed, stage)
        g = _gen(seed)
        t0 = time.perf_counter()
        model, hist = self._train(seed, data, self.cfg.train.max_iters, stage)
        t_train = time.perf_counter() - t0
        met, probs = self._metrics(model, ref, g)
        if m == 1:
            met["l1_to_p1"], met["l1_to_p1_se"] = 0.0, 0.0
        t0 = time.perf_counter()
        synth = self._sample_text(model, self.cfg.n_synth, g) if need_sample else None
        t_sample = time.perf_counter() - t0
        met.update(generation=m, train_s=t_train, sample_s=t_sample, train_tokens=len(data),
                   tokens_per_s=hist["tokens_per_s"], final_train_loss=hist["train_loss"][-1])
        ck = {"model": model.state_dict(), "metrics": met}
        if m == 1:
            ck["p1"] = probs
        if synth is not None:
            ck["synth"] = synth
        self._save(stage, ck, g)
        self.log(f"{stage}: train {t_train:.0f}s sample {t_sample:.0f}s  l1_to_p1={met['l1_to_p1']:.4f} "
                 f"val_loss_gen0={met['val_loss_gen0']:.4f} val_loss_real={met['val_loss_real']:.4f}")
        return ck

    def noise_floor(self, replicas: int = 2) -> dict:
        """Retrain generation 1 on the same real set with ``replicas`` other seeds and measure
        their drift from ``p^(1)`` and ``p^(0)``: the part of ``||p^(m) - p^(1)||_1`` that comes
        from training randomness (initialisation, batch order) rather than from resampling.
        Needs a run directory whose ``gen0`` and ``gen1`` stages are complete; writes
        ``floor.json`` there."""
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        ck0, ck1 = self._load("gen0"), self._load("gen1")
        if ck0 is None or ck1 is None:
            raise ValueError(f"{self.out} has no completed gen0/gen1 stages: run the experiment first")
        text = D.load_corpus_text() if self.cfg.corpus_chars == D.TARGET_CHARS else D.build_corpus_text(
            target_chars=self.cfg.corpus_chars)
        ref = {"real_val": D.train_val_split(self.tok.encode(text), 0.1)[1], "contexts": ck0["contexts"],
               "heldout": ck0["heldout"], "p0": ck0["p0"], "p1": ck1["p1"]}
        rows = []
        for r in range(1, replicas + 1):
            stage = f"floor/gen1_r{r}"
            seed = stage_seed(self.cfg.seed, stage)
            t0 = time.perf_counter()
            model, _ = self._train(seed, ck0["real"].long(), self.cfg.train.max_iters, stage)
            met, _ = self._metrics(model, ref, _gen(seed))
            met.update(replica=r, train_s=time.perf_counter() - t0)
            rows.append(met)
            self.log(f"{stage}: l1_to_p1={met['l1_to_p1']:.4f} l1_to_p0={met['l1_to_p0']:.4f}")
        out = {"config": self.cfg.to_dict(), "environment": environment(), "replicas": rows,
               "gen1": ck1["metrics"]}
        (self.out / "floor.json").write_text(json.dumps(out, indent=1))
        return out

    def _ensure_synth(self, stage: str, ck: dict) -> dict:
        """Add the synthetic sample to a checkpoint saved as a last generation (run extended with
        more generations). The stage generator is restored from the checkpoint's RNG state, which
        was saved right where an uninterrupted run would have started sampling."""
        if "synth" in ck:
            return ck
        g = torch.Generator()
        g.set_state(ck["rng_state"])
        model = GPT(self.cfg.model).to(self.device)
        model.load_state_dict(ck["model"])
        t0 = time.perf_counter()
        ck["synth"] = self._sample_text(model, self.cfg.n_synth, g)
        ck["metrics"]["sample_s"] = time.perf_counter() - t0
        self._save(stage, {k: v for k, v in ck.items() if k not in ("rng_state", "torch_rng_state")}, g)
        return ck

    def _write(self, results: dict, wall: float) -> dict:
        out = {
            "config": self.cfg.to_dict(),
            "environment": environment(),
            "wall_time_this_invocation_s": wall,
            "stage_time_total_s": _stage_time(results),
            "results": results,
        }
        tmp = self.out / "metrics.json.tmp"
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, self.out / "metrics.json")
        return out


def _stage_time(results: dict) -> float:
    seen = []
    if results["gen0"]:
        seen.append(results["gen0"])
    if results["gen1"]:
        seen.append(results["gen1"])
    for rows in results["schemes"].values():
        seen.extend(r for r in rows if r.get("generation", 0) > 1)
    return float(sum(r.get("train_s", 0) + r.get("sample_s", 0) + r.get("eval_s", 0) for r in seen))
