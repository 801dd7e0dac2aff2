-- Safe writes and erasure (issue 11): an alert's version (ETag, If-Match),
-- erased alerts (retention, an admin's erasure), what an update changed,
-- event bodies rewritten or withdrawn by alert, and idempotency keys.

ALTER TABLE alerts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- When its text, suspects and vehicles were erased; it is 404 to everyone.
ALTER TABLE alerts ADD COLUMN erased_at BIGINT;

-- The names of the alert's fields an `update` changed, as a JSON array.
ALTER TABLE events ADD COLUMN changed TEXT;
-- Bodies are rewritten (current version) or withdrawn (empty) per alert.
CREATE INDEX events_by_alert ON events (alert_id, seq);

-- The first success of a create, answered again to a retry with the same
-- key from the same account (API.md, Safe writes). Written in the same
-- transaction as what it created.
CREATE TABLE idempotency_keys (
    account     TEXT    NOT NULL, -- store:7 or token:3
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL, -- SHA-256 of the method, path and body
    status      BIGINT NOT NULL, -- the HTTP status answered
    object      TEXT    NOT NULL, -- what was created: alert:42, flag:42:7
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Replay shows the network as it is now: bodies of alerts no longer
-- published (or no longer pending, for `pending` events) are withdrawn, and
-- the rest carry the alert's newest version (the newest event's body).
UPDATE events SET body = '' WHERE type IN ('alert', 'update')
    AND alert_id IN (SELECT id FROM alerts WHERE status <> 'published');
UPDATE events SET body = '' WHERE type = 'pending'
    AND alert_id IN (SELECT id FROM alerts WHERE status <> 'pending');
UPDATE events SET body = (SELECT newest.body FROM events newest
        WHERE newest.alert_id = events.alert_id AND newest.type IN ('alert', 'update')
        ORDER BY newest.seq DESC LIMIT 1)
    WHERE type IN ('alert', 'update')
    AND alert_id IN (SELECT id FROM alerts WHERE status = 'published');
UPDATE events SET body = (SELECT newest.body FROM events newest
        WHERE newest.alert_id = events.alert_id AND newest.type = 'pending'
        ORDER BY newest.seq DESC LIMIT 1)
    WHERE type = 'pending'
    AND alert_id IN (SELECT id FROM alerts WHERE status = 'pending');
