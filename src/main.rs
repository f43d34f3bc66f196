//! The `edgesplit` binary: flags, logging, config, and one call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use edgesplit::{app, config, demo, telemetry};

#[derive(Parser)]
#[command(name = "edgesplit", version, about = "Edge traffic-splitting reverse proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin listener.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a config file: exit 0, or print every problem as FILE:LINE:COL: message and exit 2.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run a self-contained demo: two built-in origins behind edgesplit on 127.0.0.1:8080.
    Demo,
}

/// mimalloc: fewer instructions per allocation than glibc, and the request path still allocates a few
/// times per request (see the allocator figures in the README).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config: path } => match config::load(&path) {
            Ok(mut config) => {
                // Rehearse everything the file declares against an empty, in-memory store.
                config.store_path = None;
                match edgesplit::plane::Plane::new(config, false) {
                    Ok(_) => {
                        println!("{}: ok", path.display());
                        ExitCode::SUCCESS
                    }
                    Err(errors) => {
                        eprintln!("{errors}");
                        ExitCode::from(2)
                    }
                }
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
        Command::Run { config: path } => {
            let config = match config::load(&path) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(2);
                }
            };
            let _log = telemetry::init(&config.log);
            runtime(async move {
                let handle = app::start(config, Some(path), stop_signal()).await.map_err(|e| e.to_string())?;
                handle.wait().await;
                Ok(())
            })
        }
        Command::Demo => {
            let store = std::env::temp_dir().join(format!("edgesplit-demo-{}", std::process::id()));
            let config = match demo::config(&store) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(2);
                }
            };
            let _log = telemetry::init(&config.log);
            runtime(async move {
                for (addr, side) in [(demo::PRIMARY_ORIGIN, "primary"), (demo::STAGING_ORIGIN, "staging")] {
                    let listener = TcpListener::bind(addr)
                        .await
                        .map_err(|e| format!("cannot bind the demo's {side} origin on {addr}: {e}"))?;
                    tokio::spawn(demo::run_origin(listener, side));
                }
                let handle = app::start(config, None, stop_signal()).await.map_err(|e| e.to_string())?;
                let policy = demo::seed_policy(&handle.plane)?;
                let proxy = handle.addr("http").map_or_else(|| "127.0.0.1:8080".to_string(), |a| a.to_string());
                println!("{}", demo::instructions(&proxy, &handle.admin_addr.to_string(), &policy.id));
                handle.wait().await;
                let _ = std::fs::remove_dir_all(&store);
                Ok(())
            })
        }
    }
}

/// A multi-threaded runtime with one worker per core.
fn runtime(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgesplit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgesplit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
