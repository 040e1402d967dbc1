"""Lineage: git state of a real temporary repository, and the environment."""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.tracking import lineage
from modelyard.tracking.client import TrackingClient

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A git repository with one commit on branch 'main'."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "t@example.com")
    _git(path, "config", "user.name", "t")
    _git(path, "config", "commit.gpgsign", "false")
    (path / "train.py").write_text("print('v1')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "first")
    lineage.clear_cache()
    yield path
    lineage.clear_cache()


def test_clean_repository(repo: Path) -> None:
    info = lineage.capture(repo)
    assert info["git_commit"] == _git(repo, "rev-parse", "HEAD")
    assert info["git_branch"] == "main"
    assert info["git_dirty"] is False
    assert info["git_diff_sha256"] is None


def test_dirty_repository_diff_hash_follows_the_change(repo: Path) -> None:
    (repo / "train.py").write_text("print('v2')\n")
    first = lineage.capture_git(repo)
    assert first["git_dirty"] is True
    expected = hashlib.sha256(
        subprocess.run(
            ["git", "-C", str(repo), "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff"],
            check=True,
            capture_output=True,
        ).stdout
    ).hexdigest()
    assert first["git_diff_sha256"] == expected
    lineage.clear_cache()
    (repo / "train.py").write_text("print('v3')\n")
    second = lineage.capture_git(repo)
    assert second["git_dirty"] is True
    assert second["git_diff_sha256"] != first["git_diff_sha256"]
    lineage.clear_cache()
    (repo / "train.py").write_text("print('v1')\n")  # back to the commit: clean again
    assert lineage.capture_git(repo)["git_dirty"] is False


def test_untracked_file_makes_it_dirty(repo: Path) -> None:
    (repo / "notes.txt").write_text("x")
    assert lineage.capture_git(repo)["git_dirty"] is True


def test_detached_head_and_no_repository(repo: Path, tmp_path: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    info = lineage.capture_git(repo)
    assert info["git_branch"] is None
    assert info["git_commit"] == _git(repo, "rev-parse", "HEAD")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert lineage.capture_git(plain) == {
        "git_commit": None,
        "git_branch": None,
        "git_dirty": None,
        "git_diff_sha256": None,
    }


def test_environment() -> None:
    env = lineage.capture_environment()
    assert env["python"] == platform.python_version()
    assert env["cpu_count"] >= 1
    assert isinstance(env["gpu"], list)
    from importlib import metadata

    assert env["packages"]["sqlalchemy"] == metadata.version("sqlalchemy")
    assert env["packages"]["numpy"] == metadata.version("numpy")


def test_lineage_is_stored_on_the_run(settings, repo: Path) -> None:  # type: ignore[no-untyped-def]
    (repo / "train.py").write_text("print('edited')\n")
    client = TrackingClient.from_settings(settings)
    client.project_root = repo
    try:
        with client.start_run() as run:
            run.log_metric("m", 1.0)
        info = client.get_run(run.id)
    finally:
        client.metadata_store.dispose()
    assert info.lineage["git_commit"] == _git(repo, "rev-parse", "HEAD")
    assert info.lineage["git_branch"] == "main"
    assert info.lineage["git_dirty"] is True
    assert len(info.lineage["git_diff_sha256"]) == 64
    assert info.lineage["environment"]["python"] == platform.python_version()
    assert "sqlalchemy" in info.lineage["environment"]["packages"]
