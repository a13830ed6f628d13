-- A person's key folds ASCII letters only (domain::fold_key): Unicode lowercasing made a name
-- written with U+212A KELVIN SIGN the same person as one written with `K`. Keys written before
-- this migration are recomputed; SQLite's lower() folds ASCII only. No two rows can collide: the
-- ASCII fold tells apart at least what the old fold did.
UPDATE scim_users SET user_name_ci = lower(user_name) WHERE user_name_ci <> lower(user_name);
UPDATE org_users SET user_key = lower(user_name) WHERE user_key <> lower(user_name);
