-- Ownership changes only by explicit transfer: the owner signs in only through a connection the
-- owner has marked as theirs (signs_in_owner), and only the owner makes, changes or removes such a
-- connection. An admin's own IdP can no longer sign someone in as the owner.
ALTER TABLE sso_connections ADD COLUMN signs_in_owner BOOLEAN NOT NULL DEFAULT FALSE;
-- Connections made before this model keep signing the owner in, so no owner is locked out by the
-- upgrade; the owner can unmark them.
UPDATE sso_connections SET signs_in_owner = TRUE;
