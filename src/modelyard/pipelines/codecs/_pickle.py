"""``pickle``: what no other codec stores, only for a step that declares ``trust=True``;
loading it runs code, so a reader must trust the store too."""

from __future__ import annotations

from typing import Any

from modelyard.errors import UnsafeArtifactError
from modelyard.pipelines.codecs._base import CannotStore, Target, type_name

__all__ = ["PickleCodec"]


class PickleCodec:
    """Pickle protocol 5; the registry's fallback, never chosen by type."""

    name = "pickle"
    whole_only = False
    type_names: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        return False  # only ever the fallback for a trusting step

    def encode(self, value: Any, target: Target) -> bytes:
        import pickle

        try:
            return pickle.dumps(value, protocol=5)
        except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError...
            raise CannotStore(
                f"step {target.step!r} returned a {type_name(value)} that even pickle cannot "
                f"store: {exc}",
                hint="return data (arrays, frames, JSON) rather than live objects such as files "
                "or lambdas",
            ) from exc

    def decode(self, data: bytes, *, trust: bool) -> Any:
        if not trust:
            raise UnsafeArtifactError(
                "this step output was stored with pickle; loading it can run arbitrary code",
                hint="declare the consuming step with @step(trust=True) if you trust this store",
            )
        import pickle

        return pickle.loads(data)
