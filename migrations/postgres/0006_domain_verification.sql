-- Email domains are proven, not declared: an organization claims a domain, publishes the token we
-- give it in a DNS TXT record, and only then does the domain route sign-ins (home-realm discovery,
-- login_hint) to its IdP. Several organizations may claim a domain; one at most verifies it.
-- Domains declared before this migration stay in effect: they are marked verified.

ALTER TABLE org_domains DROP CONSTRAINT org_domains_pkey;
-- Published by the organization at _idbridge-verification.<domain>; not a secret.
ALTER TABLE org_domains ADD COLUMN verification_token TEXT;
ALTER TABLE org_domains ADD COLUMN verified_at BIGINT;
UPDATE org_domains SET verification_token = md5(random()::text || domain), verified_at = created_at;
ALTER TABLE org_domains ALTER COLUMN verification_token SET NOT NULL;
ALTER TABLE org_domains ADD PRIMARY KEY (org_id, domain);
DROP INDEX org_domains_org;
CREATE UNIQUE INDEX org_domains_verified ON org_domains(domain) WHERE verified_at IS NOT NULL;
