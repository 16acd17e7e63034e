-- Access control: second factors, recovery codes, login throttling, access rules, API tokens.

-- TOTP: the secret (base32) is set at enrolment and counts once confirmed; the last accepted
-- time step makes every code single-use.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

CREATE TABLE recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Consecutive login failures per key ('user:NAME' or 'ip:ADDRESS'), whether or not the user
-- exists, so that throttling reveals nothing.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0
);

-- Access rules of a role ('role') or a user ('user'), as JSON.
CREATE TABLE access_rules (
    owner_kind TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    rules TEXT NOT NULL,
    PRIMARY KEY (owner_kind, owner_id)
);

-- API tokens are sessions of kind 'api' with a name.
ALTER TABLE sessions ADD COLUMN name TEXT;
