"""`modelyard models`: list, show, promote, roll back and tag registered models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli.state import emit_json, state

if TYPE_CHECKING:
    from modelyard.registry.registry import ModelVersion, Registry

app = typer.Typer(
    help="The model registry: versions, aliases (production, candidate, ...) and tags.",
    no_args_is_help=True,
)

_AliasOpt = Annotated[str, typer.Option("--alias", "-a", help="the alias to move")]
_ReasonOpt = Annotated[
    str | None, typer.Option("--reason", "-r", help="why: recorded in the alias history")
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _registry() -> Registry:
    from modelyard.workspace import Workspace

    return Workspace.open(state.settings()).registry


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


@app.command("list")
def list_models(as_json: _JsonOpt = False) -> None:
    """List registered models with their latest version and aliases."""
    models = _registry().list_models()
    if as_json:
        emit_json([m.to_dict() for m in models])
        return
    if not models:
        typer.echo("no models registered yet (register one with modelyard.models.save)")
        return
    _table(
        ["NAME", "LATEST", "ALIASES", "DESCRIPTION"],
        [
            [
                m.name,
                str(m.latest_version),
                ", ".join(f"{a}=v{v}" for a, v in sorted(m.aliases.items())) or "-",
                (m.description or "").splitlines()[0][:60] if m.description else "-",
            ]
            for m in models
        ],
    )


def _show_version(v: ModelVersion) -> None:
    typer.echo(f"{v.name} version {v.version}")
    for label, value in (
        ("aliases", ", ".join(v.aliases) or "-"),
        ("created", f"{_when(v.created_at)} by {v.created_by or '-'}"),
        ("run", v.run_id or "-"),
        ("commit", v.source_commit or "-"),
        ("flavor", v.flavor or "-"),
        ("artifact", v.artifact_uri),
        ("manifest", v.manifest_sha256),
        ("description", v.description or "-"),
    ):
        typer.echo(f"  {label + ':':<13}{value}")
    if v.tags:
        typer.echo("  tags:")
        for key, value in v.tags.items():
            typer.echo(f"    {key} = {value}")
    typer.echo("  files:")
    for path, sha in v.files.items():
        typer.echo(f"    {sha[:12]}  {path}")
    explanation = (v.extra or {}).get("gate", {}).get("explanation")
    if isinstance(explanation, dict):
        from modelyard.evaluate.explain import Explanation

        typer.echo("  " + Explanation.from_dict(explanation).render_text().replace("\n", "\n  "))
    if v.extra:
        import orjson

        typer.echo(f"  extra:       {orjson.dumps(v.extra, default=str).decode()[:400]}")


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS")],
    as_json: _JsonOpt = False,
) -> None:
    """Show a model (versions, aliases, alias history) or one version (NAME:3, NAME@production)."""
    reg = _registry()
    if "@" in ref or ":" in ref:
        version = reg.resolve(ref)
        if as_json:
            emit_json(version.to_dict())
        else:
            _show_version(version)
        return
    model = reg.get_model(ref)
    versions = reg.list_versions(ref)
    history = reg.alias_history(ref)
    if as_json:
        emit_json(
            {
                **model.to_dict(),
                "versions": [v.to_dict() for v in versions],
                "alias_history": [e.to_dict() for e in history],
            }
        )
        return
    typer.echo(f"model {model.name}")
    if model.description:
        typer.echo(f"  {model.description}")
    for key, value in model.tags.items():
        typer.echo(f"  tag {key} = {value}")
    typer.echo("")
    typer.echo("versions:")
    if versions:
        _table(
            ["VERSION", "ALIASES", "CREATED", "BY", "RUN", "MANIFEST"],
            [
                [
                    str(v.version),
                    ", ".join(v.aliases) or "-",
                    _when(v.created_at),
                    v.created_by or "-",
                    v.run_id or "-",
                    v.manifest_sha256[:12],
                ]
                for v in versions
            ],
        )
    else:
        typer.echo("  (none)")
    typer.echo("")
    typer.echo("aliases:")
    for alias, number in sorted(model.aliases.items()):
        typer.echo(f"  {alias} -> v{number}")
    if not model.aliases:
        typer.echo("  (none)")
    typer.echo("")
    typer.echo("alias history:")
    if history:
        _table(
            ["WHEN", "ALIAS", "ACTION", "FROM", "TO", "BY", "REASON"],
            [
                [
                    _when(e.at),
                    e.alias,
                    e.action,
                    f"v{e.from_version}" if e.from_version is not None else "-",
                    f"v{e.to_version}" if e.to_version is not None else "-",
                    e.actor or "-",
                    e.reason or "-",
                ]
                for e in history
            ],
        )
    else:
        typer.echo("  (none)")


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str, typer.Argument(help="version number to point the alias at")],
    alias: _AliasOpt = "production",
    reason: _ReasonOpt = None,
) -> None:
    """Point an alias (default: production) at a version, recording who and why."""
    reg = _registry()
    before = reg.get_model(name).aliases.get(alias)
    target = reg.set_alias(name, alias, version, reason=reason)
    if before == target.version:
        typer.echo(f"{name}@{alias} already points at version {target.version}")
    else:
        was = f"v{before}" if before is not None else "unset"
        typer.echo(f"{name}@{alias}: {was} -> v{target.version}")


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="model name")],
    alias: _AliasOpt = "production",
    reason: _ReasonOpt = None,
) -> None:
    """Point an alias back at its previous version (repeat to keep walking back)."""
    reg = _registry()
    before = reg.get_model(name).aliases.get(alias)
    target = reg.rollback(name, alias=alias, reason=reason)
    typer.echo(f"{name}@{alias}: v{before} -> v{target.version} (rolled back)")


@app.command("tag")
def tag(
    ref: Annotated[str, typer.Argument(help="NAME (model tag) or NAME:VERSION (version tag)")],
    pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE (repeatable)")],
    delete: Annotated[
        bool, typer.Option("--delete", help="remove the KEYs instead (pass KEY or KEY=...)")
    ] = False,
) -> None:
    """Set (or with --delete remove) tags on a model or on one version."""
    from modelyard.errors import InvalidInputError

    reg = _registry()
    name, _, version = ref.partition(":")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep and not delete:
            raise InvalidInputError(
                f"tag {pair!r} is not KEY=VALUE",
                hint=f"e.g. modelyard models tag {ref} team=fraud",
                value=pair,
            )
        if delete:
            existed = (
                reg.delete_version_tag(name, version, key)
                if version
                else reg.delete_model_tag(name, key)
            )
            typer.echo(f"{ref}: {key} {'removed' if existed else 'was not set'}")
        else:
            if version:
                reg.set_version_tag(name, version, key, value)
            else:
                reg.set_model_tag(name, key, value)
            typer.echo(f"{ref}: {key} = {value}")


@app.command("sync-tags")
def sync_tags(
    repo: Annotated[
        str | None, typer.Option("--repo", help="git work tree (default: the project root)")
    ] = None,
    delete_foreign: Annotated[
        bool,
        typer.Option(
            "--delete-foreign",
            help="delete this clone's tags that mirror another registry (after moving to it)",
        ),
    ] = False,
    as_json: _JsonOpt = False,
) -> None:
    """Reconcile git tags model/<name>/v<N> with this registry.

    Creates missing tags on each version's source commit, verifies that existing tags point at
    the registered commit and manifest sha256, and reports tags that have no version. Tags that
    mirror another registry are listed as foreign and left alone (or deleted with
    --delete-foreign). Exits 5 when one of this registry's tags disagrees with it or has no
    version.
    """
    from modelyard.errors import ConflictError

    report = _registry().sync_tags(repo, delete_foreign=delete_foreign)
    if as_json:
        emit_json(report.to_dict())
    else:
        typer.echo(
            f"created {len(report.created)}, verified {len(report.verified)}, "
            f"mismatched {len(report.mismatched)}, orphaned {len(report.orphaned)}, "
            f"skipped {len(report.skipped)}, foreign {len(report.foreign)}"
        )
        for name in report.created:
            typer.echo(f"  created     {name}")
        for name, why in report.mismatched:
            typer.echo(f"  MISMATCH    {name}: {why}")
        for name in report.orphaned:
            typer.echo(f"  ORPHANED    {name}: no such version in the registry")
        for ref, why in report.skipped:
            typer.echo(f"  skipped     {ref}: {why}")
        for name, other in report.foreign:
            typer.echo(f"  foreign     {name}: mirrors registry {other}")
        for name in report.deleted:
            typer.echo(f"  deleted     {name}: mirrored another registry")
    if not report.ok:
        raise ConflictError(
            f"{len(report.mismatched)} tag(s) disagree with the registry and "
            f"{len(report.orphaned)} tag(s) name no registered version",
            hint="inspect them with `git show <tag>`; delete wrong tags with `git tag -d <tag>` "
            "and run `modelyard models sync-tags` again",
        )
