-- An admin token may expire: a token minted for a task stops working on its own, and a leaked one
-- has a bounded life. NULL: never expires (every token minted before this migration).
ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER;
