-- V001: the initial AdFame schema (DESIGN §5) in the `adfame` database.
-- Why: every stage (ETL, inference, feedback, retraining, canary, monitoring) shares these tables,
-- so their invariants live here as constraints rather than in each caller. Applied once by
-- adfame.db.upgrade(), inside one transaction; never edit it after release, add a new V file instead.

-- ---------------------------------------------------------------------------------------------
-- Dataset ETL (nightly_etl DAG)
-- ---------------------------------------------------------------------------------------------

-- One curated, immutable dataset version: its manifest in the object store and its row counts.
CREATE TABLE dataset_snapshots (
    snapshot_id         text PRIMARY KEY CHECK (snapshot_id <> ''),
    created_at          timestamptz NOT NULL DEFAULT now(),
    manifest_object_key text NOT NULL CHECK (manifest_object_key <> ''),
    row_counts          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(row_counts) = 'object'),
    stats               jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(stats) = 'object')
);

-- One execution of the ETL; snapshot_id is filled in when the run publishes a snapshot.
CREATE TABLE etl_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_run_id  text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'failed')),
    snapshot_id text REFERENCES dataset_snapshots (snapshot_id) ON DELETE SET NULL,
    stats       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(stats) = 'object'),
    CHECK (finished_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX etl_runs_started_at_idx ON etl_runs (started_at DESC);
CREATE INDEX etl_runs_dag_run_id_idx ON etl_runs (dag_run_id);

-- One curated clip of one snapshot. The unique key makes a re-run of the load idempotent
-- (INSERT ... ON CONFLICT DO NOTHING loads nothing twice). The snapshot foreign key is deferred,
-- so a loader may insert clips and their snapshot row in either order within one transaction.
CREATE TABLE dataset_clips (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    snapshot_id        text NOT NULL
                       REFERENCES dataset_snapshots (snapshot_id) ON DELETE CASCADE
                       DEFERRABLE INITIALLY DEFERRED,
    etl_run_id         bigint NOT NULL REFERENCES etl_runs (id) ON DELETE RESTRICT,
    source             text NOT NULL CHECK (source <> ''),
    clip_id            text NOT NULL CHECK (clip_id <> ''),
    source_video_id    text NOT NULL CHECK (source_video_id <> ''),
    caption            text NOT NULL,
    normalized_caption text NOT NULL,
    tags               text[] NOT NULL DEFAULT '{}',
    aesthetic_score    double precision,
    motion_score       double precision,
    temporal_score     double precision,
    duration_s         double precision NOT NULL CHECK (duration_s > 0),
    fps                double precision NOT NULL CHECK (fps > 0),
    width              integer NOT NULL CHECK (width > 0),
    height             integer NOT NULL CHECK (height > 0),
    split              text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    object_key         text NOT NULL CHECK (object_key <> ''),
    checksum_sha256    text NOT NULL CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    frames             integer CHECK (frames > 0),
    CONSTRAINT dataset_clips_snapshot_clip_key UNIQUE (snapshot_id, source, clip_id)
);
CREATE INDEX dataset_clips_snapshot_split_idx ON dataset_clips (snapshot_id, split);
CREATE INDEX dataset_clips_source_video_idx ON dataset_clips (source_video_id);
CREATE INDEX dataset_clips_etl_run_id_idx ON dataset_clips (etl_run_id);
CREATE INDEX dataset_clips_tags_idx ON dataset_clips USING gin (tags);

-- ---------------------------------------------------------------------------------------------
-- Serving and feedback (REST API, Kafka workers)
-- ---------------------------------------------------------------------------------------------

-- One prompt submitted by a tenant; the worker that takes it records route, version and timings.
CREATE TABLE generation_requests (
    request_id     uuid PRIMARY KEY,
    tenant         text NOT NULL CHECK (tenant <> ''),
    prompt         text NOT NULL CHECK (btrim(prompt) <> ''),
    num_candidates integer NOT NULL DEFAULT 5 CHECK (num_candidates > 0),
    num_frames     integer NOT NULL DEFAULT 16 CHECK (num_frames > 0),
    fps            integer NOT NULL DEFAULT 8 CHECK (fps > 0),
    height         integer NOT NULL CHECK (height > 0),
    width          integer NOT NULL CHECK (width > 0),
    seed           bigint,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    model_version  text,
    route          text CHECK (route IN ('champion', 'challenger', 'base')),
    submitted_at   timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    -- seconds per phase, e.g. {"queue_wait_s": .., "denoise_s": .., "decode_s": .., "upload_s": ..}
    timings        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(timings) = 'object'),
    error          text,
    CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX generation_requests_tenant_submitted_idx ON generation_requests (tenant, submitted_at DESC);
CREATE INDEX generation_requests_submitted_idx ON generation_requests (submitted_at DESC);
CREATE INDEX generation_requests_model_version_idx ON generation_requests (model_version, finished_at);
-- Small partial index: the backlog a dashboard or a stuck-job sweeper looks at.
CREATE INDEX generation_requests_open_idx ON generation_requests (status, submitted_at)
    WHERE status IN ('queued', 'running');

-- The videos generated for a request, one per (request, index).
CREATE TABLE candidates (
    request_id       uuid NOT NULL REFERENCES generation_requests (request_id) ON DELETE CASCADE,
    candidate_index  integer NOT NULL CHECK (candidate_index >= 0),
    variation_prompt text NOT NULL,
    seed             bigint NOT NULL,
    object_key       text NOT NULL CHECK (object_key <> ''),
    scores           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(scores) = 'object'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, candidate_index)
);

-- The marketer's pick: at most one per request (the primary key), and it must name an existing
-- candidate. seq is a gap-tolerant ordering (a rolled-back insert burns a number): count rows,
-- not seq, to decide milestones.
CREATE TABLE selections (
    request_id      uuid PRIMARY KEY,
    candidate_index integer NOT NULL,
    tenant          text NOT NULL CHECK (tenant <> ''),
    selected_at     timestamptz NOT NULL DEFAULT now(),
    seq             bigserial NOT NULL UNIQUE,
    FOREIGN KEY (request_id, candidate_index)
        REFERENCES candidates (request_id, candidate_index) ON DELETE CASCADE
);
CREATE INDEX selections_tenant_selected_idx ON selections (tenant, selected_at DESC);

-- One row per SELECTIONS_PER_RETRAIN selections (milestone 1 = the 200th), committed before the
-- retrain DAG is triggered, so "exactly one retrain per milestone" survives races and Airflow outages.
CREATE TABLE retrain_milestones (
    milestone       integer PRIMARY KEY CHECK (milestone >= 1),
    selection_count bigint NOT NULL CHECK (selection_count > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    dag_id          text NOT NULL DEFAULT 'retrain_on_feedback',
    dag_run_id      text,
    triggered_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    CONSTRAINT retrain_milestones_dag_run_key UNIQUE (dag_id, dag_run_id)
);
-- The retry loop's work list: milestones Airflow has not accepted yet.
CREATE INDEX retrain_milestones_untriggered_idx ON retrain_milestones (milestone) WHERE triggered_at IS NULL;

-- ---------------------------------------------------------------------------------------------
-- Rollout and monitoring
-- ---------------------------------------------------------------------------------------------

-- A model version behind an alias with its share of traffic; canary routing reads traffic_weight.
CREATE TABLE deployments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name     text NOT NULL CHECK (model_name <> ''),
    model_version  text NOT NULL CHECK (model_version <> ''),
    alias          text NOT NULL CHECK (alias <> ''),
    traffic_weight integer NOT NULL DEFAULT 0 CHECK (traffic_weight BETWEEN 0 AND 100),
    state          text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'canary', 'promoted', 'rolled_back', 'retired')),
    reason         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- At most one live deployment per model and alias: retire the old one before promoting the new.
CREATE UNIQUE INDEX deployments_live_alias_key ON deployments (model_name, alias)
    WHERE state IN ('canary', 'promoted');
CREATE INDEX deployments_model_state_idx ON deployments (model_name, state);
CREATE INDEX deployments_model_version_idx ON deployments (model_name, model_version);

-- Time series of latency, errors, CLIP scores, ... written by workers and the monitoring DAG.
CREATE TABLE monitoring_metrics (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),
    value         double precision NOT NULL,
    labels        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
    model_version text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX monitoring_metrics_name_recorded_idx ON monitoring_metrics (name, recorded_at);
-- Canary windows compare one model version's metric over a time range.
CREATE INDEX monitoring_metrics_version_name_recorded_idx
    ON monitoring_metrics (model_version, name, recorded_at);

-- The outcome of one prompt-drift check of a window against a reference.
CREATE TABLE drift_reports (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    reference    text NOT NULL,
    score        double precision NOT NULL,
    threshold    double precision NOT NULL,
    drifted      boolean NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start)
);
CREATE INDEX drift_reports_created_idx ON drift_reports (created_at DESC);
CREATE INDEX drift_reports_window_end_idx ON drift_reports (window_end DESC);

-- Precomputed numbers the dashboard reads by key (cheap page loads, no scans per view).
CREATE TABLE dashboard_stats (
    key        text PRIMARY KEY CHECK (key <> ''),
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
