//! The pure crypto and protocol pieces of our OpenID provider: the RSA key that signs ID tokens
//! and its JWK, the signed token itself, and the small checks of the token endpoint (PKCE,
//! `client_secret_basic`, `at_hash`). No IO and no clock: the caller stores the keys (the private
//! key comes out as PKCS#8 PEM so it can be encrypted at rest), builds the claims as JSON, and
//! checks expiry, issuer and audience where it needs to.
//!
//! Tokens are JWS compact serializations (RFC 7515 §7.1) signed with RS256 (RFC 7518 §3.3), the
//! algorithm OIDC Core §15.1 requires of every OpenID provider and so the one every relying party
//! can verify. The JWS is built here with openssl rather than with `openidconnect`: that crate
//! signs its own typed claim structs rather than caller-built JSON, signs with the `rsa` crate
//! rather than the openssl the SAML side already trusts, and brings the client half of OAuth with
//! it; signing with one fixed algorithm is a few lines.
//!
//! [`verify`] exists for tests and for the caller's own checks of tokens we issued. It accepts
//! RS256 and nothing else: the algorithm is fixed by us, never chosen by the token's header, so
//! neither `"alg":"none"` nor an HMAC keyed with our public key (RFC 8725 §2.1) can pass.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{Signer, Verifier};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Smallest RSA modulus accepted for signing or verifying (RFC 7518 §3.3).
pub const MIN_RSA_BITS: u32 = 2048;
const ALG: &str = "RS256";

/// Why a key could not be loaded, a token not signed, or a token not verified. For the log: a
/// client that presents a bad token learns only that it was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("openssl: {0}")]
    Crypto(String),
    #[error("not an unencrypted PEM RSA private key")]
    InvalidKey,
    #[error("{bits}-bit RSA key; at least {MIN_RSA_BITS} is required")]
    KeyTooSmall { bits: u32 },
    #[error("a key id must not be empty")]
    EmptyKid,
    #[error("JWT claims must be a JSON object")]
    ClaimsNotObject,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0:?} refused; only RS256 is accepted")]
    Algorithm(String),
    #[error("no RS256 signing key in the key set for kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("the signature does not verify")]
    BadSignature,
}

impl From<ErrorStack> for TokenError {
    fn from(e: ErrorStack) -> Self {
        TokenError::Crypto(e.to_string())
    }
}

/// An RSA 2048 signing key. The private key is PKCS#8 PEM so the caller can encrypt and store it.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    private_pem: Vec<u8>,
    // Parsed once so that signing does not re-read the PEM every time.
    key: PKey<Private>,
}

// Written by hand so that the private key never reaches a log line.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new 2048-bit key whose `kid` is its RFC 7638 thumbprint, so the kid is derived from the
    /// key and cannot collide with another key's.
    pub fn generate() -> Result<SigningKey, TokenError> {
        let key = PKey::from_rsa(Rsa::generate(MIN_RSA_BITS)?)?;
        let private_pem = key.private_key_to_pem_pkcs8()?;
        let rsa = key.rsa()?;
        let kid = thumbprint(&b64(rsa.n().to_vec()), &b64(rsa.e().to_vec()));
        Ok(SigningKey {
            kid,
            private_pem,
            key,
        })
    }

    /// A stored key. The kid is taken as stored rather than recomputed, so a key keeps the id
    /// relying parties have cached. The PEM may be PKCS#8 or PKCS#1 but not encrypted: the caller
    /// decrypts it. [`SigningKey::private_pem`] always gives PKCS#8 back.
    pub fn from_pem(kid: &str, pem: &[u8]) -> Result<SigningKey, TokenError> {
        if kid.is_empty() {
            return Err(TokenError::EmptyKid);
        }
        // Refuse a passphrase outright: without this callback OpenSSL's default one could prompt
        // on the terminal for an encrypted key.
        let key = PKey::private_key_from_pem_callback(pem, |_| Err(ErrorStack::get()))
            .map_err(|_| TokenError::InvalidKey)?;
        let rsa = key.rsa().map_err(|_| TokenError::InvalidKey)?;
        if key.bits() < MIN_RSA_BITS {
            return Err(TokenError::KeyTooSmall { bits: key.bits() });
        }
        if !rsa.check_key().unwrap_or(false) {
            return Err(TokenError::InvalidKey);
        }
        Ok(SigningKey {
            kid: kid.to_owned(),
            private_pem: key.private_key_to_pem_pkcs8()?,
            key,
        })
    }

    pub fn private_pem(&self) -> &[u8] {
        &self.private_pem
    }

    /// The public half as published in our JWKS (RFC 7517 §4, RFC 7518 §6.3.1). `use` and `alg`
    /// are set so a relying party never tries the key for encryption or another algorithm.
    pub fn public_jwk(&self) -> Value {
        #[expect(
            clippy::expect_used,
            reason = "a SigningKey is only built from an RSA key"
        )]
        let rsa = self
            .key
            .rsa()
            .expect("a SigningKey is only built from an RSA key");
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": ALG,
            "kid": self.kid,
            // BigNum::to_vec is big-endian without leading zeros, as RFC 7518 §6.3.1.1 requires.
            "n": b64(rsa.n().to_vec()),
            "e": b64(rsa.e().to_vec()),
        })
    }

    /// Signs `claims`, a JSON object, as a JWT (RFC 7519 §7.1) in JWS compact serialization
    /// (RFC 7515 §7.1) with RS256: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        if !claims.is_object() {
            return Err(TokenError::ClaimsNotObject);
        }
        let header = json!({ "alg": ALG, "typ": "JWT", "kid": self.kid });
        let mut token = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        signer.set_rsa_padding(Padding::PKCS1)?;
        signer.update(token.as_bytes())?;
        let signature = signer.sign_to_vec()?;
        token.push('.');
        token.push_str(&b64(signature));
        Ok(token)
    }
}

/// The JWK Set document served at `jwks_uri` (RFC 7517 §5). Publish the current key and the
/// previous ones whose tokens may still be in use, so a rotation does not break verification.
pub fn jwks(public_jwks: &[Value]) -> Value {
    json!({ "keys": public_jwks })
}

/// RFC 7638 §3: base64url SHA-256 of the required members in lexicographic order, no whitespace.
/// Built by hand rather than with serde_json so the member order cannot depend on a feature flag;
/// base64url values need no JSON escaping.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    b64(Sha256::digest(canonical.as_bytes()))
}

/// OIDC Core §3.1.3.6 (and §3.2.2.10): left half of SHA-256 of the ASCII access token, base64url.
/// SHA-256 because our ID tokens are RS256.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    b64(&digest[..16])
}

/// RFC 7636 §4.1: `code_verifier = 43*128unreserved`, unreserved being `[A-Za-z0-9-._~]`.
fn valid_pkce_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2 with S256: the challenge is BASE64URL of a SHA-256 digest, so exactly 43
/// characters without padding. Decoding (which refuses non-zero trailing bits) rather than only
/// checking the alphabet also refuses the challenges no verifier could ever match.
pub fn valid_pkce_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|digest| digest.len() == 32)
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`. Compared in
/// constant time so the token endpoint does not leak how much of a guess was right.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    if !valid_pkce_verifier(verifier) || !valid_pkce_challenge(challenge) {
        return false;
    }
    let computed = b64(Sha256::digest(verifier.as_bytes()));
    // Both are 43 bytes here; memcmp::eq panics on different lengths.
    openssl::memcmp::eq(computed.as_bytes(), challenge.as_bytes())
}

/// RFC 6749 §2.3.1 `client_secret_basic`: an `Authorization` header value
/// `Basic base64(urlencoded(client_id) ":" urlencoded(client_secret))`. The id and secret are
/// form-urlencoded (RFC 6749 Appendix B) before the RFC 7617 encoding, so a ':' in either
/// arrives as `%3A` and the first raw ':' is the separator. `None` for anything malformed or an
/// empty client id; an empty secret is returned as is, for the caller's comparison to refuse.
pub fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    // RFC 7235 §2.1: the scheme is case-insensitive; RFC 7617 §2: one or more spaces follow it.
    let (scheme, credentials) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim_start_matches(' ')).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_urldecode(id)?;
    if id.is_empty() {
        return None;
    }
    Some((id, form_urldecode(secret)?))
}

/// application/x-www-form-urlencoded decoding of one value: '+' is a space, `%XX` a byte. A
/// broken escape or a result that is not UTF-8 is refused rather than passed on half-decoded.
fn form_urldecode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Verifies an RS256 JWS compact token (RFC 7515 §5.2) against a JWK Set and returns its claims.
/// Only the signature is checked: `exp`, `iss`, `aud` and `nonce` are the caller's.
///
/// The key is chosen by the header's `kid` (every key when there is none), and only among RSA
/// keys that do not say they are for another use or algorithm.
pub fn verify(token: &str, jwks: &Value) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let header = decode_json(header_b64).ok_or(TokenError::Malformed("header"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != ALG {
        return Err(TokenError::Algorithm(alg.to_owned()));
    }
    // RFC 7515 §4.1.11: extensions listed in "crit" must be understood; we understand none.
    if header.get("crit").is_some() {
        return Err(TokenError::Malformed("crit header parameter"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("signature encoding"))?;
    let kid = header.get("kid").and_then(Value::as_str);

    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let candidates: Vec<PKey<Public>> = keys
        .iter()
        .filter(|jwk| kid.is_none() || jwk.get("kid").and_then(Value::as_str) == kid)
        .filter_map(rs256_public_key)
        .collect();
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey(kid.map(str::to_owned)));
    }
    // The signing input is the ASCII of the first two parts exactly as received (§5.2 step 8).
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let mut verified = false;
    for key in &candidates {
        let mut verifier = Verifier::new(MessageDigest::sha256(), key)?;
        verifier.set_rsa_padding(Padding::PKCS1)?;
        verifier.update(signing_input.as_bytes())?;
        // An error here (a signature of the wrong length, say) is just a failed verification.
        if verifier.verify(&signature).unwrap_or(false) {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(TokenError::BadSignature);
    }
    decode_json(payload_b64).ok_or(TokenError::Malformed("claims"))
}

/// The public key of a JWK that may verify RS256, or `None` for any other key: not RSA, marked
/// for encryption or another algorithm, malformed, or smaller than [`MIN_RSA_BITS`].
fn rs256_public_key(jwk: &Value) -> Option<PKey<Public>> {
    let member = |name| jwk.get(name).and_then(Value::as_str);
    if member("kty") != Some("RSA")
        || member("use").is_some_and(|u| u != "sig")
        || member("alg").is_some_and(|a| a != ALG)
    {
        return None;
    }
    let n = BigNum::from_slice(&URL_SAFE_NO_PAD.decode(member("n")?).ok()?).ok()?;
    let e = BigNum::from_slice(&URL_SAFE_NO_PAD.decode(member("e")?).ok()?).ok()?;
    if (n.num_bits() as u32) < MIN_RSA_BITS {
        return None;
    }
    PKey::from_rsa(Rsa::from_public_components(n, e).ok()?).ok()
}

/// A base64url (no padding) part holding a JSON object, as the JOSE header and JWT claims must be.
fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some(value)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    // RSA key generation takes a while; one key serves every test that only needs "our key".
    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate().unwrap())
    }

    fn claims() -> Value {
        json!({ "iss": "https://idp.example", "sub": "u1", "aud": "app", "exp": 2_000_000_000 })
    }

    /// RFC 7638 §3.1's example key.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    /// The thumbprint computed another way: serde_json serializing a map, which is compact and,
    /// with keys written in sorted order, sorted whether or not `preserve_order` is on.
    fn independent_thumbprint(n: &str, e: &str) -> String {
        let canonical = serde_json::to_string(&json!({ "e": e, "kty": "RSA", "n": n })).unwrap();
        let digest = openssl::sha::sha256(canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest)
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let token = key().sign(&claims()).unwrap();
        let set = jwks(&[key().public_jwk()]);
        assert_eq!(verify(&token, &set).unwrap(), claims());

        let header = decode_json(&segments(&token)[0]).unwrap();
        assert_eq!(
            header,
            json!({ "alg": "RS256", "typ": "JWT", "kid": key().kid })
        );
    }

    #[test]
    fn signature_checks_out_with_openssl_directly() {
        // Independent of verify(): the public key comes from the private PEM, not the JWK.
        let token = key().sign(&claims()).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let private = PKey::private_key_from_pem(key().private_pem()).unwrap();
        let public = PKey::public_key_from_pem(&private.public_key_to_pem().unwrap()).unwrap();
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        verifier.update(input.as_bytes()).unwrap();
        assert!(
            verifier
                .verify(&URL_SAFE_NO_PAD.decode(signature).unwrap())
                .unwrap()
        );
        assert!(
            key()
                .private_pem()
                .starts_with(b"-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let token = key().sign(&claims()).unwrap();
        let parts = segments(&token);
        let mut forged = claims();
        forged["sub"] = json!("admin");
        let tampered = format!("{}.{}.{}", parts[0], b64(forged.to_string()), parts[2]);
        let set = jwks(&[key().public_jwk()]);
        assert_eq!(verify(&tampered, &set), Err(TokenError::BadSignature));

        let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
        signature[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(signature));
        assert_eq!(verify(&flipped, &set), Err(TokenError::BadSignature));
    }

    #[test]
    fn token_signed_by_another_key_is_refused() {
        let other = SigningKey::generate().unwrap();
        let set = jwks(&[key().public_jwk()]);
        // Claiming our kid does not help: the signature is checked with our key.
        let impostor = SigningKey::from_pem(&key().kid, other.private_pem()).unwrap();
        let token = impostor.sign(&claims()).unwrap();
        assert_eq!(verify(&token, &set), Err(TokenError::BadSignature));
        let token = other.sign(&claims()).unwrap();
        assert_eq!(
            verify(&token, &set),
            Err(TokenError::UnknownKey(Some(other.kid.clone())))
        );
        // Both keys published: rotation keeps old tokens valid.
        let both = jwks(&[key().public_jwk(), other.public_jwk()]);
        assert_eq!(verify(&token, &both).unwrap(), claims());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let token = key().sign(&claims()).unwrap();
        let parts = segments(&token);
        let set = jwks(&[key().public_jwk()]);

        let none = b64(json!({ "alg": "none", "typ": "JWT", "kid": key().kid }).to_string());
        for unsigned in [
            format!("{none}.{}.", parts[1]),
            format!("{none}.{}.{}", parts[1], parts[2]),
        ] {
            assert_eq!(
                verify(&unsigned, &set),
                Err(TokenError::Algorithm("none".into()))
            );
        }

        // The classic confusion: an HMAC keyed with the published public key.
        let hs = b64(json!({ "alg": "HS256", "typ": "JWT", "kid": key().kid }).to_string());
        let input = format!("{hs}.{}", parts[1]);
        let public_pem = PKey::private_key_from_pem(key().private_pem())
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let hmac_key = PKey::hmac(&public_pem).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &hmac_key).unwrap();
        signer.update(input.as_bytes()).unwrap();
        let forged = format!("{input}.{}", b64(signer.sign_to_vec().unwrap()));
        assert_eq!(
            verify(&forged, &set),
            Err(TokenError::Algorithm("HS256".into()))
        );

        let no_alg = b64(json!({ "typ": "JWT", "kid": key().kid }).to_string());
        let token = format!("{no_alg}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verify(&token, &set),
            Err(TokenError::Algorithm(String::new()))
        );
    }

    #[test]
    fn keys_for_other_uses_and_malformed_tokens_are_refused() {
        let token = key().sign(&claims()).unwrap();
        let mut jwk = key().public_jwk();
        jwk["use"] = json!("enc");
        assert!(matches!(
            verify(&token, &jwks(&[jwk])),
            Err(TokenError::UnknownKey(_))
        ));
        let mut jwk = key().public_jwk();
        jwk["alg"] = json!("PS256");
        assert!(matches!(
            verify(&token, &jwks(&[jwk])),
            Err(TokenError::UnknownKey(_))
        ));

        let set = jwks(&[key().public_jwk()]);
        let parts = segments(&token);
        for bad in [
            String::new(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.x"),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        ] {
            assert!(
                matches!(verify(&bad, &set), Err(TokenError::Malformed(_))),
                "{bad}"
            );
        }
        let crit = b64(json!({ "alg": "RS256", "kid": key().kid, "crit": ["exp"] }).to_string());
        let token = format!("{crit}.{}.{}", parts[1], parts[2]);
        assert!(matches!(
            verify(&token, &set),
            Err(TokenError::Malformed(_))
        ));

        assert_eq!(
            key().sign(&json!(["not", "an", "object"])),
            Err(TokenError::ClaimsNotObject)
        );
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        assert_eq!(
            independent_thumbprint(RFC7638_N, "AQAB"),
            RFC7638_THUMBPRINT
        );
        assert_eq!(thumbprint(RFC7638_N, "AQAB"), RFC7638_THUMBPRINT);
    }

    #[test]
    fn generated_kid_is_the_rfc7638_thumbprint() {
        let jwk = key().public_jwk();
        let (n, e) = (jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap());
        assert_eq!(key().kid, independent_thumbprint(n, e));
        assert_eq!(jwk["kid"], json!(key().kid));
        assert_eq!(
            (&jwk["kty"], &jwk["use"], &jwk["alg"], e),
            (&json!("RSA"), &json!("sig"), &json!("RS256"), "AQAB")
        );
        // 2048 bits with no leading zero octet (RFC 7518 §6.3.1.1).
        assert_eq!(URL_SAFE_NO_PAD.decode(n).unwrap().len(), 256);
    }

    #[test]
    fn from_pem_round_trips_and_refuses_small_or_encrypted_keys() {
        let loaded = SigningKey::from_pem("k1", key().private_pem()).unwrap();
        assert_eq!(loaded.kid, "k1");
        assert_eq!(loaded.public_jwk()["n"], key().public_jwk()["n"]);
        // PKCS#1 in, PKCS#8 out.
        let rsa = PKey::private_key_from_pem(key().private_pem())
            .unwrap()
            .rsa()
            .unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        assert!(pkcs1.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
        let loaded = SigningKey::from_pem("k1", &pkcs1).unwrap();
        assert_eq!(loaded.private_pem(), key().private_pem());

        let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let small_pem = small.private_key_to_pem_pkcs8().unwrap();
        assert_eq!(
            SigningKey::from_pem("k", &small_pem).unwrap_err(),
            TokenError::KeyTooSmall { bits: 1024 }
        );

        let encrypted = PKey::private_key_from_pem(key().private_pem())
            .unwrap()
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
            .unwrap();
        assert_eq!(
            SigningKey::from_pem("k", &encrypted).unwrap_err(),
            TokenError::InvalidKey
        );
        assert_eq!(
            SigningKey::from_pem("k", b"garbage").unwrap_err(),
            TokenError::InvalidKey
        );
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec_pem = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert_eq!(
            SigningKey::from_pem("k", &ec_pem).unwrap_err(),
            TokenError::InvalidKey
        );
        assert_eq!(
            SigningKey::from_pem("", key().private_pem()).unwrap_err(),
            TokenError::EmptyKid
        );
        assert!(!format!("{:?}", key()).contains("PRIVATE"));
    }

    #[test]
    fn at_hash_matches_oidc_core_example() {
        // OIDC Core Appendix A.3: the access token and at_hash of the "id_token token" example.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_pkce_challenge(challenge));
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
            challenge
        ));
        assert!(!pkce_s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cA"
        ));
        // Not the RFC's vector but a mis-copied pair once given for it: its halves do not match.
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mJ92K9rO4Gx6vHjc1Ag9M4sHFK9Qkw",
            "E9Melhoa2OwvFrBMTJ-jLgxywjnDFg45iwbj_67rDlk"
        ));
        // The "plain" method's comparison must not pass for S256.
        assert!(!pkce_s256_matches(verifier, verifier));

        // 42 characters: too short, even when its own hash is offered as the challenge.
        let short = &verifier[..42];
        assert!(!pkce_s256_matches(
            short,
            &b64(Sha256::digest(short.as_bytes()))
        ));
        let long = "a".repeat(129);
        assert!(!pkce_s256_matches(
            &long,
            &b64(Sha256::digest(long.as_bytes()))
        ));
        let max = "~".repeat(128);
        assert!(pkce_s256_matches(
            &max,
            &b64(Sha256::digest(max.as_bytes()))
        ));
        let bad_char = format!("{}+", &verifier[..42]);
        assert!(!pkce_s256_matches(
            &bad_char,
            &b64(Sha256::digest(bad_char.as_bytes()))
        ));

        assert!(!valid_pkce_challenge(&challenge[..42]));
        assert!(!valid_pkce_challenge(&format!("{challenge}=")));
        assert!(!valid_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
        // Non-zero trailing bits: no SHA-256 digest encodes to this.
        assert!(!valid_pkce_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
    }

    #[test]
    fn basic_auth_form_urldecodes_id_and_secret() {
        let header = format!("Basic {}", STANDARD.encode("my%20app:s%3Ae+cr%25et:x"));
        assert_eq!(
            parse_basic_auth(&header),
            Some(("my app".to_owned(), "s:e cr%et:x".to_owned()))
        );
        let header = format!("basic  {}", STANDARD.encode("app:"));
        assert_eq!(
            parse_basic_auth(&header),
            Some(("app".to_owned(), String::new()))
        );

        for bad in [
            format!("Bearer {}", STANDARD.encode("app:secret")),
            format!("Basic {}", STANDARD.encode("app-secret")),
            format!("Basic {}", STANDARD.encode(":secret")),
            format!("Basic {}", STANDARD.encode("app:bad%zz")),
            format!("Basic {}", STANDARD.encode("app:cut%4")),
            format!("Basic {}", STANDARD.encode("app:%FF")),
            "Basic !!!".to_owned(),
            "Basic".to_owned(),
        ] {
            assert_eq!(parse_basic_auth(&bad), None, "{bad}");
        }
    }
}
