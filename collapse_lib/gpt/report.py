"""Reading, summarising and plotting a run of :mod:`collapse_lib.gpt.runner` (and its n-gram
companion ``ngram.json``). Used by chapter 9 on the committed run (``results/gpt/``) and on its
live demo, and by the tests.

Randomness is summarised where it lives: across training seeds. A chain's value at generation
``m`` is the mean over its seeds; its error bar is the standard error over seeds; comparisons
between chains that share seeds (same generation-1 model) are computed per seed (paired).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: metric key -> axis label
METRICS: dict[str, str] = {
    "l1_to_p1": r"drift from $p^{(1)}$, $D^{(1)}_m$",
    "l1_to_p0": r"drift from $p^{(0)}$, $D^{(0)}_m$",
    "entropy": "mean entropy (nats)",
    "max_prob": "mean largest probability",
    "support": r"mean support ($p > 10^{-3}$)",
    "distinct4": "distinct 4-gram rate of the sample",
    "rare_rate": "rare-character rate of the sample",
    "xent_p0": r"sample's cross-entropy under $p^{(0)}$",
    "loss_real": "loss on Shakespeare (nats/char)",
    "loss_p0_heldout": r"loss on held-out $p^{(0)}$ text",
}
#: chain name -> plotting style
STYLE: dict[str, dict] = {
    "fully_100k": dict(color="#c0392b", marker="o", label="fully synthetic, n = 100k"),
    "fully_20k": dict(color="#8e44ad", marker="^", label="fully synthetic, n = 20k"),
    "partially_100k": dict(color="#1f5fa8", marker="s", label="partially synthetic, N = n = 100k"),
    "fully_100k_T0.8": dict(color="#d68910", marker="D", label="fully synthetic, n = 100k, T = 0.8"),
}


def load_run(path: str | Path) -> dict:
    """Load a run's ``metrics.json`` (``path`` is the file or its directory); ``ngram.json`` next to
    it, when present, is attached under the key ``"ngram"``."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m collapse_lib.gpt run --out DIR` first")
    run = json.loads(path.read_text())
    ng = path.parent / "ngram.json"
    if ng.is_file():
        run["ngram"] = json.loads(ng.read_text())
    return run


def chains(run: dict) -> list[dict]:
    """The configurations of the run's chains, as listed in its config."""
    return run["config"]["chains"]


def get_chain(run: dict, name: str) -> dict:
    """The configuration of the chain called `name` (keys name, scheme, n, temperature, seeds)."""
    for c in chains(run):
        if c["name"] == name:
            return c
    raise ValueError(f"no chain {name!r} in this run (have {[c['name'] for c in chains(run)]})")


def values(run: dict, chain: str, key: str) -> np.ndarray:
    """``(seeds, generations)`` array of metric ``key`` for ``chain`` (NaN where not yet run)."""
    c = get_chain(run, chain)
    G = run["config"]["generations"]
    out = np.full((len(c["seeds"]), G), np.nan)
    for i, s in enumerate(c["seeds"]):
        for m in range(1, G + 1):
            st = run["stages"].get(f"{chain}/s{s}/gen{m}")
            if st is not None:
                if key not in st:
                    raise ValueError(f"unknown metric {key!r}; available: {sorted(k for k in st if k in METRICS)}")
                out[i, m - 1] = st[key]
    return out


def seed_summary(run: dict, chain: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generations ``m``, mean over seeds and standard error over seeds (NaN with one seed)."""
    v = values(run, chain, key)
    m = np.arange(1, v.shape[1] + 1)
    mean = np.nanmean(v, axis=0) if np.isfinite(v).any() else np.full(v.shape[1], np.nan)
    cnt = np.isfinite(v).sum(axis=0)
    sd = np.array([np.nanstd(v[:, j], ddof=1) if cnt[j] > 1 else np.nan for j in range(v.shape[1])])
    return m, mean, sd / np.sqrt(np.maximum(cnt, 1))


def paired_difference(run: dict, a: str, b: str, key: str, m: int) -> tuple[float, float, int]:
    """Mean over the seeds both chains share of ``key(a) - key(b)`` at generation ``m``, its
    standard error over those seeds, and their number."""
    ca, cb = get_chain(run, a), get_chain(run, b)
    common = [s for s in ca["seeds"] if s in cb["seeds"]]
    d = []
    for s in common:
        x, y = run["stages"].get(f"{a}/s{s}/gen{m}"), run["stages"].get(f"{b}/s{s}/gen{m}")
        if x is not None and y is not None:
            d.append(x[key] - y[key])
    if not d:
        raise ValueError(f"chains {a!r} and {b!r} share no completed seed at generation {m}")
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(np.mean(d)), se, len(d)


def floor(run: dict, n: int) -> dict | None:
    """The retraining floor for chains of size ``n`` (``None`` if fewer than two seeds ran)."""
    return run.get("floor", {}).get(str(n))


def floor_band(run: dict, n: int, key: str) -> tuple[float, float] | None:
    """The band drawn on a drift panel for chains of size ``n``: for ``l1_to_p1`` the range of the
    retraining floor over seed pairs; for ``l1_to_p0`` the range of the drift from ``p^(0)`` over the
    generation-1 models of all seeds (where one retraining of generation 1 lands)."""
    if key == "l1_to_p1":
        fl = floor(run, n)
        return (fl["min"], fl["max"]) if fl else None
    if key == "l1_to_p0":
        v = [st["l1_to_p0"] for name, st in run["stages"].items() if name.startswith(f"gen1/n{n}/")]
        return (min(v), max(v)) if len(v) > 1 else None
    return None


def plot_metric(run: dict, key: str = "l1_to_p1", ax=None, names=None, band: bool = True, seeds: bool = True):
    """One panel: ``key`` against the generation for each chain: mean over seeds with error bars of
    one standard error over seeds, each seed as a faint point; on the drift panels the band of
    :func:`floor_band` for each sample size (the noise floor of retraining)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    names = [c["name"] for c in chains(run)] if names is None else names
    if band and key in ("l1_to_p1", "l1_to_p0"):
        for n in sorted({get_chain(run, nm)["n"] for nm in names}):
            b = floor_band(run, n, key)
            if b:
                what = "retraining floor" if key == "l1_to_p1" else "generation 1 over seeds"
                ax.axhspan(b[0], max(b[1], b[0] + 1e-3), color="0.5" if n >= 100_000 else "#b59ccf", alpha=0.25,
                           lw=0, label=f"{what}, n = {n // 1000}k")
    for nm in names:
        st = STYLE.get(nm, {"label": nm})
        m, mean, se = seed_summary(run, nm, key)
        ax.errorbar(m, mean, yerr=np.nan_to_num(se), capsize=2, ms=4, lw=1.4, **st)
        if seeds:
            v = values(run, nm, key)
            for row in v:
                ax.plot(m, row, ls="none", marker=st.get("marker", "o"), ms=2.5, color=st.get("color"), alpha=0.35)
    ax.set_xlabel("generation $m$")
    ax.set_ylabel(METRICS.get(key, key))
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return ax


def legend_below(fig, ax, ncol: int = 3) -> None:
    """One legend for a multi-panel figure, below the panels (taken from ``ax``)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * (len(labels) // ncol), 1, 1))


def plot_curves(run: dict, chain: str, seed: int, ax=None):
    """Training curves (loss on the held-out part of the generation's own training data against
    the iteration) of every generation of one chain and seed; dashed: the training loss."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    G = run["config"]["generations"]
    cmap = plt.get_cmap("viridis")
    for m in range(1, G + 1):
        st = run["stages"].get(f"{chain}/s{seed}/gen{m}")
        if st is None or "curve" not in st:
            continue
        cu, col = st["curve"], cmap((m - 1) / max(1, G - 1))
        ax.plot(cu["iter"], cu["heldout_loss"], color=col, label=f"gen {m}")
        ax.plot(cu["iter"], cu["train_loss"], color=col, ls="--", lw=0.8)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(STYLE.get(chain, {}).get("label", chain) + f", seed {seed}", fontsize=9)
    ax.grid(alpha=0.3)
    return ax


def ngram_summary(run: dict, k: int, chain: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generations, mean and standard error over seeds of ``key`` for the order-``k`` count model
    pushed through ``chain``."""
    if "ngram" not in run:
        raise ValueError("this run has no ngram.json: run `python -m collapse_lib.gpt ngram --out DIR`")
    entry = run["ngram"]["chains"].get(f"k{k}/{chain}")
    if entry is None:
        raise ValueError(f"no count model of order {k} for chain {chain!r}")
    d = entry["metrics"][key]
    mean = np.array(d["mean"], dtype=float)
    return np.arange(1, len(mean) + 1), mean, np.array(d["se"], dtype=float)


def samples(run: dict, chain: str, seed: int, generations=(1, None), width: int = 260) -> dict[str, str]:
    """Opening characters of the samples of ``chain`` (``None`` = last generation)."""
    G = run["config"]["generations"]
    out = {}
    for g in generations:
        g = G if g is None else g
        st = run["stages"].get(f"{chain}/s{seed}/gen{g}")
        if st is not None:
            out[f"generation {g}"] = st["sample_text"][:width]
    return out
