"""`modelyard check`: data tests for CI (contracts and train/test splits).

Both commands print a readable report (a table on a terminal, plain lines otherwise, JSON with
``--json``) and exit 3 (:class:`~modelyard.errors.ValidationFailed`) when a check fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli.state import emit_json

if TYPE_CHECKING:
    from modelyard.data.report import ValidationReport

app = typer.Typer(help="Data tests for CI: contracts and train/test splits.", no_args_is_help=True)


def _print_report(report: ValidationReport) -> None:
    import sys

    if not sys.stdout.isatty():
        typer.echo(report.to_text())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    style = "green" if report.ok else "red"
    console.print(f"[{style}]{report.summary()}[/{style}]", highlight=False)
    if report.ok:
        return
    table = Table(show_lines=False)
    for name in ("column", "rule", "count", "problem", "examples"):
        table.add_column(name, overflow="fold")
    for v in report.violations:
        examples = ", ".join(f"row {e.get('row')}: {e.get('value')!r}" for e in v.examples)
        table.add_row(v.column or "-", v.rule, str(v.count), v.message, examples)
    console.print(table)


def _finish(report: ValidationReport, as_json: bool, what: str, hint: str) -> None:
    from modelyard.errors import ValidationFailed

    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise ValidationFailed(
            f"{what} failed: {len(report.violations)} violation(s)",
            hint=hint,
            violations=len(report.violations),
        )


@app.command("data")
def check_data(  # noqa: PLR0917 - Typer maps each parameter to an option
    file: Annotated[Path, typer.Argument(help="a .csv or .parquet file")],
    contract: Annotated[
        Path | None,
        typer.Option("--contract", "-c", help="the contract TOML file (written with --infer)"),
    ] = None,
    infer: Annotated[
        bool,
        typer.Option(
            "--infer",
            help="infer a contract from FILE and write it to --contract (or print it)",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="with --infer: overwrite an existing contract")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="with --infer: the contract's name")
    ] = None,
    categorical_max: Annotated[
        int,
        typer.Option(
            "--categorical-max", help="with --infer: most distinct strings kept as categories"
        ),
    ] = 50,
    allow_extra: Annotated[
        bool | None,
        typer.Option(
            "--allow-extra/--no-allow-extra",
            help="accept columns the contract does not list (default: the contract's setting)",
        ),
    ] = None,
    max_examples: Annotated[
        int, typer.Option("--max-examples", help="example rows shown per violation")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Validate FILE against a data contract, or infer one with --infer."""
    from modelyard.data._frames import read_table
    from modelyard.data.contract import Contract, infer_contract
    from modelyard.errors import ConflictError, InvalidInputError

    if infer:
        if contract is not None and contract.exists() and not force:
            raise ConflictError(
                f"contract file {str(contract)!r} already exists",
                hint="pass --force to overwrite it, or choose another --contract path",
                file=str(contract),
            )
        frame = read_table(file)
        inferred = infer_contract(
            frame,
            name=name or file.name.split(".")[0],
            categorical_max=categorical_max,
            allow_extra_columns=bool(allow_extra),
        )
        if contract is None:
            typer.echo(inferred.to_toml(), nl=False)
            return
        inferred.to_file(contract)
        if as_json:
            emit_json({"contract": str(contract), "columns": len(inferred.columns)})
        else:
            typer.echo(
                f"wrote {contract} ({len(inferred.columns)} columns, {len(frame)} rows): "
                "review it, then commit it",
                err=True,
            )
        return
    if contract is None:
        raise InvalidInputError(
            "no contract given",
            hint=f"pass --contract FILE, or create one with `modelyard check data {file} "
            f"--contract {file.name.split('.')[0]}.contract.toml --infer`",
        )
    spec = Contract.from_file(contract)
    frame = read_table(file)
    report = spec.validate(
        frame, allow_extra_columns=allow_extra, max_examples=max_examples, source=str(file)
    )
    _finish(
        report,
        as_json,
        f"{file} against {contract}",
        "fix the data, or review and update the contract if the change is intended",
    )


@app.command("splits")
def check_splits_cmd(  # noqa: PLR0917 - Typer maps each parameter to an option
    train: Annotated[Path, typer.Argument(help="the training split (.csv or .parquet)")],
    test: Annotated[Path, typer.Argument(help="the test split (.csv or .parquet)")],
    id_column: Annotated[
        str | None, typer.Option("--id", help="id column that must not be in both splits")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option("--label", help="label column whose classes must balance")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option("--time", help="time column: train must precede test")
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="largest accepted class proportion difference")
    ] = 0.05,
    method: Annotated[
        str, typer.Option("--method", help="label balance: 'difference' or 'chi2'")
    ] = "difference",
    alpha: Annotated[float, typer.Option("--alpha", help="significance for --method chi2")] = 0.01,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check a train/test split: no shared ids, balanced labels, time order."""
    from modelyard.data._frames import read_table
    from modelyard.data.splits import check_splits

    report = check_splits(
        read_table(train),
        read_table(test),
        id_column=id_column,
        label_column=label_column,
        time_column=time_column,
        tolerance=tolerance,
        method=method,
        alpha=alpha,
    )
    report.source = f"{train} / {test}"
    _finish(
        report,
        as_json,
        f"split {train} / {test}",
        "re-split the data (group by id, stratify by label, cut at one time)",
    )
