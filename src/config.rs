//! Command line and environment configuration. Every option has an `IDBRIDGE_*` variable; secrets
//! in it (database passwords) are never printed.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::rate::{Rate, RateConfig};

#[derive(Parser, Debug)]
#[command(
    name = "idbridge",
    version,
    about = "Identity provider bridge: SCIM 2.0 provisioning and SSO"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// `sqlite://path/file.db` or `postgres://user@host/db`. Only `serve` and `migrate` create
    /// a SQLite file or the tables; other commands refuse a database without them.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_DATABASE_URL",
        default_value = "sqlite://idbridge.db"
    )]
    pub database_url: String,
    /// Address `serve` listens on.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    /// Externally visible base URL (absolute http or https, no query or fragment), used in SCIM
    /// `Location` and `meta.location` and in the URLs commands print. Defaults to `http://{listen}`.
    #[arg(long, global = true, env = "IDBRIDGE_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,
    /// Log lines on stderr as text or as one JSON object each.
    #[arg(long, global = true, env = "IDBRIDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Database connections per replica (PostgreSQL) or readers (SQLite).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,
    /// How long a replica keeps a SCIM or admin token it has accepted before asking the database
    /// again (milliseconds): the longest a revocation made on another replica takes to reach this
    /// one. A revocation on the same replica takes effect at once. 0 asks every time.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_AUTH_CACHE_MILLIS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub auth_cache_millis: u64,
    /// Lift the outbound policy: webhook, IdP and metadata URLs may use http and reach loopback or
    /// private addresses. For tests and closed networks only: it lets an admin make the service
    /// call into its own network.
    /// The variable takes 1/0, true/false, yes/no or on/off.
    #[arg(long, global = true, env = "IDBRIDGE_ALLOW_PRIVATE_URLS", value_parser = boolish)]
    pub allow_private_urls: bool,
    /// 32 random bytes, base64 (`openssl rand -base64 32`), that seal OIDC client secrets and
    /// signing keys in the database. Required with PostgreSQL (`serve` refuses to start without
    /// it); with a SQLite file, a key file beside the database is made and used when this is not
    /// set.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SECRETS_KEY",
        hide_env_values = true
    )]
    pub secrets_key: Option<String>,
    /// A session ends after this many minutes without use.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SESSION_IDLE_MINUTES",
        default_value_t = 120
    )]
    pub session_idle_minutes: u64,
    /// A session ends this many hours after sign-in, used or not.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SESSION_HOURS",
        default_value_t = 12
    )]
    pub session_hours: u64,
    /// The DNS server (`address:port`) that domain verification asks for TXT records; by
    /// default the system's resolvers (/etc/resolv.conf).
    #[arg(long, global = true, env = "IDBRIDGE_DNS_SERVER")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Connections `serve` holds open at once. At the limit, a new connection takes the place of
    /// the oldest one that has not yet sent a whole request (a slow or idle client).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_MAX_CONNECTIONS",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,
    /// The largest SCIM request body outside /Bulk, in bytes.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SCIM_MAX_BODY_BYTES",
        default_value_t = 4 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(65_536..=67_108_864)
    )]
    pub scim_max_body_bytes: u64,
    /// Operations one SCIM /Bulk request may carry (`bulk.maxOperations`).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SCIM_BULK_MAX_OPERATIONS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=100_000)
    )]
    pub scim_bulk_max_operations: u64,
    /// The largest SCIM /Bulk request body, in bytes (`bulk.maxPayloadSize`).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SCIM_BULK_MAX_PAYLOAD_BYTES",
        default_value_t = 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(65_536..=67_108_864)
    )]
    pub scim_bulk_max_payload_bytes: u64,
    /// Resources in one page of a SCIM list or search (`filter.maxResults`).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_SCIM_MAX_PAGE_SIZE",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=10_000)
    )]
    pub scim_max_page_size: u64,
    /// Seconds a client has to send a request's headers, and that an idle kept-alive connection
    /// stays open; the body of a request must arrive within 30 seconds more.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub header_timeout_secs: u64,
    /// The bearer token `/metrics` asks for (16 characters or more). Unset, `/metrics` is not
    /// served: its series name every directory and route, which is not for the public internet.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_METRICS_TOKEN",
        hide_env_values = true,
        value_parser = metrics_token
    )]
    pub metrics_token: Option<String>,
    /// SCIM requests per directory: `RATE/BURST` (requests per second, how many at once), or 0
    /// for no limit. Past it, 429 with Retry-After. Every rate limit is per replica.
    #[arg(long, global = true, env = "IDBRIDGE_RATE_SCIM", default_value_t = RateConfig::default().scim)]
    pub rate_scim: Rate,
    /// Admin API requests per admin or platform token (`RATE/BURST`, or 0).
    #[arg(long, global = true, env = "IDBRIDGE_RATE_ADMIN", default_value_t = RateConfig::default().admin)]
    pub rate_admin: Rate,
    /// `/oauth/token` requests per client_id (`RATE/BURST`, or 0).
    #[arg(long, global = true, env = "IDBRIDGE_RATE_TOKEN", default_value_t = RateConfig::default().token)]
    pub rate_token: Rate,
    /// Sign-in requests (start, SAML ACS) per connection (`RATE/BURST`, or 0).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_RATE_SIGN_IN_CONNECTION",
        default_value_t = RateConfig::default().sign_in_connection
    )]
    pub rate_sign_in_connection: Rate,
    /// Sign-in requests (start, SAML ACS, OIDC callback) per client address (`RATE/BURST`, or 0).
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_RATE_SIGN_IN_ADDRESS",
        default_value_t = RateConfig::default().sign_in_address
    )]
    pub rate_sign_in_address: Rate,
    /// Failed sign-ins a connection writes to the audit log (`RATE/BURST`, or 0); past it they
    /// are logged and counted in `idbridge_sign_in_audit_skipped_total` instead.
    #[arg(
        long,
        global = true,
        env = "IDBRIDGE_RATE_FAILED_SIGN_IN_AUDIT",
        default_value_t = RateConfig::default().failure_audit
    )]
    pub rate_failed_sign_in_audit: Rate,
}

fn metrics_token(s: &str) -> Result<String, String> {
    if s.trim().len() < 16 {
        return Err("a metrics token has at least 16 characters".into());
    }
    Ok(s.trim().to_string())
}

impl Global {
    /// The key that seals secrets at rest: the configured one; for a SQLite file, the key file
    /// beside it (made on first use, readable by the owner only); none otherwise.
    pub fn secrets_key(&self) -> anyhow::Result<Option<crate::store::secrets::SecretBox>> {
        use crate::store::secrets::SecretBox;
        if let Some(key) = &self.secrets_key {
            return Ok(Some(SecretBox::from_base64(key)?));
        }
        let Some(path) = self.sqlite_path() else {
            return Ok(None);
        };
        let key_path = format!("{path}.secrets-key");
        match std::fs::read_to_string(&key_path) {
            Ok(key) => Ok(Some(SecretBox::from_base64(&key)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretBox::generate();
                write_private(&key_path, &key.to_base64())?;
                tracing::warn!(
                    path = key_path,
                    "no IDBRIDGE_SECRETS_KEY: made a key file beside the database; back it up with it"
                );
                Ok(Some(key))
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {key_path}: {e}")),
        }
    }

    /// The SQLite file the database URL names, if it names one.
    pub fn sqlite_path(&self) -> Option<&str> {
        self.database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
            .filter(|p| !p.is_empty() && !p.contains(":memory:"))
    }

    /// The database URL for messages: no password, and a relative SQLite path made absolute, since
    /// the folder a command runs in is what the operator got wrong.
    pub fn database_shown(&self) -> String {
        let url = redact_url(&self.database_url);
        match self.sqlite_path().map(std::path::Path::new) {
            Some(p) if p.is_relative() => match std::env::current_dir() {
                Ok(cwd) => format!("{url} ({})", cwd.join(p).display()),
                Err(_) => url,
            },
            _ => url,
        }
    }

    pub fn sizes(&self) -> crate::domain::limits::Sizes {
        // The ranges above keep every value within usize on any platform this runs on.
        crate::domain::limits::Sizes {
            body_bytes: self.scim_max_body_bytes as usize,
            bulk_operations: self.scim_bulk_max_operations as usize,
            bulk_payload_bytes: self.scim_bulk_max_payload_bytes as usize,
            page_size: self.scim_max_page_size,
        }
    }

    pub fn rates(&self) -> RateConfig {
        RateConfig {
            scim: self.rate_scim,
            admin: self.rate_admin,
            token: self.rate_token,
            sign_in_connection: self.rate_sign_in_connection,
            sign_in_address: self.rate_sign_in_address,
            failure_audit: self.rate_failed_sign_in_audit,
        }
    }

    pub fn session_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.session_idle_minutes.max(1) * 60)
    }

    pub fn session_lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.session_hours.max(1) * 3600)
    }

    /// PostgreSQL keeps no key file, so a replica without the key could not read what another
    /// sealed; `serve` refuses to start rather than fail at the first sign-in.
    pub fn require_secrets_key(&self) -> anyhow::Result<()> {
        let postgres = self.database_url.starts_with("postgres:")
            || self.database_url.starts_with("postgresql:");
        if postgres && self.secrets_key.is_none() {
            anyhow::bail!(
                "IDBRIDGE_SECRETS_KEY is required with PostgreSQL: set it (or --secrets-key) to 32 \
                 random bytes, base64 (`openssl rand -base64 32`), the same on every replica"
            );
        }
        Ok(())
    }

    pub fn public_url(&self) -> String {
        let url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        url.trim_end_matches('/').to_string()
    }
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .finish()
    }
}

fn write_private(path: &str, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {path}: {e}"))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A boolean variable's value: 1/0, true/false, yes/no, on/off, in any case. Anything else is
/// refused, so a typo such as `ture` cannot silently mean off.
pub fn boolish(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{value:?} is not a boolean: use 1/0, true/false, yes/no or on/off"
        )),
    }
}

/// `--public-url`: every printed and returned URL starts with it, so it must be one a client can
/// use as a base.
pub fn public_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value)
        .map_err(|e| format!("{value:?} is not an absolute URL ({e}); e.g. https://<host>/"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{value:?} must be an http or https URL with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{value:?} must not have a query or a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{value:?} must not carry a user name or password"));
    }
    Ok(value.trim().trim_end_matches('/').to_string())
}

/// The roles an admin token may have, for `--role`.
fn admin_roles() -> clap::builder::PossibleValuesParser {
    use crate::domain::access::OrgRole;
    clap::builder::PossibleValuesParser::new(
        OrgRole::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(["sub_account_admin"]),
    )
}

/// The URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (migrates first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// SCIM directories and their bearer tokens.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Tokens for the admin API.
    AdminToken {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
    /// Tokens for the platform API (the SaaS's backend: every organization).
    PlatformToken {
        #[command(subcommand)]
        command: PlatformTokenCommand,
    },
    /// Sub-accounts of an organization.
    SubAccount {
        #[command(subcommand)]
        command: SubAccountCommand,
    },
    /// IdP-group to role mapping rules.
    Mapping {
        #[command(subcommand)]
        command: MappingCommand,
    },
    /// Single sign-on connections of an organization (OIDC or SAML).
    Sso {
        #[command(subcommand)]
        command: SsoCommand,
    },
    /// An organization's email domains, which find its connection at sign-in.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// Applications that sign users in through idbridge (OpenID Connect clients).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Single-use links to the self-service console, for an organization's IT admin.
    PortalLink {
        #[command(subcommand)]
        command: PortalLinkCommand,
    },
    /// idbridge's id_token signing keys.
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Print the admin API's OpenAPI document (JSON) and exit; needs no database.
    Openapi,
    /// A user's effective access, with the reason for each grant.
    Access {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The user's id or userName.
        #[arg(long)]
        user: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SsoCommand {
    /// Create a connection from the admin API's JSON: {"name": ..., "jit": false, "oidc": {...}}
    /// or {"name": ..., "saml": {"metadata_url": ...}}; `@path` reads it from a file.
    Create {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The JSON, or `@path` to read it from a file.
        #[arg(long)]
        settings: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Change a connection with the admin API's PATCH JSON: SAML settings merge into the stored
    /// ones, e.g. {"saml": {"metadata_url": ...}} once the IdP shows its metadata; `@path` reads
    /// it from a file.
    Update {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The connection's id.
        #[arg(long)]
        connection: String,
        /// The JSON, or `@path` to read it from a file.
        #[arg(long)]
        settings: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List an organization's connections and what each still lacks.
    List {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainCommand {
    /// Claim a domain; prints the TXT record that proves the organization controls it.
    Add {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The email domain.
        #[arg(long)]
        domain: String,
        /// The connection this domain signs in with (default: the organization's first).
        #[arg(long)]
        connection: Option<String>,
        /// Mark the claim verified without a DNS record: the operator vouches for it.
        #[arg(long)]
        verified: bool,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Look up the claim's TXT record and, when it is there, verify the domain.
    Verify {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The email domain.
        #[arg(long)]
        domain: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Send a verified domain's users to another connection of the organization (no new DNS
    /// record: the organization already proved it controls the domain).
    Move {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The email domain.
        #[arg(long)]
        domain: String,
        /// The connection's id.
        #[arg(long)]
        connection: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List an organization's domains and whether each is verified.
    List {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register an application; its secret is shown once.
    Create {
        /// Only this organization's users; without it, users of every organization.
        #[arg(long)]
        org: Option<String>,
        /// The application's name, shown to users at sign-in.
        #[arg(long)]
        name: String,
        /// Where the application may receive sign-ins; repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List applications (all, or one organization's).
    List {
        /// The organization's id or name.
        #[arg(long)]
        org: Option<String>,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client and its access tokens.
    Revoke {
        /// The organization's id or name.
        #[arg(long)]
        org: Option<String>,
        /// The client's id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SigningKeyCommand {
    /// Make a new signing key; the current one stops signing and stays published until the tokens
    /// it signed have expired.
    Rotate {
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminTokenCommand {
    /// Mint an admin API token (shown once; only its hash is stored).
    Create {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// What the token may do; sub_account_admin needs --sub-account.
        #[arg(long, value_parser = admin_roles())]
        role: String,
        /// The sub-account of a sub_account_admin token.
        #[arg(long)]
        sub_account: Option<String>,
        /// A name to recognize the token by in `admin-token list`.
        #[arg(long, default_value = "admin token")]
        name: String,
        #[command(flatten)]
        expiry: Expiry,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List an organization's admin tokens (never their secrets).
    List {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Revoke an admin token: it is refused from the next request on.
    Revoke {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The token's id (see `admin-token list`).
        #[arg(long)]
        id: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

/// When a token stops working; without either option, never.
#[derive(clap::Args, Debug)]
pub struct Expiry {
    /// The token stops working after this long: a number and a unit, e.g. 90m, 12h, 30d, 2w.
    #[arg(long, conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// The token stops working at this RFC 3339 time, e.g. 2027-01-31T00:00:00Z.
    #[arg(long)]
    pub expires_at: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PortalLinkCommand {
    /// Make a link (single use, valid five minutes) that opens a console session of the
    /// organization, limited to the pages of its intent.
    Create {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The pages the link's session reaches.
        #[arg(long, value_parser = ["sso", "scim", "domains", "mapping", "activity", "people"])]
        intent: String,
        /// Where the console's back link leads (an absolute http or https URL).
        #[arg(long)]
        return_url: Option<String>,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PlatformTokenCommand {
    /// Mint a platform token (shown once; only its hash is stored). It reaches every organization.
    Create {
        /// A name to recognize the token by in `platform-token list`.
        #[arg(long, default_value = "platform token")]
        name: String,
        #[command(flatten)]
        expiry: Expiry,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List the platform tokens (never their secrets).
    List {
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a platform token: it is refused from the next request on.
    Revoke {
        /// The token's id (see `platform-token list`).
        #[arg(long)]
        id: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubAccountCommand {
    /// Create a sub-account.
    Create {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The sub-account's name.
        #[arg(long)]
        name: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List an organization's sub-accounts.
    List {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MappingCommand {
    /// Create a rule from JSON: {"matcher": {...}, "grant": {...}, "description": "..."}.
    Create {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The rule as JSON.
        #[arg(long)]
        rule: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List an organization's mapping rules.
    List {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule and recompute the access it granted.
    Delete {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The rule's id (see `mapping list`).
        #[arg(long)]
        id: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Who would gain or lose what: {"op": "create"|"update"|"delete", ...}. Changes nothing.
    Preview {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The change as JSON.
        #[arg(long)]
        change: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization, with its owner when `--owner` names one.
    Create {
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// The owner's email address: a person of the organization at once, linked and activated
        /// when SCIM or a sign-in brings that userName (case-insensitive).
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        /// The SaaS's own key for the organization, unique across the deployment (the platform
        /// API finds the organization by it).
        #[arg(long, value_name = "KEY")]
        external_key: Option<String>,
        /// The most active users the organization may have; without it, no limit.
        #[arg(long, value_name = "N")]
        seat_limit: Option<i64>,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Make a user the organization's owner (the previous owner keeps their other access).
    TransferOwner {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The user's id or userName.
        #[arg(long)]
        user: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Set the seat limit (no value: no limit).
    SeatLimit {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The most users the organization may have; without it, no limit.
        #[arg(long)]
        limit: Option<i64>,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DirectoryCommand {
    /// Create a directory and print its SCIM URL and first token (shown once).
    Create {
        /// The organization's id or name.
        #[arg(long)]
        org: String,
        /// The directory's name, e.g. the IdP it serves.
        #[arg(long, default_value = "SCIM directory")]
        name: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// A directory's SCIM bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Mint a new token; the previous one stays valid until revoked.
    Rotate {
        /// The directory's id.
        #[arg(long)]
        directory: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Revoke one token, or every token but the newest.
    Revoke {
        /// The directory's id.
        #[arg(long)]
        directory: String,
        /// The token to revoke; without it, every token but the newest.
        #[arg(long)]
        token_id: Option<String>,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
    /// List token ids and their state (never the tokens).
    List {
        /// The directory's id.
        #[arg(long)]
        directory: String,
        /// Print one JSON object on stdout instead of text (errors too).
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::{boolish, public_url, redact_url};

    #[test]
    fn boolean_words_in_any_case() {
        for (value, want) in [
            ("1", true),
            ("TRUE", true),
            ("yes", true),
            ("On", true),
            ("0", false),
            ("false", false),
            ("No", false),
            ("OFF", false),
        ] {
            assert_eq!(boolish(value), Ok(want), "{value}");
        }
        for value in ["", "y", "2", "enable"] {
            assert!(boolish(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn public_urls_are_absolute_http_bases() {
        assert_eq!(
            public_url("https://sso.example.test/base/").as_deref(),
            Ok("https://sso.example.test/base")
        );
        assert_eq!(
            public_url("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        for bad in [
            "/relative",
            "sso.example.test",
            "ftp://sso.example.test",
            "https://sso.example.test/?a=b",
            "https://sso.example.test/#x",
            "https://user:pw@sso.example.test",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_read_from_flags_and_bounded() {
        use clap::Parser as _;
        let cli = super::Cli::try_parse_from([
            "idbridge",
            "--scim-max-page-size",
            "50",
            "--scim-bulk-max-operations",
            "10",
            "serve",
        ])
        .unwrap();
        let sizes = cli.global.sizes();
        assert_eq!(sizes.page_size, 50);
        assert_eq!(sizes.bulk_operations, 10);
        assert_eq!(sizes.body_bytes, 4 * 1024 * 1024, "the default");
        for bad in [
            ["--scim-max-page-size", "0"],
            ["--scim-max-body-bytes", "1024"],
            ["--scim-bulk-max-operations", "many"],
        ] {
            let args = ["idbridge", bad[0], bad[1], "serve"];
            assert!(super::Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn database_passwords_are_redacted() {
        let r = redact_url("postgres://idbridge:s3cret@db.internal:5432/idbridge");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("idbridge:redacted@db.internal"), "{r}");
        assert_eq!(redact_url("sqlite://idbridge.db"), "sqlite://idbridge.db");
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
