//! A connection's settings as the admin gives them and as they are stored, pure: what an OIDC or a
//! SAML connection needs, checked before anything is saved, and the IdP's SAML metadata read into
//! those settings.

use serde::{Deserialize, Serialize};

use super::saml::{self, SamlConnection};
use crate::domain::access::ConnectionKind;

/// The settings of an OIDC connection (the client secret is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The IdP's issuer; discovery is read from `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The id_token claim that carries the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// The settings of a SAML connection. The IdP's three (entity id, SSO URL, certificates) may be
/// missing for a while: Okta and Entra show their metadata only once they have our ACS URL, which
/// exists only once the connection does. Such a connection is incomplete and signs nobody in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub idp_entity_id: String,
    /// The IdP's SingleSignOnService for the HTTP-Redirect binding.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub idp_sso_url: String,
    /// PEM certificates; a response verifies with any one of them, so an IdP can rotate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idp_certificates: Vec<String>,
    /// Where the metadata came from, when it was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// Accept responses the IdP sends unasked (a tile in its portal). Off: they can be replayed
    /// into another browser until they expire.
    #[serde(default)]
    pub idp_initiated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<i64>,
    /// Our entity id for this connection when the IdP needs a particular one; by default
    /// `{public_url}/sso/saml/{connection}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_entity_id: Option<String>,
    /// Attribute names; by default the usual ones of Okta and Entra are tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_attribute: Option<String>,
    /// Our certificate for assertion encryption, published in our SP metadata, when the
    /// connection accepts encrypted assertions; its private key is sealed with the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_encryption_certificate: Option<String>,
}

/// A key pair for the IdP to encrypt assertions to: RSA 3072 and a self-signed certificate (the
/// IdP trusts it because its admin uploads it or reads it from our metadata, not through a CA).
pub fn generate_sp_encryption_key(subject: &str) -> Result<(String, String), SettingsError> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};
    let err =
        |e: openssl::error::ErrorStack| SettingsError::Invalid(format!("key generation: {e}"));
    let key = PKey::from_rsa(Rsa::generate(3072).map_err(err)?).map_err(err)?;
    let mut name = X509NameBuilder::new().map_err(err)?;
    name.append_entry_by_text("CN", subject).map_err(err)?;
    let name = name.build();
    let mut serial = BigNum::new().map_err(err)?;
    serial
        .rand(128, MsbOption::MAYBE_ZERO, false)
        .map_err(err)?;
    let mut cert = X509::builder().map_err(err)?;
    cert.set_version(2).map_err(err)?;
    let serial = serial.to_asn1_integer().map_err(err)?;
    cert.set_serial_number(&serial).map_err(err)?;
    cert.set_subject_name(&name).map_err(err)?;
    cert.set_issuer_name(&name).map_err(err)?;
    cert.set_pubkey(&key).map_err(err)?;
    let (from, until) = (
        Asn1Time::days_from_now(0).map_err(err)?,
        Asn1Time::days_from_now(3650).map_err(err)?,
    );
    cert.set_not_before(&from).map_err(err)?;
    cert.set_not_after(&until).map_err(err)?;
    cert.sign(&key, MessageDigest::sha256()).map_err(err)?;
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().map_err(err)?)
        .map_err(|_| SettingsError::Invalid("key generation: not UTF-8".into()))?;
    let cert_pem = String::from_utf8(cert.build().to_pem().map_err(err)?)
        .map_err(|_| SettingsError::Invalid("key generation: not UTF-8".into()))?;
    Ok((key_pem, cert_pem))
}

/// Entra's claim URIs and the plain names Okta admins usually type.
pub const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];
pub const NAME_ATTRIBUTES: &[&str] = &[
    "name",
    "displayName",
    "http://schemas.microsoft.com/identity/claims/displayname",
];
pub const GROUPS_ATTRIBUTES: &[&str] = &[
    "groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Invalid(String),
    #[error("IdP metadata: {0}")]
    Metadata(String),
    #[error(transparent)]
    Saml(#[from] saml::ConfigError),
}

impl OidcSettings {
    pub fn check(&mut self, allow_private: bool) -> Result<(), SettingsError> {
        self.issuer = self.issuer.trim().to_string();
        crate::net::check_url(&self.issuer, allow_private)
            .map_err(|e| SettingsError::Invalid(format!("issuer: {e}")))?;
        if self.client_id.trim().is_empty() {
            return Err(SettingsError::Invalid("client_id is empty".into()));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            self.scopes.insert(0, "openid".into());
        }
        if self
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(SettingsError::Invalid(
                "scopes must be non-empty and without spaces".into(),
            ));
        }
        if self.groups_claim.trim().is_empty() {
            return Err(SettingsError::Invalid("groups_claim is empty".into()));
        }
        Ok(())
    }
}

impl SamlSettings {
    /// What the IdP has yet to give before a sign-in can be verified; empty when complete.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.idp_entity_id.trim().is_empty() {
            missing.push("idp_entity_id");
        }
        if self.idp_sso_url.trim().is_empty() {
            missing.push("idp_sso_url");
        }
        if self.idp_certificates.is_empty() {
            missing.push("idp_certificates");
        }
        missing
    }

    /// Checks everything a login will rely on, by building the connection it will build. An
    /// incomplete connection has what it was given checked, and the rest waits.
    pub fn check(&self, allow_private: bool) -> Result<(), SettingsError> {
        if !self.idp_sso_url.is_empty() {
            crate::net::check_url(&self.idp_sso_url, allow_private)
                .map_err(|e| SettingsError::Invalid(format!("idp_sso_url: {e}")))?;
        }
        if self.idp_certificates.is_empty() {
            return Ok(());
        }
        let mut probe = self.clone();
        if probe.idp_entity_id.trim().is_empty() {
            probe.idp_entity_id = "urn:check".into();
        }
        probe.connection("urn:check", "https://check.invalid/acs")?;
        Ok(())
    }

    /// The validator's connection, with our entity id and ACS URL.
    pub fn connection(
        &self,
        sp_entity_id: &str,
        acs_url: &str,
    ) -> Result<SamlConnection, SettingsError> {
        let mut conn = SamlConnection::new(
            &self.idp_entity_id,
            &self.idp_certificates,
            self.sp_entity_id.as_deref().unwrap_or(sp_entity_id),
            acs_url,
        )?
        .with_idp_initiated(self.idp_initiated);
        if let Some(seconds) = self.clock_skew_seconds {
            conn = conn.with_clock_skew(time::Duration::seconds(seconds))?;
        }
        Ok(conn)
    }
}

/// A stored connection's settings, read as its kind's: the one place that turns the stored JSON
/// into typed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    Oidc(OidcSettings),
    Saml(SamlSettings),
}

impl Settings {
    pub fn read(kind: ConnectionKind, config: &serde_json::Value) -> Result<Self, SettingsError> {
        let stored = |e: serde_json::Error| SettingsError::Invalid(format!("stored settings: {e}"));
        Ok(match kind {
            ConnectionKind::Oidc => {
                Settings::Oidc(serde_json::from_value(config.clone()).map_err(stored)?)
            }
            ConnectionKind::Saml => {
                Settings::Saml(serde_json::from_value(config.clone()).map_err(stored)?)
            }
        })
    }

    /// The SAML settings of a connection that must be SAML.
    pub fn read_saml(
        kind: ConnectionKind,
        config: &serde_json::Value,
    ) -> Result<SamlSettings, SettingsError> {
        match Self::read(kind, config)? {
            Settings::Saml(s) => Ok(s),
            Settings::Oidc(_) => Err(SettingsError::Invalid("not a SAML connection".into())),
        }
    }

    /// The OIDC settings of a connection that must be OIDC.
    pub fn read_oidc(
        kind: ConnectionKind,
        config: &serde_json::Value,
    ) -> Result<OidcSettings, SettingsError> {
        match Self::read(kind, config)? {
            Settings::Oidc(s) => Ok(s),
            Settings::Saml(_) => Err(SettingsError::Invalid("not an OIDC connection".into())),
        }
    }
}

/// What a stored connection still lacks before it can sign anyone in (only SAML connections can
/// be incomplete); unreadable settings count as missing everything.
pub fn missing_settings(kind: ConnectionKind, config: &serde_json::Value) -> Vec<&'static str> {
    match Settings::read(kind, config) {
        Ok(Settings::Saml(s)) => s.missing(),
        Err(_) if kind == ConnectionKind::Saml => {
            vec!["idp_entity_id", "idp_sso_url", "idp_certificates"]
        }
        Ok(Settings::Oidc(_)) | Err(_) => Vec::new(),
    }
}

/// An IdP signing certificate as admins paste it: PEM, or the bare base64 body that metadata
/// carries in `<ds:X509Certificate>` (what Okta's and Entra's pages show). Kept as PEM.
pub fn certificate_pem(index: usize, input: &str) -> Result<String, SettingsError> {
    use base64::Engine as _;
    let trimmed = input.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(format!("{trimmed}\n"));
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .ok()
        .filter(|der| openssl::x509::X509::from_der(der).is_ok());
    match der {
        Some(_) => Ok(der_base64_to_pem(&compact)),
        None => Err(SettingsError::Invalid(format!(
            "idp_certificates[{index}] is not a certificate: give a PEM certificate \
             (-----BEGIN CERTIFICATE-----) or the base64 text of one, as in the IdP's metadata"
        ))),
    }
}

/// What IdP metadata says of the IdP (SAML Metadata §2.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
    pub certificates: Vec<String>,
}

/// Largest metadata document read; Entra's, with several certificates, is about 25 KiB.
pub const MAX_METADATA_BYTES: usize = 512 * 1024;

/// Reads an IdP's metadata: its entity id, its HTTP-Redirect SingleSignOnService, and its signing
/// certificates (KeyDescriptors with `use="signing"` or no `use`) as PEM.
///
/// The metadata's own signature is not checked: it is trusted as the admin's input, fetched over
/// https from the address the admin gave.
pub fn parse_idp_metadata(xml: &str) -> Result<IdpMetadata, SettingsError> {
    let bad = |m: &str| SettingsError::Metadata(m.to_string());
    if xml.len() > MAX_METADATA_BYTES {
        return Err(bad("larger than 512 KiB"));
    }
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(bad("DOCTYPE or ENTITY declarations are not accepted"));
    }
    let entity: samael::metadata::EntityDescriptor = xml
        .parse()
        .map_err(|e| SettingsError::Metadata(format!("{e}")))?;
    let entity_id = entity
        .entity_id
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| bad("no entityID"))?;
    let idp = entity
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| bad("no IDPSSODescriptor"))?;
    let sso_url = idp
        .single_sign_on_services
        .iter()
        .find(|e| e.binding == samael::metadata::HTTP_REDIRECT_BINDING)
        .map(|e| e.location.clone())
        .ok_or_else(|| bad("no SingleSignOnService with the HTTP-Redirect binding"))?;
    let certificates: Vec<String> = idp
        .key_descriptors
        .iter()
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "signing"))
        .filter_map(|k| k.key_info.x509_data.as_ref())
        .flat_map(|x| x.certificates.iter())
        .map(|b64| der_base64_to_pem(b64))
        .collect();
    if certificates.is_empty() {
        return Err(bad("no signing certificate"));
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificates,
    })
}

fn der_base64_to_pem(b64: &str) -> String {
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in compact.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_b64() -> String {
        let pem = std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap();
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    fn metadata(cert: &str, binding: &str, key_use: &str) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/entity">
<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<md:KeyDescriptor{key_use}><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
<md:SingleSignOnService Binding="{binding}" Location="https://idp.example/sso"/>
</md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

    #[test]
    fn metadata_gives_entity_sso_url_and_certificates_that_a_connection_accepts() {
        let md = parse_idp_metadata(&metadata(&cert_b64(), REDIRECT, "")).unwrap();
        assert_eq!(md.entity_id, "https://idp.example/entity");
        assert_eq!(md.sso_url, "https://idp.example/sso");
        assert_eq!(md.certificates.len(), 1);
        let settings = SamlSettings {
            idp_entity_id: md.entity_id,
            idp_sso_url: md.sso_url,
            idp_certificates: md.certificates,
            metadata_url: None,
            idp_initiated: false,
            clock_skew_seconds: None,
            sp_entity_id: None,
            email_attribute: None,
            name_attribute: None,
            groups_attribute: None,
            sp_encryption_certificate: None,
        };
        settings.check(false).unwrap();
    }

    #[test]
    fn metadata_without_what_a_login_needs_is_refused() {
        let post = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
        for (xml, why) in [
            (metadata(&cert_b64(), post, ""), "HTTP-Redirect"),
            (
                metadata(&cert_b64(), REDIRECT, r#" use="encryption""#),
                "signing certificate",
            ),
            ("<notmetadata/>".to_string(), ""),
            (
                format!("<!DOCTYPE x>{}", metadata(&cert_b64(), REDIRECT, "")),
                "DOCTYPE",
            ),
        ] {
            let err = parse_idp_metadata(&xml).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn saml_settings_without_a_usable_certificate_are_refused() {
        let mut s = SamlSettings {
            idp_entity_id: "https://idp.example/entity".into(),
            idp_sso_url: "https://idp.example/sso".into(),
            idp_certificates: vec![],
            metadata_url: None,
            idp_initiated: false,
            clock_skew_seconds: None,
            sp_entity_id: None,
            email_attribute: None,
            name_attribute: None,
            groups_attribute: None,
            sp_encryption_certificate: None,
        };
        // Without certificates the connection is incomplete: kept, and it signs nobody in.
        assert!(s.check(false).is_ok());
        assert_eq!(s.missing(), ["idp_certificates"]);
        assert!(matches!(
            s.connection("urn:sp", "https://sp.example/acs"),
            Err(SettingsError::Saml(saml::ConfigError::NoIdpCertificate))
        ));
        s.idp_certificates = vec!["not a certificate".into()];
        assert!(s.check(false).is_err());
        s.idp_certificates = vec![der_base64_to_pem(&cert_b64())];
        s.idp_sso_url = "http://10.0.0.1/sso".into();
        assert!(s.check(false).is_err(), "http and private addresses");
        s.idp_sso_url = "https://idp.example/sso".into();
        s.clock_skew_seconds = Some(3600);
        assert!(s.check(false).is_err(), "an hour of skew");
    }

    #[test]
    fn oidc_settings_add_openid_and_refuse_private_issuers() {
        let mut s: OidcSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://login.example/tenant/v2.0", "client_id": "abc", "scopes": ["email"]
        }))
        .unwrap();
        s.check(false).unwrap();
        assert_eq!(s.scopes, ["openid", "email"]);
        assert_eq!(s.groups_claim, "groups");
        s.issuer = "http://127.0.0.1:9/".into();
        assert!(s.check(false).is_err());
        assert!(s.check(true).is_ok());
    }
}
