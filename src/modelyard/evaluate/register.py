"""Gate-and-register: judge a candidate, then register it with its verdict, or refuse it.

:func:`evaluate_and_register` (what :meth:`modelyard.workspace.Workspace.gate_and_register`
runs) resolves the ``production`` version, runs the :class:`~modelyard.evaluate.gate.Gate` and
then either registers the candidate, with the verdict in ``extra["gate"]`` and its contract and
reference profile, under the policy's alias, or raises :class:`~modelyard.errors.GateFailed`,
keeps the verdict as a named file (:func:`refusals` lists them) and moves no alias.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from modelyard.errors import GateFailed, ModelyardError, NotFoundError
from modelyard.evaluate.gate import Gate, _split
from modelyard.evaluate.policy import GatePolicy
from modelyard.evaluate.verdict import GateVerdict
from modelyard.logs import get_logger
from modelyard.registry.packages import load, read_manifest
from modelyard.registry.packages import save as save_package

if TYPE_CHECKING:
    from modelyard.data.contract import Contract
    from modelyard.data.profile import Profile
    from modelyard.registry.registry import ModelVersion, Registry
    from modelyard.types import Clock

__all__ = [
    "REFUSALS_PREFIX",
    "GateOutcome",
    "RegisterOptions",
    "evaluate_and_register",
    "prediction_profile",
    "production_model",
    "refusals",
]

log = get_logger("evaluate.register")


@dataclass(frozen=True)
class GateOutcome:
    """What :func:`evaluate_and_register` did.

    Attributes:
        verdict: the gate's verdict (passed).
        version: the registered version.
        alias: the alias it got (``production`` or the policy's alias).
    """

    verdict: GateVerdict
    version: ModelVersion
    alias: str


class RegisterOptions(TypedDict, total=False):
    """The keyword options of :func:`evaluate_and_register` but ``policy``, typed once.

    :meth:`Workspace.gate_and_register <modelyard.workspace.Workspace.gate_and_register>` takes
    them as ``**options`` and passes them on, so the two never drift apart (a test compares
    these keys with the function's parameters). See :func:`evaluate_and_register` for each.
    """

    target: str | None
    y: Any
    package: str | Path | None
    run_id: str | None
    extra: Mapping[str, Any] | None
    signature: Any
    flavor: str | None
    description: str | None
    tags: Mapping[str, str] | None
    production: tuple[Any, int] | Literal["auto"] | None
    clock: Clock | None
    reason: str | None
    save: Callable[[Any, Path], Path] | None
    contract: Contract | None
    profile: Profile | None
    explain_rows: int | None


def production_model(registry: Registry, name: str) -> tuple[Any, int] | None:
    """Load the ``production`` version of ``name``: (model, version number), or None if none.

    The package is loaded with :func:`modelyard.registry.packages.load`; when the loaded object
    wraps a scikit-learn-style estimator, that estimator is returned so that probabilities are
    compared.
    """
    try:
        version = registry.resolve(f"{name}@production")
    except NotFoundError:
        return None
    with tempfile.TemporaryDirectory(prefix="modelyard-gate-") as tmp:
        dest = registry.download(version, Path(tmp) / "package")
        loaded = load(dest)
    return _unwrap(loaded), int(version.version)


def _has_production(registry: Registry, name: str) -> bool:
    try:
        registry.resolve(f"{name}@production")
    except NotFoundError:
        return False
    return True


REFUSALS_PREFIX = "gate-refusals"
"""Named files of the artifact store holding the verdicts of refused candidates."""


def _keep_refusal(registry: Registry, name: str, verdict: GateVerdict) -> str | None:
    """Keep a refused candidate's verdict as ``gate-refusals/<model>/<time>.json``; there is no
    version to store it with. A store that cannot take it does not hide the refusal."""
    body = verdict.to_json().encode()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(verdict.evaluated_at))
    record = f"{REFUSALS_PREFIX}/{name}/{stamp}-{hashlib.sha256(body).hexdigest()[:8]}.json"
    try:
        registry.artifact_store.write_named(record, body)
    except (ModelyardError, OSError) as exc:
        log.warning("refused verdict not kept", extra={"model": name, "error": str(exc)})
        return None
    return record


def refusals(registry: Registry, name: str) -> list[GateVerdict]:
    """The verdicts of the refused candidates of ``name``, oldest first."""
    store = registry.artifact_store
    names = store.list_named(f"{REFUSALS_PREFIX}/{name}/")
    return [GateVerdict.from_dict(json.loads(store.read_named(n))) for n in names]


def _unwrap(loaded: Any) -> Any:
    if hasattr(loaded, "predict_proba"):
        return loaded
    for attr in ("model", "estimator", "raw", "native"):
        inner = getattr(loaded, attr, None)
        if inner is not None and hasattr(inner, "predict_proba"):
            return inner
    return loaded


def _with_explanation(
    verdict: GateVerdict, candidate: Any, test_frame: Any, *, target: str | None, y: Any, rows: int
) -> GateVerdict:
    from modelyard.evaluate.explain import explain_or_reason

    features, labels = _split(test_frame, target, y)
    explanation = explain_or_reason(_unwrap(candidate), features, y=labels, max_rows=rows)
    if explanation.error is not None:
        log.warning(
            "candidate not explained",
            extra={"model": verdict.model, "reason": explanation.error},
        )
    return dataclasses.replace(verdict, explanation=explanation.to_dict())


def prediction_profile(model: Any, features: Any) -> Profile | None:
    """The reference profile of a model's outputs on ``features``, named as the request log
    names them (without ``out__``): ``prediction`` (what ``predict`` returns) and, for a
    classifier with ``predict_proba``, ``proba__<class>`` per class. Monitoring compares the
    served outputs with it (prediction drift).

    Returns None (and logs why) when the outputs cannot be profiled: a model without
    ``predict``, several outputs per row, or a type a profile does not take.
    """
    import numpy as np
    import pandas as pd

    from modelyard.data.profile import build_profile

    inner = _unwrap(model)
    columns: dict[str, Any] = {}
    try:
        if hasattr(model, "predict"):
            out = np.asarray(model.predict(features))
            if out.ndim == 2 and out.shape[1] == 1:
                out = out.reshape(-1)
            if out.ndim == 1:
                columns["prediction"] = out
        proba = getattr(inner, "predict_proba", None)
        classes = getattr(inner, "classes_", None)
        if callable(proba) and classes is not None:
            probs = np.asarray(proba(features), dtype=np.float64)
            labels = classes.tolist() if hasattr(classes, "tolist") else list(classes)
            if probs.ndim == 2 and probs.shape[1] == len(labels):
                for j, label in enumerate(labels):
                    # the serving worker's column names: out__proba__<class>
                    columns[f"proba__{label}"] = probs[:, j]
        if not columns:
            log.warning("outputs not profiled", extra={"reason": "no one-column prediction"})
            return None
        return build_profile(pd.DataFrame(columns))
    except (ModelyardError, ValueError, TypeError, AttributeError) as exc:
        log.warning("outputs not profiled", extra={"reason": f"{type(exc).__name__}: {exc}"})
        return None


def evaluate_and_register(
    registry: Registry,
    name: str,
    candidate: Any,
    test_frame: Any,
    *,
    policy: GatePolicy,
    target: str | None = None,
    y: Any = None,
    package: str | Path | None = None,
    run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    signature: Any = None,
    flavor: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    production: tuple[Any, int] | Literal["auto"] | None = "auto",
    clock: Clock | None = None,
    reason: str | None = None,
    save: Callable[[Any, Path], Path] | None = None,
    contract: Contract | None = None,
    profile: Profile | None = None,
    explain_rows: int | None = None,
) -> GateOutcome:
    """Gate ``candidate`` and, when it passes, register it with the verdict.

    The ``production`` version of ``name`` (if any) is scored on the same ``test_frame``. On a
    pass the candidate is registered with ``extra["gate"] = verdict.to_dict()`` under the
    policy's alias (``candidate``), or under ``production`` when there is no production version
    yet and ``policy.allow_first_production`` is set; the version and its alias are written in
    one registry transaction. On a failure nothing is registered and no alias moves.

    Args:
        registry: the model registry.
        name: the model name.
        candidate: the fitted candidate model.
        test_frame: the shared test rows (with the ``target`` column unless ``y`` is given).
        policy: the gate policy.
        target: the label column.
        y: labels, when ``test_frame`` holds features only.
        package: a package folder already written for ``candidate``; default: written here with
            ``modelyard.models.save`` (or ``save(candidate, folder)``) into a temporary folder.
        run_id: the run that trained the candidate (lineage).
        extra: more JSON-able data to store with the version (metrics, refs, ...).
        signature: the model's input/output signature.
        flavor: the package flavor, when writing the package here.
        description: version description.
        tags: version tags.
        production: ``"auto"`` loads the production version from the registry; or pass
            ``(model, version)``, or None to judge without a baseline (a passing candidate
            then still gets the policy's alias when a production version exists).
        clock: time source for the latency rule.
        reason: why the alias moves, recorded in the alias history
            (default ``"gate passed: <summary>"``).
        save: ``save(model, folder) -> folder`` writing the package; default
            ``modelyard.models.save``.
        contract: the data contract of the model's input, stored with the version.
        profile: the reference profile of the training data, stored with the version.
        explain_rows: when positive, a passing candidate's feature attributions are computed
            on at most this many test rows (:func:`modelyard.evaluate.explain.explain`) and
            stored in the verdict (``extra["gate"]["explanation"]``); the mean |attribution|
            per feature also becomes ``extra["feature_importance"]`` (unless ``extra`` sets it),
            the weights of monitoring's drift verdict. A model that cannot be explained is
            registered all the same, with the reason in ``explanation["error"]``. None (the
            default) takes the policy's ``explain_rows`` (``[tool.modelyard.gate]``); 0 turns
            explanations off whatever the policy says.

    A passing candidate's outputs on the test rows are profiled (:func:`prediction_profile`)
    into ``extra["prediction_profile"]`` (unless ``extra`` sets it), the reference of
    monitoring's prediction drift.

    Returns:
        A :class:`GateOutcome` with the verdict, the new version and its alias.

    Raises:
        GateFailed: a rule failed; ``details["verdict"]`` holds the verdict dict, the message
            names each failed rule and its numbers; the verdict is also kept in the artifact
            store (``details["verdict_file"]``, listed by :func:`refusals`).
        InvalidNameError: the registry refuses the policy's alias; nothing is registered.
    """
    base = production_model(registry, name) if production == "auto" else production
    verdict = Gate(policy, clock=clock).evaluate(
        candidate,
        test_frame,
        target=target,
        y=y,
        production=None if base is None else base[0],
        production_version=None if base is None else base[1],
        model_name=name,
    )
    if not verdict.passed:
        reasons = "; ".join(f"{r.name}: {r.message}" for r in verdict.failures)
        record = _keep_refusal(registry, name, verdict)
        where = f"; the verdict is kept as the named file {record}" if record else ""
        raise GateFailed(
            f"model {name!r}: the candidate did not pass the gate: {reasons}",
            hint="no version was registered and no alias moved" + where + "; improve the "
            "model or data, or review the policy",
            model=name,
            verdict=verdict.to_dict(),
            verdict_file=record,
        )
    # judging without a baseline (production=None) must not make the candidate replace a
    # production version that exists: only a model with none yet gets it directly
    first = base is None and not _has_production(registry, name)
    alias = "production" if first and policy.allow_first_production else policy.alias
    body = dict(extra or {})
    rows = policy.explain_rows if explain_rows is None else explain_rows
    if rows > 0:
        verdict = _with_explanation(verdict, candidate, test_frame, target=target, y=y, rows=rows)
        importances = (verdict.explanation or {}).get("features") or []
        if importances and "feature_importance" not in body:
            body["feature_importance"] = {f["feature"]: f["mean_abs"] for f in importances}
    if "prediction_profile" not in body:
        features, _ = _split(test_frame, target, y)
        outputs = prediction_profile(candidate, features)
        if outputs is not None:
            body["prediction_profile"] = outputs.to_dict()
    body["gate"] = verdict.to_dict()
    alias_reason = reason or f"gate passed: {verdict.summary()}"
    with tempfile.TemporaryDirectory(prefix="modelyard-pkg-") as tmp:
        if package is None:
            folder = Path(tmp) / "package"
            if save is not None:
                package = save(candidate, folder)
            else:
                package = save_package(
                    candidate, folder, name=name, signature=signature, flavor=flavor
                )
        if flavor is None or signature is None:
            # record what the package says about itself, so the version row is complete
            manifest = read_manifest(package)
            flavor = flavor or manifest.get("flavor")
            signature = signature if signature is not None else manifest.get("signature")
        version = registry.register_version(
            name,
            package,
            run_id=run_id,
            flavor=flavor,
            signature=signature,
            extra=body,
            description=description,
            tags=dict(tags) if tags else None,
            # the version and its alias in one transaction: a refused alias or a failure
            # registers nothing, rather than a version without its alias
            aliases=(alias,),
            alias_reason=alias_reason,
            contract=contract,
            profile=profile,
        )
    log.info(
        "candidate registered",
        extra={"model": name, "version": version.version, "alias": alias},
    )
    return GateOutcome(verdict=verdict, version=version, alias=alias)
