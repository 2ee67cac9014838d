"""The built book in a real browser (headless Chromium), with no network.

For every page of the table of contents: it loads from a server on 127.0.0.1 with no console
error and no failed or off-machine request, its math is typeset by the bundled MathJax (no raw
TeX left in the prose, no MathJax error), every image has loaded, nothing in the content column
is cut off or sticks out sideways (wide formulas and code scroll), and a full-page screenshot is
saved under _build/screenshots/ for a person to look at. Static checks on all HTML files: no
resource is loaded from another host, every internal link and anchor resolves, theorems,
definitions, exercises and figures carry numbers, and citations resolve. The search page finds
words. Every interactive widget has a kernel-free version whose sliders change the figure.
Run with `make test-site` after `make book`.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml
from site_browser import load_and_settle

ROOT = Path(__file__).resolve().parents[2]


def toc_docnames() -> list[str]:
    """Document names (paths without suffix) of every page in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    return [re.sub(r"\.(md|ipynb|rst)$", "", name) for name in names]


DOCNAMES = toc_docnames()


# --------------------------------------------------------------------------------------------
# Static checks on the HTML files
# --------------------------------------------------------------------------------------------


class _PageParser(HTMLParser):
    """Collects ids, links, and resources that the browser would load."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.ids.add(a["name"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag in ("script", "img", "iframe", "audio", "video", "source", "embed") and a.get("src"):
            self.resources.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rel = a.get("rel", "")
            if any(r in rel.split() for r in ("stylesheet", "preload", "modulepreload", "icon")):
                self.resources.append((f"link rel={rel}", a["href"]))


_parsed: dict[Path, _PageParser] = {}


def parse(path: Path) -> _PageParser:
    if path not in _parsed:
        parser = _PageParser()
        parser.feed(path.read_text(encoding="utf-8"))
        _parsed[path] = parser
    return _parsed[path]


def html_files(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


def test_every_toc_page_was_built(site: Path) -> None:
    missing = [d for d in DOCNAMES if not (site / f"{d}.html").is_file()]
    assert not missing, f"pages of _toc.yml missing from {site}: {missing}"


def test_no_resource_from_another_host(site: Path) -> None:
    """Scripts, styles, fonts and images all come from the book itself."""
    offenders = []
    for page in html_files(site):
        for tag, url in parse(page).resources:
            if urlsplit(url).scheme in ("http", "https") or url.startswith("//"):
                offenders.append(f"{page.relative_to(site)}: <{tag}> {url}")
    for css in (site / "_static").rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", css.read_text(errors="replace")):
            offenders.append(f"{css.relative_to(site)}: url({url})")
    assert not offenders, "resources loaded from the network:\n" + "\n".join(offenders)


def test_internal_links_and_anchors_resolve(site: Path) -> None:
    broken = []
    for page in html_files(site):
        for href in parse(page).links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith(("//", "mailto:", "javascript:")):
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {href} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target).ids:
                    broken.append(f"{page.relative_to(site)}: {href} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


NUMBERED = {
    # class of the admonition or figure -> what its title must look like
    "theorem": r"Theorem \d",
    "lemma": r"Lemma \d",
    "proposition": r"Proposition \d",
    "corollary": r"Corollary \d",
    "definition": r"Definition \d",
    "exercise": r"Exercise \d",
}


def test_numbered_environments(site: Path) -> None:
    """Theorem-like blocks, exercises and captioned figures carry a number."""
    unnumbered = []
    for page in html_files(site):
        text = page.read_text(encoding="utf-8")
        for kind, pattern in NUMBERED.items():
            for m in re.finditer(rf'<div class="(?:proof )?{kind}\b[^"]*admonition[^"]*"[^>]*>\s*'
                                 r'<p class="admonition-title">(.*?)</p>', text, re.S):
                title = re.sub(r"<[^>]+>", "", m.group(1))
                if not re.match(pattern, title.strip()):
                    unnumbered.append(f"{page.relative_to(site)}: {kind} titled {title.strip()!r}")
        for m in re.finditer(r"<figcaption>(.*?)</figcaption>", text, re.S):
            caption = re.sub(r"<[^>]+>", "", m.group(1)).strip()
            if not re.match(r"Fig\. \d", caption):
                unnumbered.append(f"{page.relative_to(site)}: figure caption {caption[:60]!r}")
    assert not unnumbered, "unnumbered environments:\n" + "\n".join(unnumbered)


def test_chapters_show_their_figures(site: Path) -> None:
    """Every chapter reproduces figures, so its page must contain executed figure images.

    (A kernel running under the Agg backend draws nothing: the book then builds with no
    figure at all and no warning.)
    """
    empty = []
    for docname in DOCNAMES:
        if docname.startswith("chapters/") and (site / f"{docname}.html").is_file():
            images = [src for tag, src in parse(site / f"{docname}.html").resources
                      if tag == "img" and "_images/" in src]
            if not images:
                empty.append(docname)
    assert not empty, f"chapter pages without any figure: {empty}"


def launch_links(links: list[str]) -> list[str]:
    """Links that launch a notebook somewhere (Binder, Colab) or point at a placeholder or at
    Jupyter Book's own repository (its default `repository.url`). Other links to GitHub (a cited
    tool) are fine."""
    return [h for h in links if any(k in h for k in (
        "mybinder", "colab.research", "/v2/gh/", "your-org", "executablebooks/jupyter-book"))]


def test_launch_buttons_follow_the_repository_setting(site: Path) -> None:
    """With `repository.url` empty no page links to Binder, Colab or a repository; with a URL,
    each chapter page links to Binder and Colab for its notebook there, and nowhere else."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = (config["repository"].get("url") or "").rstrip("/")
    branch, launch = config["repository"].get("branch", "main"), config["launch_buttons"]
    problems = []
    for docname in DOCNAMES:
        page = site / f"{docname}.html"
        if not page.is_file():
            continue
        links = launch_links(parse(page).links)
        if not url:
            problems += [f"{docname}: {h}" for h in links]
            continue
        owner_repo = urlsplit(url).path.strip("/")
        problems += [f"{docname}: {h} (not {owner_repo})" for h in links if owner_repo not in h]
        if docname.startswith("chapters/"):
            colab = f"{launch['colab_url'].rstrip('/')}/github/{owner_repo}/blob/{branch}/{docname}.ipynb"
            binder = (f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner_repo}/{branch}"
                      f"?urlpath=lab/tree/{docname}.ipynb")
            problems += [f"{docname}: missing {want}" for want in (colab, binder) if want not in links]
    assert not problems, f"launch links wrong for repository.url={url!r}:\n" + "\n".join(problems)


def test_citations_resolve(site: Path) -> None:
    """Citations link into a non-empty bibliography (anchors are checked by the link test)."""
    bib = site / "bibliography.html"
    assert bib.is_file(), "no bibliography page"
    assert len(re.findall(r'<div class="citation" id=', bib.read_text(encoding="utf-8"))) > 0, (
        "the bibliography page lists no entry")
    cited = 0
    for page in html_files(site):
        text = page.read_text(encoding="utf-8")
        cited += len(re.findall(r'<a class="reference internal" href="[^"]*bibliography\.html#', text))
        prose = re.sub(r"<[^>]+>", "", text)
        assert "[?]" not in prose, f"{page.relative_to(site)}: unresolved citation [?]"
    assert cited > 0, "no citation links found at all"


# --------------------------------------------------------------------------------------------
# In the browser
# --------------------------------------------------------------------------------------------

RAW_TEX_JS = r"""
// Prose of the page without code, outputs and typeset math: raw TeX left here means MathJax
// did not run or did not recognise a formula.
const main = document.querySelector('main') || document.body;
const copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, .highlight, .cell_output, script, style, mjx-container, '
  + 'mjx-assistive-mml, .headerlink, .toggle-hidden').forEach(e => e.remove());
return copy.textContent;
"""

MATH_STATE_JS = r"""
const spans = [...document.querySelectorAll('span.math, div.math')];
return {
  math: spans.length,
  untypeset: spans.filter(s => !s.querySelector('mjx-container')).map(s => s.textContent.slice(0, 80)),
  containers: document.querySelectorAll('mjx-container').length,
  errors: [...document.querySelectorAll('mjx-merror, [data-mjx-error]')].map(
      e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 80)),
  undefined_macros: [...document.querySelectorAll('mjx-container mjx-mtext')].filter(
      e => /^\\[A-Za-z]+$/.test(e.textContent)).map(e => e.textContent),
};
"""

OVERFLOW_JS = r"""
// Horizontal overflow in the content column. Two faults: content cut off by a box that hides
// what does not fit (overflow hidden/clip and scrollWidth > clientWidth), and content that
// sticks out past the right edge of the column without a scrolling box around it. A box that
// scrolls (overflow-x auto/scroll) is fine: the reader can scroll it.
const article = document.querySelector('article.bd-article') || document.querySelector('main');
if (!article) return ['no content column (article.bd-article) on the page'];
const edge = article.getBoundingClientRect().right;
// Margin notes and full-width blocks of sphinx-book-theme extend past the column on purpose.
const skip = 'mjx-assistive-mml, .visually-hidden, .sr-only, .headerlink, script, style, .toggle-hidden, '
  + '.margin, aside.sidebar, .full-width';
const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const inScroller = el => { for (let a = el.parentElement; a && a !== article; a = a.parentElement)
  if (scrolls(a)) return true; return false; };
const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (typeof el.className === 'string' && el.className.trim()
     ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
const text = el => (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 70);
const out = [], reported = [];
for (const el of article.querySelectorAll('*')) {
  if (el.closest(skip) || !visible(el)) continue;
  if (reported.some(r => r.contains(el))) continue;
  const s = getComputedStyle(el);
  if (['hidden', 'clip'].includes(s.overflowX) && el.clientWidth > 1 && el.scrollWidth > el.clientWidth + 1) {
    out.push(`cut off by ${s.overflowX} box ${name(el)}: ${el.scrollWidth - el.clientWidth}px: ${text(el)}`);
    reported.push(el); continue;
  }
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > edge + 1 && !inScroller(el)) {
    out.push(`sticks out of the column by ${Math.round(r.right - edge)}px: ${name(el)}: ${text(el)}`);
    reported.push(el);
  }
}
return out;
"""

IMAGES_JS = r"""
return [...document.images].map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth, ok: i.complete}));
"""

RAW_TEX_PATTERNS = [
    (r"\\\(|\\\)|\\\[|\\\]", "\\( \\) \\[ \\] delimiters"),
    (r"\$\$", "$$ delimiters"),
    (r"(?<![\w$])\$[^$\s][^$]*\$", "$...$ inline math"),
    (r"\\(?:frac|mathbb|mathbf|boldsymbol|sum|prod|left|right|begin|end|alpha|sigma|mathcal)\b",
     "TeX command"),
]


def network_problems(driver, base_url: str) -> list[str]:
    """Failed requests, HTTP errors and requests that leave 127.0.0.1, from the performance log."""
    urls, problems = {}, []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp") and not url.startswith(base_url):
                problems.append(f"request to another host: {url}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"])
            # A request id we did not see start belongs to the browser itself (started before
            # this page was opened), not to the page.
            if url is not None and not url.startswith("chrome"):
                problems.append(f"failed ({params.get('errorText')}): {url}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            problems.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
    return problems


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def full_page_screenshot(driver, path: Path, max_height: int = 16000) -> None:
    """A PNG of the whole page (cut at max_height pixels), through the DevTools protocol.

    The viewport is stretched to the page height first, so that the sticky sidebars are drawn
    along the whole page instead of only in the first screenful.
    """
    width = driver.execute_script("return window.innerWidth")
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    height = min(int(size["height"]), max_height)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_in_browser(docname: str, site: Path, base_url: str, driver, screenshot_dir: Path) -> None:
    if not (site / f"{docname}.html").is_file():
        pytest.fail(f"{docname}.html was not built")
    url = urljoin(base_url, f"{docname}.html")
    driver.get_log("performance"), driver.get_log("browser")  # drop what earlier pages left
    state = load_and_settle(driver, url)
    problems = [] if state == "ok" else [f"page did not settle: {state}"]

    index = DOCNAMES.index(docname)
    full_page_screenshot(driver, screenshot_dir / f"{index:02d}_{docname.replace('/', '__')}.png")

    problems += console_errors(driver)
    problems += network_problems(driver, base_url)

    math = driver.execute_script(MATH_STATE_JS)
    if math["math"]:
        if not math["containers"]:
            problems.append("page has math but MathJax produced no mjx-container")
        problems += [f"formula not typeset: {t!r}" for t in math["untypeset"]]
        problems += [f"MathJax error: {e!r}" for e in math["errors"]]
        problems += [f"undefined TeX macro: {e!r}" for e in math["undefined_macros"]]

    prose = driver.execute_script(RAW_TEX_JS)
    for pattern, what in RAW_TEX_PATTERNS:
        for m in re.finditer(pattern, prose):
            context = prose[max(0, m.start() - 40): m.end() + 40].replace("\n", " ")
            problems.append(f"raw TeX ({what}) in text: ...{context}...")

    problems += [f"horizontal overflow: {p}" for p in driver.execute_script(OVERFLOW_JS)]

    for img in driver.execute_script(IMAGES_JS):
        if not img["ok"] or img["w"] == 0:
            problems.append(f"image did not load: {img['src'][:120]}")

    assert not problems, f"{docname}:\n" + "\n".join(problems)


KERNEL_FREE_JS = r"""
return [...document.querySelectorAll('.kernel-free-widget')].map(w => ({
  id: w.id,
  ready: w.classList.contains('kfw-ready'),
  controls: [...w.querySelectorAll('[data-kfw-param]')].map(c => ({id: c.id, tag: c.tagName,
      value: c.value, max: c.tagName === 'SELECT' ? c.options.length - 1 : +c.max})),
}));
"""

FRAME_JS = r"""
const w = document.getElementById(arguments[0]);
const img = w.querySelector('img.kfw-frame');
return {src: img.hidden ? '' : img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
        error: w.querySelector('.kfw-error').hidden ? '' : w.querySelector('.kfw-error').textContent,
        caption: w.querySelector('.kfw-caption').textContent};
"""


def frame_state(driver, widget_id: str) -> dict:
    """The widget's figure once its image has loaded (or its error message)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: (s := d.execute_script(FRAME_JS, widget_id))["loaded"]
                                    or not s["src"])
    return driver.execute_script(FRAME_JS, widget_id)


def move_control(driver, control: dict) -> None:
    """Move a slider one step with the keyboard (back when it sits at the end), as a reader would;
    pick the next entry of a drop-down."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    element = driver.find_element(By.ID, control["id"])
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus()", element)
    at_end = int(element.get_attribute("value")) >= control["max"]
    if control["tag"] == "SELECT":
        Select(element).select_by_index(int(element.get_attribute("value")) + (-1 if at_end else 1))
    else:  # focused, then one step with the arrow keys (a click would jump to where it lands)
        element.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)


def frame_bytes(page_dir: Path, state: dict) -> bytes:
    """The image shown (a file of the site or an inlined data URL), or the error message."""
    if not state["src"]:
        return state["error"].encode()
    if state["src"].startswith("data:"):
        return base64.b64decode(state["src"].split(",", 1)[1])
    return (page_dir / state["src"]).read_bytes()


def check_kernel_free_widgets(site: Path, base_url: str, driver, docname: str) -> list[str]:
    """Move every control of every kernel-free widget on the page; the figure must change."""
    problems = []
    assert load_and_settle(driver, urljoin(base_url, f"{docname}.html")) == "ok"
    widgets = driver.execute_script(KERNEL_FREE_JS)
    if not widgets:
        return [f"{docname}: no kernel-free widget on the page"]
    page_dir = (site / f"{docname}.html").parent
    for widget in widgets:
        if not widget["ready"]:
            problems.append(f"{docname}/{widget['id']}: script did not wire the controls")
            continue
        for control in widget["controls"]:
            if control["max"] < 1:
                problems.append(f"{docname}/{control['id']}: a control with a single value")
                continue
            before = frame_state(driver, widget["id"])
            move_control(driver, control)
            after = frame_state(driver, widget["id"])
            if after["src"] and not after["loaded"]:
                problems.append(f"{docname}/{control['id']}: figure {after['src']} did not load")
            old, new = (frame_bytes(page_dir, state) for state in (before, after))
            if old == new:
                problems.append(f"{docname}/{control['id']}: moving it did not change the figure "
                                f"({before['src']} -> {after['src']})")
    return problems


def widget_pages(site: Path) -> list[str]:
    built = [d for d in DOCNAMES if (site / f"{d}.html").is_file()]  # missing: another test
    return [d for d in built if any(k in (site / f"{d}.html").read_text() for k in (
        "jupyter.widget-view", "widget-offline-note", "kernel-free-widget"))]


def test_every_widget_has_a_kernel_free_version(site: Path) -> None:
    """No widget output is left as an empty view or as a note: each one was precomputed."""
    pages = widget_pages(site)
    if not pages:
        pytest.skip("no page has an ipywidgets output")
    left = [d for d in pages if "widget-offline-note" in (site / f"{d}.html").read_text()
            or 'type="application/vnd.jupyter.widget-view+json"' in (site / f"{d}.html").read_text()]
    assert not left, ("widgets without a kernel-free version (add `kernel_free` metadata to the "
                      f"interact cell, see _ext/kernel_free_widgets.py): {left}")


KERNEL_FREE_BUDGET_MB = 30  # what the kernel-free widgets may add to the site (issue 14)


def test_kernel_free_widgets_stay_within_their_size_budget(site: Path) -> None:
    """Frame files plus frames inlined in pages (kernel_free() in a notebook) under 30 MB."""
    files = sum(p.stat().st_size for p in (site / "_kernel_free").glob("*.png"))
    inlined = sum(len(m) for page in html_files(site) for m in re.findall(
        r"data:image/png;base64,[A-Za-z0-9+/=]+", page.read_text(encoding="utf-8")))
    total = (files + inlined) / 1e6
    print(f"kernel-free widgets: {files / 1e6:.1f} MB of frame files, {inlined / 1e6:.1f} MB inlined")
    assert total <= KERNEL_FREE_BUDGET_MB, f"kernel-free widgets take {total:.1f} MB"


@pytest.mark.parametrize("docname", [d for d in DOCNAMES if d.startswith("chapters/")])
def test_kernel_free_widgets_move(docname: str, site: Path, base_url: str, driver) -> None:
    """On each page with a kernel-free widget, every slider changes the figure."""
    if docname not in widget_pages(site):
        pytest.skip(f"{docname} has no widget")
    problems = check_kernel_free_widgets(site, base_url, driver, docname)
    assert not problems, "\n".join(problems)


def test_search_finds_words(site: Path, base_url: str, driver, screenshot_dir: Path) -> None:
    """The search page works offline and finds a word every chapter uses."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser"), driver.get_log("performance")
    driver.get(urljoin(base_url, "search.html?q=collapse"))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "const r = document.querySelector('#search-results');"
            "return r && r.querySelector('p.search-summary') && r.querySelectorAll('li').length;"))
    hits = driver.execute_script(
        "return [...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href'))")
    full_page_screenshot(driver, screenshot_dir / "search.png")
    assert any("chapters/" in h for h in hits), hits
    assert not console_errors(driver)
    assert not network_problems(driver, base_url)


@pytest.mark.parametrize("docname", DOCNAMES)
def test_phone_width(docname: str, base_url: str, driver, screenshot_dir: Path) -> None:
    """On a 400-px phone screen no page scrolls sideways (wide blocks scroll inside their own box)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 400, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        assert load_and_settle(driver, urljoin(base_url, f"{docname}.html")) == "ok"
        overflow = driver.execute_script(
            "return document.scrollingElement.scrollWidth - window.innerWidth")
        driver.save_screenshot(str(screenshot_dir / f"phone_{docname.replace('/', '__')}.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert overflow <= 1, f"{docname}: the page is {overflow}px wider than a 400px screen"


# --------------------------------------------------------------------------------------------
# A page that reads like a book (issue 25), at 1400 px
# --------------------------------------------------------------------------------------------

MAX_VISIBLE_CODE_LINES = 45  # "no visible code cell longer than about 40 lines"

BOOK_JS = r"""
const article = document.querySelector('article.bd-article') || document.querySelector('main');
const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const text = el => (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60);
const out = {scroll: [], figures: [], code: []};
// Output blocks that need sideways scrolling (their content is wider than their box).
for (const el of article.querySelectorAll('div.cell_output *, div.output *')) {
  if (!visible(el) || el.closest('.kernel-free-widget, mjx-container')) continue;
  if (['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1)
    out.scroll.push(`${el.tagName.toLowerCase()} needs ${el.scrollWidth - el.clientWidth}px of sideways scrolling: ${text(el)}`);
}
// Figures: a numbered caption, real alt text, shown at >= 90 % of their natural width (or SVG).
for (const img of article.querySelectorAll('img')) {
  if (!visible(img) || img.closest('.kernel-free-widget, .headerlink, a.reference.external')) continue;
  const src = img.getAttribute('src') || '';
  if (!src.includes('_images/') && !src.startsWith('data:image')) continue;
  const fig = img.closest('figure');
  const cap = fig && fig.querySelector('figcaption');
  const name = src.split('/').pop().slice(0, 40);
  if (!cap || !/Fig\. \d/.test(cap.textContent)) out.figures.push(`figure without a numbered caption: ${name}`);
  const alt = (img.getAttribute('alt') || '').trim();
  if (alt.length < 8 || /^[0-9a-f]{16,}/.test(alt) || /\.(png|svg|jpe?g)$/.test(alt))
    out.figures.push(`figure without real alt text (${JSON.stringify(alt.slice(0, 40))}): ${name}`);
  const shown = img.getBoundingClientRect().width;
  if (!/\.svg(\?|$)/.test(src) && img.naturalWidth > 0 && shown < 0.9 * img.naturalWidth)
    out.figures.push(`figure shrunk to ${Math.round(100 * shown / img.naturalWidth)} % of its width: ${name}`);
}
// Visible code cells (folded ones sit in a closed <details> and are not drawn).
for (const el of article.querySelectorAll('div.cell_input pre')) {
  if (!visible(el)) continue;
  const lines = el.textContent.replace(/\n$/, '').split('\n').length;
  if (lines > arguments[0]) out.code.push(`visible code cell of ${lines} lines: ${text(el)}`);
}
return out;
"""


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_reads_like_a_book(docname: str, site: Path, base_url: str, driver) -> None:
    """At 1400 px: no output block needs sideways scrolling, every figure has a numbered caption and
    real alt text and is shown at (nearly) its natural width or as SVG, and no visible code cell is
    longer than MAX_VISIBLE_CODE_LINES."""
    driver.set_window_size(1400, 900)
    try:
        assert load_and_settle(driver, urljoin(base_url, f"{docname}.html")) == "ok"
        found = driver.execute_script(BOOK_JS, MAX_VISIBLE_CODE_LINES)
    finally:
        driver.set_window_size(1280, 900)
    problems = found["scroll"] + found["figures"] + found["code"]
    assert not problems, f"{docname}:\n" + "\n".join(problems)
