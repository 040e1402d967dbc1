"""Quality from feedback: the join by request id, the scores, and rollouts judged on it.

The first tests write a real request log (Parquet on a folder artifact store) and read it back;
the last ones run real servers that write theirs, with a client posting the true labels.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.delivery.feedback import feedback_stats, score_pairs
from modelyard.delivery.serving import rollout_hooks
from modelyard.requestlog import RequestLogWriter
from modelyard.serving import ServerHandle, launch
from modelyard.store.artifacts import ArtifactStore
from tests.delivery.test_serving import PYTHONPATH, cli, status, wait_state

SINCE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _log(store: ArtifactStore, version: str, preds: Any, ids: list[str], rows: list[int]) -> None:
    writer = RequestLogWriter(store, "m", version)
    x = np.zeros((sum(rows), 2))
    writer.add_batch(ids, rows, x, preds)
    writer.flush()


def _feedback(store: ArtifactStore, version: str, labels: dict[str, Any]) -> None:
    writer = RequestLogWriter(store, "m", version)
    for rid, label in labels.items():
        writer.add_feedback(rid, label)
    writer.flush()


def test_labels_posted_to_any_version_are_joined_to_the_answer_by_request_id(
    tmp_path: Path,
) -> None:
    store = ArtifactStore.open(tmp_path / "artifacts")
    # v2 answered r1 (2 instances) and r2; v1 answered r3
    _log(store, "2", np.array([1, 0, 1]), ["r1", "r2"], [2, 1])
    _log(store, "1", np.array([0]), ["r3"], [1])
    # labels for v2's answers arrive through v1's /v1/feedback (the stable version's default)
    _feedback(store, "1", {"r1": [1, 1], "r2": 0, "r3": 0})
    _feedback(store, "1", {"r2": 1})  # a later label for r2 replaces the first
    v2 = feedback_stats(store, "m", "2", SINCE)
    # r1: 1==1 right, 0!=1 wrong; r2: 1==1 right
    assert (v2.quality_n, v2.quality_sum) == (3, 2.0)
    assert v2.predicted == {"1": 2, "0": 1}
    v1 = feedback_stats(store, "m", "1", SINCE)
    assert (v1.quality_n, v1.quality_sum) == (1, 1.0)
    assert feedback_stats(store, "m", "3", SINCE).quality_n == 0  # nothing logged: zeros


def test_probability_vectors_score_by_argmax_and_regressions_by_absolute_error() -> None:
    probas = score_pairs([([0.2, 0.8], 1.0), ([0.9, 0.1], 1.0), ([0.6, 0.4], 0.0)])
    assert (probas.quality_n, probas.quality_sum) == (3, 2.0)  # accuracy 2/3
    reg = score_pairs([(2.5, 3.0), (10.0, 7.0)])
    assert reg.quality_sum == pytest.approx(-3.5)  # minus the absolute errors: MAE 1.75
    assert reg.quality_sumsq == pytest.approx(0.25 + 9.0)
    classes = score_pairs([("yes", "yes"), ("no", "yes"), (True, "true")])
    assert classes.quality_sum == 2.0
    assert score_pairs([]).quality_n == 0


# ---------------------------------------------------------------------------- real servers
FEEDBACK_PROJECT = """
[tool.modelyard]
home = "home"
[tool.modelyard.delivery]
interval_s = 1.0
min_samples = 30
load_test_s = 0
max_error_rate = 0.05
max_latency_ratio = 15.0  # shared cores (two tests at once, an image build): noisy
max_quality_drop = 0.01  # 1 point tolerated: a 2-point drop is caught, not a coin toss
deadline_s = 90
"""
ROWS = 64  # instances per request (the most a server takes by default)


@pytest.fixture
def classifiers(tmp_path: Path) -> Path:
    """churn v1 (production) right 90 % of the time, v2 the same model, v3 right 88 %."""
    import modelyard.models
    from modelyard.config import load_settings
    from modelyard.registry.registry import Registry
    from tests.delivery.rollout_models import Classifier

    (tmp_path / "pyproject.toml").write_text(FEEDBACK_PROJECT)
    reg = Registry.from_settings(load_settings(start=tmp_path))
    x = np.array([[0.0, 0.5], [1.0, 0.05]])
    for i, miss in enumerate([0.10, 0.10, 0.12]):
        aliases = ["production"] if i == 0 else []
        modelyard.models.register(
            Classifier(miss), reg, name="churn", input_example=x, aliases=aliases
        )
    reg.metadata_store.dispose()
    return tmp_path


@pytest.fixture
def server(classifiers: Path) -> Iterator[ServerHandle]:
    with (classifiers / "server.log").open("ab") as err:
        handle = launch(
            "churn@production",
            hooks=[rollout_hooks],  # the server `modelyard serve` starts: rollouts on
            workers=1,
            cwd=classifiers,
            stderr=err,
            request_log=True,
            env={"PYTHONPATH": PYTHONPATH},
            ready_timeout_s=120,
        )
    yield handle
    handle.stop(grace_s=30)


class LabelledTraffic:
    """Sends requests of ROWS instances (true label, noise) and posts each answer's labels."""

    def __init__(self, url: str, seed: int, *, feedback: bool = True) -> None:
        self.url = url
        self.send_feedback = feedback
        self.rng = np.random.default_rng(seed)
        self.statuses: list[int] = []
        self.feedback: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LabelledTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and len(self.statuses) < 20000:
                labels = self.rng.integers(0, 2, ROWS)
                x = np.stack([labels, self.rng.random(ROWS)], 1).tolist()
                r = client.post(f"{self.url}/v1/models/churn:predict", json={"instances": x})
                self.statuses.append(r.status_code)
                if r.status_code == 200 and self.send_feedback:
                    fb = client.post(
                        f"{self.url}/v1/feedback",
                        json={"request_id": r.headers["x-request-id"], "label": labels.tolist()},
                    )
                    self.feedback.append(fb.status_code)


def _deploy(project: Path, url: str, version: str) -> dict[str, Any]:
    run = cli(project, "deploy", "churn", "-c", version, "--steps", "50,100", "--interval",
              "1s", "--url", url)  # fmt: skip
    # 1: the rollout already ended rolled back (a bad candidate's labels can decide within
    # the deploy call's first analysis); the state below says which
    assert run.returncode == 0 or (run.returncode == 1 and "rolled_back" in run.stdout), run
    return wait_state(project, url, "promoted", "rolled_back", timeout_s=120)


def test_two_points_worse_on_feedback_is_rolled_back_and_an_identical_one_promoted(
    classifiers: Path, server: ServerHandle
) -> None:
    with LabelledTraffic(server.url, seed=1) as traffic:
        worse = _deploy(classifiers, server.url, "3")
        same = _deploy(classifiers, server.url, "2")
    assert worse["state"] == "rolled_back", worse["reason"]
    assert worse["reason"] == "analysis fail: quality"
    quality = next(c for c in worse["evidence"]["checks"] if c["name"] == "quality")
    assert quality["stable"] == pytest.approx(0.90, abs=0.01)
    assert quality["candidate"] == pytest.approx(0.88, abs=0.01)
    assert quality["lower"] > 0  # worse, with confidence
    assert same["state"] == "promoted", same["reason"]
    passed = [e for e in same["events"] if e["kind"] == "analysis" and e["outcome"] == "pass"]
    checks = {c["name"]: c for c in passed[-1]["detail"]["checks"]}
    assert checks["quality"]["outcome"] == "pass"
    assert checks["quality"]["n_candidate"] >= 30
    assert set(traffic.statuses) == {200}
    assert set(traffic.feedback) == {202}
    assert status(classifiers, server.url)["candidate_version"] == 2


def test_no_feedback_means_quality_is_not_judged(classifiers: Path, server: ServerHandle) -> None:
    with LabelledTraffic(server.url, seed=2, feedback=False) as traffic:
        done = _deploy(classifiers, server.url, "3")  # worse, but nobody says so
    assert done["state"] == "promoted", done["reason"]
    assert "quality" not in {c["name"] for c in done["evidence"]["checks"]}
    assert traffic.feedback == []
