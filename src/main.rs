use clap::Parser;
use idbridge::config::{Cli, Command};
use idbridge::store::{Store, StoreOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Openapi) {
        println!("{:#}", idbridge::http::admin::document());
        return Ok(());
    }
    idbridge::telemetry::init(cli.global.log_format);
    let opts = StoreOptions {
        max_connections: cli.global.db_max_connections,
        ..Default::default()
    };
    if matches!(cli.command, Command::Serve) {
        let database = idbridge::config::redact_url(&cli.global.database_url);
        tracing::info!(%database, "connecting");
    }
    let mut store = Store::connect(&cli.global.database_url, &opts).await?;
    match cli.global.secrets_key()? {
        Some(key) => store = store.with_secrets(key),
        None if matches!(cli.command, Command::Serve) => tracing::warn!(
            "no IDBRIDGE_SECRETS_KEY: single sign-on cannot store client secrets or signing keys"
        ),
        None => {}
    }
    store.migrate().await?;
    let result = match cli.command {
        Command::Serve => idbridge::app::serve(store.clone(), &cli.global).await,
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Org { command } => idbridge::cli::org(&store, command).await,
        Command::Directory { command } => {
            idbridge::cli::directory(&store, &cli.global, command).await
        }
        Command::AdminToken { command } => idbridge::cli::admin_token(&store, command).await,
        Command::SubAccount { command } => idbridge::cli::sub_account(&store, command).await,
        Command::Mapping { command } => idbridge::cli::mapping(&store, command).await,
        Command::Sso { command } => idbridge::cli::sso(&store, &cli.global, command).await,
        Command::Domain { command } => idbridge::cli::domain(&store, &cli.global, command).await,
        Command::Client { command } => idbridge::cli::client(&store, command).await,
        Command::SigningKey { command } => idbridge::cli::signing_key(&store, command).await,
        Command::Openapi => Ok(()),
        Command::Access { org, user, json } => {
            idbridge::cli::access(&store, &org, &user, json).await
        }
    };
    store.close().await;
    result
}
