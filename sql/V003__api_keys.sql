-- V003: per-tenant API keys for the REST API and the selection page.
-- Why: a tenant may see only its own jobs and videos, so every call names its tenant through a key.
-- Keys are random and long, so a plain sha256 is enough to make a leaked table useless to an attacker;
-- the clear key is shown once when it is created and is never stored. key_id is the public part of the
-- key (af_<key_id>_<secret>) and finds the row without scanning; revoking a key keeps its row for audit.

CREATE TABLE api_keys (
    key_id     text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    key_sha256 text NOT NULL UNIQUE CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    tenant     text NOT NULL CHECK (tenant ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
-- Listing a tenant's live keys (the CLI, an admin page).
CREATE INDEX api_keys_live_tenant_idx ON api_keys (tenant) WHERE revoked_at IS NULL;
