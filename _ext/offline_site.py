"""Sphinx extension that makes the built book readable without a network.

Loaded by ``_config.yml`` (``sphinx: local_extensions: offline_site: _ext``). It

1. copies MathJax 3 into ``<outdir>/_static/mathjax``. The files come from the PyPI package
   ``sphinx-mathjax-offline`` (pinned in requirements.txt; it ships MathJax 3.2.2). We copy a
   subset (the ``tex-mml-chtml`` component, the output modules with their fonts, the TeX
   extensions that the autoloader fetches on demand, the menu and accessibility modules)
   instead of the whole 24 MB tree. ``mathjax_path`` in ``_config.yml`` points at the copy;
   a CDN ``mathjax_path`` is refused;
2. replaces the output of an ``ipywidgets`` cell, which needs a live kernel and the widget
   JavaScript from a CDN, by a short note that says how to get the interactive version, unless
   ``kernel_free_widgets.py`` (which runs first) has put the widget's kernel-free version there;
   and drops the saved widget state that myst-nb would embed in the page (``nb_ipywidgets_js``
   is empty);
3. fixes what the browser test found in the theme stack: a favicon (else every page requests a
   missing /favicon.ico), a default colour mode (else a console error on a first visit), no
   duplicate search bar on top, the inline sphinx-thebe script written twice (a JavaScript
   SyntaxError on every page), and theorem nodes that the single-page builder (used for the
   PDF) could not render.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform

MATHJAX_PACKAGE = "sphinx-mathjax-offline"  # PyPI package (and, oddly, its import name)
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "Interactive widget: its sliders need a running Python kernel, so this page cannot show "
    "it. Open the notebook with the launch button at the top of the page (Binder or Colab), "
    "or run it locally with "
)
WIDGET_NOTE_COMMAND = "make lab"

# Top-level MathJax files and folders that the site needs. Everything MathJax loads lazily
# from the page (TeX extensions through the autoloader, menu, assistive MathML, the speech
# rule engine used by the accessibility explorer, the alternative SVG output selectable in
# the menu) sits in these folders.
MATHJAX_KEEP = (
    "tex-mml-chtml.js",
    "a11y",
    "adaptors",
    "input",
    "output",
    "sre",
    "ui",
)


def mathjax_source_dir() -> Path:
    """Return the folder with the MathJax 3 distribution shipped by ``sphinx-mathjax-offline``."""
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            f"offline_site: the Python package {MATHJAX_PACKAGE!r} is not installed; "
            "run `pip install -r requirements.txt` (it ships MathJax for the offline site)."
        )
    src = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"
    if not (src / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"offline_site: no tex-mml-chtml.js under {src}")
    return src


def copy_mathjax(app: Sphinx, exc: Exception | None) -> None:
    """Copy the MathJax subset into the HTML output (build-finished hook)."""
    if exc is not None or app.builder.format != "html":
        return
    src = mathjax_source_dir()
    dest = Path(app.outdir) / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    for name in MATHJAX_KEEP:
        path = src / name
        if path.is_dir():
            shutil.copytree(path, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, dest / name)


def check_mathjax_path(app: Sphinx, config: Any) -> None:
    """Fail early if ``mathjax_path`` points at a CDN (config-inited hook)."""
    path = str(getattr(config, "mathjax_path", ""))
    if "://" in path:
        raise ExtensionError(
            f"offline_site: mathjax_path is {path!r}; the offline site needs the bundled copy "
            "(set `mathjax_path: mathjax/tex-mml-chtml.js` in _config.yml)."
        )
    mathjax_source_dir()  # raises a clear error when the package is missing


class ReplaceWidgetViews(SphinxPostTransform):
    """Replace widget views (empty without a kernel and the widget JS) by a short note.

    Runs after myst-nb's ``SelectMimeType`` (priority 4), which leaves a raw HTML
    ``<script type="application/vnd.jupyter.widget-view+json">`` for each widget output.
    """

    default_priority = 5
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        marker = f'<script type="{WIDGET_VIEW_MIME}">'
        for node in list(self.document.findall(nodes.raw)):
            if "html" in node.get("format", "").split() and node.astext().startswith(marker):
                note = nodes.container(classes=["widget-offline-note"])
                note += nodes.paragraph(
                    "", "", nodes.Text(WIDGET_NOTE), nodes.literal(text=WIDGET_NOTE_COMMAND),
                    nodes.Text("."))
                node.replace_self(note)


def drop_widget_state(app: Sphinx, doctree: nodes.document) -> None:
    """Do not embed the saved ipywidgets state in the page (doctree-read hook)."""
    meta = getattr(app.env, "nb_metadata", None)
    if meta and app.env.docname in meta:
        meta[app.env.docname].get("js_files", {}).pop("ipywidgets_state", None)


def add_static_dir(app: Sphinx, config: Any) -> None:
    """Serve this extension's CSS, give the book a favicon and a colour mode (config-inited).

    Without a favicon every page makes the browser request /favicon.ico, which fails.
    """
    static = Path(__file__).parent / "static"
    config.html_static_path.append(str(static))
    if not config.html_favicon:
        config.html_favicon = str(static / "favicon.svg")
    # pydata-sphinx-theme logs a console error ("Got invalid theme mode") on a reader's first
    # visit when no default colour mode is set. Light: the figures are white matplotlib PNGs.
    config.html_context.setdefault("default_mode", "light")  # read by the theme templates
    # pydata-sphinx-theme 0.17 puts a second search field in a top bar unless navbar_persistent
    # is set; sphinx-book-theme already has one in the sidebar, so keep the page header-free.
    config.html_theme_options.setdefault("navbar_persistent", [])


def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop inline scripts that appear twice (html-page-context hook).

    sphinx-thebe adds its inline configuration script while the documents are read; Sphinx 7.4
    registers it once as filename None and again as filename '' before writing, so every page
    declared `const THEBE_JS_URL` twice, which is a JavaScript SyntaxError in the console.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for script in scripts:
        key = (getattr(script, "filename", script) or "",
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def html_handlers_for_singlehtml(app: Sphinx) -> None:
    """Let the single-page builder (print/PDF version) render every custom node (builder-inited).

    Sphinx looks node handlers up by builder name and falls back to the format ("html") only
    when no handler at all is registered for the name. sphinx-exercise registers some for
    "singlehtml" and sphinx-proof none, so theorems had no handler there and the build failed.
    """
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    single = handlers.setdefault("singlehtml", {})
    for name, pair in handlers.get("html", {}).items():
        single.setdefault(name, pair)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", html_handlers_for_singlehtml)
    app.connect("config-inited", check_mathjax_path)
    app.connect("config-inited", add_static_dir)
    app.connect("html-page-context", dedupe_scripts)
    app.add_css_file("offline_site.css")
    app.add_js_file("figure_zoom.js", loading_method="defer")
    app.connect("doctree-read", drop_widget_state)
    app.connect("build-finished", copy_mathjax)
    app.add_post_transform(ReplaceWidgetViews)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
