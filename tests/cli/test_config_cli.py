"""`modelyard config show`: every value, where it came from, and secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.cli import main
from modelyard.cli.state import state


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a serving table in its pyproject.toml, the CLI pointed at it."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[tool.modelyard]\nexperiment = 'from-file'\n\n[tool.modelyard.serving]\nport = 7000\n"
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("MODELYARD_SERVING__ADMIN_TOKEN", "hunter2")
    # the CLI caches its settings per process: start each test from a clean state
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    return root


def test_show_text_masks_the_secret(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["serving.admin_token"][1:] == [
        "**********",
        "(env",
        "MODELYARD_SERVING__ADMIN_TOKEN)",
    ]
    assert lines["serving.port"][1] == "7000"
    assert lines["experiment"][1] == "from-file"
    assert lines["project_root"][1] == str(project.resolve())


def test_show_json_masks_the_secret(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    values = json.loads(out)["values"]
    assert values["serving.admin_token"] == {
        "value": "**********",
        "source": "env MODELYARD_SERVING__ADMIN_TOKEN",
    }
    assert values["serving.port"]["value"] == 7000
    assert values["home"] == {"value": None, "source": "default"}


def test_bad_setting_exits_2_naming_key_and_source(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODELYARD_SERVING__PORT", "70000")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert "serving.port = '70000' (from env MODELYARD_SERVING__PORT)" in err
    assert "modelyard config show" in err


def test_storage_options_secrets_are_masked_and_file_values_named_by_their_file(
    tmp_path: Path,
) -> None:
    """The real CLI in a project reaching MinIO: keys, secrets and tokens never printed."""
    import os
    import subprocess
    import sys

    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[tool.modelyard]\n"
        'artifact_url = "s3://models/team"\n'
        'storage_options = { key = "AKIAEXAMPLEKEYID", secret = "wJalrXUtnFEMI", '
        'endpoint_url = "http://127.0.0.1:9000", '
        'client_kwargs = { aws_session_token = "FwoGZXIvYXdzEXAMPLE" }, password = "pa55word" }\n\n'
        "[tool.modelyard.pipeline.params]\nC = 0.5\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    for args in (["config", "show"], ["config", "show", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "modelyard.cli", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        shown = done.stdout + done.stderr
        for secret in ("AKIAEXAMPLEKEYID", "wJalrXUtnFEMI", "FwoGZXIvYXdzEXAMPLE", "pa55word"):
            assert secret not in shown
        assert "http://127.0.0.1:9000" in shown  # the endpoint is not a secret
    values = json.loads(done.stdout)["values"]
    assert values["storage_options.key"]["value"] == "***"
    assert values["pipeline.params.C"] == {
        "value": 0.5,
        "source": f"{root.resolve() / 'pyproject.toml'} [tool.modelyard]",
    }


def test_storage_options_in_a_log_record_are_masked() -> None:
    import io
    import logging

    from modelyard.logs import configure_logging, get_logger

    stream = io.StringIO()
    configure_logging("INFO", stream=stream, force=True)
    get_logger("test").info(
        "opened the store",
        extra={
            "storage_options": {"key": "AKIAEXAMPLEKEYID", "secret": "s", "anon": False},
            "cache_key": "abc123",
            "db_password": "pw",
        },
    )
    logging.getLogger("modelyard").handlers[0].flush()
    record = json.loads(stream.getvalue())
    assert record["storage_options"] == {"key": "***", "secret": "***", "anon": False}
    assert record["cache_key"] == "abc123"  # a key, not a credential
    assert record["db_password"] == "***"
