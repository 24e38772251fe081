-- V007: monitoring's alerts and its quality samples.
-- Why: an alert is raised by rules that run every few minutes (the monitor DAG) and by the canary's
-- rollback; while a breach lasts, every run sees it again, yet operators want it once per breach window.
-- Each alert row owns the window [raised_at, window_end) of its (kind, subject): a new alert of that
-- kind and subject is recorded only when no row's window covers the moment
-- (monitoring.alerts.record_alert, under an advisory lock on the kind and subject, so two monitors at
-- once record one). retrain_run_id names the retrain_on_feedback run a drift or quality alert started.
-- quality_samples holds one row per production request whose candidates monitoring has scored, so a
-- request is sampled once however often the sampler runs (the primary key is the guard); the scores
-- themselves go to monitoring_metrics, stamped with the request's finish time, where canary windows
-- and the dashboard read them per model version.

CREATE TABLE alerts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL
                   CHECK (kind IN ('latency', 'error_rate', 'quality_drop', 'drift', 'canary_rollback')),
    subject        text NOT NULL CHECK (subject <> ''),  -- what breached: a route, a model version, 'prompts'
    message        text NOT NULL CHECK (message <> ''),
    details        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    raised_at      timestamptz NOT NULL DEFAULT now(),
    window_end     timestamptz NOT NULL,
    retrain_run_id text,
    CHECK (window_end > raised_at)
);
-- The once-per-window check and the dashboard's history both read by kind, subject and time.
CREATE INDEX alerts_kind_subject_window_idx ON alerts (kind, subject, window_end DESC);
CREATE INDEX alerts_raised_idx ON alerts (raised_at DESC);

CREATE TABLE quality_samples (
    request_id    uuid PRIMARY KEY REFERENCES generation_requests (request_id) ON DELETE CASCADE,
    model_version text NOT NULL CHECK (model_version <> ''),
    route         text NOT NULL,
    candidates    integer NOT NULL CHECK (candidates >= 0),  -- how many mp4s were scored
    error         text,                                      -- why none could be scored, if so
    sampled_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((candidates > 0) <> (error IS NOT NULL))
);
CREATE INDEX quality_samples_version_idx ON quality_samples (model_version, sampled_at);
