"""Reading, summarising and plotting a run of :mod:`collapse_lib.gpt.runner` (and its n-gram
companion ``ngram.json``). Used by chapter 10 on the committed runs (``results/gpt/`` and the
controls in ``results/gpt/controls/``) and on its live demo, by chapter 10, and by the tests.

Randomness is summarised where it lives: across training seeds. A chain's value at generation
``m`` is the mean over its seeds; its error bar is the standard error over seeds; comparisons
between chains that share seeds (same generation-1 model) are computed per seed (paired).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

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
    "passes": "passes over the training data",
    "icl_copy_gain": "copy gain (nats): 1st - 2nd copy",
    "icl_context_gain": "context gain (nats): short - long",
}
#: metric key -> plain words, for the controls of the widgets and for tables
METRIC_NAMES: dict[str, str] = {
    "l1_to_p1": "drift from generation 1",
    "l1_to_p0": "drift from the ground truth",
    "entropy": "mean entropy",
    "max_prob": "mean largest probability",
    "support": "mean support",
    "distinct4": "distinct 4-grams of the sample",
    "rare_rate": "rare characters in the sample",
    "xent_p0": "sample's cross-entropy under p0",
    "loss_real": "loss on Shakespeare",
    "loss_p0_heldout": "loss on held-out p0 text",
    "passes": "passes over the data",
    "icl_copy_gain": "copy gain (in-context)",
    "icl_context_gain": "long-context gain",
}
#: chain name -> plotting style
STYLE: dict[str, dict] = {
    "fully_100k": dict(color="#c0392b", marker="o", label="fully synthetic, n = 100k"),
    "fully_20k": dict(color="#8e44ad", marker="^", label="fully synthetic, n = 20k"),
    "partially_100k": dict(color="#1f5fa8", marker="s", label="partially synthetic, N = n = 100k"),
    "fully_100k_T0.8": dict(color="#d68910", marker="D", label="fully synthetic, n = 100k, T = 0.8"),
    "partially_50k": dict(color="#17a589", marker="v", label="partially synthetic, N = n = 50k"),
    "fully_200k": dict(color="#6e2c00", marker="P", label="fully synthetic, n = 200k"),
    "fully_20k_best": dict(color="#d7bde2", marker="^", label="fully, n = 20k, stopped at best", ls="--"),
    "fully_100k_best": dict(color="#f1948a", marker="o", label="fully, n = 100k, stopped at best", ls="--"),
}


def load_run_if_present(path: str | Path) -> dict | None:
    """:func:`load_run`, or ``None`` when the run (e.g. a run still in progress) is not there."""
    try:
        return load_run(path)
    except FileNotFoundError:
        return None


def has_chain(run: dict | None, name: str, generations: int | None = None) -> bool:
    """Whether ``run`` has chain ``name`` with at least two seeds that completed ``generations``
    generations (default: all of the run's)."""
    if run is None or name not in [c["name"] for c in chains(run)]:
        return False
    G = run["config"]["generations"] if generations is None else generations
    done = [s for s in get_chain(run, name)["seeds"] if f"{name}/s{s}/gen{G}" in run["stages"]]
    return len(done) >= 2


def chain_floor(run: dict, name: str) -> dict | None:
    """The retraining floor that is the null of chain ``name``: the drift between generation-1
    models trained, with the chain's own training rule, on the same real data as its generation 1
    (``None`` if the run has no such floor)."""
    c = get_chain(run, name)
    rule = ",".join(f"{k}={v}" for k, v in sorted(c.get("train", {}).items()))
    n = c.get("gen1_n") or c["n"]
    return run.get("floor", {}).get(f"{n}/{rule}" if rule else str(n))


def recipe_passes(iters: int, batch: int, context: int, n: int) -> float:
    """Passes over ``n`` training characters made by ``iters`` iterations of ``batch`` windows of
    ``context`` predicted characters: ``iters * batch * context / n`` (characters seen / data)."""
    for name, v in (("iters", iters), ("batch", batch), ("context", context), ("n", n)):
        if not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return iters * batch * context / n


def overfit_signature(run: dict, chain: str, generations=None) -> tuple[float, float]:
    """Mean over seeds and generations (default ``2..G``) of (held-out - training loss) at the end
    of training, and of (final - minimum) held-out loss: the two signatures of over-fitting."""
    G = run["config"]["generations"]
    gens = range(2, G + 1) if generations is None else generations
    gaps, rises = [], []
    for s in get_chain(run, chain)["seeds"]:
        for m in gens:
            st = run["stages"].get(f"{chain}/s{s}/gen{m}")
            if st is None:
                continue
            cu = st["curve"]
            gaps.append(cu["heldout_loss"][-1] - cu["train_loss"][-1])
            rises.append(cu["heldout_loss"][-1] - min(cu["heldout_loss"]))
    if not gaps:
        raise ValueError(f"chain {chain!r} has no completed stage in generations {list(gens)}")
    return float(np.mean(gaps)), float(np.mean(rises))


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
    cnt = np.isfinite(v).sum(axis=0)
    # generations no seed has reached yet (a run in progress, or a shorter run) stay NaN
    mean = np.where(cnt > 0, np.nansum(v, axis=0) / np.maximum(cnt, 1), np.nan)
    sd = np.array([np.nanstd(v[:, j], ddof=1) if cnt[j] > 1 else np.nan for j in range(v.shape[1])])
    return m, mean, sd / np.sqrt(np.maximum(cnt, 1))


def paired_difference(run: dict, a: str, b: str, key: str, m: int,
                      run_b: dict | None = None) -> tuple[float, float, int]:
    """Mean over the seeds both chains share of ``key(a) - key(b)`` at generation ``m``, its
    standard error over those seeds, and their number. Chain ``b`` is read from ``run_b`` when
    given (a second run whose chains share their generation-1 models with ``run``'s, seed by seed)."""
    rb = run if run_b is None else run_b
    ca, cb = get_chain(run, a), get_chain(rb, b)
    common = [s for s in ca["seeds"] if s in cb["seeds"]]
    d = []
    for s in common:
        x, y = run["stages"].get(f"{a}/s{s}/gen{m}"), rb["stages"].get(f"{b}/s{s}/gen{m}")
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
        v = [st["l1_to_p0"] for name, st in run["stages"].items()
             if name.startswith(f"gen1/n{n}/") and name.count("/") == 2]
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
        sizes = {}
        for nm in names:
            c = get_chain(run, nm)
            if not c.get("train"):  # chains with their own training rule have their own floor
                sizes.setdefault(c.get("gen1_n") or c["n"], nm)
        for n in sorted(sizes):
            b = floor_band(run, n, key)
            if b:
                what = "retraining floor" if key == "l1_to_p1" else "generation 1 over seeds"
                color = {20_000: "#b59ccf", 200_000: "#c9a27e"}.get(n, "0.5")
                ax.axhspan(b[0], max(b[1], b[0] + 1e-3), color=color, alpha=0.25, lw=0,
                           label=f"{what}, n = {n // 1000}k")
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
    engine = fig.get_layout_engine()
    if engine is not None and type(engine).__name__ == "ConstrainedLayoutEngine":  # new_axes figures
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)
        return
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
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
    ax.set_title(STYLE.get(chain, {}).get("label", chain) + f", seed {seed}")
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


def bridge_rows(run: dict) -> list[dict]:
    """One row per (order, chain) of the count-model bridge (``run["ngram"]``), last generation:
    ``k``, ``chain``, ``temperature``, ``formula`` (the prediction that applies: (B1), (B1T) or
    (B2), see :data:`collapse_lib.gpt.ngram.FORMULAS`), ``S1``, ``measured`` and ``predicted`` mean
    ``S`` at the last generation, ``z`` = (measured - predicted) / s.e. over chains, ``ratio`` =
    measured change of ``S`` / predicted change (for (B1T), whose prediction is one step from the
    measured previous law, the change over the last step), and, for chains sampled at ``T != 1``,
    ``z_unbiased`` and ``ratio_unbiased`` of the unbiased formula (B1). Fully synthetic rows also
    carry ``zres`` (the one-step residual of (B1) in standard errors) and ``sup_miss`` (measured
    minus predicted support at the end, as a fraction of the support lost). Where the entry holds a
    ``bridge_tempered`` (:func:`collapse_lib.gpt.ngram.add_tempered_predictions` on chains of
    another real set), the S columns come from it and ``rerun`` is True."""
    if "ngram" not in run:
        raise ValueError("this run has no ngram.json: run `python -m collapse_lib.gpt ngram --out DIR`")
    rows = []
    for e in run["ngram"]["chains"].values():
        b = e["bridge"]
        meas = np.array(b["measured"])
        T = float(e.get("temperature", 0.8 if e["chain"].endswith("T0.8") else 1.0))
        # a file written before the tempered prediction existed holds (B1)/(B2) only
        formula = b.get("formula", "B1" if "residual" in b else "B2")
        if "bridge_tempered" in e:  # (B1T) recomputed on chains of another real set: judge it there
            b = e["bridge_tempered"]
            meas, formula = np.array(b["measured"]), "B1T"
        row = {"k": e["k"], "chain": e["chain"], "temperature": T, "formula": formula, "S1": float(meas[0]),
               "rerun": "bridge_tempered" in e}
        unb_pred, unb_se = np.array(b["predicted"]), np.array(b["se"])
        if formula == "B1T":
            pred, se = np.array(b["predicted_tempered"]), np.array(b["se_tempered"])
            row["ratio"] = float((meas[-1] - meas[-2]) / (pred[-1] - meas[-2]))
            row["z_unbiased"] = float((meas[-1] - unb_pred[-1]) / unb_se[-1])
            row["ratio_unbiased"] = float((meas[-1] - meas[0]) / (unb_pred[-1] - unb_pred[0]))
        else:
            pred, se = unb_pred, unb_se
            row["ratio"] = float((meas[-1] - meas[0]) / (pred[-1] - pred[0]))
        row.update(measured=float(meas[-1]), predicted=float(pred[-1]), se=float(se[-1]),
                   z=float((meas[-1] - pred[-1]) / se[-1]))
        b = e["bridge"]  # the support comparison and the residual of (B1) come from the stored chains
        if "residual" in b:
            row["zres"] = float(b["residual"] / b["residual_se"])
        if "support_measured" in b:
            lost = b["support_measured"][0] - b["support_measured"][-1]
            row["sup_miss"] = float((b["support_measured"][-1] - b["support_predicted"][-1]) / lost)
        rows.append(row)
    return rows


def plot_bridge(run: dict, k: int, chain: str, ax, what: str = "S"):
    """One panel of the bridge for the order-``k`` count model of ``chain``: measured mean ``S``
    (``what="S"``) or support (``what="support"``) of the live generation-1 contexts, with error
    bars of one s.e. of (measured - predicted) over chains, against the prediction(s)."""
    entry = run["ngram"]["chains"][f"k{k}/{chain}"]
    b = entry["bridge"]
    if what == "S" and "bridge_tempered" in entry:  # (B1T) judged on its own chains
        b = entry["bridge_tempered"]
    if what == "S":
        meas, err = b["measured"], b["se"]
        preds = [(b["predicted"], "k--", "predicted, unbiased (B1)")]
        if b.get("formula") == "B1T":
            err = b["se_tempered"]
            preds.append((b["predicted_tempered"], "g:", "predicted, tempered (B1T)"))
        ax.set_ylabel(r"mean $S_m(c)$, live contexts")
    elif what == "support":
        meas, err = b["support_measured"], b["support_se"]
        preds = [(b["support_predicted"], "k--", "predicted (Wright-Fisher)")]
        ax.set_ylabel("mean support ($p > 0$)")
    else:
        raise ValueError(f"what must be 'S' or 'support', got {what!r}")
    ax.errorbar(b["m"], meas, yerr=err, fmt="o", ms=4, capsize=2, label="measured (count model)")
    for y, fmt, lab in preds:
        ax.plot(b["m"], y, fmt, lw=1.6, label=lab)
    ax.set_xlabel("generation $m$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def plot_against_count_models(run: dict, key: str, ax, gpt=("fully_100k", "fully_20k", "fully_100k_T0.8"),
                              k_small: int = 4):
    """Sample instrument ``key`` (``"distinct4"`` or ``"xent_p0"``) of the GPT chains ``gpt`` (colours)
    against the count models of every order pushed through ``fully_100k`` (grey) and the order
    ``k_small`` model through ``fully_20k`` (violet); dotted green: the real set."""
    for name in gpt:
        st = STYLE[name]
        m, v, se = seed_summary(run, name, key)
        ax.errorbar(m, v, yerr=np.nan_to_num(se), color=st["color"], marker=st["marker"], ms=4, lw=1.6,
                    label="GPT: " + st["label"])
    for k, ls in zip(run["ngram"]["orders"], ("-", "--", "-.", ":")):
        m, v, se = ngram_summary(run, k, "fully_100k", key)
        ax.errorbar(m, v, yerr=se, color="0.45", ls=ls, lw=1.1, label=f"count model k = {k}, n = 100k")
    m, v, se = ngram_summary(run, k_small, "fully_20k", key)
    ax.errorbar(m, v, yerr=se, color="#b59ccf", ls="--", lw=1.3, label=f"count model k = {k_small}, n = 20k")
    ax.axhline(run["stages"]["p0"][key], color="#2e8b57", lw=1.2, ls=(0, (1, 3)),
               label="real set (samples of $p^{(0)}$)")
    ax.set_xlabel("generation $m$")
    ax.set_ylabel(METRICS[key])
    return ax


def merge_runs(a: dict, b: dict | None) -> dict:
    """One run dictionary holding the chains and stages of ``a`` and ``b`` (``b`` may be ``None``), for
    drawing chains of two runs with a common ``p^(0)`` on the same axes: stages present in both (the
    shared ``p^(0)`` and generation-1 models) are taken from ``a``, floors of ``b`` fill the sizes
    ``a`` lacks; generations run to the larger of the two. Chain names must not collide."""
    if b is None:
        return a
    clash = {c["name"] for c in chains(a)} & {c["name"] for c in chains(b)}
    if clash:
        raise ValueError(f"both runs have chains {sorted(clash)}")
    cfg = {**a["config"], "chains": chains(a) + chains(b),
           "generations": max(a["config"]["generations"], b["config"]["generations"])}
    return {**a, "config": cfg, "stages": {**b["stages"], **a["stages"]},
            "floor": {**b.get("floor", {}), **a.get("floor", {})}}


#: chain name -> a short name for table cells
SHORT_NAMES: dict[str, str] = {
    "fully_100k": "fully 100k", "fully_20k": "fully 20k", "partially_100k": "partially 100k",
    "fully_100k_T0.8": "fully 100k, T 0.8", "partially_50k": "partially 50k",
    "fully_200k": "fully 200k", "fully_20k_best": "fully 20k, stopped",
    "fully_100k_best": "fully 100k, stopped",
}


def kept_passes(run: dict, chain: str) -> np.ndarray:
    """``(seeds, generations)`` passes over the training data made by the weights each stage kept:
    the recorded ``passes`` scaled by ``best_iter / iters_trained`` under the ``stop=best`` rule
    (the weights of the best held-out loss), the recorded ``passes`` otherwise; for a run that
    predates the record, the recipe's passes (:func:`recipe_passes`). NaN where not yet run."""
    c = get_chain(run, chain)
    cfg = run["config"]
    G = cfg["generations"]
    out = np.full((len(c["seeds"]), G), np.nan)
    n = c["n"] + ((c.get("n_real") or cfg["n_real"]) if c["scheme"] == "partially" else 0)
    for i, s in enumerate(c["seeds"]):
        for m in range(1, G + 1):
            st = run["stages"].get(f"{chain}/s{s}/gen{m}")
            if st is None:
                continue
            if "passes" not in st:
                tr = cfg["train"]
                out[i, m - 1] = recipe_passes(tr["max_iters"], tr["batch_size"], cfg["model"]["block_size"],
                                              n if m > 1 else c.get("gen1_n") or c["n"])
            elif st.get("best_iter") is not None and st.get("iters_trained"):
                out[i, m - 1] = st["passes"] * st["best_iter"] / st["iters_trained"]
            else:
                out[i, m - 1] = st["passes"]
    return out


def completed_generations(run: dict | None, name: str, min_seeds: int = 2) -> int:
    """The last generation that at least ``min_seeds`` seeds of chain ``name`` completed, every
    earlier one included (0 when the chain or the run is missing: a run still in progress)."""
    if run is None or name not in [c["name"] for c in chains(run)]:
        return 0
    seeds = get_chain(run, name)["seeds"]
    m = 0
    while sum(f"{name}/s{s}/gen{m + 1}" in run["stages"] for s in seeds) >= min_seeds:
        m += 1
    return m
