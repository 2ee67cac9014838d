"""Reading and plotting the ``metrics.json`` written by :class:`~collapse_lib.gpt.runner.Runner`.

Used by the GPT chapter (Figure 3 of the paper) and by the tests, on the committed full run
(``results/gpt/metrics.json``) as well as on the chapter's live ``--quick`` demo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: metric key -> axis label
METRICS: dict[str, str] = {
    "l1_to_p1": r"$\frac{1}{K}\sum_c \|p^{(m)}(\cdot|c) - p^{(1)}(\cdot|c)\|_1$",
    "l1_to_p0": r"$\frac{1}{K}\sum_c \|p^{(m)}(\cdot|c) - p^{(0)}(\cdot|c)\|_1$",
    "val_loss_gen0": "validation loss on generation-0 text (nats)",
    "val_loss_real": "validation loss on Shakespeare (nats)",
    "entropy": "mean entropy of $p^{(m)}(\\cdot|c)$ (nats)",
    "max_prob": r"mean $\|p^{(m)}(\cdot|c)\|_\infty$",
}
SCHEME_STYLE = {"fully": dict(color="#c0392b", marker="o", label="fully synthetic"),
                "partially": dict(color="#1f5fa8", marker="s", label="partially synthetic (real + synthetic)")}


def load_results(path: str | Path) -> dict:
    """Load a ``metrics.json`` file (raises ``FileNotFoundError`` with a hint if missing)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m collapse_lib.gpt run --out DIR` first")
    return json.loads(path.read_text())


def series(results: dict, scheme: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Generations ``m``, values of ``key`` and (for L1 metrics) standard errors for ``scheme``."""
    rows = results["results"]["schemes"].get(scheme)
    if not rows:
        raise ValueError(f"scheme {scheme!r} not in results (have {list(results['results']['schemes'])})")
    if key not in rows[0]:
        raise ValueError(f"unknown metric {key!r}; available: {sorted(k for k in rows[0] if k in METRICS)}")
    m = np.array([r["generation"] for r in rows])
    v = np.array([r[key] for r in rows], dtype=float)
    se = np.array([r.get(key + "_se", np.nan) for r in rows], dtype=float) if key + "_se" in rows[-1] else None
    return m, v, se


def plot_metric(results: dict, key: str = "l1_to_p1", ax=None, gen0_line: bool = True):
    """One panel: ``key`` against the generation for every scheme in ``results`` (error bars = 2
    standard errors over contexts for the L1 metrics); a dotted line marks generation 0."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for scheme in results["results"]["schemes"]:
        m, v, se = series(results, scheme, key)
        style = SCHEME_STYLE.get(scheme, {"label": scheme})
        if se is not None and np.isfinite(se).all():
            ax.errorbar(m, v, yerr=2 * se, capsize=2, ms=4, **style)
        else:
            ax.plot(m, v, ms=4, **style)
    g0 = results["results"].get("gen0") or {}
    if gen0_line and key in g0 and key.startswith("val_loss"):
        ax.axhline(g0[key], color="0.4", ls=":", label="generation 0")
    ax.set_xlabel("generation $m$")
    ax.set_ylabel(METRICS.get(key, key))
    ax.grid(alpha=0.3)
    return ax


def plot_figure3(results: dict, keys=("l1_to_p1", "val_loss_gen0", "val_loss_real", "entropy")):
    """Four panels in the layout of the paper's Figure 3: drift from ``p^(1)`` and three curves
    of validation behaviour (we show the entropy where the paper's third loss panel was)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, key in zip(axes.flat, keys):
        plot_metric(results, key, ax)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def samples_side_by_side(results: dict, generations=(1, None), width: int = 200) -> dict[str, str]:
    """Sample texts keyed ``"<scheme> gen <m>"`` (``None`` = last generation), cut to ``width``."""
    out = {}
    for scheme, rows in results["results"]["schemes"].items():
        by_gen = {r["generation"]: r for r in rows}
        for g in generations:
            g = max(by_gen) if g is None else g
            if g in by_gen:
                out[f"{scheme} gen {g}"] = by_gen[g]["sample"][:width]
    return out
