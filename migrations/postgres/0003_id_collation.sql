-- Every column that holds an id in the "C" collation, like the primary keys it refers to. A join
-- between columns of different collations cannot use a btree index (PostgreSQL matches the index's
-- collation to the comparison's), so `scim_group_members.member_id = scim_users.id` and friends
-- scanned whole tables. Equality on UUID text is the same in either collation; only plans change.

ALTER TABLE organizations ALTER COLUMN owner_user_id TYPE TEXT COLLATE "C";
ALTER TABLE directories ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE directory_tokens ALTER COLUMN directory_id TYPE TEXT COLLATE "C";
ALTER TABLE scim_users ALTER COLUMN directory_id TYPE TEXT COLLATE "C";
ALTER TABLE scim_users ALTER COLUMN org_user_id TYPE TEXT COLLATE "C";
ALTER TABLE scim_groups ALTER COLUMN directory_id TYPE TEXT COLLATE "C";
ALTER TABLE scim_group_members ALTER COLUMN group_id TYPE TEXT COLLATE "C";
ALTER TABLE scim_group_members ALTER COLUMN member_id TYPE TEXT COLLATE "C";
ALTER TABLE scim_group_members ALTER COLUMN directory_id TYPE TEXT COLLATE "C";
ALTER TABLE audit_log ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE audit_log ALTER COLUMN directory_id TYPE TEXT COLLATE "C";
ALTER TABLE audit_log ALTER COLUMN resource_id TYPE TEXT COLLATE "C";
ALTER TABLE sub_accounts ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE projects ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE projects ALTER COLUMN sub_account_id TYPE TEXT COLLATE "C";
ALTER TABLE org_users ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE org_user_claims ALTER COLUMN org_user_id TYPE TEXT COLLATE "C";
ALTER TABLE org_user_claims ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE mapping_rules ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE manual_grants ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE manual_grants ALTER COLUMN org_user_id TYPE TEXT COLLATE "C";
ALTER TABLE manual_grants ALTER COLUMN sub_account_id TYPE TEXT COLLATE "C";
ALTER TABLE events ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE events ALTER COLUMN org_user_id TYPE TEXT COLLATE "C";
ALTER TABLE sessions ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE sessions ALTER COLUMN org_user_id TYPE TEXT COLLATE "C";
ALTER TABLE admin_tokens ALTER COLUMN org_id TYPE TEXT COLLATE "C";
ALTER TABLE admin_tokens ALTER COLUMN sub_account_id TYPE TEXT COLLATE "C";
ALTER TABLE webhooks ALTER COLUMN org_id TYPE TEXT COLLATE "C";
