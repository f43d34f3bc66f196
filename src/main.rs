//! The `edgesplit` binary: flags, logging, config, and one call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgesplit::{app, aws_models, cli, config, demo, telemetry};

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
    Demo {
        /// Bind the proxy, the admin listener and both origins on free ports (127.0.0.1:0) instead of
        /// 8080, 9901, 18081 and 18082; the banner prints the ports taken.
        #[arg(long)]
        ephemeral_ports: bool,
    },
    /// Print everything the configured store holds (policies, Evidently resources, the cookie key and
    /// session epochs, experiment results) as one JSON document, to move it to another store with
    /// `import`. A redb store must not be in use by a running instance.
    Export {
        #[arg(short, long)]
        config: PathBuf,
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write a document made by `export` into the configured store, which must hold no policies,
    /// Evidently resources or results yet: all of it in one transaction, or nothing.
    Import {
        #[arg(short, long)]
        config: PathBuf,
        /// The document `export` made; `-` reads standard input.
        #[arg(value_name = "FILE")]
        input: PathBuf,
    },
    /// Install the Evidently model for boto3 and the AWS CLI (botocore dropped it after 1.42.50): in
    /// ~/.aws/models, or in DIR for AWS_DATA_PATH.
    InstallModels {
        /// Write under DIR instead of ~/.aws/models; then set AWS_DATA_PATH=DIR for the clients.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Guarded rollouts, through a running instance's admin API: list, status, start, pause, resume, abort.
    ///
    /// Exit 0; 1 when the API refuses or cannot be reached; 2 on bad usage or a bad config file.
    Rollout(cli::RolloutArgs),
}

/// mimalloc: fewer instructions per allocation than glibc, and the request path still allocates a few
/// times per request (see the allocator figures in the README). `alloc_ctl::MiMalloc` rather than the
/// `mimalloc` crate's: that one sends every allocation down mimalloc's slower aligned path.
#[global_allocator]
static ALLOC: alloc_ctl::MiMalloc = alloc_ctl::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config: path } => match config::load(&path) {
            Ok(mut config) => {
                // Rehearse everything the file declares against an empty, in-memory store.
                config.store_path = None;
                config.postgres = None;
                match edgesplit::plane::Plane::new(config) {
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
            // What `check` does: the Evidently declarations rehearsed against an empty, in-memory store, so
            // a file whose declarations are invalid is a bad config (exit 2) and touches no store.
            let mut rehearsal = config.clone();
            rehearsal.store_path = None;
            rehearsal.postgres = None;
            if let Err(errors) = edgesplit::plane::Plane::new(rehearsal) {
                eprintln!("{errors}");
                return ExitCode::from(2);
            }
            let _log = telemetry::init(&config.log);
            let file = format!("{}:", path.display());
            runtime(async move {
                let handle = app::start(config, Some(path), stop_signal()).await.map_err(|e| match e {
                    // Declarations that fail only against what the store holds: still the file's errors,
                    // each positioned in it.
                    app::StartError::Plane(text) if text.lines().all(|l| l.starts_with(&file)) => Failure::Config(text),
                    e => Failure::Other(e.to_string()),
                })?;
                handle.wait().await;
                Ok(())
            })
        }
        Command::Export { config, output } => transfer(&config, |store| {
            let dump = store.dump().map_err(|e| e.to_string())?;
            let bytes = dump.encode().map_err(|e| e.to_string())?;
            match &output {
                Some(path) => {
                    std::fs::write(path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?
                }
                None => std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes).map_err(|e| e.to_string())?,
            }
            Ok(format!("exported {}", counts(&dump)))
        }),
        Command::Import { config, input } => transfer(&config, |store| {
            let bytes = if input.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes).map_err(|e| e.to_string())?;
                bytes
            } else {
                edgesplit::files::read(&input, edgesplit::store::DUMP_CAP).map_err(|e| e.to_string())?
            };
            let dump = edgesplit::store::Dump::decode(&bytes).map_err(|e| format!("{}: {e}", input.display()))?;
            store.import(&dump).map_err(|e| e.to_string())?;
            Ok(format!("imported {}", counts(&dump)))
        }),
        Command::InstallModels { dir } => {
            let explicit = dir.is_some();
            let root = dir.map(|d| std::path::absolute(&d).unwrap_or(d));
            let installed = root.map_or_else(aws_models::default_root, Ok).and_then(|root| {
                let installed = aws_models::install(&root)?;
                Ok((root, installed))
            });
            match installed {
                Ok((root, installed)) => {
                    print!("{}", aws_models::report(&root, &installed, explicit));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("edgesplit install-models: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Rollout(args) => cli::run(args),
        Command::Demo { ephemeral_ports } => {
            // An unguessable name, made here (never an existing folder) and private to this user: a
            // predictable one in a shared /tmp could be made beforehand by someone else.
            let store = std::env::temp_dir().join(format!("edgesplit-demo-{:032x}", edgesplit::random::id128()));
            {
                use std::os::unix::fs::DirBuilderExt;
                if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&store) {
                    eprintln!("edgesplit demo: cannot create {}: {e}", store.display());
                    return ExitCode::FAILURE;
                }
            }
            let config = match demo::config(&store) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(2);
                }
            };
            let _log = telemetry::init(&config.log);
            runtime(async move { Ok(demo::run(config, ephemeral_ports, stop_signal()).await?) })
        }
    }
}

/// Opens the store `config` names (`Store::of`, without a last-known-good copy: these commands only
/// read or write the database) and runs `f` on it; prints its report on standard error.
fn transfer(config: &std::path::Path, f: impl FnOnce(&edgesplit::store::Store) -> Result<String, String>) -> ExitCode {
    let mut config = match config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if config.postgres.is_none() && config.store_path.is_none() {
        eprintln!("edgesplit: the config names no store: set [store] path, or backend = \"postgres\"");
        return ExitCode::from(2);
    }
    // With PostgreSQL, `path` holds a running instance's last-known-good copy: not these commands'.
    if config.postgres.is_some() {
        config.store_path = None;
    }
    let store = edgesplit::store::Store::of(&config);
    match store.map_err(|e| e.to_string()).and_then(|store| f(&store)) {
        Ok(report) => {
            eprintln!("edgesplit: {report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgesplit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a dump holds, in words.
fn counts(dump: &edgesplit::store::Dump) -> String {
    use edgesplit::store::Table;
    let n = |t: Table| dump.tables[t as usize].len();
    format!(
        "{} policies, {} Evidently resources, {} meta entries and {} result buckets",
        n(Table::Policies),
        n(Table::Evidently),
        n(Table::Meta),
        n(Table::Results)
    )
}

/// Why a command failed: a bad config file exits 2, anything else 1.
enum Failure {
    Config(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure::Other(e)
    }
}

/// A multi-threaded runtime with one worker per core.
fn runtime(f: impl std::future::Future<Output = Result<(), Failure>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgesplit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(errors)) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
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
