"""`modelyard demo` end to end, as a user runs it: a real process, a real server, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.registry.registry import Registry


def _demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@pytest.mark.slow
def test_demo_tells_the_whole_story_and_exits_0(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    proc = _demo("--home", str(home), cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in (
        "== 1. train and register the first model",
        "pipeline ran 6 steps",
        "registered credit-risk v1 -> alias production",
        "== 2. run again with nothing changed",
        "6 of 6 steps cached, 0 ran",
        "== 3. new data arrives (drifted)",
        "features drifted",
        "gate PASSED",
        "registered credit-risk v2 -> alias candidate",
        "== 4. a worse model is stopped by the gate",
        "gate FAILED; the reasons:",
        "margin roc_auc over production",
        "nothing registered, production still v2",
        "== 5. serve the production model",
        "POST :predict, 2 applications -> 200",
        "POST :predict with region 'atlantis' -> 422",
        "-> 202",
        "modelyard_requests_total",
        "server stopped cleanly",
        "== 6. traffic drifts: monitoring detects it and retrains",
        "modelyard monitor credit-risk@production: crossed",
        f"report: {home.resolve() / 'monitor-report.html'}",
        "the policy started retraining 1 (run ",
        "registered credit-risk v3 -> alias candidate",
        "== 7. progressive delivery: a canary promoted, a bad candidate rolled back",
        "modelyard deploy credit-risk --candidate 3 --steps 20,50,100 --interval 1s",
        "load test: ",
        "step 1/2: 20% of users on v3 (load test passed",
        "step 2/2: 50% of users on v3 (analysis passed",
        "analysis: pass (candidate vs stable: ",
        "the retrained candidate v3: PROMOTED automatically",
        "promoted: 100% on v3; production moved to v3",
        "v4: trained on flipped labels",
        "the bad candidate v4: ROLLED BACK automatically",
        "analysis fail: ",
        "accuracy on feedback: candidate",
        ", 0 failed;",
        "production is v3",
        "demo done in",
    ):
        assert line in out, f"missing {line!r} in:\n{out}"
    # the story is stdout; stderr holds no traceback
    assert "Traceback" not in proc.stderr
    # the home holds what the story said
    from modelyard.config import load_settings

    settings = load_settings(
        start=tmp_path, home=str(home), db_url=f"sqlite:///{home / 'modelyard.db'}"
    )
    registry = Registry.from_settings(settings)
    versions = {v.version: set(v.aliases) for v in registry.list_versions("credit-risk")}
    # v3: the candidate the monitoring policy's retraining registered (chapter 6), promoted
    # by its canary (chapter 7); v4: the bad candidate, rolled back, no alias
    assert versions == {1: set(), 2: set(), 3: {"candidate", "production"}, 4: set()}
    assert (home / "monitor-report.html").read_text().startswith("<!doctype html>")
    events = [(e.alias, e.to_version) for e in registry.alias_history("credit-risk")]
    assert ("production", 1) in events
    assert ("production", 2) in events
    promotion = registry.alias_history("credit-risk", "production")[-1]
    assert promotion.to_version == 3
    assert json.loads(promotion.reason or "{}")["strategy"] == "canary"  # the rollout's evidence


@pytest.mark.slow
def test_demo_json_without_serving(tmp_path: Path) -> None:
    proc = _demo(
        "--home", str(tmp_path / "h"), "--json", "--no-serve", "--rows", "3000", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    titles = [c["title"] for c in report["chapters"]]
    assert titles[0] == "train and register the first model"
    assert report["chapters"][1]["cached"] == [
        "load",
        "validate",
        "split",
        "train",
        "evaluate",
        "register",
    ]
    assert report["chapters"][3]["refused"] is True
    assert report["chapters"][4]["skipped"] is True
    assert report["chapters"][5]["verdict"] == "crossed"
    assert report["chapters"][5]["trigger"]["status"] in ("succeeded", "gate_refused")
    assert report["chapters"][6]["skipped"] is True  # delivery needs the server
