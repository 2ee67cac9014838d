"""Shared figure helpers, so that every chapter draws the same quantities the same way.

The paper's Figures 4-6 draw one thin line per independent run and the mean across runs
on top; :func:`plot_runs` is that picture. :func:`simplex_xy` maps points of the
probability simplex Delta^2 to the plane for the simplex pictures of Chapter 1.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

__all__ = ["RUN_COLOR", "MEAN_COLOR", "THEORY_COLOR", "plot_runs", "simplex_xy", "draw_simplex", "new_axes"]

RUN_COLOR = "#e6b422"  # one thin line per run (the paper's yellow)
MEAN_COLOR = "#c0392b"  # empirical mean across runs (the paper's red)
THEORY_COLOR = "#1f5fa8"  # closed forms and bounds (dashed)


def new_axes(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kwargs):
    """Create a figure with ``nrows x ncols`` axes of a common size, with constrained layout."""
    if ncols < 1 or nrows < 1:
        raise ValueError(f"need at least one row and one column, got nrows={nrows}, ncols={ncols}")
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", **kwargs)


def plot_runs(
    ax: Axes,
    values: np.ndarray,
    x: Optional[Sequence[float]] = None,
    *,
    max_lines: int = 100,
    label: str = "mean over runs",
    alpha: float = 0.35,
) -> np.ndarray:
    """Draw one line per run (rows of ``values``) and their mean; return the mean curve.

    ``values`` has shape (runs, T). Entries that are NaN (for example runs that stopped)
    are skipped by the mean.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D array (runs, time), got shape {values.shape}")
    xs = np.arange(values.shape[1]) if x is None else np.asarray(x)
    if xs.shape != (values.shape[1],):
        raise ValueError(f"x has shape {xs.shape}, expected ({values.shape[1]},)")
    for row in values[:max_lines]:
        ax.plot(xs, row, color=RUN_COLOR, lw=0.6, alpha=alpha)
    mean = np.nanmean(values, axis=0)
    ax.plot(xs, mean, color=MEAN_COLOR, lw=1.8, label=label)
    return mean


_VERTICES = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])


def simplex_xy(p: np.ndarray) -> np.ndarray:
    """Barycentric map of points of Delta^2 (last axis of length 3) to the plane.

    Vertex delta_1 goes to (0, 0), delta_2 to (1, 0) and delta_3 to (1/2, sqrt(3)/2).
    """
    p = np.asarray(p, dtype=float)
    if p.shape[-1] != 3:
        raise ValueError(f"simplex_xy needs points with 3 coordinates, got shape {p.shape}")
    return p @ _VERTICES


def draw_simplex(ax: Axes, labels: Sequence[str] = ("token 1", "token 2", "token 3")) -> None:
    """Draw the outline of the triangle Delta^2 with its vertices labelled."""
    tri = np.vstack([_VERTICES, _VERTICES[:1]])
    ax.plot(tri[:, 0], tri[:, 1], color="0.3", lw=1)
    offsets = [(-0.04, -0.05), (0.04, -0.05), (0.0, 0.04)]
    aligns = ["right", "left", "center"]
    for (x, y), (dx, dy), text, ha in zip(_VERTICES, offsets, labels, aligns):
        ax.text(x + dx, y + dy, text, ha=ha, va="center", fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlim(-0.15, 1.15)
    ax.set_ylim(-0.1, 0.95)
    ax.axis("off")
