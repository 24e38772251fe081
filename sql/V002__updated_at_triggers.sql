-- V002: keep updated_at honest on rows that are updated in place (deployments, dashboard_stats).
-- Why: the canary DAG and the dashboard read updated_at to tell how fresh a row is; a trigger sets it
-- on every UPDATE (including INSERT ... ON CONFLICT DO UPDATE), so no caller can forget to.

CREATE FUNCTION adfame_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER deployments_touch_updated_at
    BEFORE UPDATE ON deployments
    FOR EACH ROW EXECUTE FUNCTION adfame_touch_updated_at();

CREATE TRIGGER dashboard_stats_touch_updated_at
    BEFORE UPDATE ON dashboard_stats
    FOR EACH ROW EXECUTE FUNCTION adfame_touch_updated_at();
