-- Console sessions opened by signing in through the organization's own SSO, beside those a portal
-- link opens: such a session has no link but names the person (`org_user_id`), and its intent
-- `all` reaches every page their role allows. A session has exactly one of the two origins.
-- Existing rows are portal-link sessions and keep their link.
ALTER TABLE console_sessions ALTER COLUMN link_id DROP NOT NULL;
ALTER TABLE console_sessions ADD COLUMN org_user_id TEXT REFERENCES org_users(id) ON DELETE CASCADE;
ALTER TABLE console_sessions ADD CONSTRAINT console_sessions_one_origin
    CHECK ((link_id IS NULL) <> (org_user_id IS NULL));
CREATE INDEX console_sessions_user ON console_sessions(org_user_id) WHERE org_user_id IS NOT NULL;
