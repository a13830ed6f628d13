-- Email domains are proven, not declared: an organization claims a domain, publishes the token we
-- give it in a DNS TXT record, and only then does the domain route sign-ins (home-realm discovery,
-- login_hint) to its IdP. Several organizations may claim a domain; one at most verifies it.
-- Domains declared before this migration stay in effect: they are marked verified.

CREATE TABLE org_domains_new (
    org_id              TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    domain              TEXT NOT NULL,     -- lower case
    connection_id       TEXT REFERENCES sso_connections(id) ON DELETE SET NULL,
    -- Published by the organization at _idbridge-verification.<domain>; not a secret.
    verification_token  TEXT NOT NULL,
    verified_at         INTEGER,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (org_id, domain)
);
INSERT INTO org_domains_new (org_id, domain, connection_id, verification_token, verified_at, created_at)
    SELECT org_id, domain, connection_id, lower(hex(randomblob(16))), created_at, created_at
    FROM org_domains;
DROP TABLE org_domains;
ALTER TABLE org_domains_new RENAME TO org_domains;
CREATE UNIQUE INDEX org_domains_verified ON org_domains(domain) WHERE verified_at IS NOT NULL;
