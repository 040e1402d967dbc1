"""`modelyard config` commands."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelyard.cli.state import emit_json, state

app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print every setting, its value and where it came from."""
    s = state.settings()
    sources = s.sources()
    dumped = s.model_dump(mode="json")
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
                "values": {
                    k: {"value": v, "source": sources.get(k.split(".")[0], "default")}
                    for k, v in rows.items()
                },
                "derived": derived,
            }
        )
        return
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        if key == "db_url" and isinstance(value, str):
            value = _redact_url(value)
        source = sources.get(key.split(".")[0], "default")
        typer.echo(f"{key:<{width}}  {value!s:<40}  ({source})")
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
