//! SAML 2.0 Web Browser SSO (Profiles §4.1) on the service provider's side, pure: the base64
//! `SAMLResponse` an identity provider posted to our assertion consumer service, the connection's
//! configuration, the id of the request we are waiting for and the current time go in; the
//! authenticated identity comes out, or a [`SamlError`] that says exactly why not. No IO, no clock,
//! no database: the caller keeps outstanding request ids and the replay cache.
//!
//! - [`validate_response`]: the whole check of one posted response, with [`SamlConnection`] in
//!   and [`SamlIdentity`] or [`SamlError`] out. Its parts, private: `xml` (strict libxml2
//!   parsing and reading), `signature` (the envelope, signature placement and algorithms, xmlsec
//!   verification), `decrypt` (an `EncryptedAssertion`, with our key), `conditions` (the
//!   protocol checks on the signed assertion).
//! - [`sp`]: what we send: our metadata and the `AuthnRequest` for the HTTP-Redirect binding.
//!
//! The signature is verified by libxmlsec1 through `samael` (which also hands back the exact bytes
//! the signature covers). Everything around it is done here, because samael 0.0.22's
//! `ServiceProvider` is unsafe to rely on: it skips signature verification when the IdP metadata
//! has no certificate, allows every signature algorithm (SHA-1 included) unless told otherwise,
//! reads `Utc::now()`, accepts a missing `AudienceRestriction`, ignores `InResponseTo` entirely
//! when IdP-initiated login is allowed, and parses with libxml2's recover mode. Its schema types
//! are not used to read the assertion either: their serde parsing ignores namespaces.
//!
//! How a forged, altered or replayed response is stopped, in order:
//! 1. size limit before decoding and parsing, no DOCTYPE, a strict (non-recovering) parse;
//! 2. the envelope: exactly one `Assertion` in the whole document, a direct child of the
//!    `Response`; every `ds:Signature` enveloped directly in the Response or the Assertion with
//!    one Reference to its parent's ID; signature, digest, canonicalization and transform
//!    algorithms on an allow-list; no duplicate IDs;
//! 3. xmlsec verifies every signature with one configured certificate (tried in turn), never
//!    with a key from the message;
//! 4. the assertion is read from the pre-digest bytes of the verified signature (what was
//!    signed, after exclusive canonicalization), so nothing unsigned, and no comment, can change
//!    a value that is read;
//! 5. the protocol checks of Profiles §4.1.4.3 with `now` and the allowed clock skew.
//!
//! # Encrypted assertions
//!
//! An `EncryptedAssertion` (Core §2.3.4) is refused with
//! [`SamlError::EncryptedAssertionUnsupported`] unless the connection has our decryption key
//! ([`SamlConnection::with_decryption_key`]). With one, it takes the Assertion's place in the
//! rules above (exactly one of the two in the whole document, a direct child of the Response),
//! and then, in order:
//! 1. signatures on the original document first: the only one allowed there is the Response's,
//!    which covers the encrypted form; xmlsec verifies it before anything is decrypted, and the
//!    `EncryptedAssertion` is then taken from what it verified;
//! 2. decryption (see `decrypt` for the algorithms: RSA-OAEP key transport only, `rsa-1_5`
//!    refused before any key is used; AES-GCM or AES-CBC content); the plaintext gets the same
//!    size limit, UTF-8, no-DOCTYPE and strict-parse treatment as the posted document;
//! 3. the decrypted `Assertion` gets the envelope rules: it is the root, holds no other
//!    assertion, its IDs are unique across both documents, at most one enveloped Signature with
//!    one Reference to its ID and allowed algorithms;
//! 4. signed by itself or by the Response, as before ([`SamlError::SignatureMissing`] if
//!    neither); its own signature is verified by xmlsec on the decrypted document, and read from
//!    the pre-digest bytes as in step 4 above; with only the Response signed, it is read from the
//!    decrypted tree (the Response signature covers the ciphertext, the GCM tag binds the
//!    plaintext to it);
//! 5. the same protocol checks, on the decrypted assertion, with the Response's fields.
//!
//! With AES-CBC the assertion must be signed itself, a Response signature is not enough
//! ([`SamlError::EncryptedAssertionNotSigned`]). CBC does not authenticate: a changed
//! ciphertext still decrypts, and flipping a bit of the IV or of one block flips the same bit
//! of the next block's plaintext. The Response signature covers the ciphertext as xmlsec read
//! and canonicalized it, but what we read is the output of a second, separate step (our
//! selection of the EncryptedKey, base64 decoding, padding removal); any gap between the two
//! becomes a controlled edit of the assertion, and CBC would not notice it. A signature over the
//! plaintext, verified after decryption on the very bytes we read, closes every such gap; with
//! GCM the tag refuses any altered ciphertext, so the Response signature suffices there. An
//! unsigned Response with a CBC assertion means we decrypt attacker-chosen ciphertext before
//! any signature is checked (the classic XML Encryption CBC attacks need exactly that): every
//! decryption failure is one [`SamlError::DecryptionFailed`], and the user sees one generic
//! page whatever the error; prefer GCM at the IdP where it allows it.
//!
//! Replay is the caller's half: keep [`SamlIdentity::assertion_id`] until
//! [`SamlIdentity::replay_cache_until`] and refuse an id seen before (Profiles §4.1.4.5).
//!
//! Errors are for the log. The user should see one generic "sign-in failed" page whatever the
//! variant, so that a probing attacker learns nothing about which check failed.

mod conditions;
mod decrypt;
mod signature;
pub mod sp;
#[cfg(test)]
mod tests;
mod xml;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::CertificateDer;
use time::{Duration, OffsetDateTime};

use conditions::check;
use decrypt::{DecryptionKey, decrypt_assertion};
use signature::{Envelope, verify_signatures};
use xml::parse_strict;

/// Largest decoded response accepted. Real responses are 5 to 30 KiB; with many group
/// attributes they stay well under this.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Clock skew allowed on every time check unless the connection says otherwise.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::minutes(3);
/// Largest skew a connection may configure: more turns an expired assertion into a valid one.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(10);

const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const NAMEID_ENTITY: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";

/// Why a connection's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no IdP signing certificate: a SAML connection without one cannot verify anything")]
    NoIdpCertificate,
    #[error("IdP signing certificate {index} is neither a PEM nor a DER X.509 certificate")]
    InvalidCertificate { index: usize },
    #[error("IdP signing certificate {index} has a {bits}-bit RSA key; at least 2048 is required")]
    WeakCertificateKey { index: usize, bits: u32 },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("acs_url {url:?} is not an absolute http(s) URL")]
    InvalidAcsUrl { url: String },
    #[error("clock skew {skew} is outside 0s..={MAX_CLOCK_SKEW}")]
    InvalidClockSkew { skew: Duration },
    #[error("the SP decryption key is not an unencrypted PEM RSA private key")]
    InvalidDecryptionKey,
    #[error("the SP decryption key is a {bits}-bit RSA key; at least 2048 is required")]
    WeakDecryptionKey { bits: u32 },
}

/// One organization's SAML connection: which IdP it trusts and who we are to it.
///
/// Built only through [`SamlConnection::new`], so a connection always has at least one usable
/// certificate and an absolute ACS URL.
#[derive(Debug, Clone)]
pub struct SamlConnection {
    idp_entity_id: String,
    idp_certificates: Vec<CertificateDer>,
    sp_entity_id: String,
    acs_url: String,
    clock_skew: Duration,
    allow_idp_initiated: bool,
    decryption_key: Option<DecryptionKey>,
}

impl SamlConnection {
    /// `idp_certificates`: each a PEM (one or more certificates) or DER X.509 certificate. Several
    /// are valid at once so that an IdP can rotate its key: a response verifies if any one does.
    /// Clock skew defaults to [`DEFAULT_CLOCK_SKEW`]; IdP-initiated login is off.
    pub fn new<C: AsRef<[u8]>>(
        idp_entity_id: &str,
        idp_certificates: &[C],
        sp_entity_id: &str,
        acs_url: &str,
    ) -> Result<SamlConnection, ConfigError> {
        for (field, value) in [
            ("idp_entity_id", idp_entity_id),
            ("sp_entity_id", sp_entity_id),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Empty { field });
            }
        }
        match url::Url::parse(acs_url) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.has_host() => {}
            _ => {
                return Err(ConfigError::InvalidAcsUrl {
                    url: acs_url.to_owned(),
                });
            }
        }
        let mut certificates = Vec::new();
        for (index, cert) in idp_certificates.iter().enumerate() {
            certificates.extend(parse_certificates(index, cert.as_ref())?);
        }
        if certificates.is_empty() {
            return Err(ConfigError::NoIdpCertificate);
        }
        Ok(SamlConnection {
            idp_entity_id: idp_entity_id.to_owned(),
            idp_certificates: certificates,
            sp_entity_id: sp_entity_id.to_owned(),
            acs_url: acs_url.to_owned(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            allow_idp_initiated: false,
            decryption_key: None,
        })
    }

    pub fn with_clock_skew(mut self, skew: Duration) -> Result<SamlConnection, ConfigError> {
        if skew.is_negative() || skew > MAX_CLOCK_SKEW {
            return Err(ConfigError::InvalidClockSkew { skew });
        }
        self.clock_skew = skew;
        Ok(self)
    }

    /// Accept responses nobody asked for (Profiles §4.1.5): login started from the IdP's portal.
    /// Such a response can be replayed into any browser until it expires, so it is off by default.
    pub fn with_idp_initiated(mut self, allow: bool) -> SamlConnection {
        self.allow_idp_initiated = allow;
        self
    }

    /// Our SP private key (PEM, RSA of at least 2048 bits, not passphrase-protected), to decrypt
    /// an `EncryptedAssertion` made with the encryption certificate we publish
    /// ([`sp::SpMetadata::encryption_certificate`]). Without one, encrypted assertions are
    /// refused. With one, plain assertions are still accepted: encryption stays the IdP's choice.
    pub fn with_decryption_key(
        mut self,
        private_key_pem: &[u8],
    ) -> Result<SamlConnection, ConfigError> {
        self.decryption_key = Some(DecryptionKey::from_pem(private_key_pem)?);
        Ok(self)
    }

    pub fn idp_entity_id(&self) -> &str {
        &self.idp_entity_id
    }
    pub fn sp_entity_id(&self) -> &str {
        &self.sp_entity_id
    }
    pub fn acs_url(&self) -> &str {
        &self.acs_url
    }
    pub fn clock_skew(&self) -> Duration {
        self.clock_skew
    }
    pub fn allows_idp_initiated(&self) -> bool {
        self.allow_idp_initiated
    }
}

fn parse_certificates(index: usize, bytes: &[u8]) -> Result<Vec<CertificateDer>, ConfigError> {
    let invalid = ConfigError::InvalidCertificate { index };
    let certs = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        openssl::x509::X509::stack_from_pem(bytes).map_err(|_| invalid.clone())?
    } else {
        vec![openssl::x509::X509::from_der(bytes).map_err(|_| invalid.clone())?]
    };
    certs
        .iter()
        .map(|cert| {
            let key = cert.public_key().map_err(|_| invalid.clone())?;
            if key.id() == openssl::pkey::Id::RSA && key.bits() < 2048 {
                return Err(ConfigError::WeakCertificateKey {
                    index,
                    bits: key.bits(),
                });
            }
            // Expiry is deliberately not checked: IdPs publish long-expired self-signed
            // certificates as plain key carriers, and trust comes from configuration, not a CA.
            let der = cert.to_der().map_err(|_| invalid.clone())?;
            Ok(CertificateDer::from(der))
        })
        .collect()
}

/// The identity an IdP asserted, once every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlIdentity {
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// From the first `AuthnStatement`; needed for Single Logout.
    pub session_index: Option<String>,
    pub assertion_id: String,
    /// The earliest NotOnOrAfter of the Conditions and the bearer confirmation used.
    pub not_on_or_after: OffsetDateTime,
    /// `not_on_or_after` plus the clock skew: until then this assertion would be accepted again,
    /// so the replay cache must keep `assertion_id` at least that long.
    pub replay_cache_until: OffsetDateTime,
    /// Attribute `Name` to its values in document order (several `Attribute` elements with one
    /// name are merged). Names are the IdP's: Entra sends claim URIs, Okta what the admin typed.
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl SamlIdentity {
    /// The first value of an attribute, the usual way to read `email` or a display name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

/// Why a response was refused. `Display` is for the log and names the check and the values
/// involved; never show it to the user (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    #[error("SAMLResponse is {bytes} bytes, more than the {limit}-byte limit")]
    TooLarge { bytes: usize, limit: usize },
    #[error("malformed SAMLResponse: {0}")]
    Malformed(String),
    #[error("IdP answered with status {code}{}{}",
        sub_code.as_deref().map(|s| format!(" / {s}")).unwrap_or_default(),
        message.as_deref().map(|m| format!(": {m:?}")).unwrap_or_default())]
    StatusNotSuccess {
        code: String,
        sub_code: Option<String>,
        message: Option<String>,
    },
    #[error(
        "encrypted assertion or NameID that this connection cannot decrypt (no SP decryption key \
         configured, or an EncryptedID); configure the key or turn off encryption at the IdP"
    )]
    EncryptedAssertionUnsupported,
    #[error("cannot decrypt the EncryptedAssertion: {0}")]
    DecryptionFailed(String),
    #[error(
        "{algorithm} is a weak encryption algorithm; the IdP must use RSA-OAEP with AES-GCM or AES-CBC"
    )]
    WeakEncryption { algorithm: String },
    #[error(
        "the assertion is encrypted with {algorithm}, which does not authenticate, and is not \
         signed itself; a Response signature over the ciphertext is not enough"
    )]
    EncryptedAssertionNotSigned { algorithm: String },
    #[error("neither the Assertion nor the Response is signed")]
    SignatureMissing,
    #[error(
        "signature does not verify with any of the {certificates} configured IdP certificate(s)"
    )]
    SignatureInvalid { certificates: usize },
    #[error("{algorithm} is a weak algorithm; the IdP must sign with SHA-256 or better")]
    WeakAlgorithm { algorithm: String },
    #[error("unsupported {role} algorithm {algorithm}")]
    UnsupportedAlgorithm {
        role: &'static str,
        algorithm: String,
    },
    #[error("XML signature wrapping: {0}")]
    WrappingDetected(String),
    #[error("{element} Issuer is {found:?}{}, expected {expected:?}",
        format.as_deref().map(|f| format!(" with Format {f}")).unwrap_or_default())]
    WrongIssuer {
        element: &'static str,
        expected: String,
        found: String,
        /// Set when the Format is what is wrong (it must be absent or the entity format).
        format: Option<String>,
    },
    #[error("Audience is {found:?}, expected {expected:?}")]
    WrongAudience {
        expected: String,
        found: Vec<String>,
    },
    #[error("SubjectConfirmationData Recipient is {found:?}, expected {expected:?}")]
    WrongRecipient {
        expected: String,
        found: Option<String>,
    },
    #[error("Response Destination is {found:?}, expected {expected:?}")]
    WrongDestination {
        expected: String,
        found: Option<String>,
    },
    #[error("no SubjectConfirmation with Method {CM_BEARER}")]
    NoBearerConfirmation,
    #[error("{element} NotOnOrAfter {not_on_or_after} has passed (now {now}, skew {skew})")]
    Expired {
        element: &'static str,
        not_on_or_after: OffsetDateTime,
        now: OffsetDateTime,
        skew: Duration,
    },
    #[error("{element} NotBefore {not_before} is in the future (now {now}, skew {skew})")]
    NotYetValid {
        element: &'static str,
        not_before: OffsetDateTime,
        now: OffsetDateTime,
        skew: Duration,
    },
    #[error("{element} InResponseTo is {found:?}, expected {expected:?}")]
    UnknownInResponseTo {
        element: &'static str,
        expected: Option<String>,
        found: Option<String>,
    },
    #[error("unsolicited (IdP-initiated) response, and this connection does not allow them")]
    UnsolicitedNotAllowed,
}

fn malformed(what: impl Into<String>) -> SamlError {
    SamlError::Malformed(what.into())
}

fn wrapping(what: impl Into<String>) -> SamlError {
    SamlError::WrappingDetected(what.into())
}

/// Checks one `SAMLResponse` form value as posted to the ACS (HTTP POST binding, Bindings §3.5).
///
/// `expected_in_response_to` is the ID of the `AuthnRequest` this browser was sent with (from its
/// session), or `None` when there is none, which is an IdP-initiated login.
pub fn validate_response(
    saml_response: &str,
    conn: &SamlConnection,
    expected_in_response_to: Option<&str>,
    now: OffsetDateTime,
) -> Result<SamlIdentity, SamlError> {
    // Profiles §4.1.5: without a request of ours, nothing ties the response to this browser.
    if expected_in_response_to.is_none() && !conn.allow_idp_initiated {
        return Err(SamlError::UnsolicitedNotAllowed);
    }
    let xml = decode(saml_response)?;
    let document = parse_strict(&xml)?;
    let mut envelope = Envelope::read(&document, conn.decryption_key.is_some())?;
    let Some(key) = conn.decryption_key.as_ref().filter(|_| envelope.encrypted) else {
        let signed = verify_signatures(&xml, conn)?;
        let assertion = envelope.signed_assertion(&signed)?;
        return check(&envelope, &assertion, conn, expected_in_response_to, now);
    };

    // Encrypted (see the module documentation for the order): the Response signature, over the
    // encrypted form, is verified before anything is decrypted, and what it verified is what
    // gets decrypted.
    let signed_response = if envelope.response_signed {
        Some(verify_signatures(&xml, conn)?)
    } else {
        None
    };
    let encrypted = envelope.encrypted_assertion(signed_response.as_ref().unwrap_or(&document))?;
    let decrypted = decrypt_assertion(&encrypted, key)?;
    let plaintext =
        checked_text(decrypted.plaintext).map_err(|e| in_decrypted(e, "decrypted assertion"))?;
    let inner = parse_strict(&plaintext).map_err(|e| in_decrypted(e, "decrypted assertion"))?;
    let assertion_signed = envelope.read_decrypted(&inner)?;
    if assertion_signed {
        let signed = verify_signatures(&plaintext, conn)?;
        let assertion = envelope.signed_decrypted_assertion(&signed)?;
        return check(&envelope, &assertion, conn, expected_in_response_to, now);
    }
    if !envelope.response_signed {
        return Err(SamlError::SignatureMissing);
    }
    if !decrypted.authenticated {
        return Err(SamlError::EncryptedAssertionNotSigned {
            algorithm: decrypted.algorithm,
        });
    }
    let assertion = inner
        .get_root_element()
        .ok_or_else(|| malformed("decrypted assertion: no root element"))?;
    check(&envelope, &assertion, conn, expected_in_response_to, now)
}

/// Says that a Malformed came from the decrypted text, not the posted document.
fn in_decrypted(error: SamlError, what: &str) -> SamlError {
    match error {
        SamlError::Malformed(why) => malformed(format!("{what}: {why}")),
        other => other,
    }
}

/// Base64 as posted (Bindings §3.5.4), bounded before anything is allocated for it.
fn decode(saml_response: &str) -> Result<String, SamlError> {
    // 4 base64 characters per 3 bytes, plus room for the line breaks some IdPs insert.
    let encoded_limit = MAX_RESPONSE_BYTES / 3 * 4 + MAX_RESPONSE_BYTES / 16;
    if saml_response.len() > encoded_limit {
        return Err(SamlError::TooLarge {
            bytes: saml_response.len() / 4 * 3,
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let compact: Vec<u8> = saml_response
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD
        .decode(&compact)
        .map_err(|e| malformed(format!("base64: {e}")))?;
    checked_text(bytes)
}

/// The posted document, or a decrypted assertion, as text libxml2 may parse: bounded, UTF-8,
/// no DTD.
fn checked_text(bytes: Vec<u8>) -> Result<String, SamlError> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge {
            bytes: bytes.len(),
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let xml = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
    // Only UTF-8 is accepted, so that the byte-level checks below see the characters libxml2
    // will see: UTF-16 is valid UTF-8 as bytes (ASCII and NULs) and would hide "<!DOCTYPE".
    if xml.contains('\0') {
        return Err(malformed("NUL character: not UTF-8 text"));
    }
    let prolog = xml.strip_prefix('\u{feff}').unwrap_or(&xml);
    if let Some(declaration) = prolog
        .strip_prefix("<?xml")
        .and_then(|rest| rest.split("?>").next())
    {
        let declaration = declaration.to_ascii_lowercase();
        if declaration.contains("encoding") && !declaration.contains("utf-8") {
            return Err(malformed(
                "XML declaration names an encoding other than UTF-8",
            ));
        }
    }
    // A DTD can declare entities (expansion bombs, external entities) and ID attributes that
    // change what a signature Reference points to. SAML never needs one. Refused here before
    // libxml2 spends anything on it, and again on the parsed tree (parse_strict).
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(malformed("DOCTYPE or ENTITY declaration"));
    }
    Ok(xml)
}
