-- The one-node network: stores, tokens, alerts, the event stream, the audit trail.
-- Times are unix seconds (UTC).

CREATE TABLE stores (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    address           TEXT    NOT NULL,
    lat               REAL    NOT NULL,
    lon               REAL    NOT NULL,
    radius_km         REAL    NOT NULL,
    contact_name      TEXT    NOT NULL,
    contact_email     TEXT    NOT NULL,
    phone             TEXT,
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    status_reason     TEXT,
    claim_secret_hash TEXT    NOT NULL,
    claimed_at        INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX stores_by_status ON stores (status, id);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('store', 'moderator', 'admin')),
    store_id   INTEGER REFERENCES stores (id),
    label      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    CHECK ((role = 'store') = (store_id IS NOT NULL))
);
CREATE INDEX tokens_by_store ON tokens (store_id);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id    INTEGER NOT NULL REFERENCES stores (id),
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'published', 'rejected', 'retracted')),
    title       TEXT    NOT NULL,
    description TEXT,
    occurred_at INTEGER NOT NULL,
    lat         REAL    NOT NULL,
    lon         REAL    NOT NULL,
    radius_km   REAL    NOT NULL,
    suspects    TEXT    NOT NULL, -- JSON array
    vehicles    TEXT    NOT NULL, -- JSON array
    verified    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX alerts_by_place ON alerts (lat, lon);
CREATE INDEX alerts_by_store ON alerts (store_id, id);
CREATE INDEX alerts_by_status ON alerts (status, id);

-- One stream for the whole network. seq is assigned inside the writing
-- transaction, and SQLite commits one writer at a time: seq order is
-- commit order. AUTOINCREMENT never reuses a seq.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    type       TEXT    NOT NULL,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id),
    store_id   INTEGER NOT NULL REFERENCES stores (id), -- the alert's author
    lat        REAL    NOT NULL,
    lon        REAL    NOT NULL,
    radius_km  REAL    NOT NULL,
    body       TEXT    NOT NULL, -- the frame's fields, serialized once
    created_at INTEGER NOT NULL
);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    object TEXT    NOT NULL,
    reason TEXT
);
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
