"""Changed data re-runs the steps that read it (`modelyard run` in a real project folder)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.pipelines.test_cli import _run

FLOW = """
import modelyard

@modelyard.step
def load(path: str) -> list[float]:
    with open(path) as fh:
        return [float(x) for x in fh.read().split()]

@modelyard.step
def locate() -> str:
    return "data/extra.csv"

@modelyard.step
def read_extra(path: str) -> int:
    with open(path) as fh:
        return len(fh.read().split())

@modelyard.step
def labels() -> int:
    with open("data/labels.csv") as fh:  # a declared data source, read by name
        return len(fh.read().split())

@modelyard.step
def constant() -> int:
    return 1

@modelyard.step
def fit(values: list[float], extra: int, n_labels: int, k: int) -> float:
    return sum(values) + extra + n_labels + k

@modelyard.pipeline
def train(path: str = "data/train.csv"):
    return fit(load(path=path), read_extra(locate()), labels(), constant())
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.modelyard]
            home = ".modelyard"

            [tool.modelyard.pipeline]
            entrypoint = "flows:train"
            data_sources = ["data/*.csv"]
            """
        )
    )
    (root / "flows.py").write_text(FLOW)
    (root / "data" / "train.csv").write_text("1 2 3\n")
    (root / "data" / "extra.csv").write_text("a b\n")
    (root / "data" / "labels.csv").write_text("0 1\n")
    return root


def _summary(project: Path, *args: str) -> dict[str, object]:
    done = _run(project, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_changed_csv_named_by_a_parameter_reruns_only_its_readers(project: Path) -> None:
    first = _summary(project)
    assert sorted(first["ran"]) == ["constant", "fit", "labels", "load", "locate", "read_extra"]
    assert _summary(project)["ran"] == []

    (project / "data" / "train.csv").write_text("1 2 3 4\n")
    second = _run(project)
    assert second.returncode == 0, second.stderr
    assert "steps: 2 ran, 4 cached" in second.stdout
    assert "data changed: data/train.csv (re-ran load)" in second.stdout

    again = _summary(project)
    assert again["ran"] == []


def test_a_path_handed_down_by_a_step_and_a_source_read_by_name_count(project: Path) -> None:
    _summary(project)
    (project / "data" / "extra.csv").write_text("a b c\n")
    changed = _summary(project)
    # locate's source mentions the declared file, so it counts as a reader too
    assert sorted(changed["ran"]) == ["fit", "locate", "read_extra"]
    assert changed["steps"]["read_extra"]["data_changed"] == ["data/extra.csv"]  # type: ignore[index]

    (project / "data" / "labels.csv").write_text("0 1 1\n")
    changed = _summary(project)
    assert sorted(changed["ran"]) == ["fit", "labels"]
    assert changed["steps"]["labels"]["data_changed"] == ["data/labels.csv"]  # type: ignore[index]


def test_touching_a_file_without_changing_it_keeps_the_cache(project: Path) -> None:
    _summary(project)
    data = project / "data" / "train.csv"
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert _summary(project)["ran"] == []


def test_if_changed_names_the_file_and_retrains(project: Path) -> None:
    _summary(project)
    unchanged = _run(project, "--if-changed")
    assert "nothing changed" in unchanged.stdout

    (project / "data" / "train.csv").write_text("5 6\n")
    done = _run(project, "--if-changed")
    assert done.returncode == 0, done.stderr
    assert "trigger: data changed: data/train.csv" in done.stdout
    assert "steps: 2 ran, 4 cached" in done.stdout


def test_a_folder_parameter_counts_every_file_under_it(project: Path) -> None:
    (project / "flows.py").write_text(
        textwrap.dedent(
            """
            import os
            import modelyard

            @modelyard.step
            def count(folder: str) -> int:
                return sum(len(files) for _, _, files in os.walk(folder))

            @modelyard.pipeline
            def train(folder: str = "images"):
                return count(folder=folder)
            """
        )
    )
    (project / "pyproject.toml").write_text('[tool.modelyard]\nhome = ".modelyard"\n')
    (project / "images" / "cats").mkdir(parents=True)
    (project / "images" / "cats" / "1.txt").write_text("meow")
    assert _summary(project, "flows:train")["ran"] == ["count"]
    assert _summary(project, "flows:train")["ran"] == []
    (project / "images" / "cats" / "2.txt").write_text("purr")
    rerun = _summary(project, "flows:train")
    assert rerun["ran"] == ["count"]
    assert rerun["steps"]["count"]["data_changed"] == ["images/cats/2.txt"]  # type: ignore[index]


def test_a_step_writing_the_file_it_names_is_reused_until_someone_else_changes_it(
    project: Path,
) -> None:
    (project / "flows.py").write_text(
        textwrap.dedent(
            """
            import modelyard

            @modelyard.step
            def export(path: str) -> int:
                with open(path, "a") as fh:
                    fh.write("exported\\n")
                return 1

            @modelyard.pipeline
            def train(path: str = "out.txt"):
                return export(path=path)
            """
        )
    )
    (project / "pyproject.toml").write_text('[tool.modelyard]\nhome = ".modelyard"\n')
    assert _summary(project, "flows:train")["ran"] == ["export"]
    assert _summary(project, "flows:train")["ran"] == []
    (project / "out.txt").write_text("edited by hand\n")
    assert _summary(project, "flows:train")["ran"] == ["export"]
