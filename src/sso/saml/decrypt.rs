//! `EncryptedAssertion` (Core §2.3.4) decrypted with our SP private key, XML Encryption 1.1.
//!
//! Only what SAML IdPs send is read: one `xenc:EncryptedData` of Type `#Element`, its content
//! key in an `xenc:EncryptedKey` inside its `ds:KeyInfo` or beside it in the
//! `EncryptedAssertion`, values inline in `CipherValue` (never a `CipherReference`, which names a
//! URI to fetch). Algorithms:
//! - key transport: RSA-OAEP only, `xmlenc#rsa-oaep-mgf1p` (MGF1-SHA-1) and `xmlenc11#rsa-oaep`
//!   (MGF1 with SHA-1/224/256/384/512), OAEP digest SHA-1 (the default) or SHA-2, `OAEPparams`
//!   as the label. `xmlenc#rsa-1_5` is refused with [`SamlError::WeakEncryption`] before any key
//!   is decrypted: PKCS#1 v1.5 decryption is a Bleichenbacher oracle (and XML Encryption 1.1
//!   §5.5.1 says so), so our key never performs one, whatever else the message holds;
//! - content: AES-128/256-GCM (`xmlenc11`, authenticated: a changed ciphertext fails the tag)
//!   and AES-128/256-CBC (`xmlenc`, not authenticated; see [`Decrypted::authenticated`] and the
//!   module documentation of `saml` for what that costs). Triple-DES is refused as weak.
//!
//! Every failure to get a plaintext (no key of ours, wrong key, bad tag, bad padding) is one
//! [`SamlError::DecryptionFailed`], for the log only.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libxml::tree::Node;
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use super::xml::{at_most_one, attribute, exactly_one, is, text};
use super::{ConfigError, MAX_RESPONSE_BYTES, NS_DS, NS_SAML, SamlError, malformed};

pub(super) const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";

pub(super) const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
pub(super) const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
pub(super) const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
pub(super) const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
pub(super) const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
pub(super) const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
pub(super) const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const TRIPLEDES_CBC: &str = "http://www.w3.org/2001/04/xmlenc#tripledes-cbc";

/// More `EncryptedKey` elements than a multi-recipient IdP would send are refused rather than
/// each costing an RSA decryption.
const MAX_ENCRYPTED_KEYS: usize = 4;
const GCM_IV: usize = 12;
const GCM_TAG: usize = 16;
const AES_BLOCK: usize = 16;

/// Our SP private key for assertion decryption: RSA, at least 2048 bits.
#[derive(Clone)]
pub(super) struct DecryptionKey(PKey<Private>);

impl DecryptionKey {
    pub(super) fn from_pem(pem: &[u8]) -> Result<DecryptionKey, ConfigError> {
        // A passphrase-protected PEM is refused, not prompted for on the terminal (OpenSSL's
        // default callback would).
        let key = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
            .map_err(|_| ConfigError::InvalidDecryptionKey)?;
        if key.id() != openssl::pkey::Id::RSA {
            return Err(ConfigError::InvalidDecryptionKey);
        }
        if key.bits() < 2048 {
            return Err(ConfigError::WeakDecryptionKey { bits: key.bits() });
        }
        Ok(DecryptionKey(key))
    }
}

/// Never the key itself, in a log or a panic message.
impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecryptionKey(RSA {} bits)", self.0.bits())
    }
}

#[derive(Clone, Copy)]
enum Content {
    Gcm(Cipher),
    Cbc(Cipher),
}

/// What decryption gave.
pub(super) struct Decrypted {
    pub(super) plaintext: Vec<u8>,
    /// The content algorithm's URI, for messages.
    pub(super) algorithm: String,
    /// GCM: the tag proved the ciphertext is what was encrypted with this content key. CBC: no
    /// such proof; the plaintext must carry its own signature.
    pub(super) authenticated: bool,
}

/// Decrypts the one `EncryptedData` of `encrypted_assertion` (a `saml:EncryptedAssertion`).
pub(super) fn decrypt_assertion(
    encrypted_assertion: &Node,
    key: &DecryptionKey,
) -> Result<Decrypted, SamlError> {
    // Core §2.3.4 (EncryptedElementType): one EncryptedData, then any EncryptedKeys.
    let mut encrypted_data = None;
    let mut sibling_keys = Vec::new();
    for child in encrypted_assertion.get_child_elements() {
        if is(&child, NS_XENC, "EncryptedData") && encrypted_data.is_none() {
            encrypted_data = Some(child);
        } else if is(&child, NS_XENC, "EncryptedKey") {
            sibling_keys.push(child);
        } else {
            return Err(malformed(format!(
                "unexpected {} in EncryptedAssertion",
                child.get_name()
            )));
        }
    }
    let data =
        encrypted_data.ok_or_else(|| malformed("EncryptedAssertion without EncryptedData"))?;
    if let Some(kind) = attribute(&data, "Type")
        && kind != TYPE_ELEMENT
    {
        return Err(malformed(format!(
            "EncryptedData Type {kind:?}; an EncryptedAssertion holds an Element"
        )));
    }

    let method = exactly_one(&data, NS_XENC, "EncryptionMethod")?;
    let algorithm = attribute(&method, "Algorithm").unwrap_or_default();
    let content = match algorithm.as_str() {
        AES128_GCM => Content::Gcm(Cipher::aes_128_gcm()),
        AES256_GCM => Content::Gcm(Cipher::aes_256_gcm()),
        AES128_CBC => Content::Cbc(Cipher::aes_128_cbc()),
        AES256_CBC => Content::Cbc(Cipher::aes_256_cbc()),
        TRIPLEDES_CBC => return Err(SamlError::WeakEncryption { algorithm }),
        _ => {
            return Err(SamlError::UnsupportedAlgorithm {
                role: "content encryption",
                algorithm,
            });
        }
    };
    let cipher = match content {
        Content::Gcm(cipher) | Content::Cbc(cipher) => cipher,
    };

    let mut encrypted_keys = Vec::new();
    if let Some(key_info) = at_most_one(&data, NS_DS, "KeyInfo")? {
        encrypted_keys.extend(
            key_info
                .get_child_elements()
                .into_iter()
                .filter(|k| is(k, NS_XENC, "EncryptedKey")),
        );
    }
    encrypted_keys.extend(sibling_keys);
    if encrypted_keys.is_empty() {
        return Err(SamlError::DecryptionFailed(
            "no EncryptedKey for the content key".into(),
        ));
    }
    if encrypted_keys.len() > MAX_ENCRYPTED_KEYS {
        return Err(malformed(format!(
            "{} EncryptedKeys; at most {MAX_ENCRYPTED_KEYS} are read",
            encrypted_keys.len()
        )));
    }
    // Every key transport is checked before any is decrypted: one rsa-1_5 key refuses all.
    let transports = encrypted_keys
        .iter()
        .map(read_encrypted_key)
        .collect::<Result<Vec<_>, _>>()?;
    let content_key = transports
        .iter()
        .find_map(|transport| transport.decrypt(key, cipher.key_len()))
        .ok_or_else(|| {
            SamlError::DecryptionFailed(format!(
                "none of the {} EncryptedKey(s) decrypts with our key to a {}-byte key",
                transports.len(),
                cipher.key_len()
            ))
        })?;

    let cipher_data = exactly_one(&data, NS_XENC, "CipherData")?;
    let value = base64_value(&cipher_data, "EncryptedData")?;
    // The outer limit bounds this already; kept so the decrypted text can never exceed it.
    if value.len() > MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge {
            bytes: value.len(),
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let failed = |what: &str| SamlError::DecryptionFailed(format!("{algorithm}: {what}"));
    let plaintext = match content {
        Content::Gcm(cipher) => {
            // XML Encryption 1.1 §5.2.4: IV (96 bits) || ciphertext || tag (128 bits).
            if value.len() < GCM_IV + GCM_TAG {
                return Err(failed("shorter than IV and tag"));
            }
            let (iv, rest) = value.split_at(GCM_IV);
            let (body, tag) = rest.split_at(rest.len() - GCM_TAG);
            openssl::symm::decrypt_aead(cipher, &content_key, Some(iv), &[], body, tag)
                .map_err(|_| failed("authentication tag does not match"))?
        }
        Content::Cbc(cipher) => {
            // XML Encryption 1.1 §5.2: IV || ciphertext, padded to the block with the last
            // byte giving the padding length (the other padding bytes are arbitrary).
            if value.len() < 2 * AES_BLOCK || value.len() % AES_BLOCK != 0 {
                return Err(failed("not IV and whole blocks"));
            }
            let (iv, body) = value.split_at(AES_BLOCK);
            let mut crypter = Crypter::new(cipher, Mode::Decrypt, &content_key, Some(iv))
                .map_err(|_| failed("cipher setup"))?;
            crypter.pad(false);
            let mut out = vec![0; body.len() + AES_BLOCK];
            let mut n = crypter
                .update(body, &mut out)
                .map_err(|_| failed("decryption"))?;
            n += crypter
                .finalize(&mut out[n..])
                .map_err(|_| failed("decryption"))?;
            out.truncate(n);
            let pad = usize::from(*out.last().ok_or_else(|| failed("empty"))?);
            if pad == 0 || pad > AES_BLOCK || pad > out.len() {
                return Err(failed("bad padding"));
            }
            out.truncate(out.len() - pad);
            out
        }
    };
    Ok(Decrypted {
        plaintext,
        algorithm,
        authenticated: matches!(content, Content::Gcm(_)),
    })
}

/// One `EncryptedKey`: its RSA-OAEP parameters and the encrypted content key.
struct Transport {
    digest: MessageDigest,
    mgf1: MessageDigest,
    label: Vec<u8>,
    encrypted: Vec<u8>,
}

impl Transport {
    /// The content key, if this EncryptedKey was made for our key and has the cipher's length.
    fn decrypt(&self, key: &DecryptionKey, key_len: usize) -> Option<Vec<u8>> {
        let mut decrypter = Decrypter::new(&key.0).ok()?;
        decrypter.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
        decrypter.set_rsa_oaep_md(self.digest).ok()?;
        decrypter.set_rsa_mgf1_md(self.mgf1).ok()?;
        if !self.label.is_empty() {
            decrypter.set_rsa_oaep_label(&self.label).ok()?;
        }
        let mut out = vec![0; decrypter.decrypt_len(&self.encrypted).ok()?];
        let n = decrypter.decrypt(&self.encrypted, &mut out).ok()?;
        out.truncate(n);
        (n == key_len).then_some(out)
    }
}

fn read_encrypted_key(encrypted_key: &Node) -> Result<Transport, SamlError> {
    let method = exactly_one(encrypted_key, NS_XENC, "EncryptionMethod")?;
    let algorithm = attribute(&method, "Algorithm").unwrap_or_default();
    match algorithm.as_str() {
        RSA_OAEP_MGF1P | RSA_OAEP => {}
        RSA_1_5 => return Err(SamlError::WeakEncryption { algorithm }),
        _ => {
            return Err(SamlError::UnsupportedAlgorithm {
                role: "key transport",
                algorithm,
            });
        }
    }
    // XML Encryption 1.1 §5.5.2: the OAEP digest defaults to SHA-1, and so does MGF1; only
    // xmlenc11#rsa-oaep may name another MGF (rsa-oaep-mgf1p fixes it to SHA-1).
    let digest = match at_most_one(&method, NS_DS, "DigestMethod")? {
        None => MessageDigest::sha1(),
        Some(d) => oaep_digest(attribute(&d, "Algorithm").unwrap_or_default())?,
    };
    let mgf = at_most_one(&method, NS_XENC11, "MGF")?;
    let mgf1 = match (algorithm.as_str(), mgf) {
        (_, None) => MessageDigest::sha1(),
        (RSA_OAEP, Some(mgf)) => mgf1_digest(attribute(&mgf, "Algorithm").unwrap_or_default())?,
        (_, Some(_)) => {
            return Err(malformed(
                "an MGF in rsa-oaep-mgf1p, which fixes MGF1-SHA-1",
            ));
        }
    };
    let label = match at_most_one(&method, NS_XENC, "OAEPparams")? {
        None => Vec::new(),
        Some(params) => decode_base64(&text(&params), "OAEPparams")?,
    };
    let cipher_data = exactly_one(encrypted_key, NS_XENC, "CipherData")?;
    Ok(Transport {
        digest,
        mgf1,
        label,
        encrypted: base64_value(&cipher_data, "EncryptedKey")?,
    })
}

fn oaep_digest(algorithm: String) -> Result<MessageDigest, SamlError> {
    // SHA-1 is sound inside OAEP (no collision resistance needed) and is what the IdPs send.
    match algorithm.as_str() {
        "http://www.w3.org/2000/09/xmldsig#sha1" => Ok(MessageDigest::sha1()),
        "http://www.w3.org/2001/04/xmlenc#sha256" => Ok(MessageDigest::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Ok(MessageDigest::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Ok(MessageDigest::sha512()),
        _ => Err(SamlError::UnsupportedAlgorithm {
            role: "OAEP digest",
            algorithm,
        }),
    }
}

fn mgf1_digest(algorithm: String) -> Result<MessageDigest, SamlError> {
    match algorithm.as_str() {
        "http://www.w3.org/2009/xmlenc11#mgf1sha1" => Ok(MessageDigest::sha1()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha224" => Ok(MessageDigest::sha224()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha256" => Ok(MessageDigest::sha256()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha384" => Ok(MessageDigest::sha384()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha512" => Ok(MessageDigest::sha512()),
        _ => Err(SamlError::UnsupportedAlgorithm {
            role: "OAEP mask generation",
            algorithm,
        }),
    }
}

/// The inline `CipherValue` of a `CipherData`; a `CipherReference` would make us fetch a URI.
fn base64_value(cipher_data: &Node, owner: &str) -> Result<Vec<u8>, SamlError> {
    if at_most_one(cipher_data, NS_XENC, "CipherReference")?.is_some() {
        return Err(malformed(format!(
            "CipherReference in {owner}; only an inline CipherValue is read"
        )));
    }
    let value = exactly_one(cipher_data, NS_XENC, "CipherValue")?;
    decode_base64(&text(&value), owner)
}

fn decode_base64(value: &str, owner: &str) -> Result<Vec<u8>, SamlError> {
    let compact: Vec<u8> = value.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|e| malformed(format!("{owner} value is not base64: {e}")))
}

/// True for an `EncryptedAssertion` in the SAML namespace (the scan counts every element of that
/// name, in any namespace).
pub(super) fn is_encrypted_assertion(node: &Node) -> bool {
    is(node, NS_SAML, "EncryptedAssertion")
}
