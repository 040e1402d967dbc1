"""The UI over HTTP on SQLite and PostgreSQL: pages, bad input, refused actions, downsampling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelyard.ui._data import downsample
from tests.conftest import DATABASES
from tests.ui.conftest import EVIL_NAME, TOKEN, UIServer, database_url, fill, start_ui


@pytest.fixture(scope="module", params=DATABASES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UIServer]:
    """A read-only ``modelyard ui`` (no admin token) over a filled store, on each database."""
    from modelyard.config import load_settings

    root = tmp_path_factory.mktemp("uipages")
    project = root / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.modelyard]\n")
    home = root / "home"
    with database_url(request.param, root) as db_url:
        settings = load_settings(
            start=project, home=str(home), db_url=db_url, experiment="training"
        )
        yield from start_ui(fill(settings), token=None)


def _get(ui: UIServer, path: str) -> httpx.Response:
    return httpx.get(ui.url + path, timeout=30)


def test_pages_answer_on_every_database(served: UIServer) -> None:
    filled = served.filled
    runs = _get(
        served, "/runs?experiment=sweep&order=metrics.auc+DESC&columns=params.lr,metrics.auc"
    )
    assert runs.status_code == 200
    assert "server-timing" in runs.headers
    assert runs.text.index("trial-24") < runs.text.index("trial-23")
    assert "&lt;script&gt;" not in runs.text  # the lowest auc is on a later page
    assert ">lr" in runs.text
    assert "depth" not in runs.text
    for path in (
        f"/runs/{filled.sweep_ids[3]}",
        f"/pipelines/{filled.pipeline_ids[0]}",
        "/pipelines",
        "/models",
        "/models/churn",
        "/models/churn/versions/3",
        f"/compare?run={filled.sweep_ids[0]}&run={filled.sweep_ids[1]}",
    ):
        assert _get(served, path).status_code == 200, path
    evil = _get(served, f"/runs/{filled.evil_id}")
    assert EVIL_NAME not in evil.text
    assert "&lt;script&gt;document.title=" in evil.text


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/runs?filter=metrics.auc+%3E", 400, "expected a value after"),
        ("/runs?order=params.", 400, "invalid order_by item"),
        ("/runs?columns=lr", 400, "invalid column &#39;lr&#39;"),
        ("/runs?page=not-a-token", 400, "invalid page token"),
        ("/compare?run=abc", 400, "compare needs at least two runs"),
        ("/runs/nope", 404, "run &#39;nope&#39; not found"),
        ("/models/churn/versions/7", 404, "not found"),
        ("/models/churn/versions/x", 404, "page not found"),
    ],
)
def test_bad_input_is_a_page_naming_the_problem(
    served: UIServer, path: str, status: int, needle: str
) -> None:
    got = _get(served, path)
    assert got.status_code == status
    assert needle in got.text
    assert "<html" in got.text


def test_a_read_only_ui_refuses_every_action_and_changes_nothing(served: UIServer) -> None:
    from modelyard.registry.registry import Registry

    reg = Registry.from_settings(served.filled.settings)
    before = (
        reg.get_model("churn").aliases,
        len(reg.alias_history("churn")),
        reg.get_model("churn").tags,
    )
    for action, form in (
        ("promote", {"version": "3", "alias": "production"}),
        ("rollback", {"alias": "production"}),
        ("tags", {"key": "team", "value": "x"}),
    ):
        sent = httpx.post(
            f"{served.url}/models/churn/{action}",
            data={**form, "token": TOKEN, "actor": "alice", "reason": "try"},
            timeout=30,
        )
        assert sent.status_code == 401, action
        assert "this UI is read-only" in sent.text
    after = (
        reg.get_model("churn").aliases,
        len(reg.alias_history("churn")),
        reg.get_model("churn").tags,
    )
    assert after == before


def test_downsample_keeps_extremes_and_ends() -> None:
    series = [(i, float(i % 100)) for i in range(100_000)]
    series[51_234] = (51_234, 1e6)  # one spike
    small = downsample(series, 500)
    assert len(small) <= 502
    assert small[0] == series[0]
    assert small[-1] == series[-1]
    assert (51_234, 1e6) in small
    assert [s for s, _ in small] == sorted(s for s, _ in small)
    assert downsample(series[:10], 500) == series[:10]


def test_ui_command_needs_the_extra_named(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from pathlib import Path\n"
        "from modelyard import Workspace, load_settings\n"
        "from modelyard.ui import create_app\n"
        f"s = load_settings(start=Path({str(tmp_path)!r}), home={str(tmp_path / 'h')!r})\n"
        "create_app(Workspace.open(s))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "pip install 'modelyard[ui]'" in done.stderr


def test_rollout_and_monitoring_pages(served: UIServer) -> None:
    from tests.ui.conftest import record_monitoring, start_rollout

    rollout_id = start_rollout(served.filled.settings)
    record_monitoring(served.filled.settings)
    model = _get(served, "/models/churn")
    assert f'href="/rollouts/{rollout_id}"' in model.text
    page = _get(served, f"/rollouts/{rollout_id}")
    assert page.status_code == 200
    assert "progressing" in page.text
    assert "25.0%</b> of traffic" in page.text
    assert "analysis passed" in page.text
    assert 'hx-trigger="every 1' in page.text  # an active rollout reloads itself
    refused = httpx.post(
        f"{served.url}/rollouts/{rollout_id}/abort",
        data={"token": TOKEN, "actor": "alice"},
        timeout=30,
    )
    assert refused.status_code == 401
    from modelyard.delivery.store import RolloutStore
    from modelyard.store.db import MetadataStore

    assert (
        RolloutStore(MetadataStore.from_settings(served.filled.settings)).get(rollout_id).command
        is None
    )
    from modelyard.monitoring import MonitorStore

    # a retraining that went out as this canary: the page links its run, version and rollout
    monitor = MonitorStore(MetadataStore.from_settings(served.filled.settings))
    [_, crossed] = monitor.history("churn", 1)[:2]
    trigger = monitor.start_trigger(
        model="churn", version=1, result_id=crossed.id, window_start=crossed.window_start,
        window_end=crossed.window_end, evidence={"signals": crossed.signals},
    )  # fmt: skip
    run_id = served.filled.pipeline_ids[0]
    monitor.finish_trigger(trigger.id, status="succeeded", run_id=run_id, new_version=3)
    monitor.record_rollout(
        trigger.id, {"id": rollout_id, "strategy": "canary", "state": "progressing"}
    )
    monitoring = _get(served, "/models/churn/monitoring")
    assert monitoring.status_code == 200
    assert "crossed" in monitoring.text
    assert "data_drift" in monitoring.text
    assert f'href="/rollouts/{rollout_id}">canary progressing</a>' in monitoring.text
    assert f'href="/runs/{run_id}"' in monitoring.text
    assert 'href="/models/churn/versions/3">v3</a>' in monitoring.text
    assert "data_drift (a)" in monitoring.text
    assert _get(served, "/rollouts/0123456789abcdef").status_code == 404
    assert _get(served, "/models/nope/monitoring").status_code == 404


def test_the_monitoring_page_links_the_kept_reports_read_only(served: UIServer) -> None:
    from modelyard.monitoring import MonitorStore
    from modelyard.store.db import MetadataStore
    from tests.ui.conftest import record_monitoring

    result_id = record_monitoring(served.filled.settings)
    link = f"/models/churn/monitoring/reports/{result_id}"
    page = _get(served, "/models/churn/monitoring")
    assert f'href="{link}"' in page.text
    report = _get(served, link)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert "<h1>modelyard monitoring: churn version 3</h1>" in report.text
    assert "<script" not in report.text
    assert "<svg" in report.text  # the histograms, drawn offline
    # only a report of this model, only under monitor-reports/: a name stored otherwise (a
    # tampered row) is refused, and so is another model's or an unknown window's URL
    store = MonitorStore(MetadataStore.from_settings(served.filled.settings))
    stored = store.get(result_id)
    for bad in (
        "monitor-reports/churn/../../objects/x.html",
        "requests/model=churn/version=3/x.html",
        "/etc/passwd",
    ):
        store.set_report(result_id, bad)
        assert _get(served, link).status_code == 404, bad
    store.set_report(result_id, str(stored.report))
    assert _get(served, link).status_code == 200
    assert _get(served, f"/models/other/monitoring/reports/{result_id}").status_code == 404
    assert _get(served, "/models/churn/monitoring/reports/999999").status_code == 404
    assert _get(served, "/models/churn/monitoring/reports/..%2F..%2Fetc").status_code == 404
