"""`modelyard run` as a user runs it: a real process in a project folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FLOW = """
import modelyard
from modelyard.pipelines import log_metric

@modelyard.step
def load(n: int) -> list[int]:
    return list(range(n))

@modelyard.step
def score(data: list[int], fail: bool) -> float:
    if fail:
        raise RuntimeError("scoring exploded")
    log_metric("mean", sum(data) / len(data))
    return sum(data) / len(data)

@modelyard.pipeline
def train(n: int = 4, fail: bool = False):
    return score(load(n=n), fail=fail)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.modelyard]
            home = ".modelyard"

            [tool.modelyard.pipeline]
            entrypoint = "flows:train"
            data_sources = ["data.csv"]
            params = { n = 6 }
            """
        )
    )
    (root / "flows.py").write_text(FLOW)
    (root / "data.csv").write_text("a\n1\n")
    return root


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "run", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_uses_the_configured_entrypoint_and_params_then_caches(project: Path) -> None:
    first = _run(project, "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["status"] == "FINISHED"
    assert summary["params"] == {"n": 6, "fail": False}
    assert summary["ran"] == ["load", "score"]
    assert summary["metrics"] == {"mean": 2.5}
    # not a terminal: progress goes to stderr as JSON lines
    events = [json.loads(line)["msg"] for line in first.stderr.splitlines() if line.startswith("{")]
    assert events[0] == "pipeline started"
    assert events[-1] == "pipeline finished"
    assert events.count("step finished") == 2

    second = _run(project)
    assert second.returncode == 0, second.stderr
    assert "steps: 0 ran, 2 cached, 0 failed" in second.stdout

    typed = _run(project, "-p", "n=3", "--json")
    assert json.loads(typed.stdout)["metrics"] == {"mean": 1.0}


def test_unknown_or_badly_typed_parameter_exits_2_with_a_hint(project: Path) -> None:
    unknown = _run(project, "flows:train", "-p", "epochs=3")
    assert unknown.returncode == 2
    assert "unknown parameter 'epochs'" in unknown.stderr
    assert "takes: n, fail" in unknown.stderr

    bad = _run(project, "-p", "n=many")
    assert bad.returncode == 2
    assert "must be a int, got 'many'" in bad.stderr

    malformed = _run(project, "-p", "n")
    assert malformed.returncode == 2
    assert "is not key=value" in malformed.stderr


def test_a_failing_step_exits_9_and_resume_finishes_the_run(project: Path) -> None:
    failed = _run(project, "-p", "fail=true", "--json")
    assert failed.returncode == 9
    summary = json.loads(failed.stdout)
    assert summary["failed"] == ["score"]
    assert "step 'score' of pipeline 'train' failed: RuntimeError: scoring exploded" in (
        failed.stderr
    )
    assert f"modelyard run --resume {summary['run_id']}" in failed.stderr

    # resuming with the same parameters fails the same way; overriding one finishes it
    resumed = _run(project, "--resume", summary["run_id"][:10], "-p", "fail=false", "--json")
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(resumed.stdout)
    assert after["cached"] == ["load"]
    assert after["ran"] == ["score"]
    assert after["params"] == {"n": 6, "fail": False}


def test_if_changed_says_what_changed_or_that_nothing_did(project: Path) -> None:
    assert _run(project, "--if-changed").returncode == 0
    same = _run(project, "--if-changed")
    assert same.returncode == 0
    assert "nothing changed" in same.stdout
    (project / "data.csv").write_text("a\n2\n")
    changed = _run(project, "--if-changed")
    assert changed.returncode == 0
    assert "trigger: data changed: data.csv" in changed.stdout


def test_missing_entrypoint_and_bad_module(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.modelyard]\n")
    none = _run(root)
    assert none.returncode == 2
    assert "no pipeline to run" in none.stderr
    missing = _run(root, "nowhere:train")
    assert missing.returncode == 4
    assert "pipeline module 'nowhere' not found" in missing.stderr


def test_project_option_runs_a_project_from_another_folder(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "run", "--project", str(project), "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ran"] == ["load", "score"]
    assert (project / ".modelyard" / "modelyard.db").is_file()
    assert not (elsewhere / ".modelyard").exists()


SLOW_FLOW = """
import os, time
import modelyard

@modelyard.step
def quick() -> int:
    return 1

@modelyard.step
def slow(started: str) -> int:
    with open(started, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(120)
    return 2

@modelyard.step
def join(a: int, b: int) -> int:
    return a + b

@modelyard.pipeline
def train(started: str = "", n: int = 0):
    return join(quick(), slow(started=started))
"""


def _gone(pid: int) -> bool:
    import time

    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_ends_the_run_killed_and_stops_its_step_processes(project: Path) -> None:
    import signal
    import sqlite3
    import time

    (project / "flows.py").write_text(SLOW_FLOW)
    started = project / "slow.pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "run", "-p", f"started={started}"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() or not started.read_text():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(started.read_text())
        assert child != proc.pid  # two steps were runnable: `slow` runs in a forked child
        proc.send_signal(signal.SIGTERM)  # a CI cancel, Kubernetes stopping the pod
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert _gone(child)  # the step's process went with the run
    db = next((project / ".modelyard").rglob("*.db"))
    with sqlite3.connect(db) as con:
        statuses = dict(con.execute("SELECT name, status FROM runs"))
    assert statuses["train"] == "KILLED"
    assert statuses["slow"] == "KILLED"
    assert statuses.get("quick") in ("FINISHED", "KILLED")  # it may still have been running
    assert "join" not in statuses


CRASH_FLOW = """
import os
import time
import modelyard

@modelyard.step
def crash(mode: str) -> int:
    if mode == "exit":
        os._exit(3)  # a native crash, an OOM kill: the run cannot end itself
    if mode == "sleep":
        time.sleep(30)
    return 1

@modelyard.pipeline
def train(mode: str = "ok"):
    return crash(mode=mode)
"""


def _statuses(project: Path) -> dict[str, tuple[str, str | None]]:
    import sqlite3

    db = next((project / ".modelyard").rglob("*.db"))
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT r.id, r.status, t.value FROM runs r LEFT JOIN run_tags t "
            "ON t.run_id = r.id AND t.key = 'ended.reason'"
        ).fetchall()
    return {run_id: (status, reason) for run_id, status, reason in rows}


def test_runs_left_running_by_a_dead_process_end_killed_at_the_next_run(project: Path) -> None:
    import time

    (project / "flows.py").write_text(CRASH_FLOW)
    (project / "pyproject.toml").write_text(
        '[tool.modelyard]\nhome = ".modelyard"\n\n'
        '[tool.modelyard.pipeline]\nentrypoint = "flows:train"\n'
    )
    crashed = _run(project, "-p", "mode=exit")
    assert crashed.returncode == 3  # the step ran in the run's own process, which died
    dead = _statuses(project)
    assert sorted(s for s, _ in dead.values()) == ["RUNNING", "RUNNING"]  # pipeline and step

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"
    alive = subprocess.Popen(  # a live run on this machine must be left alone
        [sys.executable, "-m", "modelyard.cli", "run", "-p", "mode=sleep"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_statuses(project)) < 4:  # the sleeping run and its step have started
            assert alive.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ok = _run(project, "-p", "mode=ok")
        assert ok.returncode == 0, ok.stderr
        after = _statuses(project)
        for run_id in dead:
            status, reason = after[run_id]
            assert status == "KILLED"
            assert reason is not None
            assert "process ended" in reason
        sleeping = [rid for rid in after if rid not in dead and after[rid][0] == "RUNNING"]
        assert len(sleeping) == 2  # the live run's pipeline and step runs
    finally:
        alive.kill()
        alive.wait()


ORPHAN_FLOW = """
import os, subprocess, time
import modelyard

@modelyard.step(timeout_s=300)  # a timeout: the step runs in a forked child
def train(pids: str) -> int:
    sleeper = subprocess.Popen(["sleep", "300"])  # what a step starts: a trainer, a shell
    with open(pids + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()} {sleeper.pid}")
    os.replace(pids + ".tmp", pids)
    time.sleep(300)
    return 1

@modelyard.pipeline
def flow(pids: str = ""):
    return train(pids=pids)
"""


def _dead(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie, within 10 s (whoever adopted it may not reap it)."""
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_sigkill_of_the_run_kills_its_forked_step_and_what_the_step_started(
    project: Path,
) -> None:
    import signal
    import time

    (project / "flows.py").write_text(ORPHAN_FLOW)
    pids = project / "train.pids"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", "run", "flows:flow", "-p", f"pids={pids}"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    step_pid = sleeper_pid = 0
    try:
        deadline = time.monotonic() + 60
        while not pids.exists():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        step_pid, sleeper_pid = map(int, pids.read_text().split())
        assert step_pid != proc.pid
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=30)
        assert _dead(step_pid), "the forked step outlived its runner"
        assert _dead(sleeper_pid), "what the step started outlived its runner"
    finally:
        proc.kill()
        proc.wait()
        for pid in (step_pid, sleeper_pid):
            if pid and not _dead(pid):
                os.kill(pid, signal.SIGKILL)
