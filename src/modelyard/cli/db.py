"""`modelyard db`: inspect and upgrade the metadata store's schema."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli.state import emit_json, state

app = typer.Typer(help="Inspect and upgrade the metadata store's schema.", no_args_is_help=True)


@app.command("current")
def current(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the store's schema revision and the one this modelyard expects."""
    from modelyard.store.db import REVISIONS, MetadataStore

    store = MetadataStore.open_unchecked(state.settings().resolved_db_url)
    revision = store.current_revision()
    head = store.head_revision()
    if revision == head:
        status = "up to date"
    elif revision is None:
        status = "empty or at base: run `modelyard db upgrade`"
    elif revision in REVISIONS:
        status = "behind: run `modelyard db upgrade`"
    else:
        status = "newer than this modelyard: upgrade modelyard"
    if as_json:
        emit_json({"db_url": store.safe_url, "current": revision, "head": head, "status": status})
        return
    typer.echo(f"store:    {store.safe_url}")
    typer.echo(f"current:  {revision or '-'}")
    typer.echo(f"head:     {head}")
    typer.echo(f"status:   {status}")


@app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Migrate the metadata store to the newest schema (creates an empty store)."""
    from modelyard.store.db import MetadataStore

    store = MetadataStore.open_unchecked(state.settings().resolved_db_url)
    before = store.current_revision()
    store.upgrade(revision)
    after = store.current_revision()
    if before == after:
        typer.echo(f"{store.safe_url} is already at revision {after}")
    else:
        typer.echo(f"upgraded {store.safe_url} from {before or 'empty'} to {after}")
