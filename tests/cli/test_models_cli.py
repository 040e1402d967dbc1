"""`modelyard models ...` and `modelyard db ...`: output, JSON, exit codes and error wording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.cli import main
from modelyard.cli.state import state
from modelyard.logs import configure_logging
from modelyard.registry.registry import Registry
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.db import HEAD_REVISION, MetadataStore


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def reg(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Registry]:
    """Model 'churn' with versions 1-3, production at v2; the CLI pointed at the same store."""
    monkeypatch.setenv("MODELYARD_HOME", str(settings.resolved_home))
    monkeypatch.setenv("MODELYARD_DB_URL", settings.resolved_db_url)
    monkeypatch.setenv("MODELYARD_ARTIFACT_URL", settings.resolved_artifact_url)
    monkeypatch.setenv("MODELYARD_USER", "ci-bot")
    monkeypatch.chdir(settings.project_root)
    # the CLI caches its settings per process: start each test from a clean state
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    # modelyard.logs binds its handler to the sys.stderr of the first configure call, which is a
    # capture stream closed after that test: log through whatever sys.stderr is at emit time.
    configure_logging("WARNING", stream=_CurrentStderr(), force=True)  # type: ignore[arg-type]
    registry = Registry(
        MetadataStore.from_settings(settings), ArtifactStore.from_settings(settings), user="alice"
    )
    for i in range(3):
        pkg = tmp_path / f"pkg{i}"
        pkg.mkdir()
        (pkg / "modelyard.json").write_text(f'{{"i": {i}}}')
        registry.register_version("churn", pkg, run_id=None, tags={"i": str(i)})
    registry.set_alias("churn", "production", 2, reason="first release")
    try:
        yield registry
    finally:
        registry.metadata_store.dispose()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "LATEST", "ALIASES", "DESCRIPTION"]
    assert lines[1].split()[:3] == ["churn", "3", "production=v2"]
    code, out, _ = _run(capsys, "models", "list", "--json")
    assert code == 0
    assert json.loads(out)[0]["aliases"] == {"production": 2}


def test_show_model_prints_versions_aliases_and_history(
    reg: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "models", "show", "churn")
    assert code == 0
    assert "versions:" in out
    assert "production -> v2" in out
    history = out.split("alias history:")[1]
    assert "first release" in history
    assert "alice" in history
    code, out, _ = _run(capsys, "models", "show", "churn", "--json")
    body = json.loads(out)
    assert [v["version"] for v in body["versions"]] == [1, 2, 3]
    assert body["alias_history"][0]["to_version"] == 2


def test_show_one_version(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "show", "churn@production")
    assert code == 0
    assert out.splitlines()[0] == "churn version 2"
    v2 = reg.get_version("churn", 2)
    assert v2.manifest_sha256 in out
    code, out, _ = _run(capsys, "models", "show", "churn:3", "--json")
    assert json.loads(out)["tags"] == {"i": "2"}


def test_promote_and_rollback(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "promote", "churn", "3", "--reason", "better auc")
    assert (code, out.strip()) == (0, "churn@production: v2 -> v3")
    assert reg.resolve("churn@production").version == 3
    code, out, _ = _run(capsys, "models", "rollback", "churn", "--reason", "latency")
    assert (code, out.strip()) == (0, "churn@production: v3 -> v2 (rolled back)")
    last = reg.alias_history("churn", "production")[-1]
    assert (last.action, last.actor, last.reason) == ("rollback", "ci-bot", "latency")
    code, _, err = _run(capsys, "models", "rollback", "churn")
    assert code == 5
    assert "no earlier version" in err
    assert "hint: point it elsewhere with `modelyard models promote churn" in err


def test_promote_a_candidate_alias(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "promote", "churn", "1", "--alias", "candidate")
    assert (code, out.strip()) == (0, "churn@candidate: unset -> v1")


def test_tag_model_and_version(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "models", "tag", "churn", "team=fraud", "tier=gold")[0] == 0
    assert reg.get_model("churn").tags == {"team": "fraud", "tier": "gold"}
    assert _run(capsys, "models", "tag", "churn:1", "checked=yes")[0] == 0
    assert reg.get_version("churn", 1).tags == {"checked": "yes", "i": "0"}
    code, out, _ = _run(capsys, "models", "tag", "churn:1", "checked", "--delete")
    assert (code, out.strip()) == (0, "churn:1: checked removed")
    code, _, err = _run(capsys, "models", "tag", "churn", "novalue")
    assert code == 2
    assert "'novalue' is not KEY=VALUE" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["models", "show", "ghost"], 4, "no model named 'ghost'"),
        (["models", "show", "churn:9"], 4, "model 'churn' has no version 9"),
        (["models", "show", "churn@shadow"], 4, "model 'churn' has no alias 'shadow'"),
        (["models", "promote", "churn", "7"], 4, "has no version 7"),
        (["models", "promote", "churn", "1", "--alias", "42"], 2, "purely numeric"),
        (["models", "show", "bad name"], 2, "'bad name' is not a valid name"),
    ],
)
def test_errors_print_one_message_and_a_hint(
    reg: Registry,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    got, out, err = _run(capsys, *args)
    assert got == code
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in err


def test_db_current_and_upgrade(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "db", "current", "--json")
    assert code == 0
    assert json.loads(out)["current"] == HEAD_REVISION
    assert json.loads(out)["status"] == "up to date"
    reg.metadata_store.downgrade("0001")
    code, _, err = _run(capsys, "models", "list")
    assert code == 7
    assert "hint: back up the database, then run `modelyard db upgrade`" in err
    code, out, _ = _run(capsys, "db", "current")
    assert "behind: run `modelyard db upgrade`" in out
    code, out, _ = _run(capsys, "db", "upgrade")
    assert (code, out.strip().split()[-1]) == (0, HEAD_REVISION)
    assert "from 0001" in out
    assert _run(capsys, "models", "list")[0] == 0


@pytest.mark.slow
def test_cli_process_exit_code_and_message(sqlite_settings: Any, tmp_path: Path) -> None:
    """The installed entry point, in a real process, against a store it creates."""
    env = {
        **os.environ,
        "MODELYARD_HOME": str(sqlite_settings.resolved_home),
        "MODELYARD_DB_URL": sqlite_settings.resolved_db_url,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "models", "show", "ghost@production"],
        cwd=sqlite_settings.project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    assert "error: no model named 'ghost'" in proc.stderr
    assert "hint: `modelyard models list` shows the registered models" in proc.stderr
    assert MetadataStore.open(sqlite_settings.resolved_db_url).current_revision() == HEAD_REVISION
