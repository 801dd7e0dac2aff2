-- Moderation: alert status reasons, first publication (probation), flags,
-- and what events need for moves and retention.

ALTER TABLE alerts ADD COLUMN status_reason TEXT;
ALTER TABLE alerts ADD COLUMN published_at INTEGER; -- first publication; NULL if never
UPDATE alerts SET published_at = created_at WHERE status = 'published';
CREATE INDEX alerts_published_by_store ON alerts (store_id) WHERE published_at IS NOT NULL;
CREATE INDEX alerts_by_occurrence ON alerts (occurred_at);

-- Where an updated alert was before it moved, and when its incident happened.
ALTER TABLE events ADD COLUMN previous_lat REAL;
ALTER TABLE events ADD COLUMN previous_lon REAL;
ALTER TABLE events ADD COLUMN previous_radius_km REAL;
ALTER TABLE events ADD COLUMN occurred_at INTEGER NOT NULL DEFAULT 0;
UPDATE events SET occurred_at = (SELECT occurred_at FROM alerts WHERE alerts.id = events.alert_id);

-- One flag per store per alert; a moderator's decision resolves them.
CREATE TABLE flags (
    alert_id    INTEGER NOT NULL REFERENCES alerts (id),
    store_id    INTEGER NOT NULL REFERENCES stores (id),
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    PRIMARY KEY (alert_id, store_id)
);
CREATE INDEX flags_unresolved ON flags (alert_id) WHERE resolved_at IS NULL;
