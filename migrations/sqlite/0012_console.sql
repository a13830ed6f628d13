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
