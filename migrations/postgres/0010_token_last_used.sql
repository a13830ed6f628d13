-- When each admin and directory token last authenticated a request, to the minute, so an admin can
-- tell a token still in use (an IdP pushing, a script) from one safe to revoke. Tokens made before
-- this have no record until their next use.
ALTER TABLE admin_tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE directory_tokens ADD COLUMN last_used_at BIGINT;
