-- V006: the canary's traffic split by sequence number, and the history of every rollout action.
-- Why route_seq: a challenger at w % must get w % of any run of requests, not only on average. A worker
-- routes a request by bucket = floor(100 * frac(route_seq * 0.618...)) (inference/routing.py): the golden
-- ratio's multiples spread so evenly that any 100 consecutive numbers put the challenger within 2 points
-- of w, where a random hash over 100 requests misses by more than 5 points a third of the time at w = 50.
-- The number is drawn once, when the request's row is inserted, so a redelivered request keeps its route.
-- Rows older than this migration are numbered in the order they were submitted.
-- Why deployment_events: deployments holds what serves now; the dashboard plots how the canary got
-- there, and a reviewer asks who moved what and why. Each rollout action (monitoring/rollout.py) writes
-- its deployments change and its event in one transaction (adfame/repositories/deployments.py); events
-- are never updated or deleted (a trigger refuses both).

ALTER TABLE generation_requests ADD COLUMN route_seq bigint;

UPDATE generation_requests AS r
SET route_seq = numbered.position
FROM (SELECT request_id, row_number() OVER (ORDER BY submitted_at, request_id) AS position
      FROM generation_requests) AS numbered
WHERE r.request_id = numbered.request_id;

ALTER TABLE generation_requests ALTER COLUMN route_seq SET NOT NULL;
ALTER TABLE generation_requests ALTER COLUMN route_seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('generation_requests', 'route_seq'), coalesce(max(route_seq), 0) + 1, false)
FROM generation_requests;
ALTER TABLE generation_requests ADD CONSTRAINT generation_requests_route_seq_key UNIQUE (route_seq);

-- The canary judge reads one route's requests over a window of finish times.
CREATE INDEX generation_requests_route_finished_idx ON generation_requests (route, finished_at);

CREATE TABLE deployment_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id bigint NOT NULL REFERENCES deployments (id),
    model_name    text NOT NULL CHECK (model_name <> ''),
    model_version text NOT NULL CHECK (model_version <> ''),
    alias         text NOT NULL CHECK (alias <> ''),
    weight        integer NOT NULL CHECK (weight BETWEEN 0 AND 100),
    state         text NOT NULL
                  CHECK (state IN ('pending', 'canary', 'promoted', 'rolled_back', 'retired')),
    reason        text,
    actor         text NOT NULL CHECK (actor <> ''),  -- cli, dag, webhook, ...: who asked for it
    at            timestamptz NOT NULL DEFAULT now()
);
-- The dashboard's weight history and a worker's "did anything change?" both read one model's latest events.
CREATE INDEX deployment_events_model_id_idx ON deployment_events (model_name, id);

CREATE FUNCTION adfame_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER deployment_events_append_only
    BEFORE UPDATE OR DELETE ON deployment_events
    FOR EACH ROW EXECUTE FUNCTION adfame_refuse_change();
