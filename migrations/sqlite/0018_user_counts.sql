-- totalResults of a directory's unfiltered user list (RFC 7644 §3.4.2.4), without counting rows:
-- COUNT(*) visits every index entry of the directory's users, and the heap behind each one until
-- vacuum marks its page all-visible, which took 20-160 ms a page at 20,000 users. SCIM creates and
-- deletes keep this count in their own transaction. It is split in slots as on PostgreSQL, where
-- one row per directory would be a hot row; SQLite has one writer, but the same SQL serves both.
CREATE TABLE scim_user_counts (
    directory_id  TEXT NOT NULL REFERENCES directories(id) ON DELETE CASCADE,
    slot          INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (directory_id, slot)
);
INSERT INTO scim_user_counts (directory_id, slot, n)
SELECT directory_id, 0, COUNT(*) FROM scim_users GROUP BY directory_id;
