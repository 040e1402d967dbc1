"""``modelyard init``: a standalone project that trains, gates, registers and serves at once.

The project's Python and TOML files are real files kept in ``_template/`` (linted with the rest
of the code and tested by running the generated project); what depends on the project is built
as data here: ``pyproject.toml`` from a dict, the data contract inferred from the data set, and
one row of the data as an example request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidNameError
from modelyard.packaging._files import write_folder

__all__ = ["TEMPLATE_FILES", "init_project", "project_name"]

# template file -> its name in the project (hatch and git would act on a ".gitignore" in src)
TEMPLATE_FILES = {
    "pipeline.py": "pipeline.py",
    "tests/test_pipeline.py": "tests/test_pipeline.py",
    "gitignore": ".gitignore",
    "README.md": "README.md",
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def project_name(folder: Path) -> str:
    """The model and project name for ``folder``: its name, lower-cased, other characters
    turned into ``-``."""
    name = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-")
    if not _NAME_RE.match(name):
        raise InvalidNameError(
            f"cannot make a project name out of the folder name {folder.name!r}",
            hint="use a folder name with letters or digits, or pass --name my-model",
        )
    return name


# the release gate: a candidate is registered only when every rule passes
_GATE: dict[str, Any] = {
    "task": "classification",
    "positive_label": 1,
    "allow_first_production": True,  # the first model that passes becomes `production`
    "alias": "candidate",  # later ones become `candidate`
    "latency_budget_ms": 200,  # median predict time on one batch of 64 rows
    "batch_size": 64,
    "thresholds": {"roc_auc": [">=", 0.95], "accuracy": [">=", 0.9]},
    # with 95% confidence, no more than 0.01 ROC AUC below production on the same rows
    "margin": {
        "metric": "roc_auc",
        "min_delta": -0.01,
        "significance": 0.05,
        "test": "bootstrap",
        "n_resamples": 1000,
        "seed": 0,
    },
    "output_schema": {"kind": "label"},
}


def _pyproject(name: str) -> str:
    import tomli_w

    from modelyard import __version__

    tool: dict[str, Any] = {
        "experiment": name,
        "pipeline": {
            "entrypoint": "pipeline:training",
            "params": {"model_name": name, "test_fraction": 0.25, "seed": 0, "C": 1.0},
        },
        "gate": _GATE,
        "serving": {"port": 8000, "max_batch_size": 64, "max_wait_ms": 2.0, "drain_delay_s": 5},
        "delivery": {"strategy": "canary", "steps": [5, 25, 50, 100], "interval_s": 60},
        "monitor": {"window": "1h", "min_samples": 500, "quality_min": {"accuracy": 0.9}},
        "packaging": {"image": name, "replicas": 2, "cpu": "1", "memory": "2Gi"},
    }
    document = {
        "project": {
            "name": name,
            "version": "0.1.0",
            "requires-python": ">=3.11",
            "dependencies": [f"modelyard[serve]>={__version__}", "scikit-learn", "pandas"],
        },
        "tool": {
            "modelyard": tool,
            "pytest": {"ini_options": {"pythonpath": ["."], "testpaths": ["tests"]}},
        },
    }
    header = (
        "# A modelyard project (made by `modelyard init`): `modelyard run` trains, gates and\n"
        "# registers; `modelyard config show` prints every setting and where it came from.\n"
        "# [tool.modelyard.gate] is the release gate (thresholds, a significant margin over\n"
        "# production); delivery, monitor and packaging drive deploy, monitor, k8s and ci.\n"
    )
    return header + tomli_w.dumps(document)


def _contract_and_example(name: str) -> tuple[str, str]:
    """The data contract inferred from the data set, and its first row as a request body."""
    import orjson
    from sklearn.datasets import load_breast_cancer

    from modelyard.data.contract import infer_contract

    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns=lambda column: str(column).replace(" ", "_"))
    contract = infer_contract(frame, name=name)
    row = frame.drop(columns=["target"]).iloc[0].to_dict()
    example = orjson.dumps({"instances": [row]}, option=orjson.OPT_INDENT_2).decode() + "\n"
    return contract.to_toml(), example


def init_project(
    folder: Path,
    *,
    name: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write a new modelyard project into ``folder`` (which must not exist or be empty).

    Args:
        folder: where the project goes.
        name: the project and model name (default: from the folder's name).
        on_step: called with a short message as files are prepared.

    Returns:
        The project folder.

    Raises:
        ConflictError: ``folder`` exists and is not empty; nothing is written.
        InvalidNameError: no valid project name.
    """
    folder = Path(folder).resolve()
    name = name if name is not None else project_name(folder)
    if not _NAME_RE.match(name):
        raise InvalidNameError(
            f"project name {name!r} is not valid",
            hint="use lower-case letters, digits and '-', starting with a letter or digit",
        )
    if folder.is_dir() and any(folder.iterdir()):
        write_folder(folder, {})  # raises the conflict before any work is done
    template = resources.files("modelyard.packaging") / "_template"
    files: dict[str, str | bytes] = {}
    for source, target in TEMPLATE_FILES.items():
        text = template.joinpath(source).read_text()
        files[target] = text.replace("{name}", name) if source == "README.md" else text
    if on_step:
        on_step("inferring the data contract")
    files["contract.toml"], files["example_request.json"] = _contract_and_example(name)
    files["pyproject.toml"] = _pyproject(name)
    return write_folder(folder, files)
