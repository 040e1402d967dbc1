"""What the registry hands out: versions, models and alias events (frozen values).

A :class:`ModelVersion` also reads its data contract and reference profile back from the
artifact store, hash-checked, through the store it was fetched with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import NotFoundError

if TYPE_CHECKING:
    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile

__all__ = ["MANIFEST_NAME", "AliasEvent", "BytesReader", "ModelVersion", "RegisteredModel"]

#: The package manifest; its URI and sha256 identify a version's package.
MANIFEST_NAME = "modelyard.json"


class BytesReader(Protocol):
    """What a version reads its contract and profile with: an artifact store."""

    def get_bytes(self, sha256: str) -> bytes:
        """The verified bytes of object ``sha256``."""
        ...


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable registered version of a model.

    Attributes:
        name: the model's name.
        version: 1, 2, 3, ... per model, gap-free.
        run_id: the tracking run that produced it, if any.
        source_commit: the git commit of the code that produced it, if known.
        flavor: how to load it (``sklearn``, ``onnx``, ``torch``, ...), if given.
        artifact_uri: artifact store URI of the package manifest (or its only/first file).
        manifest_sha256: sha256 of that file.
        files: package path -> sha256 of every file of the package.
        signature: the input/output signature or data contract, if given.
        extra: free structured data fixed at registration (gate verdict, metrics, refs).
        aliases: the aliases pointing at this version now, sorted.
        tags: mutable key/value labels of this version.
        created_at: UNIX seconds.
        created_by: who registered it.
        description: free text.
        contract_sha256: sha256 of the version's data contract in the artifact store, if any.
        profile_sha256: sha256 of the version's reference profile in the artifact store, if any.
    """

    name: str
    version: int
    run_id: str | None
    source_commit: str | None
    flavor: str | None
    artifact_uri: str
    manifest_sha256: str
    files: dict[str, str]
    signature: Any
    extra: dict[str, Any] | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    created_at: float
    created_by: str | None
    description: str | None = None
    contract_sha256: str | None = None
    profile_sha256: str | None = None
    # reads the contract and profile back (the registry's artifact store); not part of the value
    store: BytesReader | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """``name:version``, accepted by :meth:`Registry.resolve`."""
        return f"{self.name}:{self.version}"

    @property
    def contract(self) -> Contract | None:
        """The data contract registered with this version (read and hash-checked), or None.

        Raises:
            IntegrityError: the stored bytes do not match ``contract_sha256``.
        """
        if self.contract_sha256 is None:
            return None
        import orjson

        from modelyard.data.contract import Contract

        raw = self._read(self.contract_sha256, "contract")
        return Contract.from_dict(orjson.loads(raw), source=f"{self.ref} contract")

    @property
    def reference_profile(self) -> Profile | None:
        """The reference profile registered with this version (read and hash-checked), or None.

        Raises:
            IntegrityError: the stored bytes do not match ``profile_sha256``.
        """
        if self.profile_sha256 is None:
            return None
        from modelyard.data.profile import Profile

        return Profile.from_bytes(self._read(self.profile_sha256, "reference profile"))

    def _read(self, sha256: str, what: str) -> bytes:
        if self.store is None:
            raise NotFoundError(
                f"model {self.name!r} version {self.version}: its {what} cannot be read "
                "without the registry's artifact store",
                hint="get the version from Registry.resolve() or Registry.get_version()",
                model=self.name,
            )
        return self.store.get_bytes(sha256)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for ``--json`` and HTTP answers)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "store"}
        body["aliases"] = list(self.aliases)
        body["files"] = dict(self.files)
        body["tags"] = dict(self.tags)
        return body


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: ``from_version`` None means it was created, ``to_version`` None
    that it was deleted. ``action`` is ``set``, ``delete`` or ``rollback``."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: float
    actor: str | None
    reason: str | None
    action: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model: its description, tags, latest version number and current aliases."""

    name: str
    description: str | None
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)
