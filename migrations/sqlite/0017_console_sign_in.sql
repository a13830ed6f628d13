-- Console sessions opened by signing in through the organization's own SSO, beside those a portal
-- link opens: such a session has no link but names the person (`org_user_id`), and its intent
-- `all` reaches every page their role allows. A session has exactly one of the two origins.
-- SQLite cannot drop a NOT NULL, so the table is rebuilt, with the test results that refer to it;
-- every row is kept.
CREATE TABLE console_tests_kept AS SELECT id, session_id, connection_id, result, created_at FROM console_tests;
DROP TABLE console_tests;

CREATE TABLE console_sessions_new (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    link_id      TEXT REFERENCES portal_links(id) ON DELETE CASCADE,
    org_user_id  TEXT REFERENCES org_users(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    intent       TEXT NOT NULL,
    return_url   TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    CHECK ((link_id IS NULL) <> (org_user_id IS NULL))
);
INSERT INTO console_sessions_new (id, org_id, link_id, token_hash, intent, return_url, created_at, expires_at, revoked_at)
    SELECT id, org_id, link_id, token_hash, intent, return_url, created_at, expires_at, revoked_at
    FROM console_sessions;
DROP TABLE console_sessions;
ALTER TABLE console_sessions_new RENAME TO console_sessions;
CREATE INDEX console_sessions_org ON console_sessions(org_id);
CREATE INDEX console_sessions_user ON console_sessions(org_user_id) WHERE org_user_id IS NOT NULL;

CREATE TABLE console_tests (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES console_sessions(id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL,
    result         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
INSERT INTO console_tests (id, session_id, connection_id, result, created_at)
    SELECT id, session_id, connection_id, result, created_at FROM console_tests_kept;
DROP TABLE console_tests_kept;
CREATE INDEX console_tests_session ON console_tests(session_id);
