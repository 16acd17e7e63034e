-- SQLite gives a new row the largest id + 1, so deleting the newest customer (or share) handed
-- its id to the next one: old access-log entries, approvals and bookmarks then named a
-- different record. PostgreSQL's sequences never go back. Here the store allocates ids of
-- tables whose rows can be deleted from this high-water mark (starting from the largest id
-- present when first used), so an id is never given twice.
CREATE TABLE id_high_water (
    tbl TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
