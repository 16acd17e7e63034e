-- Warden schema, SQLite dialect. Times are milliseconds since the Unix epoch (UTC).
-- Records keep only owner_id and unit_id: the hierarchy lives in users/units and is numbered
-- in memory by the policy engine, so a move never rewrites a record.

CREATE TABLE permission_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO permission_epoch (id, epoch) VALUES (1, 1);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE units (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES units (id),
    created_at INTEGER NOT NULL
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE role_grants (
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    object TEXT NOT NULL,
    action TEXT NOT NULL,
    scope TEXT NOT NULL,
    depth INTEGER,
    PRIMARY KEY (role_id, object, action, scope)
);

CREATE TABLE role_permissions (
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    unit_id INTEGER NOT NULL REFERENCES units (id),
    manager_id INTEGER REFERENCES users (id),
    disabled INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX users_manager ON users (manager_id);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    expires_at INTEGER,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE object_controls (
    object TEXT PRIMARY KEY,
    control TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    unit_id INTEGER NOT NULL REFERENCES units (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    industry TEXT,
    region TEXT,
    status TEXT,
    credit_limit TEXT,
    bank_account TEXT
);
CREATE INDEX customers_owner ON customers (owner_id, id);
CREATE INDEX customers_unit ON customers (unit_id, id);

-- Customers per (owner, unit), kept in the same transaction as the records: the list planner
-- reads it to choose between walking the id order and enumerating the visible owners.
CREATE TABLE customer_counts (
    owner_id INTEGER NOT NULL,
    unit_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (owner_id, unit_id)
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    unit_id INTEGER NOT NULL REFERENCES units (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    title TEXT
);
CREATE INDEX contacts_customer ON contacts (customer_id, id);
CREATE INDEX contacts_owner ON contacts (owner_id, id);

CREATE TABLE deals (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    unit_id INTEGER NOT NULL REFERENCES units (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    name TEXT NOT NULL,
    amount INTEGER,
    stage TEXT,
    close_date TEXT
);
CREATE INDEX deals_customer ON deals (customer_id, id);
CREATE INDEX deals_owner ON deals (owner_id, id);

CREATE TABLE contracts (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    unit_id INTEGER NOT NULL REFERENCES units (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT,
    terms TEXT,
    start_date TEXT,
    end_date TEXT,
    status TEXT
);
CREATE INDEX contracts_customer ON contracts (customer_id, id);
CREATE INDEX contracts_owner ON contracts (owner_id, id);

CREATE TABLE activities (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    unit_id INTEGER NOT NULL REFERENCES units (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT,
    due_date TEXT,
    done INTEGER,
    notes TEXT
);
CREATE INDEX activities_customer ON activities (customer_id, id);
CREATE INDEX activities_owner ON activities (owner_id, id);
