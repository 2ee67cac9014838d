"""`make publish` pushes the built site to a gh-pages branch with ghp-import (tools/publish_site.py).

Tested against a local bare repository: a throw-away clone with the course's Makefile and the
publishing tool, a small fake built site, and `origin` pointing at the bare repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "GIT_AUTHOR_NAME": "Course test", "GIT_AUTHOR_EMAIL": "test@example.org",
       "GIT_COMMITTER_NAME": "Course test", "GIT_COMMITTER_EMAIL": "test@example.org",
       "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent-home-for-git"}

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None,
                                reason="needs git and make")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True,
                          text=True).stdout


def site_files(site: Path, with_pdf: bool = True) -> None:
    (site / "_static").mkdir(parents=True)
    (site / "downloads").mkdir()
    (site / "index.html").write_text("<h1>Model collapse, executable</h1>")
    (site / "search.html").write_text("<h1>Search</h1>")
    (site / "_static" / "style.css").write_text("body {}")
    (site / "downloads" / "model-collapse-notebooks.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    if with_pdf:
        (site / "downloads" / "model-collapse-course.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, Path]:
    """(working clone, bare remote): the clone has one commit and the course's Makefile."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git("init", "--bare", "-q", str(remote), cwd=tmp_path)
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    for name in ("Makefile", "tools/publish_site.py", "requirements.txt", "requirements-nodeps.txt",
                 "requirements-lock.txt", "pyproject.toml"):  # the venv stamp depends on these
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, work / name)
    (work / ".gitignore").write_text("_build/\nstamp\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "course", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    (work / "stamp").touch()  # stands in for the venv stamp: the course's .venv is used as is
    return work, remote


def make_publish(work: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "publish", f"BIN={BIN}", "STAMP=stamp"],
                          cwd=work, env=ENV, capture_output=True, text=True, timeout=120)


def test_publish_pushes_the_site_to_gh_pages(clone: tuple[Path, Path]) -> None:
    work, remote = clone
    site_files(work / "_build" / "html")
    proc = make_publish(work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = set(git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split())
    assert files == {".nojekyll", "index.html", "search.html", "_static/style.css",
                     "downloads/model-collapse-notebooks.zip", "downloads/model-collapse-course.pdf"}
    assert git("show", "gh-pages:index.html", cwd=remote) == "<h1>Model collapse, executable</h1>"
    head = git("rev-parse", "--short", "HEAD", cwd=work).strip()
    assert f"built from {head}" in git("log", "-1", "--format=%s", "gh-pages", cwd=remote)
    # the source branch is untouched: publishing only writes gh-pages
    assert git("branch", "--list", cwd=remote).split() == ["gh-pages"]

    # a second build replaces the whole tree (a removed page disappears from the branch)
    (work / "_build" / "html" / "search.html").unlink()
    (work / "_build" / "html" / "search.html").write_text("<h1>Search 2</h1>")
    (work / "_build" / "html" / "_static" / "style.css").unlink()
    assert make_publish(work).returncode == 0
    files = set(git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split())
    assert "_static/style.css" not in files
    assert git("show", "gh-pages:search.html", cwd=remote) == "<h1>Search 2</h1>"


def test_publish_refuses_an_incomplete_site(clone: tuple[Path, Path]) -> None:
    work, remote = clone
    site_files(work / "_build" / "html", with_pdf=False)
    proc = make_publish(work)
    assert proc.returncode != 0
    assert "model-collapse-course.pdf" in proc.stderr + proc.stdout and "make book" in proc.stderr + proc.stdout
    assert git("branch", "--list", cwd=remote).strip() == "", "nothing may be pushed"


def test_publish_without_a_built_site_says_so(clone: tuple[Path, Path]) -> None:
    work, _ = clone
    proc = make_publish(work)
    assert proc.returncode != 0 and "run `make book` first" in proc.stderr + proc.stdout
