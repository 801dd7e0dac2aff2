-- seq comes from one counter row updated inside each event-writing
-- transaction: concurrent writers on every node serialize on its row lock,
-- so seq order is commit order and no committed seq is ever skipped.
CREATE TABLE event_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT  NOT NULL
);
INSERT INTO event_counter (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
