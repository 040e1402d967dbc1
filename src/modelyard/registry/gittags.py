"""Mirror registered versions as annotated git tags ``model/<name>/v<N>`` (GitOps-friendly).

Each tag points at the version's source commit and its message carries the artifact URI, the
manifest sha256 and the run id, so a plain ``git show model/churn/v3`` says what was released.

Everything is batched: all tags are read with ONE ``git for-each-ref`` (GTO re-scans every tag
per command, which takes seconds at a few thousand tags), and any number of tags is created with
three git processes: ``cat-file --batch-check`` (which commits exist), ``hash-object
--stdin-paths`` (the tag objects) and ``update-ref --stdin`` (the refs, in one transaction).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigError, ConflictError, NotFoundError
from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.registry.entities import ModelVersion

__all__ = ["TAG_PREFIX", "GitTag", "GitTagMirror", "SyncReport", "tag_message", "tag_name"]

_log = get_logger("registry.gittags")
TAG_PREFIX = "model/"
_TAG_RE = re.compile(r"^refs/tags/model/(?P<name>.+)/v(?P<version>[0-9]+)$")
_FIELD, _RECORD = "\x1f", "\x1e"
_GIT_TIMEOUT_S = 120.0


def tag_name(model: str, version: int) -> str:
    """The tag of a version: ``model/<name>/v<N>``."""
    return f"{TAG_PREFIX}{model}/v{version}"


def tag_message(version: ModelVersion, registry_id: str | None = None) -> str:
    """The annotated tag message: a summary line, then ``key: value`` lines; ``registry:``
    names the registry the tag mirrors (:attr:`Registry.registry_id`)."""
    lines = [
        f"model {version.name} v{version.version}",
        "",
        f"artifact_uri: {version.artifact_uri}",
        f"manifest_sha256: {version.manifest_sha256}",
    ]
    if registry_id:
        lines.append(f"registry: {registry_id}")
    if version.run_id:
        lines.append(f"run_id: {version.run_id}")
    if version.flavor:
        lines.append(f"flavor: {version.flavor}")
    lines.append("registered-by: modelyard")
    return "\n".join(lines) + "\n"


def _parse_message(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(": ")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@dataclass(frozen=True, slots=True)
class GitTag:
    """A ``model/<name>/v<N>`` tag as found in the repository."""

    name: str
    model: str
    version: int
    commit: str  # the commit it points at (peeled)
    annotated: bool
    manifest_sha256: str | None
    artifact_uri: str | None
    run_id: str | None
    registry_id: str | None = None  # the registry it mirrors; None for tags of older versions


@dataclass
class SyncReport:
    """What :meth:`GitTagMirror.sync` did and found.

    Attributes:
        created: tags created for versions that had none.
        verified: tags whose commit and manifest sha256 match their version.
        mismatched: ``(tag, what differs)`` for tags disagreeing with the registry.
        orphaned: tags naming a version the registry does not have.
        skipped: ``(model:version, why)`` for versions that could not be tagged.
        foreign: ``(tag, registry id)`` for tags mirroring another registry: left alone.
        deleted: foreign tags removed (``delete_foreign=True``).
    """

    created: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str]] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    foreign: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No mismatches and no orphans among this registry's tags."""
        return not self.mismatched and not self.orphaned

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        body = asdict(self)
        body["ok"] = self.ok
        return body


class GitTagMirror:
    """Read and write ``model/*`` tags of one git work tree through the ``git`` command.

    Args:
        repo: a folder inside the git work tree.
        git: the git executable.
        registry_id: the registry whose versions the tags mirror, written in each tag; tags of
            another registry are never changed or judged, only reported (``foreign``).
    """

    def __init__(
        self, repo: str | os.PathLike[str], git: str = "git", *, registry_id: str | None = None
    ) -> None:
        self.repo = Path(repo)
        self.git = git
        self.registry_id = registry_id

    def _foreign(self, tag: GitTag | None) -> str | None:
        """The other registry ``tag`` mirrors, or None when it is this one's (or unmarked)."""
        if tag is None or not tag.registry_id or not self.registry_id:
            return None
        return tag.registry_id if tag.registry_id != self.registry_id else None

    def _run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        try:
            proc = subprocess.run(
                [self.git, *args],
                cwd=self.repo,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=_GIT_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ConfigError(
                f"cannot run {self.git!r}: git is not installed or not on PATH",
                hint="install git, or turn git_tags off in [tool.modelyard]",
            ) from exc
        except NotADirectoryError as exc:
            raise NotFoundError(
                f"project folder {str(self.repo)!r} does not exist",
                hint="pass the git work tree as project_root",
            ) from exc
        if check and proc.returncode != 0:
            message = proc.stderr.strip() or proc.stdout.strip()
            if "not a git repository" in message:
                raise NotFoundError(
                    f"{self.repo} is not inside a git repository, so model tags cannot be kept",
                    hint="run `git init` there, or turn git_tags off in [tool.modelyard]",
                    repo=str(self.repo),
                )
            raise ConflictError(
                f"git {args[0]} failed in {self.repo}: {message}",
                hint="fix the repository state, then run `modelyard models sync-tags`",
                repo=str(self.repo),
            )
        return proc.stdout

    # ------------------------------------------------------------------ read
    def list_tags(self) -> dict[str, GitTag]:
        """Every ``model/<name>/v<N>`` tag, by tag name, from one ``git for-each-ref``."""
        fmt = _FIELD.join(
            ["%(refname)", "%(objecttype)", "%(objectname)", "%(*objectname)", "%(contents)"]
        )
        out = self._run(
            "for-each-ref", f"--format={fmt.replace(_FIELD, '%1f')}%1e", "refs/tags/model/"
        )
        tags: dict[str, GitTag] = {}
        for raw in out.split(_RECORD):
            record = raw.lstrip("\n")
            if not record:
                continue
            parts = record.split(_FIELD)
            if len(parts) != 5:
                continue
            ref, objtype, objname, peeled, contents = parts
            match = _TAG_RE.match(ref)
            if match is None:
                continue
            annotated = objtype == "tag"
            fields = _parse_message(contents) if annotated else {}
            name = ref.removeprefix("refs/tags/")
            tags[name] = GitTag(
                name=name,
                model=match["name"],
                version=int(match["version"]),
                commit=peeled if annotated else objname,
                annotated=annotated,
                manifest_sha256=fields.get("manifest_sha256"),
                artifact_uri=fields.get("artifact_uri"),
                run_id=fields.get("run_id"),
                registry_id=fields.get("registry"),
            )
        return tags

    def existing_commits(self, commits: Iterable[str]) -> dict[str, str]:
        """Map each given commit-ish that names a commit to its full hash (one git process)."""
        wanted = sorted({c for c in commits if c})
        if not wanted:
            return {}
        out = self._run(
            "cat-file", "--batch-check", stdin="".join(f"{c}^{{commit}}\n" for c in wanted)
        )
        found: dict[str, str] = {}
        for asked, line in zip(wanted, out.splitlines(), strict=False):
            parts = line.split()
            if len(parts) >= 2 and parts[1] == "commit":
                found[asked] = parts[0]
        return found

    # ------------------------------------------------------------------ write
    def _ident(self) -> str:
        out = self._run("var", "GIT_COMMITTER_IDENT", check=False).strip()
        if out:
            return out
        return f"modelyard <modelyard@localhost> {int(time.time())} +0000"

    def create_tags(
        self, versions: Sequence[ModelVersion]
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Create annotated tags for ``versions`` in a few git processes.

        Returns:
            (created tag names, ``(model:version, why)`` for versions skipped: no source commit,
            or a commit the repository does not have).

        Raises:
            ConflictError: git refused the refs (e.g. a tag was created concurrently).
        """
        if len(versions) == 1:
            return self._create_one(versions[0])
        skipped: list[tuple[str, str]] = []
        commits = self.existing_commits(v.source_commit for v in versions if v.source_commit)
        todo: list[tuple[ModelVersion, str]] = []
        for v in versions:
            if not v.source_commit:
                skipped.append((v.ref, "no source commit recorded"))
            elif v.source_commit not in commits:
                skipped.append((v.ref, f"commit {v.source_commit} is not in this repository"))
            else:
                todo.append((v, commits[v.source_commit]))
        if not todo:
            return [], skipped
        ident = self._ident()
        with tempfile.TemporaryDirectory(prefix="modelyard-tags-") as tmp:
            paths = []
            for i, (v, commit) in enumerate(todo):
                body = (
                    f"object {commit}\ntype commit\ntag {tag_name(v.name, v.version)}\n"
                    f"tagger {ident}\n\n{tag_message(v, self.registry_id)}"
                )
                path = Path(tmp) / f"{i}.tag"
                path.write_text(body, encoding="utf-8")
                paths.append(str(path))
            out = self._run(
                "hash-object", "-t", "tag", "-w", "--stdin-paths", stdin="\n".join(paths) + "\n"
            )
        objects = out.split()
        updates = "".join(
            f"create refs/tags/{tag_name(v.name, v.version)} {obj}\n"
            for (v, _), obj in zip(todo, objects, strict=True)
        )
        self._run("update-ref", "--stdin", stdin=updates)
        created = [tag_name(v.name, v.version) for v, _ in todo]
        _log.info("git tags created", extra={"count": len(created)})
        return created, skipped

    def _create_one(self, v: ModelVersion) -> tuple[list[str], list[tuple[str, str]]]:
        """One tag, one git process (the per-registration path)."""
        if not v.source_commit:
            return [], [(v.ref, "no source commit recorded")]
        name = tag_name(v.name, v.version)
        target = f"{v.source_commit}^{{commit}}"
        try:
            self._run("tag", "-a", "-F", "-", name, target, stdin=tag_message(v, self.registry_id))
        except ConflictError as exc:
            if "not a valid" in exc.message or "Failed to resolve" in exc.message:
                return [], [(v.ref, f"commit {v.source_commit} is not in this repository")]
            other = self._foreign(self.list_tags().get(name)) if "exists" in exc.message else None
            if other is not None:
                return [], [(v.ref, _taken(name, other, self.registry_id))]
            raise
        _log.info("git tags created", extra={"count": 1})
        return [name], []

    # ------------------------------------------------------------------ reconcile
    def sync(self, versions: Sequence[ModelVersion], *, delete_foreign: bool = False) -> SyncReport:
        """Create missing tags, verify existing ones, report tags without a version.

        Only this registry's tags (and unmarked tags of older modelyard versions) are judged;
        tags mirroring another registry are reported as ``foreign`` and left alone, or deleted
        from this clone with ``delete_foreign`` (moving from a local registry to a team's).
        """
        report = SyncReport()
        tags = self.list_tags()
        foreign = {n: other for n, t in tags.items() if (other := self._foreign(t)) is not None}
        if delete_foreign and foreign:
            self._run("update-ref", "--stdin", stdin="".join(
                f"delete refs/tags/{n}\n" for n in sorted(foreign)
            ))  # fmt: skip
            report.deleted = sorted(foreign)
            _log.info("foreign git tags deleted", extra={"count": len(foreign)})
            tags = {n: t for n, t in tags.items() if n not in foreign}
            foreign = {}
        report.foreign = sorted(foreign.items())
        by_tag = {tag_name(v.name, v.version): v for v in versions}
        missing: list[ModelVersion] = []
        commits = self.existing_commits(v.source_commit for v in versions if v.source_commit)
        for name, v in by_tag.items():
            tag = tags.get(name)
            if name in foreign:
                report.skipped.append((v.ref, _taken(name, foreign[name], self.registry_id)))
                continue
            if tag is None:
                missing.append(v)
                continue
            problems = []
            expected_commit = commits.get(v.source_commit or "", v.source_commit)
            if v.source_commit and tag.commit != expected_commit:
                problems.append(f"points at {tag.commit}, registry says {v.source_commit}")
            if not tag.annotated:
                problems.append("lightweight tag: no manifest sha256 to verify")
            elif tag.manifest_sha256 != v.manifest_sha256:
                problems.append(
                    f"manifest sha256 {tag.manifest_sha256} != registry {v.manifest_sha256}"
                )
            if problems:
                report.mismatched.append((name, "; ".join(problems)))
            else:
                report.verified.append(name)
        report.orphaned = sorted(n for n in tags if n not in by_tag and n not in foreign)
        if missing:
            created, skipped = self.create_tags(missing)
            report.created = created
            report.skipped.extend(skipped)
        return report


def _taken(name: str, other: str, ours: str | None) -> str:
    return (
        f"tag {name} mirrors registry {other}, not this one ({ours}); "
        "`modelyard models sync-tags --delete-foreign` removes the other registry's tags "
        "from this clone"
    )
