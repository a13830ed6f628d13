-- Organizations, sub-accounts and projects; the organization's users; group -> role mapping rules,
-- grants made by hand and the effective access derived from them; the event outbox, sessions,
-- admin tokens and webhooks.

ALTER TABLE organizations ADD COLUMN owner_user_id TEXT;
-- A sub-account role every user whose groups match no rule receives; NULL gives them nothing.
ALTER TABLE organizations ADD COLUMN default_role TEXT;
-- Active users, kept in the same transaction as every change of a user's status, so the seat
-- limit is checked without counting.
ALTER TABLE organizations ADD COLUMN active_users BIGINT NOT NULL DEFAULT 0;
-- The last event sequence number handed out; events of one organization are numbered 1, 2, ...
ALTER TABLE organizations ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE sub_accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_ci     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX sub_accounts_name ON sub_accounts(org_id, name_ci);

CREATE TABLE projects (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    sub_account_id  TEXT NOT NULL REFERENCES sub_accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    name_ci         TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_name ON projects(sub_account_id, name_ci);

-- One person of the organization, however many directories provision them and however many
-- sub-accounts they reach. SCIM users of every directory with the same userName (case-insensitive)
-- are the same person.
CREATE TABLE org_users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_key      TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    display_name  TEXT,
    email         TEXT,
    active        BOOLEAN NOT NULL,
    -- The effective access as last computed, with reasons (JSON); what the API and tokens read.
    access        TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX org_users_key ON org_users(org_id, user_key);
CREATE INDEX org_users_org ON org_users(org_id, id);

-- Group-claim values of the user's last SSO sign-in, for rules that match a claim.
CREATE TABLE org_user_claims (
    org_user_id  TEXT NOT NULL REFERENCES org_users(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (org_user_id, value)
);
CREATE INDEX org_user_claims_value ON org_user_claims(org_id, value);

ALTER TABLE scim_users ADD COLUMN org_user_id TEXT REFERENCES org_users(id);
CREATE INDEX scim_users_org_user ON scim_users(org_user_id);

CREATE TABLE mapping_rules (
    id           TEXT COLLATE "C" PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    description  TEXT,
    matcher      TEXT NOT NULL,
    grant_json   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX mapping_rules_org ON mapping_rules(org_id, id);

-- Grants made by hand. Mappings never create, change or delete these.
CREATE TABLE manual_grants (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    org_user_id     TEXT NOT NULL REFERENCES org_users(id) ON DELETE CASCADE,
    -- The one sub-account the grant is in, NULL for organization-wide grants: what a sub-account
    -- admin may manage.
    sub_account_id  TEXT,
    grant_json      TEXT NOT NULL,
    granted_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX manual_grants_user ON manual_grants(org_user_id);
CREATE INDEX manual_grants_org ON manual_grants(org_id, id);

-- The outbox: every access change, in commit order per organization.
CREATE TABLE events (
    org_id       TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    org_user_id  TEXT,
    data         TEXT NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- Only the SHA-256 of a session token is kept.
CREATE TABLE sessions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    org_user_id      TEXT NOT NULL REFERENCES org_users(id) ON DELETE CASCADE,
    token_hash       TEXT NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    revoked_at       BIGINT,
    revoked_reason   TEXT
);
CREATE INDEX sessions_user ON sessions(org_user_id, revoked_at);

CREATE TABLE admin_tokens (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    sub_account_id  TEXT REFERENCES sub_accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX admin_tokens_org ON admin_tokens(org_id);

-- Each webhook delivers the organization's events in order from its own cursor.
CREATE TABLE webhooks (
    id               TEXT COLLATE "C" PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    secret           TEXT NOT NULL,
    delivered_seq    BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhooks_due ON webhooks(next_attempt_at);

CREATE INDEX audit_log_org_resource ON audit_log(org_id, resource_id, seq);
CREATE INDEX audit_log_org_actor ON audit_log(org_id, actor, seq);

-- Existing SCIM users become organization users: one per organization and userName, with the id
-- of its oldest SCIM user.
INSERT INTO org_users (id, org_id, user_key, user_name, display_name, email, active, created_at, updated_at)
SELECT MIN(u.id COLLATE "C"), d.org_id, u.user_name_ci, MIN(u.user_name), MIN(u.display_name), NULL,
       BOOL_OR(u.active), MIN(u.created_at), MAX(u.updated_at)
FROM scim_users u JOIN directories d ON d.id = u.directory_id
GROUP BY d.org_id, u.user_name_ci;
UPDATE scim_users SET org_user_id = (
    SELECT o.id FROM org_users o JOIN directories d ON d.org_id = o.org_id
    WHERE d.id = scim_users.directory_id AND o.user_key = scim_users.user_name_ci);
UPDATE organizations SET active_users = (
    SELECT COUNT(*) FROM org_users o WHERE o.org_id = organizations.id AND o.active);
