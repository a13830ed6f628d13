//! Ids that must not be mistaken for one another.
//!
//! A person of an organization (`OrgUserId`) is not a SCIM User of one of its directories: Okta
//! and Entra each push their own User for the same person, and a SCIM id passed where the
//! person's id is wanted would recompute, revoke or audit nobody, or the wrong person, without a
//! type error. The person's id is its own type from the store up through provisioning, sessions
//! and the console; it reads as a `&str` wherever it is bound or shown, but a plain string
//! becomes one only by saying so.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a person of an organization: one per person, however many directories and
/// connections reach them.
///
/// A SCIM user's id, or any other string, is not one:
/// ```compile_fail
/// fn revoke(_person: &idbridge::domain::ids::OrgUserId) {}
/// let scim_user_id = String::from("2819c223-7f76-453a-919d-413861904646");
/// revoke(&scim_user_id);
/// ```
/// ```
/// fn revoke(_person: &idbridge::domain::ids::OrgUserId) {}
/// revoke(&idbridge::domain::ids::OrgUserId::new("0193c0de-0000-7000-8000-000000000001"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgUserId(String);

impl OrgUserId {
    /// An id read from the store, or one an admin named (a grant's user, a new owner), which
    /// the store then looks up within the caller's organization only.
    pub fn new(id: impl Into<String>) -> OrgUserId {
        OrgUserId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// For the store, which reads the id from its own column.
impl From<String> for OrgUserId {
    fn from(id: String) -> OrgUserId {
        OrgUserId(id)
    }
}

impl std::ops::Deref for OrgUserId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for OrgUserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for OrgUserId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for OrgUserId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for OrgUserId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for OrgUserId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}
