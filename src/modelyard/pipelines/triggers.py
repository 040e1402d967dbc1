"""Triggers: run a pipeline only when its code or its declared data changed.

``modelyard run --if-changed`` compares, against the last FINISHED run of the same pipeline
(not counting runs made while ``modelyard run`` imported the pipeline's module):

* the code: the git commit and diff hash (:func:`modelyard.tracking.lineage.capture_git`) and the
  pipeline's step code fingerprints (which also catch changes outside git);
* the data: a content sha256 of every file matched by ``[tool.modelyard.pipeline] data_sources``
  (paths or globs relative to the project root).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.pipelines.datafiles import FileHasher
    from modelyard.store.db import MetadataStore

__all__ = ["changes_since_last_success", "code_digest", "combine", "data_fingerprints"]


def code_digest(codes: dict[str, str]) -> str:
    """One sha256 over the step code fingerprints (node id -> fingerprint)."""
    h = hashlib.sha256()
    for node_id in sorted(codes):
        h.update(f"{node_id}={codes[node_id]}\n".encode())
    return h.hexdigest()


def combine(files: dict[str, str]) -> str:
    """One sha256 over ``{relative path: sha256}``."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}={files[path]}\n".encode())
    return h.hexdigest()


def data_fingerprints(
    project_root: Path, patterns: list[str], *, hasher: FileHasher
) -> dict[str, str]:
    """Content sha256 of every file matched by ``patterns``; relative posix path -> sha256.

    Args:
        project_root: relative patterns are globs under it.
        patterns: paths or globs.
        hasher: hashes the files (skipping those whose size and mtime it remembers).

    Raises:
        ConfigError: a pattern matches no file (a typo would otherwise never trigger).
    """
    out: dict[str, str] = {}
    root = project_root.resolve()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_absolute():
            matches = [path] if path.is_file() else sorted(Path(path.anchor).glob(pattern[1:]))
        else:
            matches = sorted(p for p in root.glob(pattern) if p.is_file())
        matches = [m for m in matches if m.is_file()]
        if not matches:
            raise ConfigError(
                f"data source {pattern!r} matches no file under {root}",
                hint="fix [tool.modelyard.pipeline] data_sources (paths or globs relative to the "
                "project root)",
                data_source=pattern,
            )
        for m in matches:
            resolved = m.resolve()
            try:
                rel = resolved.relative_to(root).as_posix()
            except ValueError:
                rel = resolved.as_posix()
            out[rel] = hasher.file(resolved)
    return out


def _last_success(ms: MetadataStore, pipeline: str) -> dict[str, Any] | None:
    with ms.query() as q:
        found = q.execute(
            "SELECT id, git_commit, git_diff_sha256 FROM runs WHERE kind = 'pipeline' "
            "AND name = :name AND status = 'FINISHED' AND NOT EXISTS (SELECT 1 FROM run_tags "
            "WHERE run_tags.run_id = runs.id AND run_tags.key = 'pipeline.imported') "
            "ORDER BY start_time DESC LIMIT 1",
            {"name": pipeline},
        )
        if not found:
            return None
        run_id, git_commit, git_diff_sha256 = found[0]
        tags = dict(q.execute("SELECT key, value FROM run_tags WHERE run_id = :id", {"id": run_id}))
    return {
        "run_id": run_id,
        "git_commit": git_commit,
        "git_diff_sha256": git_diff_sha256,
        "tags": tags,
    }


def changes_since_last_success(
    ms: MetadataStore,
    pipeline: str,
    project_root: Path,
    code: str,
    data_files: dict[str, str],
) -> list[str]:
    """Why the pipeline should run; an empty list means nothing changed.

    Args:
        ms: the metadata store.
        pipeline: the pipeline's name.
        project_root: the git work tree to describe.
        code: :func:`code_digest` of the steps now.
        data_files: :func:`data_fingerprints` now.
    """
    import orjson

    from modelyard.tracking.lineage import capture_git

    last = _last_success(ms, pipeline)
    if last is None:
        return [f"no successful run of pipeline {pipeline!r} yet"]
    reasons: list[str] = []
    git = capture_git(project_root)
    if git.get("git_commit") and (
        git.get("git_commit") != last["git_commit"]
        or git.get("git_diff_sha256") != last["git_diff_sha256"]
    ):
        before = (last["git_commit"] or "none")[:12]
        reasons.append(f"code changed: git {before} -> {str(git['git_commit'])[:12]}")
        if git.get("git_diff_sha256"):
            reasons[-1] += " (with uncommitted changes)"
    if last["tags"].get("trigger.code") != code:
        reasons.append("code changed: a step or the project code it calls differs")
    before_files: dict[str, str] = {}
    raw = last["tags"].get("trigger.data_files")
    if raw:
        try:
            before_files = dict(orjson.loads(raw))
        except orjson.JSONDecodeError:  # truncated by the tag length limit
            before_files = {}
    if data_files or before_files:
        changed = sorted(
            p
            for p in set(data_files) | set(before_files)
            if data_files.get(p) != before_files.get(p)
        )
        if changed:
            shown = ", ".join(changed[:5]) + (
                f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            )
            reasons.append(f"data changed: {shown}")
        elif last["tags"].get("trigger.data") not in (None, combine(data_files)):
            reasons.append("data changed")
    return reasons
