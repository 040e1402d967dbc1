"""The Workspace: one composition root over the stores, the registry and tracking.

A :class:`Workspace` is opened once from :class:`~modelyard.config.Settings` and owns the
metadata store, the artifact store, the :class:`~modelyard.registry.registry.Registry`, the
:class:`~modelyard.tracking.client.TrackingClient` and the local
:class:`~modelyard.registry.cache.PackageCache`. It offers the operations that span several
capabilities, so the CLI, the demo, the UI, delivery and monitoring wire nothing themselves::

    from modelyard import Workspace, load_settings

    ws = Workspace.open(load_settings())
    version = ws.resolve("churn@production")          # NAME, NAME@ALIAS, NAME:VERSION
    folder = ws.fetch(version)                          # local package, every file verified
    outcome = ws.gate_and_register("churn", model, test_frame, target="label",
                                   contract=contract, profile=profile)
    result = ws.run_pipeline(training, {"C": 0.5})

Opening a Workspace checks the metadata store's schema; everything else is built on first use,
so a command that only resolves a version never imports the tracking or pipeline code.

The fluent API (``modelyard.start_run``, ``modelyard.log_metric``, ...) logs to the *active*
workspace's tracking client: the one given to :func:`set_workspace`, else the current project's,
opened by :func:`get_workspace` on first use (this module is the edge that reads settings; the
capability packages below it never do)::

    modelyard.set_workspace(Workspace.open(load_settings(home="/tmp/scratch")))
    with modelyard.start_run(run_name="trial"):
        modelyard.log_metric("loss", 0.25)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

if TYPE_CHECKING:
    from modelyard.config import Settings
    from modelyard.evaluate.policy import GatePolicy
    from modelyard.evaluate.register import GateOutcome, RegisterOptions
    from modelyard.pipelines.graph import Pipeline
    from modelyard.pipelines.runner import PipelineResult
    from modelyard.registry.cache import PackageCache
    from modelyard.registry.registry import ModelVersion, Registry
    from modelyard.store.artifacts import ArtifactStore
    from modelyard.store.db import MetadataStore
    from modelyard.tracking.client import TrackingClient

__all__ = ["Workspace", "get_workspace", "set_workspace"]


class Workspace:
    """The stores, registry, tracking client and package cache of one project.

    Use :meth:`open`; the constructor only stores what it is given (tests pass their own
    stores).

    Args:
        settings: the project's settings (read once, at the edge).
        metadata_store: the SQL metadata store.
        artifact_store: the content-addressed artifact store.
    """

    def __init__(
        self,
        settings: Settings,
        metadata_store: MetadataStore,
        artifact_store: ArtifactStore,
    ) -> None:
        self.settings = settings
        self.metadata_store = metadata_store
        self.artifact_store = artifact_store
        self._registry: Registry | None = None
        self._tracking: TrackingClient | None = None
        self._package_cache: PackageCache | None = None

    @classmethod
    def open(cls, settings: Settings | None = None) -> Workspace:
        """Open the stores that ``settings`` name (default: the current project's settings).

        Raises:
            SchemaOutdatedError: the metadata store needs ``modelyard db upgrade``.
            ConfigError: the settings cannot be read.
        """
        if settings is None:
            from modelyard.config import load_settings

            settings = load_settings()
        from modelyard.store.artifacts import ArtifactStore
        from modelyard.store.db import MetadataStore

        return cls(
            settings,
            MetadataStore.from_settings(settings),
            ArtifactStore.from_settings(settings),
        )

    def __repr__(self) -> str:
        return (
            f"Workspace(db={self.metadata_store.safe_url!r}, project={self.settings.project_root})"
        )

    # ------------------------------------------------------------------ parts
    @property
    def registry(self) -> Registry:
        """The model registry on this workspace's stores."""
        if self._registry is None:
            from modelyard.registry.registry import Registry

            s = self.settings
            self._registry = Registry(
                self.metadata_store,
                self.artifact_store,
                user=s.resolved_user,
                git_tags=s.git_tags,
                project_root=s.project_root,
            )
        return self._registry

    @property
    def tracking(self) -> TrackingClient:
        """The tracking client on this workspace's stores."""
        if self._tracking is None:
            from modelyard.tracking.client import TrackingClient

            s = self.settings
            self._tracking = TrackingClient(
                self.metadata_store,
                self.artifact_store,
                user=s.resolved_user,
                project_root=s.project_root,
                default_experiment=s.experiment,
            )
        return self._tracking

    @property
    def package_cache(self) -> PackageCache:
        """The local cache of model packages, ``<home>/cache/packages``."""
        if self._package_cache is None:
            from modelyard.registry.cache import PackageCache

            self._package_cache = PackageCache.from_settings(self.settings)
        return self._package_cache

    # ------------------------------------------------------------------ model versions
    def resolve(self, ref: str) -> ModelVersion:
        """The version ``ref`` names: ``NAME`` (latest), ``NAME@ALIAS`` or ``NAME:VERSION``.

        Raises:
            InvalidNameError: an illegal name or alias.
            NotFoundError: no such model, version or alias.
        """
        return self.registry.resolve(ref)

    def fetch(self, ref: str | ModelVersion) -> Path:
        """The local folder of a version's package, downloaded into the package cache if needed.

        Every file of a cached copy is checked against the sha256 the metadata store records
        for the version before it is used; a changed or partial copy is downloaded again (and
        a warning logged). Downloads are verified and renamed into place atomically.

        Args:
            ref: a :class:`ModelVersion`, or ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION``.

        Raises:
            NotFoundError: no such model, version or alias.
            IntegrityError: the artifact store holds other bytes than were registered.
        """
        version = self.resolve(ref) if isinstance(ref, str) else ref
        return self.package_cache.fetch(self.registry, version)

    # ------------------------------------------------------------------ operations
    def gate_and_register(
        self,
        name: str,
        candidate: Any,
        test_frame: Any,
        *,
        policy: GatePolicy | None = None,
        **options: Unpack[RegisterOptions],
    ) -> GateOutcome:
        """Gate ``candidate`` against ``name@production``; register it with its verdict if it
        passes.

        The version gets the verdict (``extra["gate"]``), the ``contract`` and the reference
        ``profile`` (``ModelVersion.contract`` / ``.reference_profile``) and the policy's alias
        in one transaction; a refused candidate registers nothing::

            ws.gate_and_register("churn", model, test, target="label", contract=contract,
                                 profile=profile, run_id=run.id, explain_rows=200)

        Args:
            name: the model name.
            candidate: the fitted model.
            test_frame: the test rows.
            policy: the gate policy (default: ``[tool.modelyard.gate]`` of the settings).
            **options: the options of
                :func:`~modelyard.evaluate.register.evaluate_and_register`, typed by
                :class:`~modelyard.evaluate.register.RegisterOptions`: ``target``, ``y``,
                ``contract``, ``profile``, ``package``, ``run_id``, ``extra``, ``signature``,
                ``flavor``, ``description``, ``tags``, ``production``, ``clock``, ``reason``,
                ``save``, ``explain_rows`` (None: the policy's).

        Raises:
            GateFailed: a rule failed; nothing was registered.
        """
        from modelyard.evaluate.register import evaluate_and_register

        return evaluate_and_register(
            self.registry,
            name,
            candidate,
            test_frame,
            policy=policy if policy is not None else self.gate_policy(),
            **options,
        )

    def gate_policy(self) -> GatePolicy:
        """The gate policy of ``[tool.modelyard.gate]`` (the defaults when there is none)."""
        from modelyard.evaluate.policy import GatePolicy

        return GatePolicy.from_settings(self.settings.gate)

    def run_pipeline(
        self, pipeline: Pipeline, params: Mapping[str, Any] | None = None, **options: Any
    ) -> PipelineResult:
        """Run ``pipeline`` on this workspace's stores and tracking client; every run is tracked.

        Args:
            pipeline: the pipeline (``@modelyard.pipeline``).
            params: its parameters.
            **options: the runner's options (``force``, ``executor``, ``max_parallel``,
                ``resume``, ``if_changed``, ``progress``, ...), see
                :func:`modelyard.pipelines.runner.run_pipeline`.

        Raises:
            PipelineError: the graph is invalid or a step failed.
        """
        from modelyard.pipelines.runner import run_pipeline

        return run_pipeline(
            pipeline,
            params,
            settings=self.settings,
            metadata_store=self.metadata_store,
            artifact_store=self.artifact_store,
            tracking=self.tracking,
            **options,
        )


_active_lock = threading.Lock()
_active: Workspace | None = None


def set_workspace(workspace: Workspace | None) -> None:
    """Make ``workspace`` the active one: the fluent API logs to its tracking client from now on.

    ``None`` forgets it; the next :func:`get_workspace` opens the current project's again. Runs
    already active stay on the client that started them; end them first.
    """
    global _active
    from modelyard.tracking import fluent

    with _active_lock:
        _active = workspace
    fluent.set_client_factory(_fluent_client)
    fluent.set_client(None)  # the next fluent call asks get_workspace() for its client


def get_workspace() -> Workspace:
    """The active workspace: the one :func:`set_workspace` gave, else the current project's
    (``Workspace.open()``: :func:`~modelyard.config.load_settings` from the working folder),
    opened once, on first use.

    Raises:
        ConfigError: the project's settings cannot be read.
        SchemaOutdatedError: the metadata store needs ``modelyard db upgrade``.
    """
    global _active
    with _active_lock:
        if _active is None:
            _active = Workspace.open()
        return _active


def _fluent_client() -> TrackingClient:
    """The active workspace's tracking client: the fluent API's client factory."""
    return get_workspace().tracking
