//! Running a command, and the admin commands a person scripts: organizations, directories,
//! tokens. Each prints a human line, or with `--json` exactly one JSON object on stdout; a failure
//! prints one line, JSON with `--json`.

use serde_json::json;

use crate::config::{
    AdminTokenCommand, Cli, ClientCommand, Command, DirectoryCommand, DomainCommand, Expiry,
    Global, MappingCommand, OrgCommand, PlatformTokenCommand, PortalLinkCommand, SigningKeyCommand,
    SsoCommand, SubAccountCommand, TokenCommand,
};
use crate::service::admin::{self as svc, AdminError, Caller, RuleChange};
use crate::store::admin::OrgScope;
use crate::store::{OrgRecord, Store, StoreError, StoreOptions};

/// Runs one command: opens the database (only `serve` and `migrate` may create it), migrates,
/// and dispatches.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Command::Openapi) {
        println!("{:#}", crate::http::admin::document());
        return Ok(());
    }
    crate::telemetry::init(cli.global.log_format);
    let global = &cli.global;
    let serve = matches!(cli.command, Command::Serve);
    let creates = serve || matches!(cli.command, Command::Migrate);
    let database = global.database_shown();
    if serve {
        global.require_secrets_key()?;
        tracing::info!(%database, "connecting");
    }
    let opts = StoreOptions {
        max_connections: global.db_max_connections,
        create_if_missing: creates,
        auth_cache: std::time::Duration::from_millis(global.auth_cache_millis),
        ..Default::default()
    };
    let mut store = match Store::connect(&global.database_url, &opts).await {
        Err(StoreError::NoDatabase) => return Err(no_database(&database)),
        r => r?,
    };
    // Checked before the key file is made, so a command in the wrong folder leaves nothing behind.
    if !creates && !store.has_schema().await? {
        store.close().await;
        return Err(no_database(&database));
    }
    match global.secrets_key()? {
        Some(key) => store = store.with_secrets(key),
        None if serve => tracing::warn!(
            "no IDBRIDGE_SECRETS_KEY: single sign-on cannot store client secrets or signing keys"
        ),
        None => {}
    }
    store.migrate().await?;
    let result = match cli.command {
        Command::Serve => crate::server::serve(store.clone(), global).await,
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Org { command } => org(&store, command).await,
        Command::Directory { command } => directory(&store, global, command).await,
        Command::AdminToken { command } => admin_token(&store, command).await,
        Command::PlatformToken { command } => platform_token(&store, command).await,
        Command::SubAccount { command } => sub_account(&store, command).await,
        Command::Mapping { command } => mapping(&store, command).await,
        Command::Sso { command } => sso(&store, global, command).await,
        Command::Domain { command } => domain(&store, global, command).await,
        Command::Client { command } => client(&store, command).await,
        Command::SigningKey { command } => signing_key(&store, command).await,
        Command::PortalLink { command } => portal_link(&store, global, command).await,
        Command::Openapi => Ok(()),
        Command::Access { org, user, json } => access(&store, &org, &user, json).await,
    };
    store.close().await;
    result
}

fn no_database(database: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no idbridge database at {database}: run `idbridge migrate` or `idbridge serve` first, \
         or set IDBRIDGE_DATABASE_URL"
    )
}

/// Whether the command line asked for `--json` at any level, so that even its errors are JSON.
pub fn wants_json(matches: &clap::ArgMatches) -> bool {
    let mut m = matches;
    loop {
        if let Ok(Some(true)) = m.try_get_one::<bool>("json") {
            return true;
        }
        match m.subcommand() {
            Some((_, sub)) => m = sub,
            None => return false,
        }
    }
}

/// Prints a failed command's error as one line: its causes joined, never a backtrace, which says
/// nothing to an operator (`RUST_BACKTRACE` is often set in their environment).
pub fn report(error: &anyhow::Error, json_out: bool) {
    let message = format!("{error:#}").replace('\n', " ");
    if json_out {
        println!("{}", json!({ "error": message }));
    } else {
        eprintln!("error: {message}");
    }
}

fn print(json_out: bool, value: serde_json::Value, human: String) {
    if json_out {
        println!("{value}");
    } else {
        println!("{human}");
    }
}

fn not_found(what: &str, key: &str) -> impl FnOnce(StoreError) -> anyhow::Error {
    let msg = format!("no {what} {key:?}");
    move |e| match e {
        StoreError::NotFound => anyhow::anyhow!(msg),
        e => e.into(),
    }
}

/// [`not_found`] for what a service refuses.
fn admin_not_found(what: &str, key: &str) -> impl FnOnce(AdminError) -> anyhow::Error {
    let msg = format!("no {what} {key:?}");
    move |e| match e {
        AdminError::NotFound(_) => anyhow::anyhow!(msg),
        e => admin_error(e),
    }
}

fn admin_error(e: AdminError) -> anyhow::Error {
    match e {
        AdminError::NotFound(d)
        | AdminError::Conflict(d)
        | AdminError::Invalid(d)
        | AdminError::Unavailable(d) => {
            anyhow::anyhow!(d)
        }
        e => anyhow::anyhow!("{e:?}"),
    }
}

async fn find_org(store: &Store, org: &str) -> anyhow::Result<OrgRecord> {
    store
        .find_org(org)
        .await
        .map_err(not_found("organization", org))
}

/// The operator acts as the organization's owner, recorded as "cli" in the audit log.
async fn operator(store: &Store, org: &str) -> anyhow::Result<Caller> {
    let org = find_org(store, org).await?;
    Ok(Caller::operator(OrgScope::for_org(&org.id, "cli")))
}

/// The operator acts on a directory, named by id alone, in its organization; `what` names what
/// was not found.
async fn directory_scope(store: &Store, directory: &str, what: &str) -> anyhow::Result<OrgScope> {
    let dir = store
        .find_directory(directory)
        .await
        .map_err(not_found(what, directory))?;
    Ok(OrgScope::for_org(&dir.org_id, "cli"))
}

/// A user by id or userName.
async fn find_user(store: &Store, scope: &OrgScope, user: &str) -> anyhow::Result<String> {
    match store.get_org_user(scope, user).await {
        Ok(u) => Ok(u.id),
        Err(StoreError::NotFound) => Ok(store
            .find_org_user(scope, user)
            .await
            .map_err(not_found("user", user))?
            .id),
        Err(e) => Err(e.into()),
    }
}

pub async fn org(store: &Store, cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create {
            name,
            owner,
            external_key,
            seat_limit,
            json,
        } => {
            let new = svc::NewOrg {
                name,
                external_key: external_key.clone(),
                owner_email: owner.clone(),
                seat_limit,
            };
            let created = svc::create_org(store, &new, "cli")
                .await
                .map_err(admin_error)?;
            let org = &created.org;
            if owner.is_none() {
                eprintln!(
                    "warning: organization {} has no owner yet, so nothing protects an owner \
                     from deprovisioning; name one with `idbridge org transfer-owner --org {} \
                     --user USER` once they exist, or create organizations with --owner EMAIL",
                    org.name, org.id
                );
            }
            let human = match (&owner, &created.owner_user_id) {
                (Some(email), Some(user)) => format!(
                    "created organization {} ({}) owned by {email} (user {user}, active once SCIM \
                     or a sign-in brings them)",
                    org.name, org.id
                ),
                _ => format!("created organization {} ({})", org.name, org.id),
            };
            print(
                json,
                json!({"id": org.id, "name": org.name, "owner_user_id": created.owner_user_id,
                       "owner": owner.as_deref().map(str::trim), "external_key": external_key,
                       "seat_limit": seat_limit}),
                human,
            );
        }
        OrgCommand::TransferOwner { org, user, json } => {
            let caller = operator(store, &org).await?;
            let user = find_user(store, caller.scope(), &user).await?;
            svc::transfer_owner(store, &caller, &user)
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!({"org_id": caller.scope().org_id(), "owner_user_id": user}),
                format!("user {user} now owns the organization"),
            );
        }
        OrgCommand::SeatLimit { org, limit, json } => {
            let caller = operator(store, &org).await?;
            let patch = svc::OrgPatch {
                seat_limit: Some(limit),
                ..Default::default()
            };
            svc::update_org(store, &caller, &patch)
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!({"org_id": caller.scope().org_id(), "seat_limit": limit}),
                format!(
                    "seat limit: {}",
                    limit.map_or("none".into(), |l| l.to_string())
                ),
            );
        }
    }
    Ok(())
}

pub async fn admin_token(store: &Store, cmd: AdminTokenCommand) -> anyhow::Result<()> {
    match cmd {
        AdminTokenCommand::Create {
            org,
            role,
            sub_account,
            name,
            expiry,
            json,
        } => {
            let caller = operator(store, &org).await?;
            let input = svc::AdminTokenInput {
                role,
                sub_account_id: sub_account,
                name,
                expires_at: expires(store, expiry)?.map(crate::store::rfc3339::format),
            };
            let t = svc::mint_admin_token(store, &caller, &input)
                .await
                .map_err(admin_error)?;
            let expires = t.expires_at.map(crate::store::rfc3339::format);
            let human = format!(
                "admin token {} for {} as {}, {} (shown once): {}",
                t.id,
                t.org_id,
                t.role,
                expires
                    .as_deref()
                    .map_or("never expires".into(), |e| format!("expires {e}")),
                t.token
            );
            print(json, json!(t), human);
        }
        AdminTokenCommand::List { org, json } => {
            let org = find_org(store, &org).await?;
            let scope = OrgScope::for_org(&org.id, "cli");
            let tokens = store.list_admin_tokens(&scope).await?;
            let human = tokens
                .iter()
                .map(|t| {
                    let state = token_state(store.now(), t.revoked_at, t.expires_at);
                    format!(
                        "{}  {}{}  {:?}  created {}  {state}",
                        t.id,
                        t.role,
                        t.sub_account_id
                            .as_deref()
                            .map_or(String::new(), |sa| format!(" ({sa})")),
                        t.name,
                        crate::store::rfc3339::format(t.created_at),
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let tokens: Vec<svc::AdminTokenInfo> = tokens.into_iter().map(Into::into).collect();
            print(
                json,
                json!({"org_id": org.id, "items": tokens, "next": null}),
                if human.is_empty() {
                    "no admin tokens".into()
                } else {
                    human
                },
            );
        }
        AdminTokenCommand::Revoke { org, id, json } => {
            let org = find_org(store, &org).await?;
            let caller = Caller::operator(OrgScope::for_org(&org.id, "cli"));
            // A revoked token is no more an active one than one that never was.
            svc::revoke_admin_token(store, &caller, &id)
                .await
                .map_err(|e| match e {
                    AdminError::Conflict(_) => AdminError::NotFound(String::new()),
                    e => e,
                })
                .map_err(admin_not_found("active admin token", &id))?;
            print(
                json,
                json!({"org_id": org.id, "revoked": id}),
                format!("revoked admin token {id}"),
            );
        }
    }
    Ok(())
}

/// When a token made with `--expires-in` or `--expires-at` expires (microseconds); none: never.
fn expires(store: &Store, expiry: Expiry) -> anyhow::Result<Option<i64>> {
    Ok(match (expiry.expires_in, expiry.expires_at) {
        (Some(d), _) => Some(store.now() + parse_duration(&d)?),
        (None, Some(t)) => Some(
            crate::store::rfc3339::parse(&t).map_err(|e| anyhow::anyhow!("--expires-at: {e}"))?,
        ),
        (None, None) => None,
    })
}

/// A token's state for a list: revoked, expired, or when it expires.
fn token_state(now: i64, revoked_at: Option<i64>, expires_at: Option<i64>) -> String {
    match (revoked_at, expires_at) {
        (Some(r), _) => format!("revoked {}", crate::store::rfc3339::format(r)),
        (None, Some(e)) if e <= now => format!("expired {}", crate::store::rfc3339::format(e)),
        (None, Some(e)) => format!("expires {}", crate::store::rfc3339::format(e)),
        (None, None) => "never expires".into(),
    }
}

pub async fn platform_token(store: &Store, cmd: PlatformTokenCommand) -> anyhow::Result<()> {
    use crate::service::platform as platform_svc;
    match cmd {
        PlatformTokenCommand::Create { name, expiry, json } => {
            let expires_at = expires(store, expiry)?;
            let token = platform_svc::create_platform_token(store, &name, expires_at)
                .await
                .map_err(admin_error)?;
            let expires = expires_at.map(crate::store::rfc3339::format);
            print(
                json,
                json!({"id": token.id, "name": name.trim(), "expires_at": expires, "token": token.token}),
                format!(
                    "platform token {} ({}), {} (shown once; it reaches every organization): {}",
                    token.id,
                    name.trim(),
                    expires.map_or("never expires".into(), |e| format!("expires {e}")),
                    token.token
                ),
            );
        }
        PlatformTokenCommand::List { json } => {
            let tokens = platform_svc::list_platform_tokens(store)
                .await
                .map_err(admin_error)?;
            let human = tokens
                .iter()
                .map(|t| {
                    format!(
                        "{}  {:?}  created {}  {}",
                        t.id,
                        t.name,
                        crate::store::rfc3339::format(t.created_at),
                        token_state(store.now(), t.revoked_at, t.expires_at)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(
                json,
                json!({"items": tokens, "next": null}),
                if human.is_empty() {
                    "no platform tokens".into()
                } else {
                    human
                },
            );
        }
        PlatformTokenCommand::Revoke { id, json } => {
            platform_svc::revoke_platform_token(store, &id)
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!({"revoked": id}),
                format!("revoked platform token {id}"),
            );
        }
    }
    Ok(())
}

/// Makes a portal link with the operator's authority, through the operation the platform API
/// calls.
pub async fn portal_link(
    store: &Store,
    global: &Global,
    cmd: PortalLinkCommand,
) -> anyhow::Result<()> {
    use crate::service::console::{self as console_svc, PortalLinkInput};
    match cmd {
        PortalLinkCommand::Create {
            org,
            intent,
            return_url,
            json,
        } => {
            let caller = operator(store, &org).await?;
            let input = PortalLinkInput {
                intent: intent.parse().map_err(|e: String| anyhow::anyhow!(e))?,
                return_url,
            };
            let link = console_svc::create_portal_link(
                store,
                &caller,
                &global.public_url(),
                &input,
                console_svc::LINK_VALIDITY,
            )
            .await
            .map_err(admin_error)?;
            let expires = crate::store::rfc3339::format(link.expires_at);
            print(
                json,
                serde_json::to_value(&link)?,
                format!(
                    "portal link for {} ({}), single use, expires {expires}:\n{}",
                    input.intent, link.id, link.url
                ),
            );
        }
    }
    Ok(())
}

/// A duration such as `90m`, `12h`, `30d` or `2w`, in microseconds.
fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let bad =
        || anyhow::anyhow!("--expires-in: {s:?} is not a duration such as 90m, 12h, 30d or 2w");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: i64 = s[..split].parse().map_err(|_| bad())?;
    let unit: i64 = match &s[split..] {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .and_then(|secs| secs.checked_mul(1_000_000))
        .filter(|us| *us > 0)
        .ok_or_else(bad)
}

pub async fn sub_account(store: &Store, cmd: SubAccountCommand) -> anyhow::Result<()> {
    match cmd {
        SubAccountCommand::Create { org, name, json } => {
            let caller = operator(store, &org).await?;
            let sa = svc::create_sub_account(store, &caller, &name)
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!(sa),
                format!("created sub-account {} ({})", sa.name, sa.id),
            );
        }
        SubAccountCommand::List { org, json } => {
            let caller = operator(store, &org).await?;
            let items = store.list_sub_accounts(caller.scope()).await?;
            let human = items
                .iter()
                .map(|s| format!("{} {}", s.id, s.name))
                .collect::<Vec<_>>()
                .join("\n");
            let items: Vec<svc::SubAccount> = items.into_iter().map(Into::into).collect();
            print(json, json!({"items": items}), human);
        }
    }
    Ok(())
}

/// JSON given on the command line, bounded as the admin API bounds its bodies.
fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> anyhow::Result<T> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| anyhow::anyhow!("invalid {what}: {e}"))?;
    crate::domain::limits::check(&v, &crate::domain::limits::for_field)
        .map_err(|e| anyhow::anyhow!("invalid {what}: {e}"))?;
    serde_json::from_value(v).map_err(|e| anyhow::anyhow!("invalid {what}: {e}"))
}

fn summary(changes: &[crate::service::provision::UserOutcome]) -> String {
    let s = crate::service::provision::summarize(changes);
    format!(
        "{} users affected: {} gains, {} losses",
        s["users"], s["gains"], s["losses"]
    )
}

pub async fn mapping(store: &Store, cmd: MappingCommand) -> anyhow::Result<()> {
    match cmd {
        MappingCommand::Create { org, rule, json } => {
            let caller = operator(store, &org).await?;
            let change = RuleChange::Create {
                rule: parse_json("rule", &rule)?,
            };
            let r = svc::change_rule(store, &caller, &change)
                .await
                .map_err(admin_error)?;
            let id = r.rule.as_ref().map(|r| r.id.clone()).unwrap_or_default();
            print(
                json,
                json!(r),
                format!("created rule {id}; {}", summary(&r.changes)),
            );
        }
        MappingCommand::List { org, json } => {
            let caller = operator(store, &org).await?;
            let items = store.list_rules(caller.scope()).await?;
            let human = items
                .iter()
                .map(|r| {
                    format!(
                        "{} {} -> {}",
                        r.id,
                        serde_json::to_string(&r.matcher).unwrap_or_default(),
                        serde_json::to_string(&r.grant).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let items: Vec<svc::RuleRecord> = items.into_iter().map(Into::into).collect();
            print(json, json!({"items": items}), human);
        }
        MappingCommand::Delete { org, id, json } => {
            let caller = operator(store, &org).await?;
            let r = svc::change_rule(store, &caller, &RuleChange::Delete { id: id.clone() })
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!(r),
                format!("deleted rule {id}; {}", summary(&r.changes)),
            );
        }
        MappingCommand::Preview { org, change, json } => {
            let caller = operator(store, &org).await?;
            let change: RuleChange = parse_json("change", &change)?;
            let r = svc::preview_rule(store, &caller, &change)
                .await
                .map_err(admin_error)?;
            let mut human = summary(&r.changes);
            for u in &r.changes {
                for c in &u.changes {
                    let sign = if c.is_loss() { "-" } else { "+" };
                    human.push_str(&format!(
                        "\n{sign} {} {}",
                        u.user_name,
                        serde_json::to_string(c).unwrap_or_default()
                    ));
                }
            }
            print(json, json!(r), human);
        }
    }
    Ok(())
}

pub async fn access(store: &Store, org: &str, user: &str, json_out: bool) -> anyhow::Result<()> {
    let caller = operator(store, org).await?;
    let user = find_user(store, caller.scope(), user).await?;
    let view = svc::user_access(store, &caller, &user)
        .await
        .map_err(admin_error)?;
    let mut human = format!(
        "{} ({}){}",
        view.user_name,
        view.user_id,
        if view.active { "" } else { " [inactive]" }
    );
    for r in &view.org_roles {
        human.push_str(&format!("\n  organization: {}", r.role));
    }
    for sa in &view.sub_accounts {
        if let Some(role) = sa.access.role {
            human.push_str(&format!("\n  {}: {role}", sa.name));
        }
    }
    print(json_out, json!(view), human);
    Ok(())
}

pub async fn directory(
    store: &Store,
    global: &Global,
    cmd: DirectoryCommand,
) -> anyhow::Result<()> {
    match cmd {
        DirectoryCommand::Create { org, name, json } => {
            let org = store
                .find_org(&org)
                .await
                .map_err(not_found("organization", &org))?;
            let caller = Caller::operator(OrgScope::for_org(&org.id, "cli"));
            let svc::NewDirectory {
                directory: dir,
                scim_base_url: url,
                token,
            } = svc::create_directory(store, &caller, &global.public_url(), &name)
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!({"id": dir.id, "org_id": org.id, "name": dir.name, "scim_url": url,
                       "token_id": token.id, "token": token.token}),
                format!(
                    "created directory {} in {}\n  SCIM base URL: {url}\n  bearer token (shown once): {}",
                    dir.id, org.name, token.token
                ),
            );
        }
        DirectoryCommand::Token { command } => match command {
            TokenCommand::Rotate { directory, json } => {
                let scope = directory_scope(store, &directory, "directory").await?;
                let token =
                    svc::rotate_directory_token(store, &Caller::operator(scope), &directory)
                        .await
                        .map_err(admin_not_found("directory", &directory))?;
                print(
                    json,
                    json!({"directory_id": directory, "token_id": token.id, "token": token.token}),
                    format!(
                        "new token {} (shown once): {}\nthe previous token stays valid until `idbridge directory token revoke --directory {directory}`",
                        token.id, token.token
                    ),
                );
            }
            TokenCommand::Revoke {
                directory,
                token_id,
                json,
            } => {
                let scope = directory_scope(store, &directory, "directory or token").await?;
                let caller = Caller::operator(scope);
                let revoked =
                    svc::revoke_directory_tokens(store, &caller, &directory, token_id.as_deref())
                        .await
                        .map_err(admin_not_found("directory or token", &directory))?;
                print(
                    json,
                    json!({"directory_id": directory, "revoked": revoked}),
                    format!("revoked {} token(s): {}", revoked.len(), revoked.join(", ")),
                );
            }
            TokenCommand::List { directory, json } => {
                let scope = directory_scope(store, &directory, "directory").await?;
                let tokens = store.list_directory_tokens(&scope, &directory).await?;
                let human = tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {}",
                            t.id,
                            if t.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let tokens: Vec<svc::TokenInfo> = tokens.into_iter().map(Into::into).collect();
                print(
                    json,
                    json!({"directory_id": directory, "tokens": tokens}),
                    human,
                );
            }
        },
    }
    Ok(())
}

fn read_arg(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{path}: {e}")),
        None => Ok(value.to_string()),
    }
}

pub async fn sso(store: &Store, global: &Global, cmd: SsoCommand) -> anyhow::Result<()> {
    let base = global.public_url();
    match cmd {
        SsoCommand::Create {
            org,
            settings,
            json,
        } => {
            let caller = operator(store, &org).await?;
            let input = parse_json("settings", &read_arg(&settings)?)?;
            let conn = crate::service::sso::create_connection(
                store,
                &caller,
                &crate::net::Outbound::new(global.allow_private_urls, global.dns_server),
                input,
            )
            .await
            .map_err(admin_error)?;
            let view = crate::service::sso::connection_view(&base, conn);
            print(json, json!(view), connection_text("created", &view));
        }
        SsoCommand::Update {
            org,
            connection,
            settings,
            json,
        } => {
            let caller = operator(store, &org).await?;
            let input = parse_json("settings", &read_arg(&settings)?)?;
            let conn = crate::service::sso::update_connection(
                store,
                &caller,
                &crate::net::Outbound::new(global.allow_private_urls, global.dns_server),
                &connection,
                input,
            )
            .await
            .map_err(admin_error)?;
            let view = crate::service::sso::connection_view(&base, conn);
            print(json, json!(view), connection_text("updated", &view));
        }
        SsoCommand::List { org, json } => {
            let caller = operator(store, &org).await?;
            let items: Vec<_> = store
                .list_connections(caller.scope())
                .await?
                .into_iter()
                .map(|c| crate::service::sso::connection_view(&base, c))
                .collect();
            let human = items
                .iter()
                .map(|v| {
                    let c = &v.connection;
                    format!(
                        "{} {} {}{}{}",
                        c.id,
                        c.kind,
                        c.name,
                        if c.enabled { "" } else { " (disabled)" },
                        if v.missing.is_empty() {
                            String::new()
                        } else {
                            format!(" (incomplete: missing {})", v.missing.join(", "))
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            print(json, json!({ "items": items }), human);
        }
    }
    Ok(())
}

fn connection_text(done: &str, view: &crate::service::sso::ConnectionView) -> String {
    let conn = &view.connection;
    let e = |k: &str| view.endpoints[k].as_str().unwrap_or_default().to_string();
    let mut text = match conn.kind {
        crate::domain::access::ConnectionKind::Saml => format!(
            "{done} SAML connection {} ({})\n  SP entity id:  {}\n  ACS URL:       {}\n  SP metadata:   {}",
            conn.name,
            conn.id,
            e("sp_entity_id"),
            e("acs_url"),
            e("sp_metadata_url")
        ),
        crate::domain::access::ConnectionKind::Oidc => format!(
            "{done} OIDC connection {} ({})\n  redirect URI to register at the IdP: {}",
            conn.name,
            conn.id,
            e("redirect_uri")
        ),
    };
    if !view.missing.is_empty() {
        text.push_str(&format!(
            "\n  incomplete: give the IdP's {} (idbridge sso update --settings '{{\"saml\": {{\"metadata_url\": ...}}}}')",
            view.missing.join(", ")
        ));
    }
    text
}

pub async fn domain(store: &Store, global: &Global, cmd: DomainCommand) -> anyhow::Result<()> {
    let human = |d: &svc::Domain| {
        if d.verified {
            format!("{} (verified)", d.domain)
        } else {
            format!(
                "{} (not verified: publish TXT {} \"{}\", then run idbridge domain verify)",
                d.domain, d.verification.name, d.verification.value
            )
        }
    };
    match cmd {
        DomainCommand::Add {
            org,
            domain,
            connection,
            verified,
            json,
        } => {
            let caller = operator(store, &org).await?;
            let d = svc::claim_domain(store, &caller, &domain, connection.as_deref(), verified)
                .await
                .map_err(admin_error)?;
            print(json, json!(d), format!("added domain {}", human(&d)));
        }
        DomainCommand::Verify { org, domain, json } => {
            let caller = operator(store, &org).await?;
            let dns = crate::sso::dns::Dns {
                server: global.dns_server,
            };
            let d = crate::service::sso::verify_domain(store, &dns, &caller, &domain)
                .await
                .map_err(admin_error)?;
            print(json, json!(d), human(&d));
        }
        DomainCommand::Move {
            org,
            domain,
            connection,
            json,
        } => {
            let caller = operator(store, &org).await?;
            let d = crate::service::sso::move_domain(store, &caller, &domain, Some(&connection))
                .await
                .map_err(admin_error)?;
            print(
                json,
                json!(d),
                format!("moved domain {} to connection {connection}", human(&d)),
            );
        }
        DomainCommand::List { org, json } => {
            let caller = operator(store, &org).await?;
            let items = store.list_domains(caller.scope()).await?;
            let items: Vec<svc::Domain> = items.into_iter().map(Into::into).collect();
            let text = items.iter().map(human).collect::<Vec<_>>().join("\n");
            print(json, json!({ "items": items }), text);
        }
    }
    Ok(())
}

pub async fn client(store: &Store, cmd: ClientCommand) -> anyhow::Result<()> {
    async fn scope(store: &Store, org: Option<&str>) -> anyhow::Result<Option<OrgScope>> {
        Ok(match org {
            Some(o) => Some(operator(store, o).await?.scope().clone()),
            None => None,
        })
    }
    match cmd {
        ClientCommand::Create {
            org,
            name,
            redirect_uris,
            json,
        } => {
            let scope = scope(store, org.as_deref()).await?;
            crate::service::admin::check_redirect_uris(&redirect_uris).map_err(admin_error)?;
            crate::service::sso::check_name(&name).map_err(admin_error)?;
            let (client, secret) =
                svc::register_client(store, scope.as_ref(), name.trim(), &redirect_uris)
                    .await
                    .map_err(admin_error)?;
            let client = svc::Client::from(client);
            print(
                json,
                json!({ "client": client, "client_secret": secret }),
                format!(
                    "client {} ({})\n  client_id:     {}\n  client_secret: {secret} (shown once)",
                    client.name, client.id, client.id
                ),
            );
        }
        ClientCommand::List { org, json } => {
            let scope = scope(store, org.as_deref()).await?;
            let items = store.list_clients(scope.as_ref()).await?;
            let items: Vec<svc::Client> = items.into_iter().map(Into::into).collect();
            let human = items
                .iter()
                .map(|c| format!("{} {} {}", c.id, c.name, c.redirect_uris.join(" ")))
                .collect::<Vec<_>>()
                .join("\n");
            print(json, json!({ "items": items }), human);
        }
        ClientCommand::Revoke { org, id } => {
            let scope = scope(store, org.as_deref()).await?;
            svc::withdraw_client(store, scope.as_ref(), &id)
                .await
                .map_err(admin_not_found("client", &id))?;
            println!("revoked client {id}");
        }
    }
    Ok(())
}

pub async fn signing_key(store: &Store, cmd: SigningKeyCommand) -> anyhow::Result<()> {
    match cmd {
        SigningKeyCommand::Rotate { json } => {
            let key = crate::service::oauth::rotate_signing_key(store, true)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            print(
                json,
                json!({ "kid": key.kid }),
                format!(
                    "new signing key {}; the previous one stays in the JWKS until its tokens expire",
                    key.kid
                ),
            );
        }
    }
    Ok(())
}
