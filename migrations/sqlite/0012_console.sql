-- The self-service console: portal links the SaaS hands an organization's IT admin (single use,
-- valid minutes, stored hashed), and the console sessions they open, scoped to one organization
-- and one intent (the pages the link was made for). Both go with their organization. New tables
-- only: nothing already stored changes.
CREATE TABLE portal_links (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    intent      TEXT NOT NULL,
    return_url  TEXT,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX portal_links_org ON portal_links(org_id);

CREATE TABLE console_sessions (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    link_id     TEXT NOT NULL REFERENCES portal_links(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    intent      TEXT NOT NULL,
    return_url  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX console_sessions_org ON console_sessions(org_id);

-- What a console's test sign-in came back with (who, what groups, what access, or why it
-- failed), for the admin who ran it to read; it goes with the console session.
CREATE TABLE console_tests (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES console_sessions(id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL,
    result         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX console_tests_session ON console_tests(session_id);
