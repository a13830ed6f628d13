-- Times are microseconds since the Unix epoch (INTEGER), so meta.* filters compare integers.
-- Ids are UUIDv7 text: time-ordered, so id order is creation order and keyset pagination is cheap.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_ci     TEXT NOT NULL UNIQUE,
    seat_limit  INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE directories (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX directories_org ON directories(org_id);

-- Only the SHA-256 of a token is kept; the token itself is shown once.
CREATE TABLE directory_tokens (
    id            TEXT PRIMARY KEY,
    directory_id  TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX directory_tokens_dir ON directory_tokens(directory_id);

CREATE TABLE scim_users (
    id            TEXT PRIMARY KEY,
    directory_id  TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL,
    user_name_ci  TEXT NOT NULL,
    external_id   TEXT,
    display_name  TEXT,
    active        BOOLEAN NOT NULL,
    data          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- Equality indexes end in id, so one index serves both the filter and the default ORDER BY id.
CREATE UNIQUE INDEX scim_users_user_name ON scim_users(directory_id, user_name_ci);
CREATE INDEX scim_users_dir_id ON scim_users(directory_id, id);
CREATE INDEX scim_users_external_id ON scim_users(directory_id, external_id, id);
CREATE INDEX scim_users_updated ON scim_users(directory_id, updated_at);

CREATE TABLE scim_groups (
    id               TEXT PRIMARY KEY,
    directory_id     TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,
    display_name     TEXT NOT NULL,
    display_name_ci  TEXT NOT NULL,
    external_id      TEXT,
    data             TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX scim_groups_dir_id ON scim_groups(directory_id, id);
CREATE INDEX scim_groups_display_name ON scim_groups(directory_id, display_name_ci, id);
CREATE INDEX scim_groups_external_id ON scim_groups(directory_id, external_id, id);
CREATE INDEX scim_groups_updated ON scim_groups(directory_id, updated_at);

-- Membership is rows, never an array: adding or removing k members touches k rows whatever the size
-- of the group.
CREATE TABLE scim_group_members (
    group_id      TEXT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
    member_id     TEXT NOT NULL,
    member_type   TEXT NOT NULL,
    -- The display name the IdP sent, returned as sent; NULL means "use the member's own name".
    display       TEXT,
    directory_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX scim_group_members_member ON scim_group_members(member_id);

-- Append-only: nothing updates or deletes these rows.
CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         TEXT NOT NULL,
    directory_id   TEXT,
    actor          TEXT NOT NULL,
    operation      TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    detail         TEXT,
    at             INTEGER NOT NULL
);
CREATE INDEX audit_log_org ON audit_log(org_id, seq);
