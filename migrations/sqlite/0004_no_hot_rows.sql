-- Provisioning no longer updates the organization row: a row every write of an organization
-- updated became a hot spot (on PostgreSQL, thousands of dead versions of one row to walk, and every
-- write of the organization queued on its lock). Seats are counted from this index instead, and
-- event numbers come from the events themselves.
CREATE INDEX org_users_active ON org_users(org_id) WHERE active;
ALTER TABLE organizations DROP COLUMN active_users;
ALTER TABLE organizations DROP COLUMN event_seq;
