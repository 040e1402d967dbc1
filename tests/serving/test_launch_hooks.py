"""launch(hooks=...): the plugin point through which a layer above serving adds to the server
a child process starts (delivery's rollouts use it); serving itself names none."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.errors import InvalidInputError
from modelyard.serving import launch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def hello_hook(settings: Any, model: str | None, model_class: str | None, trust: bool) -> list[Any]:
    """A launch hook: adds GET /hello answering what the child's server was started with."""

    async def install(front: Any) -> None:
        body = json.dumps({"model_class": model_class, "trust_pickle": trust}).encode()
        front.add_route("/hello", lambda req: front.answer(req, 200, body, "/hello"))

    return [install]


def test_a_launch_hook_is_imported_and_run_in_the_server_process(tmp_path: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    with (tmp_path / "server.log").open("ab") as err:
        handle = launch(
            model_class="models:Linear",
            python_path=[HERE],
            workers=1,
            request_log=False,
            cwd=tmp_path,
            env=env,
            stderr=err,
            hooks=[hello_hook],
        )
    with handle:
        answer = httpx.get(f"{handle.url}/hello", timeout=30)
        assert answer.status_code == 200
        assert answer.json() == {"model_class": "models:Linear", "trust_pickle": False}


def test_without_hooks_the_server_has_none(tmp_path: Path) -> None:
    with (tmp_path / "server.log").open("ab") as err:
        handle = launch(
            model_class="models:Linear",
            python_path=[HERE],
            workers=1,
            request_log=False,
            cwd=tmp_path,
            stderr=err,
        )
    with handle:
        assert httpx.get(f"{handle.url}/hello", timeout=30).status_code == 404


@pytest.mark.parametrize("hook", [lambda *a: [], "no_colon", hello_hook.__call__])
def test_a_hook_the_child_cannot_import_is_refused_before_anything_starts(hook: Any) -> None:
    with pytest.raises(InvalidInputError, match="cannot be imported by the server process"):
        launch(model_class="models:Linear", python_path=[HERE], hooks=[hook])
