"""Recursive training of character-level GPTs on their own samples (Section 4 of the paper).

The experiment
--------------
``p0``
    A GPT trained on the Shakespeare corpus with the recipe ``cfg.train``. Its next-character
    distribution is the ground truth ``p^(0)``. From it we draw, as independent streams (the
    sampling rule of :func:`~collapse_lib.gpt.sample.sample_streams`): the **real set** (``n_real``
    characters plus a 10 % held-out part) and ``n_contexts`` evaluation contexts, each the prefix
    of its own stream cut at a uniformly random length ``1..block_size``, so no context straddles
    two streams and the contexts follow the distribution of training contexts.
``gen1/n<n>/s<seed>``
    A fresh GPT trained, with the *same* recipe, on the first ``n`` characters of the real set:
    ``p^(1)``. Seeds ``0..floor_seeds-1`` exist for every chain size ``n``; their pairwise drift
    is the **retraining floor**: the drift that training randomness alone produces.
``<chain>/s<seed>/gen<m>``, ``m = 1..generations``
    A chain (:class:`Chain`) is a scheme, a sample size ``n`` and a sampling temperature. Its
    generation 1 is ``gen1/n<n>/s<seed>``; generation ``m >= 2`` is a fresh GPT trained with the
    same recipe on ``n`` characters sampled from generation ``m - 1`` (*fully* synthetic) or on
    the real set plus those ``n`` characters (*partially* synthetic). Every generation samples
    its own text (``n`` characters plus 10 % held out) at the chain's temperature.

Every stage writes one checkpoint; stages run in ``workers`` processes in parallel (each with
``threads`` torch threads), or on the workers of an existing Dask cluster (``Runner(...,
scheduler=ADDRESS)``), in dependency order; an interrupted run resumes with the next missing
stage. Each stage derives its seed from the run seed and its name (:func:`stage_seed`), so the
numbers do not depend on the order in which stages ran, on interruptions or on the executor.

Devices (``RunConfig.device``: ``auto``, ``cpu`` or ``cuda``): models live on the device, every
random draw comes from a CPU generator (:func:`~collapse_lib.gpt.sample.draw_categorical`), so a
seed gives the same random streams everywhere; CPU and GPU numbers differ only by floating point
(on a GPU: TF32 matmuls and bf16 autocast in training). Floating point also differs between CPU
hosts (instruction sets select different kernels): a rerun on another machine reproduces a run's
statistics, not its bits.

Optional per-chain settings (:class:`Chain`): the real data of a partially synthetic chain, the
size of its generation 1, and its own training rule (``{"stop": "best"}``: the best held-out loss
of the generation's own held-out split); every trained stage records ``passes`` (iterations x
batch x tokens per stream / training characters), ``iters_trained`` and ``best_iter``, and the
in-context instruments ``icl_*`` (:func:`~collapse_lib.gpt.measure.in_context_metrics`).

Per generation (model ``p^(m)``, sample ``D_m``) we record (:mod:`~collapse_lib.gpt.measure`):
drift to ``p^(1)`` (the chain's own) and to ``p^(0)``; mean entropy, largest probability and
support (characters above ``support_threshold``) over the contexts; the training curve (train
loss and loss on the held-out part of the generation's own training data every
``train.eval_interval`` iterations); loss on held-out ``p^(0)`` streams and on real Shakespeare;
and of ``D_m``: distinct 4-gram rate, rare-character rate, cross-entropy under ``p^(0)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import InitVar, asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from . import data as D
from .measure import context_probs, distribution_metrics, in_context_metrics, rare_characters, sample_metrics
from .model import GPT, GPTConfig, default_device
from .sample import sample_streams
from .train import TrainConfig, evaluate_loss, passes_over, train

SCHEMES = ("fully", "partially")
DEVICES = ("auto", "cpu", "cuda")
HELDOUT_FRACTION = 0.1


@dataclass(frozen=True)
class Chain:
    """One recursive-training chain: ``scheme`` (``"fully"`` or ``"partially"``), ``n`` sampled
    characters per generation, the sampling ``temperature`` and the training ``seeds``.

    Optional (left out of ``config.json`` at their defaults): ``n_real``, the real characters a
    partially synthetic generation ``m >= 2`` trains on besides its ``n`` synthetic ones (default:
    the run's ``n_real``); ``gen1_n``, the real characters generation 1 trains on (default ``n``);
    ``train``, overrides of the run's :class:`~collapse_lib.gpt.train.TrainConfig` for every
    generation of the chain, generation 1 included (e.g. ``{"stop": "best"}``); generation 1 and
    its floor seeds are then their own stages, ``gen1/n<n>/s<seed>/<rule>``."""

    name: str
    scheme: str
    n: int
    temperature: float = 1.0
    seeds: tuple[int, ...] = (0, 1)
    n_real: int | None = None
    gen1_n: int | None = None
    train: tuple = ()

    def __post_init__(self) -> None:
        tr = self.train
        items = tuple(sorted(tr.items())) if isinstance(tr, dict) else tuple(tuple(kv) for kv in tr)
        object.__setattr__(self, "train", items)
        bad = [k for k, _ in items if k not in TrainConfig.__dataclass_fields__]
        if bad:
            raise ValueError(f"chain {self.name!r}: unknown training settings {bad}")
        for name in ("n_real", "gen1_n"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if not self.name or "/" in self.name or self.name in ("p0", "gen1"):
            raise ValueError(f"chain name must be a non-empty word without '/', got {self.name!r}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if not isinstance(self.n, int) or self.n <= 0:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if not (isinstance(self.temperature, (int, float)) and 0 < self.temperature < float("inf")):
            raise ValueError(f"temperature must be a positive finite number, got {self.temperature!r}")
        seeds = tuple(self.seeds)
        if not seeds or len(set(seeds)) != len(seeds) or any(not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)

    @property
    def rule(self) -> str:
        """Tag of the chain's training overrides (``""`` for the run's recipe)."""
        return ",".join(f"{k}={v}" for k, v in self.train)

    @property
    def first_n(self) -> int:
        """Real characters of generation 1."""
        return self.gen1_n if self.gen1_n is not None else self.n

    def to_dict(self) -> dict:
        d = {"name": self.name, "scheme": self.scheme, "n": self.n, "temperature": self.temperature,
             "seeds": list(self.seeds)}
        if self.n_real is not None:
            d["n_real"] = self.n_real
        if self.gen1_n is not None:
            d["gen1_n"] = self.gen1_n
        if self.train:
            d["train"] = dict(self.train)
        return d


#: The chains of the committed experiment (chapter 10).
DEFAULT_CHAINS: tuple[Chain, ...] = (
    Chain("fully_100k", "fully", 100_000),
    Chain("fully_20k", "fully", 20_000),
    Chain("partially_100k", "partially", 100_000),
    Chain("fully_100k_T0.8", "fully", 100_000, temperature=0.8, seeds=(0,)),
)


@dataclass
class RunConfig:
    """Everything that determines the numbers of a run (stored in ``config.json``)."""

    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_iters=1200, batch_size=16, learning_rate=2e-3, min_lr=2e-4, warmup_iters=100, eval_interval=200,
        eval_windows=256))
    chains: tuple[Chain, ...] = DEFAULT_CHAINS
    generations: int = 6
    floor_seeds: int = 3
    n_real: int = 100_000
    n_contexts: int = 300
    support_threshold: float = 1e-3
    sample_metric_chars: int = 20_000
    corpus_chars: int = D.TARGET_CHARS
    seed: int = 1234
    threads: int = 1
    workers: int = 2
    n_real_extra: int = 0
    preset: str = ""
    device: str = "auto"
    planned_passes: InitVar[dict | None] = None  # written to config.json for readers; derived, ignored

    def __post_init__(self, planned_passes: dict | None = None) -> None:
        if isinstance(self.model, dict):
            self.model = GPTConfig(**self.model)
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        self.chains = tuple(Chain(**{**c, "seeds": tuple(c["seeds"])}) if isinstance(c, dict) else c
                            for c in self.chains)
        if not isinstance(self.n_real_extra, int) or self.n_real_extra < 0:
            raise ValueError(f"n_real_extra must be a non-negative integer, got {self.n_real_extra!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("generations", "floor_seeds", "n_real", "n_contexts", "sample_metric_chars", "corpus_chars",
                     "threads", "workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.chains:
            raise ValueError("chains must not be empty")
        if len({c.name for c in self.chains}) != len(self.chains):
            raise ValueError("chain names must be distinct")
        for c in self.chains:
            if c.first_n > self.n_real + self.n_real_extra:
                raise ValueError(f"chain {c.name!r}: generation 1 needs {c.first_n} real characters, which exceeds "
                                 f"n_real + n_real_extra = {self.n_real + self.n_real_extra} (generation 1 trains "
                                 "on the first characters of the real set)")
            if c.scheme == "partially" and (c.n_real or 0) > self.n_real + self.n_real_extra:
                raise ValueError(f"chain {c.name!r}: n_real={c.n_real} exceeds the real set")
            TrainConfig(**{**self.train.to_dict(), **dict(c.train)})  # overrides must give a valid recipe
            if max(c.seeds) >= self.floor_seeds:
                raise ValueError(f"chain {c.name!r} uses seed {max(c.seeds)}, but only seeds 0..{self.floor_seeds - 1} "
                                 "of generation 1 are trained (raise floor_seeds)")
        if not 0 < self.support_threshold < 1:
            raise ValueError(f"support_threshold must lie in (0, 1), got {self.support_threshold}")
        if self.sample_metric_chars > min(c.n for c in self.chains):
            raise ValueError("sample_metric_chars must not exceed the smallest chain's n")

    def to_dict(self) -> dict:
        """The configuration as JSON-able dict; optional fields at their defaults are left out, so
        the configurations written before they existed keep their fingerprint."""
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["train"] = self.train.to_dict()
        d["chains"] = [c.to_dict() for c in self.chains]
        for k, v in (("n_real_extra", 0), ("preset", ""), ("device", "auto")):
            if d[k] == v:
                d.pop(k)
        return d

    def chain_train(self, chain: Chain) -> TrainConfig:
        """The training recipe of ``chain``'s generations: the run's, with the chain's overrides."""
        return TrainConfig(**{**self.train.to_dict(), **dict(chain.train)}) if chain.train else self.train

    def planned_passes(self) -> dict:
        """Passes over the training characters per generation for each chain (iterations x batch
        x tokens per stream / training characters) under the fixed-iteration budget; with
        ``stop="best"`` an upper bound (the measured value is in each stage's metrics)."""
        T = self.model.block_size
        out = {}
        for c in self.chains:
            tr = self.chain_train(c)
            k = lambda n: _n_streams(n, T) * T  # noqa: E731 - characters of n sampled characters
            later = k(c.n) + (k(c.n_real if c.n_real is not None else self.n_real) if c.scheme == "partially" else 0)
            if tr.passes is not None:
                out[c.name] = {"gen1": tr.passes, "later": tr.passes, "rule": "fixed passes"}
            else:
                out[c.name] = {"gen1": tr.max_iters * tr.batch_size * T / k(c.first_n),
                               "later": tr.max_iters * tr.batch_size * T / later,
                               "rule": "best held-out loss (upper bound)" if tr.stop == "best" else "fixed iterations"}
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the configuration (stored in every checkpoint)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def quick_config(**overrides) -> RunConfig:
    """A small configuration for tests and the chapter's live demo (well under a minute on two
    cores): a 2-layer model, a 20k-character real set, two fully synthetic chains of three
    generations (temperature 1 and 0.8). Generation 1 learns far below the unigram entropy."""
    base = RunConfig(
        model=GPTConfig(block_size=32, n_layer=2, n_head=2, n_embd=48),
        train=TrainConfig(max_iters=250, batch_size=32, warmup_iters=20, learning_rate=1e-2, min_lr=1e-3,
                          eval_interval=50, eval_windows=64),
        chains=(Chain("fully", "fully", 20_000, seeds=(0,)), Chain("fully_T0.8", "fully", 20_000, 0.8, seeds=(0,))),
        generations=3,
        floor_seeds=1,
        n_real=20_000,
        n_contexts=100,
        sample_metric_chars=4_000,
        corpus_chars=200_000,
        workers=1,
    )
    return replace(base, **overrides)


def paper_config(**overrides) -> RunConfig:
    """The paper's scale (its Appendix 9.1: nanoGPT's character-level Shakespeare configuration,
    ``config/train_shakespeare_char.py``): 6 layers, 6 heads, embedding 384, context 256,
    dropout 0.2, no biases, batch 64, AdamW lr 1e-3 with 100 warm-up iterations and cosine decay
    to 1e-4 at the last iteration, beta2 0.99, weight decay 0.1, gradient clip 1, and the paper's
    2000 iterations (nanoGPT's file says 5000) for p^(0) and every generation. Chains: fully and
    partially synthetic, n = 100k, 2 seeds. Meant for a GPU (one iteration takes seconds on a CPU)."""
    base = RunConfig(
        model=GPTConfig(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False),
        train=TrainConfig(max_iters=2000, batch_size=64, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
                          weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250,
                          eval_windows=200),
        chains=(Chain("fully_100k", "fully", 100_000), Chain("partially_100k", "partially", 100_000)),
        generations=4, floor_seeds=2, preset="paper")
    return replace(base, **overrides)


#: The controlled chains (issue 21): matched controls for real data and the early-stopping rule.
CONTROL_CHAINS: tuple[Chain, ...] = (
    Chain("partially_50k", "partially", 50_000, n_real=50_000, gen1_n=100_000),
    Chain("fully_200k", "fully", 200_000),
    Chain("fully_20k_best", "fully", 20_000, train={"stop": "best", "eval_interval": 100}),
    Chain("fully_100k_best", "fully", 100_000, train={"stop": "best", "eval_interval": 100}),
)


def controls_config(**overrides) -> RunConfig:
    """The controls run (issue 21): the committed recipe and seeds (so p^(0) and the generation-1
    models at n = 100k are the committed ones), a real set extended by 100k characters for the
    n = 200k chain, and :data:`CONTROL_CHAINS`."""
    base = RunConfig(chains=CONTROL_CHAINS, n_real_extra=100_000, generations=4, preset="controls")
    return replace(base, **overrides)


PRESETS = {"quick": quick_config, "paper": paper_config, "controls": controls_config}


def stage_seed(seed: int, stage: str) -> int:
    """Seed of a stage: a deterministic function of the run seed and the stage name."""
    return (seed * 1_000_003 + zlib.crc32(stage.encode())) % (2**63 - 1)


def environment(threads: int | None = None) -> dict:
    """Library versions and machine information recorded with the results."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "device": default_device(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: CUDA when available, else the CPU; ``"cuda"`` raises a clear error when no
    GPU is visible to torch."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for, but torch sees no CUDA GPU "
                           f"(torch {torch.__version__}); use --device cpu or auto")
    return default_device() if device == "auto" else device


# ----------------------------------------------------------------------------- the stage graph
def gen1_stage(n: int, seed: int, rule: str = "") -> str:
    return f"gen1/n{n}/s{seed}" + (f"/{rule}" if rule else "")


def gen1_of(chain: Chain, seed: int) -> str:
    """Generation 1 of ``chain`` with ``seed``: shared by all chains of the same size and rule."""
    return gen1_stage(chain.first_n, seed, chain.rule)


def chain_stage(chain: Chain, seed: int, m: int) -> str:
    return f"{chain.name}/s{seed}/gen{m}"


def stage_graph(cfg: RunConfig) -> dict[str, tuple[str, ...]]:
    """Every stage of the run and the stages it needs, in a valid order."""
    g: dict[str, tuple[str, ...]] = {"p0": ()}
    for n, rule in sorted({(c.first_n, c.rule) for c in cfg.chains}, key=lambda x: (-x[0], x[1])):
        for s in range(cfg.floor_seeds):
            g[gen1_stage(n, s, rule)] = ("p0",)
    for c in cfg.chains:
        for s in c.seeds:
            g[chain_stage(c, s, 1)] = (gen1_of(c, s),)
            for m in range(2, cfg.generations + 1):
                g[chain_stage(c, s, m)] = (chain_stage(c, s, m - 1),)
    return g


def _n_streams(n_chars: int, block_size: int) -> int:
    """Streams needed for ``n_chars`` sampled characters (``block_size`` per stream)."""
    return -(-n_chars // block_size)


# ----------------------------------------------------------------------------- one stage
class StageRunner:
    """Runs single stages of a run directory (used inside the worker processes)."""

    def __init__(self, cfg: RunConfig, out: str | os.PathLike, progress: bool = False):
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.tok = D.CharTokenizer()
        self.start = int(self.tok.encode("\n")[0])
        if cfg.model.vocab_size != self.tok.vocab_size:
            raise ValueError(f"model.vocab_size must be {self.tok.vocab_size}, got {cfg.model.vocab_size}")
        self._cache: dict = {}

    # -- files ----------------------------------------------------------------
    def ckpt_path(self, stage: str) -> Path:
        return self.out / "checkpoints" / f"{stage}.pt"

    def metrics_path(self, stage: str) -> Path:
        return self.out / "stages" / f"{stage}.json"

    def done(self, stage: str) -> bool:
        return self.ckpt_path(stage).is_file() and self.metrics_path(stage).is_file()

    def save(self, stage: str, payload: dict, metrics: dict) -> None:
        payload = dict(payload, fingerprint=self.cfg.fingerprint())
        for path, write in ((self.ckpt_path(stage), lambda p: torch.save(payload, p)),
                            (self.metrics_path(stage), lambda p: p.write_text(json.dumps(metrics, indent=1)))):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            write(tmp)
            os.replace(tmp, path)  # atomic: a killed run never leaves a half-written file

    def load(self, stage: str) -> dict:
        if stage in self._cache:
            return self._cache[stage]
        path = self.ckpt_path(stage)
        try:
            ck = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is damaged
            raise RuntimeError(f"checkpoint {path} is damaged or unreadable ({type(exc).__name__}: {exc}); "
                               "delete it and run again to recompute that stage") from None
        if not isinstance(ck, dict) or ck.get("fingerprint") != self.cfg.fingerprint():
            raise RuntimeError(f"checkpoint {path} was written by a different configuration; "
                               "use a new run directory")
        self._cache[stage] = ck
        return ck

    def model_from(self, stage: str) -> GPT:
        model = GPT(self.cfg.model).to(self.device)
        model.load_state_dict(self.load(stage)["model"])
        model.eval()
        return model

    # -- data -----------------------------------------------------------------
    def corpus(self) -> tuple[torch.Tensor, torch.Tensor]:
        if "corpus" not in self._cache:
            c = self.cfg.corpus_chars
            text = D.load_corpus_text() if c == D.TARGET_CHARS else D.build_corpus_text(target_chars=c)
            self._cache["corpus"] = D.train_val_split(self.tok.encode(text), 0.1)
        return self._cache["corpus"]

    def real_set(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training and held-out streams of the first ``n`` characters of the real set (its
        extension, drawn after everything else of p^(0), follows the first ``n_real``)."""
        ck = self.load("p0")
        T = self.cfg.model.block_size
        k = _n_streams(n, T)
        real, held = ck["real"], ck["real_heldout"]
        if "real_extra" in ck:
            real, held = torch.cat([real, ck["real_extra"]]), torch.cat([held, ck["real_extra_heldout"]])
        if k > real.size(0):
            raise ValueError(f"the real set holds {real.size(0) * T} characters, {n} asked for")
        return real[:k], held[: max(1, round(HELDOUT_FRACTION * k))]

    def _sample(self, model: GPT, n_chars: int, g: torch.Generator, temperature: float):
        T = self.cfg.model.block_size
        k = _n_streams(n_chars, T)
        streams = sample_streams(model, k + max(1, round(HELDOUT_FRACTION * k)), self.start, g, temperature)
        return streams[:k], streams[k:]

    def _train(self, stage: str, data: torch.Tensor, heldout: torch.Tensor | None,
                recipe: TrainConfig | None = None) -> tuple[GPT, dict]:
        seed = stage_seed(self.cfg.seed, stage)
        torch.manual_seed(seed)
        model = GPT(self.cfg.model).to(self.device)  # initialised on the CPU, then moved
        val = {"heldout": heldout} if heldout is not None else None
        tr = recipe or self.cfg.train
        T = self.cfg.model.block_size
        if tr.passes is not None:  # a fixed number of passes: iterations from the data size
            chars = data.size(0) * T if data.dim() == 2 else len(data)
            iters = max(1, math.ceil(tr.passes * chars / (tr.batch_size * T)))
            tr = replace(tr, max_iters=iters, warmup_iters=min(tr.warmup_iters, iters))
        hist = train(model, data, tr, torch.Generator().manual_seed(seed + 1), val_data=val,
                     progress=self.progress, desc=stage)
        hist["passes"] = passes_over(data, hist["iters_trained"], tr.batch_size, T)
        return model, hist

    def _evaluate(self, model: GPT, refs: dict[str, torch.Tensor]) -> tuple[dict, torch.Tensor]:
        ck0 = self.load("p0")
        P = context_probs(model, ck0["contexts"], ck0["context_lengths"])
        met = distribution_metrics(P, refs, self.cfg.support_threshold)
        w = self.cfg.train.eval_windows
        met["loss_p0_heldout"] = evaluate_loss(model, ck0["real_heldout"], w)
        met["loss_real"] = evaluate_loss(model, self.corpus()[1], w)
        met.update(in_context_metrics(model, ck0["real_heldout"]))
        return met, P

    def _describe_sample(self, streams: torch.Tensor, p0: GPT) -> dict:
        rare = np.array(self.load("p0")["rare"], dtype=bool)
        met = sample_metrics(streams, rare, p0, self.cfg.sample_metric_chars)
        met["sample_text"] = self.tok.decode(streams[:4].reshape(-1).tolist())
        return met

    # -- stages ---------------------------------------------------------------
    def run_stage(self, stage: str) -> dict:
        """Compute ``stage`` (its dependencies must be done) and save it; return its metrics."""
        torch.set_num_threads(self.cfg.threads)
        t0, c0 = time.perf_counter(), time.process_time()
        if self.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls on the GPU (unmeasured here)
            torch.backends.cudnn.allow_tf32 = True
        if stage == "p0":
            met, payload = self._p0()
        elif stage.startswith("gen1/"):
            met, payload = self._gen1(stage)
        else:
            met, payload = self._chain_generation(stage)
        met["wall_s"] = time.perf_counter() - t0
        met["cpu_s"] = time.process_time() - c0
        met["stage"] = stage
        met["device"] = self.device
        self.save(stage, payload, met)
        return met

    def _p0(self) -> tuple[dict, dict]:
        c, T = self.cfg, self.cfg.model.block_size
        train_split, _ = self.corpus()
        seed = stage_seed(c.seed, "p0")
        t0 = time.perf_counter()
        model, hist = self._train("p0", train_split, self.corpus()[1])
        t_train = time.perf_counter() - t0
        g = torch.Generator().manual_seed(seed + 2)
        t0 = time.perf_counter()
        real, real_heldout = self._sample(model, c.n_real, g, 1.0)
        ctx_streams = sample_streams(model, c.n_contexts, self.start, g)
        lengths = torch.randint(1, T + 1, (c.n_contexts,), generator=g, device=g.device)
        extra = {}
        if c.n_real_extra:  # drawn last, so everything above is as without it
            extra["real_extra"], extra["real_extra_heldout"] = self._sample(model, c.n_real_extra, g, 1.0)
        t_sample = time.perf_counter() - t0
        rare = rare_characters(real, c.model.vocab_size)
        payload = {"model": model.state_dict(), "real": real, "real_heldout": real_heldout,
                   "contexts": ctx_streams[:, :T].clone(), "context_lengths": lengths, "rare": rare.tolist(), **extra}
        self._cache["p0"] = dict(payload, fingerprint=c.fingerprint())
        met, P0 = self._evaluate(model, {})
        self._cache["p0"]["p0"] = P0
        payload["p0"] = P0
        met.update(self._describe_sample(real, model))
        met.update(generation=0, train_s=t_train, sample_s=t_sample, curve=_curve(hist),
                   tokens_per_s=hist["tokens_per_s"], rare_chars=self.tok.decode(np.flatnonzero(rare).tolist()),
                   **_train_record(hist))
        return met, payload

    def _gen1(self, stage: str) -> tuple[dict, dict]:
        parts = stage.split("/")
        n, rule = int(parts[1][1:]), (parts[3] if len(parts) > 3 else "")
        chain = next(c for c in self.cfg.chains if c.first_n == n and c.rule == rule)
        data, heldout = self.real_set(n)
        t0 = time.perf_counter()
        model, hist = self._train(stage, data, heldout, self.cfg.chain_train(chain))
        t_train = time.perf_counter() - t0
        met, P = self._evaluate(model, {"p0": self.load("p0")["p0"]})
        met.update(generation=1, n=n, train_s=t_train, curve=_curve(hist), tokens_per_s=hist["tokens_per_s"],
                   **_train_record(hist))
        return met, {"model": model.state_dict(), "P": P}

    def _chain_generation(self, stage: str) -> tuple[dict, dict]:
        name, s, gm = stage.split("/")
        chain = next(ch for ch in self.cfg.chains if ch.name == name)
        seed, m = int(s[1:]), int(gm[3:])
        p0 = self.model_from("p0")
        P0 = self.load("p0")["p0"]
        g1 = gen1_of(chain, seed)
        t_train = 0.0
        if m == 1:
            model, P = self.model_from(g1), self.load(g1)["P"]
            met = {k: v for k, v in json.loads(self.metrics_path(g1).read_text()).items()
                   if k not in ("wall_s", "cpu_s", "stage", "train_s")}
            met.update(l1_to_p1=0.0, l1_to_p1_se=0.0)
        else:
            prev = self.load(chain_stage(chain, seed, m - 1))
            data, heldout = prev["synth"], prev["synth_heldout"]
            if chain.scheme == "partially":
                real, real_heldout = self.real_set(chain.n_real if chain.n_real is not None else self.cfg.n_real)
                data, heldout = torch.cat([real, data]), torch.cat([real_heldout, heldout])
            t0 = time.perf_counter()
            model, hist = self._train(stage, data, heldout, self.cfg.chain_train(chain))
            t_train = time.perf_counter() - t0
            met, P = self._evaluate(model, {"p0": P0, "p1": self.load(g1)["P"]})
            met.update(curve=_curve(hist), tokens_per_s=hist["tokens_per_s"], **_train_record(hist))
        g = torch.Generator().manual_seed(stage_seed(self.cfg.seed, stage) + 2)
        t0 = time.perf_counter()
        synth, synth_heldout = self._sample(model, chain.n, g, chain.temperature)
        t_sample = time.perf_counter() - t0
        met.update(self._describe_sample(synth, p0))
        met.update(generation=m, chain=name, seed=seed, train_s=t_train, sample_s=t_sample)
        return met, {"model": model.state_dict(), "synth": synth, "synth_heldout": synth_heldout}


def _train_record(hist: dict) -> dict:
    """What every trained stage records of its training: iterations, best iteration (stop="best")
    and passes over its training characters."""
    return {"iters_trained": hist["iters_trained"], "best_iter": hist["best_iter"], "passes": hist["passes"]}


def _curve(hist: dict) -> dict:
    return {"iter": hist["iter"], "train_loss": hist["train_loss"], "heldout_loss": hist["val"].get("heldout", [])}


def _worker(cfg_dict: dict, out: str, stage: str) -> dict:
    cfg = RunConfig(**cfg_dict)
    torch.set_num_threads(cfg.threads)
    return StageRunner(cfg, out).run_stage(stage)


# ----------------------------------------------------------------------------- the whole run
class Runner:
    """Runs (or resumes) the experiment of the module docstring in ``out``."""

    def __init__(self, cfg: RunConfig, out: str | os.PathLike, progress: bool | None = None, log=print,
                 scheduler: str | None = None):
        """``scheduler``: the address of a running Dask scheduler (``tcp://host:8786``) or a
        ``distributed.Client``; the stages then run on that cluster's workers (which must see
        ``out`` at the same path). Without it, ``cfg.workers`` local processes run them."""
        self.cfg = cfg
        self.scheduler = scheduler
        self.out = Path(out)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.log = log
        self.stages = StageRunner(cfg, out)
        self.invocation = time.strftime("%Y-%m-%dT%H:%M:%S%z")  # key of this invocation's wall time

    def check_config(self) -> None:
        """Write ``config.json`` in a new directory; refuse a directory that holds another
        configuration, or checkpoints without a configuration."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "config.json"
        cfg = json.loads(json.dumps(self.cfg.to_dict()))
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON ({exc}); use a new run directory") from None
            old.pop("planned_passes", None)
            if old != cfg:
                diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
                raise ValueError(f"{path} holds a different configuration (differs in: {', '.join(diff)}); "
                                 "use a new --out directory or the same settings")
        elif (self.out / "checkpoints").exists() or (self.out / "stages").exists():
            raise ValueError(f"{self.out} holds checkpoints but no config.json: refusing to reuse them; "
                             "use a new --out directory")
        path.write_text(json.dumps({**cfg, "planned_passes": self.cfg.planned_passes()}, indent=2))

    def run(self, max_stages: int | None = None) -> dict:
        """Run every missing stage (``cfg.workers`` local processes in parallel, or the workers of
        the Dask cluster at ``scheduler``), then write and return ``metrics.json``'s content.
        ``max_stages`` stops after that many stages were computed (an interruption, for tests)."""
        from tqdm.auto import tqdm

        self.check_config()
        graph = stage_graph(self.cfg)
        done = {s for s in graph if self.stages.done(s)}
        for s in sorted(done, key=list(graph).index):  # a checkpoint from another configuration must not be reused silently
            self.stages.load(s)
            self.stages._cache.clear()
        todo = [s for s in graph if s not in done]
        depth = _remaining_depth(graph)
        t_start = time.perf_counter()
        bar = tqdm(total=len(graph), initial=len(done), desc="stages", disable=not self.progress)
        budget = len(todo) if max_stages is None else max_stages
        if self.scheduler is not None:
            self._run_dask(graph, todo, done, depth, budget, bar, t_start)
        elif self.cfg.workers == 1:
            for s in todo[:budget]:
                met = self.stages.run_stage(s)
                self._report(s, met, bar)
        else:
            with ProcessPoolExecutor(self.cfg.workers, mp_context=get_context("spawn")) as pool:
                self._schedule(pool, self.cfg.workers, str(self.out), graph, todo, done, depth, budget, bar, t_start)
        bar.close()
        return self.collect(time.perf_counter() - t_start)

    def _schedule(self, pool, slots: int, out: str, graph, todo, done, depth, budget, bar, t_start) -> None:
        """Run stages on ``pool`` (any ``concurrent.futures`` executor: the local process pool, or a
        Dask cluster's ``client.get_executor()``): a stage is submitted when its dependencies are
        done, longest remaining chain first, at most ``slots`` at once; each stage is one task that
        reads and writes checkpoints in ``out``."""
        cfg_dict = self.cfg.to_dict()
        running: dict = {}
        computed = 0
        while (todo and computed + len(running) < budget) or running:
            ready = [s for s in todo if all(d in done for d in graph[s])]
            ready.sort(key=lambda s: -depth[s])
            for s in ready[: min(slots - len(running), budget - computed - len(running))]:
                running[pool.submit(_worker, cfg_dict, out, s)] = s
                todo.remove(s)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                s = running.pop(f)
                met = f.result()
                done.add(s)
                computed += 1
                self._report(s, met, bar)
                self.collect(time.perf_counter() - t_start)

    def _run_dask(self, graph, todo, done, depth, budget, bar, t_start) -> None:
        """:meth:`_schedule` on a Dask cluster, through its ``concurrent.futures`` executor, with as
        many stages at once as the cluster has worker threads."""
        from distributed import Client

        client = self.scheduler if isinstance(self.scheduler, Client) else Client(self.scheduler)
        try:
            slots = max(1, sum(client.nthreads().values()))
            pool = client.get_executor(pure=False, retries=0)
            self._schedule(pool, slots, str(self.out.resolve()), graph, todo, done, depth, budget, bar, t_start)
        finally:
            if client is not self.scheduler:
                client.close()

    def _executor(self) -> str:
        if self.scheduler is None:
            return f"local process pool ({self.cfg.workers} workers)" if self.cfg.workers > 1 else "in process"
        addr = getattr(self.scheduler, "scheduler", None)
        return f"dask distributed ({getattr(addr, 'address', self.scheduler)})"

    def _report(self, stage: str, met: dict, bar) -> None:
        bar.update(1)
        extra = f" l1_to_p1={met['l1_to_p1']:.3f}" if "l1_to_p1" in met else ""
        self.log(f"{stage}: {met['wall_s']:.0f}s loss_real={met['loss_real']:.3f} "
                 f"entropy={met['entropy']:.3f}{extra}")

    def collect(self, wall: float | None = None) -> dict:
        """Gather the per-stage metrics into ``metrics.json`` (stages not yet run are absent)."""
        stages = {}
        for s in stage_graph(self.cfg):
            p = self.stages.metrics_path(s)
            if p.is_file():
                stages[s] = json.loads(p.read_text())
        prev = {}
        if (self.out / "metrics.json").is_file():
            prev = json.loads((self.out / "metrics.json").read_text())
        walls = dict(prev.get("invocation_wall_s", {}))
        if wall is not None:
            walls[self.invocation] = wall  # one entry per invocation (start time), updated as it runs
        env = dict(environment(self.cfg.threads), executor=self._executor())
        out = {"config": self.cfg.to_dict(), "environment": env,
               "invocation_wall_s": walls, "floor": self.floor(), "stages": stages}
        tmp = self.out / "metrics.json.tmp"
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, self.out / "metrics.json")
        return out


    def floor_of(self, n: int, rule: str = "") -> dict | None:
        """The retraining floor for chains of size ``n`` (and training ``rule``): the drift
        ``(1/K) sum_c ||p_a - p_b||_1`` between generation-1 models trained on the same real data
        with different seeds ``a < b`` (``None`` until two of them exist)."""
        P = {}
        for s in range(self.cfg.floor_seeds):
            st = gen1_stage(n, s, rule)
            if self.stages.done(st):
                P[s] = self.stages.load(st)["P"]
        self.stages._cache.clear()
        if len(P) < 2:
            return None
        seeds = sorted(P)
        pairs = [(a, b, float((P[a] - P[b]).abs().sum(dim=1).mean())) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
        vals = [v for _, _, v in pairs]
        return {"pairs": [list(p) for p in pairs], "mean": float(np.mean(vals)), "min": min(vals), "max": max(vals)}

    def floor(self) -> dict:
        """Floors keyed ``"<n>"`` (the run's recipe) or ``"<n>/<rule>"`` (a chain's own rule)."""
        keys = sorted({(c.first_n, c.rule) for c in self.cfg.chains})
        return {f"{n}/{rule}" if rule else str(n): self.floor_of(n, rule) for n, rule in keys}


def _remaining_depth(graph: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Length of the longest chain of stages that starts at each stage (scheduling priority)."""
    children: dict[str, list[str]] = {s: [] for s in graph}
    for s, deps in graph.items():
        for d in deps:
            children[d].append(s)
    depth: dict[str, int] = {}
    for s in reversed(list(graph)):
        depth[s] = 1 + max((depth[c] for c in children[s]), default=0)
    return depth
