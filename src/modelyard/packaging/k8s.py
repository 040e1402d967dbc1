"""Kubernetes manifests for serving a registered model version, built as typed objects.

:func:`kubernetes_manifests` returns the objects (see :mod:`modelyard.packaging._k8s_types`):

- a ``Deployment``: the code image runs ``modelyard serve`` on the model an init container
  fetched from the registry (the model is never baked into the code image), with startup,
  readiness and liveness probes on the server's health paths, resources (one
  ``nvidia.com/gpu`` per pod when asked), a non-root read-only container, and a termination
  grace period longer than the server's drain delay plus its grace;
- a ``Service``, a ``HorizontalPodAutoscaler`` and a ``PodDisruptionBudget``;
- an ``Ingress`` whose body-size limit is ``serving.max_body_bytes`` (ingress-nginx), or a
  Gateway API ``HTTPRoute`` with NGINX Gateway Fabric's ``ClientSettingsPolicy`` for the limit;
- an Argo Rollouts ``Rollout`` that takes over the Deployment (``workloadRef``) with the canary
  steps of ``[tool.modelyard.delivery]``, and an ``AnalysisTemplate`` that runs
  ``modelyard analyze`` as a Job against Prometheus after every step.

:func:`to_yaml` serialises them; nothing here formats YAML by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from modelyard.errors import ConfigError, InvalidNameError
from modelyard.packaging import _k8s_types as k

if TYPE_CHECKING:
    from modelyard.config import Settings

__all__ = [
    "DEFAULT_DRAIN_DELAY_S",
    "MODEL_DIR",
    "kubernetes_manifests",
    "manifest_files",
    "resource_name",
    "to_yaml",
]

MODEL_DIR = "/models/current"
STATE_DIR = "/var/lib/modelyard"
DEFAULT_DRAIN_DELAY_S = 5.0  # until the server's own serving.drain_delay_s exists
_RUN_AS = 10001  # the image's non-root user (see modelyard.packaging.dockerfile)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def resource_name(model: str) -> str:
    """A Kubernetes object name (DNS label) for ``model``: lower case, ``.``/``_`` as ``-``."""
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")
    if not _DNS_LABEL.match(name) or len(name) > 50:
        raise InvalidNameError(
            f"model name {model!r} cannot be a Kubernetes name (got {name!r})",
            hint="Kubernetes names are at most 50 characters here: letters, digits and '-'",
        )
    return name


def _duration(seconds: float) -> str:
    return f"{math.ceil(seconds)}s"


def _canary_weights(settings: Settings) -> list[int]:
    steps = [float(w) for w in settings.delivery.steps]
    weights = [int(w) for w in steps]
    if any(w != s for w, s in zip(weights, steps, strict=True)):
        raise ConfigError(
            f"delivery.steps = {steps}: Argo Rollouts weights are whole percentages",
            hint="use whole numbers in [tool.modelyard.delivery] steps, e.g. [5, 25, 50, 100]",
            key="delivery.steps",
        )
    return weights


def _probe(path: str, *, period_s: int, failures: int, timeout_s: int = 2) -> k.Probe:
    return k.Probe(
        http_get=k.HTTPGetAction(path=path, port="http"),
        period_seconds=period_s,
        timeout_seconds=timeout_s,
        failure_threshold=failures,
    )


def _hardened() -> k.SecurityContext:
    return k.SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k.Capabilities(drop=["ALL"]),
    )


def _pod(
    model: str,
    version: int,
    *,
    image: str,
    settings: Settings,
    gpu: bool,
    model_image: str | None,
) -> k.PodSpec:
    serving = settings.serving
    pack = settings.packaging
    drain_s = float(getattr(serving, "drain_delay_s", DEFAULT_DRAIN_DELAY_S))
    env = [
        k.EnvVar(name="MODELYARD_HOME", value=STATE_DIR),
        k.EnvVar(name="MODELYARD_SERVING__HOST", value="0.0.0.0"),
        k.EnvVar(name="MODELYARD_SERVING__PORT", value=str(serving.port)),
    ]
    secrets = [k.EnvFromSource(secret_ref=k.SecretEnvSource(name=pack.secret, optional=True))]
    mounts = [
        k.VolumeMount(name="models", mount_path="/models"),
        k.VolumeMount(name="state", mount_path=STATE_DIR),
        k.VolumeMount(name="tmp", mount_path="/tmp"),
    ]
    limits = {"memory": pack.memory}
    requests = {"cpu": pack.cpu, "memory": pack.memory}
    if gpu:
        limits["nvidia.com/gpu"] = requests["nvidia.com/gpu"] = "1"
    fetch = k.Container(
        name="fetch-model",
        image=image,
        args=["fetch", f"{model}:{version}", "--out", MODEL_DIR],
        env=env[:1],
        env_from=secrets,
        volume_mounts=mounts,
        resources=k.ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "1Gi"}
        ),
        security_context=_hardened(),
    )
    models = k.Volume(name="models", empty_dir=k.EmptyDirVolumeSource())
    model_dir = MODEL_DIR
    init = [fetch]
    if model_image is not None:  # `modelyard build --model`: the files under /model, read-only
        models = k.Volume(
            name="models",
            image=k.ImageVolumeSource(reference=model_image, pull_policy="IfNotPresent"),
        )
        model_dir = "/models/model"
        init = []
        mounts[0] = k.VolumeMount(name="models", mount_path="/models", read_only=True)
    server = k.Container(
        name="server",
        image=image,
        args=["serve", model_dir, "--name", model],
        env=env,
        env_from=secrets,
        ports=[k.ContainerPort(name="http", container_port=serving.port)],
        resources=k.ResourceRequirements(requests=requests, limits=limits),
        volume_mounts=mounts,
        # the model loads before the first readiness: up to 10 minutes for a large one
        startup_probe=_probe("/v2/health/ready", period_s=5, failures=120),
        liveness_probe=_probe("/v2/health/live", period_s=10, failures=3, timeout_s=5),
        # quick, so a draining pod leaves the endpoints well within its drain delay
        readiness_probe=_probe("/v2/health/ready", period_s=2, failures=1),
        security_context=_hardened(),
    )
    tolerations = []
    if gpu:
        tolerations.append(
            k.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        )
    return k.PodSpec(
        init_containers=init,
        containers=[server],
        volumes=[
            models,
            k.Volume(name="state", empty_dir=k.EmptyDirVolumeSource(size_limit="1Gi")),
            k.Volume(name="tmp", empty_dir=k.EmptyDirVolumeSource(size_limit="1Gi")),
        ],
        # SIGTERM -> not ready, still answering for drain_delay_s, then up to grace_s for the
        # requests in flight; the kubelet must not SIGKILL before that (plus a margin)
        termination_grace_period_seconds=math.ceil(drain_s + serving.grace_s + 10),
        security_context=k.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=_RUN_AS,
            run_as_group=_RUN_AS,
            fs_group=_RUN_AS,
            seccomp_profile=k.SeccompProfile(type="RuntimeDefault"),
        ),
        tolerations=tolerations,
        automount_service_account_token=False,
    )


def _route(name: str, meta: k.ObjectMeta, settings: Settings) -> list[k.K8s]:
    serving = settings.serving
    pack = settings.packaging
    if pack.route == "ingress":
        annotations = {
            # the server answers 413 itself; the ingress must not refuse earlier (its default
            # is 1 MiB), so it gets the same limit
            "nginx.ingress.kubernetes.io/proxy-body-size": str(serving.max_body_bytes),
            "nginx.ingress.kubernetes.io/proxy-read-timeout": str(math.ceil(serving.timeout_s)),
        }
        path = k.HTTPIngressPath(
            path="/",
            path_type="Prefix",
            backend=k.IngressBackend(
                service=k.IngressServiceBackend(name=name, port=k.ServiceBackendPort(name="http"))
            ),
        )
        ingress = k.Ingress(
            api_version="networking.k8s.io/v1",
            kind="Ingress",
            metadata=msgspec.structs.replace(meta, annotations=annotations),
            spec=k.IngressSpec(
                ingress_class_name=pack.ingress_class,
                rules=[k.IngressRule(host=pack.host, http=k.HTTPIngressRuleValue(paths=[path]))],
            ),
        )
        return [ingress]
    route = k.HTTPRoute(
        api_version="gateway.networking.k8s.io/v1",
        kind="HTTPRoute",
        metadata=meta,
        spec=k.HTTPRouteSpec(
            parent_refs=[k.ParentReference(name=pack.gateway)],
            hostnames=[pack.host] if pack.host else [],
            rules=[
                k.HTTPRouteRule(
                    matches=[k.HTTPRouteMatch(path=k.HTTPPathMatch(type="PathPrefix", value="/"))],
                    backend_refs=[k.HTTPBackendRef(name=name, port=serving.port)],
                    timeouts=k.HTTPRouteTimeouts(request=_duration(serving.timeout_s + 1)),
                )
            ],
        ),
    )
    body_limit = k.ClientSettingsPolicy(
        api_version="gateway.nginx.org/v1alpha1",
        kind="ClientSettingsPolicy",
        metadata=meta,
        spec=k.ClientSettingsPolicySpec(
            target_ref=k.PolicyTargetReference(
                group="gateway.networking.k8s.io", kind="HTTPRoute", name=name
            ),
            body=k.ClientBody(max_size=str(serving.max_body_bytes)),
        ),
    )
    return [route, body_limit]


def _analysis(
    model: str, meta: k.ObjectMeta, *, image: str, settings: Settings, pod: k.PodSpec
) -> k.AnalysisTemplate:
    delivery = settings.delivery
    args = [
        "analyze",
        model,
        "--prometheus",
        "{{args.prometheus-url}}",
        "--stable",
        "rollouts_pod_template_hash={{args.stable-hash}}",
        "--candidate",
        "rollouts_pod_template_hash={{args.canary-hash}}",
        "--window",
        _duration(delivery.interval_s),
    ]
    analyze = k.Container(
        name="analyze",
        image=image,
        args=args,
        env=[k.EnvVar(name="MODELYARD_HOME", value="/tmp/modelyard")],
        env_from=pod.containers[0].env_from,
        resources=k.ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"}
        ),
        volume_mounts=[k.VolumeMount(name="tmp", mount_path="/tmp")],
        security_context=_hardened(),
    )
    job = k.JobSpec(
        backoff_limit=0,
        active_deadline_seconds=math.ceil(delivery.deadline_s),
        template=k.PodTemplateSpec(
            metadata=k.ObjectMeta(labels=dict(meta.labels)),
            spec=k.PodSpec(
                containers=[analyze],
                volumes=[k.Volume(name="tmp", empty_dir=k.EmptyDirVolumeSource())],
                restart_policy="Never",
                security_context=pod.security_context,
                automount_service_account_token=False,
            ),
        ),
    )
    return k.AnalysisTemplate(
        api_version="argoproj.io/v1alpha1",
        kind="AnalysisTemplate",
        metadata=msgspec.structs.replace(meta, name=f"{meta.name}-analysis"),
        spec=k.AnalysisTemplateSpec(
            args=[
                k.Argument(name="stable-hash"),
                k.Argument(name="canary-hash"),
                k.Argument(name="prometheus-url", value=settings.packaging.prometheus_url),
            ],
            # exit 0 pass; 1 fail and 2 inconclusive both fail the Job, and so the step
            metrics=[
                k.AnalysisMetric(
                    name="modelyard-analyze",
                    count=1,
                    failure_limit=0,
                    provider=k.MetricProvider(job=k.JobMetric(spec=job)),
                )
            ],
        ),
    )


def _rollout(name: str, meta: k.ObjectMeta, settings: Settings) -> k.Rollout:
    delivery = settings.delivery
    steps: list[k.SetWeightStep | k.PauseStep | k.AnalysisStep] = []
    analysis = k.AnalysisStep(
        analysis=k.RolloutAnalysis(
            templates=[k.RolloutAnalysisTemplate(template_name=f"{name}-analysis")],
            args=[
                k.AnalysisRunArgument(
                    name="stable-hash",
                    value_from=k.ArgumentValueFrom(pod_template_hash_value="Stable"),
                ),
                k.AnalysisRunArgument(
                    name="canary-hash",
                    value_from=k.ArgumentValueFrom(pod_template_hash_value="Latest"),
                ),
            ],
        )
    )
    for weight in _canary_weights(settings):
        steps.append(k.SetWeightStep(set_weight=weight))
        if weight >= 100:
            break
        # traffic at this weight for one interval, then the analysis of that interval; with
        # manual = true every step also waits for `kubectl argo rollouts promote`
        steps.append(k.PauseStep(pause=k.RolloutPause(duration=_duration(delivery.interval_s))))
        steps.append(analysis)
        if delivery.manual:
            steps.append(k.PauseStep(pause=k.RolloutPause()))
    return k.Rollout(
        api_version="argoproj.io/v1alpha1",
        kind="Rollout",
        metadata=meta,
        spec=k.RolloutSpec(
            replicas=settings.packaging.replicas,
            revision_history_limit=5,
            workload_ref=k.WorkloadRef(
                api_version="apps/v1", kind="Deployment", name=name, scale_down="progressively"
            ),
            strategy=k.RolloutStrategy(
                canary=k.CanaryStrategy(steps=steps, max_surge="25%", max_unavailable=0)
            ),
        ),
    )


def kubernetes_manifests(
    model: str,
    version: int,
    *,
    image: str,
    settings: Settings,
    gpu: bool | None = None,
    rollout: bool = True,
    model_image: str | None = None,
) -> list[k.K8s]:
    """The objects that serve ``model`` version ``version`` from ``image``.

    Args:
        model: the registered model's name.
        version: the version the pods fetch (an alias is resolved before, so a pod that
            restarts later serves the same version).
        image: the serving image (``modelyard build``), with its tag.
        settings: serving (port, limits, drain and grace), delivery (canary steps) and
            packaging (replicas, resources, route, secret) settings.
        gpu: one ``nvidia.com/gpu`` per pod (default: ``packaging.gpu``).
        rollout: add the Argo Rollouts ``Rollout`` and ``AnalysisTemplate`` (the HPA then
            scales the Rollout).
        model_image: mount this model image (``modelyard build --model``) as an image volume
            (Kubernetes 1.33+) instead of fetching the version in an init container.

    Raises:
        InvalidNameError: ``model`` cannot be a Kubernetes name.
        ConfigError: canary weights Argo Rollouts cannot express.
    """
    name = resource_name(model)
    pack = settings.packaging
    use_gpu = pack.gpu if gpu is None else gpu
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "server"}
    labels = {
        **selector,
        "app.kubernetes.io/part-of": "modelyard",
        "app.kubernetes.io/managed-by": "modelyard",
        "modelyard.dev/model": name,
    }
    meta = k.ObjectMeta(name=name, namespace=pack.namespace, labels=labels)
    pod = _pod(model, version, image=image, settings=settings, gpu=use_gpu, model_image=model_image)
    template_meta = k.ObjectMeta(
        labels={**labels, "modelyard.dev/version": str(version)},
        annotations={
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(settings.serving.port),
            "prometheus.io/path": "/metrics",
        },
    )
    deployment = k.Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=meta,
        spec=k.DeploymentSpec(
            replicas=pack.replicas,
            revision_history_limit=5,
            selector=k.LabelSelector(match_labels=selector),
            strategy=k.DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=k.RollingUpdateDeployment(max_surge="25%", max_unavailable=0),
            ),
            template=k.PodTemplateSpec(metadata=template_meta, spec=pod),
        ),
    )
    service = k.Service(
        api_version="v1",
        kind="Service",
        metadata=meta,
        spec=k.ServiceSpec(
            selector=selector,
            ports=[k.ServicePort(name="http", port=settings.serving.port, target_port="http")],
        ),
    )
    target = (
        k.CrossVersionObjectReference(api_version="argoproj.io/v1alpha1", kind="Rollout", name=name)
        if rollout
        else k.CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name=name)
    )
    hpa = k.HorizontalPodAutoscaler(
        api_version="autoscaling/v2",
        kind="HorizontalPodAutoscaler",
        metadata=meta,
        spec=k.HorizontalPodAutoscalerSpec(
            scale_target_ref=target,
            min_replicas=pack.replicas,
            max_replicas=max(pack.max_replicas, pack.replicas),
            metrics=[
                k.MetricSpec(
                    type="Resource",
                    resource=k.ResourceMetricSource(
                        name="cpu",
                        target=k.MetricTarget(
                            type="Utilization", average_utilization=pack.target_cpu_percent
                        ),
                    ),
                )
            ],
        ),
    )
    pdb = k.PodDisruptionBudget(
        api_version="policy/v1",
        kind="PodDisruptionBudget",
        metadata=meta,
        spec=k.PodDisruptionBudgetSpec(
            selector=k.LabelSelector(match_labels=selector), max_unavailable=1
        ),
    )
    objects: list[k.K8s] = [deployment, service, hpa, pdb, *_route(name, meta, settings)]
    if rollout:
        objects.append(_rollout(name, meta, settings))
        objects.append(_analysis(model, meta, image=image, settings=settings, pod=pod))
    return objects


def _plain(obj: k.K8s) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(obj)
    return data


def to_yaml(objects: Sequence[k.K8s]) -> str:
    """The objects as one multi-document YAML stream (for ``kubectl apply -f -``)."""
    from modelyard.packaging._yaml import dump_yaml_all

    return dump_yaml_all(_plain(o) for o in objects)


def manifest_files(objects: Sequence[k.K8s]) -> dict[str, str]:
    """One YAML file per object, named by its kind (``deployment.yaml``, ``rollout.yaml``)."""
    from modelyard.packaging._yaml import dump_yaml

    files: dict[str, str] = {}
    for obj in objects:
        data = _plain(obj)
        files[f"{str(data['kind']).lower()}.yaml"] = dump_yaml(data)
    return files
