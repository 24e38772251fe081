-- V005: the evaluation of each registered model version, one row per (version, evaluated model, metric).
-- Why: the registry gate, the canary rollout and monitoring compare versions by these numbers, and a
-- reviewer asks "why was version 7 promoted?" long after MLflow's run pages are gone from view. Each
-- evaluation scores the version under review (role 'challenger') and the model it would replace (role
-- 'champion': a registered version or the base model) on the same held-out prompts and seeds; both
-- sets of rows carry the challenger's version, so one query returns the whole comparison.
-- A metric that could not be computed is kept with value NULL and the reason (no curated snapshot, no
-- CLIP model configured), so "not measured" is never mistaken for "not run". The Fréchet metric is named
-- for the encoder it used (frechet_distance_pixel_stats, or fvd only with an I3D model), and the row says
-- which encoder. Re-recording an evaluation replaces its values (training.evaluation.record_evaluation).

CREATE TABLE model_evaluations (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name        text NOT NULL CHECK (model_name <> ''),
    model_version     text NOT NULL CHECK (model_version <> ''),
    role              text NOT NULL CHECK (role IN ('challenger', 'champion')),
    evaluated_model   text NOT NULL CHECK (evaluated_model <> ''),  -- a LoRA location, or 'base'
    metric            text NOT NULL CHECK (metric ~ '^[a-z0-9_]+$'),
    value             double precision,
    skipped_reason    text,
    run_id            text,
    heldout_pairs     integer NOT NULL CHECK (heldout_pairs >= 0),
    frame_encoder     text NOT NULL CHECK (frame_encoder <> ''),
    reference_snapshot_id text REFERENCES dataset_snapshots (snapshot_id) ON DELETE SET NULL,
    evaluated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((value IS NULL) <> (skipped_reason IS NULL)),
    CONSTRAINT model_evaluations_version_metric_key UNIQUE (model_name, model_version, role, metric)
);
-- The latest evaluations first (the dashboard, monitoring).
CREATE INDEX model_evaluations_evaluated_at_idx ON model_evaluations (evaluated_at DESC);
