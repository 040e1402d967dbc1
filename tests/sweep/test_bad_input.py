"""Bad sweeps are refused before any trial runs, with the parameter and what was expected."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import ConfigError, InvalidInputError
from modelyard.sweep import Choice, FloatRange, IntRange, parse_space_option, run_sweep
from modelyard.sweep.space import space_from_json, space_to_json
from tests.sweep.conftest import Project

pytest.importorskip("optuna")


def _no_runs(settings: Any) -> None:
    from modelyard.store.db import MetadataStore

    ms = MetadataStore.open(settings.resolved_db_url)
    with ms.query() as q:
        assert q.execute("SELECT COUNT(*) FROM runs", {})[0][0] == 0


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"lr": FloatRange(0.1, 1.0)}, ["'lr'", "declares no such parameter", "C, depth"]),
        ({"depth": FloatRange(1.0, 5.0)}, ["'depth'", "declares it an int", "float range"]),
        ({"kind": Choice([1, 2])}, ["'kind'", "declares it a str, but choice 1 is an int"]),
        ({"C": Choice(["high"])}, ["'C'", "declares it a float, but choice 'high' is a str"]),
        ({"kind": FloatRange(0.0, 1.0)}, ["'kind'", "declares it a str", "number range"]),
        ({"C": FloatRange(2.0, 1.0)}, ["'C'", "empty range", "low 2.0 is not below high 1.0"]),
        ({"C": FloatRange(0.0, 1.0, log=True)}, ["'C'", "log range must stay above 0"]),
        ({"depth": IntRange(1, 5, step=0)}, ["'depth'", "step must be a positive number"]),
        ({"kind": Choice([])}, ["'kind'", "no choices"]),
        ({"C": {"low": 1, "hgh": 2}}, ["'C'", "unknown key(s) hgh"]),
        ({"C": "big"}, ["'C'", "is not a range or a list of choices"]),
        ({}, ["search space of pipeline 'train' is empty"]),
    ],
)
def test_a_bad_space_is_refused_before_any_trial(
    sqlite_project: Project, space: dict[str, Any], words: list[str]
) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    with pytest.raises(InvalidInputError) as info:
        run_sweep(mod.train, space, metric="score", settings=settings)
    for word in words:
        assert word in str(info.value)
    _no_runs(settings)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, ["needs the metric to optimise", "--metric"]),
        ({"metric": "score", "direction": "up"}, ["direction 'up'", "maximize or minimize"]),
        ({"metric": "score", "sampler": "cmaes"}, ["sampler 'cmaes'", "tpe, random, grid"]),
        ({"metric": "score", "trials": 0}, ["trials must be", "at least 1"]),
        ({"metric": "score", "parallel": -2}, ["parallel must be", "at least 1"]),
        ({"metric": "score", "sampler": "grid"}, ["'C'", "grid sampler needs a finite set"]),
        ({"metric": "score", "params": {"C": 1.0}}, ["'C' is both swept and fixed"]),
        ({"metric": "score", "params": {"nope": 1}}, ["unknown parameter 'nope'"]),
    ],
)
def test_bad_options_are_refused_before_any_trial(
    sqlite_project: Project, options: dict[str, Any], words: list[str]
) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    with pytest.raises(InvalidInputError) as info:
        run_sweep(mod.train, {"C": FloatRange(0.1, 1.0)}, settings=settings, **options)
    for word in words:
        assert word in str(info.value)
    _no_runs(settings)


def test_a_metric_no_step_logs_stops_the_sweep_after_the_first_trial(
    sqlite_project: Project,
) -> None:
    settings = sqlite_project.settings()
    mod = sqlite_project.module()
    with pytest.raises(InvalidInputError) as info:
        run_sweep(mod.train, {"C": FloatRange(0.1, 1.0)}, metric="accuracy", trials=5,
                  parallel=2, settings=settings)  # fmt: skip
    message = str(info.value)
    assert "no metric 'accuracy'" in message
    assert "it logged: score" in message
    from modelyard.workspace import Workspace

    page = Workspace.open(settings).tracking.search_runs(filter="kind = 'pipeline'")
    assert len(page.items) == 1  # the first trial ran alone, the other four never started
    study = Workspace.open(settings).tracking.search_runs(filter="kind = 'run'").items[0]
    assert study.status == "FAILED"


def test_an_unknown_key_in_the_project_table_is_a_config_error(sqlite_project: Project) -> None:
    mod = sqlite_project.module()
    settings = sqlite_project.settings(
        """
        [tool.modelyard.sweep.train]
        metrc = "score"
        """
    )
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[tool.modelyard.sweep.train\]"):
        run_sweep(mod.train, {"C": FloatRange(0.1, 1.0)}, settings=settings)
    _no_runs(settings)


def test_a_bad_space_in_the_project_table_names_the_table(sqlite_project: Project) -> None:
    mod = sqlite_project.module()
    settings = sqlite_project.settings(
        """
        [tool.modelyard.sweep.train.space]
        depth = { low = 1.5, high = 4.0 }
        """
    )
    with pytest.raises(InvalidInputError) as info:
        run_sweep(mod.train, metric="score", settings=settings)
    assert "[tool.modelyard.sweep.train] space" in str(info.value)
    assert "declares it an int" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C=float:0.001:10:log", ("C", FloatRange(0.001, 10.0, log=True))),
        ("C=float:0:1:step=0.25", ("C", FloatRange(0.0, 1.0, step=0.25))),
        ("depth=int:2:8", ("depth", IntRange(2, 8))),
        ("depth=int:2:8:step=2", ("depth", IntRange(2, 8, step=2))),
        ("kind=choice:a,b", ("kind", Choice(["a", "b"]))),
        ("n=choice:1,2.5,true,null", ("n", Choice([1, 2.5, True, None]))),
    ],
)
def test_space_options_parse(text: str, expected: tuple[str, Any]) -> None:
    assert parse_space_option(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("C", ["is not NAME=SPEC"]),
        ("C=gauss:0:1", ["unknown kind 'gauss'"]),
        ("C=float:0", ["needs LOW:HIGH"]),
        ("depth=int:1:x", ["'x'", "is not an int"]),
        ("C=float:0:1:sqrt", ["unknown flag 'sqrt'"]),
    ],
)
def test_bad_space_options_say_how_to_write_them(text: str, words: list[str]) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_space_option(text)
    for word in [*words, "NAME=float:LOW:HIGH"]:
        assert word in str(info.value)


def test_a_space_survives_its_stored_form() -> None:
    space = {
        "C": FloatRange(0.001, 10.0, log=True),
        "d": IntRange(1, 9, step=2),
        "k": Choice(["a", 1, None]),
        "s": FloatRange(0.0, 1.0, step=0.1),
    }
    assert space_from_json(space_to_json(space)) == space
