//! The product's vocabulary, parsed once at the edge: roles, features and permission levels, and the
//! names of events and audit rows. Values of these types are valid by construction, so the layers
//! above never re-check strings.

pub mod access;
pub mod audit;
pub mod clock;
pub mod ids;
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

/// Pins a published vocabulary (event types, audit names): every spelling is exactly `spellings`,
/// in that order, parses back to its variant, and stands in backticks in the README, where
/// webhook receivers and audit readers find them.
#[cfg(test)]
pub(crate) fn assert_published<T>(all: &[T], spellings: &[&str])
where
    T: Copy + std::fmt::Display + std::fmt::Debug + PartialEq + std::str::FromStr,
    T::Err: std::fmt::Debug,
{
    let readme = include_str!("../../README.md");
    let names: Vec<String> = all.iter().map(|v| v.to_string()).collect();
    assert_eq!(names, spellings);
    for v in all {
        assert!(
            readme.contains(&format!("`{v}`")),
            "{v} is not in the README"
        );
        assert_eq!(v.to_string().parse::<T>().ok(), Some(*v));
    }
}
