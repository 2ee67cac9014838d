"""Sphinx extension: the course repository is one setting, and no link points at a placeholder.

``repository.url`` in ``_config.yml`` (Jupyter Book passes it to the theme as
``html_theme_options["repository_url"]``) drives the Binder and Colab launch buttons and, through
``tools/colab_setup_cell.py``, the hidden set-up cell of every chapter. Two states only:

* empty (the default while the course has no public home): the launch buttons are switched off
  here, before sphinx-book-theme builds them, so the site has no launch link at all (the theme
  would otherwise fail on a missing URL, or, with Jupyter Book's default, point at Jupyter Book's
  own repository);
* ``https://github.com/<owner>/<repo>``: every launch link points there. Anything else (another
  host, a trailing path, the old ``your-org`` placeholder) fails the build with a clear message,
  because Binder's ``gh`` provider and Colab's ``/github/`` links only exist for GitHub.
"""

from __future__ import annotations

import re
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

GITHUB_REPO = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
PLACEHOLDER_OWNERS = ("your-org", "your-username", "executablebooks/jupyter-book")
BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")


def check_repository_url(url: Any) -> str:
    """Return the URL without a trailing slash, or '' when none is set; raise on a bad one."""
    url = ("" if url is None else str(url)).strip().rstrip("/")
    if not url:
        return ""
    if url.endswith(".git"):
        url = url[: -len(".git")]
    if not GITHUB_REPO.match(url):
        raise ExtensionError(
            f"_config.yml repository.url is {url!r}; it must be empty (no launch buttons) or "
            "https://github.com/<owner>/<repo> (Binder and Colab launch from GitHub).")
    if any(p in url for p in PLACEHOLDER_OWNERS):
        raise ExtensionError(
            f"_config.yml repository.url is the placeholder {url!r}: set the real repository or "
            "leave it empty (then the site has no launch buttons).")
    return url


def apply_repository_setting(app: Sphinx, config: Any) -> None:
    """config-inited: keep or drop the launch buttons according to repository.url."""
    options = config.html_theme_options
    url = check_repository_url(options.get("repository_url"))
    options["repository_url"] = url
    if url:
        return
    options["launch_buttons"] = {}
    for button in BUTTONS:
        options[button] = False
    if isinstance(getattr(config, "thebe_config", None), dict):
        config.thebe_config.pop("repository_url", None)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", apply_repository_setting, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
