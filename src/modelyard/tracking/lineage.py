"""Lineage captured without asking: the git state of the project and the environment.

:func:`capture` returns what a run (or a pipeline) records about where it came from::

    {
        "git_commit": "3f1c...",      # None outside a git work tree or without git
        "git_branch": "main",         # None on a detached HEAD
        "git_dirty": False,           # tracked changes or untracked (not ignored) files
        "git_diff_sha256": None,      # sha256 of `git diff HEAD --binary` when dirty
        "environment": {"python": ..., "implementation": ..., "platform": ..., "cpu": ...,
                        "cpu_count": ..., "gpu": [...], "packages": {name: version}},
    }

The environment does not change while a process runs, so it is computed once per process. The
git state is read with two ``git`` subprocesses at most (``git status --porcelain=v2 --branch``,
then ``git diff HEAD --binary`` only when the tree is dirty); a snapshot is reused for
:data:`GIT_CACHE_TTL_S` seconds so that a loop starting many runs does not fork git for each one.
GPUs are listed from ``torch.cuda`` only when torch is already imported (never imported here),
else from ``nvidia-smi`` when it is on ``PATH``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = [
    "GIT_CACHE_TTL_S",
    "capture",
    "capture_cached",
    "capture_environment",
    "capture_git",
    "clear_cache",
]

GIT_CACHE_TTL_S = 1.0
_GIT_TIMEOUT_S = 10.0

_lock = threading.Lock()
_environment: dict[str, Any] | None = None
_packages: dict[str, str] | None = None
_git_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def clear_cache() -> None:
    """Forget the cached environment and git snapshots (tests, long-lived processes)."""
    global _environment, _packages
    with _lock:
        _environment = None
        _packages = None
        _git_cache.clear()


def capture(project_root: str | Path | None = None) -> dict[str, Any]:
    """Git state of ``project_root`` (default: cwd) plus the process environment.

    Args:
        project_root: a folder inside the git work tree to describe.

    Returns:
        ``git_commit``, ``git_branch``, ``git_dirty``, ``git_diff_sha256`` and ``environment``
        (see the module docstring). Git fields are ``None`` when there is no repository.
    """
    out = capture_git(project_root)
    out["environment"] = capture_environment()
    return out


def capture_cached(project_root: str | Path | None = None) -> dict[str, Any] | None:
    """What :func:`capture` would return, if it can be answered from the caches alone.

    Returns None when git must be run or the environment is not computed yet: the caller can
    then capture in a background thread instead of waiting.
    """
    root = str(Path(project_root) if project_root is not None else Path.cwd())
    with _lock:
        hit = _git_cache.get(root)
        env = _environment
    if hit is None or env is None or time.monotonic() - hit[0] >= GIT_CACHE_TTL_S:
        return None
    if not env["gpu"] and "torch" in sys.modules:
        return None
    return {**hit[1], "environment": dict(env)}


def capture_git(project_root: str | Path | None = None) -> dict[str, Any]:
    """The git fields of :func:`capture`, reusing a snapshot younger than the cache TTL."""
    root = str(Path(project_root) if project_root is not None else Path.cwd())
    now = time.monotonic()
    with _lock:
        hit = _git_cache.get(root)
    if hit is not None and now - hit[0] < GIT_CACHE_TTL_S:
        return dict(hit[1])
    info = _read_git(root)
    with _lock:
        _git_cache[root] = (now, info)
    return dict(info)


def _empty_git() -> dict[str, Any]:
    return {"git_commit": None, "git_branch": None, "git_dirty": None, "git_diff_sha256": None}


def _git(root: str, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        return subprocess.run(
            [git, "-C", root, *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _read_git(root: str) -> dict[str, Any]:
    info = _empty_git()
    status = _git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=normal")
    if status is None or status.returncode != 0:
        return info
    dirty = False
    for raw in status.stdout.decode("utf-8", "replace").splitlines():
        if raw.startswith("# branch.oid "):
            oid = raw.split(" ", 2)[2].strip()
            info["git_commit"] = None if oid == "(initial)" else oid
        elif raw.startswith("# branch.head "):
            head = raw.split(" ", 2)[2].strip()
            info["git_branch"] = None if head == "(detached)" else head
        elif raw and not raw.startswith("#"):
            dirty = True
    info["git_dirty"] = dirty
    if dirty and info["git_commit"] is not None:
        diff = _git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
        if diff is not None and diff.returncode == 0:
            info["git_diff_sha256"] = hashlib.sha256(diff.stdout).hexdigest()
    return info


def capture_environment() -> dict[str, Any]:
    """Python, platform, CPU, GPU and installed packages; computed once per process.

    The GPU list is refreshed on each call when torch has been imported since (a cheap check).
    """
    global _environment
    with _lock:
        env = _environment
    if env is None:
        env = {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "gpu": _gpus(),
            "packages": installed_packages(),
        }
        with _lock:
            _environment = env
    elif not env["gpu"] and "torch" in sys.modules:
        env = {**env, "gpu": _gpus()}
    return dict(env)


def installed_packages() -> dict[str, str]:
    """``{distribution name: version}`` of every installed distribution, cached per process.

    Read from the ``<name>-<version>.dist-info`` folder names on ``sys.path`` (no file is
    opened, a few milliseconds for hundreds of packages); other layouts (``.egg-info``) go
    through ``importlib.metadata``.
    """
    global _packages
    if _packages is None:
        found: dict[str, str] = {}
        slow: list[str] = []
        for entry in sys.path:
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for name in names:
                if name.endswith(".dist-info"):
                    stem = name[: -len(".dist-info")]
                    dist, sep, version = stem.rpartition("-")
                    if sep and dist and version:
                        found.setdefault(dist.replace("_", "-").lower(), version)
                        continue
                if name.endswith((".egg-info", ".dist-info")):
                    slow.append(os.path.join(entry or ".", name))
        if slow:
            from importlib import metadata

            for path in slow:
                try:
                    dist_obj = metadata.PathDistribution(Path(path))
                    pkg = dist_obj.metadata["Name"]
                    if pkg:
                        found.setdefault(str(pkg).replace("_", "-").lower(), str(dist_obj.version))
                except Exception:  # a broken metadata folder must not break lineage
                    continue
        _packages = dict(sorted(found.items()))
    return dict(_packages)


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        sysctl = shutil.which("sysctl")
        if sysctl:
            try:
                out = subprocess.run(
                    [sysctl, "-n", "machdep.cpu.brand_string"],
                    capture_output=True,
                    timeout=5,
                    check=False,
                )
                if out.returncode == 0:
                    return out.stdout.decode().strip() or None
            except (OSError, subprocess.SubprocessError):
                pass
    return platform.processor() or None


def _gpus() -> list[dict[str, Any]]:
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            cuda = torch.cuda
            if cuda.is_available():
                gpus = []
                for i in range(cuda.device_count()):
                    props = cuda.get_device_properties(i)
                    gpus.append({"name": str(props.name), "memory_bytes": int(props.total_memory)})
                return gpus
        except Exception:  # a broken CUDA setup must not break a run
            pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        name, _, mem = line.partition(",")
        if name.strip():
            entry: dict[str, Any] = {"name": name.strip()}
            if mem.strip().isdigit():
                entry["memory_bytes"] = int(mem.strip()) * 1024 * 1024
            gpus.append(entry)
    return gpus
