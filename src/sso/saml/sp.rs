//! What we send to an IdP: our service provider metadata (SAML Metadata §2.4.4) and the
//! `AuthnRequest` (Core §3.4.1) over the HTTP-Redirect binding (Bindings §3.4).
//!
//! Requests are not signed (`AuthnRequestsSigned="false"`): the response's checks do not depend
//! on it, and every IdP we target accepts unsigned requests.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use samael::metadata::{
    EncryptionMethod, EntityDescriptor, HTTP_POST_BINDING, IndexedEndpoint, KeyDescriptor,
    SpSsoDescriptor,
};
use samael::traits::ToXml as _;
use time::{OffsetDateTime, UtcOffset};
use url::Url;

use super::{NS_SAML, NS_SAMLP, SamlConnection};

/// Bindings §3.4.3 and §3.5.3: RelayState MUST NOT exceed 80 bytes.
pub const MAX_RELAY_STATE_BYTES: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpError {
    #[error(
        "request ID {0:?} is not an xs:ID (a letter or '_', then letters, digits, '.', '-', '_')"
    )]
    InvalidRequestId(String),
    #[error("{field} {url:?} is not an absolute http(s) URL")]
    InvalidUrl { field: &'static str, url: String },
    #[error("RelayState is {0} bytes; the bindings allow at most {MAX_RELAY_STATE_BYTES}")]
    RelayStateTooLong(usize),
    #[error("{0} certificate is neither a PEM nor a DER X.509 certificate")]
    InvalidCertificate(&'static str),
    #[error("could not write {what}: {reason}")]
    Encoding { what: &'static str, reason: String },
    #[error("the system random generator failed: {0}")]
    Random(String),
}

/// A fresh request ID: `_` and 160 random bits in hex, the size Core §1.3.4 recommends so that
/// two IDs never collide. Keep it in the browser's session; it is the `InResponseTo` to expect.
pub fn new_request_id() -> Result<String, SpError> {
    let mut bytes = [0u8; 20];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| SpError::Random(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("_{hex}"))
}

/// Our entry in the IdP's trust: who we are and where to post responses.
#[derive(Debug, Clone, Copy)]
pub struct SpMetadata<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
    /// PEM or DER. Published with `use="signing"`; only needed once we sign requests or logout.
    pub signing_certificate: Option<&'a [u8]>,
    /// PEM or DER. Published with `use="encryption"`. An IdP that sees one may start encrypting
    /// assertions to it: publish it only for a connection given the matching private key with
    /// [`SamlConnection::with_decryption_key`], or [`super::validate_response`] refuses them
    /// ([`super::SamlError::EncryptedAssertionUnsupported`]).
    pub encryption_certificate: Option<&'a [u8]>,
}

impl<'a> SpMetadata<'a> {
    pub fn for_connection(conn: &'a SamlConnection) -> SpMetadata<'a> {
        SpMetadata {
            entity_id: conn.sp_entity_id(),
            acs_url: conn.acs_url(),
            signing_certificate: None,
            encryption_certificate: None,
        }
    }

    /// The `md:EntityDescriptor` document to serve at our metadata URL or hand to the IdP admin.
    pub fn to_xml(&self) -> Result<String, SpError> {
        absolute_url("acs_url", self.acs_url)?;
        let mut key_descriptors = Vec::new();
        if let Some(cert) = self.signing_certificate {
            key_descriptors.push(key_descriptor("signing", cert, None)?);
        }
        if let Some(cert) = self.encryption_certificate {
            let methods = [
                "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
            ]
            .map(|algorithm| EncryptionMethod {
                algorithm: algorithm.to_owned(),
            })
            .to_vec();
            key_descriptors.push(key_descriptor("encryption", cert, Some(methods))?);
        }
        let descriptor = EntityDescriptor {
            entity_id: Some(self.entity_id.to_owned()),
            sp_sso_descriptors: Some(vec![SpSsoDescriptor {
                protocol_support_enumeration: Some(NS_SAMLP.to_owned()),
                authn_requests_signed: Some(false),
                // Profiles §4.1.4.5 makes signed assertions mandatory over POST anyway; saying
                // so tells IdPs (ADFS, Shibboleth) that only sign when asked to sign.
                want_assertions_signed: Some(true),
                key_descriptors: (!key_descriptors.is_empty()).then_some(key_descriptors),
                assertion_consumer_services: vec![IndexedEndpoint {
                    binding: HTTP_POST_BINDING.to_owned(),
                    location: self.acs_url.to_owned(),
                    response_location: None,
                    index: 0,
                    is_default: Some(true),
                }],
                ..SpSsoDescriptor::default()
            }]),
            ..EntityDescriptor::default()
        };
        descriptor.to_string().map_err(|e| SpError::Encoding {
            what: "metadata",
            reason: e.to_string(),
        })
    }
}

fn key_descriptor(
    key_use: &'static str,
    cert: &[u8],
    encryption_methods: Option<Vec<EncryptionMethod>>,
) -> Result<KeyDescriptor, SpError> {
    let invalid = || SpError::InvalidCertificate(key_use);
    let x509 = if cert.trim_ascii_start().starts_with(b"-----BEGIN") {
        openssl::x509::X509::from_pem(cert).map_err(|_| invalid())?
    } else {
        openssl::x509::X509::from_der(cert).map_err(|_| invalid())?
    };
    let der = x509.to_der().map_err(|_| invalid())?;
    Ok(KeyDescriptor {
        key_use: Some(key_use.to_owned()),
        key_info: samael::key_info::KeyInfo {
            id: None,
            x509_data: Some(samael::key_info::X509Data {
                certificates: vec![STANDARD.encode(der)],
            }),
        },
        encryption_methods,
    })
}

/// One `AuthnRequest` (Core §3.4.1) asking the IdP to authenticate the user and post the
/// response to our ACS.
#[derive(Debug, Clone, Copy)]
pub struct AuthnRequest<'a> {
    /// From [`new_request_id`]; what the response's `InResponseTo` must equal.
    pub id: &'a str,
    /// The IdP's SingleSignOnService location for the HTTP-Redirect binding.
    pub destination: &'a str,
    /// Our entity id.
    pub issuer: &'a str,
    pub acs_url: &'a str,
    pub issue_instant: OffsetDateTime,
}

impl<'a> AuthnRequest<'a> {
    pub fn for_connection(
        conn: &'a SamlConnection,
        id: &'a str,
        idp_sso_url: &'a str,
        now: OffsetDateTime,
    ) -> AuthnRequest<'a> {
        AuthnRequest {
            id,
            destination: idp_sso_url,
            issuer: conn.sp_entity_id(),
            acs_url: conn.acs_url(),
            issue_instant: now,
        }
    }

    pub fn to_xml(&self) -> Result<String, SpError> {
        if !is_xs_id(self.id) {
            return Err(SpError::InvalidRequestId(self.id.to_owned()));
        }
        let instant = self
            .issue_instant
            .to_offset(UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .map_err(|e| SpError::Encoding {
                what: "IssueInstant",
                reason: e.to_string(),
            })?;
        // ProtocolBinding asks for the POST binding, the only one validate_response reads.
        // NameIDPolicy AllowCreate lets the IdP create a persistent id for a first login.
        Ok(format!(
            concat!(
                r#"<samlp:AuthnRequest xmlns:samlp="{samlp}" xmlns:saml="{saml}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{destination}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{binding}">"#,
                r#"<saml:Issuer>{issuer}</saml:Issuer>"#,
                r#"<samlp:NameIDPolicy AllowCreate="true"/>"#,
                r#"</samlp:AuthnRequest>"#
            ),
            samlp = NS_SAMLP,
            saml = NS_SAML,
            id = escape(self.id),
            instant = instant,
            destination = escape(self.destination),
            acs = escape(self.acs_url),
            binding = HTTP_POST_BINDING,
            issuer = escape(self.issuer),
        ))
    }

    /// The URL to redirect the browser to: `destination` plus `SAMLRequest` (DEFLATE, then
    /// base64, then URL-encoded: Bindings §3.4.4.1) and `RelayState` if any. Query parameters the
    /// IdP's URL already has (Google's `idpid`, say) are kept.
    pub fn redirect_url(&self, relay_state: Option<&str>) -> Result<Url, SpError> {
        let mut url = absolute_url("destination", self.destination)?;
        absolute_url("acs_url", self.acs_url)?;
        if let Some(state) = relay_state
            && state.len() > MAX_RELAY_STATE_BYTES
        {
            return Err(SpError::RelayStateTooLong(state.len()));
        }
        let xml = self.to_xml()?;
        // Raw DEFLATE (RFC 1951), no zlib header, as the binding requires.
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        let deflated = encoder
            .write_all(xml.as_bytes())
            .and_then(|()| encoder.finish())
            .map_err(|e| SpError::Encoding {
                what: "SAMLRequest",
                reason: e.to_string(),
            })?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("SAMLRequest", &STANDARD.encode(deflated));
            if let Some(state) = relay_state {
                query.append_pair("RelayState", state);
            }
        }
        Ok(url)
    }
}

fn absolute_url(field: &'static str, value: &str) -> Result<Url, SpError> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.has_host() => Ok(url),
        _ => Err(SpError::InvalidUrl {
            field,
            url: value.to_owned(),
        }),
    }
}

/// xs:ID is an NCName (Core §1.3.4); the ASCII subset is all we ever generate.
fn is_xs_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use flate2::read::DeflateDecoder;
    use libxml::tree::Node;
    use time::macros::datetime;

    use super::*;
    use crate::sso::saml::tests::{ACS, NOW, REQUEST_ID, SP, cert_bytes, conn, posted};
    use crate::sso::saml::validate_response;
    use crate::sso::saml::xml::{children, is, parse_strict};

    const IDP_SSO: &str = "https://idp.example.test/sso/redirect?tenant=acme";

    fn request<'a>() -> AuthnRequest<'a> {
        AuthnRequest {
            id: REQUEST_ID,
            destination: IDP_SSO,
            issuer: SP,
            acs_url: ACS,
            issue_instant: datetime!(2025-01-15 11:59:58.250 UTC),
        }
    }

    /// What the IdP does with the redirect: take the parameters, base64-decode, inflate.
    fn decode_redirect(url: &Url) -> (String, Option<String>) {
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let deflated = STANDARD
            .decode(param("SAMLRequest").expect("SAMLRequest parameter"))
            .expect("base64");
        let mut xml = String::new();
        DeflateDecoder::new(deflated.as_slice())
            .read_to_string(&mut xml)
            .expect("raw DEFLATE");
        (xml, param("RelayState"))
    }

    fn attr(node: &Node, name: &str) -> String {
        node.get_attribute(name).unwrap_or_default()
    }

    #[test]
    fn redirect_url_carries_the_deflated_request_and_keeps_the_idp_query() {
        let url = request().redirect_url(Some("/app/dashboard")).unwrap();
        assert_eq!(url.host_str(), Some("idp.example.test"));
        assert_eq!(url.path(), "/sso/redirect");
        assert!(url.query_pairs().any(|(k, v)| k == "tenant" && v == "acme"));

        let (xml, relay_state) = decode_redirect(&url);
        assert_eq!(relay_state.as_deref(), Some("/app/dashboard"));
        let doc = parse_strict(&xml).unwrap();
        let root = doc.get_root_element().unwrap();
        assert!(is(&root, NS_SAMLP, "AuthnRequest"));
        assert_eq!(attr(&root, "ID"), REQUEST_ID);
        assert_eq!(attr(&root, "Version"), "2.0");
        assert_eq!(attr(&root, "IssueInstant"), "2025-01-15T11:59:58Z");
        assert_eq!(attr(&root, "Destination"), IDP_SSO);
        assert_eq!(attr(&root, "AssertionConsumerServiceURL"), ACS);
        assert_eq!(attr(&root, "ProtocolBinding"), HTTP_POST_BINDING);
        let issuer = children(&root, NS_SAML, "Issuer");
        assert_eq!(issuer.len(), 1);
        assert_eq!(issuer[0].get_content(), SP);
        // samael, the other parser an IdP-side test would use, reads the same request.
        let parsed: samael::schema::AuthnRequest = xml.parse().unwrap();
        assert_eq!(parsed.id, REQUEST_ID);
        assert_eq!(parsed.assertion_consumer_service_url.as_deref(), Some(ACS));
    }

    #[test]
    fn request_values_are_escaped_not_spliced() {
        let acs = "https://sp.idbridge.test/saml/acs?org=a&x=\"<y>\"";
        let req = AuthnRequest {
            acs_url: acs,
            ..request()
        };
        let (xml, relay_state) = decode_redirect(&req.redirect_url(None).unwrap());
        assert_eq!(relay_state, None);
        let doc = parse_strict(&xml).unwrap();
        let root = doc.get_root_element().unwrap();
        assert_eq!(attr(&root, "AssertionConsumerServiceURL"), acs);
        assert_eq!(root.get_child_elements().len(), 2);
    }

    #[test]
    fn bad_request_inputs_are_refused() {
        let bad_id = AuthnRequest {
            id: "1-starts-with-a-digit",
            ..request()
        };
        assert!(matches!(
            bad_id.redirect_url(None),
            Err(SpError::InvalidRequestId(_))
        ));
        let quote_id = AuthnRequest {
            id: "_a\"b",
            ..request()
        };
        assert!(matches!(
            quote_id.to_xml(),
            Err(SpError::InvalidRequestId(_))
        ));
        let relative = AuthnRequest {
            destination: "/sso",
            ..request()
        };
        assert!(matches!(
            relative.redirect_url(None),
            Err(SpError::InvalidUrl {
                field: "destination",
                ..
            })
        ));
        let state = "x".repeat(MAX_RELAY_STATE_BYTES);
        assert!(request().redirect_url(Some(&state)).is_ok());
        let state = "x".repeat(MAX_RELAY_STATE_BYTES + 1);
        assert_eq!(
            request().redirect_url(Some(&state)),
            Err(SpError::RelayStateTooLong(MAX_RELAY_STATE_BYTES + 1))
        );
    }

    #[test]
    fn new_request_ids_are_xs_ids_and_differ() {
        let a = new_request_id().unwrap();
        let b = new_request_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 41);
        assert!(is_xs_id(&a), "{a}");
    }

    #[test]
    fn the_request_id_is_what_the_response_must_answer() {
        let conn = conn();
        let req = AuthnRequest::for_connection(&conn, REQUEST_ID, IDP_SSO, NOW);
        let (xml, _) = decode_redirect(&req.redirect_url(None).unwrap());
        let doc = parse_strict(&xml).unwrap();
        let id = attr(&doc.get_root_element().unwrap(), "ID");
        let posted = posted("valid.xml");
        let identity = validate_response(&posted, &conn, Some(&id), NOW).unwrap();
        assert_eq!(identity.name_id, "alice@example.com");
        assert!(validate_response(&posted, &conn, Some("_another-request"), NOW).is_err());
    }

    #[test]
    fn metadata_names_us_our_acs_and_our_certificates() {
        let signing = cert_bytes("idp-rsa");
        let encryption = cert_bytes("idp-rsa-next");
        let xml = SpMetadata {
            entity_id: SP,
            acs_url: ACS,
            signing_certificate: Some(&signing),
            encryption_certificate: Some(&encryption),
        }
        .to_xml()
        .unwrap();
        let doc = parse_strict(&xml).unwrap();
        let root = doc.get_root_element().unwrap();
        const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
        const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
        assert!(is(&root, MD, "EntityDescriptor"));
        assert_eq!(attr(&root, "entityID"), SP);
        let sp = children(&root, MD, "SPSSODescriptor");
        let [sp] = sp.as_slice() else {
            panic!("one SPSSODescriptor")
        };
        assert_eq!(attr(sp, "protocolSupportEnumeration"), NS_SAMLP);
        assert_eq!(attr(sp, "WantAssertionsSigned"), "true");
        assert_eq!(attr(sp, "AuthnRequestsSigned"), "false");
        let acs = children(sp, MD, "AssertionConsumerService");
        let [acs] = acs.as_slice() else {
            panic!("one AssertionConsumerService")
        };
        assert_eq!(attr(acs, "Binding"), HTTP_POST_BINDING);
        assert_eq!(attr(acs, "Location"), ACS);

        let keys = children(sp, MD, "KeyDescriptor");
        let uses: Vec<String> = keys.iter().map(|k| attr(k, "use")).collect();
        assert_eq!(uses, ["signing", "encryption"]);
        for (key, pem) in keys.iter().zip([&signing, &encryption]) {
            let info = children(key, DS, "KeyInfo");
            let data = children(&info[0], DS, "X509Data");
            let published = children(&data[0], DS, "X509Certificate")[0].get_content();
            let expected = openssl::x509::X509::from_pem(pem)
                .unwrap()
                .to_der()
                .unwrap();
            assert_eq!(STANDARD.decode(published.trim()).unwrap(), expected);
        }
    }

    #[test]
    fn metadata_without_certificates_has_no_key_descriptor() {
        let conn = conn();
        let xml = SpMetadata::for_connection(&conn).to_xml().unwrap();
        assert!(!xml.contains("KeyDescriptor"), "{xml}");
        assert!(xml.contains(ACS));
        let broken = SpMetadata {
            signing_certificate: Some(b"not a certificate"),
            ..SpMetadata::for_connection(&conn)
        };
        assert_eq!(broken.to_xml(), Err(SpError::InvalidCertificate("signing")));
    }
}
