-- The access log becomes a hash chain (the format is in crates/store/src/access_log.rs).
-- Each entry carries the hash of the entry before it and its own hash; ids are given out by
-- the head row below, so they are contiguous and a missing id is a removed entry.

ALTER TABLE access_log ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE access_log ADD COLUMN prev_hash TEXT;
ALTER TABLE access_log ADD COLUMN hash TEXT;
CREATE INDEX access_log_at ON access_log (at);

-- The chain's head: one row, updated in the transaction of every append, which serialises
-- appenders (a row lock on PostgreSQL; SQLite has one writer at a time). `last_hash` is NULL
-- until the entries written before this migration are chained (when the store next opens).
-- `anchor_*` is the last entry moved to an archive (0 and the zero hash before any).
-- `mac` signs the whole head with a key derived from the master key (never stored here).
CREATE TABLE access_log_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_id BIGINT NOT NULL,
    last_hash TEXT,
    anchor_id BIGINT NOT NULL DEFAULT 0,
    anchor_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    mac TEXT
);
INSERT INTO access_log_head (id, last_id) SELECT 1, COALESCE(MAX(id), 0) FROM access_log;

-- Signed checkpoints: the hash of one entry, signed (HMAC-SHA256) with the audit key.
CREATE TABLE access_log_checkpoints (
    entry_id BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    mac TEXT NOT NULL
);
