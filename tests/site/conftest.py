"""Fixtures for the site test: the built book, a local server, headless Chromium.

These tests run only under `make test-site` (which sets COURSE_SITE_TESTS=1) after `make book`;
in a plain `pytest tests` run they are skipped, because the book may not be built yet and the
browser may not be installed. Once opted in, a missing browser or book is a failure, not a skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from site_browser import browser_missing, chromium, serve  # noqa: E402

SITE = Path(os.environ.get("SITE_DIR", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", SITE.parent / "screenshots")).resolve()
OPTED_IN = os.environ.get("COURSE_SITE_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if OPTED_IN:
        return
    skip = pytest.mark.skip(reason="site test: run `make book` then `make test-site`")
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built book at {SITE}: run `make book` first")
    return SITE


@pytest.fixture(scope="session")
def base_url(site: Path):
    with serve(site) as url:
        yield url


@pytest.fixture(scope="session")
def driver():
    why = browser_missing()
    if why:
        pytest.fail(f"site test needs headless Chromium: {why}")
    with chromium() as drv:
        drv.get("about:blank")  # let the browser's own start-up traffic pass, then forget it
        drv.get_log("performance"), drv.get_log("browser")
        yield drv


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):  # pages may have been renamed or removed
        old.unlink()
    return SCREENSHOTS
