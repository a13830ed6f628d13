-- The platform API: tokens the SaaS's backend uses to create and manage organizations, which reach
-- every organization and are not tied to one, and each organization's key in the SaaS (the SaaS's
-- own id for it), unique across the deployment. Nothing already stored changes: organizations
-- made before this have no key (NULL) until one is set, and no platform token exists until the
-- operator mints one. Adding a nullable column without a default rewrites nothing.
CREATE TABLE platform_tokens (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);

ALTER TABLE organizations ADD COLUMN external_key TEXT COLLATE "C";
CREATE UNIQUE INDEX organizations_external_key ON organizations(external_key);
