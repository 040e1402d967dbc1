"""`modelyard rollout`: read and steer a model's rollout."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelyard.cli.deploy import client_for, describe
from modelyard.cli.state import emit_json, state

app = typer.Typer(
    help="Read and steer progressive rollouts (started by `modelyard deploy`).",
    no_args_is_help=True,
)

_Url = Annotated[str | None, typer.Option("--url", help="the server (default: host:port)")]
_Name = Annotated[str, typer.Argument(help="the model's name")]


def _from_store(name: str) -> Any:
    from modelyard.delivery.store import RolloutStore
    from modelyard.errors import NotFoundError
    from modelyard.store.db import MetadataStore

    settings = state.settings()
    store = RolloutStore(MetadataStore.from_settings(settings), actor=settings.resolved_user)
    rollout = store.latest(name)
    if rollout is None:
        raise NotFoundError(
            f"model {name!r} has no rollout",
            hint=f"start one: modelyard deploy {name} --candidate VERSION",
        )
    return store, rollout


@app.command("status")
def status(
    name: _Name,
    url: _Url = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    local: Annotated[
        bool, typer.Option("--local", help="read the metadata store instead of the server")
    ] = False,
) -> None:
    """The model's active (else latest) rollout: state, step, last analysis."""
    if local:
        store, rollout = _from_store(name)
        doc = {**rollout.to_dict(), "events": [e.to_dict() for e in store.events(rollout.id)]}
    else:
        doc = client_for(state.settings(), url).status()
    if doc.get("model") != name:
        from modelyard.errors import NotFoundError

        raise NotFoundError(
            f"the server at {url or 'the serving address'} serves {doc.get('model')!r}, not "
            f"{name!r}",
            hint="pass the --url of the server that serves it",
        )
    if as_json:
        emit_json(doc)
        return
    typer.echo(f"rollout {doc['id']}: {describe(doc)}")
    evidence = doc.get("evidence") or {}
    for check in evidence.get("checks", []):
        typer.echo(
            f"  {check['name']:<14} {check['outcome']:<18} candidate {check['candidate']} "
            f"stable {check['stable']} {check.get('detail', '')}".rstrip()
        )


def _steer(command: str, name: str, url: str | None, via_store: bool) -> None:
    if via_store:
        store, rollout = _from_store(name)
        store.request(rollout.id, command)
        typer.echo(f"{command} requested for rollout {rollout.id}; the server applies it next tick")
        return
    doc = client_for(state.settings(), url, name)._call("POST", f"/v1/admin/rollout/{command}", {})
    typer.echo(f"rollout {doc['id']}: {describe(doc)}")


_Store = Annotated[
    bool,
    typer.Option("--via-store", help="leave the command in the metadata store for the server"),
]


@app.command("promote")
def promote(name: _Name, url: _Url = None, via_store: _Store = False) -> None:
    """Approve the current step (the next step, or the promotion after the last)."""
    _steer("promote", name, url, via_store)


@app.command("abort")
def abort(name: _Name, url: _Url = None, via_store: _Store = False) -> None:
    """Roll back: stable gets all traffic, then the candidate stops. Safe to repeat."""
    _steer("abort", name, url, via_store)


@app.command("pause")
def pause(name: _Name, url: _Url = None, via_store: _Store = False) -> None:
    """Stop advancing; the traffic split stays as it is."""
    _steer("pause", name, url, via_store)


@app.command("resume")
def resume(name: _Name, url: _Url = None, via_store: _Store = False) -> None:
    """Go on after a pause."""
    _steer("resume", name, url, via_store)
