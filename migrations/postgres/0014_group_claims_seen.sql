-- The group-claim values sign-ins brought, per SSO connection, so that an admin choosing what a
-- mapping rule matches can pick a value the IdP really sends (IdPs that send groups only at
-- sign-in have nothing else to search). Bounded by the code that writes it: values of at most 256
-- bytes, at most 1,000 per connection, the least recently seen making room for new ones. Nothing
-- already stored changes: the table starts empty and fills at the next sign-ins.
CREATE TABLE group_claims_seen (
    connection_id  TEXT COLLATE "C" NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    org_id         TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    value          TEXT NOT NULL,
    first_seen_at  BIGINT NOT NULL,
    -- Refreshed at most once an hour per value, so a sign-in rarely writes here.
    last_seen_at   BIGINT NOT NULL,
    PRIMARY KEY (connection_id, value)
);
CREATE INDEX group_claims_seen_org ON group_claims_seen(org_id, value);
