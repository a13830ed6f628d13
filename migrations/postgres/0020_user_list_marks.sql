-- Deleted users are counted per directory, beside the user count of 0018 and in the same rows: a
-- list paged by position (startIndex) starts a page after the last id of the page before it only
-- while no user was deleted since (deleting one moves every later position; creating one moves
-- none, ids sorting in creation order). Rows already stored start at 0, which is right: what
-- matters is whether the count changes.
ALTER TABLE scim_user_counts ADD COLUMN deleted BIGINT NOT NULL DEFAULT 0;
