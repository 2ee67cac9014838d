"""The install files tell one story: Python 3.11 or newer, one set of versions (the lock file).

Checked here, cheaply, on every `make test`: the Python version in README, pyproject, Binder and
the Makefile; every pin of requirements.txt and binder/requirements.txt equal to the lock's; the
library's declared dependencies present in the lock at their lower bound; the lock complete (each
of its packages' own requirements is in it) as far as the installed metadata tells.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (comments and options skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==")
            out[canonicalize_name(name)] = version.strip()
    return out


def test_python_version_is_stated_the_same_way_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or newer" in readme
    assert not re.search(r"3\.10", readme), "README still mentions Python 3.10"
    assert "sys.version_info < (3, 11)" in (ROOT / "Makefile").read_text()


def test_requirements_and_binder_pins_equal_the_lock() -> None:
    lock = pins(LOCK)
    wrong = []
    for path in (ROOT / "requirements.txt", ROOT / "binder" / "requirements.txt"):
        for name, version in pins(path).items():
            if lock.get(name) != version:
                wrong.append(f"{path.relative_to(ROOT)}: {name}=={version}, lock has {lock.get(name)}")
    assert not wrong, "\n".join(wrong)


def test_binder_has_what_the_notebooks_import() -> None:
    binder = pins(ROOT / "binder" / "requirements.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    needed |= {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["gpt"]}
    needed |= {"ipywidgets", "myst-nb"}  # the widget cells; glue() in the chapters
    missing = needed - set(binder)
    assert not missing, f"binder/requirements.txt lacks {sorted(missing)}"
    assert "-c ../requirements-lock.txt" in (ROOT / "binder" / "requirements.txt").read_text()


def test_library_dependencies_are_locked_at_their_lower_bound() -> None:
    lock = pins(LOCK)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["gpt"]]
    assert {canonicalize_name(r.name) for r in reqs} >= {"numpy", "scipy", "matplotlib", "numba", "torch"}
    wrong = []
    for req in reqs:
        name = canonicalize_name(req.name)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        if name not in lock or lower != [lock[name]]:
            wrong.append(f"{req}: lock has {lock.get(name)}")
    assert not wrong, "pyproject lower bounds should be the locked versions:\n" + "\n".join(wrong)


def test_the_lock_is_closed_under_dependencies() -> None:
    """Every requirement of a locked package (for this platform, no extras) is locked too."""
    lock = pins(LOCK)
    assert len(lock) > 100, "the lock should pin the whole transitive set"
    missing = []
    for name in lock:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (the venv may lag behind the lock)
        for spec in requires:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(req.name) not in lock and canonicalize_name(req.name) not in {
                    "pip", "setuptools", "wheel"}:
                missing.append(f"{name} needs {req.name}")
    assert not missing, "requirements-lock.txt is incomplete (run `make lock`):\n" + "\n".join(missing)


def test_readme_gives_the_cpu_torch_command_for_the_locked_version() -> None:
    torch = pins(LOCK)["torch"]
    readme = (ROOT / "README.md").read_text()
    assert f"pip install --index-url https://download.pytorch.org/whl/cpu torch=={torch}" in readme
    assert "make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu" in readme
    assert "pip install -r requirements.txt -c requirements-lock.txt" in readme
