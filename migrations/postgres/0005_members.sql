-- Membership and tokens (issue 11): when each token was last used, and a
-- store's move waiting for a moderator. Mirrors migrations/sqlite/0005_members.sql.

-- Written on authentication at most once a minute per token.
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
-- Counting a store's unrevoked tokens (at most 10) reads only those.
CREATE INDEX tokens_unrevoked_by_store ON tokens (store_id) WHERE revoked_at IS NULL;

-- The place a store asked to move to; all three NULL when none waits.
ALTER TABLE stores ADD COLUMN pending_lat DOUBLE PRECISION;
ALTER TABLE stores ADD COLUMN pending_lon DOUBLE PRECISION;
ALTER TABLE stores ADD COLUMN move_requested_at BIGINT;
CREATE INDEX stores_with_pending_move ON stores (id) WHERE move_requested_at IS NOT NULL;
