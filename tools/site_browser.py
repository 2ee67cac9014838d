"""Headless Chromium for the built book: a local HTTP server and a Selenium driver.

Used by the site test (tests/site) and by the PDF printer (tools/print_pdf.py). Nothing is ever
downloaded: the browser and its driver are Debian's packages (`apt-get install chromium
chromium-driver`), passed to Selenium by absolute path, and every request the browser makes
goes to a server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))

# Flags for a machine without a network: no first-run UI, no background traffic to Google
# services (component updates, sync, QUIC probes), no sandbox (we run as root in CI).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
)


def browser_missing() -> str | None:
    """Return why the browser cannot run here, or None when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is not installed (pip install -r requirements.txt)"
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (free port) in a thread; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator["object"]:
    """Start headless Chromium through chromedriver; yield the Selenium driver.

    Browser console messages and network events are recorded (goog:loggingPrefs) so that a
    caller can read them with ``driver.get_log("browser")`` and ``driver.get_log("performance")``.
    """
    why = browser_missing()
    if why:
        raise RuntimeError(why)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never go online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="course-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


WAIT_FOR_PAGE_JS = """
const done = arguments[arguments.length - 1];
const t0 = Date.now();
async function settle() {
  // MathJax is loaded only on pages with math; wait for its first typeset pass.
  if (document.querySelector('.math')) {
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 30000) return 'MathJax did not start within 30 s';
      await new Promise(r => setTimeout(r, 50));
    }
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  const pending = () => [...document.images].filter(i => !i.complete);
  while (pending().length) {
    if (Date.now() - t0 > 30000) return 'images still loading after 30 s';
    await new Promise(r => setTimeout(r, 50));
  }
  return 'ok';
}
settle().then(done, e => done('error: ' + e));
"""


def load_and_settle(driver, url: str) -> str:
    """Open `url` and wait until MathJax has typeset, fonts and images have loaded."""
    driver.get(url)
    return driver.execute_async_script(WAIT_FOR_PAGE_JS)
