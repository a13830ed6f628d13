use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use idbridge::config::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors are clap's: its message and exit code 2.
    let matches = Cli::command().get_matches();
    let json = idbridge::cli::wants_json(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match idbridge::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            idbridge::cli::report(&e, json);
            ExitCode::FAILURE
        }
    }
}
