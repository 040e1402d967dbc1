"""The git-tag mirror against a real temporary git repository."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from modelyard.registry.gittags import GitTagMirror, tag_name
from modelyard.registry.registry import ModelVersion, Registry
from modelyard.store.artifacts import ArtifactStore
from modelyard.store.db import MetadataStore

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Tagger",
    "GIT_COMMITTER_EMAIL": "tagger@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in _GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    for i in range(2):
        (path / "train.py").write_text(f"print({i})\n")
        git(path, "add", "train.py")
        git(path, "commit", "-q", "-m", f"commit {i}")
    return path


@pytest.fixture
def reg(tmp_path: Path, repo: Path) -> Registry:
    return Registry(
        MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}"),
        ArtifactStore.open(str(tmp_path / "artifacts")),
        user="alice",
        git_tags=True,
        project_root=repo,
    )


def _pkg(tmp_path: Path, content: bytes) -> Path:
    folder = tmp_path / f"pkg-{content.hex()[:16]}"
    folder.mkdir()
    (folder / "modelyard.json").write_bytes(b'{"m": "' + content + b'"}')
    return folder


def test_registering_creates_an_annotated_tag_on_the_source_commit(
    reg: Registry, repo: Path, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    v = reg.register_version("churn", _pkg(tmp_path, b"a"), source_commit=head, run_id=None)
    assert git(repo, "cat-file", "-t", "model/churn/v1") == "tag"
    assert git(repo, "rev-parse", "model/churn/v1^{commit}") == head
    body = git(repo, "cat-file", "-p", "model/churn/v1")
    assert f"manifest_sha256: {v.manifest_sha256}" in body
    assert f"artifact_uri: {v.artifact_uri}" in body
    assert "tagger Test Tagger <tagger@example.com>" in body
    tags = GitTagMirror(repo).list_tags()
    assert tags["model/churn/v1"].manifest_sha256 == v.manifest_sha256
    assert tags["model/churn/v1"].commit == head


def test_short_commits_are_resolved_and_missing_ones_skipped(
    reg: Registry, repo: Path, tmp_path: Path
) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    reg.register_version("m", _pkg(tmp_path, b"a"), source_commit=first[:10])
    assert git(repo, "rev-parse", "model/m/v1^{commit}") == first
    reg.register_version("m", _pkg(tmp_path, b"b"), source_commit="f" * 40)  # not in repo
    reg.register_version("m", _pkg(tmp_path, b"c"))  # no commit at all
    assert git(repo, "tag", "-l", "model/*") == "model/m/v1"
    report = reg.sync_tags()
    assert report.created == []
    assert report.verified == ["model/m/v1"]
    assert [ref for ref, _ in report.skipped] == ["m:2", "m:3"]
    assert "not in this repository" in report.skipped[0][1]
    assert report.ok


def test_sync_creates_missing_tags_and_reports_orphans_and_mismatches(
    tmp_path: Path, repo: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    reg = Registry(
        MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}"),
        ArtifactStore.open(str(tmp_path / "artifacts")),
        project_root=repo,
    )  # git_tags off: versions exist without tags
    for i in range(3):
        reg.register_version("m", _pkg(tmp_path, bytes([97 + i])), source_commit=head)
    report = reg.sync_tags()
    assert report.created == ["model/m/v1", "model/m/v2", "model/m/v3"]
    assert reg.sync_tags().verified == report.created  # second run: nothing to do

    git(repo, "tag", "-a", "-m", "stray", "model/ghost/v7", head)  # no such version
    git(repo, "tag", "-d", "model/m/v2")
    git(repo, "tag", "model/m/v2", first)  # lightweight, wrong commit
    git(repo, "tag", "-d", "model/m/v3")
    git(repo, "tag", "-a", "-m", "model m v3\n\nmanifest_sha256: " + "0" * 64, "model/m/v3", head)
    report = reg.sync_tags()
    assert report.orphaned == ["model/ghost/v7"]
    problems = dict(report.mismatched)
    assert f"points at {first}" in problems["model/m/v2"]
    assert "lightweight" in problems["model/m/v2"]
    assert "0" * 64 in problems["model/m/v3"]
    assert report.verified == ["model/m/v1"]
    assert not report.ok


def test_sync_reads_all_tags_with_one_for_each_ref(tmp_path: Path, repo: Path) -> None:
    """A git wrapper logs every invocation: sync must not run git once per tag."""
    log = tmp_path / "git.log"
    wrapper = tmp_path / "git-logged"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec git "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    head = git(repo, "rev-parse", "HEAD")
    versions = [
        ModelVersion(
            name=f"model{i % 7}",
            version=i,
            run_id=None,
            source_commit=head,
            flavor=None,
            artifact_uri=f"file:///a/{i}",
            manifest_sha256=f"{i:064x}",
            files={},
            signature=None,
            extra=None,
            aliases=(),
            tags={},
            created_at=0.0,
            created_by=None,
        )
        for i in range(1, 301)
    ]
    mirror = GitTagMirror(repo, git=str(wrapper))
    created, skipped = mirror.create_tags(versions)
    assert (len(created), skipped) == (300, [])
    calls = log.read_text().split()
    assert len(calls) <= 4, calls  # cat-file, var, hash-object, update-ref
    log.unlink()
    report = mirror.sync(versions)
    assert len(report.verified) == 300
    assert report.ok
    calls = log.read_text().split()
    assert calls.count("for-each-ref") == 1
    assert len(calls) <= 2, calls  # for-each-ref and one cat-file for the commits
    assert tag_name("model3", 3) in report.verified


def test_not_a_git_repository_is_reported_not_fatal(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    reg = Registry(
        MetadataStore.open(f"sqlite:///{tmp_path / 'meta.db'}"),
        ArtifactStore.open(str(tmp_path / "artifacts")),
        git_tags=True,
        project_root=plain,
    )
    v = reg.register_version("m", _pkg(tmp_path, b"a"), source_commit="a" * 40)
    assert reg.get_version("m", 1) == v  # the version is registered regardless
    from modelyard.errors import NotFoundError

    with pytest.raises(NotFoundError, match="not inside a git repository"):
        reg.sync_tags()
    assert os.listdir(plain) == []


def test_tags_of_two_registries_do_not_collide_and_each_syncs_its_own(
    tmp_path: Path, repo: Path
) -> None:
    """Issue 9 item 15: a project that registered locally and then against the team's store
    got `tag 'model/churn/v1' already exists`, and sync-tags failed on the other's tags."""
    from modelyard.cli import main

    head = git(repo, "rev-parse", "HEAD")

    def open_registry(name: str) -> Registry:
        return Registry(
            MetadataStore.open(f"sqlite:///{tmp_path / name}.db"),
            ArtifactStore.open(str(tmp_path / f"{name}-artifacts")),
            git_tags=True,
            project_root=repo,
        )

    local, team = open_registry("local"), open_registry("team")
    assert local.registry_id != team.registry_id
    assert open_registry("local").registry_id == local.registry_id  # kept in the store
    mine = local.register_version("churn", _pkg(tmp_path, b"a"), source_commit=head)
    body = git(repo, "cat-file", "-p", "model/churn/v1")
    assert f"registry: {local.registry_id}" in body
    assert GitTagMirror(repo).list_tags()["model/churn/v1"].registry_id == local.registry_id

    # the team's v1 is another model: registering it works, its tag is skipped, not clobbered
    theirs = team.register_version("churn", _pkg(tmp_path, b"b"), source_commit=head)
    assert theirs.version == 1
    assert GitTagMirror(repo).list_tags()["model/churn/v1"].manifest_sha256 == mine.manifest_sha256
    team.register_version("churn", _pkg(tmp_path, b"c"), source_commit=head)
    assert f"registry: {team.registry_id}" in git(repo, "cat-file", "-p", "model/churn/v2")

    # each registry reconciles only its own tags; the other's are reported, not failures
    report = local.sync_tags()
    assert report.ok, report
    assert report.verified == ["model/churn/v1"]
    assert report.foreign == [("model/churn/v2", team.registry_id)]
    assert report.orphaned == []
    report = team.sync_tags()
    assert report.ok, report
    assert report.verified == ["model/churn/v2"]
    assert report.foreign == [("model/churn/v1", local.registry_id)]
    assert "mirrors registry" in dict(report.skipped)["churn:1"]

    # moving to the team's registry: drop the local registry's tags, then mirror the team's
    settings_toml = repo / "pyproject.toml"
    settings_toml.write_text(
        "[tool.modelyard]\n"
        f'db_url = "sqlite:///{tmp_path / "team.db"}"\n'
        f'artifact_url = "{tmp_path / "team-artifacts"}"\n'
        "git_tags = true\n"
    )
    cwd = Path.cwd()
    os.chdir(repo)
    try:
        assert main(["models", "sync-tags", "--delete-foreign"]) == 0
    finally:
        os.chdir(cwd)
    tags = GitTagMirror(repo).list_tags()
    assert sorted(tags) == ["model/churn/v1", "model/churn/v2"]
    assert {t.registry_id for t in tags.values()} == {team.registry_id}
    assert tags["model/churn/v1"].manifest_sha256 == theirs.manifest_sha256
