"""`modelyard config` commands."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer

from modelyard.cli.state import emit_json, state

app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print every setting, its value and where it came from."""
    from modelyard.logs import mask_secrets

    s = state.settings()
    dumped = msgspec.to_builtins(s, enc_hook=str)  # str: Path as text, SecretStr as **********
    dumped["storage_options"] = mask_secrets(dumped["storage_options"])  # keys, secrets, tokens
    rows: dict[str, Any] = {}
    _flatten("", dumped, rows)
    derived = {
        "resolved_home": str(s.resolved_home),
        "resolved_db_url": _redact_url(s.resolved_db_url),
        "resolved_artifact_url": s.resolved_artifact_url,
    }
    if as_json:
        emit_json(
            {
                "values": {k: {"value": v, "source": s.source_of(k)} for k, v in rows.items()},
                "derived": derived,
            }
        )
        return
    width = max(len(k) for k in rows)
    for key, raw in rows.items():
        value = _redact_url(raw) if key == "db_url" and isinstance(raw, str) else raw
        typer.echo(f"{key:<{width}}  {value!s:<40}  ({s.source_of(key)})")
    for key, value in derived.items():
        typer.echo(f"{key:<{width}}  {value!s:<40}  (derived)")


def _redact_url(url: str) -> str:
    """Hide a password in a database URL."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}"
    return url
