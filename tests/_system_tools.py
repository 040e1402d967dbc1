"""System tools the tests need (buildah, nginx, prometheus, chromium, ...), installed on demand.

The README's test command must pass on a fresh machine, so a test that needs a program the
Python packages do not bring asks for it here: when the program is missing and this process may
run ``apt-get`` (root, Debian), the package is installed once, under a file lock shared by the
xdist workers; otherwise the test is skipped with a message naming the package to install.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["require_tool"]

_LOCK = Path(tempfile.gettempdir()) / "modelyard-test-apt.lock"
_UPDATED = Path(tempfile.gettempdir()) / "modelyard-test-apt.updated"


def _apt_install(package: str) -> tuple[bool, str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=900)
    if done.returncode != 0 and not _UPDATED.exists():
        subprocess.run(
            ["apt-get", "update", "-q"], capture_output=True, env=env, check=False, timeout=600
        )
        _UPDATED.touch()
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False, timeout=900
        )
    return done.returncode == 0, done.stderr[-2000:]


def require_tool(program: str, package: str | None = None) -> str:
    """Return the path of ``program``, installing Debian's ``package`` first when it is missing.

    Skips the calling test when the program is missing and cannot be installed here.
    """
    found = shutil.which(program)
    if found:
        return found
    package = package or program
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{program} is not installed: run `apt-get install {package}`")
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which(program)
        if not found:
            ok, err = _apt_install(package)
            found = shutil.which(program)
            if not ok or not found:
                pytest.skip(f"could not install {package} for {program}: {err.strip()}")
    assert found is not None
    return found
