"""Chapter 1: the simplex picture of the paper's Figure 1.

Many contexts over a vocabulary of s = 3 tokens, each with its own true next-token
distribution, go through the fully synthetic loop; every distribution is a point of the
triangle Delta^2 and the points drift to its vertices (total collapse).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .. import distributions, plotting
from ..simulate import FullySynthetic, simulate

__all__ = ["snapshot_generations", "simplex_figure"]


def snapshot_generations(generations: int) -> list[int]:
    """Generations drawn in the left panel: 0, about g/30, about g/3, and g itself."""
    if generations < 1:
        raise ValueError(f"generations must be >= 1, got {generations}")
    marks = {0, max(1, round(generations / 30)), max(1, round(generations / 3)), generations}
    return sorted(marks)


def simplex_figure(
    n: int = 1000,
    generations: int = 3000,
    seed: int = 0,
    contexts: int = 81,
) -> tuple[plt.Figure, dict[str, Any]]:
    """Run the fully synthetic loop for `contexts` distributions over 3 tokens; draw Figure 1.

    The true distributions are Dirichlet(1, 1, 1), i.e. uniform on the simplex, one per
    context (81 = 3^4 contexts of length 4 in the paper). Returns the figure and a summary with
    the fraction of contexts that have collapsed (p^(m) is a Dirac mass) at the last generation,
    and the mean of ||p^(m)||_inf there.
    """
    if n < 1:
        raise ValueError(f"n must be a positive sample size, got {n}")
    if contexts < 1:
        raise ValueError(f"contexts must be >= 1, got {contexts}")
    marks = snapshot_generations(generations)
    p0 = distributions.dirichlet(3, alpha=1.0, seed=seed, size=contexts)
    res = simulate(p0, FullySynthetic(n), generations=generations, runs=contexts, seed=seed + 1, keep_history=True)
    hist = res.history  # (contexts, generations + 1, 3)

    fig, (left, right) = plotting.new_axes(ncols=2, width=4.6, height=4.0)
    plotting.draw_simplex(left)
    shades = plt.cm.viridis(np.linspace(0.85, 0.0, len(marks)))
    for m, color in zip(marks, shades):
        xy = plotting.simplex_xy(hist[:, m])
        left.scatter(xy[:, 0], xy[:, 1], s=12, color=color, label=f"generation {m}", zorder=3)
    for k in range(min(contexts, 6)):
        xy = plotting.simplex_xy(hist[k])
        left.plot(xy[:, 0], xy[:, 1], color="0.6", lw=0.4, zorder=1)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    left.set_title(f"next-token distributions of {contexts} contexts")

    plotting.plot_runs(right, res.max_prob, label="mean over contexts")
    right.set_xlabel("generation m")
    right.set_ylabel(r"largest probability $\|p^{(m)}\|_\infty$")
    right.set_ylim(0.3, 1.02)
    right.set_title(f"fully synthetic, n = {n}")
    right.legend(loc="lower right")

    summary = {
        "n": n,
        "generations": generations,
        "contexts": contexts,
        "collapsed_fraction": float(np.mean(res.max_prob[:, -1] == 1.0)),
        "mean_max_prob": float(res.max_prob[:, -1].mean()),
    }
    return fig, summary
