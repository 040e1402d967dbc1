"""The metadata schema: one SQLAlchemy Core ``MetaData`` shared by SQLite and PostgreSQL.

Core tables, not ORM classes: the tracking hot path inserts rows in batches and the registry
needs exact control over locking. Times are UNIX seconds (float). Alembic migrations in
``modelyard/store/migrations`` must match this module; a test compares them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from modelyard.store.keys import MAX_KEY, MAX_VALUE

__all__ = ["metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NAME = MAX_KEY  # max length of model, experiment, alias, param and tag names
VALUE = MAX_VALUE  # max length of a param or tag value

# ---------------------------------------------------------------- tracking
experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(NAME), nullable=True),
    Column("kind", String(16), nullable=False, default="run"),  # run | pipeline | step
    Column("status", String(16), nullable=False),  # RUNNING | FINISHED | FAILED | KILLED
    Column("parent_run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float, nullable=True),
    Column("user", String(NAME), nullable=True),
    Column("source", String(1024), nullable=True),  # entry point: script path or module:function
    Column("git_commit", String(64), nullable=True),
    Column("git_branch", String(NAME), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("git_diff_sha256", String(64), nullable=True),
    # python, platform, cpu, gpu, packages {name: version}
    Column("environment", JSON, nullable=True),
    # which process runs it, to find runs left RUNNING by a dead process (tracking.liveness)
    Column("process_host", String(NAME), nullable=True),  # hostname/boot id/pid namespace
    Column("process_pid", String(64), nullable=True),  # pid:start time
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    # finding RUNNING runs whose process died (tracking.liveness) on every new top-level run
    Index("ix_runs_status", "status"),
    # runs lists are newest first: the first page reads the index, not a sort of every run
    Index("ix_runs_start_time", "start_time"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(NAME), primary_key=True),
    Column("value", String(VALUE), nullable=False),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(NAME), primary_key=True),
    Column("value", String(VALUE), nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(NAME), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False, default=0),
    Column("timestamp", Float, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

# The last value of each metric per run: what search filters and orders on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(NAME), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("context", String(64), nullable=True),  # train | test | validation | ...
    Column("digest", String(64), nullable=False),  # sha256 of the content
    Column("rows", BigInteger, nullable=True),
    Column("schema", JSON, nullable=True),  # {column: dtype}
    Column("source", String(1024), nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_datasets_run", "run_id"),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),  # logical name inside the run
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
)

# ---------------------------------------------------------------- registry
models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # the last version number handed out; bumped under a row lock so numbers stay gap-free
    Column("last_version", Integer, nullable=False, default=0),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(NAME), primary_key=True),
    Column("value", String(VALUE), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("source_commit", String(64), nullable=True),
    Column("flavor", String(64), nullable=True),
    # where the package lives (artifact store URI of its manifest) and the manifest's sha256
    Column("artifact_uri", String(2048), nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("signature", JSON, nullable=True),
    # free structured data: gate verdict, metrics, refs
    Column("extra", JSON, nullable=True),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(NAME), nullable=True),
    # the version's data contract and reference profile: sha256 of artifact store objects
    Column("contract_sha256", String(64), nullable=True),
    Column("profile_sha256", String(64), nullable=True),
    UniqueConstraint("model_id", "version"),
)

model_version_files = Table(
    "model_version_files",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("path", String(1024), primary_key=True),  # path inside the package
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column(
        "version_id",
        Integer,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(NAME), primary_key=True),
    Column("value", String(VALUE), nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(NAME), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(NAME), nullable=True),
    ForeignKeyConstraint(
        ["model_id", "version"], ["model_versions.model_id", "model_versions.version"]
    ),
)

# Every alias move, so "which version was in production on <date>" has an answer.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("alias", String(NAME), nullable=False),
    Column("from_version", Integer, nullable=True),  # None: the alias was new
    Column("to_version", Integer, nullable=True),  # None: the alias was removed
    Column("at", Float, nullable=False),
    Column("actor", String(NAME), nullable=True),
    Column("reason", Text, nullable=True),
    # set | delete | rollback: rollback pops the history, so repeated rollbacks walk back in time
    Column("action", String(16), nullable=False, server_default="set"),
    Index("ix_alias_events_model_alias_at", "model_id", "alias", "at"),
)

# ---------------------------------------------------------------- the store itself
# facts about the store as key/value rows, e.g. ``registry_id`` (written in mirrored git tags)
store_info = Table(
    "store_info",
    metadata,
    Column("key", String(NAME), primary_key=True),
    Column("value", String(VALUE), nullable=False),
)

# ---------------------------------------------------------------- pipelines
# A step's cached result: key = sha256(step code, params, input fingerprints).
step_cache = Table(
    "step_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("pipeline", String(NAME), nullable=False),
    Column("step", String(NAME), nullable=False),
    Column("outputs", JSON, nullable=False),  # serialised output refs (artifact sha256, kind)
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),  # producing step run
    Column("created_at", Float, nullable=False),
)

# ---------------------------------------------------------------- delivery
# A progressive rollout of a candidate version beside the stable one (modelyard.delivery).
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(NAME), nullable=False),
    # the model's name while the rollout is not finished: one active rollout per model
    Column("active_model", String(NAME), nullable=True, unique=True),
    Column("stable_version", Integer, nullable=False),
    Column("candidate_version", Integer, nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step_started_at", Float, nullable=True),
    Column("config", JSON, nullable=False),  # thresholds, interval, manual, key, ...
    Column("command", String(16), nullable=True),  # a steering request not yet applied
    Column("reason", Text, nullable=True),
    Column("evidence", JSON, nullable=True),  # the last analysis
    Column("generation", Integer, nullable=False),  # bumped by every change (compare-and-set)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("created_by", String(NAME), nullable=True),
    Index("ix_rollouts_model_created_at", "model", "created_at"),
)

rollout_steps = Table(
    "rollout_steps",
    metadata,
    Column(
        "rollout_id", String(32), ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("idx", Integer, primary_key=True),
    Column("weight", Float, nullable=False),  # the candidate's share of traffic, percent
    Column("mode", String(16), nullable=False),  # split | sticky | mirror | preview | switched
    Column("pause_s", Float, nullable=False),
    Column("approval", Boolean, nullable=False),
    Column("analysis", Boolean, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("outcome", String(32), nullable=True),
)

# Every transition, analysis and steering command of a rollout, in order.
rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", String(32), ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # transition | analysis | command | load_test
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=True),
    Column("step_index", Integer, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("actor", String(NAME), nullable=True),
    Column("detail", JSON, nullable=True),
    Index("ix_rollout_events_rollout_id_id", "rollout_id", "id"),
)

# ---------------------------------------------------------------- monitoring
# One row per (version, window) that `modelyard monitor` scored: the verdict and its evidence
# (per-feature scores, quality, violations: counts and statistics only, never rows).
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("window_end", Float, nullable=False),
    # ok | crossed | insufficient_data | no_verdict
    Column("verdict", String(32), nullable=False),
    Column("n_rows", BigInteger, nullable=False),
    Column("drift_score", Float, nullable=True),
    Column("signals", JSON, nullable=False),  # the crossed signals, naming features
    Column("summary", JSON, nullable=False),
    Column("error", Text, nullable=True),  # why there is no verdict
    Column("created_at", Float, nullable=False),
    UniqueConstraint("model", "version", "window_start", "window_end"),
    Index("ix_monitor_results_model_version_window_end", "model", "version", "window_end"),
)

# Every retraining the policy started: which window and drift, which run, which new version.
monitor_triggers = Table(
    "monitor_triggers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("result_id", Integer, ForeignKey("monitor_results.id"), nullable=True),
    Column("window_start", Float, nullable=False),
    Column("window_end", Float, nullable=False),
    Column("status", String(32), nullable=False),  # started | succeeded | failed
    Column("run_id", String(32), nullable=True),  # the pipeline run
    Column("new_version", Integer, nullable=True),  # what the gate registered, if anything
    Column("evidence", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Column("at", Float, nullable=False),
    Index("ix_monitor_triggers_model_at", "model", "at"),
)
