//! Every check of [`validate_response`] against real signed responses from
//! `fixtures/saml/` (see its README for how each was made). Each attack test first shows that its
//! fixture really carries the attack, so that a rejection for some other reason cannot pass
//! for a defence.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use samael::crypto::{Crypto, CryptoProvider as _, ReduceMode};

use super::xml::{exactly_one, text};
use super::*;

pub(crate) const IDP: &str = "https://idp.example.test/metadata";
pub(crate) const SP: &str = "https://sp.idbridge.test/saml/metadata";
pub(crate) const ACS: &str = "https://sp.idbridge.test/saml/acs";
pub(crate) const REQUEST_ID: &str = "_idbridge-req-1";
/// A minute after the fixtures' IssueInstant (12:00:00), inside every valid window.
pub(crate) const NOW: OffsetDateTime = datetime!(2025-01-15 12:01:00 UTC);

const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/saml/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn cert_bytes(name: &str) -> Vec<u8> {
    fixture(&format!("keys/{name}.crt")).into_bytes()
}

/// As the browser posts it: the form value, base64 of the XML.
pub(crate) fn posted(name: &str) -> String {
    STANDARD.encode(fixture(name))
}

fn conn_with(certs: &[&str]) -> SamlConnection {
    let certs: Vec<Vec<u8>> = certs.iter().map(|name| cert_bytes(name)).collect();
    SamlConnection::new(IDP, &certs, SP, ACS).unwrap()
}

pub(crate) fn conn() -> SamlConnection {
    conn_with(&["idp-rsa"])
}

fn validate(name: &str) -> Result<SamlIdentity, SamlError> {
    validate_response(&posted(name), &conn(), Some(REQUEST_ID), NOW)
}

fn validate_xml(xml: &str) -> Result<SamlIdentity, SamlError> {
    validate_response(&STANDARD.encode(xml), &conn(), Some(REQUEST_ID), NOW)
}

/// True if xmlsec alone accepts the fixture's signatures with the trusted certificate: the
/// attack fixtures built on a genuine signature must pass this, or their test proves nothing.
fn signature_alone_verifies(name: &str) -> bool {
    Crypto::reduce_xml_to_signed(
        &fixture(name),
        &conn().idp_certificates,
        ReduceMode::PreDigest,
    )
    .is_ok()
}

fn alice() -> SamlIdentity {
    SamlIdentity {
        name_id: "alice@example.com".into(),
        name_id_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into()),
        session_index: Some("_session-1".into()),
        assertion_id: "_assert-1".into(),
        not_on_or_after: datetime!(2025-01-15 12:05:00 UTC),
        replay_cache_until: datetime!(2025-01-15 12:08:00 UTC),
        attributes: BTreeMap::from([
            ("email".into(), vec!["alice@example.com".into()]),
            ("displayName".into(), vec!["Alice Example".into()]),
            ("groups".into(), vec!["Engineering".into(), "Admins".into()]),
        ]),
    }
}

// ---- accepted ----

#[test]
fn a_signed_assertion_yields_the_identity_and_attributes() {
    let identity = validate("valid.xml").unwrap();
    assert_eq!(identity, alice());
    assert_eq!(identity.attribute("email"), Some("alice@example.com"));
    assert_eq!(identity.attribute("missing"), None);
}

#[test]
fn a_signed_response_covers_its_assertion() {
    assert_eq!(validate("valid_response_signed.xml").unwrap(), alice());
}

#[test]
fn response_and_assertion_both_signed() {
    assert_eq!(validate("valid_both_signed.xml").unwrap(), alice());
}

#[test]
fn rsa_sha512_and_ecdsa_sha256_are_accepted() {
    assert_eq!(validate("valid_rsa_sha512.xml").unwrap(), alice());
    let ec = conn_with(&["idp-ec"]);
    let identity = validate_response(
        &posted("valid_ecdsa_sha256.xml"),
        &ec,
        Some(REQUEST_ID),
        NOW,
    )
    .unwrap();
    assert_eq!(identity, alice());
}

#[test]
fn during_rotation_any_configured_certificate_verifies() {
    let posted = posted("valid_next_key.xml");
    assert_eq!(
        validate_response(&posted, &conn(), Some(REQUEST_ID), NOW),
        Err(SamlError::SignatureInvalid { certificates: 1 })
    );
    for order in [["idp-rsa", "idp-rsa-next"], ["idp-rsa-next", "idp-rsa"]] {
        let rotating = conn_with(&order);
        assert_eq!(
            validate_response(&posted, &rotating, Some(REQUEST_ID), NOW).unwrap(),
            alice()
        );
    }
    // An EC certificate first: xmlsec errors on the key type; the next one is still tried.
    let mixed = conn_with(&["idp-ec", "idp-rsa-next"]);
    assert!(validate_response(&posted, &mixed, Some(REQUEST_ID), NOW).is_ok());
    // One PEM holding both certificates, as IdP metadata exports often are.
    let bundle = [cert_bytes("idp-rsa"), cert_bytes("idp-rsa-next")].concat();
    let bundled = SamlConnection::new(IDP, &[bundle], SP, ACS).unwrap();
    assert!(validate_response(&posted, &bundled, Some(REQUEST_ID), NOW).is_ok());
}

#[test]
fn der_certificates_are_accepted() {
    let der = openssl::x509::X509::from_pem(&cert_bytes("idp-rsa"))
        .unwrap()
        .to_der()
        .unwrap();
    let conn = SamlConnection::new(IDP, &[der], SP, ACS).unwrap();
    assert!(validate_response(&posted("valid.xml"), &conn, Some(REQUEST_ID), NOW).is_ok());
}

#[test]
fn line_wrapped_base64_is_accepted() {
    let encoded = posted("valid.xml");
    let wrapped: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let wrapped = wrapped.join("\r\n");
    assert!(validate_response(&wrapped, &conn(), Some(REQUEST_ID), NOW).is_ok());
}

// ---- IdP-initiated and InResponseTo ----

#[test]
fn idp_initiated_only_when_allowed() {
    let posted = posted("valid_idp_initiated.xml");
    assert_eq!(
        validate_response(&posted, &conn(), None, NOW),
        Err(SamlError::UnsolicitedNotAllowed)
    );
    let open = conn().with_idp_initiated(true);
    assert_eq!(
        validate_response(&posted, &open, None, NOW).unwrap(),
        alice()
    );
}

#[test]
fn an_answer_to_some_request_is_not_unsolicited() {
    // Profiles §4.1.5: an unsolicited response carries no InResponseTo; this one answers a
    // request made in another browser.
    let open = conn().with_idp_initiated(true);
    assert!(matches!(
        validate_response(&posted("valid.xml"), &open, None, NOW),
        Err(SamlError::UnknownInResponseTo {
            found: Some(_),
            expected: None,
            ..
        })
    ));
}

#[test]
fn a_response_without_in_response_to_does_not_answer_our_request() {
    assert_eq!(
        validate_response(
            &posted("valid_idp_initiated.xml"),
            &conn(),
            Some(REQUEST_ID),
            NOW
        ),
        Err(SamlError::UnknownInResponseTo {
            element: "SubjectConfirmationData",
            expected: Some(REQUEST_ID.into()),
            found: None,
        })
    );
}

#[test]
fn attack_unknown_in_response_to() {
    assert!(fixture("attack_unknown_in_response_to.xml").contains("_someone-elses-request"));
    assert_eq!(
        validate("attack_unknown_in_response_to.xml"),
        Err(SamlError::UnknownInResponseTo {
            element: "SubjectConfirmationData",
            expected: Some(REQUEST_ID.into()),
            found: Some("_someone-elses-request".into()),
        })
    );
    // The valid response, checked against another browser's request.
    assert!(matches!(
        validate_response(&posted("valid.xml"), &conn(), Some("_other"), NOW),
        Err(SamlError::UnknownInResponseTo { .. })
    ));
}

// ---- signatures ----

#[test]
fn attack_signature_stripped() {
    assert!(!fixture("attack_signature_stripped.xml").contains("Signature"));
    assert_eq!(
        validate("attack_signature_stripped.xml"),
        Err(SamlError::SignatureMissing)
    );
}

#[test]
fn attack_unsigned() {
    assert!(fixture("attack_unsigned.xml").contains("admin@example.com"));
    assert_eq!(
        validate("attack_unsigned.xml"),
        Err(SamlError::SignatureMissing)
    );
}

#[test]
fn attack_tampered_after_signing() {
    assert!(fixture("attack_tampered.xml").contains(">admin@example.com</saml:NameID>"));
    assert_eq!(
        validate("attack_tampered.xml"),
        Err(SamlError::SignatureInvalid { certificates: 1 })
    );
}

#[test]
fn attack_signed_by_an_untrusted_key_with_its_own_certificate_embedded() {
    // The attacker's certificate is in KeyInfo; it must not be used.
    let attacker_der = openssl::x509::X509::from_pem(&cert_bytes("attacker"))
        .unwrap()
        .to_der()
        .unwrap();
    assert!(fixture("attack_untrusted_key.xml").contains(&STANDARD.encode(attacker_der)));
    assert_eq!(
        validate("attack_untrusted_key.xml"),
        Err(SamlError::SignatureInvalid { certificates: 1 })
    );
}

#[test]
fn attack_sha1() {
    assert!(signature_alone_verifies("attack_sha1.xml"));
    assert_eq!(
        validate("attack_sha1.xml"),
        Err(SamlError::WeakAlgorithm {
            algorithm: RSA_SHA1.into()
        })
    );
    // The digest alone being SHA-1 is refused too (checked before verification, so editing
    // the algorithm attribute is enough to reach the check).
    let sha1_digest = fixture("valid.xml").replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    assert_eq!(
        validate_xml(&sha1_digest),
        Err(SamlError::WeakAlgorithm {
            algorithm: "http://www.w3.org/2000/09/xmldsig#sha1".into()
        })
    );
}

#[test]
fn unknown_algorithms_and_transforms_are_refused() {
    let valid = fixture("valid.xml");
    let hmac = valid.replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
    );
    assert!(matches!(
        validate_xml(&hmac),
        Err(SamlError::UnsupportedAlgorithm {
            role: "signature",
            ..
        })
    ));
    let with_comments = valid.replace(
        r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
        r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments"/>"#,
    );
    assert!(matches!(
        validate_xml(&with_comments),
        Err(SamlError::UnsupportedAlgorithm {
            role: "canonicalization",
            ..
        })
    ));
    let xpath = valid.replace(
        r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
        r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>"#,
    );
    assert!(matches!(
        validate_xml(&xpath),
        Err(SamlError::UnsupportedAlgorithm {
            role: "transform",
            ..
        })
    ));
}

// ---- signature wrapping ----

fn assert_wrapping(name: &str, mentions: &str) {
    let xml = fixture(name);
    assert!(
        xml.contains("admin@example.com"),
        "{name} carries no forged identity"
    );
    match validate(name) {
        Err(SamlError::WrappingDetected(why)) => {
            assert!(
                why.contains(mentions),
                "{name}: {why:?} should mention {mentions:?}"
            )
        }
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn attack_wrapping_signed_assertion_moved_into_advice() {
    assert!(signature_alone_verifies("attack_wrapping_moved.xml"));
    assert_wrapping(
        "attack_wrapping_moved.xml",
        "2 Assertion elements (at Response/Assertion, Response/Assertion/Advice/Assertion)",
    );
}

#[test]
fn attack_wrapping_duplicated_assertion_with_the_same_id() {
    assert_wrapping(
        "attack_wrapping_duplicated.xml",
        r#"ID "_assert-1" appears twice"#,
    );
}

#[test]
fn attack_wrapping_signed_assertion_hidden_in_extensions() {
    assert!(signature_alone_verifies("attack_wrapping_extensions.xml"));
    assert_wrapping(
        "attack_wrapping_extensions.xml",
        "2 Assertion elements (at Response/Extensions/Assertion, Response/Assertion)",
    );
}

#[test]
fn attack_signature_in_assertion_referencing_the_response() {
    // The signature is genuine and covers the whole Response: samael alone accepts it.
    assert!(signature_alone_verifies(
        "attack_signature_references_response.xml"
    ));
    match validate("attack_signature_references_response.xml") {
        Err(SamlError::WrappingDetected(why)) => assert_eq!(
            why,
            r##"Signature Reference URI "#_resp-1" does not name its parent element "_assert-1""##
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signature_anywhere_else_is_wrapping() {
    // Move the assertion's genuine signature into Extensions: a detached signature that still
    // references and verifies over the assertion.
    let valid = fixture("valid.xml");
    let start = valid.find("<ds:Signature").unwrap();
    let end = valid.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let signature = &valid[start..end];
    let detached = valid.replace(signature, "").replacen(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{signature}</samlp:Extensions><samlp:Status>"),
        1,
    );
    match validate_xml(&detached) {
        Err(SamlError::WrappingDetected(why)) => {
            assert!(why.contains("Response/Extensions/Signature"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_assertion_in_a_foreign_namespace_still_counts() {
    let valid = fixture("valid.xml");
    let extra = valid.replacen(
        "<samlp:Status>",
        r#"<samlp:Extensions><x:Assertion xmlns:x="urn:example:x">admin@example.com</x:Assertion></samlp:Extensions><samlp:Status>"#,
        1,
    );
    assert!(matches!(
        validate_xml(&extra),
        Err(SamlError::WrappingDetected(why)) if why.starts_with("2 Assertion elements")
    ));
}

#[test]
fn envelope_rules_on_edited_responses() {
    let valid = fixture("valid.xml");
    let sig_start = valid.find("<ds:Signature").unwrap();
    let sig_end = valid.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let signature = &valid[sig_start..sig_end];
    let ref_start = valid.find("<ds:Reference").unwrap();
    let ref_end = valid.find("</ds:Reference>").unwrap() + "</ds:Reference>".len();
    let reference = &valid[ref_start..ref_end];
    let cases: [(&str, String, &str); 4] = [
        (
            "Response Version",
            valid.replacen(r#"Version="2.0""#, r#"Version="2.1""#, 1),
            "malformed SAMLResponse: Response Version is not 2.0",
        ),
        (
            "two References",
            valid.replacen(reference, &reference.repeat(2), 1),
            "XML signature wrapping: 2 References in one Signature; SAML allows exactly one",
        ),
        (
            "two Signatures",
            valid.replacen(signature, &signature.repeat(2), 1),
            "XML signature wrapping: two Signatures in Assertion",
        ),
        (
            "Issuer Format",
            valid.replacen(
                "<saml:Issuer>",
                r#"<saml:Issuer Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">"#,
                1,
            ),
            r#"Response Issuer is "https://idp.example.test/metadata" with Format urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified, expected "https://idp.example.test/metadata""#,
        ),
    ];
    for (what, xml, message) in cases {
        assert_ne!(xml, valid, "{what}: the edit did not apply");
        assert_eq!(
            validate_xml(&xml).map_err(|e| e.to_string()),
            Err(message.to_owned()),
            "{what}"
        );
    }
}

#[test]
fn encrypted_assertions_are_refused_not_skipped() {
    let encrypted = fixture("valid.xml").replacen(
        "<samlp:Status>",
        r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/></saml:EncryptedAssertion><samlp:Status>"#,
        1,
    );
    assert_eq!(
        validate_xml(&encrypted),
        Err(SamlError::EncryptedAssertionUnsupported)
    );
}

// ---- comments ----

#[test]
fn attack_comment_in_name_id_does_not_truncate_it() {
    // The IdP signed "alice@example.com.evil.test"; the comment is outside the digest, so the
    // signature still verifies. A reader stopping at the first text node would log in
    // alice@example.com.
    let xml = fixture("attack_comment_in_nameid.xml");
    assert!(xml.contains(">alice@example.com<!---->.evil.test</saml:NameID>"));
    assert!(signature_alone_verifies("attack_comment_in_nameid.xml"));
    let identity = validate("attack_comment_in_nameid.xml").unwrap();
    assert_eq!(identity.name_id, "alice@example.com.evil.test");
    assert_eq!(
        identity.attribute("email"),
        Some("alice@example.com.evil.test")
    );
}

#[test]
fn the_verified_content_carries_no_comment() {
    // First layer: values are read from the pre-digest bytes, where exclusive c14n has dropped
    // the comment and merged the text.
    let signed = verify_signatures(&fixture("attack_comment_in_nameid.xml"), &conn()).unwrap();
    let assertion = signed.get_root_element().unwrap();
    let subject = exactly_one(&assertion, NS_SAML, "Subject").unwrap();
    let name_id = exactly_one(&subject, NS_SAML, "NameID").unwrap();
    let nodes = name_id.get_child_nodes();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].is_text_node());
    assert_eq!(nodes[0].get_content(), "alice@example.com.evil.test");
}

#[test]
fn text_reads_across_comments_and_cdata() {
    // Second layer: even on a tree that still has the comment, text is read whole.
    let doc =
        parse_strict("<a>alice@example.com<!---->.evil<?pi x?>.test<![CDATA[!]]></a>").unwrap();
    assert_eq!(
        text(&doc.get_root_element().unwrap()),
        "alice@example.com.evil.test!"
    );
}

// ---- conditions ----

#[test]
fn attack_wrong_issuer() {
    // Signed with the trusted key, as one multi-tenant IdP key signs for every tenant.
    const OTHER: &str = "https://other-tenant.idp.example.test/metadata";
    assert!(signature_alone_verifies("attack_wrong_issuer.xml"));
    let wrong = SamlError::WrongIssuer {
        element: "Response",
        expected: IDP.into(),
        found: OTHER.into(),
        format: None,
    };
    assert_eq!(validate("attack_wrong_issuer.xml"), Err(wrong));
    // Without the (unsigned, optional) Response Issuer, the signed Assertion's is still checked.
    let response_issuer = format!("<saml:Issuer>{OTHER}</saml:Issuer>\n  <samlp:Status>");
    let assertion_only =
        fixture("attack_wrong_issuer.xml").replacen(&response_issuer, "<samlp:Status>", 1);
    assert_ne!(assertion_only, fixture("attack_wrong_issuer.xml"));
    assert_eq!(
        validate_xml(&assertion_only),
        Err(SamlError::WrongIssuer {
            element: "Assertion",
            expected: IDP.into(),
            found: OTHER.into(),
            format: None,
        })
    );
    // And a forged Response Issuer around a genuine assertion is refused too.
    let forged = fixture("valid.xml").replacen(
        &format!("<saml:Issuer>{IDP}</saml:Issuer>\n  <samlp:Status>"),
        &format!("<saml:Issuer>{OTHER}</saml:Issuer>\n  <samlp:Status>"),
        1,
    );
    assert!(matches!(
        validate_xml(&forged),
        Err(SamlError::WrongIssuer {
            element: "Response",
            ..
        })
    ));
}

#[test]
fn attack_wrong_audience() {
    assert_eq!(
        validate("attack_wrong_audience.xml"),
        Err(SamlError::WrongAudience {
            expected: SP.into(),
            found: vec!["https://other-sp.example.test/saml/metadata".into()],
        })
    );
}

#[test]
fn attack_wrong_recipient() {
    assert_eq!(
        validate("attack_wrong_recipient.xml"),
        Err(SamlError::WrongRecipient {
            expected: ACS.into(),
            found: Some("https://other-sp.example.test/saml/acs".into()),
        })
    );
}

#[test]
fn attack_wrong_destination() {
    assert_eq!(
        validate("attack_wrong_destination.xml"),
        Err(SamlError::WrongDestination {
            expected: ACS.into(),
            found: Some("https://other-sp.example.test/saml/acs".into()),
        })
    );
}

#[test]
fn a_signed_response_must_name_its_destination() {
    assert!(signature_alone_verifies(
        "attack_signed_response_no_destination.xml"
    ));
    assert_eq!(
        validate("attack_signed_response_no_destination.xml"),
        Err(SamlError::WrongDestination {
            expected: ACS.into(),
            found: None
        })
    );
    // Only the assertion signed: Destination is optional (valid_idp_initiated has one; drop it).
    let unsigned_response =
        fixture("valid.xml").replacen(r#" Destination="https://sp.idbridge.test/saml/acs""#, "", 1);
    assert!(validate_xml(&unsigned_response).is_ok());
}

#[test]
fn attack_expired() {
    assert!(matches!(
        validate("attack_expired.xml"),
        Err(SamlError::Expired { element: "Conditions", not_on_or_after, .. })
            if not_on_or_after == datetime!(2025-01-15 11:50:00 UTC)
    ));
}

#[test]
fn attack_not_yet_valid() {
    assert!(matches!(
        validate("attack_not_yet_valid.xml"),
        Err(SamlError::NotYetValid { element: "Conditions", not_before, .. })
            if not_before == datetime!(2025-01-15 12:09:30 UTC)
    ));
}

#[test]
fn clock_skew_bounds_are_exact() {
    let at = |now: OffsetDateTime, conn: &SamlConnection| {
        validate_response(&posted("valid.xml"), conn, Some(REQUEST_ID), now)
    };
    let default = conn();
    // NotOnOrAfter 12:05:00 is exclusive (Core §2.5.1.2), plus 3 minutes.
    assert!(at(datetime!(2025-01-15 12:07:59 UTC), &default).is_ok());
    assert!(matches!(
        at(datetime!(2025-01-15 12:08:00 UTC), &default),
        Err(SamlError::Expired { .. })
    ));
    // NotBefore 11:59:30 is inclusive, minus 3 minutes.
    assert!(at(datetime!(2025-01-15 11:56:30 UTC), &default).is_ok());
    assert!(matches!(
        at(datetime!(2025-01-15 11:56:29 UTC), &default),
        Err(SamlError::NotYetValid { .. })
    ));
    let strict = conn().with_clock_skew(Duration::ZERO).unwrap();
    assert!(at(datetime!(2025-01-15 12:04:59 UTC), &strict).is_ok());
    assert!(matches!(
        at(datetime!(2025-01-15 12:05:00 UTC), &strict),
        Err(SamlError::Expired { .. })
    ));
    assert!(matches!(
        at(datetime!(2025-01-15 11:59:29 UTC), &strict),
        Err(SamlError::NotYetValid { .. })
    ));
    assert_eq!(
        at(NOW, &strict).unwrap().replay_cache_until,
        datetime!(2025-01-15 12:05:00 UTC)
    );
}

#[test]
fn the_idp_status_is_reported() {
    assert_eq!(
        validate("status_authn_failed.xml"),
        Err(SamlError::StatusNotSuccess {
            code: "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
            sub_code: Some("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed".into()),
            message: Some("User canceled the sign-in".into()),
        })
    );
}

// ---- input limits and malformed input ----

#[test]
fn attack_doctype() {
    assert!(signature_alone_verifies("attack_doctype.xml"));
    assert!(
        matches!(validate("attack_doctype.xml"), Err(SamlError::Malformed(why)) if why.contains("DOCTYPE"))
    );
}

#[test]
fn a_doctype_is_refused_in_any_encoding_and_on_the_parsed_tree() {
    // UTF-16 hides "<!DOCTYPE" from a byte search; it is refused for its NULs.
    let xml = fixture("attack_doctype.xml").replacen("UTF-8", "UTF-16", 1);
    let utf16: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16 = [&[0xff, 0xfe][..], &utf16].concat();
    assert!(matches!(
        validate_response(&STANDARD.encode(utf16), &conn(), Some(REQUEST_ID), NOW),
        Err(SamlError::Malformed(_))
    ));
    // The tree check on its own, for a DTD that got past the byte checks.
    assert!(parse_strict("<a/>").is_ok());
    assert!(matches!(
        parse_strict("<!DOCTYPE a><a/>"),
        Err(SamlError::Malformed(why)) if why.contains("DOCTYPE")
    ));
}

#[test]
fn size_limit_holds_before_parsing() {
    // Trailing whitespace after the root element is allowed XML: pad to exactly the limit.
    let valid = fixture("valid.xml");
    let at_limit = format!("{valid}{}", " ".repeat(MAX_RESPONSE_BYTES - valid.len()));
    assert!(validate_xml(&at_limit).is_ok());
    let over = format!("{at_limit} ");
    assert_eq!(
        validate_xml(&over),
        Err(SamlError::TooLarge {
            bytes: MAX_RESPONSE_BYTES + 1,
            limit: MAX_RESPONSE_BYTES
        })
    );
    // Far too long is refused from its length alone, before decoding.
    let huge = "A".repeat(4 * MAX_RESPONSE_BYTES);
    assert!(matches!(
        validate_response(&huge, &conn(), Some(REQUEST_ID), NOW),
        Err(SamlError::TooLarge { .. })
    ));
}

#[test]
fn malformed_input_is_refused() {
    let cases = [
        ("not base64", "%%%".to_owned()),
        ("not UTF-8", STANDARD.encode([0xff, 0xfe, 0x00])),
        ("not XML", STANDARD.encode("hello")),
        // libxml2's recover mode (samael's) would repair this truncated document and verify it.
        ("truncated", STANDARD.encode(&fixture("valid.xml")[..fixture("valid.xml").len() - 20])),
        (
            "latin-1",
            STANDARD.encode(fixture("valid.xml").replacen("UTF-8", "ISO-8859-1", 1)),
        ),
        (
            "an AuthnRequest",
            STANDARD.encode(r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0"/>"#),
        ),
    ];
    for (what, posted) in cases {
        assert!(
            matches!(
                validate_response(&posted, &conn(), Some(REQUEST_ID), NOW),
                Err(SamlError::Malformed(_))
            ),
            "{what}"
        );
    }
}

// ---- the checks on their own, on unsigned assertions (no signature involved) ----

/// Runs only the protocol checks of [`check`] on a hand-written assertion body.
fn check_assertion(subject_and_conditions: &str) -> Result<SamlIdentity, SamlError> {
    let xml = format!(
        r#"<saml:Assertion xmlns:saml="{NS_SAML}" ID="_a" Version="2.0" IssueInstant="2025-01-15T12:00:00Z"><saml:Issuer>{IDP}</saml:Issuer>{subject_and_conditions}<saml:AuthnStatement AuthnInstant="2025-01-15T12:00:00Z"/></saml:Assertion>"#
    );
    let doc = parse_strict(&xml).unwrap();
    let envelope = Envelope {
        response_id: "_r".into(),
        assertion_id: "_a".into(),
        response_signed: false,
        encrypted: false,
        ids: Default::default(),
        destination: None,
        in_response_to: None,
        issuer: None,
    };
    check(
        &envelope,
        &doc.get_root_element().unwrap(),
        &conn(),
        Some(REQUEST_ID),
        NOW,
    )
}

fn subject(confirmations: &[&str]) -> String {
    let confirmations: String = confirmations
        .iter()
        .map(|data| {
            format!(r#"<saml:SubjectConfirmation Method="{CM_BEARER}"><saml:SubjectConfirmationData {data}/></saml:SubjectConfirmation>"#)
        })
        .collect();
    format!("<saml:Subject><saml:NameID>bob</saml:NameID>{confirmations}</saml:Subject>")
}

fn conditions(restrictions: &[&str]) -> String {
    let restrictions: String = restrictions
        .iter()
        .map(|aud| format!("<saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction>"))
        .collect();
    format!(
        r#"<saml:Conditions NotOnOrAfter="2025-01-15T12:05:00Z">{restrictions}</saml:Conditions>"#
    )
}

const GOOD_DATA: &str = r#"Recipient="https://sp.idbridge.test/saml/acs" NotOnOrAfter="2025-01-15T12:04:00Z" InResponseTo="_idbridge-req-1""#;

#[test]
fn every_audience_restriction_must_name_us() {
    let ok = check_assertion(&(subject(&[GOOD_DATA]) + &conditions(&[SP, SP])));
    assert_eq!(
        ok.unwrap().not_on_or_after,
        datetime!(2025-01-15 12:04:00 UTC)
    );
    let one_not = check_assertion(&(subject(&[GOOD_DATA]) + &conditions(&[SP, "urn:other"])));
    assert!(matches!(one_not, Err(SamlError::WrongAudience { .. })));
    let none = check_assertion(&(subject(&[GOOD_DATA]) + &conditions(&[])));
    assert!(matches!(none, Err(SamlError::WrongAudience { .. })));
}

#[test]
fn one_satisfied_bearer_confirmation_is_enough() {
    let wrong = r#"Recipient="https://elsewhere.test/acs" NotOnOrAfter="2025-01-15T12:04:00Z" InResponseTo="_idbridge-req-1""#;
    let either = check_assertion(&(subject(&[wrong, GOOD_DATA]) + &conditions(&[SP])));
    assert!(either.is_ok());
    let only_wrong = check_assertion(&(subject(&[wrong]) + &conditions(&[SP])));
    assert!(matches!(only_wrong, Err(SamlError::WrongRecipient { .. })));
    let no_expiry =
        r#"Recipient="https://sp.idbridge.test/saml/acs" InResponseTo="_idbridge-req-1""#;
    let unbounded = check_assertion(&(subject(&[no_expiry]) + &conditions(&[SP])));
    assert!(matches!(unbounded, Err(SamlError::Malformed(why)) if why.contains("NotOnOrAfter")));
    let not_bearer = check_assertion(
        &(subject(&[]).replace("</saml:Subject>", r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"/></saml:Subject>"#)
            + &conditions(&[SP])),
    );
    assert_eq!(not_bearer, Err(SamlError::NoBearerConfirmation));
}

#[test]
fn the_confirmation_window_is_checked_on_its_own() {
    let expired = r#"Recipient="https://sp.idbridge.test/saml/acs" NotOnOrAfter="2025-01-15T11:57:59Z" InResponseTo="_idbridge-req-1""#;
    assert!(matches!(
        check_assertion(&(subject(&[expired]) + &conditions(&[SP]))),
        Err(SamlError::Expired {
            element: "SubjectConfirmationData",
            ..
        })
    ));
    let early = format!(r#"{GOOD_DATA} NotBefore="2025-01-15T12:04:01Z""#);
    assert!(matches!(
        check_assertion(&(subject(&[&early]) + &conditions(&[SP]))),
        Err(SamlError::NotYetValid {
            element: "SubjectConfirmationData",
            ..
        })
    ));
}

#[test]
fn an_encrypted_name_id_is_refused() {
    let encrypted =
        subject(&[GOOD_DATA]).replace("<saml:NameID>bob</saml:NameID>", "<saml:EncryptedID/>");
    assert_eq!(
        check_assertion(&(encrypted + &conditions(&[SP]))),
        Err(SamlError::EncryptedAssertionUnsupported)
    );
}

#[test]
fn a_blank_name_id_is_refused() {
    let ok = check_assertion(&(subject(&[GOOD_DATA]) + &conditions(&[SP])));
    assert_eq!(ok.unwrap().name_id, "bob");
    let blank =
        check_assertion(&(subject(&[GOOD_DATA]).replace(">bob<", "> <") + &conditions(&[SP])));
    assert!(matches!(blank, Err(SamlError::Malformed(why)) if why == "empty NameID"));
}

#[test]
fn the_replay_window_ends_at_the_earliest_not_on_or_after() {
    // Conditions say 12:05, the confirmation 12:04: the assertion is dead at 12:04 + skew.
    let identity = check_assertion(&(subject(&[GOOD_DATA]) + &conditions(&[SP]))).unwrap();
    assert_eq!(
        identity.replay_cache_until,
        datetime!(2025-01-15 12:07:00 UTC)
    );
}

// ---- configuration ----

#[test]
fn a_connection_needs_a_usable_certificate() {
    let none: [&[u8]; 0] = [];
    assert_eq!(
        SamlConnection::new(IDP, &none, SP, ACS).unwrap_err(),
        ConfigError::NoIdpCertificate
    );
    assert_eq!(
        SamlConnection::new(IDP, &[cert_bytes("idp-rsa"), b"garbage".to_vec()], SP, ACS)
            .unwrap_err(),
        ConfigError::InvalidCertificate { index: 1 }
    );
    assert_eq!(
        SamlConnection::new(IDP, &[weak_rsa_certificate()], SP, ACS).unwrap_err(),
        ConfigError::WeakCertificateKey {
            index: 0,
            bits: 1024
        }
    );
}

#[test]
fn a_connection_refuses_nonsense() {
    let certs = [cert_bytes("idp-rsa")];
    assert!(matches!(
        SamlConnection::new(IDP, &certs, SP, "/saml/acs"),
        Err(ConfigError::InvalidAcsUrl { .. })
    ));
    assert!(matches!(
        SamlConnection::new(" ", &certs, SP, ACS),
        Err(ConfigError::Empty {
            field: "idp_entity_id"
        })
    ));
    assert!(conn().with_clock_skew(MAX_CLOCK_SKEW).is_ok());
    assert!(
        conn()
            .with_clock_skew(MAX_CLOCK_SKEW + Duration::SECOND)
            .is_err()
    );
    assert!(conn().with_clock_skew(-Duration::SECOND).is_err());
}

fn weak_rsa_certificate() -> Vec<u8> {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509::X509};
    let key = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    let mut builder = X509::builder().unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    builder.build().to_pem().unwrap()
}

// ---- messages ----

#[test]
fn errors_say_exactly_why() {
    let cases = [
        (
            validate("attack_wrong_audience.xml").unwrap_err(),
            r#"Audience is ["https://other-sp.example.test/saml/metadata"], expected "https://sp.idbridge.test/saml/metadata""#,
        ),
        (
            validate("attack_sha1.xml").unwrap_err(),
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1 is a weak algorithm; the IdP must sign with SHA-256 or better",
        ),
        (
            validate("attack_expired.xml").unwrap_err(),
            "Conditions NotOnOrAfter 2025-01-15 11:50:00.0 +00:00:00 has passed (now 2025-01-15 12:01:00.0 +00:00:00, skew 3m)",
        ),
        (
            validate("status_authn_failed.xml").unwrap_err(),
            r#"IdP answered with status urn:oasis:names:tc:SAML:2.0:status:Responder / urn:oasis:names:tc:SAML:2.0:status:AuthnFailed: "User canceled the sign-in""#,
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

// ---- encrypted assertions ----

const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

fn key_bytes(name: &str) -> Vec<u8> {
    fixture(&format!("keys/{name}.key")).into_bytes()
}

/// `conn()` with our SP decryption key (`keys/sp-enc.key`).
fn enc_conn() -> SamlConnection {
    conn().with_decryption_key(&key_bytes("sp-enc")).unwrap()
}

fn validate_encrypted(name: &str) -> Result<SamlIdentity, SamlError> {
    validate_response(&posted(name), &enc_conn(), Some(REQUEST_ID), NOW)
}

fn validate_encrypted_xml(xml: &str) -> Result<SamlIdentity, SamlError> {
    validate_response(&STANDARD.encode(xml), &enc_conn(), Some(REQUEST_ID), NOW)
}

/// The text of the last `<{tag}>` element, and its byte range in `xml`.
fn last_element_text(xml: &str, tag: &str) -> (usize, usize) {
    let open = format!("<{tag}>");
    let start = xml.rfind(&open).unwrap() + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    (start, end)
}

/// `xml` with one base64 character of the content CipherValue changed, `at` characters in.
fn flip_ciphertext(xml: &str, at: usize) -> String {
    let (start, _) = last_element_text(xml, "xenc:CipherValue");
    let index = start + at;
    let old = &xml[index..index + 1];
    let new = if old == "A" { "B" } else { "A" };
    format!("{}{new}{}", &xml[..index], &xml[index + 1..])
}

/// Every encrypted fixture really is encrypted: no identity in clear text.
fn assert_encrypted(name: &str, content: &str, transport: &str) {
    let xml = fixture(name);
    assert!(xml.contains("<saml:EncryptedAssertion>"), "{name}");
    assert!(!xml.contains("<saml:Assertion "), "{name}");
    assert!(!xml.contains("alice@example.com"), "{name}");
    assert!(xml.contains(&format!(r#"Algorithm="{content}""#)), "{name}");
    assert!(
        xml.contains(&format!(r#"Algorithm="{transport}""#)),
        "{name}"
    );
}

#[test]
fn an_encrypted_signed_assertion_gcm_yields_the_identity() {
    assert_encrypted(
        "valid_encrypted_gcm.xml",
        AES256_GCM,
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    );
    assert!(fixture("valid_encrypted_gcm.xml").contains("xmlenc11#mgf1sha256"));
    assert_eq!(
        validate_encrypted("valid_encrypted_gcm.xml").unwrap(),
        alice()
    );
    // Without a decryption key, refused as before.
    assert_eq!(
        validate("valid_encrypted_gcm.xml"),
        Err(SamlError::EncryptedAssertionUnsupported)
    );
    // With a key, plain assertions are still accepted.
    assert_eq!(
        validate_response(&posted("valid.xml"), &enc_conn(), Some(REQUEST_ID), NOW).unwrap(),
        alice()
    );
}

#[test]
fn an_encrypted_signed_assertion_cbc_yields_the_identity() {
    assert_encrypted(
        "valid_encrypted_cbc.xml",
        AES256_CBC,
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    );
    assert_eq!(
        validate_encrypted("valid_encrypted_cbc.xml").unwrap(),
        alice()
    );
}

#[test]
fn the_decrypted_assertion_passes_every_check() {
    // Same fixture, checked at another time, against another request and another SP: the
    // decrypted assertion is held to the conditions like a plain one.
    let posted = posted("valid_encrypted_gcm.xml");
    assert!(matches!(
        validate_response(
            &posted,
            &enc_conn(),
            Some(REQUEST_ID),
            datetime!(2025-01-15 12:08:00 UTC)
        ),
        Err(SamlError::Expired { .. })
    ));
    assert!(matches!(
        validate_response(&posted, &enc_conn(), Some("_other"), NOW),
        Err(SamlError::UnknownInResponseTo { .. })
    ));
    let other_sp = SamlConnection::new(IDP, &[cert_bytes("idp-rsa")], "urn:other-sp", ACS)
        .unwrap()
        .with_decryption_key(&key_bytes("sp-enc"))
        .unwrap();
    assert!(matches!(
        validate_response(&posted, &other_sp, Some(REQUEST_ID), NOW),
        Err(SamlError::WrongAudience { .. })
    ));
    // Its signature is verified with the configured IdP certificates only.
    let other_idp = conn_with(&["idp-rsa-next"])
        .with_decryption_key(&key_bytes("sp-enc"))
        .unwrap();
    assert_eq!(
        validate_response(&posted, &other_idp, Some(REQUEST_ID), NOW),
        Err(SamlError::SignatureInvalid { certificates: 1 })
    );
}

#[test]
fn a_signed_response_covers_its_gcm_encrypted_assertion() {
    let name = "valid_encrypted_response_signed.xml";
    assert_encrypted(
        name,
        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    );
    assert!(signature_alone_verifies(name));
    assert_eq!(validate_encrypted(name).unwrap(), alice());
    // The Response signature is verified before anything is decrypted: a changed ciphertext
    // is refused for the signature, not by the decryption.
    assert_eq!(
        validate_encrypted_xml(&flip_ciphertext(&fixture(name), 40)),
        Err(SamlError::SignatureInvalid { certificates: 1 })
    );
}

#[test]
fn attack_encrypted_with_rsa_1_5() {
    let xml = fixture("attack_encrypted_rsa1_5.xml");
    assert_encrypted("attack_encrypted_rsa1_5.xml", AES256_GCM, RSA_1_5);
    // The content key genuinely unwraps with our key under PKCS#1 v1.5: only the algorithm
    // check refuses it.
    let (start, end) = last_element_text(&xml, "e:CipherValue");
    let wrapped = STANDARD.decode(&xml[start..end]).unwrap();
    let rsa = openssl::rsa::Rsa::private_key_from_pem(&key_bytes("sp-enc")).unwrap();
    let mut content_key = vec![0; rsa.size() as usize];
    let n = rsa
        .private_decrypt(&wrapped, &mut content_key, openssl::rsa::Padding::PKCS1)
        .unwrap();
    assert_eq!(n, 32);
    assert_eq!(
        validate_encrypted("attack_encrypted_rsa1_5.xml"),
        Err(SamlError::WeakEncryption {
            algorithm: RSA_1_5.into()
        })
    );
    // Named as the reason.
    assert_eq!(
        validate_encrypted("attack_encrypted_rsa1_5.xml")
            .unwrap_err()
            .to_string(),
        format!(
            "{RSA_1_5} is a weak encryption algorithm; the IdP must use RSA-OAEP with AES-GCM or AES-CBC"
        )
    );
}

#[test]
fn attack_cbc_assertion_covered_only_by_the_response_signature() {
    let name = "attack_encrypted_cbc_response_signed.xml";
    assert_encrypted(
        name,
        AES256_CBC,
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    );
    // The Response signature is genuine; this error is only reached once decryption worked.
    assert!(signature_alone_verifies(name));
    assert_eq!(
        validate_encrypted(name),
        Err(SamlError::EncryptedAssertionNotSigned {
            algorithm: AES256_CBC.into()
        })
    );
}

#[test]
fn attack_encrypted_and_signed_by_nobody() {
    assert_encrypted(
        "attack_encrypted_unsigned.xml",
        AES256_GCM,
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    );
    assert!(!fixture("attack_encrypted_unsigned.xml").contains("Signature"));
    assert_eq!(
        validate_encrypted("attack_encrypted_unsigned.xml"),
        Err(SamlError::SignatureMissing)
    );
}

#[test]
fn attack_encrypted_to_another_key() {
    let name = "attack_encrypted_wrong_key.xml";
    assert!(matches!(
        validate_encrypted(name),
        Err(SamlError::DecryptionFailed(why)) if why.contains("none of the 1 EncryptedKey(s)")
    ));
    // It is otherwise a valid response: whoever holds that key could read it.
    let holder = conn().with_decryption_key(&key_bytes("attacker")).unwrap();
    assert_eq!(
        validate_response(&posted(name), &holder, Some(REQUEST_ID), NOW).unwrap(),
        alice()
    );
}

#[test]
fn attack_wrapping_two_encrypted_assertions() {
    let xml = fixture("attack_encrypted_wrapping_two.xml");
    assert_eq!(xml.matches("<saml:EncryptedAssertion>").count(), 2);
    assert_eq!(
        validate_encrypted("attack_encrypted_wrapping_two.xml"),
        Err(SamlError::WrappingDetected(
            "2 Assertion or EncryptedAssertion elements (at Response/EncryptedAssertion, \
             Response/EncryptedAssertion); exactly one is allowed"
                .into()
        ))
    );
    // Each alone decrypts: the genuine one to alice, the forged one to an unsigned admin.
    let first = xml.find("  <saml:EncryptedAssertion>").unwrap();
    let second = xml.rfind("  <saml:EncryptedAssertion>").unwrap();
    let end = xml.find("</samlp:Response>").unwrap();
    let genuine = format!("{}{}", &xml[..second], &xml[end..]);
    assert_eq!(validate_encrypted_xml(&genuine).unwrap(), alice());
    let forged = format!("{}{}", &xml[..first], &xml[second..]);
    assert_eq!(
        validate_encrypted_xml(&forged),
        Err(SamlError::SignatureMissing)
    );
}

#[test]
fn attack_wrapping_encrypted_and_plain_assertion() {
    let xml = fixture("attack_encrypted_wrapping_mixed.xml");
    assert!(xml.contains("admin@example.com"));
    assert_eq!(
        validate_encrypted("attack_encrypted_wrapping_mixed.xml"),
        Err(SamlError::WrappingDetected(
            "2 Assertion or EncryptedAssertion elements (at Response/EncryptedAssertion, \
             Response/Assertion); exactly one is allowed"
                .into()
        ))
    );
}

#[test]
fn an_encrypted_assertion_must_be_where_an_assertion_goes() {
    let xml = fixture("valid_encrypted_cbc.xml");
    let start = xml.find("  <saml:EncryptedAssertion>").unwrap();
    let end = xml.find("</saml:EncryptedAssertion>").unwrap() + "</saml:EncryptedAssertion>".len();
    let encrypted = &xml[start..end];
    let moved = xml.replace(encrypted, "").replacen(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{encrypted}</samlp:Extensions><samlp:Status>"),
        1,
    );
    assert!(matches!(
        validate_encrypted_xml(&moved),
        Err(SamlError::WrappingDetected(why))
            if why == "the EncryptedAssertion is at Response/Extensions/EncryptedAssertion, not a direct child of the Response"
    ));
}

#[test]
fn the_encrypted_key_may_be_a_sibling_of_the_encrypted_data() {
    let xml = fixture("valid_encrypted_cbc.xml");
    let key_info_start = xml
        .find(r#"<KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">"#)
        .unwrap();
    let key_info_end =
        xml.find("</e:EncryptedKey>\n</KeyInfo>").unwrap() + "</e:EncryptedKey>\n</KeyInfo>".len();
    let key_start = xml.find("<e:EncryptedKey").unwrap();
    let key_end = xml.find("</e:EncryptedKey>").unwrap() + "</e:EncryptedKey>".len();
    let encrypted_key = xml[key_start..key_end].replacen(
        "<e:EncryptedKey ",
        r#"<e:EncryptedKey xmlns="http://www.w3.org/2000/09/xmldsig#" "#,
        1,
    );
    let sibling = format!("{}{}", &xml[..key_info_start], &xml[key_info_end..]).replacen(
        "</xenc:EncryptedData>",
        &format!("</xenc:EncryptedData>{encrypted_key}"),
        1,
    );
    assert!(!sibling.contains("<KeyInfo xmlns"));
    assert_eq!(validate_encrypted_xml(&sibling).unwrap(), alice());
}

#[test]
fn an_altered_ciphertext_is_refused() {
    // GCM: the tag fails.
    assert!(matches!(
        validate_encrypted_xml(&flip_ciphertext(&fixture("valid_encrypted_gcm.xml"), 40)),
        Err(SamlError::DecryptionFailed(why)) if why.contains("tag")
    ));
    // CBC: it decrypts, to something else; the assertion's own signature (or the parse) fails.
    for at in [2, 40, 400] {
        let altered = flip_ciphertext(&fixture("valid_encrypted_cbc.xml"), at);
        let result = validate_encrypted_xml(&altered);
        assert!(result.is_err(), "{at}: {result:?}");
    }
    // A truncated ciphertext.
    let xml = fixture("valid_encrypted_gcm.xml");
    let (start, end) = last_element_text(&xml, "xenc:CipherValue");
    let short = format!("{}AAAA{}", &xml[..start], &xml[end..]);
    assert!(matches!(
        validate_encrypted_xml(&short),
        Err(SamlError::DecryptionFailed(_))
    ));
}

#[test]
fn encryption_algorithms_outside_the_list_are_refused() {
    let gcm = fixture("valid_encrypted_gcm.xml");
    let triple_des = gcm.replace(AES256_GCM, "http://www.w3.org/2001/04/xmlenc#tripledes-cbc");
    assert_eq!(
        validate_encrypted_xml(&triple_des),
        Err(SamlError::WeakEncryption {
            algorithm: "http://www.w3.org/2001/04/xmlenc#tripledes-cbc".into()
        })
    );
    let aes192 = gcm.replace(AES256_GCM, "http://www.w3.org/2009/xmlenc11#aes192-gcm");
    assert!(matches!(
        validate_encrypted_xml(&aes192),
        Err(SamlError::UnsupportedAlgorithm {
            role: "content encryption",
            ..
        })
    ));
    let md5 = gcm.replace(
        "http://www.w3.org/2009/xmlenc11#mgf1sha256",
        "urn:example:mgf1md5",
    );
    assert!(matches!(
        validate_encrypted_xml(&md5),
        Err(SamlError::UnsupportedAlgorithm {
            role: "OAEP mask generation",
            ..
        })
    ));
    // The OAEP digest and MGF are really used: naming other ones breaks the unwrapping.
    let sha1_mgf = gcm.replace(
        "http://www.w3.org/2009/xmlenc11#mgf1sha256",
        "http://www.w3.org/2009/xmlenc11#mgf1sha1",
    );
    assert!(matches!(
        validate_encrypted_xml(&sha1_mgf),
        Err(SamlError::DecryptionFailed(_))
    ));
    let reference = gcm.replacen(
        "<xenc:CipherValue>",
        r#"<xenc:CipherReference URI="https://attacker.example.test/x"/><xenc:CipherValue>"#,
        1,
    );
    assert!(matches!(
        validate_encrypted_xml(&reference),
        Err(SamlError::Malformed(why)) if why.contains("CipherReference")
    ));
    let content_type = gcm.replace(
        r#"Type="http://www.w3.org/2001/04/xmlenc#Element""#,
        r#"Type="http://www.w3.org/2001/04/xmlenc#Content""#,
    );
    assert!(matches!(
        validate_encrypted_xml(&content_type),
        Err(SamlError::Malformed(why)) if why.contains("Type")
    ));
}

#[test]
fn a_decryption_key_must_be_a_strong_rsa_key() {
    assert!(conn().with_decryption_key(&key_bytes("sp-enc")).is_ok());
    assert_eq!(
        conn().with_decryption_key(b"garbage").unwrap_err(),
        ConfigError::InvalidDecryptionKey
    );
    assert_eq!(
        conn()
            .with_decryption_key(&key_bytes("idp-ec"))
            .unwrap_err(),
        ConfigError::InvalidDecryptionKey
    );
    let weak = openssl::rsa::Rsa::generate(1024)
        .unwrap()
        .private_key_to_pem()
        .unwrap();
    assert_eq!(
        conn().with_decryption_key(&weak).unwrap_err(),
        ConfigError::WeakDecryptionKey { bits: 1024 }
    );
    let locked = openssl::rsa::Rsa::private_key_from_pem(&key_bytes("sp-enc"))
        .unwrap()
        .private_key_to_pem_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
        .unwrap();
    assert_eq!(
        conn().with_decryption_key(&locked).unwrap_err(),
        ConfigError::InvalidDecryptionKey
    );
    // The key never shows in a debug print of the connection.
    let debug = format!("{:?}", enc_conn());
    assert!(debug.contains("DecryptionKey(RSA 2048 bits)"), "{debug}");
}

/// `plaintext` encrypted to our SP certificate as an IdP would (AES-256-GCM, rsa-oaep-mgf1p with
/// no DigestMethod, so SHA-1 by default), as a `saml:EncryptedAssertion` element.
fn encrypt_for_sp(plaintext: &str) -> String {
    use openssl::{encrypt::Encrypter, rand::rand_bytes, rsa::Padding, symm};
    let cert = openssl::x509::X509::from_pem(&cert_bytes("sp-enc")).unwrap();
    let public = cert.public_key().unwrap();
    let (mut key, mut iv, mut tag) = ([0u8; 32], [0u8; 12], [0u8; 16]);
    rand_bytes(&mut key).unwrap();
    rand_bytes(&mut iv).unwrap();
    let body = symm::encrypt_aead(
        symm::Cipher::aes_256_gcm(),
        &key,
        Some(&iv),
        &[],
        plaintext.as_bytes(),
        &mut tag,
    )
    .unwrap();
    let mut encrypter = Encrypter::new(&public).unwrap();
    encrypter.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    let mut wrapped = vec![0; encrypter.encrypt_len(&key).unwrap()];
    let n = encrypter.encrypt(&key, &mut wrapped).unwrap();
    wrapped.truncate(n);
    let xenc = "http://www.w3.org/2001/04/xmlenc#";
    format!(
        r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="{xenc}" Type="{xenc}Element"><xenc:EncryptionMethod Algorithm="{AES256_GCM}"/><ds:KeyInfo xmlns:ds="{NS_DS}"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="{xenc}rsa-oaep-mgf1p"/><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#,
        STANDARD.encode(wrapped),
        STANDARD.encode([&iv[..], &body, &tag].concat())
    )
}

/// The Assertion element of a fixture, as signed, and the response around it.
fn split_assertion(xml: &str) -> (&str, &str, &str) {
    let start = xml.find("<saml:Assertion ").unwrap();
    let end = xml.rfind("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    (&xml[..start], &xml[start..end], &xml[end..])
}

/// `name`'s response with its assertion replaced by `plaintext`, encrypted.
fn encrypted_in(name: &str, plaintext: &str) -> String {
    let xml = fixture(name);
    let (before, _, after) = split_assertion(&xml);
    format!("{before}{}{after}", encrypt_for_sp(plaintext))
}

#[test]
fn the_decrypted_text_gets_the_envelope_rules() {
    let valid = fixture("valid.xml");
    let (_, signed, _) = split_assertion(&valid);
    // Control: the genuine signed assertion, encrypted here, is accepted.
    assert_eq!(
        validate_encrypted_xml(&encrypted_in("valid.xml", signed)).unwrap(),
        alice()
    );
    // A DTD inside the plaintext, refused as in the posted document.
    let doctype = format!("<!DOCTYPE saml:Assertion [<!ENTITY who \"admin\">]>{signed}");
    assert!(matches!(
        validate_encrypted_xml(&encrypted_in("valid.xml", &doctype)),
        Err(SamlError::Malformed(why)) if why.contains("decrypted assertion") && why.contains("DOCTYPE")
    ));
    // Not well-formed.
    assert!(matches!(
        validate_encrypted_xml(&encrypted_in("valid.xml", &signed[..signed.len() - 5])),
        Err(SamlError::Malformed(why)) if why.starts_with("decrypted assertion")
    ));
    // Wrapping inside the plaintext: the genuine signed assertion in the Advice of a forged one.
    let moved = fixture("attack_wrapping_moved.xml");
    let (_, nested, _) = split_assertion(&moved);
    assert!(matches!(
        validate_encrypted_xml(&encrypted_in("valid.xml", nested)),
        Err(SamlError::WrappingDetected(why)) if why.starts_with("2 Assertion elements")
    ));
    // An ID of the posted document repeated by the decrypted assertion.
    let same_id =
        encrypted_in("valid.xml", signed).replacen(r#"ID="_resp-1""#, r#"ID="_assert-1""#, 1);
    assert_eq!(
        validate_encrypted_xml(&same_id),
        Err(SamlError::WrappingDetected(
            r#"ID "_assert-1" appears twice"#.into()
        ))
    );
    // The signature references something other than the decrypted assertion.
    let references = fixture("attack_signature_references_response.xml");
    let (_, wrong_reference, _) = split_assertion(&references);
    assert!(matches!(
        validate_encrypted_xml(&encrypted_in("valid.xml", wrong_reference)),
        Err(SamlError::WrappingDetected(why)) if why.contains("does not name its parent")
    ));
    // Not an assertion at all.
    assert!(matches!(
        validate_encrypted_xml(&encrypted_in("valid.xml", "<x/>")),
        Err(SamlError::Malformed(why)) if why.contains("not a saml:Assertion")
    ));
    // A tampered assertion inside: its own signature fails after decryption.
    let tampered = signed.replacen(
        ">alice@example.com</saml:NameID>",
        ">admin@example.com</saml:NameID>",
        1,
    );
    assert_eq!(
        validate_encrypted_xml(&encrypted_in("valid.xml", &tampered)),
        Err(SamlError::SignatureInvalid { certificates: 1 })
    );
}

// ---- hostile input ----

/// XML that changes structure or meaning when dropped into a response.
const XML_PIECES: &[&str] = &[
    "<",
    ">",
    "/>",
    "</saml:Assertion>",
    "<saml:Assertion ID=\"_evil\">",
    "<!--x-->",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&#0;",
    "&lt;",
    "\"",
    "'",
    " xmlns:saml=\"urn:evil\"",
    " xmlns=\"\"",
    "ID=\"_assert-1\"",
    "<saml:NameID>mallory@example.com</saml:NameID>",
    "<!DOCTYPE r [<!ENTITY e \"x\">]>",
    "\u{0}",
    "é",
    " ",
    "\n",
];

/// Thousands of seeded edits of each valid response: every one is refused, or, when an edit left
/// what the signature covers alone, yields exactly the original identity. Nothing panics, and
/// libxml2/xmlsec see every mangled form the edits make.
#[test]
fn mangled_responses_are_refused_or_yield_the_signed_identity() {
    let mut rng = crate::mutation::Rng(0x5a41_1d0c);
    for name in [
        "valid.xml",
        "valid_response_signed.xml",
        "valid_both_signed.xml",
    ] {
        let original = fixture(name);
        let expected = validate(name).unwrap();
        let mut accepted = 0;
        for round in 0..400 {
            let xml = crate::mutation::mutate(&mut rng, &original, XML_PIECES);
            if let Ok(identity) = validate_xml(&xml) {
                accepted += 1;
                assert_eq!(
                    identity, expected,
                    "{name} round {round}: an edited response changed who signs in:\n{xml}"
                );
            }
        }
        // Most edits land in signed bytes; a test where everything passed would prove nothing.
        assert!(accepted < 200, "{name}: {accepted} of 400 edits accepted");
    }
    // And what arrives before the XML: the posted base64 itself.
    let posted_form = posted("valid.xml");
    for _ in 0..400 {
        let form = crate::mutation::mutate(&mut rng, &posted_form, &["=", "%", "+", "/", " ", "A"]);
        if let Ok(identity) = validate_response(&form, &conn(), Some(REQUEST_ID), NOW) {
            assert_eq!(identity, alice());
        }
    }
}
