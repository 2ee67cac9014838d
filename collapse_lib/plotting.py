"""Shared figure helpers, so that every chapter draws the same quantities the same way.

The course's one figure style (:data:`COURSE_STYLE`, applied by :func:`use_course_style` in every
chapter's imports cell and by the kernel-free widget frames) is sized for the page: a full-width
figure is :data:`FIG_WIDTH` inches, drawn as SVG at 96 px per inch, so it fills the 784-px column
of the site at its natural size and its text (10.5 pt = 14 px) stays as large as the page's small
print. :func:`new_axes` never makes a figure wider than the column and refuses more than
:data:`MAX_COLS` panels side by side: split such a figure into several.

The paper's Figures 4-6 draw one thin line per independent run and the mean across runs
on top; :func:`plot_runs` is that picture. :func:`simplex_xy` maps points of the
probability simplex Delta^2 to the plane for the simplex pictures of Chapter 1.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

__all__ = ["RUN_COLOR", "MEAN_COLOR", "THEORY_COLOR", "COURSE_STYLE", "FIG_WIDTH", "MAX_COLS", "use_course_style",
           "plot_runs", "simplex_xy", "draw_simplex", "new_axes"]

RUN_COLOR = "#e6b422"  # one thin line per run (the paper's yellow)
MEAN_COLOR = "#c0392b"  # empirical mean across runs (the paper's red)
THEORY_COLOR = "#1f5fa8"  # closed forms and bounds (dashed)


FIG_WIDTH = 8.0  # inches: 768 px at 96 px per inch, the width of the site's text column
MAX_COLS = 3  # panels side by side that a reader can still read at FIG_WIDTH

COURSE_STYLE: dict = {
    "figure.figsize": (FIG_WIDTH, 3.6),
    "figure.dpi": 96,  # inline PNG (when SVG is off) and kernel-free frames: natural size = page size
    "savefig.dpi": 96,
    "figure.constrained_layout.use": True,
    "font.size": 10.5,
    "axes.titlesize": 11.5,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "svg.fonttype": "none",  # text stays text in the SVG: crisp, searchable, small files
    "image.cmap": "viridis",
}


def use_course_style(svg: bool = True) -> None:
    """Apply :data:`COURSE_STYLE` and, in a notebook, render inline figures as SVG.

    Called once in each chapter's imports cell. ``svg=False`` keeps PNG output (for figures with
    very many points, rasterise those artists instead: ``ax.scatter(..., rasterized=True)``).
    """
    plt.rcParams.update(COURSE_STYLE)
    if svg:
        try:
            from IPython import get_ipython
            from matplotlib_inline.backend_inline import set_matplotlib_formats
        except ImportError:  # plain Python: nothing is displayed inline
            return
        if get_ipython() is not None:
            set_matplotlib_formats("svg")


def new_axes(ncols: int = 1, nrows: int = 1, width: Optional[float] = None, height: Optional[float] = None, **kwargs):
    """Create a figure with ``nrows x ncols`` axes of a common size, with constrained layout.

    ``width`` and ``height`` are per panel (inches); by default the figure is :data:`FIG_WIDTH`
    wide and panels are 3.4 inches high (2.9 with three columns). A figure that would be wider
    than :data:`FIG_WIDTH` is scaled down to it (heights in proportion), so its text keeps the
    style's size on the page. At most :data:`MAX_COLS` columns.
    """
    if not isinstance(ncols, (int, np.integer)) or not isinstance(nrows, (int, np.integer)) or ncols < 1 or nrows < 1:
        raise ValueError(f"need at least one row and one column, got nrows={nrows!r}, ncols={ncols!r}")
    if ncols > MAX_COLS:
        raise ValueError(f"ncols={ncols}: at most {MAX_COLS} panels side by side are readable on the page; "
                         "split the figure into several figures (or use more rows)")
    for name, v in (("width", width), ("height", height)):
        if v is not None and not (isinstance(v, (int, float)) and 0 < v < 50):
            raise ValueError(f"{name} must be a positive number of inches, got {v!r}")
    w = FIG_WIDTH / ncols if width is None else float(width)
    h = (3.4 if ncols < 3 else 2.9) if height is None else float(height)
    scale = min(1.0, FIG_WIDTH / (w * ncols))
    return plt.subplots(nrows, ncols, figsize=(w * ncols * scale, h * nrows * scale), layout="constrained", **kwargs)


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
        ax.text(x + dx, y + dy, text, ha=ha, va="center")
    ax.set_aspect("equal")
    ax.set_xlim(-0.15, 1.15)
    ax.set_ylim(-0.1, 0.95)
    ax.axis("off")
