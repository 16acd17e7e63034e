-- Access-review campaigns: each user's role assignments in scope become items that the
-- user's manager (or the campaign's opener) keeps or revokes; closing applies revocations.
CREATE TABLE review_campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    undecided TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    created_by INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    closed_at INTEGER
);

CREATE TABLE review_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES review_campaigns (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    role_id INTEGER NOT NULL,
    reviewer_id INTEGER NOT NULL,
    decision TEXT,
    comment TEXT NOT NULL DEFAULT '',
    decided_at INTEGER,
    outcome TEXT
);
CREATE INDEX review_items_reviewer ON review_items (campaign_id, reviewer_id);
