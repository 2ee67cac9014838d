"""Publish the built book to the `gh-pages` branch of a git remote, with ghp-import.

This is the route Jupyter Book documents for GitHub Pages: ghp-import commits the contents of
the built site as the whole tree of the `gh-pages` branch (with a `.nojekyll` file, so that
GitHub serves the `_static` folders) and pushes that branch. `make publish` runs it after
checking that the site is complete (pages, PDF and notebooks zip); GitHub Pages then serves the
branch.

    python tools/publish_site.py [--site _build/html] [--remote origin] [--branch gh-pages]

Run it from the course repository (ghp-import works on the repository of the current folder).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("index.html", "search.html", "downloads/model-collapse-course.pdf",
            "downloads/model-collapse-notebooks.zip")


def missing_files(site: Path) -> list[str]:
    """Files a complete build has and `site` lacks."""
    return [name for name in REQUIRED if not (site / name).is_file()]


def source_commit() -> str:
    """The commit the site was built from (for the gh-pages commit message), or 'unknown'."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def publish(site: Path, remote: str, branch: str) -> None:
    from ghp_import import GhpError, ghp_import

    if not site.is_dir():
        raise SystemExit(f"publish: no built site at {site}: run `make book` first")
    missing = missing_files(site)
    if missing:
        raise SystemExit(f"publish: the site at {site} is incomplete (missing {', '.join(missing)}): "
                         "run `make book`")
    try:
        ghp_import(str(site), mesg=f"Publish the course site built from {source_commit()}",
                   remote=remote, branch=branch, push=True, force=True, nojekyll=True)
    except GhpError as err:
        raise SystemExit(f"publish: ghp-import failed: {err.message}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--remote", default="origin", help="git remote name or URL (default origin)")
    parser.add_argument("--branch", default="gh-pages")
    args = parser.parse_args(argv)
    publish(args.site.resolve(), args.remote, args.branch)
    print(f"published {args.site} to {args.remote} {args.branch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
