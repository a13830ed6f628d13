-- The platform API: tokens the SaaS's backend uses to create and manage organizations, which reach
-- every organization and are not tied to one, and each organization's key in the SaaS (the SaaS's
-- own id for it), unique across the deployment. Nothing already stored changes: organizations
-- made before this have no key (NULL) until one is set, and no platform token exists until the
-- operator mints one.
CREATE TABLE platform_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
);

ALTER TABLE organizations ADD COLUMN external_key TEXT;
CREATE UNIQUE INDEX organizations_external_key ON organizations(external_key);
