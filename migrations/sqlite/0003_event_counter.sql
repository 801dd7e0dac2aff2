-- seq comes from one counter row updated inside each event-writing
-- transaction (as on PostgreSQL, where several nodes write).
CREATE TABLE event_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO event_counter (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
