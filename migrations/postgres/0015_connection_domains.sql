-- A connection signs in only the users it is entitled to, so that one IdP of an organization (a
-- contractor's, say) cannot sign in the users of another: an email of a domain the organization
-- verified and routed to a connection signs in through that connection alone; an email of a
-- verified domain not routed to any connection, through any of the organization's connections;
-- an email of any other domain, only through a connection that allows other domains.
ALTER TABLE sso_connections ADD COLUMN allow_other_domains BOOLEAN NOT NULL DEFAULT FALSE;
-- Connections made before this model keep signing in whom they signed in (no one is locked out
-- by the upgrade); an admin turns the setting off once the organization's domains are verified.
UPDATE sso_connections SET allow_other_domains = TRUE;
