-- Data keys (DEKs): random 256-bit keys that encrypt the sensitive fields and TOTP secrets,
-- each stored wrapped (AES-256-GCM) under a key derived from the master key, which is never
-- stored here. `master_fingerprint` names the master key that wrapped it, so that a wrong
-- master key is told apart from a corrupt row. Exactly one key is active (it encrypts new
-- values); retired keys only decrypt, until re-encryption has moved every value off them.
CREATE TABLE data_keys (
    id INTEGER PRIMARY KEY,
    wrapped TEXT NOT NULL,
    master_fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX data_keys_one_active ON data_keys (state) WHERE state = 'active';
