"""Chapter 9 widget: the in-context learner across generations, from the population recursion.

:func:`icl_figure` draws, for prompt length N and K real labels per sequence of N + 1, the
in-context risk on real prompts, eq. (I5) of :mod:`collapse_lib.icl`, and the learned gain g_m
(Gamma_m = g_m I) with the overlap rho_m of the written tasks, eq. (I4), next to the fully
synthetic loop (K = 0) and real data only (K = N + 1). It computes no simulation, so every frame
of the kernel-free version costs milliseconds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import _validate as V
from .. import icl
from ..plotting import MEAN_COLOR, THEORY_COLOR, new_axes

__all__ = ["icl_figure"]


def icl_figure(N: int = 20, K: int = 2, sigma: float = 0.5, d: int = 5, generations: int = 60) -> tuple[Figure, dict]:
    """Risk and gain across generations for (N, K, sigma, d); returns ``(fig, numbers)``.

    ``numbers``: ``risk_1`` (generation 1, real data), ``risk_last`` and ``g_last`` (generation
    ``generations``), ``null`` (sigma^2 + d, the risk of predicting 0), ``kappa`` = K / (N + 1),
    ``collapse`` (first generation with g_m < 1/2, or ``"none"``). Raises ValueError (naming the
    argument) on bad input, e.g. K > N + 1.
    """
    s = icl.ICLSetting(d=d, N=N, sigma=sigma, K=K)
    G = V.integer("generations", generations, minimum=1, maximum=10_000)
    r = icl.recursion(s, G)
    full = icl.recursion(icl.ICLSetting(d=d, N=N, sigma=sigma, K=0), G)
    m = np.arange(1, G + 1)
    fig, (ax1, ax2) = new_axes(ncols=2)
    null = s.sigma**2 + s.d
    ax1.plot(m, r.risk[1:], color=MEAN_COLOR, label=f"K = {s.K} real labels")
    if s.K != 0:
        ax1.plot(m, full.risk[1:], color="0.5", ls="--", label="fully synthetic (K = 0)")
    ax1.axhline(r.risk[1], color=THEORY_COLOR, ls=":", label="real data only")
    ax1.axhline(null, color="0.3", lw=0.8, label=r"predict 0: $\sigma^2 + d$")
    ax1.set_xlabel("generation $m$")
    ax1.set_ylabel("in-context risk on real prompts")
    ax1.set_ylim(s.sigma**2 * 0.9, null * 1.05)
    ax1.legend(loc="center right", fontsize=9)
    ax2.plot(m, r.g[1:], color=MEAN_COLOR, label=r"gain $g_m$")
    ax2.plot(m, r.rho[1:], color=THEORY_COLOR, ls="--", label=r"overlap $\rho_m$")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("generation $m$")
    ax2.legend(loc="upper right", fontsize=9)
    ax1.set_title(f"N = {s.N}, d = {s.d}, σ = {s.sigma:g}")
    ax2.set_title(f"{s.K} of {s.N + 1} labels real")
    below = np.nonzero(r.g[1:] < 0.5)[0]
    numbers = dict(risk_1=float(r.risk[1]), risk_last=float(r.risk[G]), g_last=float(r.g[G]), null=null,
                   kappa=s.K / (s.N + 1), collapse=int(m[below[0]]) if below.size else "none", generations=G)
    return fig, numbers
