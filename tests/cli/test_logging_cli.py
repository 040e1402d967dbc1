"""How commands log: `--log-level`/`--log-format` after `run`; text in a terminal, else JSON."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FLOW = """
import modelyard

@modelyard.step
def load(n: int) -> list[int]:
    return list(range(n))

@modelyard.pipeline
def train(n: int = 3):
    return load(n=n)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.modelyard]\nhome = ".modelyard"\n')
    (root / "flows.py").write_text(textwrap.dedent(FLOW))
    return root


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"  # no live progress table: its output is not what these tests read
    return env


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli", *args],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _run_in_terminal(project: Path, *args: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (as a person at a shell has it)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli", *args],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        assert ready, "the command hung"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    return proc.wait(timeout=60), out, b"".join(chunks).decode(errors="replace")


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_log_level_and_format_are_accepted_after_run(project: Path) -> None:
    quiet = _run(project, "run", "flows:train", "--log-level", "WARNING", "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["status"] == "FINISHED"
    assert not [r for r in _json_lines(quiet.stderr) if r["level"] == "info"]

    text = _run(project, "run", "flows:train", "--log-format", "text")
    assert text.returncode == 0, text.stderr
    assert _json_lines(text.stderr) == []
    assert "info: pipeline started (pipeline=train" in text.stderr

    typer_path = _run(project, "run", "flows:train", "--log-level=warning")  # Typer parses it
    assert typer_path.returncode == 0, typer_path.stderr
    assert not [r for r in _json_lines(typer_path.stderr) if r["level"] == "info"]


def test_json_lines_when_stderr_is_not_a_terminal(project: Path) -> None:
    done = _run(project, "run", "flows:train")
    assert done.returncode == 0, done.stderr
    messages = [r["msg"] for r in _json_lines(done.stderr)]
    assert "pipeline started" in messages


def test_a_terminal_gets_no_info_json_unless_asked(project: Path) -> None:
    code, out, err = _run_in_terminal(project, "run", "flows:train", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "FINISHED"
    assert _json_lines(err) == []
    assert "pipeline started" not in err

    code, out, err = _run_in_terminal(
        project, "--log-format", "json", "run", "flows:train", "--json"
    )
    assert code == 0, err
    assert "pipeline started" in [r["msg"] for r in _json_lines(err)]

    code, _, err = _run_in_terminal(project, "config", "show")
    assert code == 0, err
    assert _json_lines(err) == []
