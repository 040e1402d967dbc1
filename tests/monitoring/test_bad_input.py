"""Bad input under the watcher: a version without a reference profile, an empty window, a window
of corrupt Parquet files, logs whose columns or types do not match the profile and contract.
Each is a clear message and a stored ``no_verdict``; the watcher goes on; nothing retrains."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.monitoring._logs import write_requests

from modelyard.data.contract import infer_contract
from modelyard.data.profile import build_profile
from modelyard.monitoring import Monitor, MonitorPolicy, WindowResult, watch
from modelyard.workspace import Workspace

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
NOW = T0.timestamp() + 1800  # inside the window [12:00, 13:00)


def _frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture
def ws(settings: Any, tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace.open(settings)
    reference = _frame(np.random.default_rng(0), 5_000)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "modelyard.json").write_text("{}")
    for name in ("empty", "corrupt", "renamed", "retyped"):
        workspace.registry.register_version(
            name,
            pkg,
            profile=build_profile(reference),
            contract=infer_contract(reference),
            aliases=["production"],
        )
    workspace.registry.register_version("bare", pkg, aliases=["production"])  # no profile
    try:
        yield workspace
    finally:
        workspace.metadata_store.dispose()


def _write_bad_logs(ws: Workspace) -> None:
    store, rng, ts = ws.artifact_store, np.random.default_rng(1), T0.timestamp() + 60
    write_requests(store, "bare", 1, _frame(rng, 2_000), ts_s=ts)
    store.write_named(
        "requests/model=corrupt/version=1/hour=2026-03-01T12/broken.parquet", b"PAR1 truncated"
    )
    write_requests(
        store, "renamed", 1, _frame(rng, 2_000).rename(columns={"plan": "tier"}), ts_s=ts
    )
    retyped = _frame(rng, 2_000)
    retyped["age"] = retyped["age"].round().astype(int).astype(str)  # a client sent text
    write_requests(store, "retyped", 1, retyped, ts_s=ts)


EXPECTED = {
    "bare": "model 'bare' version 1 has no reference profile",
    "empty": "no requests of empty:1 were logged in [2026-03-01T12:00:00+00:00",
    "corrupt": "1 corrupt file(s) skipped",
    "renamed": "the request log has no column for the features ['plan']",
    "retyped": "in__age is string, the profile's 'age' is float",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_is_a_stored_no_verdict_the_watcher_survives_and_nothing_retrains(
    ws: Workspace, name: str
) -> None:
    _write_bad_logs(ws)
    # a policy that retrains on the first crossed window, with no cooldown
    monitor = Monitor(ws, MonitorPolicy(consecutive=1, cooldown_s=0), clock=lambda: NOW)
    stop = threading.Event()
    seen: list[WindowResult] = []

    def on_result(result: WindowResult) -> None:
        seen.append(result)
        if len(seen) == 3:
            stop.set()

    rounds = watch(
        monitor, f"{name}@production", stop=stop, act=True, interval_s=0, on_result=on_result
    )
    assert rounds == 3  # every round scored its window; none crashed the watcher
    assert {r.verdict for r in seen} == {"no_verdict"}
    assert EXPECTED[name] in str(seen[-1].error)
    [stored] = monitor.store.history(name, 1)  # one row per window, replaced each round
    assert (stored.verdict, stored.window_start) == ("no_verdict", T0.timestamp())
    assert EXPECTED[name] in str(stored.error)
    assert monitor.store.triggers(name) == []  # never a retraining
