"""``modelyard demo``: the continuous-training story on the credit example, in about a minute.

In a throw-away home (a temporary folder unless one is given) the demo:

1. trains the credit-risk model and registers it: v1 becomes ``production``;
2. runs the pipeline again with nothing changed: every step comes from the cache;
3. lets drifted data arrive: the drift against the reference profile is measured, the pipeline
   retrains, the gate compares the new model with production on the same rows, and v2 is
   registered as ``candidate`` (then promoted, as a deployment would after its canary);
4. tries a worse model (two key features dropped by a "refactoring"): the gate stops it, says
   why, and no alias moves;
5. serves ``credit-risk@production`` over HTTP, sends a few requests (one of them invalid),
   posts feedback for one answer and shows a few ``/metrics`` lines, then stops the server;
6. logs a day of drifted traffic for production: ``modelyard monitor`` finds the drifted
   features, writes its HTML report, and the policy retrains; the new candidate goes through
   the gate and the trigger records the drift, the run and the version;
7. delivers that candidate progressively on a real server under a small loopback load whose
   answers get their true labels as feedback: load test, canary steps with an analysis at
   each (errors, latency, accuracy on feedback), automatic promotion; then a deliberately bad
   candidate (trained on flipped labels, registered by hand past the gate) is rolled back by
   the analysis of its accuracy on feedback, with the evidence printed.

:func:`run_demo` is the Python API; the command is a thin wrapper over it. Each chapter's facts
are collected in a :class:`DemoReport` (``--json`` prints it). A chapter whose part is missing
from this installation says so (``serving: not available in this build``) rather than pretend.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import MissingExtraError, ModelyardError, PipelineError

if TYPE_CHECKING:
    from modelyard.workspace import Workspace

__all__ = ["DemoReport", "find_example", "run_demo"]

MODEL = "credit-risk"


@dataclass
class DemoReport:
    """What the demo did, chapter by chapter (JSON-able).

    Attributes:
        home: the modelyard home used.
        chapters: one dict per chapter: ``title``, ``ok`` and its facts.
        duration_s: total time.
    """

    home: str
    chapters: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every chapter told its story as expected."""
        return all(c.get("ok", False) for c in self.chapters)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "home": self.home,
            "ok": self.ok,
            "duration_s": round(self.duration_s, 3),
            "chapters": self.chapters,
        }


def find_example() -> Any:
    """Import the credit example's package (``data``, ``pipeline`` and ``serve`` modules).

    Looked up as ``modelyard._examples.credit`` (bundled in a wheel), then ``examples.credit``
    (importable from a source checkout's root), then in the checkout this package runs from.

    Raises:
        MissingExtraError: the example cannot be found in this installation.
    """
    for name in ("modelyard._examples.credit", "examples.credit"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "examples" / "credit" / "pipeline.py").is_file():
        sys.path.insert(0, str(checkout))
        return importlib.import_module("examples.credit")
    raise MissingExtraError(
        "the credit example (examples/credit) is not part of this installation",
        hint="run the demo from a source checkout: git clone the repository, then "
        "pip install -e . and modelyard demo",
    )


def _submodule(pkg: Any, name: str) -> Any:
    return importlib.import_module(f"{pkg.__name__}.{name}")


class _Story:
    """Prints the demo's lines and keeps its facts."""

    def __init__(self, echo: Callable[[str], None], report: DemoReport) -> None:
        self.echo = echo
        self.report = report
        self.started = time.perf_counter()

    def chapter(self, number: int, title: str) -> dict[str, Any]:
        self.echo("")
        self.echo(f"== {number}. {title}")
        facts: dict[str, Any] = {"title": title, "ok": False}
        self.report.chapters.append(facts)
        return facts

    def say(self, text: str) -> None:
        self.echo(f"   {text}")


def _store_settings(home: Path) -> Any:
    from modelyard.config import load_settings

    return load_settings(
        start=home,
        home=str(home),
        db_url=f"sqlite:///{home / 'modelyard.db'}",
        artifact_url=str(home / "artifacts"),
        experiment="demo",
    )


def _run(pipeline: Any, workspace: Workspace, **params: Any) -> Any:
    from modelyard.pipelines.progress import SilentProgress

    return workspace.run_pipeline(pipeline, params, progress=SilentProgress())


def _verdict_of(version: Any) -> Any:
    from modelyard.evaluate.verdict import GateVerdict

    gate = (version.extra or {}).get("gate")
    return GateVerdict.from_dict(gate) if gate else None


def run_demo(
    home: str | Path | None = None,
    *,
    echo: Callable[[str], None] = print,
    serve: bool = True,
    rows: int = 6000,
) -> DemoReport:
    """Tell the CT story on the credit example (see the module docstring).

    Args:
        home: the modelyard home to use; default a temporary folder removed at the end.
        echo: where the readable lines go (default: stdout).
        serve: include the serving chapter.
        rows: applications per data batch.

    Returns:
        The :class:`DemoReport`.

    Raises:
        MissingExtraError: the credit example is not installed.
        ModelyardError: a part of modelyard failed in a way the story does not expect.
    """
    if home is None:
        with tempfile.TemporaryDirectory(prefix="modelyard-demo-") as tmp:
            return _demo(Path(tmp), echo, serve, rows)
    path = Path(home).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return _demo(path, echo, serve, rows)


def _demo(home: Path, echo: Callable[[str], None], serve: bool, rows: int) -> DemoReport:
    from modelyard.workspace import Workspace

    report = DemoReport(home=str(home))
    story = _Story(echo, report)
    example = find_example()
    pipe_mod = _submodule(example, "pipeline")
    data_mod = _submodule(example, "data")
    pipeline = pipe_mod.credit_training
    settings = _store_settings(home)
    workspace = Workspace.open(settings)
    registry = workspace.registry
    echo(f"modelyard demo: continuous training on a synthetic credit-risk data set (home {home})")

    # 1 ------------------------------------------------------------------------------------
    facts = story.chapter(1, "train and register the first model")
    t0 = time.perf_counter()
    result = _run(pipeline, workspace, rows=rows, seed=0, scenario="baseline")
    took = time.perf_counter() - t0
    v1 = registry.resolve(f"{MODEL}@production")
    story.say(f"pipeline ran {len(result.ran)} steps in {took:.1f} s: {' > '.join(result.ran)}")
    story.say(
        f"test metrics: roc_auc {result.metrics.get('roc_auc', float('nan')):.3f}, "
        f"accuracy {result.metrics.get('accuracy', float('nan')):.3f}, "
        f"brier {result.metrics.get('brier', float('nan')):.3f}"
    )
    verdict = _verdict_of(v1)
    if verdict is not None:
        story.say(verdict.summary())
    story.say(f"registered {MODEL} v{v1.version} -> alias production (first model, gate passed)")
    facts.update(
        ok=v1.version == 1,
        steps_ran=result.ran,
        seconds=round(took, 3),
        version=v1.version,
        metrics=result.metrics,
    )

    # 2 ------------------------------------------------------------------------------------
    facts = story.chapter(2, "run again with nothing changed")
    t0 = time.perf_counter()
    again = _run(pipeline, workspace, rows=rows, seed=0, scenario="baseline")
    took_again = time.perf_counter() - t0
    story.say(
        f"{len(again.cached)} of {len(again.steps)} steps cached, {len(again.ran)} ran: "
        f"{took_again:.2f} s instead of {took:.1f} s"
    )
    story.say("no new version: the registered result was reused")
    facts.update(
        ok=not again.ran and len(again.cached) == len(again.steps),
        cached=again.cached,
        seconds=round(took_again, 3),
    )

    # 3 ------------------------------------------------------------------------------------
    facts = story.chapter(3, "new data arrives (drifted)")
    drift_lines = _drift(v1, data_mod, rows)
    for line in drift_lines:
        story.say(line)
    t0 = time.perf_counter()
    drifted = _run(pipeline, workspace, rows=rows, seed=1, scenario="drifted")
    took = time.perf_counter() - t0
    v2 = registry.get_version(MODEL, drifted.registered[-1]["version"])
    story.say(f"retrained: {len(drifted.ran)} steps ran in {took:.1f} s")
    verdict = _verdict_of(v2)
    if verdict is not None:
        for line in verdict.render_text().splitlines():
            story.say(line)
    story.say(f"registered {MODEL} v{v2.version} -> alias {', '.join(v2.aliases) or '(none)'}")
    registry.set_alias(
        MODEL, "production", v2.version, reason="demo: the first retrained model, approved by hand"
    )
    story.say(
        f"v{v2.version} approved for production by hand (chapter 7 delivers the next candidate "
        "by canary, promoted by the analysis)"
    )
    facts.update(
        ok=v2.version == 2 and "candidate" in v2.aliases,
        version=v2.version,
        drift=drift_lines,
        gate_passed=verdict.passed if verdict else None,
    )

    # 4 ------------------------------------------------------------------------------------
    facts = story.chapter(4, "a worse model is stopped by the gate")
    story.say("a refactoring drops two features: debt_to_income and late_payments_12m")
    before = registry.resolve(f"{MODEL}@production").version
    n_versions = len(registry.list_versions(MODEL))
    refused = False
    try:
        _run(
            pipeline,
            workspace,
            rows=rows,
            seed=1,
            scenario="drifted",
            drop_features=["debt_to_income", "late_payments_12m"],
        )
    except PipelineError as exc:
        refused = "did not pass the gate" in exc.message
        if not refused:
            raise
        story.say("gate FAILED; the reasons:")
        for reason in _reasons(exc.message):
            story.say(f"  - {reason}")
    if refused:
        from modelyard.evaluate.register import REFUSALS_PREFIX, refusals

        kept = refusals(registry, MODEL)
        story.say(
            f"the refused verdict is kept in the artifact store under {REFUSALS_PREFIX}/{MODEL}/ "
            f"({len(kept)} on record)"
        )
    after = registry.resolve(f"{MODEL}@production").version
    unchanged = after == before and len(registry.list_versions(MODEL)) == n_versions
    story.say(
        f"nothing registered, production still v{after}"
        if unchanged
        else "UNEXPECTED: the registry changed"
    )
    facts.update(ok=refused and unchanged, refused=refused, production=after)

    # 5 ------------------------------------------------------------------------------------
    facts = story.chapter(5, "serve the production model")
    if not serve:
        story.say("serving: skipped (--no-serve)")
        facts.update(ok=True, skipped=True)
    else:
        facts.update(_serve(story, home, settings, data_mod))

    # 6 ------------------------------------------------------------------------------------
    facts = story.chapter(6, "traffic drifts: monitoring detects it and retrains")
    facts.update(
        _monitor_chapter(
            story, workspace, home=home, pipeline=pipeline, data_mod=data_mod, rows=rows
        )
    )

    # 7 ------------------------------------------------------------------------------------
    facts = story.chapter(7, "progressive delivery: a canary promoted, a bad candidate rolled back")
    if not serve:
        story.say("delivery: skipped (--no-serve)")
        facts.update(ok=True, skipped=True)
    else:
        serve_mod = _submodule(example, "serve")
        facts.update(_delivery(story, workspace, home, settings, data_mod, pipe_mod, serve_mod))
    report.duration_s = time.perf_counter() - story.started
    echo("")
    status = "done" if report.ok else "done, with surprises (see above)"
    echo(f"demo {status} in {report.duration_s:.1f} s")
    return report


def _drift(version: Any, data_mod: Any, rows: int) -> list[str]:
    """Score a new batch against v1's reference profile (stored with the version)."""
    try:
        profile = version.reference_profile
        if profile is None:
            return ["(no reference profile stored with the version)"]
        batch = data_mod.generate(rows, seed=1, **data_mod.SCENARIOS["drifted"])
        drift = profile.score(batch)
    except (AttributeError, ModelyardError) as exc:
        return [f"drift check not available: {exc}"]
    drifted = list(drift.drifted)
    lines = [
        f"{len(batch)} new applications; drift against v{version.version}'s reference profile: "
        f"{len(drifted)} of {len(profile.features)} features drifted"
    ]
    if drifted:
        lines.append("drifted: " + ", ".join(drifted))
    return lines


def _monitor_chapter(
    story: _Story, workspace: Workspace, *, home: Path, pipeline: Any, data_mod: Any, rows: int
) -> dict[str, Any]:
    """Log a day of drifted traffic for production, monitor it, report, and let the policy
    retrain through the gate."""
    import uuid

    import modelyard.models
    from modelyard.monitoring import DriftThresholds, Monitor, MonitorPolicy, write_report
    from modelyard.requestlog import RequestLogWriter

    version = workspace.resolve(f"{MODEL}@production")
    loaded = modelyard.models.load(workspace.fetch(version))
    drifted = data_mod.SCENARIOS["drifted"]
    # later still: incomes keep falling, loans grow
    shift = {**drifted.get("shift", {}), "income": -0.9, "loan_amount": 0.5}
    traffic = data_mod.generate(rows, seed=7, **{**drifted, "shift": shift})
    inputs = traffic[list(data_mod.FEATURES)]
    predictions = loaded.predict(inputs)
    writer = RequestLogWriter(
        workspace.artifact_store, MODEL, str(version.version), max_records=rows + 1
    )
    writer.add_batch([uuid.uuid4().hex for _ in range(len(inputs))], None, inputs, predictions)
    writer.flush()
    story.say(f"{len(inputs):,} requests to v{version.version} logged (as the server logs them)")
    policy = MonitorPolicy(
        window_s=86400.0, thresholds=DriftThresholds(min_samples=200), cooldown_s=0.0
    )
    monitor = Monitor(workspace, policy)
    [result] = monitor.check(version, last=1)
    if result.drift is None:
        story.say(f"monitor: {result.verdict}: {result.error}")
        return {"ok": False, "verdict": result.verdict, "error": result.error}
    story.say(
        f"modelyard monitor {MODEL}@production: {result.verdict}, "
        f"{len(result.drift.drifted)} of {len(result.drift.features)} features drifted "
        f"({', '.join(result.drift.drifted)})"
    )
    report_path = write_report(
        home / "monitor-report.html",
        result,
        monitor.references(version).profile,
        monitor.store.history(MODEL, version.version),
    )
    story.say(f"report: {report_path}")
    trigger = monitor.act(
        result, pipeline=pipeline, params={"rows": rows, "seed": 2, "scenario": "drifted"}
    )
    facts: dict[str, Any] = {
        "verdict": result.verdict,
        "drifted": result.drift.drifted,
        "report": str(report_path),
        "window_start": result.window.start.isoformat(),
    }
    if trigger is None:
        story.say("the policy did not call for a retraining")
        return {**facts, "ok": not result.crossed}
    story.say(
        f"the policy started retraining {trigger.id} (run {trigger.run_id}): {trigger.status}"
    )
    if trigger.new_version is not None:
        candidate = workspace.registry.get_version(MODEL, trigger.new_version)
        verdict = _verdict_of(candidate)
        if verdict is not None:
            story.say(verdict.summary())
        story.say(
            f"registered {MODEL} v{candidate.version} -> alias "
            f"{', '.join(candidate.aliases) or '(none)'}; the trigger records the drift, the run "
            "and the version"
        )
    elif trigger.error:
        story.say(f"the gate or the run said: {trigger.error.splitlines()[0]}")
    return {
        **facts,
        "ok": result.crossed and trigger.status in ("succeeded", "gate_refused"),
        "trigger": trigger.to_dict(),
    }


def _reasons(message: str) -> list[str]:
    """The failed rules named in a GateFailed message."""
    text = message.split("did not pass the gate:", 1)[-1].split("\nhint:", 1)[0]
    return [part.strip() for part in text.split("; ") if part.strip()]


def _launcher(story: _Story) -> tuple[Any, dict[str, Any] | None]:
    """``modelyard.serving.launch``, or ``None`` and the facts of a skipped chapter."""
    import importlib.util

    missing = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m) is None]
    launch = None
    try:
        serving: Any = importlib.import_module("modelyard.serving")
        launch = serving.launch
    except (ImportError, AttributeError):
        missing.append("modelyard.serving.launch")
    if missing:
        story.say(f"serving: not available in this build (missing {', '.join(missing)})")
        story.say("hint: pip install 'modelyard[serve]'")
        return None, {"ok": True, "skipped": True, "missing": missing}
    return launch, None


def _start_server(launch: Any, home: Path, settings: Any, **env: str) -> Any:
    import subprocess

    from modelyard.delivery.serving import rollout_hooks

    return launch(
        f"{MODEL}@production",
        name=MODEL,
        home=str(home),
        workers=1,
        hooks=[rollout_hooks],  # the server `modelyard serve` starts: it runs rollouts
        env={
            "MODELYARD_DB_URL": settings.resolved_db_url,
            "MODELYARD_ARTIFACT_URL": settings.resolved_artifact_url,
            "MODELYARD_LOG_LEVEL": "WARNING",
            **env,
        },
        ready_timeout_s=60.0,
        stdout=subprocess.DEVNULL,  # stdout is the story's (or --json's); logs stay on stderr
    )


def _serve(story: _Story, home: Path, settings: Any, data_mod: Any) -> dict[str, Any]:
    launch, skipped = _launcher(story)
    if skipped is not None:
        return skipped
    t0 = time.perf_counter()
    handle = _start_server(launch, home, settings)
    facts: dict[str, Any] = {}
    try:
        story.say(f"server ready at {handle.url} in {time.perf_counter() - t0:.1f} s")
        frame = data_mod.generate(2, seed=42)
        instances = frame[data_mod.FEATURES].to_dict(orient="records")
        status, body, headers = _post(
            f"{handle.url}/v1/models/{MODEL}:predict", {"instances": instances}
        )
        rid = headers.get("x-request-id", "")
        preds = body.get("predictions", []) if isinstance(body, dict) else []
        story.say(f"POST :predict, 2 applications -> {status}, request id {rid}")
        for inst, pred in zip(instances, preds, strict=False):
            p = pred[-1] if isinstance(pred, list) else pred
            story.say(
                f"  {inst['employment_type']:>13}, income {inst['income']:>9.0f}, "
                f"dti {inst['debt_to_income']:.2f} -> P(default) = {float(p):.3f}"
            )
        bad = dict(instances[0])
        bad["region"] = "atlantis"
        bad_status, bad_body, _ = _post(
            f"{handle.url}/v1/models/{MODEL}:predict", {"instances": [bad]}
        )
        message = bad_body.get("message", bad_body) if isinstance(bad_body, dict) else bad_body
        story.say(f"POST :predict with region 'atlantis' -> {bad_status}: {message}")
        fb_status, _, _ = _post(f"{handle.url}/v1/feedback", {"request_id": rid, "label": [0, 1]})
        story.say(f"POST /v1/feedback for {rid} (the true outcomes) -> {fb_status}")
        metrics = _get(f"{handle.url}/metrics")
        wanted = (
            'requests_total{model="credit-risk",route="/v1/models',
            "modelyard_batch_size_count",
            "modelyard_inference_duration_seconds_sum",
            "modelyard_feedback_records",
            "modelyard_workers_alive",
        )
        lines = [
            ln
            for ln in metrics.splitlines()
            if ln and not ln.startswith("#") and any(w in ln for w in wanted)
        ][:8]
        story.say("GET /metrics (a few lines):")
        for line in lines:
            story.say(f"  {line}")
        facts.update(
            ok=status == 200 and len(preds) == 2 and 400 <= bad_status < 500 and fb_status < 300,
            predict_status=status,
            predictions=preds,
            invalid_status=bad_status,
            feedback_status=fb_status,
            metrics_lines=lines,
        )
    finally:
        t1 = time.perf_counter()
        code = handle.stop()
        story.say(f"server stopped cleanly in {time.perf_counter() - t1:.1f} s (exit {code})")
    facts["server_exit"] = code
    facts["ok"] = bool(facts.get("ok")) and code == 0
    return facts


#: the delivery chapter's [tool.modelyard.delivery], as the server's environment: sample sizes
#: for a demo-sized load, and SLOs loose enough for a busy laptop's noise
_DELIVERY_ENV = {
    "MODELYARD_DELIVERY__MIN_SAMPLES": "30",
    "MODELYARD_DELIVERY__MAX_ERROR_RATE": "0.1",
    "MODELYARD_DELIVERY__MAX_LATENCY_RATIO": "10",
    "MODELYARD_DELIVERY__MAX_QUALITY_DROP": "0.1",
    "MODELYARD_DELIVERY__LOAD_TEST_S": "1",
    "MODELYARD_DELIVERY__LOAD_TEST_RPS": "100",
    "MODELYARD_DELIVERY__HEADROOM": "1.5",
    "MODELYARD_DELIVERY__DEADLINE_S": "45",
}
_STEPS = [20.0, 50.0, 100.0]
_BATCH = 8  # applications per request of the demo's load
_RATE_RPS = 100.0  # requests per second of the demo's load (each followed by its feedback)
_LOAD_MAX_S = 120.0  # the load stops by itself after this, whatever happens


class _Load:
    """A small, bounded loopback load: batches of applications at a fixed rate on one
    keep-alive connection, each answer's true labels posted back as feedback (as a lender's
    system does once the loans end). Counts the statuses and versions users got."""

    def __init__(self, url: str, rows: list[dict[str, Any]], labels: list[int]) -> None:
        self.url = url
        self.rows = rows
        self.labels = labels
        self.statuses: dict[int, int] = {}
        self.versions: dict[str, int] = {}
        self.feedback = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-load", daemon=True)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def _run(self) -> None:
        import http.client
        import urllib.parse

        target = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        path = f"/v1/models/{MODEL}:predict"
        start = time.monotonic()
        i = 0
        while not self._stop.is_set() and time.monotonic() - start < _LOAD_MAX_S:
            lo = (i * _BATCH) % (len(self.rows) - _BATCH)
            try:
                status, headers = _call(conn, path, {"instances": self.rows[lo : lo + _BATCH]})
                self.statuses[status] = self.statuses.get(status, 0) + 1
                version = headers.get("x-model-version", "?")
                self.versions[version] = self.versions.get(version, 0) + 1
                if status == 200:
                    labels = self.labels[lo : lo + _BATCH]
                    body = {"request_id": headers.get("x-request-id", ""), "label": labels}
                    if _call(conn, "/v1/feedback", body)[0] == 202:
                        self.feedback += 1
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()  # reconnects on the next request
                if len(self.errors) > 50:
                    return
            i += 1
            self._stop.wait(max(0.0, start + i / _RATE_RPS - time.monotonic()))
        conn.close()


def _call(conn: Any, path: str, body: Any) -> tuple[int, dict[str, str]]:
    import json

    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return int(resp.status), {k.lower(): v for k, v in resp.getheaders()}


def _register_bad(workspace: Workspace, data_mod: Any, pipe_mod: Any, serve_mod: Any) -> int:
    """A candidate trained on flipped labels, registered by hand (no gate would pass it)."""
    import modelyard.models

    frame = data_mod.generate(3000, seed=3, **data_mod.SCENARIOS["drifted"])
    model = pipe_mod.build_model(list(data_mod.FEATURES))
    model.fit(frame[data_mod.FEATURES], 1 - frame[data_mod.TARGET])
    version = modelyard.models.register(
        model,
        workspace.registry,
        name=MODEL,
        signature=serve_mod.package_signature(),
        flavor_options={"method": "predict_proba"},
        description="demo: trained on flipped labels (a labelling bug), registered past the gate",
    )
    return int(version.version)


def _delivery(  # noqa: PLR0917  (the chapter's parts, as the other chapters take them)
    story: _Story,
    workspace: Workspace,
    home: Path,
    settings: Any,
    data_mod: Any,
    pipe_mod: Any,
    serve_mod: Any,
) -> dict[str, Any]:
    """Deliver chapter 6's candidate by canary under load, then roll a bad one back."""
    from modelyard.delivery.client import RolloutClient

    launch, skipped = _launcher(story)
    if skipped is not None:
        return skipped
    registry = workspace.registry
    production = registry.resolve(f"{MODEL}@production").version
    candidate: int | None = None
    try:
        found = registry.resolve(f"{MODEL}@candidate").version
        candidate = found if found > production else None
    except ModelyardError:
        candidate = None
    bad = _register_bad(workspace, data_mod, pipe_mod, serve_mod)
    traffic = data_mod.generate(4000, seed=11, **data_mod.SCENARIOS["drifted"])
    rows = traffic[list(data_mod.FEATURES)].to_dict(orient="records")
    labels = [int(v) for v in traffic[data_mod.TARGET]]
    t0 = time.perf_counter()
    handle = _start_server(launch, home, settings, **_DELIVERY_ENV)
    facts: dict[str, Any] = {"candidate": candidate, "bad_version": bad}
    code = None
    try:
        took = time.perf_counter() - t0
        story.say(f"server ready at {handle.url} in {took:.1f} s, v{production} in production")
        story.say(
            f"load: {_RATE_RPS:.0f} requests/s of {_BATCH} applications on loopback; the true "
            "outcome of each answer comes back as feedback (POST /v1/feedback)"
        )
        client = RolloutClient(handle.url, timeout_s=60.0, model=MODEL)
        with _Load(handle.url, rows, labels) as load:
            if candidate is not None:
                facts["canary"] = _rollout(story, client, candidate, "the retrained candidate")
            else:
                story.say("no new candidate from chapter 6 (its retraining did not pass the gate)")
            story.say(
                f"v{bad}: trained on flipped labels (a labelling bug), registered by hand past "
                "the gate"
            )
            facts["bad"] = _rollout(story, client, bad, "the bad candidate")
        users = dict(load.statuses)
        failed = sum(n for status, n in users.items() if status >= 500) + len(load.errors)
        story.say(
            f"users: {load.sent} requests, {failed} failed; answered by "
            + ", ".join(f"v{v} {n}" for v, n in sorted(load.versions.items()))
            + f"; {load.feedback} feedback records"
        )
        now = registry.resolve(f"{MODEL}@production").version
        story.say(f"production is v{now}")
        facts.update(users=users, failed_user_requests=failed, production=now)
    finally:
        code = handle.stop()
    promoted = candidate is None or facts.get("canary", {}).get("state") == "promoted"
    expected_production = candidate if candidate is not None else production
    facts["ok"] = bool(
        promoted
        and facts.get("bad", {}).get("state") == "rolled_back"
        and facts.get("failed_user_requests") == 0
        and facts.get("production") == expected_production
        and code == 0
    )
    facts["server_exit"] = code
    return facts


def _rollout(story: _Story, client: Any, version: int, what: str) -> dict[str, Any]:
    """``modelyard deploy`` of ``version`` as a canary; waits for its end and tells it."""
    steps = ",".join(f"{w:g}" for w in _STEPS)
    story.say(f"modelyard deploy {MODEL} --candidate {version} --steps {steps} --interval 1s")
    t0 = time.perf_counter()
    rollout = client.deploy(candidate=version, strategy="canary", steps=_STEPS, interval_s=1.0)
    deadline = time.monotonic() + 90.0
    while rollout["state"] not in ("promoted", "rolled_back") and time.monotonic() < deadline:
        time.sleep(0.25)
        rollout = client.status()
    took = time.perf_counter() - t0
    if rollout["state"] not in ("promoted", "rolled_back"):  # a stuck story: leave stable only
        client.abort()
    doc = client.status()
    for event in doc.get("events", []):
        line = _event_line(event, doc)
        if line:
            story.say(f"  {line}")
    state = doc["state"]
    verb = {"promoted": "PROMOTED automatically", "rolled_back": "ROLLED BACK automatically"}
    story.say(f"{what} v{version}: {verb.get(state, state)} in {took:.1f} s: {doc['reason']}")
    facts: dict[str, Any] = {"version": version, "state": state, "reason": doc["reason"]}
    facts["seconds"] = round(took, 3)
    evidence = doc.get("evidence") or {}
    failed = [c for c in evidence.get("checks", []) if c.get("outcome") == "fail"]
    if state == "rolled_back" and failed:
        story.say("evidence:")
        for check in failed:
            story.say(f"  {_check_line(check)}")
    facts["evidence"] = evidence
    return facts


def _event_line(event: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """One line of a rollout's history for the story (``None``: not worth telling)."""
    detail = event.get("detail") or {}
    kind, version = event.get("kind"), doc["candidate_version"]
    if kind == "load_test":
        p99 = (detail.get("candidate") or {}).get("p99_ms")
        p99_text = f", candidate p99 {p99:.1f} ms" if isinstance(p99, int | float) else ""
        return (
            f"load test: {detail.get('rate_rps', 0):.0f} req/s for {detail.get('duration_s', 0):g}"
            f" s of {detail.get('source', '?')} requests -> {event.get('outcome')}{p99_text}"
        )
    if kind == "analysis" and event.get("outcome") in ("pass", "fail"):
        cand, stable = detail.get("candidate") or {}, detail.get("stable") or {}
        parts = [f"{cand.get('requests')} vs {stable.get('requests')} requests"]
        if cand.get("quality") is not None and stable.get("quality") is not None:
            parts.append(f"accuracy {cand['quality']:.3f} vs {stable['quality']:.3f}")
        if cand.get("p99_ms") is not None and stable.get("p99_ms") is not None:
            parts.append(f"p99 {cand['p99_ms']:.1f} vs {stable['p99_ms']:.1f} ms")
        return f"  analysis: {event['outcome']} (candidate vs stable: {', '.join(parts)})"
    if kind == "transition" and event.get("to_state") == "progressing":
        steps = doc.get("steps") or []
        i = int(event.get("step_index") or 0)
        weight = steps[i]["weight"] if i < len(steps) else 0
        why = detail.get("reason")
        return f"step {i + 1}/{len(steps)}: {weight:g}% of users on v{version} ({why})"
    if kind == "transition" and event.get("to_state") == "promoted":
        return f"promoted: 100% on v{version}; production moved to v{version} with the evidence"
    return None


def _check_line(check: dict[str, Any]) -> str:
    name = check.get("name")
    cand, stable = check.get("candidate"), check.get("stable")
    low, high = check.get("lower"), check.get("upper")
    if name == "quality" and cand is not None and stable is not None:
        drop = ""
        if low is not None and high is not None:
            drop = f"; the drop is {low:.3f} to {high:.3f}, valid at every look"
        return (
            f"accuracy on feedback: candidate {cand:.3f} ({check.get('n_candidate')} labelled) "
            f"vs stable {stable:.3f} ({check.get('n_stable')} labelled){drop} "
            f"(tolerated: {check.get('tolerance')})"
        )
    return f"{name}: candidate {cand} vs stable {stable} ({check.get('detail', '')})"


def _post(url: str, body: Any) -> tuple[int, Any, dict[str, str]]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            status = int(resp.status)
            headers = {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = int(err.code)
        headers = {k.lower(): v for k, v in err.headers.items()}
    try:
        return status, json.loads(raw or b"null"), headers
    except ValueError:
        return status, raw.decode(errors="replace"), headers


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())
