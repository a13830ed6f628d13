-- Trust between an organization's IdPs: a mapping rule names the directory or connection its
-- groups or claims must come from (`source`, JSON: "any", {"directory": id}, {"connection": id}),
-- and a user's claim values remember the connection whose sign-in brought them.
--
-- Rows already stored: a rule of an organization with exactly one directory (group matchers) or
-- exactly one connection (claim matchers) is bound to it, so it keeps matching what it matched;
-- a directory_default rule is bound to its directory; every other rule stays "any", as before.
-- Claim values of an organization with exactly one connection are marked as that connection's.
-- Replicas of the previous release write "any" (the default) until they are upgraded.
ALTER TABLE mapping_rules ADD COLUMN source TEXT NOT NULL DEFAULT '"any"';
ALTER TABLE org_user_claims ADD COLUMN connection_id TEXT;

UPDATE mapping_rules SET source = '{"directory":"' || (matcher::jsonb ->> 'directory_id') || '"}'
WHERE (matcher::jsonb ->> 'type') = 'directory_default';

UPDATE mapping_rules SET source = (
    SELECT '{"directory":"' || MIN(d.id) || '"}' FROM directories d WHERE d.org_id = mapping_rules.org_id)
WHERE (matcher::jsonb ->> 'type') IN ('group_id', 'external_id', 'display_name')
  AND (SELECT COUNT(*) FROM directories d WHERE d.org_id = mapping_rules.org_id) = 1;

UPDATE mapping_rules SET source = (
    SELECT '{"connection":"' || MIN(c.id) || '"}' FROM sso_connections c WHERE c.org_id = mapping_rules.org_id)
WHERE (matcher::jsonb ->> 'type') = 'claim'
  AND (SELECT COUNT(*) FROM sso_connections c WHERE c.org_id = mapping_rules.org_id) = 1;

UPDATE org_user_claims SET connection_id = (
    SELECT MIN(c.id) FROM sso_connections c WHERE c.org_id = org_user_claims.org_id)
WHERE (SELECT COUNT(*) FROM sso_connections c WHERE c.org_id = org_user_claims.org_id) = 1;
