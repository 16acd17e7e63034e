-- Approvals: policies, pending requests with their intended change, votes, every step, and the
-- webhook outbox. Also the natural person behind an account (no approving one's own request
-- from a second account).

ALTER TABLE users ADD COLUMN person TEXT;

-- One policy; `definition` is its JSON (ids, not names: renaming a role does not change it).
CREATE TABLE approval_policies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A change waiting for approval. `payload` is the intended change, encrypted like a sensitive
-- field (it may carry one); `steps` the policies that caught it, as JSON.
CREATE TABLE approval_requests (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    operation TEXT NOT NULL,
    object TEXT,
    record_id INTEGER,
    record_version INTEGER,
    requester_id INTEGER NOT NULL REFERENCES users (id),
    requester TEXT NOT NULL,
    summary TEXT NOT NULL,
    payload TEXT NOT NULL,
    steps TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX approval_requests_state ON approval_requests (state, id);
CREATE INDEX approval_requests_requester ON approval_requests (requester_id, id);
CREATE INDEX approval_requests_record ON approval_requests (object, record_id);

-- One person's decision on a request (a person decides once, whatever their accounts).
CREATE TABLE approval_votes (
    request_id INTEGER NOT NULL REFERENCES approval_requests (id),
    person TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    decision TEXT NOT NULL,
    at INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, person)
);

-- Every step of every request: requested, approved, rejected, applied, conflict, expired,
-- escalated, withdrawn.
CREATE TABLE approval_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES approval_requests (id),
    at INTEGER NOT NULL,
    actor_id INTEGER,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approval_events_request ON approval_events (request_id, id);

-- Webhook deliveries, written in the transaction of the change they announce, sent after.
CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (delivered_at, next_attempt_at);
