//! What each fuzz target does with one input, shared by the libFuzzer targets in
//! `fuzz_targets/` and by the stable test that replays the committed corpus (`tests/api`
//! includes this file), so the corpus is checked on every `cargo test` without libFuzzer.
//!
//! Every function panics only on a finding: a panic in the product code, an error that is not a
//! client error (a hostile request must never cause a 5xx), or a broken invariant stated next to
//! its check.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use idbridge::oauth::token::{
    SigningKey, jwks, parse_basic_auth, pkce_s256_matches, valid_pkce_challenge, verify,
};
use idbridge::scim::error::ScimError;
use idbridge::scim::filter::{
    MAX_FILTER_LEN, matches, parse_filter, parse_filter_multi, parse_path,
};
use idbridge::scim::patch::{apply, parse_patch, split_member_ops};
use idbridge::scim::resource::{normalize, project, take_members};
use idbridge::scim::schema::{GROUP, ResourceType, USER};
use idbridge::service::oauth::{AuthorizeParams, TokenRequest};
use idbridge::sso::saml::{SamlConnection, validate_response};
use idbridge::store::Backend;
use idbridge::store::sql::{Compiler, SqlBuilder, Table, sort_expr};

const TYPES: [(&ResourceType, Table); 2] = [(&USER, Table::Users), (&GROUP, Table::Groups)];

fn client_error(e: &ScimError, input: &dyn std::fmt::Debug) {
    assert!((400..500).contains(&e.status), "{input:?} gave {e}");
}

/// A stored user and group, as `normalize` leaves them, with the id and meta the store adds.
fn stored(rt: &ResourceType) -> &'static Value {
    static USER_DOC: OnceLock<Value> = OnceLock::new();
    static GROUP_DOC: OnceLock<Value> = OnceLock::new();
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let (cell, body) = if rt.name == GROUP.name {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering", "externalId": "eng",
            "members": [{"value": "u1", "type": "User"}, {"value": "u2"}]
        });
        (&GROUP_DOC, body)
    } else {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent],
            "userName": "bjensen", "active": true, "title": "Tour Guide",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true},
                       {"value": "bj@example.org", "type": "home"}],
            "phoneNumbers": [{"value": "555-1234", "type": "work"}],
            ent: {"employeeNumber": "701984", "department": "Tours", "manager": {"value": "m1"}}
        });
        (&USER_DOC, body)
    };
    cell.get_or_init(|| {
        let mut doc = normalize(&body, rt).expect("the stored resource is valid");
        doc["id"] = json!("2819c223-7f76-453a-919d-413861904646");
        doc["meta"] = json!({"resourceType": rt.name, "version": "W/\"1\"",
            "created": "2025-01-15T12:00:00Z", "lastModified": "2025-01-15T12:00:00Z"});
        doc
    })
}

/// The filter parser (`filter=`, both for one type and across types at the root), its SQL
/// translation for both backends, the in-memory evaluator, the printer (what it prints must parse
/// back to the same tree), and a `sortBy` attribute.
pub fn scim_filter(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for (rt, table) in TYPES {
        match parse_filter(input, rt) {
            Ok(filter) => {
                compile(&filter, rt, table);
                let _ = matches(&filter, stored(rt), rt);
                let printed = filter.to_string();
                if printed.len() <= MAX_FILTER_LEN {
                    let back = parse_filter(&printed, rt)
                        .unwrap_or_else(|e| panic!("{input:?} printed as {printed:?}: {e}"));
                    assert_eq!(back, filter, "{input:?} printed as {printed:?}");
                }
            }
            Err(e) => client_error(&e, &input),
        }
        if let Some(r) = rt.resolve_str(input) {
            for backend in [Backend::Sqlite, Backend::Postgres] {
                let mut out = SqlBuilder::default();
                if let Err(e) = sort_expr(backend, table, rt, &r.to_path(), &mut out) {
                    client_error(&e, &input);
                }
            }
        }
    }
    match parse_filter_multi(input, &[&USER, &GROUP]) {
        Ok(per_type) => {
            for (filter, (rt, table)) in per_type.iter().zip(TYPES) {
                if let Some(filter) = filter {
                    compile(filter, rt, table);
                }
            }
        }
        Err(e) => client_error(&e, &input),
    }
}

fn compile(filter: &idbridge::scim::filter::Filter, rt: &ResourceType, table: Table) {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut out = SqlBuilder::default();
        match (Compiler { backend, table, rt }).compile(filter, &mut out) {
            // Values are bound, never spliced: the text holds exactly one placeholder per value.
            Ok(()) => {
                let last = format!("${}", out.binds.len());
                let next = format!("${}", out.binds.len() + 1);
                assert!(
                    out.binds.is_empty() || out.sql.contains(&last),
                    "{filter:?}: {}",
                    out.sql
                );
                assert!(!out.sql.contains(&next), "{filter:?}: {}", out.sql);
            }
            Err(e) => client_error(&e, filter),
        }
    }
}

/// A PATCH path on its own, and a PatchOp body parsed and applied to a stored user and group
/// (the group both whole and split as the service splits member operations out).
pub fn scim_patch(data: &[u8]) {
    if let Ok(input) = std::str::from_utf8(data) {
        for (rt, _) in TYPES {
            if let Err(e) = parse_path(input, rt) {
                client_error(&e, &input);
            }
        }
    }
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (rt, _) in TYPES {
        let ops = match parse_patch(&body, rt) {
            Ok(ops) => ops,
            Err(e) => {
                client_error(&e, &body);
                continue;
            }
        };
        applied(stored(rt), &ops, rt, &body);
        if rt.name == GROUP.name {
            match split_member_ops(ops) {
                Ok((doc_ops, _)) => {
                    let mut doc = stored(rt).clone();
                    take_members(&mut doc);
                    applied(&doc, &doc_ops, rt, &body);
                }
                Err(e) => client_error(&e, &body),
            }
        }
    }
}

fn applied(doc: &Value, ops: &[idbridge::scim::patch::PatchOp], rt: &ResourceType, body: &Value) {
    match apply(doc, ops, rt) {
        // What is stored is read back as is: normalizing it again changes nothing.
        Ok(out) => {
            let again = normalize(&out, rt).unwrap_or_else(|e| panic!("{body}: {out} {e}"));
            assert_eq!(strip_server(&again), strip_server(&out), "{body}");
        }
        Err(e) => client_error(&e, body),
    }
}

fn strip_server(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("id");
        m.remove("meta");
    }
    v
}

/// A resource body as POST and PUT receive it: normalized (idempotently), then projected as a
/// response with `attributes` and `excludedAttributes`.
pub fn scim_resource(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (rt, _) in TYPES {
        match normalize(&body, rt) {
            Ok(doc) => {
                let again = normalize(&doc, rt).unwrap_or_else(|e| panic!("{body}: {doc} {e}"));
                assert_eq!(again, doc, "{body}");
                let _ = project(&doc, rt, Some("userName,name.givenName,emails.value"), None);
                let _ = project(&doc, rt, None, Some("emails,members,name"));
                let mut without = doc.clone();
                take_members(&mut without);
            }
            Err(e) => client_error(&e, &body),
        }
    }
}

const IDP: &str = "https://idp.example.test/metadata";
const SP: &str = "https://sp.idbridge.test/saml/metadata";
const ACS: &str = "https://sp.idbridge.test/saml/acs";
const REQUEST_ID: &str = "_idbridge-req-1";
/// Inside the validity window of every fixture in `fixtures/saml` (see its README).
const NOW: OffsetDateTime = datetime!(2025-01-15 12:01:00 UTC);

/// The fixtures' connection: the IdP's current certificate, and a second one that also holds
/// our decryption key and allows IdP-initiated sign-in, so both intakes are reached.
fn saml_connections() -> &'static [SamlConnection; 2] {
    static CONNS: OnceLock<[SamlConnection; 2]> = OnceLock::new();
    CONNS.get_or_init(|| {
        let cert = include_bytes!("../../fixtures/saml/keys/idp-rsa.crt");
        let plain = SamlConnection::new(IDP, &[cert], SP, ACS).expect("fixture connection");
        let decrypting = plain
            .clone()
            .with_idp_initiated(true)
            .with_decryption_key(include_bytes!("../../fixtures/saml/keys/sp-enc.key"))
            .expect("fixture decryption key");
        [plain, decrypting]
    })
}

/// The names the fixtures' IdP signed (`attack_comment_in_nameid.xml` signed the longer one).
const SIGNED_NAMES: [&str; 2] = ["alice@example.com", "alice@example.com.evil.test"];

/// A SAML response as the ACS receives it: the input is the XML, posted base64-encoded, and
/// also taken as the raw form value. Whatever passes must be an identity the IdP signed: a
/// change outside what it signed can never change who signs in.
pub fn saml_response(data: &[u8]) {
    let [plain, decrypting] = saml_connections();
    let posted = STANDARD.encode(data);
    let results = [
        validate_response(&posted, plain, Some(REQUEST_ID), NOW),
        validate_response(&posted, decrypting, None, NOW),
    ];
    for identity in results.into_iter().flatten() {
        assert!(
            SIGNED_NAMES.contains(&identity.name_id.as_str()),
            "{identity:?}"
        );
        assert_eq!(identity.attribute("email"), Some(identity.name_id.as_str()));
        assert_eq!(identity.assertion_id, "_assert-1");
    }
    if let Ok(raw) = std::str::from_utf8(data) {
        let _ = validate_response(raw, plain, Some(REQUEST_ID), NOW);
    }
}

fn token_keys() -> &'static Value {
    static KEYS: OnceLock<Value> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pem = include_bytes!("../../fixtures/saml/keys/idp-rsa.key");
        let key = SigningKey::from_pem("fuzz", pem).expect("fixture RSA key");
        jwks(&[key.public_jwk()])
    })
}

/// The OAuth endpoints' input: the authorize query and the token form as the `Query` and `Form`
/// extractors read them, the client's Basic credentials, PKCE, and a JWS to verify.
pub fn oauth_params(data: &[u8]) {
    let _ = serde_urlencoded::from_bytes::<AuthorizeParams>(data);
    let _ = serde_urlencoded::from_bytes::<TokenRequest>(data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((id, _)) = parse_basic_auth(input) {
        assert!(!id.is_empty(), "{input:?}");
    }
    let (verifier, challenge) = input.split_once('\n').unwrap_or((input, input));
    if pkce_s256_matches(verifier, challenge) {
        assert!(valid_pkce_challenge(challenge), "{input:?}");
    }
    let _ = verify(input, token_keys());
}
