"""Sphinx extension: interactive figures that work on the static site, without a kernel.

The widget logic (specification, frames, HTML) is ``collapse_lib.widgets.kernel_free``; its
docstring explains the two ways a chapter asks for a kernel-free widget. This extension

1. builds the widgets that the cell metadata asks for: for an ``interact`` cell whose metadata
   holds ``"kernel_free": {"function": "module:name", "grid": {...}, ...}``, it calls the
   function at every grid point in the build process, saves each figure as a PNG under
   ``_kernel_free/`` in the output and puts the widget in place of the cell's ipywidgets output.
   Frames are cached in ``_build/.kernel_free_cache`` under a key made of the call, the sources of
   the function's top-level package and the matplotlib version, so a rebuild computes only frames
   whose code changed; the HTML and single-page (PDF) builds share the cache;
2. sets ``COURSE_KERNEL_FREE=1`` in the environment of the notebook kernels the build starts, so
   that ``kernel_free(...)`` calls in a notebook draw their frames (only during a book build);
3. removes the ipywidgets output of a cell that carries a kernel-free widget either way (it would
   be an empty box, or offline_site's note, which runs after this transform);
4. serves ``static/kernel_free_widget.js``, the few lines of JavaScript behind the sliders.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.osutil import relative_uri

from collapse_lib.widgets import kernel_free as kf

METADATA_KEY = "kernel_free"
OUT_DIR = "_kernel_free"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


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
                       "caption": spec["caption"], "dpi": kf.FRAME_DPI}, sort_keys=True)
    return hashlib.sha256((call + fingerprint).encode()).hexdigest()[:20]


def build_frames(spec: dict[str, Any], cache: Path) -> list[dict[str, Any]]:
    """Every grid point with its cached or freshly drawn frame: key, png (bool), caption, error."""
    cache.mkdir(parents=True, exist_ok=True)
    fingerprint = package_fingerprint(spec["callable"])
    frames = []
    for point in kf.grid_points(spec):
        key = frame_key(spec, point, fingerprint)
        meta_path = cache / f"{key}.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
        else:
            png, caption, error = kf.render_frame(spec, point)
            if png is not None:
                (cache / f"{key}.png").write_bytes(png)
            meta = {"png": png is not None, "caption": caption, "error": error}
            meta_path.write_text(json.dumps(meta))
        frames.append({"key": key, **meta})
    return frames


def _is_widget_output(node: nodes.Node) -> bool:
    if isinstance(node, nodes.raw):
        return node.astext().startswith(f'<script type="{WIDGET_VIEW_MIME}">')
    return isinstance(node, nodes.container) and "widget-offline-note" in node.get("classes", [])


def _has_notebook_widget(node: nodes.Node) -> bool:
    return isinstance(node, nodes.raw) and 'class="kernel-free-widget"' in node.astext()


class KernelFreeWidgets(SphinxPostTransform):
    """Put the kernel-free widget in place of the ipywidgets output of each cell that has one.

    Runs before offline_site's ReplaceWidgetViews (priority 5), which turns the views of widgets
    without a kernel-free version into a note.
    """

    default_priority = 4
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        cells = self.document.findall(
            lambda n: isinstance(n, nodes.container) and n.get("nb_element") == "cell_code")
        for count, cell in enumerate(list(cells)):
            raw_spec = (cell.get("cell_metadata") or {}).get(METADATA_KEY)
            if raw_spec is not None:
                widget = self.metadata_widget(cell, raw_spec, count)
            elif any(True for _ in cell.findall(_has_notebook_widget)):
                widget = None  # drawn by kernel_free() in the notebook: only drop the widget view
            else:
                continue
            for node in list(cell.findall(_is_widget_output)):
                if widget is not None:
                    node.replace_self(widget)
                    widget = None
                else:
                    node.parent.remove(node)
            if widget is not None:
                cell += widget

    def metadata_widget(self, cell: nodes.container, raw_spec: Any, count: int) -> nodes.raw:
        app, docname = self.app, self.env.docname
        try:
            spec = kf.check_spec(raw_spec)
            frames = build_frames(spec, Path(app.outdir).parent / ".kernel_free_cache")
        except kf.WidgetSpecError as err:
            raise ExtensionError(f"{docname}, cell {cell.get('cell_index')}: {err}") from err
        out = Path(app.outdir) / OUT_DIR
        out.mkdir(parents=True, exist_ok=True)
        for frame in frames:
            if frame["png"] and not (out / f"{frame['key']}.png").is_file():
                shutil.copy2(Path(app.outdir).parent / ".kernel_free_cache" / f"{frame['key']}.png", out)
        if app.builder.name == "singlehtml":  # every page is in index.html at the root
            prefix = f"{OUT_DIR}/"
        else:
            prefix = relative_uri(app.builder.get_target_uri(docname), f"{OUT_DIR}/")
        shown = [{"src": f"{prefix}{f['key']}.png" if f["png"] else "", "caption": f["caption"],
                  "error": f["error"]} for f in frames]
        uid = f"kfw-{docname.replace('/', '-')}-{count}"
        return nodes.raw("", kf.widget_html(spec, shown, uid), format="html")


def setup(app: Sphinx) -> dict[str, Any]:
    os.environ[kf.ENV_FLAG] = "1"  # inherited by the kernels that myst-nb starts
    app.add_js_file("kernel_free_widget.js", loading_method="defer")
    app.add_post_transform(KernelFreeWidgets)
    return {"version": "1.1", "parallel_read_safe": True, "parallel_write_safe": False}
