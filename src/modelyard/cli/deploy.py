"""`modelyard deploy`: start a progressive rollout of a candidate on a running server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli.state import emit_json, state

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.delivery.client import RolloutClient

_HELP = """Deliver a candidate version of NAME progressively on the server that serves it.

The server (`modelyard serve NAME@production`) starts the candidate's worker pool, load-tests it
at the production rate times the headroom, then shifts traffic step by step while it compares
the candidate with stable; it promotes (moves `production`) or rolls back by itself.
Defaults come from [tool.modelyard.delivery].
"""


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("deploy", help=_HELP)(deploy)


def client_for(settings: Settings, url: str | None, model: str | None = None) -> RolloutClient:
    """A management client for ``url`` (default: the serving settings' address) with the admin
    token of the settings, if any, for ``model`` (the server refuses calls for another)."""
    from modelyard.delivery.client import RolloutClient

    s = settings.serving
    token = s.admin_token.get_secret_value() if s.admin_token else None
    return RolloutClient(url or f"http://{s.host}:{s.port}", token=token, model=model)


def describe(rollout: dict[str, Any]) -> str:
    """One line for people: the state, the step and why."""
    steps = rollout.get("steps") or []
    step = ""
    if steps and rollout["state"] in ("progressing", "paused", "awaiting_approval"):
        idx = rollout["step_index"]
        step = f" step {idx + 1}/{len(steps)} ({rollout['weight']:g}% on the candidate)"
    reason = f": {rollout['reason']}" if rollout.get("reason") else ""
    return (
        f"{rollout['model']} v{rollout['candidate_version']} vs v{rollout['stable_version']} "
        f"({rollout['strategy']}) {rollout['state']}{step}{reason}"
    )


def deploy(  # noqa: PLR0917  (a Typer command: one parameter per flag)
    name: Annotated[str, typer.Argument(help="the model's name")],
    candidate: Annotated[
        str, typer.Option("--candidate", "-c", help="VERSION or @ALIAS of the candidate")
    ],
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="canary, blue-green, ab or shadow")
    ] = None,
    steps: Annotated[
        str | None, typer.Option("--steps", help="rising percentages ending at 100: 5,25,50,100")
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="least time per step: 30s, 2m, 500ms")
    ] = None,
    manual: Annotated[
        bool | None,
        typer.Option("--manual/--auto", help="wait for `modelyard rollout promote` at each step"),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="the server (default: serving host:port)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the rollout as JSON")] = False,
) -> None:
    from modelyard.delivery.client import parse_duration_s
    from modelyard.delivery.strategies import parse_steps, strategy_for

    settings = state.settings()
    if strategy is not None:
        strategy_for(strategy)  # a clear error before any network call
    weights = parse_steps(steps) if steps is not None else None
    interval_s = parse_duration_s(interval) if interval is not None else None
    version = _version_of(settings, name, candidate)
    rollout = client_for(settings, url, name).deploy(
        candidate=version,
        strategy=strategy,
        steps=weights,
        interval_s=interval_s,
        manual=manual,
    )
    if as_json:
        emit_json(rollout)
        return
    typer.echo(f"rollout {rollout['id']}: {describe(rollout)}")
    if rollout["state"] == "rolled_back":
        raise typer.Exit(1)


def _version_of(settings: Settings, name: str, candidate: str) -> int:
    from modelyard.errors import InvalidInputError

    text = candidate.strip().removeprefix("v")
    if text.isdigit():
        return int(text)
    if candidate.startswith("@"):
        from modelyard.registry.registry import Registry

        return Registry.from_settings(settings).resolve(f"{name}{candidate}").version
    raise InvalidInputError(
        f"--candidate {candidate!r} is neither a version number nor @ALIAS",
        hint=f"e.g. modelyard deploy {name} --candidate 3   or   --candidate @candidate",
        field="candidate",
    )
