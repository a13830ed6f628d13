//! The single sign-on part of the admin API that is not the connections' settings (which
//! [`crate::service::sso`] checks): reading and deleting connections, email domains, the
//! organization's OpenID clients, and revoking sessions.

use super::views::{Client, Domain};
use super::{Action, AdminError, AdminResult, Caller};
use crate::domain::audit::{AuditOp, AuditResource};
use crate::service::sso::{check_name, invalid};
use crate::store::admin::OrgScope;
use crate::store::directory::mint_token;
use crate::store::sso::{self as db, Connection};
use crate::store::{Store, audit, new_id};

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_connections(store: &Store, caller: &Caller) -> AdminResult<Vec<Connection>> {
    caller.require(Action::Read)?;
    Ok(store.list_connections(caller.scope()).await?)
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), connection_id = id))]
pub async fn get_connection(store: &Store, caller: &Caller, id: &str) -> AdminResult<Connection> {
    caller.require(Action::Read)?;
    Ok(store.get_connection(caller.scope(), id).await?)
}

/// Only the owner deletes the connection the owner signs in through.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), connection_id = id))]
pub async fn delete_connection(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    if store
        .get_connection(caller.scope(), id)
        .await?
        .signs_in_owner
    {
        caller.require(Action::ManageOwnerSignIn)?;
    }
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let users = db::users_with_claims_from(&mut tx, scope.org_id(), id).await?;
    db::delete_connection(&mut tx, scope, id).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::SsoConnection,
        Some(id),
        None,
    )
    .await?;
    let source = crate::mapping::rule::Source::Connection(id.to_string());
    super::rules::delete_rules_bound_to(&mut tx, scope, &source).await?;
    let mut prov = crate::service::provision::Provision::new(scope.org_id(), scope.actor());
    prov.touch(users);
    prov.finish(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Claims a domain, unverified: it routes nobody until its TXT record is checked.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), domain = domain, connection_id = connection_id))]
pub async fn add_domain(
    store: &Store,
    caller: &Caller,
    domain: &str,
    connection_id: Option<&str>,
) -> AdminResult<Domain> {
    claim_domain(store, caller, domain, connection_id, false).await
}

/// Claims a domain for the organization, verified at once when `verified`: the operator's CLI,
/// which vouches for it. A domain another organization verified cannot be claimed.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), domain = domain))]
pub async fn claim_domain(
    store: &Store,
    caller: &Caller,
    domain: &str,
    connection_id: Option<&str>,
    verified: bool,
) -> AdminResult<Domain> {
    caller.require(if verified {
        Action::Operate
    } else {
        Action::Manage
    })?;
    let scope = caller.scope();
    let domain = db::normalize_domain(domain)?;
    let token = mint_token("");
    let mut tx = store.begin().await?;
    if let Some(cid) = connection_id {
        db::connection_in(&mut tx, scope, cid).await?;
    }
    if db::domain_verified_by(&mut tx, &domain)
        .await?
        .is_some_and(|org| org != scope.org_id())
    {
        return Err(db::verified_elsewhere(&domain).into());
    }
    let verified_at = verified.then_some(tx.now());
    let d = db::insert_domain(&mut tx, scope, &domain, connection_id, &token, verified_at).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::Domain,
        Some(&domain),
        verified.then_some("verified by the operator"),
    )
    .await?;
    tx.commit().await?;
    Ok(d.into())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_domains(store: &Store, caller: &Caller) -> AdminResult<Vec<Domain>> {
    caller.require(Action::Read)?;
    let domains = store.list_domains(caller.scope()).await?;
    Ok(domains.into_iter().map(Into::into).collect())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), domain = domain))]
pub async fn delete_domain(store: &Store, caller: &Caller, domain: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let domain = domain.to_ascii_lowercase();
    let mut tx = store.begin().await?;
    if !db::delete_domain(&mut tx, scope, &domain).await? {
        return Err(AdminError::NotFound("not found".into()));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Delete,
        AuditResource::Domain,
        Some(&domain),
        None,
    )
    .await?;
    Ok(tx.commit().await?)
}

/// Redirect URIs are compared exactly; each must be absolute, without a fragment (RFC 6749
/// §3.1.2), and https unless it is on loopback (RFC 8252 §7.3).
pub fn check_redirect_uris(uris: &[String]) -> Result<(), AdminError> {
    if uris.is_empty() || uris.len() > 20 {
        return Err(invalid("redirect_uris must list 1 to 20 URIs"));
    }
    for uri in uris {
        let u = url::Url::parse(uri).map_err(|e| invalid(format!("redirect_uri {uri:?}: {e}")))?;
        let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        if u.fragment().is_some() || uri.len() > 2048 {
            return Err(invalid(format!(
                "redirect_uri {uri:?} has a fragment or is too long"
            )));
        }
        if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
            return Err(invalid(format!(
                "redirect_uri {uri:?} must be https (or http on loopback)"
            )));
        }
    }
    Ok(())
}

/// Registers an OpenID client of the organization; returns it and its secret, shown once.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn create_client(
    store: &Store,
    caller: &Caller,
    name: &str,
    redirect_uris: &[String],
) -> AdminResult<(Client, String)> {
    caller.require(Action::Manage)?;
    check_name(name)?;
    check_redirect_uris(redirect_uris)?;
    let (client, secret) =
        register_client(store, Some(caller.scope()), name.trim(), redirect_uris).await?;
    Ok((client.into(), secret))
}

/// Registers a client of `scope`'s organization, audited, or with `scope` none one of the
/// operator's, which signs in users of any organization; returns it and its secret, shown once.
/// The name and the redirect URIs are checked by the caller: [`create_client`], the CLI, tests.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = scope.map(|s| s.org_id())))]
pub async fn register_client(
    store: &Store,
    scope: Option<&OrgScope>,
    name: &str,
    redirect_uris: &[String],
) -> AdminResult<(db::Client, String)> {
    let id = format!("idbc_{}", new_id().replace('-', ""));
    let secret = mint_token("idbcs_");
    let mut tx = store.begin().await?;
    let client = db::insert_client(&mut tx, scope, &id, &secret, name, redirect_uris).await?;
    if let Some(scope) = scope {
        audit::record_as(
            &mut tx,
            &scope.audit(),
            AuditOp::Create,
            AuditResource::Client,
            Some(&id),
            Some(name),
        )
        .await?;
    }
    tx.commit().await?;
    Ok((client, secret))
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_clients(store: &Store, caller: &Caller) -> AdminResult<Vec<Client>> {
    caller.require(Action::Read)?;
    let clients = store.list_clients(Some(caller.scope())).await?;
    Ok(clients.into_iter().map(Into::into).collect())
}

/// Revokes a client and every access token it holds.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), client_id = id))]
pub async fn revoke_client(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    withdraw_client(store, Some(caller.scope()), id).await
}

/// Revokes a client of `scope`'s organization, audited, or with `scope` none one of the
/// operator's, and every access token it holds.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = scope.map(|s| s.org_id()), client_id = id))]
pub async fn withdraw_client(store: &Store, scope: Option<&OrgScope>, id: &str) -> AdminResult<()> {
    let mut tx = store.begin().await?;
    if !db::revoke_client(&mut tx, scope, id).await? {
        return Err(AdminError::NotFound("not found".into()));
    }
    if let Some(scope) = scope {
        audit::record_as(
            &mut tx,
            &scope.audit(),
            AuditOp::Revoke,
            AuditResource::Client,
            Some(id),
            None,
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

/// Signs a session out: its cookie and the access tokens issued from it stop working.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), session_id = id))]
pub async fn revoke_session(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::revoke_session(&mut tx, scope, id).await? {
        return Err(AdminError::NotFound("not found".into()));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Revoke,
        AuditResource::Session,
        Some(id),
        None,
    )
    .await?;
    Ok(tx.commit().await?)
}
