//! One identity out of whatever the IdP sent, pure: a SAML assertion's attributes (under the
//! names the connection was given, or the usual names of Okta, Entra and the others) or an OIDC
//! ID token's claims, with Entra's groups overage told apart from "no groups".

use super::connection::{EMAIL_ATTRIBUTES, GROUPS_ATTRIBUTES, NAME_ATTRIBUTES, SamlSettings};
use super::oidc::{Groups, OidcIdentity};
use super::saml::SamlIdentity;

/// Entra's SAML overage: a link to Graph instead of the groups.
const SAML_GROUPS_LINK: &str = "http://schemas.microsoft.com/claims/groups.link";

/// The groups an IdP sent with a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupClaim {
    Values(Vec<String>),
    /// Entra's overage: too many groups for the token, a reference to Graph instead. The user's
    /// SCIM groups (and the claims of an earlier sign-in) stand.
    Overage,
    /// The IdP sent no groups: the claims of an earlier sign-in stand.
    Absent,
}

/// A verified identity from the IdP.
#[derive(Debug, Clone)]
pub struct SsoIdentity {
    /// The IdP's subject (OIDC `sub`, SAML NameID), for the log.
    pub subject: String,
    pub email: Option<String>,
    /// `Some(false)` when the IdP says the address is not verified.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub groups: GroupClaim,
}

/// The identity a verified SAML assertion carries. An attribute the connection names is the only
/// one read; without one, the first of the usual names that is present. A NameID that is an
/// address stands in for a missing email attribute.
pub fn from_saml(assertion: &SamlIdentity, settings: &SamlSettings) -> SsoIdentity {
    let pick = |configured: &Option<String>, defaults: &[&str]| -> Option<String> {
        match configured {
            Some(name) => assertion.attribute(name).map(str::to_string),
            None => defaults
                .iter()
                .find_map(|n| assertion.attribute(n))
                .map(str::to_string),
        }
    };
    let email = pick(&settings.email_attribute, EMAIL_ATTRIBUTES).or_else(|| {
        assertion
            .name_id
            .contains('@')
            .then(|| assertion.name_id.clone())
    });
    let name = pick(&settings.name_attribute, NAME_ATTRIBUTES);
    let groups = if assertion.attributes.contains_key(SAML_GROUPS_LINK) {
        GroupClaim::Overage
    } else {
        let names: Vec<&str> = match &settings.groups_attribute {
            Some(n) => vec![n.as_str()],
            None => GROUPS_ATTRIBUTES.to_vec(),
        };
        match names.iter().find_map(|n| assertion.attributes.get(*n)) {
            Some(values) => GroupClaim::Values(values.clone()),
            None => GroupClaim::Absent,
        }
    };
    SsoIdentity {
        subject: assertion.name_id.clone(),
        email,
        email_verified: None,
        name,
        groups,
    }
}

/// The identity a verified ID token carries.
pub fn from_oidc(token: OidcIdentity) -> SsoIdentity {
    SsoIdentity {
        subject: token.subject,
        email: token.email,
        email_verified: token.email_verified,
        name: token.name,
        groups: match token.groups {
            Groups::Present(v) => GroupClaim::Values(v),
            Groups::Overage => GroupClaim::Overage,
            Groups::Absent => GroupClaim::Absent,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use time::OffsetDateTime;

    use super::*;

    fn assertion(name_id: &str, attributes: &[(&str, &[&str])]) -> SamlIdentity {
        SamlIdentity {
            name_id: name_id.into(),
            name_id_format: None,
            session_index: None,
            assertion_id: "_a".into(),
            not_on_or_after: OffsetDateTime::UNIX_EPOCH,
            replay_cache_until: OffsetDateTime::UNIX_EPOCH,
            attributes: attributes
                .iter()
                .map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    const ENTRA_EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
    const ENTRA_GROUPS: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";

    #[test]
    fn entra_claim_uris_are_read_without_configuration() {
        let a = assertion(
            "opaque-id",
            &[
                (ENTRA_EMAIL, &["ada@example.com"]),
                (
                    "http://schemas.microsoft.com/identity/claims/displayname",
                    &["Ada"],
                ),
                (ENTRA_GROUPS, &["g1", "g2"]),
            ],
        );
        let id = from_saml(&a, &SamlSettings::default());
        assert_eq!(id.subject, "opaque-id");
        assert_eq!(id.email.as_deref(), Some("ada@example.com"));
        assert_eq!(id.name.as_deref(), Some("Ada"));
        assert_eq!(
            id.groups,
            GroupClaim::Values(vec!["g1".into(), "g2".into()])
        );
    }

    /// An attribute the admin named is the only one read: a `groups` attribute the IdP also sends
    /// must not stand in for the one configured.
    #[test]
    fn a_configured_attribute_replaces_the_usual_names() {
        let a = assertion(
            "ada@example.com",
            &[("groups", &["everyone"]), ("email", &["other@example.com"])],
        );
        let settings = SamlSettings {
            email_attribute: Some("mailPrimary".into()),
            groups_attribute: Some("memberOf".into()),
            ..SamlSettings::default()
        };
        let id = from_saml(&a, &settings);
        assert_eq!(id.groups, GroupClaim::Absent);
        assert_eq!(
            id.email.as_deref(),
            Some("ada@example.com"),
            "the NameID, as the configured attribute is missing"
        );
        let id = from_saml(&assertion("opaque-id", &[]), &settings);
        assert_eq!(id.email, None, "a NameID that is no address is no email");
    }

    /// Entra's overage is not "no groups": the user's SCIM groups stand.
    #[test]
    fn entras_groups_link_is_an_overage_whatever_else_is_sent() {
        let a = assertion(
            "ada@example.com",
            &[
                (
                    SAML_GROUPS_LINK,
                    &["https://graph.example/v1.0/users/1/memberOf"],
                ),
                (ENTRA_GROUPS, &["g1"]),
            ],
        );
        assert_eq!(
            from_saml(&a, &SamlSettings::default()).groups,
            GroupClaim::Overage
        );
    }

    #[test]
    fn oidc_groups_overage_and_verification_carry_over() {
        let token = |groups| OidcIdentity {
            subject: "sub-1".into(),
            issuer: "https://idp.example".into(),
            email: Some("ada@example.com".into()),
            email_verified: Some(false),
            name: None,
            groups,
        };
        let id = from_oidc(token(Groups::Overage));
        assert_eq!(id.groups, GroupClaim::Overage);
        assert_eq!(id.email_verified, Some(false));
        assert_eq!(from_oidc(token(Groups::Absent)).groups, GroupClaim::Absent);
        assert_eq!(
            from_oidc(token(Groups::Present(vec!["g".into()]))).groups,
            GroupClaim::Values(vec!["g".into()])
        );
    }
}
