"""`modelyard run` without Typer: same options, same output, same errors, no Typer import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.cli import main
from modelyard.cli._errors import report_error
from modelyard.cli._run import build_run_parser, parse_run_args
from modelyard.cli.state import state

FLOW = """
import modelyard

@modelyard.step
def load(n: int) -> list[int]:
    return list(range(n))

@modelyard.step
def score(data: list[int], fail: bool) -> float:
    if fail:
        raise RuntimeError("scoring exploded")
    return sum(data) / len(data)

@modelyard.pipeline
def train(n: int = 4, fail: bool = False):
    return score(load(n=n), fail=fail)
"""


def _typer_run_command() -> Any:
    import typer.main

    from modelyard.cli.app import app

    return typer.main.get_command(app).commands["run"]


def _typer_run(argv: list[str]) -> int:
    from modelyard.cli.app import run

    return run(argv)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["CI"] = "true"
    return env


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A project with one two-step pipeline, the CLI pointed at it; yields the entrypoint."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.modelyard]\n")
    module = f"flow_{uuid.uuid4().hex[:8]}"  # a fresh module name: tests share sys.modules
    (root / f"{module}.py").write_text(textwrap.dedent(FLOW))
    for name in [k for k in os.environ if k.startswith("MODELYARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CI", "true")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))  # also restores what load_pipeline adds
    # the CLI caches its settings per process: start each test from a clean state
    monkeypatch.setattr(state, "_settings", None)
    monkeypatch.setattr(state, "overrides", {})
    monkeypatch.setattr(state, "debug", False)
    yield f"{module}:train"
    sys.modules.pop(module, None)


# -- the parser ----------------------------------------------------------------------------------


def _shape_of_click(param: Any) -> tuple[str, frozenset[str], str]:
    """Name, option strings and kind of a parameter of the Typer command."""
    if param.param_type_name == "argument":
        return param.name, frozenset(), "argument"
    opts = frozenset([*param.opts, *param.secondary_opts])
    if param.is_flag:
        return param.name, opts, "flag"
    return param.name, opts, "repeatable" if param.multiple else "value"


def _shape_of_argparse(action: Any) -> tuple[str, frozenset[str], str]:
    """Name, option strings and kind of an argument of the lean parser."""
    if not action.option_strings:
        return action.dest, frozenset(), "argument"
    opts = frozenset(action.option_strings)
    if action.nargs == 0:
        return action.dest, opts, "flag"
    repeatable = type(action).__name__ == "_AppendAction"
    return action.dest, opts, "repeatable" if repeatable else "value"


def test_the_lean_parser_offers_exactly_the_options_of_the_typer_command() -> None:
    typer_side = {_shape_of_click(p) for p in _typer_run_command().params}
    lean_side = {_shape_of_argparse(a) for a in build_run_parser().arguments()}
    assert lean_side == typer_side
    assert ("param", frozenset({"--param", "-p"}), "repeatable") in lean_side
    assert ("entrypoint", frozenset(), "argument") in lean_side


ACCEPTED = [
    [],
    ["flows:train"],
    ["flows:train", "--json", "--force"],
    ["--force", "flows:train"],
    ["-p", "n=3", "-p", "lr=0.1", "flows:train"],
    ["-p", "a=1", "flows:train", "-p", "b=2", "--max-parallel", "2", "--force"],
    ["-pn=3"],
    ["--param=n=3", "--param", "m=1"],
    ["-p", "n=-1"],
    ["--executor", "ray", "--ray-address=ray://h:10001", "--max-parallel", "4"],
    ["--max-parallel=1", "--if-changed", "--resume", "abc123", "--project", "."],
    ["--executor", "local", "--executor", "ray"],
    ["--json", "--json"],
    ["--resume", ""],
    [""],
    ["--max-parallel", "03"],
]
LEFT_TO_TYPER = [
    ["--help"],
    ["flows:train", "-h"],
    ["--nope"],
    ["--forc"],  # no abbreviations
    ["--force=1"],
    ["a", "b"],
    ["-p"],
    ["-p=n=3"],  # Click reads "=n=3", argparse "n=3"
    ["-p", "--json"],  # Click takes "--json" as the value
    ["--executor", "-x"],
    ["--", "-x"],
    ["-"],
    ["-1"],  # argparse would take it as the entrypoint, Click as an unknown option
    ["--max-parallel", "0"],
    ["--max-parallel", "-2"],
    ["--max-parallel", "3.0"],
    ["--max-parallel", " 3"],
    ["--max-parallel", "\u0663"],  # an Arabic-Indic 3: int() takes it, Typer does not
    ["--debug"],
]


def _typer_parse(args: list[str]) -> dict[str, Any] | None:
    try:
        params = dict(_typer_run_command().make_context("run", list(args)).params)
    except Exception as exc:  # Click's usage errors, as Typer vendors it or not
        if type(exc).__module__.startswith(("typer.", "click.")):
            return None
        raise
    params["param"] = list(params["param"]) or None
    return params


@pytest.mark.parametrize("args", ACCEPTED, ids=" ".join)
def test_the_lean_parser_reads_what_typer_reads(args: list[str]) -> None:
    lean = parse_run_args(args)
    assert lean is not None
    assert lean == _typer_parse(args)


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_help_and_doubtful_spellings_are_left_to_typer(args: list[str]) -> None:
    assert parse_run_args(args) is None


# -- running -------------------------------------------------------------------------------------


def test_run_through_main_prints_the_summary_and_the_json_of_the_typer_path(
    flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", flow]) == 0
    out = capsys.readouterr().out
    assert "pipeline train finished in" in out
    assert "steps: 2 ran, 0 cached, 0 failed" in out

    assert main(["run", flow, "--json", "-p", "n=6"]) == 0
    lean = json.loads(capsys.readouterr().out)
    assert lean["status"] == "FINISHED"
    assert lean["params"] == {"n": 6, "fail": False}
    assert lean["ran"] == ["load", "score"]

    assert _typer_run(["run", flow, "--json", "-p", "n=6"]) == 0
    typer_path = json.loads(capsys.readouterr().out)
    assert typer_path["cached"] == ["load", "score"]
    assert set(typer_path) == set(lean)


def _run_and_list_cli_modules(project: Path, argv: list[str]) -> tuple[int, list[str], str]:
    code = textwrap.dedent(
        """
        import sys
        from modelyard.cli import main
        code = main(sys.argv[1:])
        heavy = (
            "typer", "typer._click", "click", "sqlalchemy", "alembic", "pydantic",
            "pydantic_settings", "rich", "numpy", "pandas", "fsspec",
        )
        loaded = [m for m in heavy if m in sys.modules]
        print("LOADED", *loaded)
        sys.exit(code)
        """
    )
    env = {**_env(), "MODELYARD_HOME": str(project.parent / "home")}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    loaded = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return done.returncode, loaded.split()[1:], done.stdout + done.stderr


def test_a_lean_run_imports_nothing_heavy(tmp_path: Path) -> None:
    """The run path's start-up budget: no CLI framework, ORM, validator or data library.

    A cached 10-step run takes ~0.15 s in all; any of these would add 30-250 ms to each call
    (benchmarks/pipeline.py).
    """
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    (project / "flows.py").write_text(textwrap.dedent(FLOW))

    code, loaded, output = _run_and_list_cli_modules(project, ["run", "flows:train", "-p", "n=5"])
    assert code == 0, output
    assert "steps: 2 ran, 0 cached, 0 failed" in output
    assert loaded == []

    # the same check sees Typer where the command goes through it (a bare -- is Typer's)
    code, loaded, output = _run_and_list_cli_modules(
        project, ["run", "-p", "n=5", "--", "flows:train"]
    )
    assert code == 0, output
    assert "steps: 0 ran, 2 cached, 0 failed" in output
    assert "typer" in loaded


def test_help_and_usage_errors_are_typers(flow: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: modelyard run [OPTIONS] [entrypoint]")
    assert "--max-parallel" in out

    assert main(["run", flow, "--max-parallel", "0"]) == 2
    err = capsys.readouterr().err
    assert "Try 'modelyard run --help' for help." in err
    assert "Invalid value for '--max-parallel'" in err

    assert main(["run", "--nope"]) == 2
    err = capsys.readouterr().err
    assert "Usage: modelyard run [OPTIONS] [entrypoint]" in err
    assert "No such option: --nope" in err
    assert _typer_run(["run", "--nope"]) == 2
    assert capsys.readouterr().err == err


def _reported(err: str, run_id: str = "") -> list[str]:
    lines = [line for line in err.splitlines() if line.startswith(("error: ", "hint: "))]
    return [line.replace(run_id, "<run>") if run_id else line for line in lines]


def test_errors_read_the_same_through_both_paths(
    flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", flow, "-p", "fail=true", "--json"]) == 9
    captured = capsys.readouterr()
    lean_run = json.loads(captured.out)["run_id"]
    lean = _reported(captured.err, lean_run)
    assert lean[0] == (
        "error: step 'score' of pipeline 'train' failed: RuntimeError: scoring exploded"
    )
    assert lean[1].startswith("hint: ")
    assert "modelyard run --resume <run>" in lean[1]

    assert _typer_run(["run", flow, "-p", "fail=true", "--json"]) == 9
    captured = capsys.readouterr()
    assert _reported(captured.err, json.loads(captured.out)["run_id"]) == lean

    assert main(["run", "nowhere:train"]) == 4
    lean = _reported(capsys.readouterr().err)
    assert lean[0] == "error: pipeline module 'nowhere' not found (entrypoint 'nowhere:train')"
    assert _typer_run(["run", "nowhere:train"]) == 4
    assert _reported(capsys.readouterr().err) == lean


def test_unexpected_errors_and_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_error(KeyError("x")) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: unexpected KeyError: 'x'",
        "hint: re-run with --debug for the traceback and report it",
    ]
    assert report_error(KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == ""
    with pytest.raises(KeyError):
        report_error(KeyError("x"), debug=True)


def test_global_options_before_run_take_the_lean_path_too(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    (project / "flows.py").write_text(textwrap.dedent(FLOW))
    home = tmp_path / "elsewhere"
    argv = ["--debug", "--home", str(home), "--log-level", "warning", "run", "flows:train"]
    code, loaded, output = _run_and_list_cli_modules(project, argv)
    assert code == 0, output
    assert loaded == []
    assert (home / "modelyard.db").is_file()  # --home was applied
    assert '"level":"info"' not in output  # --log-level was applied: no info lines
    # spellings only Typer reads the way it means them still go to Typer, and work
    code, loaded, output = _run_and_list_cli_modules(
        project, [f"--home={home}", "run", "flows:train"]
    )
    assert code == 0, output
    assert "typer" in loaded
    assert "steps: 0 ran, 2 cached, 0 failed" in output


def test_the_lean_front_knows_every_global_option() -> None:
    """A global option added to the Typer app must be taught to cli._leading_globals too."""
    import typer.main

    from modelyard.cli.app import app

    names = {p.name for p in typer.main.get_command(app).params}
    assert names == {"debug", "home", "log_level", "log_format"}
