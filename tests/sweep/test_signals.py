"""`modelyard sweep` stopped from outside (a CI cancel's SIGTERM, a SIGKILL): real processes.

Forked trials lead their own process groups, so a signal to the sweep does not reach them:
SIGTERM must stop them and end their runs, and a SIGKILLed sweep must not leave them running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelyard.workspace import Workspace
from tests.sweep.conftest import Project, depth_pipeline

pytest.importorskip("optuna")

HANGING = """
if depth > 1:  # the trials after the first hang until stopped from outside (at most 120 s)
    (MARKS / str(os.getpid())).touch()
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_sweep_stops_its_trials(
    sqlite_project: Project, tmp_path: Path, sig: signal.Signals
) -> None:
    settings = sqlite_project.settings()
    marks = tmp_path / "marks"
    marks.mkdir()
    imports = f"import os\nimport time\nfrom pathlib import Path\nMARKS = Path({str(marks)!r})"
    mod = sqlite_project.module(depth_pipeline(HANGING, imports=imports))
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), str(sqlite_project.root)]),
        "MODELYARD_HOME": str(settings.resolved_home),
        "MODELYARD_DB_URL": settings.resolved_db_url,
        "MODELYARD_ARTIFACT_URL": settings.resolved_artifact_url,
    }
    argv = [sys.executable, "-m", "modelyard.cli", "sweep", f"{mod.__name__}:train",
            "-s", "depth=int:1:3", "--sampler", "grid", "-m", "score", "-j", "2"]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        cwd=sqlite_project.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    hanging: list[int] = []
    try:
        _wait(lambda: len(list(marks.iterdir())) == 2, 120, "two hanging trials")
        hanging = [int(p.name) for p in marks.iterdir()]
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
        _wait(lambda: not any(map(_alive, hanging)), 30, "the trials' processes to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in filter(_alive, hanging):  # a failed check leaves no process behind
            os.kill(pid, signal.SIGKILL)

    ws = Workspace.open(settings)
    study = ws.tracking.search_runs(filter="kind = 'run'").items[0]
    trials = ws.tracking.search_runs(filter=f"parent_run_id = '{study.id}'").items
    if sig == signal.SIGTERM:  # the sweep ended everything itself
        assert study.status == "KILLED"
        assert sorted(t.status for t in trials) == ["FINISHED", "KILLED", "KILLED"]
