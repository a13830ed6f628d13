//! The envelope around the signed content and its XML signatures: where they may be, which
//! algorithms they may use, and what xmlsec verified.

use std::collections::HashSet;

use libxml::tree::{Document, Node};
use samael::crypto::{AllowedSignatureAlgorithm, Crypto, CryptoProvider as _, ReduceMode};

use super::decrypt::is_encrypted_assertion;
use super::xml::{
    at_most_one, attribute, children, exactly_one, is, is_child_of, is_same, parse_strict, path,
    text,
};
use super::{
    NS_DS, NS_SAML, NS_SAMLP, STATUS_SUCCESS, SamlConnection, SamlError, malformed, wrapping,
};

const SIGNATURE_ALGORITHMS: &[(&str, AllowedSignatureAlgorithm)] = &[
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        AllowedSignatureAlgorithm::RsaSha256,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        AllowedSignatureAlgorithm::RsaSha384,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        AllowedSignatureAlgorithm::RsaSha512,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        AllowedSignatureAlgorithm::EcdsaSha256,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        AllowedSignatureAlgorithm::EcdsaSha384,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
        AllowedSignatureAlgorithm::EcdsaSha512,
    ),
];
const DIGEST_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
/// Known and broken (collisions) or too short: refused with [`SamlError::WeakAlgorithm`] so the
/// log says "ask the IdP admin to switch to SHA-256", not "unknown algorithm".
const WEAK_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmldsig-more#md5",
    "http://www.w3.org/2001/04/xmldsig-more#sha224",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha224",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha224",
];
/// Canonicalizations without comments only: with comments, a comment would be signed content
/// and could split the text we read.
const C14N_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
];
const TRANSFORM_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// What the document around the signed content says, read from the full tree. The Response's
/// own fields (Destination, InResponseTo, Issuer) are covered by its signature when it has one
/// (same element: checked by ID and position); otherwise they are unsigned, checked because the
/// profile says so, and never a source of identity.
pub(super) struct Envelope {
    pub(super) response_id: String,
    /// Empty for an encrypted assertion until [`Envelope::read_decrypted`] has read it.
    pub(super) assertion_id: String,
    pub(super) response_signed: bool,
    /// The one assertion is an `EncryptedAssertion` (only when decryption was allowed).
    pub(super) encrypted: bool,
    /// Every ID of the posted document: the decrypted assertion must not repeat one.
    pub(super) ids: HashSet<String>,
    pub(super) destination: Option<String>,
    pub(super) in_response_to: Option<String>,
    pub(super) issuer: Option<(String, Option<String>)>,
}

impl Envelope {
    /// `decryption`: the connection has a key, so an `EncryptedAssertion` may stand in for the
    /// `Assertion`; without one it is refused.
    pub(super) fn read(document: &Document, decryption: bool) -> Result<Envelope, SamlError> {
        let root = document
            .get_root_element()
            .ok_or_else(|| malformed("no root element"))?;
        if !is(&root, NS_SAMLP, "Response") {
            return Err(malformed(format!(
                "root element is {}, not samlp:Response",
                root.get_name()
            )));
        }
        // Core §3.2.2: the version is the first thing a receiver must understand.
        if attribute(&root, "Version").as_deref() != Some("2.0") {
            return Err(malformed("Response Version is not 2.0"));
        }
        let response_id = attribute(&root, "ID").ok_or_else(|| malformed("Response has no ID"))?;

        // Core §3.2.2.2: an IdP that refuses says so here and sends no assertion; report its
        // reason before complaining about the missing assertion.
        let status = exactly_one(&root, NS_SAMLP, "Status")?;
        let code = exactly_one(&status, NS_SAMLP, "StatusCode")?;
        let code_value = attribute(&code, "Value").unwrap_or_default();
        if code_value != STATUS_SUCCESS {
            return Err(SamlError::StatusNotSuccess {
                code: code_value,
                sub_code: at_most_one(&code, NS_SAMLP, "StatusCode")?
                    .and_then(|sub| attribute(&sub, "Value")),
                message: at_most_one(&status, NS_SAMLP, "StatusMessage")?.map(|m| text(&m)),
            });
        }

        let mut scan = Scan::default();
        scan.walk(&root)?;

        if scan.encrypted_assertions > 0 && !decryption {
            return Err(SamlError::EncryptedAssertionUnsupported);
        }
        // Signature wrapping puts a second assertion next to the signed one, or moves the signed
        // one somewhere (Extensions, Advice, an Object) and puts a forged one in its place. One
        // assertion, at the one place the profile puts it, leaves nothing to confuse. An
        // EncryptedAssertion counts as one: encrypted or not, there is exactly one.
        let assertion = scan.only_assertion()?;
        let encrypted = is_encrypted_assertion(&assertion);
        if !(is(&assertion, NS_SAML, "Assertion") || encrypted) || !is_child_of(&assertion, &root) {
            return Err(wrapping(format!(
                "the {} is at {}, not a direct child of the Response",
                assertion.get_name(),
                path(&assertion)
            )));
        }
        // Known once decrypted (Core §2.3.4: an EncryptedAssertion has no ID of its own).
        let assertion_id = if encrypted {
            String::new()
        } else {
            attribute(&assertion, "ID").ok_or_else(|| malformed("Assertion has no ID"))?
        };

        let mut response_signed = false;
        let mut assertion_signed = false;
        for signature in &scan.signatures {
            let parent = signature
                .get_parent()
                .ok_or_else(|| wrapping("a Signature without a parent"))?;
            // Core §5.4.1: SAML signatures are enveloped, children of what they sign.
            // Inside an EncryptedAssertion nothing is signed: its signature is in the plaintext.
            let slot = if is_same(&parent, &root) {
                &mut response_signed
            } else if is_same(&parent, &assertion) && !encrypted {
                &mut assertion_signed
            } else {
                return Err(wrapping(format!(
                    "a Signature at {}; only the Response and the Assertion may carry one",
                    path(signature)
                )));
            };
            if std::mem::replace(slot, true) {
                return Err(wrapping(format!("two Signatures in {}", parent.get_name())));
            }
            let parent_id = attribute(&parent, "ID").unwrap_or_default();
            check_signed_info(signature, &parent_id)?;
        }
        // Profiles §4.1.4.5: over the POST binding every assertion must be signed, by itself or
        // by the Response that contains it. An encrypted one's own signature is only seen once
        // decrypted: checked then.
        if !response_signed && !assertion_signed && !encrypted {
            return Err(SamlError::SignatureMissing);
        }

        let issuer = at_most_one(&root, NS_SAML, "Issuer")?
            .map(|issuer| (text(&issuer), attribute(&issuer, "Format")));
        Ok(Envelope {
            response_id,
            assertion_id,
            response_signed,
            encrypted,
            ids: scan.ids,
            destination: attribute(&root, "Destination"),
            in_response_to: attribute(&root, "InResponseTo"),
            issuer,
        })
    }

    /// The assertion as signed: parsed from the pre-digest bytes of the verified signature, and
    /// only if those bytes are the element this envelope found at the assertion's (or the
    /// response's) place, by ID.
    pub(super) fn signed_assertion(&self, signed: &Document) -> Result<Node, SamlError> {
        let root = signed
            .get_root_element()
            .ok_or_else(|| wrapping("verified content has no root element"))?;
        let id = attribute(&root, "ID");
        if self.response_signed {
            // samael returns the Response's content when both it and the Assertion are signed.
            if !is(&root, NS_SAMLP, "Response") || id.as_deref() != Some(&self.response_id) {
                return Err(wrapping(format!(
                    "verified content is {} {id:?}, not the Response {:?}",
                    root.get_name(),
                    self.response_id
                )));
            }
            let assertions = children(&root, NS_SAML, "Assertion");
            let [assertion] = assertions.as_slice() else {
                return Err(wrapping(
                    "signed Response does not hold exactly one Assertion",
                ));
            };
            if attribute(assertion, "ID").as_deref() != Some(&self.assertion_id) {
                return Err(wrapping("signed Response holds another Assertion"));
            }
            Ok(assertion.clone())
        } else {
            self.signed_decrypted_assertion(signed)
        }
    }

    /// The assertion as its own signature signed: the verified content must be the Assertion
    /// this envelope found (by ID), whether it came posted or decrypted.
    pub(super) fn signed_decrypted_assertion(&self, signed: &Document) -> Result<Node, SamlError> {
        let root = signed
            .get_root_element()
            .ok_or_else(|| wrapping("verified content has no root element"))?;
        let id = attribute(&root, "ID");
        if self.assertion_id.is_empty()
            || !is(&root, NS_SAML, "Assertion")
            || id.as_deref() != Some(&self.assertion_id)
        {
            return Err(wrapping(format!(
                "verified content is {} {id:?}, not the Assertion {:?}",
                root.get_name(),
                self.assertion_id
            )));
        }
        Ok(root)
    }

    /// The `EncryptedAssertion` to decrypt, from `document`: the posted one, or the Response
    /// content its verified signature covers (then it must still be this envelope's Response
    /// holding exactly one EncryptedAssertion and no Assertion).
    pub(super) fn encrypted_assertion(&self, document: &Document) -> Result<Node, SamlError> {
        let root = document
            .get_root_element()
            .ok_or_else(|| wrapping("verified content has no root element"))?;
        let id = attribute(&root, "ID");
        if !is(&root, NS_SAMLP, "Response") || id.as_deref() != Some(&self.response_id) {
            return Err(wrapping(format!(
                "verified content is {} {id:?}, not the Response {:?}",
                root.get_name(),
                self.response_id
            )));
        }
        let encrypted = children(&root, NS_SAML, "EncryptedAssertion");
        let [encrypted] = encrypted.as_slice() else {
            return Err(wrapping(
                "Response does not hold exactly one EncryptedAssertion",
            ));
        };
        if !children(&root, NS_SAML, "Assertion").is_empty() {
            return Err(wrapping(
                "Response holds an Assertion beside the EncryptedAssertion",
            ));
        }
        Ok(encrypted.clone())
    }

    /// The envelope rules on the decrypted document: its root is the one Assertion, with IDs
    /// unique across both documents and at most one Signature, enveloped in it. Records the
    /// assertion's ID; returns whether it is signed.
    pub(super) fn read_decrypted(&mut self, decrypted: &Document) -> Result<bool, SamlError> {
        let root = decrypted
            .get_root_element()
            .ok_or_else(|| malformed("decrypted assertion: no root element"))?;
        if !is(&root, NS_SAML, "Assertion") {
            return Err(malformed(format!(
                "decrypted content is {}, not a saml:Assertion",
                root.get_name()
            )));
        }
        let assertion_id =
            attribute(&root, "ID").ok_or_else(|| malformed("Assertion has no ID"))?;
        let mut scan = Scan {
            ids: self.ids.clone(),
            ..Scan::default()
        };
        scan.walk(&root)?;
        scan.only_assertion()?;
        if scan.encrypted_assertions > 0 {
            return Err(wrapping(
                "an EncryptedAssertion inside the decrypted Assertion",
            ));
        }
        let signed = match scan.signatures.as_slice() {
            [] => false,
            [signature] if signature.get_parent().is_some_and(|p| is_same(&p, &root)) => {
                check_signed_info(signature, &assertion_id)?;
                true
            }
            [signature] => {
                return Err(wrapping(format!(
                    "a Signature at {} in the decrypted Assertion; only the Assertion may carry one",
                    path(signature)
                )));
            }
            _ => return Err(wrapping("two Signatures in the decrypted Assertion")),
        };
        self.assertion_id = assertion_id;
        Ok(signed)
    }
}

#[derive(Default)]
struct Scan {
    ids: HashSet<String>,
    assertions: Vec<Node>,
    encrypted_assertions: usize,
    signatures: Vec<Node>,
}

impl Scan {
    /// Every element of the document, whatever its namespace: an `Assertion` in a foreign
    /// namespace is still counted, because some reader downstream may not look at namespaces.
    fn walk(&mut self, root: &Node) -> Result<(), SamlError> {
        let mut stack = vec![root.clone()];
        while let Some(node) = stack.pop() {
            // Core §1.3.4: IDs are unique in a document. A duplicate lets a Reference resolve
            // to one element while a reader reads the other.
            if let Some(id) = attribute(&node, "ID")
                && !self.ids.insert(id.clone())
            {
                return Err(wrapping(format!("ID {id:?} appears twice")));
            }
            match node.get_name().as_str() {
                "Assertion" => self.assertions.push(node.clone()),
                "EncryptedAssertion" => {
                    self.encrypted_assertions += 1;
                    self.assertions.push(node.clone());
                }
                "Signature" if is(&node, NS_DS, "Signature") => self.signatures.push(node.clone()),
                _ => {}
            }
            // Reversed onto the stack so elements are visited, and listed in messages, in
            // document order.
            stack.extend(node.get_child_elements().into_iter().rev());
        }
        Ok(())
    }

    /// The one `Assertion` or `EncryptedAssertion` found, or why there is not exactly one.
    fn only_assertion(&self) -> Result<Node, SamlError> {
        match self.assertions.as_slice() {
            [] => Err(malformed("no Assertion")),
            [only] => Ok(only.clone()),
            many => Err(wrapping(format!(
                "{} {} elements (at {}); exactly one is allowed",
                many.len(),
                if self.encrypted_assertions > 0 {
                    "Assertion or EncryptedAssertion"
                } else {
                    "Assertion"
                },
                many.iter().map(path).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// The algorithms and the single Reference of one `ds:Signature`, before anything is verified.
fn check_signed_info(signature: &Node, parent_id: &str) -> Result<(), SamlError> {
    let signed_info = exactly_one(signature, NS_DS, "SignedInfo")?;

    // Core §5.4.3: exclusive canonicalization; never a "WithComments" one.
    let c14n = exactly_one(&signed_info, NS_DS, "CanonicalizationMethod")?;
    allowed(
        "canonicalization",
        attribute(&c14n, "Algorithm"),
        C14N_ALGORITHMS,
    )?;

    let method = exactly_one(&signed_info, NS_DS, "SignatureMethod")?;
    let signature_algorithms: Vec<&str> =
        SIGNATURE_ALGORITHMS.iter().map(|(uri, _)| *uri).collect();
    allowed(
        "signature",
        attribute(&method, "Algorithm"),
        &signature_algorithms,
    )?;

    // Core §5.4.2: exactly one Reference, and its URI is "#" + the ID of the signed element,
    // which is the Signature's parent. A Reference to anything else signs something we will
    // not read, or something placed where we would not look.
    let references = children(&signed_info, NS_DS, "Reference");
    let [reference] = references.as_slice() else {
        return Err(wrapping(format!(
            "{} References in one Signature; SAML allows exactly one",
            references.len()
        )));
    };
    let uri = attribute(reference, "URI").unwrap_or_default();
    if parent_id.is_empty() || uri != format!("#{parent_id}") {
        return Err(wrapping(format!(
            "Signature Reference URI {uri:?} does not name its parent element {parent_id:?}"
        )));
    }

    // Core §5.4.4: only the enveloped-signature transform and canonicalization; anything else
    // (XPath, XSLT, base64) can make the digested bytes differ from the element we read.
    if let Some(transforms) = at_most_one(reference, NS_DS, "Transforms")? {
        for transform in children(&transforms, NS_DS, "Transform") {
            let algorithm = attribute(&transform, "Algorithm");
            if algorithm.as_deref() != Some(TRANSFORM_ENVELOPED) {
                allowed("transform", algorithm, C14N_ALGORITHMS)?;
            }
        }
    }

    let digest = exactly_one(reference, NS_DS, "DigestMethod")?;
    allowed("digest", attribute(&digest, "Algorithm"), DIGEST_ALGORITHMS)
}

fn allowed(role: &'static str, algorithm: Option<String>, allow: &[&str]) -> Result<(), SamlError> {
    let algorithm = algorithm.unwrap_or_default();
    if allow.contains(&algorithm.as_str()) {
        Ok(())
    } else if WEAK_ALGORITHMS.contains(&algorithm.as_str()) {
        Err(SamlError::WeakAlgorithm { algorithm })
    } else {
        Err(SamlError::UnsupportedAlgorithm { role, algorithm })
    }
}

/// Verifies every signature in the document with xmlsec and returns the pre-digest content (the
/// canonical bytes that were hashed) of the Response's signature if it has one, else of the
/// Assertion's. Keys come only from the configuration, never from the message's `KeyInfo`.
pub(super) fn verify_signatures(xml: &str, conn: &SamlConnection) -> Result<Document, SamlError> {
    let allowed: Vec<AllowedSignatureAlgorithm> =
        SIGNATURE_ALGORITHMS.iter().map(|(_, alg)| *alg).collect();
    // One certificate at a time: samael aborts its own loop on the first xmlsec error (a key
    // of the wrong type, say) instead of trying the next certificate.
    let predigest = conn
        .idp_certificates
        .iter()
        .find_map(|cert| {
            Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                xml,
                std::slice::from_ref(cert),
                ReduceMode::PreDigest,
                Some(&allowed),
            )
            .ok()
        })
        .ok_or(SamlError::SignatureInvalid {
            certificates: conn.idp_certificates.len(),
        })?;
    parse_strict(&predigest).map_err(|_| wrapping("verified content is not a single element"))
}
