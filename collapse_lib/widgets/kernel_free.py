"""Kernel-free versions of the interactive widgets: precomputed frames and sliders in the page.

An ``ipywidgets.interact`` cell needs a running Python kernel, which the static site does not
have. Its kernel-free version draws the widget's figure at every point of a small grid of its
parameters when the book is built, and puts in the page one slider per parameter (a drop-down for
text values) that swaps the image; ``_ext/static/kernel_free_widget.js`` (plain JavaScript, no
library, works offline) does the swapping. A chapter asks for it in one of two ways:

1. **Cell metadata** (the figure comes from a library function): the ``interact`` cell carries
   ``"kernel_free": {"function": "collapse_lib.widgets.x:f", "grid": {...}, ...}`` and the Sphinx
   extension ``_ext/kernel_free_widgets.py`` computes the frames in the build process (cached);
   the notebook itself does not change.
2. **In the notebook** (the figure needs the notebook's own state, e.g. results computed above):
   a line after the ``interact`` call in the same cell,
   ``kernel_free(show_metric, grid={"metric": [...], "run": [...]})``. During a book build (the
   extension sets ``COURSE_KERNEL_FREE=1`` for the kernels it starts) it returns the widget as an
   HTML output with the frames inlined; anywhere else (Jupyter, Colab, nbval) it returns None and
   costs nothing.

Either way the page shows the kernel-free widget in place of the ipywidgets output. A spec has
``grid`` (parameter -> list of values, at most ``MAX_FRAMES`` points in all), optional ``fixed``
(parameter -> value), ``initial`` (parameter -> grid value; default: the function's default when
the grid holds it, else the first value) and ``caption`` (a format string filled from the dict
that the function may return next to its figure; it should state the frame's key numbers) and
``labels`` (parameter -> the words shown on its control, e.g. ``{"lam": "penalty λ"}``; default:
the parameter's name). Frames are drawn in the course's figure style
(:data:`collapse_lib.plotting.COURSE_STYLE`). The function returns a matplotlib Figure, an
Axes, ``(figure, extra)`` or nothing (then the current figure is used); a ``ValueError`` it raises
at a grid point (e.g. K > n) is shown there as a message.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib
import inspect
import io
import itertools
import json
import os
import warnings
from collections.abc import Callable
from typing import Any

ENV_FLAG = "COURSE_KERNEL_FREE"   # set to "1" by _ext/kernel_free_widgets.py for the build's kernels
SPEC_KEYS = {"function", "grid", "fixed", "caption", "initial", "labels"}
MAX_FRAMES = 64   # per widget: the site budget is 30 MB and 3 minutes of build for all of them
FRAME_DPI = 96    # the course style's 8-inch figures: 768 px, the width of the static (SVG) figures


class WidgetSpecError(ValueError):
    """A kernel-free widget specification that cannot be built."""


def load_function(path: str) -> Callable:
    """Import ``"package.module:function"``."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise WidgetSpecError(f"kernel_free.function must look like 'package.module:function', got {path!r}")
    module_name, name = path.split(":")
    try:
        func = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise WidgetSpecError(f"kernel_free.function {path!r} cannot be imported: {err}") from err
    if not callable(func):
        raise WidgetSpecError(f"kernel_free.function {path!r} is not callable")
    return func


def check_spec(spec: Any) -> dict[str, Any]:
    """Validate a widget specification; return it with defaults filled in and ``callable`` set.

    ``spec["function"]`` is a callable or a ``"module:name"`` string. Raises WidgetSpecError
    naming the offending key.
    """
    if not isinstance(spec, dict):
        raise WidgetSpecError(f"kernel_free must be a mapping, got {type(spec).__name__}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise WidgetSpecError(f"kernel_free has unknown keys {sorted(unknown)} (allowed: {sorted(SPEC_KEYS)})")
    target = spec.get("function")
    func = target if callable(target) else load_function(target)
    name = target if isinstance(target, str) else getattr(func, "__qualname__", repr(func))
    grid, fixed = spec.get("grid"), spec.get("fixed") or {}
    if not isinstance(grid, dict) or not grid:
        raise WidgetSpecError("kernel_free.grid must be a non-empty mapping parameter -> list of values")
    if not isinstance(fixed, dict):
        raise WidgetSpecError("kernel_free.fixed must be a mapping parameter -> value")
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError) as err:
        raise WidgetSpecError(f"kernel_free: cannot read the parameters of {name}: {err}") from err
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise WidgetSpecError(f"kernel_free.grid[{key!r}] must be a non-empty list, got {values!r}")
        if not all(isinstance(v, (int, float, str, bool)) for v in values):
            raise WidgetSpecError(f"kernel_free.grid[{key!r}] must hold numbers or strings, got {values!r}")
        if len({json.dumps(v) for v in values}) != len(values):
            raise WidgetSpecError(f"kernel_free.grid[{key!r}] repeats a value: {values!r}")
    for key in [*grid, *fixed]:
        if key not in params and not takes_kwargs:
            raise WidgetSpecError(f"kernel_free: {name} has no parameter {key!r}")
    order = list(params)  # controls in the order of the function's parameters (a notebook's JSON sorts keys)
    grid = {k: grid[k] for k in sorted(grid, key=lambda k: order.index(k) if k in order else len(order))}
    both = set(grid) & set(fixed)
    if both:
        raise WidgetSpecError(f"kernel_free: {sorted(both)} both in grid and fixed")
    count = 1
    for values in grid.values():
        count *= len(values)
    if count > MAX_FRAMES:
        raise WidgetSpecError(f"kernel_free.grid has {count} points; at most {MAX_FRAMES} per widget")
    caption = spec.get("caption", "")
    if not isinstance(caption, str):
        raise WidgetSpecError("kernel_free.caption must be a string")
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) and v.strip() for v in labels.values()):
        raise WidgetSpecError("kernel_free.labels must be a mapping parameter -> non-empty text")
    if set(labels) - set(grid):
        raise WidgetSpecError(f"kernel_free.labels names {sorted(set(labels) - set(grid))}, which are not in the grid")
    initial = dict(spec.get("initial") or {})
    for key, values in grid.items():
        if key in initial:
            if initial[key] not in values:
                raise WidgetSpecError(f"kernel_free.initial[{key!r}] = {initial[key]!r} is not in the grid")
        else:
            default = params[key].default if key in params else inspect.Parameter.empty
            initial[key] = default if default in values else values[0]
    extra = set(initial) - set(grid)
    if extra:
        raise WidgetSpecError(f"kernel_free.initial names {sorted(extra)}, which are not in the grid")
    return {"function": name, "grid": grid, "fixed": fixed, "caption": caption,
            "initial": initial, "labels": {k: labels.get(k, k) for k in grid}, "callable": func}


def grid_points(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every point of the grid, in itertools.product order of the grid's keys."""
    names = list(spec["grid"])
    return [dict(zip(names, values)) for values in itertools.product(*spec["grid"].values())]


def render_frame(spec: dict[str, Any], point: dict[str, Any]) -> tuple[bytes | None, str, str]:
    """Call the function at one grid point; return (PNG bytes or None, caption, error message).

    Drawn with the Agg backend (restored afterwards), so that nothing is displayed in a notebook.
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..plotting import COURSE_STYLE

    backend = matplotlib.get_backend()
    plt.switch_backend("Agg")
    style = matplotlib.rc_context(COURSE_STYLE)
    style.__enter__()
    try:
        plt.close("all")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg
            try:
                out = spec["callable"](**spec["fixed"], **point)
            except ValueError as err:  # the function's own check of a bad combination (e.g. K > n)
                return None, "", f"Not available for these values: {err}"
        fig, extra = (out[0], out[1]) if isinstance(out, tuple) and len(out) == 2 else (out, None)
        if isinstance(fig, Axes):
            fig = fig.figure
        if fig is None and plt.get_fignums():
            fig = plt.gcf()
        if not isinstance(fig, Figure):
            raise WidgetSpecError(f"{spec['function']} returned {type(fig).__name__}, not a matplotlib "
                                  "Figure, Axes or (Figure, extra), and drew no figure")
        caption = spec["caption"]
        if isinstance(extra, str) and not caption:
            caption = extra
        elif caption:
            try:
                caption = caption.format(**{**point, **(extra if isinstance(extra, dict) else {})})
            except (KeyError, ValueError, IndexError) as err:
                raise WidgetSpecError(f"kernel_free.caption {caption!r} cannot be formatted: {err!r}") from err
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=FRAME_DPI)
        return buf.getvalue(), caption, ""
    finally:
        plt.close("all")
        style.__exit__(None, None, None)
        plt.switch_backend(backend)


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def widget_html(spec: dict[str, Any], frames: list[dict[str, Any]], uid: str) -> str:
    """The widget: controls, the initial frame, its caption, and the frame table as JSON.

    `frames` are in ``grid_points`` order, each a dict with ``src`` (image URL, '' for none),
    ``caption`` and ``error``.
    """
    grid = spec["grid"]
    points = grid_points(spec)
    if len(frames) != len(points):
        raise WidgetSpecError(f"{len(frames)} frames for {len(points)} grid points")
    initial_index = [values.index(spec["initial"][name]) for name, values in grid.items()]
    table = {}
    for point, frame in zip(points, frames):
        index = ",".join(str(grid[n].index(v)) for n, v in point.items())
        table[index] = {"src": frame["src"], "caption": frame["caption"], "error": frame["error"]}
    first = table[",".join(map(str, initial_index))]
    controls = []
    for i, (name, values) in enumerate(grid.items()):
        cid = f"{uid}-{i}"
        label = f'<label for="{cid}">{html.escape(spec["labels"].get(name, name))}</label>'
        if all(isinstance(v, str) for v in values):
            options = "".join(
                f'<option value="{j}"{" selected" if j == initial_index[i] else ""}>{html.escape(v)}</option>'
                for j, v in enumerate(values))
            control = f'<select id="{cid}" data-kfw-param="{i}">{options}</select>'
            shown = ""
        else:
            control = (f'<input type="range" id="{cid}" data-kfw-param="{i}" min="0" '
                       f'max="{len(values) - 1}" step="1" value="{initial_index[i]}">')
            shown = f'<output for="{cid}">{html.escape(_label(values[initial_index[i]]))}</output>'
        controls.append(f'<div class="kfw-control">{label}{control}{shown}</div>')
    data = json.dumps({"labels": [[_label(v) for v in values] for values in grid.values()],
                       "frames": table}).replace("</", "<\\/")
    fixed = ", ".join(f"{k} = {_label(v)}" for k, v in spec["fixed"].items())
    note = (f"Precomputed: the controls choose among {len(frames)} figures drawn when the book was "
            f"built{f' (with {fixed})' if fixed else ''}. Run the notebook for the live widget and "
            "every value.")
    return (
        f'<div class="kernel-free-widget" id="{html.escape(uid)}">'
        f'<div class="kfw-controls">{"".join(controls)}</div>'
        f'<img class="kfw-frame" src="{html.escape(first["src"])}" '
        f'alt="{html.escape(first["caption"] or "Figure of the interactive widget at the chosen values")}"'
        f'{"" if first["src"] else " hidden"}>'
        f'<p class="kfw-error"{"" if first["error"] else " hidden"}>{html.escape(first["error"])}</p>'
        f'<p class="kfw-caption">{html.escape(first["caption"])}</p>'
        f'<p class="kfw-note">{html.escape(note)}</p>'
        f'<script type="application/json" class="kfw-data">{data}</script>'
        f'</div>'
    )


def kernel_free(function: Callable, grid: dict[str, list], fixed: dict[str, Any] | None = None,
                initial: dict[str, Any] | None = None, caption: str = "", labels: dict[str, str] | None = None):
    """The kernel-free version of a widget, drawn in the notebook (mechanism 2 above).

    During a book build (``COURSE_KERNEL_FREE=1``) returns an ``IPython.display.HTML`` object
    with every frame inlined as a PNG data URL; elsewhere returns None without calling `function`.
    Raises WidgetSpecError (a ValueError) on a bad specification, also outside a book build.
    """
    spec = check_spec({"function": function, "grid": grid, "fixed": fixed or {},
                       "initial": initial or {}, "caption": caption, "labels": labels or {}})
    if os.environ.get(ENV_FLAG) != "1":
        return None
    from IPython.display import HTML

    frames = []
    for point in grid_points(spec):
        png, text, error = render_frame(spec, point)
        src = f"data:image/png;base64,{base64.b64encode(png).decode()}" if png else ""
        frames.append({"src": src, "caption": text, "error": error})
    key = json.dumps([spec["function"], grid, spec["fixed"]], sort_keys=True, default=str)
    uid = f"kfw-nb-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    return HTML(widget_html(spec, frames, uid))
