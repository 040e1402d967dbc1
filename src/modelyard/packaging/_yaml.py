"""YAML output of the generators: plain data in, readable YAML out (multi-line strings as
``|`` blocks, keys in the order given)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["dump_yaml", "dump_yaml_all"]


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # yaml: no stubs installed
        pass

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def dump_yaml(data: Any) -> str:
    """One YAML document."""
    import yaml

    out: str = yaml.dump(data, Dumper=_dumper(), sort_keys=False, width=100, allow_unicode=True)
    return out


def dump_yaml_all(documents: Iterable[Any]) -> str:
    """A stream of YAML documents separated by ``---``."""
    import yaml

    out: str = yaml.dump_all(
        list(documents), Dumper=_dumper(), sort_keys=False, width=100, allow_unicode=True
    )
    return out
