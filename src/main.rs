use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use idbridge::config::Cli;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
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

/// glibc gives each thread that meets a locked arena a new one, up to 8 per core, and a freed
/// block stays in its arena. `serve` has more threads than cores (the runtime's workers, and one
/// per SQLite connection, on which sqlx builds every row), so freed memory stayed spread over
/// arenas nobody reused: at 100,000 users the peak RSS was 100 MB with the default and 86 MB
/// with one arena per core, at the same rates (README, "Load over HTTP"). An operator's
/// `MALLOC_ARENA_MAX` still wins. Called before any thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets a limit glibc reads when it next creates an arena; no other
    // thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
