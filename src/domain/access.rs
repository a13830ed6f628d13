//! Roles, features and permission levels of the product idbridge provisions into.
//!
//! Each type has exactly one spelling, snake_case, shared by JSON, `FromStr` and `Display`, so an
//! admin API, a database column and a log line can never disagree on a name. Where a type has a
//! precedence, its `Ord` is that precedence (lowest first), so "highest wins" is `max`.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Serialize};

/// A string that names no variant of the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub(super) kind: &'static str,
    pub(super) value: String,
    pub(super) expected: &'static [&'static str],
}

impl ParseError {
    /// What was being parsed, e.g. "organization role".
    pub fn kind(&self) -> &'static str {
        self.kind
    }
    /// The rejected input.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-quoting escapes control characters, so a hostile value cannot forge log lines.
        write!(
            f,
            "unknown {} {:?}; expected one of: {}",
            self.kind,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for ParseError {}

/// Lets every enum here deserialize from borrowed or owned strings (values and map keys alike)
/// through its `FromStr`, so serde and the rest of the code share one table of names and one error
/// message.
pub(crate) struct FromStrVisitor<T>(pub(crate) PhantomData<T>);

impl<T: FromStr<Err = ParseError>> Visitor<'_> for FromStrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in `Ord` order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::domain::access::ParseError;

            fn from_str(s: &str) -> Result<Self, $crate::domain::access::ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::access::ParseError {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str($crate::domain::access::FromStrVisitor(::std::marker::PhantomData))
            }
        }

        /// The OpenAPI schema: a string of exactly these spellings.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// For the other vocabularies of `domain` (the audit names).
pub(crate) use string_enum;

string_enum! {
    /// A role valid in every current and future sub-account of an organization.
    ///
    /// Roles fall into independent families ([`OrgRole::family`]): a user may hold one role of each
    /// family at once, e.g. `OrgAdmin` and `BillingAdmin`. `Ord` is precedence only between roles of
    /// the same family; across families it is merely a stable order.
    OrgRole, "organization role" {
        /// Exactly one person. Ownership moves only by explicit transfer, never through a grant.
        OrgOwner = "org_owner",
        OrgViewer = "org_viewer",
        OrgAdmin = "org_admin",
        BillingViewer = "billing_viewer",
        BillingAdmin = "billing_admin",
    }
}

/// Roles of one family compete (the highest wins); roles of different families accumulate.
///
/// The owner is a family of its own rather than the top of `Org`: ownership is a fact outside any
/// grant, so an owner who also receives `OrgAdmin` keeps it, and still has it after a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRoleFamily {
    Owner,
    Org,
    Billing,
}

impl OrgRoleFamily {
    pub const ALL: &'static [OrgRoleFamily] = &[Self::Owner, Self::Org, Self::Billing];
}

impl OrgRole {
    pub const fn family(self) -> OrgRoleFamily {
        match self {
            OrgRole::OrgOwner => OrgRoleFamily::Owner,
            OrgRole::OrgViewer | OrgRole::OrgAdmin => OrgRoleFamily::Org,
            OrgRole::BillingViewer | OrgRole::BillingAdmin => OrgRoleFamily::Billing,
        }
    }

    /// True when `self` takes precedence over `other`: same family and higher.
    pub fn outranks(self, other: OrgRole) -> bool {
        self.family() == other.family() && self > other
    }
}

string_enum! {
    /// The type of an event in the outbox, as webhook receivers and `/events` readers see it.
    /// These spellings are a published interface: add types, never rename one.
    EventType, "event type" {
        /// A person gained access for the first time (or again, after being deprovisioned).
        UserProvisioned = "user.provisioned",
        /// A deactivated person is active again.
        UserReactivated = "user.reactivated",
        /// A person lost all access; their sessions were revoked in the same transaction.
        UserDeprovisioned = "user.deprovisioned",
        /// A SCIM userName change renamed the person.
        UserRenamed = "user.renamed",
        /// A SCIM userName change made two people one.
        UserMerged = "user.merged",
        /// A SCIM user moved to another person of the organization.
        UserMoved = "user.moved",
        AccessGranted = "access.granted",
        AccessRevoked = "access.revoked",
        OwnerTransferred = "owner.transferred",
        /// A change would have deprovisioned the owner and was refused.
        OwnerDeprovisionRefused = "owner.deprovision_refused",
    }
}

string_enum! {
    /// A user's role in one sub-account (workspace), lowest first.
    SubAccountRole, "sub-account role" {
        Viewer = "viewer",
        Member = "member",
        Admin = "admin",
        Owner = "owner",
    }
}

string_enum! {
    /// A product area whose access is set per sub-account, independently of the role.
    Feature, "feature" {
        /// The Email API and SMTP relay.
        EmailApi = "email_api",
        Sandbox = "sandbox",
        Campaigns = "campaigns",
        Analytics = "analytics",
        Settings = "settings",
    }
}

string_enum! {
    /// Access to one feature, lowest first.
    Level, "permission level" {
        None = "none",
        Read = "read",
        Full = "full",
    }
}

string_enum! {
    /// A user's role in one project.
    ///
    /// A type of its own rather than `SubAccountRole`: a project belongs to its sub-account, whose
    /// owner owns it, so there is no project owner, and with this type "owner of a project" cannot
    /// be written into a grant at all.
    ProjectRole, "project role" {
        Viewer = "viewer",
        Member = "member",
        Admin = "admin",
    }
}

string_enum! {
    /// The protocol a single sign-on connection speaks; its settings are that protocol's.
    ConnectionKind, "connection kind" {
        Oidc = "oidc",
        Saml = "saml",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Webhook receivers depend on these spellings, and the README is where they read them.
    #[test]
    fn every_event_type_is_documented_with_its_spelling() {
        crate::domain::assert_published(
            EventType::ALL,
            &[
                "user.provisioned",
                "user.reactivated",
                "user.deprovisioned",
                "user.renamed",
                "user.merged",
                "user.moved",
                "access.granted",
                "access.revoked",
                "owner.transferred",
                "owner.deprovision_refused",
            ],
        );
    }

    /// Each type's names, in `Ord` order: the table is the contract with the database and the API.
    #[test]
    fn names_and_order() {
        fn names<T: Copy + Ord + fmt::Display>(all: &[T]) -> Vec<String> {
            assert!(all.windows(2).all(|w| w[0] < w[1]), "ALL is in Ord order");
            all.iter().map(|v| v.to_string()).collect()
        }
        let cases: [(Vec<String>, &[&str]); 5] = [
            (
                names(OrgRole::ALL),
                &[
                    "org_owner",
                    "org_viewer",
                    "org_admin",
                    "billing_viewer",
                    "billing_admin",
                ],
            ),
            (
                names(SubAccountRole::ALL),
                &["viewer", "member", "admin", "owner"],
            ),
            (
                names(Feature::ALL),
                &["email_api", "sandbox", "campaigns", "analytics", "settings"],
            ),
            (names(Level::ALL), &["none", "read", "full"]),
            (names(ProjectRole::ALL), &["viewer", "member", "admin"]),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    /// Display, FromStr, serde values and serde map keys all use the same spelling.
    #[test]
    fn round_trips() {
        fn check<T>(all: &[T])
        where
            T: Copy + Ord + fmt::Debug + fmt::Display + FromStr<Err = ParseError>,
            T: Serialize + for<'de> Deserialize<'de>,
        {
            for &v in all {
                let s = v.to_string();
                assert_eq!(s.parse::<T>(), Ok(v));
                assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(s));
                assert_eq!(
                    serde_json::from_value::<T>(serde_json::json!(s)).unwrap(),
                    v
                );
                let map = std::collections::BTreeMap::from([(v, 1)]);
                let text = serde_json::to_string(&map).unwrap();
                assert_eq!(text, format!("{{\"{s}\":1}}"));
                let back: std::collections::BTreeMap<T, i32> = serde_json::from_str(&text).unwrap();
                assert_eq!(back, map);
            }
        }
        check(OrgRole::ALL);
        check(SubAccountRole::ALL);
        check(Feature::ALL);
        check(Level::ALL);
        check(ProjectRole::ALL);
    }

    #[test]
    fn unknown_names_are_errors() {
        let cases: [(Result<(), ParseError>, &str); 6] = [
            (
                "OrgAdmin".parse::<OrgRole>().map(drop),
                "unknown organization role \"OrgAdmin\"; expected one of: org_owner, org_viewer, org_admin, billing_viewer, billing_admin",
            ),
            (
                "Admin".parse::<SubAccountRole>().map(drop),
                "unknown sub-account role \"Admin\"; expected one of: viewer, member, admin, owner",
            ),
            (
                "smtp".parse::<Feature>().map(drop),
                "unknown feature \"smtp\"; expected one of: email_api, sandbox, campaigns, analytics, settings",
            ),
            (
                "write".parse::<Level>().map(drop),
                "unknown permission level \"write\"; expected one of: none, read, full",
            ),
            (
                "owner".parse::<ProjectRole>().map(drop),
                "unknown project role \"owner\"; expected one of: viewer, member, admin",
            ),
            (
                "".parse::<Level>().map(drop),
                "unknown permission level \"\"; expected one of: none, read, full",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn serde_rejects_unknown_names_with_the_same_message() {
        let err = serde_json::from_str::<Level>("\"admin\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown permission level \"admin\""),
            "{err}"
        );
        let err = serde_json::from_str::<std::collections::BTreeMap<Feature, Level>>(
            r#"{"email":"full"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("unknown feature \"email\""),
            "{err}"
        );
        let err = serde_json::from_str::<SubAccountRole>("3").unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
    }

    #[test]
    fn precedence() {
        use OrgRole::*;
        let sub = [
            (SubAccountRole::Owner, SubAccountRole::Admin),
            (SubAccountRole::Admin, SubAccountRole::Member),
            (SubAccountRole::Member, SubAccountRole::Viewer),
        ];
        for (hi, lo) in sub {
            assert!(hi > lo, "{hi} > {lo}");
        }
        assert!(Level::Full > Level::Read && Level::Read > Level::None);
        assert!(
            ProjectRole::Admin > ProjectRole::Member && ProjectRole::Member > ProjectRole::Viewer
        );

        // (a, b, a outranks b)
        let org = [
            (OrgAdmin, OrgViewer, true),
            (OrgViewer, OrgAdmin, false),
            (BillingAdmin, BillingViewer, true),
            (BillingViewer, BillingAdmin, false),
            (OrgAdmin, BillingViewer, false),
            (BillingAdmin, OrgViewer, false),
            (BillingAdmin, OrgAdmin, false),
            (OrgOwner, OrgAdmin, false),
            (OrgAdmin, OrgOwner, false),
            (OrgAdmin, OrgAdmin, false),
        ];
        for (a, b, want) in org {
            assert_eq!(a.outranks(b), want, "{a} outranks {b}");
        }
    }
}
