"""Where the submission's kernel runs: a throw-away folder, a cleaned environment, resource
limits, and bubblewrap when it works on this machine (see :mod:`course_tools.grade`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from course_tools.grade_common import MAX_FILE_SIZE, REPO_ROOT, _first_line

_LAUNCHER = r'''
import resource, sys
for which, soft in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, {fsize})):
    try:
        hard = resource.getrlimit(which)[1]
        soft = soft if hard == resource.RLIM_INFINITY else min(soft, hard)
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        pass
sys.argv = ["ipykernel", "-f", sys.argv[1], "--HistoryManager.enabled=False"]
from ipykernel.kernelapp import launch_new_instance
launch_new_instance()
'''


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


#: What of the course the kernel sees (read-only): the science library and committed results.
#: Not the chapters, ``assignments/`` (solutions, hidden tests), ``.git``, ``_build`` or graded classes.
COURSE_VISIBLE = ("collapse_lib", "results")


def _bwrap_options(work: Path) -> list[str]:
    """bubblewrap arguments: the system folders, Python and :data:`COURSE_VISIBLE` read-only,
    ``work`` writable, nothing else; no network, own process namespace, no capabilities."""
    # the fresh /tmp first: a later bind (Python or the course living under /tmp) must sit on top of
    # it, not be hidden by it
    opts: list[str] = ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    bound: list[Path] = []
    for d in ("/usr", "/etc", "/sys", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(d)
        if p.is_symlink():
            opts += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            opts += ["--ro-bind", d, d]
            bound.append(p)
    for secret in ("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d"):
        if Path(secret).exists():
            opts += (["--tmpfs", secret] if Path(secret).is_dir() else ["--ro-bind", "/dev/null", secret])
    visible = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent]
    visible += [REPO_ROOT / d for d in COURSE_VISIBLE]
    for p in visible:
        p = p.resolve()
        if p.is_dir() and not any(_under(p, b) for b in bound):
            opts += ["--ro-bind", str(p), str(p)]
            bound.append(p)
    opts += ["--bind", str(work), str(work), "--unshare-all", "--die-with-parent",
             "--new-session", "--clearenv", "--hostname", "grader"]
    if os.geteuid() == 0:
        opts += ["--cap-drop", "ALL"]
    return opts


@lru_cache(maxsize=None)
def bwrap_status() -> tuple[bool, str]:
    """(works, description): whether bubblewrap can run a sandboxed Python here."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "not sandboxed: bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="grader-probe-") as tmp:
        cmd = [bwrap] + _bwrap_options(Path(tmp)) + [sys.executable, "-c", "pass"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"not sandboxed: bubblewrap failed ({err})"
    if proc.returncode != 0:
        return False, f"not sandboxed: bubblewrap does not work here ({_first_line(proc.stderr)})"
    return True, "bubblewrap"


def kernel_environment(work: Path) -> dict[str, str]:
    """The kernel's whole environment: nothing of the teacher's shell."""
    bindir = str(Path(sys.executable).parent)
    return {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work / "home"),
            "TMPDIR": str(work / "tmp"), "IPYTHONDIR": str(work / "home" / ".ipython"),
            "MPLCONFIGDIR": str(work / "tmp"), "NUMBA_CACHE_DIR": str(work / "tmp"),
            "MPLBACKEND": "Agg", "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
            "JUPYTER_PLATFORM_DIRS": "1"}


def kernel_argv(work: Path, sandbox: bool) -> list[str]:
    argv = [sys.executable, "-c", _LAUNCHER.replace("{fsize}", str(MAX_FILE_SIZE)), "{connection_file}"]
    if not sandbox:
        return argv
    env = kernel_environment(work)
    setenv = [x for k, v in env.items() for x in ("--setenv", k, v)]
    return [shutil.which("bwrap")] + _bwrap_options(work) + setenv + \
        ["--chdir", str(work / "run")] + argv
