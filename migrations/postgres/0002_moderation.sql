-- Moderation: alert status reasons, first publication (probation), flags,
-- and what events need for moves and retention. Mirrors the SQLite one.

ALTER TABLE alerts ADD COLUMN status_reason TEXT;
ALTER TABLE alerts ADD COLUMN published_at BIGINT; -- first publication; NULL if never
UPDATE alerts SET published_at = created_at WHERE status = 'published';
CREATE INDEX alerts_published_by_store ON alerts (store_id) WHERE published_at IS NOT NULL;
CREATE INDEX alerts_by_occurrence ON alerts (occurred_at);

ALTER TABLE events ADD COLUMN previous_lat DOUBLE PRECISION;
ALTER TABLE events ADD COLUMN previous_lon DOUBLE PRECISION;
ALTER TABLE events ADD COLUMN previous_radius_km DOUBLE PRECISION;
ALTER TABLE events ADD COLUMN occurred_at BIGINT NOT NULL DEFAULT 0;
UPDATE events SET occurred_at = (SELECT occurred_at FROM alerts WHERE alerts.id = events.alert_id);

CREATE TABLE flags (
    alert_id    BIGINT NOT NULL REFERENCES alerts (id),
    store_id    BIGINT NOT NULL REFERENCES stores (id),
    reason      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT,
    PRIMARY KEY (alert_id, store_id)
);
CREATE INDEX flags_unresolved ON flags (alert_id) WHERE resolved_at IS NULL;
