"""`modelyard run` in a project with several pipelines, and a module that runs one at import."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.pipelines.test_cli import _run

FLOWS = """
import modelyard

@modelyard.step
def fit(C: float) -> float:
    return C * 2

@modelyard.step
def count(n: int) -> int:
    return n

@modelyard.pipeline
def train(C: float = 1.0):
    return fit(C=C)

@modelyard.pipeline
def sweep(n: int = 3):
    return count(n=n)
"""


def _project(tmp_path: Path, pipeline_table: str, flows: str = FLOWS) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.modelyard]\nhome = ".modelyard"\n\n' + textwrap.dedent(pipeline_table)
    )
    (root / "flows.py").write_text(textwrap.dedent(flows))
    return root


def test_project_params_apply_to_the_pipelines_that_declare_them(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        """
        [tool.modelyard.pipeline.params]
        C = 0.5

        [tool.modelyard.pipeline.params.sweep]
        n = 7
        """,
    )
    train = _run(root, "flows:train", "--json")
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["params"] == {"C": 0.5}

    sweep = _run(root, "flows:sweep", "--json")
    assert sweep.returncode == 0, sweep.stderr
    assert json.loads(sweep.stdout)["params"] == {"n": 7}

    # a parameter on the command line is still checked against the pipeline run
    unknown = _run(root, "flows:sweep", "-p", "C=1")
    assert unknown.returncode == 2
    assert "unknown parameter 'C' for pipeline 'sweep' (from the arguments)" in unknown.stderr


def test_a_pipelines_own_table_is_checked(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        """
        [tool.modelyard.pipeline.params.sweep]
        epochs = 7
        """,
    )
    done = _run(root, "flows:sweep")
    assert done.returncode == 2
    assert "unknown parameter 'epochs'" in done.stderr
    assert "[tool.modelyard.pipeline.params.sweep]" in done.stderr


def test_a_run_made_while_importing_the_module_does_not_count_for_if_changed(
    tmp_path: Path,
) -> None:
    guarded = FLOWS + "\n"
    root = _project(tmp_path, "", guarded)
    assert _run(root, "flows:sweep").returncode == 0

    # the module now runs a pipeline at import time (with other parameters) and its code changed
    (root / "flows.py").write_text(
        FLOWS.replace("return n", "return n + 1") + "\nsweep.run(n=99)\n"
    )
    done = _run(root, "flows:sweep", "--if-changed", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "FINISHED"  # not "nothing changed" because of the import's run
    assert summary["params"] == {"n": 3}
    assert "code changed" in " ".join(summary["reasons"])
    assert "pipeline run while modelyard run imported its module" in done.stderr
