"""The Downloads page's zip holds a runnable course: notebooks, library, results, install files."""

import importlib.util
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("site_downloads", ROOT / "_ext" / "site_downloads.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("site_downloads", mod)
    spec.loader.exec_module(mod)
    return mod


def test_zip_is_a_runnable_course(tmp_path):
    sd = _module()
    docnames = sorted(p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "chapters").glob("*.ipynb"))
    count = sd.write_notebooks_zip(ROOT, docnames + ["index"], tmp_path / "c.zip")
    assert count == len(docnames) >= 9
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        names = set(zf.namelist())
        readme = zf.read("model-collapse-notebooks/README.txt").decode()
        pyproject = tomllib.loads(zf.read("model-collapse-notebooks/pyproject.toml").decode())
    root = "model-collapse-notebooks/"
    assert {root + f"{d}.ipynb" for d in docnames} <= names
    for needed in ("collapse_lib/__init__.py", "collapse_lib/gpt/__init__.py", "results/gpt/metrics.json",
                   "requirements.txt", "requirements-lock.txt", pyproject["project"]["readme"]):
        assert root + needed in names, needed
    assert not any("__pycache__" in n for n in names)
    assert "pip install --no-deps -e ." in readme
