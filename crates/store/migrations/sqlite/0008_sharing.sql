-- Sharing beyond the hierarchy: shares and record teams on one record, sharing rules,
-- restriction rules; portal users (external users of one customer account); a key-account
-- flag on customers that restriction rules can test.

ALTER TABLE customers ADD COLUMN vip INTEGER;
ALTER TABLE users ADD COLUMN portal_account INTEGER REFERENCES customers (id);

-- A share or a team place on one record. `object` + `record_id` point into one of five
-- tables, so there is no foreign key: a record's entries are deleted with it (store).
CREATE TABLE record_shares (
    id INTEGER PRIMARY KEY,
    object TEXT NOT NULL,
    record_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('share', 'team')),
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'unit', 'role')),
    principal_id INTEGER NOT NULL,
    access TEXT NOT NULL CHECK (access IN ('read', 'edit')),
    created_by INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (object, record_id, kind, principal_kind, principal_id)
);
-- "Which records are shared with this user, unit or role": the list filter's subquery.
CREATE INDEX record_shares_principal ON record_shares (object, principal_kind, principal_id, record_id);

-- `definition` is the rule's JSON (ids, not names).
CREATE TABLE sharing_rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    object TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE restriction_rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    object TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
