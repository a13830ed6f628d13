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
