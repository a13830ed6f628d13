//! The product's vocabulary, parsed once at the edge: roles, features and permission levels. Values
//! of these types are valid by construction, so the layers above never re-check strings.

pub mod access;
pub mod clock;
pub mod limits;

/// The key a person's name or email is compared by: ASCII letters folded, everything else kept.
///
/// Okta and Entra compare logins ASCII case-insensitively. Unicode lowercasing would make
/// `Kate@…` written with U+212A KELVIN SIGN the same person as `kate@…`, so a directory or an
/// IdP could reach someone else's account with a look-alike name. Every entry point (SCIM
/// userName, sign-in email, admin lookups, SQL comparisons) folds through this one rule.
pub fn fold_key(s: &str) -> String {
    s.to_ascii_lowercase()
}
