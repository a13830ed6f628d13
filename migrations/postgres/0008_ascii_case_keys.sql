-- A person's key folds ASCII letters only (domain::fold_key): Unicode lowercasing made a name
-- written with U+212A KELVIN SIGN the same person as one written with `K`. Keys written before
-- this migration are recomputed with the same ASCII fold. No two rows can collide: the ASCII
-- fold tells apart at least what the old fold did.
UPDATE scim_users
   SET user_name_ci = translate(user_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
 WHERE user_name_ci <> translate(user_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
UPDATE org_users
   SET user_key = translate(user_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
 WHERE user_key <> translate(user_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
