//! The admin commands a person scripts: organizations, directories, tokens. Each prints a human line,
//! or with `--json` exactly one JSON object on stdout.

use serde_json::json;

use crate::config::{DirectoryCommand, Global, OrgCommand, TokenCommand};
use crate::store::{Store, StoreError};

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

/// The SCIM base URL a directory is reached at.
pub fn scim_url(public_url: &str, directory_id: &str) -> String {
    format!("{public_url}/scim/v2/{directory_id}")
}

pub async fn org(store: &Store, cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create { name, json } => {
            let org = store.create_org(&name).await?;
            print(
                json,
                json!({"id": org.id, "name": org.name}),
                format!("created organization {} ({})", org.name, org.id),
            );
        }
    }
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
            let (dir, token) = store.create_directory(&org.id, &name).await?;
            let url = scim_url(&global.public_url(), &dir.id);
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
                let token = store
                    .rotate_directory_token(&directory)
                    .await
                    .map_err(not_found("directory", &directory))?;
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
                let revoked = store
                    .revoke_directory_tokens(&directory, token_id.as_deref())
                    .await
                    .map_err(not_found("directory or token", &directory))?;
                print(
                    json,
                    json!({"directory_id": directory, "revoked": revoked}),
                    format!("revoked {} token(s): {}", revoked.len(), revoked.join(", ")),
                );
            }
            TokenCommand::List { directory, json } => {
                store
                    .find_directory(&directory)
                    .await
                    .map_err(not_found("directory", &directory))?;
                let tokens = store.list_directory_tokens(&directory).await?;
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
