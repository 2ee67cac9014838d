"""Print the single-page build of the book to PDF with headless Chromium.

`make pdf` first builds `_build/singlehtml` (the whole book on one page, notebooks taken from
the execution cache), then runs this script: it serves that folder on 127.0.0.1, waits until
MathJax has typeset every formula and every image has loaded, and asks Chromium to print the
page (DevTools `Page.printToPDF`: A4, backgrounds, page numbers in the footer). No TeX and no
browser download: the browser is Debian's chromium (see tools/site_browser.py).

    python tools/print_pdf.py [--site _build/singlehtml] [--out _build/pdf/book.pdf]
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from site_browser import chromium, load_and_settle, serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

FOOTER = (
    '<div style="font-size:8px; width:100%; text-align:center; color:#666;">'
    '<span class="title"></span> &middot; <span class="pageNumber"></span> / '
    '<span class="totalPages"></span></div>'
)

# The single page repeats the site furniture (sidebars, buttons); the themes hide most of it in
# print, this hides the rest and keeps figures and theorem boxes whole on a page.
PRINT_CSS = """
@media print {
  .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header-article, .prev-next-area,
  .bd-footer, .bd-footer-content, .headerlink, .copybtn, .widget-offline-note,
  #pst-back-to-top, .sidebar-toggle { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
  img, figure, div.cell_input, div.cell_output, div.highlight { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
  span[id^="document-"] + section { break-before: page; }  /* each page of the book */
  pre { white-space: pre-wrap !important; word-break: break-word; }  /* no clipped code */
}
"""


def print_pdf(site: Path, out: Path) -> int:
    """Write `out` from `site`/index.html; return the number of bytes written."""
    index = site / "index.html"
    if not index.is_file():
        raise SystemExit(f"no single-page build at {site}: run `make pdf` (it builds it first)")
    with serve(site) as base, chromium() as driver:
        state = load_and_settle(driver, base + "index.html")
        if state != "ok":
            raise SystemExit(f"the page did not finish rendering: {state}")
        driver.execute_script(
            "const s = document.createElement('style'); s.textContent = arguments[0];"
            "document.head.appendChild(s);", PRINT_CSS)
        pdf = driver.execute_cdp_cmd("Page.printToPDF", {
            "paperWidth": 8.27, "paperHeight": 11.69,  # A4, inches
            "marginTop": 0.6, "marginBottom": 0.7, "marginLeft": 0.6, "marginRight": 0.6,
            "printBackground": True,
            "displayHeaderFooter": True,
            "headerTemplate": "<div></div>",
            "footerTemplate": FOOTER,
        })
    data = base64.b64decode(pdf["data"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "singlehtml")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "pdf" / "book.pdf")
    args = parser.parse_args(argv)
    size = print_pdf(args.site.resolve(), args.out.resolve())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
