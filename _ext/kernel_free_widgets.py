"""Sphinx extension: interactive figures that work on the static site, without a kernel.

An ``ipywidgets.interact`` cell needs a running Python kernel. For the book, the cell's metadata
can name the plain library function behind the widget and a small grid of its parameters::

    "kernel_free": {
      "function": "collapse_lib.widgets.fully_synthetic:explore_fully_synthetic",
      "grid": {"n": [5, 20, 50], "S0": [0.1, 0.3, 0.6]},
      "fixed": {"support": 10},
      "caption": "mean T = {T_mean:.2f} +- {T_se:.2f}"
    }

At build time this extension calls ``function(**fixed, **point)`` for every point of the grid
(the function returns a matplotlib figure, or ``(figure, extra)``), saves each figure as a PNG and
puts in place of the widget's output an image with one slider per gridded parameter (a drop-down
for text values). A few lines of plain JavaScript (``static/kernel_free_widget.js``, served with
the book, no library) swap the image when a slider moves. Without JavaScript the page shows the
figure at the initial values. ``caption`` (optional) is formatted with ``extra`` when the
function returns a dict (e.g. the numbers it measured), or replaced by ``extra`` when it is a
string. A point where the function raises ``ValueError`` (e.g. K > n) shows the error message.

Frames are cached in ``_build/.kernel_free_cache`` under a key made of the call, the sources of
the function's top-level package and the matplotlib version, so a rebuild computes only frames
whose code changed; the HTML and single-page (PDF) builds share the cache.
"""

from __future__ import annotations

import hashlib
import html
import importlib
import inspect
import io
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.osutil import relative_uri

LOGGER = logging.getLogger(__name__)
METADATA_KEY = "kernel_free"
SPEC_KEYS = {"function", "grid", "fixed", "caption", "initial"}
MAX_FRAMES = 64      # per widget: the site budget is 30 MB and 3 minutes of build for all of them
FRAME_DPI = 72       # the figures are 9-12 inches wide: 650-820 pixels, the width of the column
OUT_DIR = "_kernel_free"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


class WidgetSpecError(ExtensionError):
    """A ``kernel_free`` cell metadata entry that cannot be built."""


def load_function(path: str):
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
    """Validate a ``kernel_free`` metadata entry; return it with defaults filled in.

    Raises WidgetSpecError naming the offending key.
    """
    if not isinstance(spec, dict):
        raise WidgetSpecError(f"kernel_free must be a mapping, got {type(spec).__name__}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise WidgetSpecError(f"kernel_free has unknown keys {sorted(unknown)} (allowed: {sorted(SPEC_KEYS)})")
    func = load_function(spec.get("function"))
    grid, fixed = spec.get("grid"), spec.get("fixed", {})
    if not isinstance(grid, dict) or not grid:
        raise WidgetSpecError("kernel_free.grid must be a non-empty mapping parameter -> list of values")
    if not isinstance(fixed, dict):
        raise WidgetSpecError("kernel_free.fixed must be a mapping parameter -> value")
    params = inspect.signature(func).parameters
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise WidgetSpecError(f"kernel_free.grid[{name!r}] must be a non-empty list, got {values!r}")
        if len(set(map(json.dumps, values))) != len(values):
            raise WidgetSpecError(f"kernel_free.grid[{name!r}] repeats a value: {values!r}")
        if not all(isinstance(v, (int, float, str, bool)) for v in values):
            raise WidgetSpecError(f"kernel_free.grid[{name!r}] must hold numbers or strings, got {values!r}")
    for name in [*grid, *fixed]:
        if name not in params:
            raise WidgetSpecError(f"kernel_free: {spec['function']} has no parameter {name!r}")
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
    initial = dict(spec.get("initial", {}))
    for name, values in grid.items():
        if name in initial:
            if initial[name] not in values:
                raise WidgetSpecError(f"kernel_free.initial[{name!r}] = {initial[name]!r} is not in the grid")
        else:  # the function's default when the grid has it, else the first value
            default = params[name].default
            initial[name] = default if default in values else values[0]
    return {"function": spec["function"], "grid": grid, "fixed": fixed, "caption": caption,
            "initial": initial, "callable": func}


def package_fingerprint(func) -> str:
    """Hash of every .py file of the function's top-level package (and matplotlib's version)."""
    import matplotlib

    top = importlib.import_module(func.__module__.split(".")[0])
    digest = hashlib.sha256(matplotlib.__version__.encode())
    for root in getattr(top, "__path__", [Path(inspect.getfile(top)).parent]):
        for path in sorted(Path(root).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def frame_key(spec: dict[str, Any], point: dict[str, Any], fingerprint: str) -> str:
    call = json.dumps({"function": spec["function"], "fixed": spec["fixed"], "point": point,
                       "caption": spec["caption"], "dpi": FRAME_DPI}, sort_keys=True)
    return hashlib.sha256((call + fingerprint).encode()).hexdigest()[:20]


def render_frame(spec: dict[str, Any], point: dict[str, Any]) -> tuple[bytes | None, str, str]:
    """Call the function at one grid point; return (png bytes or None, caption, error message)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.close("all")
    try:
        out = spec["callable"](**spec["fixed"], **point)
    except ValueError as err:  # the function's own check of a bad combination (e.g. K > n)
        plt.close("all")
        return None, "", f"Not available for these values: {err}"
    fig, extra = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
    if not isinstance(fig, matplotlib.figure.Figure):
        raise WidgetSpecError(f"{spec['function']} returned {type(fig).__name__}, not a matplotlib Figure")
    caption = spec["caption"]
    if isinstance(extra, str) and not caption:
        caption = extra
    elif caption and isinstance(extra, dict):
        try:
            caption = caption.format(**extra)
        except (KeyError, ValueError, IndexError) as err:
            raise WidgetSpecError(f"kernel_free.caption {caption!r} cannot be formatted: {err!r}") from err
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FRAME_DPI)
    plt.close("all")
    return buf.getvalue(), caption, ""


def build_frames(spec: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    """Every grid point (itertools.product order) with its cached or freshly computed frame."""
    cache.mkdir(parents=True, exist_ok=True)
    fingerprint = package_fingerprint(spec["callable"])
    names = list(spec["grid"])
    frames = []
    for values in itertools.product(*spec["grid"].values()):
        point = dict(zip(names, values))
        key = frame_key(spec, point, fingerprint)
        meta_path = cache / f"{key}.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
        else:
            png, caption, error = render_frame(spec, point)
            if png is not None:
                (cache / f"{key}.png").write_bytes(png)
            meta = {"png": png is not None, "caption": caption, "error": error}
            meta_path.write_text(json.dumps(meta))
        frames.append({"key": key, "point": point, **meta})
    return frames


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def widget_html(spec: dict[str, Any], frames: list[dict[str, Any]], prefix: str, uid: str) -> str:
    """The widget: controls, the initial frame, its caption, and the frame table as JSON."""
    grid = spec["grid"]
    initial_index = [values.index(spec["initial"][name]) for name, values in grid.items()]
    table = {}
    for frame in frames:
        index = ",".join(str(grid[n].index(v)) for n, v in frame["point"].items())
        table[index] = {"src": f"{prefix}{frame['key']}.png" if frame["png"] else "",
                        "caption": frame["caption"], "error": frame["error"]}
    first = table[",".join(map(str, initial_index))]
    controls = []
    for i, (name, values) in enumerate(grid.items()):
        cid = f"{uid}-{i}"
        label = f'<label for="{cid}">{html.escape(name)}</label>'
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
    count = len(frames)
    fixed = ", ".join(f"{k} = {_label(v)}" for k, v in spec["fixed"].items())
    note = (f"Precomputed: the controls choose among {count} figures drawn when the book was built"
            + (f" (with {fixed})" if fixed else "")
            + ". Run the notebook for the live widget and every value.")
    img_style = "" if first["src"] else ' hidden'
    return (
        f'<div class="kernel-free-widget" id="{uid}">'
        f'<div class="kfw-controls">{"".join(controls)}</div>'
        f'<img class="kfw-frame" src="{first["src"]}" alt="Figure of the interactive widget at the chosen values"{img_style}>'
        f'<p class="kfw-error"{"" if first["error"] else " hidden"}>{html.escape(first["error"])}</p>'
        f'<p class="kfw-caption">{html.escape(first["caption"])}</p>'
        f'<p class="kfw-note">{html.escape(note)}</p>'
        f'<script type="application/json" class="kfw-data">{data}</script>'
        f'</div>'
    )


def _is_widget_output(node: nodes.Node) -> bool:
    if isinstance(node, nodes.raw):
        return node.astext().startswith(f'<script type="{WIDGET_VIEW_MIME}">')
    return isinstance(node, nodes.container) and "widget-offline-note" in node.get("classes", [])


class KernelFreeWidgets(SphinxPostTransform):
    """Put the precomputed widget in place of the ipywidgets output of each marked cell.

    Runs before offline_site's ReplaceWidgetViews (priority 5), which turns the views of widgets
    without a kernel-free version into a note.
    """

    default_priority = 4
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        app = self.app
        for count, cell in enumerate(self.document.findall(
                lambda n: isinstance(n, nodes.container) and n.get("nb_element") == "cell_code")):
            raw_spec = (cell.get("cell_metadata") or {}).get(METADATA_KEY)
            if raw_spec is None:
                continue
            where = f"{self.env.docname}, cell {cell.get('cell_index')}"
            try:
                spec = check_spec(raw_spec)
                frames = build_frames(spec, Path(app.outdir).parent / ".kernel_free_cache")
            except WidgetSpecError as err:
                raise WidgetSpecError(f"{where}: {err}") from err
            out = Path(app.outdir) / OUT_DIR
            out.mkdir(parents=True, exist_ok=True)
            for frame in frames:
                if frame["png"] and not (out / f"{frame['key']}.png").is_file():
                    shutil.copy2(Path(app.outdir).parent / ".kernel_free_cache" / f"{frame['key']}.png", out)
            if app.builder.name == "singlehtml":
                prefix = f"{OUT_DIR}/"
            else:
                prefix = relative_uri(app.builder.get_target_uri(self.env.docname), f"{OUT_DIR}/")
            uid = f"kfw-{self.env.docname.replace('/', '-')}-{count}"
            widget = nodes.raw("", widget_html(spec, frames, prefix, uid), format="html")
            replaced = False
            for node in list(cell.findall(_is_widget_output)):
                if not replaced:
                    node.replace_self(widget)
                    replaced = True
                else:
                    node.parent.remove(node)
            if not replaced:
                cell += widget


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_js_file("kernel_free_widget.js", loading_method="defer")
    app.add_post_transform(KernelFreeWidgets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": False}
