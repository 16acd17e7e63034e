-- Field-level security and the access log's first entries.

-- A role's rule for one field of one object: 'hidden', 'masked', 'read' or 'write'. Fields
-- without a rule take the schema's default (sensitive fields hidden, the rest writable).
CREATE TABLE role_field_rules (
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    object TEXT NOT NULL,
    field TEXT NOT NULL,
    access TEXT NOT NULL,
    PRIMARY KEY (role_id, object, field)
);

-- The access log: who did what to which record and which fields, when, from where. Append
-- only; written in the transaction of the access it records.
CREATE TABLE access_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT,
    record_id INTEGER,
    fields TEXT NOT NULL DEFAULT '',
    client TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX access_log_record ON access_log (object, record_id);
CREATE INDEX access_log_actor ON access_log (actor_id, at);
