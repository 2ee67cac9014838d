"""Execute the chapter notebooks once, in parallel, into the book's execution cache.

``python -m course_tools.execute_notebooks [--jobs N] [--cache DIR] [--timeout S] NOTEBOOK...``

Each notebook runs top to bottom in a fresh kernel of the course's environment, in its own folder,
exactly as myst-nb runs it in the book build (the same function, jupyter-cache's
``single_nb_execution``, with the book's per-cell timeout and no errors allowed except in cells
tagged ``raises-exception``), N notebooks at a time, with the stall guard of
:mod:`course_tools.kernel_guard`. A notebook that fails is reported (cell, exception) and the
command exits 1 after all have run; one that succeeds is stored in the Jupyter cache that the book
build reads (``_build/.jupyter_cache``, myst-nb's ``execute_notebooks: cache``), so the following
``jupyter-book build`` executes nothing again. This is the check nbval made in ``make test``
(every cell runs without an error in a fresh kernel) with one execution shared by the check and
the book instead of two; ``make nbval`` still runs nbval.

A notebook whose code is already in the cache (unchanged since it last ran) is not run again.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "_build" / ".jupyter_cache"


def book_timeout(config: Path = ROOT / "_config.yml") -> int:
    """The book's per-cell timeout (``execute: timeout`` of ``_config.yml``)."""
    return int(yaml.safe_load(config.read_text()).get("execute", {}).get("timeout", 30))


def _execute(path: str, timeout: int) -> tuple[str, object, float, str | None]:
    """Run one notebook (in a worker): (path, executed notebook or None, seconds, error text)."""
    from jupyter_cache.executors.utils import single_nb_execution

    from collapse_lib.widgets.kernel_free import ENV_FLAG
    from course_tools import kernel_guard

    kernel_guard.install()
    # As in the book build (_ext/kernel_free_widgets.py sets it for myst-nb's kernels): the cached
    # outputs are the book's, so kernel_free() cells must draw their precomputed widgets.
    os.environ[ENV_FLAG] = "1"
    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout, allow_errors=False,
                                 meta_override=True)
    if result.err is not None:
        return path, None, result.time, f"{type(result.err).__name__}: {result.exc_string or result.err}"
    return path, nb, result.time, None


def _jobs(text: str) -> int:
    """--jobs: a positive integer, or auto (one per CPU)."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs must be a positive integer or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be a positive integer or auto, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.execute_notebooks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--jobs", type=_jobs, default="auto", help="notebooks at a time (default: one per CPU)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Jupyter cache of the book build")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: the book's)")
    args = parser.parse_args(argv)
    jobs = args.jobs
    timeout = args.timeout or book_timeout()
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error("no such notebook: " + ", ".join(missing))

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(args.cache))
    todo = []
    for path in args.notebooks:
        try:
            cache.match_cache_notebook(nbformat.read(str(path), as_version=4))
            print(f"cached   {path}")
        except KeyError:
            todo.append(str(path.resolve()))
    failures = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(jobs, max(len(todo), 1))) as pool:
        for path, nb, seconds, error in pool.map(_execute, todo, [timeout] * len(todo)):
            rel = os.path.relpath(path)
            if error is not None:
                failures.append(rel)
                print(f"FAILED   {rel} ({seconds:.1f} s)\n{error}", flush=True)
                continue
            record = cache.add_nb_to_project(path)
            cache.cache_notebook_bundle(CacheBundleIn(nb, record.uri, data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"ok       {rel} ({seconds:.1f} s)", flush=True)
    print(f"{len(todo) - len(failures)} of {len(todo)} notebooks executed without error in "
          f"{time.perf_counter() - start:.0f} s ({jobs} at a time); {len(args.notebooks) - len(todo)} cached")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
