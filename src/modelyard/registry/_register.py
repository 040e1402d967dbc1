"""Registering a version: files first, then the version rows in one transaction.

Registration uploads every file (and the contract and reference profile) to the artifact store
first and only then inserts the version rows, in one transaction, so a process killed at any
moment never leaves a version pointing at missing bytes. Version numbers come from
``models.last_version``, bumped by an ``UPDATE`` that holds the model's row lock (SQLite:
``BEGIN IMMEDIATE``), so they stay gap-free and unique when many processes register at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.logs import get_logger
from modelyard.registry._base import RegistryBase
from modelyard.registry._sql import BUMP, INSERT_VERSION, insert_row_ignore, jsonable
from modelyard.registry.aliases import move_alias
from modelyard.registry.entities import MANIFEST_NAME, ModelVersion
from modelyard.registry.names import check_tags, validate_alias, validate_model_name
from modelyard.store import schema as t

if TYPE_CHECKING:
    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile
    from modelyard.store.artifacts import ArtifactRef

_log = get_logger("registry")


class VersionWriter(RegistryBase):
    """:meth:`register_version` and what it stores beside the rows."""

    def register_version(
        self,
        name: str,
        package_dir_or_files: str | os.PathLike[str] | Mapping[str, ArtifactRef],
        *,
        run_id: str | None = None,
        source_commit: str | None = None,
        flavor: str | None = None,
        signature: Any = None,
        extra: Mapping[str, Any] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Iterable[str] = (),
        alias_reason: str | None = None,
        contract: Contract | None = None,
        profile: Profile | None = None,
    ) -> ModelVersion:
        """Register a new immutable version of ``name`` (created if it does not exist).

        All files are stored in the artifact store first; then the version, its files, tags and
        aliases are inserted in one transaction. Nothing can overwrite an existing version.

        Args:
            name: the model's name.
            package_dir_or_files: a package folder (every file under it is uploaded), a single
                file, or ``{relative path: ArtifactRef}`` of files already in the artifact store.
            run_id: the producing tracking run; its git commit is used when ``source_commit``
                is not given.
            source_commit: git commit of the code that produced the model.
            flavor: how to load it (``sklearn``, ``onnx``, ...).
            signature: input/output signature or data contract (JSON-able).
            extra: JSON-able data fixed with the version (gate verdict, metrics, refs).
            description: free text.
            tags: initial version tags.
            aliases: aliases to point at the new version (recorded in the alias history).
            alias_reason: why the aliases move, recorded with each alias history event.
            contract: the data contract of the model's input; stored content-addressed with
                the version (``ModelVersion.contract``), checked on every serving request.
            profile: the reference profile of the training data
                (``ModelVersion.reference_profile``), what monitoring measures drift against.

        Raises:
            InvalidNameError: an illegal model name, alias or tag key.
            InvalidInputError: an empty package or a bad file path.
            NotFoundError: the package folder, a referenced artifact or ``run_id`` is missing.
        """
        validate_model_name(name)
        checked_tags = check_tags(tags)
        alias_list = list(dict.fromkeys(validate_alias(a) for a in aliases))
        extra_dict = jsonable(dict(extra), "extra") if extra is not None else None
        signature = jsonable(signature, "signature")
        files = self._upload(package_dir_or_files)
        contract_sha = self._put_contract(contract)
        profile_sha = self._put_profile(profile)
        manifest = MANIFEST_NAME if MANIFEST_NAME in files else next(iter(files))
        manifest_ref = files[manifest]
        # this store's URI, even when the caller's refs were made by another handle on it
        artifact_uri = self.artifact_store.uri(manifest_ref.sha256)
        actor = self._actor()
        now = self._now()
        with self.metadata_store.begin() as conn:
            bumped = conn.execute(BUMP, {"m_name": name, "now": now}).first()
            if bumped is None:
                insert_row_ignore(
                    conn,
                    t.models,
                    {"name": name, "created_at": now, "updated_at": now, "last_version": 0},
                )
                bumped = conn.execute(BUMP, {"m_name": name, "now": now}).one()
            model_id, number = int(bumped[0]), int(bumped[1])
            if run_id is not None:
                commit = conn.execute(
                    sa.select(t.runs.c.git_commit).where(t.runs.c.id == run_id)
                ).first()
                if commit is None:
                    raise NotFoundError(
                        f"run {run_id!r} does not exist, so version {number} of {name!r} "
                        "cannot point at it",
                        hint="pass the id of an existing run (`modelyard runs list`) or no run_id",
                        run_id=run_id,
                    )
                if source_commit is None:
                    source_commit = commit[0]
            version_id = conn.execute(
                INSERT_VERSION,
                {
                    "model_id": model_id,
                    "version": number,
                    "run_id": run_id,
                    "source_commit": source_commit,
                    "flavor": flavor,
                    "artifact_uri": artifact_uri,
                    "manifest_sha256": manifest_ref.sha256,
                    "signature": signature,
                    "extra": extra_dict,
                    "description": description,
                    "created_at": now,
                    "created_by": actor,
                    "contract_sha256": contract_sha,
                    "profile_sha256": profile_sha,
                },
            ).scalar_one()
            conn.execute(
                sa.insert(t.model_version_files),
                [
                    {
                        "version_id": version_id,
                        "path": p,
                        "sha256": r.sha256,
                        "size_bytes": r.size_bytes,
                    }
                    for p, r in files.items()
                ],
            )
            if checked_tags:
                conn.execute(
                    sa.insert(t.model_version_tags),
                    [
                        {"version_id": version_id, "key": k, "value": v}
                        for k, v in checked_tags.items()
                    ],
                )
            for alias in alias_list:
                move_alias(
                    conn,
                    model_id=model_id,
                    name=name,
                    alias=alias,
                    to_version=number,
                    reason=alias_reason,
                    action="set",
                    now=now,
                    actor=actor,
                )
        _log.info("model version registered", extra={"model": name, "version": number})
        version = ModelVersion(
            name=name,
            version=number,
            run_id=run_id,
            source_commit=source_commit,
            flavor=flavor,
            artifact_uri=artifact_uri,
            manifest_sha256=manifest_ref.sha256,
            files={p: r.sha256 for p, r in files.items()},
            signature=signature,
            extra=extra_dict,
            aliases=tuple(sorted(alias_list)),
            tags=dict(sorted(checked_tags.items())),
            created_at=now,
            created_by=actor,
            description=description,
            contract_sha256=contract_sha,
            profile_sha256=profile_sha,
            store=self.artifact_store,
        )
        if self.git_tags:
            self._mirror_tag(version)
        return version

    def _put_contract(self, contract: Contract | None) -> str | None:
        if contract is None:
            return None
        from modelyard.data.contract import Contract

        if not isinstance(contract, Contract):
            raise InvalidInputError(
                f"contract= is a {type(contract).__name__}, not a modelyard.data.Contract",
                hint="pass Contract.from_file('contract.toml') or infer_contract(frame)",
                field="contract",
            )
        import orjson

        body = orjson.dumps(contract.to_dict(), option=orjson.OPT_SORT_KEYS)
        return self.artifact_store.put_bytes(body).sha256

    def _put_profile(self, profile: Profile | None) -> str | None:
        if profile is None:
            return None
        from modelyard.data.profile import Profile

        if not isinstance(profile, Profile):
            raise InvalidInputError(
                f"profile= is a {type(profile).__name__}, not a modelyard.data.Profile",
                hint="pass build_profile(training_frame)",
                field="profile",
            )
        return self.artifact_store.put_bytes(profile.to_bytes()).sha256

    def _upload(
        self, package: str | os.PathLike[str] | Mapping[str, ArtifactRef]
    ) -> dict[str, ArtifactRef]:
        from modelyard.store.artifacts import ArtifactRef, validate_relative_name

        if isinstance(package, Mapping):
            files: dict[str, ArtifactRef] = {}
            for rel, ref in package.items():
                path = validate_relative_name(rel, what="package file path")
                if not isinstance(ref, ArtifactRef):
                    raise InvalidInputError(
                        f"package file {rel!r} maps to a {type(ref).__name__}, not an ArtifactRef",
                        hint="upload it with artifact_store.put_file() and pass the returned ref",
                        path=rel,
                    )
                if not self.artifact_store.exists(ref.sha256):
                    raise NotFoundError(
                        f"package file {rel!r} (sha256 {ref.sha256}) is not in the artifact store",
                        hint="upload it with artifact_store.put_file() before registering",
                        path=rel,
                        sha256=ref.sha256,
                    )
                files[path] = ref
        else:
            source = Path(package)
            if source.is_file():
                files = {source.name: self.artifact_store.put_file(source)}
            elif source.is_dir():
                files = dict(self.artifact_store.put_dir(source))
            else:
                raise NotFoundError(
                    f"model package {str(source)!r} does not exist",
                    hint="pass a folder holding the model files, or a single file",
                    path=str(source),
                )
        if not files:
            raise InvalidInputError(
                f"model package {package!r} holds no files",
                hint="save the model into the folder first (modelyard.models.save)",
            )
        return dict(sorted(files.items()))

    # ------------------------------------------------------------------ git tags
    def _mirror_tag(self, version: ModelVersion) -> None:
        from modelyard.errors import ModelyardError
        from modelyard.registry.gittags import GitTagMirror

        root = Path(self.project_root) if self.project_root else Path.cwd()
        try:
            mirror = GitTagMirror(root, registry_id=self.registry_id)
            _, skipped = mirror.create_tags([version])
            problems = [why for _, why in skipped]
        except ModelyardError as exc:
            problems = [exc.message]
        for why in problems:
            # The version is committed; the mirror is best effort and `sync-tags` repairs it.
            _log.warning(
                "git tag not created",
                extra={"model": version.name, "version": version.version, "error": why},
            )
