//! Connection administration, as the admin API and the CLI write it: a connection's settings
//! checked as a sign-in will use them (discovery fetched, metadata read), the view with the
//! addresses the IdP's admin needs, and the verified domains that route users to a connection.
//! Sign-in itself is [`crate::service::sign_in`].

use serde::Deserialize;
use serde_json::Value;

use crate::domain::access::ConnectionKind;
use crate::domain::audit::{AuditOp, AuditResource};
use crate::net::Outbound;
use crate::service::admin::{self as views, Action, AdminError, AdminResult, Caller, Domain};
use crate::sso::connection::{
    MAX_METADATA_BYTES, OidcSettings, SamlSettings, Settings, SettingsError, parse_idp_metadata,
};
use crate::store::admin::OrgScope;
use crate::store::sso::{self as db, Connection, ConnectionWrite};
use crate::store::{Store, StoreError, audit, new_id};

// ---- connections, as the admin API and the CLI write them ----------------------------------------

/// An OIDC connection's settings as the admin gives them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcInput {
    #[serde(flatten)]
    pub settings: OidcSettings,
    /// Stored sealed; never returned.
    pub client_secret: Option<String>,
}

/// A SAML connection's settings: the IdP's metadata (XML, or an https URL to fetch it from), or
/// its entity id, SSO URL and certificates given one by one. Explicit fields win over metadata.
/// All may be left out at first (the connection is then incomplete, and answers with the ACS URL
/// and entity id the IdP asks for) and given later by PATCH, which keeps what it does not name.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlInput {
    pub metadata_xml: Option<String>,
    pub metadata_url: Option<String>,
    pub idp_entity_id: Option<String>,
    pub idp_sso_url: Option<String>,
    /// PEM certificates, or the bare base64 text of each as metadata carries it.
    pub idp_certificates: Option<Vec<String>>,
    /// Off when created without it.
    pub idp_initiated: Option<bool>,
    pub clock_skew_seconds: Option<i64>,
    pub sp_entity_id: Option<String>,
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    pub groups_attribute: Option<String>,
    /// Accept assertions encrypted to our key (made for the connection, published in our SP
    /// metadata). Off (when created without it): the IdP must send them unencrypted (they are
    /// signed, and travel over TLS).
    pub encrypted_assertions: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    pub name: String,
    /// Just-in-time provisioning (off by default). Never applies while a SCIM directory manages
    /// the organization.
    #[serde(default)]
    pub jit: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The organization's owner may sign in through this connection (off by default). Only the
    /// owner sets it, and only the owner changes or deletes a connection that has it.
    #[serde(default)]
    pub signs_in_owner: bool,
    /// Sign in users whose email domain the organization has not verified (off by default).
    /// Users of a verified domain routed to another connection never sign in through this one.
    #[serde(default)]
    pub allow_other_domains: bool,
    pub oidc: Option<OidcInput>,
    pub saml: Option<SamlInput>,
}

fn yes() -> bool {
    true
}

/// A partial update: what is given replaces what is stored. SAML settings merge field by field
/// into the stored ones (metadata gives the IdP's entity id, SSO URL and certificates); OIDC
/// settings are replaced whole.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    pub name: Option<String>,
    pub jit: Option<bool>,
    pub enabled: Option<bool>,
    pub signs_in_owner: Option<bool>,
    pub allow_other_domains: Option<bool>,
    pub oidc: Option<OidcInput>,
    pub saml: Option<SamlInput>,
}

pub fn invalid(e: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(e.to_string())
}

/// Fetches IdP metadata through the outbound policy (no redirects, bounded size and time).
async fn fetch_metadata(outbound: &Outbound, url: &str) -> Result<String, AdminError> {
    let fetched = outbound
        .get(url, MAX_METADATA_BYTES)
        .await
        .map_err(|e| invalid(format!("metadata_url: {e}")))?;
    if !fetched.status.is_success() {
        return Err(invalid(format!("metadata_url answered {}", fetched.status)));
    }
    String::from_utf8(fetched.body).map_err(|_| invalid("metadata_url: not UTF-8"))
}

/// An OIDC connection is checked as a sign-in will use it: the issuer's discovery document
/// (Discovery 1.0 §4) is fetched, and its issuer must be the configured one (§4.3), so a typo or
/// a trailing slash is found now rather than at every user's sign-in.
async fn check_discovery(outbound: &Outbound, issuer: &str) -> Result<(), AdminError> {
    let url = crate::sso::oidc::discovery_url(issuer);
    let fetched = outbound
        .get(&url, crate::sso::oidc::MAX_DOCUMENT_BYTES)
        .await
        .map_err(|e| invalid(format!("oidc.issuer: discovery failed: {e}")))?;
    if !fetched.status.is_success() {
        return Err(invalid(format!(
            "oidc.issuer: discovery failed: {url} answered {}",
            fetched.status
        )));
    }
    crate::sso::oidc::check_discovery_document(issuer, &fetched.body)
        .map_err(|e| invalid(format!("oidc.issuer: {e}")))
}

/// The settings `input` makes of `before` (a new connection's are empty): metadata replaces the
/// IdP's entity id, SSO URL and certificates, fields given replace their stored value, the rest
/// is kept.
async fn saml_settings(
    outbound: &Outbound,
    input: SamlInput,
    before: SamlSettings,
) -> Result<SamlSettings, AdminError> {
    let xml = match (&input.metadata_xml, &input.metadata_url) {
        (Some(xml), _) => Some(xml.clone()),
        (None, Some(url)) => Some(fetch_metadata(outbound, url).await?),
        (None, None) => None,
    };
    let metadata = xml
        .as_deref()
        .map(parse_idp_metadata)
        .transpose()
        .map_err(|e: SettingsError| invalid(e))?;
    let mut s = before;
    if let Some(m) = metadata {
        s.idp_entity_id = m.entity_id;
        s.idp_sso_url = m.sso_url;
        s.idp_certificates = m.certificates;
        // Pasted XML has no address to refresh from.
        s.metadata_url = input.metadata_url.clone();
    }
    if let Some(v) = input.idp_entity_id {
        s.idp_entity_id = v.trim().to_string();
    }
    if let Some(v) = input.idp_sso_url {
        s.idp_sso_url = v.trim().to_string();
    }
    if let Some(certs) = input.idp_certificates {
        if certs.is_empty() {
            return Err(invalid(
                "saml.idp_certificates is empty: give at least one, or leave it out to give it later",
            ));
        }
        s.idp_certificates = certs
            .iter()
            .enumerate()
            .map(|(i, c)| crate::sso::connection::certificate_pem(i, c))
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
    }
    if let Some(v) = input.idp_initiated {
        s.idp_initiated = v;
    }
    if input.clock_skew_seconds.is_some() {
        s.clock_skew_seconds = input.clock_skew_seconds;
    }
    if input.sp_entity_id.is_some() {
        s.sp_entity_id = input.sp_entity_id;
    }
    if input.email_attribute.is_some() {
        s.email_attribute = input.email_attribute;
    }
    if input.name_attribute.is_some() {
        s.name_attribute = input.name_attribute;
    }
    if input.groups_attribute.is_some() {
        s.groups_attribute = input.groups_attribute;
    }
    s.check(outbound.allows_private()).map_err(invalid)?;
    Ok(s)
}

/// The kind, the settings to store, and the secret (outer `Some`: change it).
type Checked = (ConnectionKind, Value, Option<Option<String>>);

async fn check_settings(
    outbound: &Outbound,
    oidc: Option<OidcInput>,
    saml: Option<SamlInput>,
    before: Option<&Connection>,
) -> Result<Option<Checked>, AdminError> {
    match (oidc, saml) {
        (Some(_), Some(_)) => Err(invalid("give either oidc or saml, not both")),
        (Some(mut o), None) => {
            o.settings
                .check(outbound.allows_private())
                .map_err(invalid)?;
            check_discovery(outbound, &o.settings.issuer).await?;
            let value = serde_json::to_value(&o.settings).map_err(invalid)?;
            Ok(Some((
                ConnectionKind::Oidc,
                value,
                o.client_secret.map(Some),
            )))
        }
        (None, Some(s)) => {
            let stored = match before {
                Some(c) if c.kind == ConnectionKind::Saml => {
                    Settings::read_saml(c.kind, &c.config).map_err(invalid)?
                }
                _ => SamlSettings::default(),
            };
            // Our encryption key outlives edits of the connection: the IdP holds its certificate.
            let kept = stored.sp_encryption_certificate.clone();
            let encrypted = s.encrypted_assertions.unwrap_or(kept.is_some());
            let mut settings = saml_settings(outbound, s, stored).await?;
            let secret = match (encrypted, kept) {
                (true, Some(cert)) => {
                    settings.sp_encryption_certificate = Some(cert);
                    None
                }
                (true, None) => {
                    let (key, cert) =
                        crate::sso::connection::generate_sp_encryption_key("idbridge SAML SP")
                            .map_err(invalid)?;
                    settings.sp_encryption_certificate = Some(cert);
                    Some(Some(key))
                }
                (false, Some(_)) => {
                    settings.sp_encryption_certificate = None;
                    Some(None)
                }
                (false, None) => None,
            };
            Ok(Some((
                ConnectionKind::Saml,
                serde_json::to_value(&settings).map_err(invalid)?,
                secret,
            )))
        }
        (None, None) => Ok(None),
    }
}

/// A connection as the admin API and the CLI show it: with the addresses the IdP's admin needs,
/// and whether it can sign anyone in yet.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    #[serde(flatten)]
    pub connection: views::Connection,
    /// `complete`, or `incomplete` until the IdP's details in `missing` are given.
    pub status: &'static str,
    pub missing: Vec<&'static str>,
    #[schema(value_type = Object)]
    pub endpoints: Value,
}

pub fn connection_view(public_url: &str, connection: Connection) -> ConnectionView {
    let id = &connection.id;
    let missing = crate::sso::connection::missing_settings(connection.kind, &connection.config);
    let endpoints = match connection.kind {
        ConnectionKind::Saml => serde_json::json!({
            "sp_entity_id": connection.config.get("sp_entity_id").and_then(Value::as_str)
                .map(str::to_string).unwrap_or_else(|| format!("{public_url}/sso/saml/{id}")),
            "acs_url": format!("{public_url}/sso/saml/{id}/acs"),
            "sp_metadata_url": format!("{public_url}/sso/saml/{id}/metadata"),
            "start_url": format!("{public_url}/sso/{id}/start"),
        }),
        ConnectionKind::Oidc => serde_json::json!({
            "redirect_uri": format!("{public_url}/sso/oidc/callback"),
            "start_url": format!("{public_url}/sso/{id}/start"),
        }),
    };
    ConnectionView {
        status: if missing.is_empty() {
            "complete"
        } else {
            "incomplete"
        },
        missing,
        endpoints,
        connection: connection.into(),
    }
}

pub fn check_name(name: &str) -> Result<(), AdminError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(invalid("name must be 1-200 printable characters"));
    }
    Ok(())
}

/// Looks for the organization's TXT record of a claimed domain and, when it is there, verifies
/// the claim: from then on the domain's users are sent to the organization's IdP. Proof of
/// control is what keeps one organization from routing another's employees to its own IdP.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), domain = domain))]
pub async fn verify_domain(
    store: &Store,
    dns: &crate::sso::dns::Dns,
    caller: &Caller,
    domain: &str,
) -> AdminResult<Domain> {
    caller.require(Action::Manage)?;
    let claim = store.domain(caller.scope(), domain).await?;
    if claim.verified {
        return Ok(claim.into());
    }
    let record = &claim.verification;
    let found = dns.txt(&record.name).await.map_err(|e| {
        tracing::warn!(error = %e, "domain verification lookup failed");
        AdminError::Unavailable(format!("{e}; try again later"))
    })?;
    if !found.iter().any(|text| text.trim() == record.value) {
        let seen = if found.is_empty() {
            "none".to_string()
        } else {
            found.join(", ")
        };
        return Err(AdminError::Conflict(format!(
            "no TXT record {} with the text {} was found (found: {seen}); DNS changes can take a \
             while to be visible, try again later",
            record.name, record.value
        )));
    }
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    // Verified meanwhile (by a second request): nothing more to record.
    let current = db::domain_in(&mut tx, scope, &claim.domain).await?;
    if current.verified {
        return Ok(current.into());
    }
    let d = db::set_domain_verified(&mut tx, scope, &claim.domain).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Verify,
        AuditResource::Domain,
        Some(&claim.domain),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(d.into())
}

/// Sends a domain's users to another connection of the organization (`None`: the organization's
/// first complete one). No new DNS proof: the organization proved it controls the domain, and the
/// connection is its own. A connection of another organization is refused, and so is one still
/// waiting for its IdP's details, which would leave the domain's users nowhere to sign in.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), domain = domain, connection_id = connection_id))]
pub async fn move_domain(
    store: &Store,
    caller: &Caller,
    domain: &str,
    connection_id: Option<&str>,
) -> AdminResult<Domain> {
    caller.require(Action::Manage)?;
    // The claim first: an unknown domain is a 404 whatever the connection.
    store.domain(caller.scope(), domain).await?;
    if let Some(id) = connection_id {
        let conn = match store.get_connection(caller.scope(), id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                return Err(invalid(format!(
                    "connection {id:?} is not a connection of this organization"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let missing = crate::sso::connection::missing_settings(conn.kind, &conn.config);
        if !missing.is_empty() {
            return Err(AdminError::Conflict(format!(
                "connection {id:?} is incomplete (missing {}); give the IdP's details first",
                missing.join(", ")
            )));
        }
    }
    let scope = caller.scope();
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut tx = store.begin().await?;
    let before = db::domain_in(&mut tx, scope, &domain).await?;
    if let Some(cid) = connection_id {
        db::connection_in(&mut tx, scope, cid).await?;
    }
    let d = db::set_domain_connection(&mut tx, scope, &domain, connection_id).await?;
    let detail = serde_json::json!({
        "from": before.connection_id,
        "to": connection_id,
    })
    .to_string();
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Move,
        AuditResource::Domain,
        Some(&domain),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    Ok(d.into())
}

/// Creates a connection from the admin's settings, checked as a sign-in will use them.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn create_connection(
    store: &Store,
    caller: &Caller,
    outbound: &Outbound,
    body: ConnectionInput,
) -> AdminResult<Connection> {
    caller.require(Action::Manage)?;
    if body.signs_in_owner {
        caller.require(Action::ManageOwnerSignIn)?;
    }
    check_name(&body.name)?;
    let Some((kind, config, secret)) = check_settings(outbound, body.oidc, body.saml, None).await?
    else {
        return Err(invalid("give oidc or saml settings"));
    };
    let secret = secret.flatten();
    if kind == ConnectionKind::Oidc && secret.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("oidc.client_secret is required"));
    }
    let id = new_id();
    let sealed = secret
        .as_deref()
        .map(|s| store.seal_connection_secret(&id, s))
        .transpose()?;
    let write = ConnectionWrite {
        kind,
        name: body.name.trim(),
        config: &config,
        secret: Some(sealed.as_deref()),
        jit: body.jit,
        enabled: body.enabled,
        signs_in_owner: body.signs_in_owner,
        allow_other_domains: body.allow_other_domains,
    };
    add_connection(store, caller.scope(), &id, &write).await
}

/// Stores a checked connection under `id` (its secret, if any, sealed under that id) with its
/// audit row: what [`create_connection`] does once the caller may and the settings are checked,
/// and what tests set up.
pub async fn add_connection(
    store: &Store,
    scope: &OrgScope,
    id: &str,
    write: &ConnectionWrite<'_>,
) -> AdminResult<Connection> {
    let mut tx = store.begin().await?;
    let conn = db::insert_connection(&mut tx, scope, id, write).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::SsoConnection,
        Some(id),
        Some(write.name),
    )
    .await?;
    tx.commit().await?;
    Ok(conn)
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), connection_id = id))]
pub async fn update_connection(
    store: &Store,
    caller: &Caller,
    outbound: &Outbound,
    id: &str,
    body: ConnectionPatch,
) -> AdminResult<Connection> {
    caller.require(Action::Manage)?;
    let before = store.get_connection(caller.scope(), id).await?;
    if before.signs_in_owner || body.signs_in_owner == Some(true) {
        caller.require(Action::ManageOwnerSignIn)?;
    }
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let (kind, config, secret) =
        match check_settings(outbound, body.oidc, body.saml, Some(&before)).await? {
            Some(checked) => checked,
            None => (before.kind, before.config.clone(), None),
        };
    if kind != before.kind {
        return Err(invalid(
            "a connection's kind cannot change; create another connection",
        ));
    }
    // `Some(None)` removes the secret; `None` keeps it.
    let sealed = match secret {
        Some(Some(s)) => Some(Some(store.seal_connection_secret(id, &s)?)),
        Some(None) => Some(None),
        None => None,
    };
    let write = ConnectionWrite {
        kind,
        name: body.name.as_deref().map(str::trim).unwrap_or(&before.name),
        config: &config,
        secret: sealed.as_ref().map(|s| s.as_deref()),
        jit: body.jit.unwrap_or(before.jit),
        enabled: body.enabled.unwrap_or(before.enabled),
        signs_in_owner: body.signs_in_owner.unwrap_or(before.signs_in_owner),
        allow_other_domains: body
            .allow_other_domains
            .unwrap_or(before.allow_other_domains),
    };
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let conn = db::update_connection(&mut tx, scope, id, &write).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Update,
        AuditResource::SsoConnection,
        Some(id),
        Some(write.name),
    )
    .await?;
    tx.commit().await?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata is fetched over https from public addresses only, unless tests allow otherwise:
    /// an admin must not be able to make the service read its own network.
    #[tokio::test]
    async fn metadata_urls_must_be_https_and_public() {
        for url in [
            "http://idp.example/metadata",
            "https://127.0.0.1/metadata",
            "https://10.1.2.3/metadata",
            "https://[::1]/metadata",
            "https://localhost/metadata",
            "file:///etc/passwd",
        ] {
            let err = fetch_metadata(&Outbound::default(), url).await.unwrap_err();
            assert!(
                matches!(&err, AdminError::Invalid(d) if d.starts_with("metadata_url")),
                "{url}: {err:?}"
            );
        }
    }

    /// A SAML connection that takes encrypted assertions gets its own key, which survives edits
    /// (the IdP holds the certificate) and goes when encryption is turned off.
    #[tokio::test]
    async fn the_sp_encryption_key_is_made_once_and_kept() {
        let cert = std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap();
        let input = |encrypted: bool| SamlInput {
            idp_entity_id: Some("https://idp.example/entity".into()),
            idp_sso_url: Some("https://idp.example/sso".into()),
            idp_certificates: Some(vec![cert.clone()]),
            encrypted_assertions: Some(encrypted),
            ..SamlInput::default()
        };
        let (_, config, secret) =
            check_settings(&Outbound::default(), None, Some(input(true)), None)
                .await
                .unwrap()
                .unwrap();
        let pem = config["sp_encryption_certificate"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = secret.flatten().expect("a new private key to seal");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let before = Connection {
            id: "c".into(),
            org_id: "o".into(),
            kind: ConnectionKind::Saml,
            name: "n".into(),
            config: config.clone(),
            has_secret: true,
            jit: false,
            enabled: true,
            signs_in_owner: false,
            allow_other_domains: false,
            created_at: 0,
            updated_at: 0,
        };
        let (_, kept, secret) =
            check_settings(&Outbound::default(), None, Some(input(true)), Some(&before))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            kept["sp_encryption_certificate"],
            config["sp_encryption_certificate"]
        );
        assert_eq!(secret, None, "the sealed key is left as it is");
        let (_, off, secret) = check_settings(
            &Outbound::default(),
            None,
            Some(input(false)),
            Some(&before),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(off.get("sp_encryption_certificate").is_none());
        assert_eq!(secret, Some(None), "the key is removed");
    }
}
