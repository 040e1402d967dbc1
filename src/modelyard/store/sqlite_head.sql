-- revision 0007
-- The head schema of a SQLite store, to create a new store without Alembic (MetadataStore.open).
-- Generated from what the Alembic migrations build on an empty SQLite file (sqlite_master, in
-- creation order). tests/store/test_sqlite_head.py checks that it still matches, and rewrites
-- it when run with MODELYARD_UPDATE_SQLITE_HEAD=1. Do not edit by hand.

CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE experiments (
	id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	created_at FLOAT NOT NULL, 
	CONSTRAINT pk_experiments PRIMARY KEY (id), 
	CONSTRAINT uq_experiments_name UNIQUE (name)
);

CREATE TABLE models (
	id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	description TEXT, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	last_version INTEGER NOT NULL, 
	CONSTRAINT pk_models PRIMARY KEY (id), 
	CONSTRAINT uq_models_name UNIQUE (name)
);

CREATE TABLE alias_events (
	id INTEGER NOT NULL, 
	model_id INTEGER NOT NULL, 
	alias VARCHAR(255) NOT NULL, 
	from_version INTEGER, 
	to_version INTEGER, 
	at FLOAT NOT NULL, 
	actor VARCHAR(255), 
	reason TEXT, action VARCHAR(16) DEFAULT 'set' NOT NULL, 
	CONSTRAINT pk_alias_events PRIMARY KEY (id), 
	CONSTRAINT fk_alias_events_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);

CREATE INDEX ix_alias_events_model_alias_at ON alias_events (model_id, alias, at);

CREATE TABLE model_tags (
	model_id INTEGER NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value VARCHAR(8000) NOT NULL, 
	CONSTRAINT pk_model_tags PRIMARY KEY (model_id, "key"), 
	CONSTRAINT fk_model_tags_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);

CREATE TABLE runs (
	id VARCHAR(32) NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	name VARCHAR(255), 
	kind VARCHAR(16) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	parent_run_id VARCHAR(32), 
	start_time FLOAT NOT NULL, 
	end_time FLOAT, 
	user VARCHAR(255), 
	source VARCHAR(1024), 
	git_commit VARCHAR(64), 
	git_branch VARCHAR(255), 
	git_dirty BOOLEAN, 
	git_diff_sha256 VARCHAR(64), 
	environment JSON, process_host VARCHAR(255), process_pid VARCHAR(64), 
	CONSTRAINT pk_runs PRIMARY KEY (id), 
	CONSTRAINT fk_runs_experiment_id_experiments FOREIGN KEY(experiment_id) REFERENCES experiments (id), 
	CONSTRAINT fk_runs_parent_run_id_runs FOREIGN KEY(parent_run_id) REFERENCES runs (id)
);

CREATE INDEX ix_runs_experiment_start ON runs (experiment_id, start_time);

CREATE TABLE datasets (
	id INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	context VARCHAR(64), 
	digest VARCHAR(64) NOT NULL, 
	rows BIGINT, 
	schema JSON, 
	source VARCHAR(1024), 
	created_at FLOAT NOT NULL, 
	CONSTRAINT pk_datasets PRIMARY KEY (id), 
	CONSTRAINT fk_datasets_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_datasets_run ON datasets (run_id);

CREATE TABLE latest_metrics (
	run_id VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value FLOAT NOT NULL, 
	step BIGINT NOT NULL, 
	timestamp FLOAT NOT NULL, 
	CONSTRAINT pk_latest_metrics PRIMARY KEY (run_id, "key"), 
	CONSTRAINT fk_latest_metrics_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_latest_metrics_key_value ON latest_metrics ("key", value);

CREATE TABLE metrics (
	id INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value FLOAT NOT NULL, 
	step BIGINT NOT NULL, 
	timestamp FLOAT NOT NULL, 
	CONSTRAINT pk_metrics PRIMARY KEY (id), 
	CONSTRAINT fk_metrics_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, "key", step);

CREATE TABLE model_versions (
	id INTEGER NOT NULL, 
	model_id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	run_id VARCHAR(32), 
	source_commit VARCHAR(64), 
	flavor VARCHAR(64), 
	artifact_uri VARCHAR(2048) NOT NULL, 
	manifest_sha256 VARCHAR(64) NOT NULL, 
	signature JSON, 
	extra JSON, 
	description TEXT, 
	created_at FLOAT NOT NULL, 
	created_by VARCHAR(255), contract_sha256 VARCHAR(64), profile_sha256 VARCHAR(64), 
	CONSTRAINT pk_model_versions PRIMARY KEY (id), 
	CONSTRAINT fk_model_versions_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE, 
	CONSTRAINT fk_model_versions_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id), 
	CONSTRAINT uq_model_versions_model_id_version UNIQUE (model_id, version)
);

CREATE TABLE params (
	run_id VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value VARCHAR(8000) NOT NULL, 
	CONSTRAINT pk_params PRIMARY KEY (run_id, "key"), 
	CONSTRAINT fk_params_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE TABLE run_artifacts (
	run_id VARCHAR(32) NOT NULL, 
	path VARCHAR(1024) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	size_bytes BIGINT NOT NULL, 
	CONSTRAINT pk_run_artifacts PRIMARY KEY (run_id, path), 
	CONSTRAINT fk_run_artifacts_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE TABLE run_tags (
	run_id VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value VARCHAR(8000) NOT NULL, 
	CONSTRAINT pk_run_tags PRIMARY KEY (run_id, "key"), 
	CONSTRAINT fk_run_tags_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE TABLE step_cache (
	cache_key VARCHAR(64) NOT NULL, 
	pipeline VARCHAR(255) NOT NULL, 
	step VARCHAR(255) NOT NULL, 
	outputs JSON NOT NULL, 
	run_id VARCHAR(32), 
	created_at FLOAT NOT NULL, 
	CONSTRAINT pk_step_cache PRIMARY KEY (cache_key), 
	CONSTRAINT fk_step_cache_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id)
);

CREATE TABLE aliases (
	model_id INTEGER NOT NULL, 
	alias VARCHAR(255) NOT NULL, 
	version INTEGER NOT NULL, 
	updated_at FLOAT NOT NULL, 
	updated_by VARCHAR(255), 
	CONSTRAINT pk_aliases PRIMARY KEY (model_id, alias), 
	CONSTRAINT fk_aliases_model_id_model_versions FOREIGN KEY(model_id, version) REFERENCES model_versions (model_id, version), 
	CONSTRAINT fk_aliases_model_id_models FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);

CREATE TABLE model_version_files (
	version_id INTEGER NOT NULL, 
	path VARCHAR(1024) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	size_bytes BIGINT NOT NULL, 
	CONSTRAINT pk_model_version_files PRIMARY KEY (version_id, path), 
	CONSTRAINT fk_model_version_files_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id) ON DELETE CASCADE
);

CREATE TABLE model_version_tags (
	version_id INTEGER NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value VARCHAR(8000) NOT NULL, 
	CONSTRAINT pk_model_version_tags PRIMARY KEY (version_id, "key"), 
	CONSTRAINT fk_model_version_tags_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id) ON DELETE CASCADE
);

CREATE INDEX ix_runs_status ON runs (status);

CREATE TABLE rollouts (
	id VARCHAR(32) NOT NULL, 
	model VARCHAR(255) NOT NULL, 
	active_model VARCHAR(255), 
	stable_version INTEGER NOT NULL, 
	candidate_version INTEGER NOT NULL, 
	strategy VARCHAR(32) NOT NULL, 
	state VARCHAR(32) NOT NULL, 
	step_index INTEGER NOT NULL, 
	step_started_at FLOAT, 
	config JSON NOT NULL, 
	command VARCHAR(16), 
	reason TEXT, 
	evidence JSON, 
	generation INTEGER NOT NULL, 
	created_at FLOAT NOT NULL, 
	updated_at FLOAT NOT NULL, 
	created_by VARCHAR(255), 
	CONSTRAINT pk_rollouts PRIMARY KEY (id), 
	CONSTRAINT uq_rollouts_active_model UNIQUE (active_model)
);

CREATE INDEX ix_rollouts_model_created_at ON rollouts (model, created_at);

CREATE TABLE rollout_steps (
	rollout_id VARCHAR(32) NOT NULL, 
	idx INTEGER NOT NULL, 
	weight FLOAT NOT NULL, 
	mode VARCHAR(16) NOT NULL, 
	pause_s FLOAT NOT NULL, 
	approval BOOLEAN NOT NULL, 
	analysis BOOLEAN NOT NULL, 
	started_at FLOAT, 
	finished_at FLOAT, 
	outcome VARCHAR(32), 
	CONSTRAINT pk_rollout_steps PRIMARY KEY (rollout_id, idx), 
	CONSTRAINT fk_rollout_steps_rollout_id_rollouts FOREIGN KEY(rollout_id) REFERENCES rollouts (id) ON DELETE CASCADE
);

CREATE TABLE rollout_events (
	id INTEGER NOT NULL, 
	rollout_id VARCHAR(32) NOT NULL, 
	at FLOAT NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	from_state VARCHAR(32), 
	to_state VARCHAR(32), 
	step_index INTEGER, 
	outcome VARCHAR(32), 
	actor VARCHAR(255), 
	detail JSON, 
	CONSTRAINT pk_rollout_events PRIMARY KEY (id), 
	CONSTRAINT fk_rollout_events_rollout_id_rollouts FOREIGN KEY(rollout_id) REFERENCES rollouts (id) ON DELETE CASCADE
);

CREATE INDEX ix_rollout_events_rollout_id_id ON rollout_events (rollout_id, id);

CREATE TABLE monitor_results (
	id INTEGER NOT NULL, 
	model VARCHAR(255) NOT NULL, 
	version INTEGER NOT NULL, 
	window_start FLOAT NOT NULL, 
	window_end FLOAT NOT NULL, 
	verdict VARCHAR(32) NOT NULL, 
	n_rows BIGINT NOT NULL, 
	drift_score FLOAT, 
	signals JSON NOT NULL, 
	summary JSON NOT NULL, 
	error TEXT, 
	created_at FLOAT NOT NULL, 
	CONSTRAINT pk_monitor_results PRIMARY KEY (id), 
	CONSTRAINT uq_monitor_results_model_version_window_start_window_end UNIQUE (model, version, window_start, window_end)
);

CREATE INDEX ix_monitor_results_model_version_window_end ON monitor_results (model, version, window_end);

CREATE TABLE monitor_triggers (
	id INTEGER NOT NULL, 
	model VARCHAR(255) NOT NULL, 
	version INTEGER NOT NULL, 
	result_id INTEGER, 
	window_start FLOAT NOT NULL, 
	window_end FLOAT NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	run_id VARCHAR(32), 
	new_version INTEGER, 
	evidence JSON NOT NULL, 
	error TEXT, 
	at FLOAT NOT NULL, 
	CONSTRAINT pk_monitor_triggers PRIMARY KEY (id), 
	CONSTRAINT fk_monitor_triggers_result_id_monitor_results FOREIGN KEY(result_id) REFERENCES monitor_results (id)
);

CREATE INDEX ix_monitor_triggers_model_at ON monitor_triggers (model, at);

CREATE INDEX ix_runs_start_time ON runs (start_time);

CREATE TABLE store_info (
	"key" VARCHAR(255) NOT NULL, 
	value VARCHAR(8000) NOT NULL, 
	CONSTRAINT pk_store_info PRIMARY KEY ("key")
);
