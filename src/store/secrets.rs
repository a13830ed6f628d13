//! Secrets at rest: OIDC client secrets and our signing keys are stored encrypted with a key from
//! the configuration, never in clear, so that a copy of the database (a backup, a replica's disk)
//! is not a copy of every organization's IdP credentials.
//!
//! AES-256-GCM with a fresh 96-bit nonce per value (NIST SP 800-38D §8.2.2: random nonces are safe
//! far beyond the number of secrets a deployment stores). The associated data names the row and
//! column a value belongs to, so a ciphertext copied into another row does not decrypt there.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};

const VERSION: &str = "v1:";
const NONCE: usize = 12;
const TAG: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secrets key must be 32 bytes, base64-encoded (got {0} bytes)")]
    KeyLength(usize),
    #[error("the secrets key is not base64")]
    KeyEncoding,
    #[error(
        "a stored secret does not decrypt with the configured key (wrong key, or the value was moved or altered)"
    )]
    Undecryptable,
    #[error("encryption failed: {0}")]
    Crypto(String),
}

/// The configured key. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretBox {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_base64(encoded: &str) -> Result<SecretBox, SecretError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SecretError::KeyEncoding)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::KeyLength(bytes.len()))?;
        Ok(SecretBox { key })
    }

    pub fn generate() -> SecretBox {
        SecretBox {
            key: rand::random(),
        }
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    /// `context` binds the value to where it is stored ("sso_connections.secret:<id>").
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, SecretError> {
        let nonce: [u8; NONCE] = rand::random();
        let mut tag = [0u8; TAG];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            context.as_bytes(),
            plaintext,
            &mut tag,
        )
        .map_err(|e| SecretError::Crypto(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE + ciphertext.len() + TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() >= NONCE + TAG)
            .ok_or(SecretError::Undecryptable)?;
        let (nonce, rest) = bytes.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            context.as_bytes(),
            ciphertext,
            tag,
        )
        .map_err(|_| SecretError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = SecretBox::generate();
        let sealed = key
            .seal("sso_connections.secret:a", b"client-secret")
            .unwrap();
        assert!(!sealed.contains("client-secret"));
        assert_eq!(
            key.open("sso_connections.secret:a", &sealed).unwrap(),
            b"client-secret"
        );
        // Moved to another row.
        assert_eq!(
            key.open("sso_connections.secret:b", &sealed),
            Err(SecretError::Undecryptable)
        );
        // Another deployment's key.
        assert_eq!(
            SecretBox::generate().open("sso_connections.secret:a", &sealed),
            Err(SecretError::Undecryptable)
        );
        // One bit flipped.
        let mut raw = STANDARD.decode(&sealed[3..]).unwrap();
        raw[NONCE] ^= 1;
        let flipped = format!("v1:{}", STANDARD.encode(raw));
        assert_eq!(
            key.open("sso_connections.secret:a", &flipped),
            Err(SecretError::Undecryptable)
        );
        // Two seals of one value differ (fresh nonce).
        assert_ne!(
            sealed,
            key.seal("sso_connections.secret:a", b"client-secret")
                .unwrap()
        );
    }

    #[test]
    fn keys_must_be_32_base64_bytes() {
        let key = SecretBox::generate();
        assert!(SecretBox::from_base64(&key.to_base64()).is_ok());
        assert_eq!(
            SecretBox::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err(),
            SecretError::KeyLength(16)
        );
        assert_eq!(
            SecretBox::from_base64("not base64!").unwrap_err(),
            SecretError::KeyEncoding
        );
    }
}
