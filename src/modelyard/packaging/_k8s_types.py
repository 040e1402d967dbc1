"""The Kubernetes, Argo Rollouts and Gateway API objects the generators emit, as typed Structs.

Only the fields modelyard sets are declared. Field names are snake_case here and camelCase in the
output (``rename="camel"``); unset optional fields are left out of the output
(``omit_defaults``), so ``apiVersion`` and ``kind`` are required fields, never defaults.
"""

from __future__ import annotations

import msgspec


class K8s(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base: camelCase keys, unset fields omitted."""


class ObjectMeta(K8s):
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)


class LabelSelector(K8s):
    match_labels: dict[str, str]


class HTTPGetAction(K8s):
    path: str
    port: int | str


class Probe(K8s):
    http_get: HTTPGetAction
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    failure_threshold: int | None = None


class EnvVar(K8s):
    name: str
    value: str


class SecretEnvSource(K8s):
    name: str
    optional: bool | None = None


class EnvFromSource(K8s):
    secret_ref: SecretEnvSource


class ResourceRequirements(K8s):
    requests: dict[str, str] = msgspec.field(default_factory=dict)
    limits: dict[str, str] = msgspec.field(default_factory=dict)


class ContainerPort(K8s):
    name: str
    container_port: int
    protocol: str = "TCP"


class VolumeMount(K8s):
    name: str
    mount_path: str
    read_only: bool | None = None


class Capabilities(K8s):
    drop: list[str]


class SecurityContext(K8s):
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    run_as_non_root: bool | None = None
    capabilities: Capabilities | None = None


class Container(K8s):
    name: str
    image: str
    image_pull_policy: str | None = None
    args: list[str] = msgspec.field(default_factory=list)
    env: list[EnvVar] = msgspec.field(default_factory=list)
    env_from: list[EnvFromSource] = msgspec.field(default_factory=list)
    ports: list[ContainerPort] = msgspec.field(default_factory=list)
    resources: ResourceRequirements | None = None
    volume_mounts: list[VolumeMount] = msgspec.field(default_factory=list)
    startup_probe: Probe | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    security_context: SecurityContext | None = None


class EmptyDirVolumeSource(K8s):
    size_limit: str | None = None


class ImageVolumeSource(K8s):
    reference: str
    pull_policy: str | None = None


class Volume(K8s):
    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    image: ImageVolumeSource | None = None


class Toleration(K8s):
    key: str
    operator: str
    effect: str


class SeccompProfile(K8s):
    type: str


class PodSecurityContext(K8s):
    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    fs_group: int | None = None
    seccomp_profile: SeccompProfile | None = None


class PodSpec(K8s):
    containers: list[Container]
    init_containers: list[Container] = msgspec.field(default_factory=list)
    volumes: list[Volume] = msgspec.field(default_factory=list)
    restart_policy: str | None = None
    termination_grace_period_seconds: int | None = None
    security_context: PodSecurityContext | None = None
    tolerations: list[Toleration] = msgspec.field(default_factory=list)
    automount_service_account_token: bool | None = None


class PodTemplateSpec(K8s):
    metadata: ObjectMeta
    spec: PodSpec


class RollingUpdateDeployment(K8s):
    max_surge: int | str
    max_unavailable: int | str


class DeploymentStrategy(K8s):
    type: str
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(K8s):
    selector: LabelSelector
    template: PodTemplateSpec
    replicas: int | None = None
    strategy: DeploymentStrategy | None = None
    revision_history_limit: int | None = None


class Deployment(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: DeploymentSpec


class ServicePort(K8s):
    name: str
    port: int
    target_port: int | str
    protocol: str = "TCP"


class ServiceSpec(K8s):
    selector: dict[str, str]
    ports: list[ServicePort]
    type: str = "ClusterIP"


class Service(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceSpec


class CrossVersionObjectReference(K8s):
    api_version: str
    kind: str
    name: str


class MetricTarget(K8s):
    type: str
    average_utilization: int


class ResourceMetricSource(K8s):
    name: str
    target: MetricTarget


class MetricSpec(K8s):
    type: str
    resource: ResourceMetricSource


class HorizontalPodAutoscalerSpec(K8s):
    scale_target_ref: CrossVersionObjectReference
    min_replicas: int
    max_replicas: int
    metrics: list[MetricSpec]


class HorizontalPodAutoscaler(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: HorizontalPodAutoscalerSpec


class PodDisruptionBudgetSpec(K8s):
    selector: LabelSelector
    max_unavailable: int | str


class PodDisruptionBudget(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: PodDisruptionBudgetSpec


class ServiceBackendPort(K8s):
    name: str


class IngressServiceBackend(K8s):
    name: str
    port: ServiceBackendPort


class IngressBackend(K8s):
    service: IngressServiceBackend


class HTTPIngressPath(K8s):
    path: str
    path_type: str
    backend: IngressBackend


class HTTPIngressRuleValue(K8s):
    paths: list[HTTPIngressPath]


class IngressRule(K8s):
    http: HTTPIngressRuleValue
    host: str | None = None


class IngressSpec(K8s):
    rules: list[IngressRule]
    ingress_class_name: str | None = None


class Ingress(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: IngressSpec


# -- Gateway API ---------------------------------------------------------------------------------


class ParentReference(K8s):
    name: str
    namespace: str | None = None


class HTTPPathMatch(K8s):
    type: str
    value: str


class HTTPRouteMatch(K8s):
    path: HTTPPathMatch


class HTTPBackendRef(K8s):
    name: str
    port: int


class HTTPRouteTimeouts(K8s):
    request: str


class HTTPRouteRule(K8s):
    matches: list[HTTPRouteMatch]
    backend_refs: list[HTTPBackendRef]
    timeouts: HTTPRouteTimeouts | None = None


class HTTPRouteSpec(K8s):
    parent_refs: list[ParentReference]
    rules: list[HTTPRouteRule]
    hostnames: list[str] = msgspec.field(default_factory=list)


class HTTPRoute(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: HTTPRouteSpec


class PolicyTargetReference(K8s):
    group: str
    kind: str
    name: str


class ClientBody(K8s):
    max_size: str


class ClientSettingsPolicySpec(K8s):
    target_ref: PolicyTargetReference
    body: ClientBody


class ClientSettingsPolicy(K8s):
    """NGINX Gateway Fabric's policy for the request-body limit (the Gateway API has none)."""

    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: ClientSettingsPolicySpec


# -- Argo Rollouts -------------------------------------------------------------------------------


class WorkloadRef(K8s):
    api_version: str
    kind: str
    name: str
    scale_down: str | None = None


class RolloutPause(K8s):
    duration: str | None = None


class ArgumentValueFrom(K8s):
    pod_template_hash_value: str


class AnalysisRunArgument(K8s):
    name: str
    value: str | None = None
    value_from: ArgumentValueFrom | None = None


class RolloutAnalysisTemplate(K8s):
    template_name: str


class RolloutAnalysis(K8s):
    templates: list[RolloutAnalysisTemplate]
    args: list[AnalysisRunArgument] = msgspec.field(default_factory=list)


class SetWeightStep(K8s):
    set_weight: int


class PauseStep(K8s):
    pause: RolloutPause


class AnalysisStep(K8s):
    analysis: RolloutAnalysis


class CanaryStrategy(K8s):
    steps: list[SetWeightStep | PauseStep | AnalysisStep]
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None


class RolloutStrategy(K8s):
    canary: CanaryStrategy


class RolloutSpec(K8s):
    workload_ref: WorkloadRef
    strategy: RolloutStrategy
    replicas: int | None = None
    selector: LabelSelector | None = None
    revision_history_limit: int | None = None


class Rollout(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: RolloutSpec


class Argument(K8s):
    name: str
    value: str | None = None


class JobSpec(K8s):
    template: PodTemplateSpec
    backoff_limit: int | None = None
    active_deadline_seconds: int | None = None


class JobMetric(K8s):
    spec: JobSpec
    metadata: ObjectMeta | None = None


class MetricProvider(K8s):
    job: JobMetric


class AnalysisMetric(K8s):
    name: str
    provider: MetricProvider
    count: int | None = None
    failure_limit: int | None = None


class AnalysisTemplateSpec(K8s):
    metrics: list[AnalysisMetric]
    args: list[Argument] = msgspec.field(default_factory=list)


class AnalysisTemplate(K8s):
    api_version: str
    kind: str
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec
