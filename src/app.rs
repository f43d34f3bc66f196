//! `Config -> App`: binds the listeners and the admin listener, compiles the first snapshot, then runs
//! the control loop: reload on SIGHUP or when the config file changes, drain on shutdown.
//!
//! Life of a config change: read the file -> validate (every error, positioned) -> the control plane
//! rehearses the file's declarations, applies them and compiles a [`crate::plane::Snapshot`] -> the data
//! plane ([`Proxy`], a subscriber) builds upstream clients if their settings changed and swaps in its
//! new state -> reconcile listeners (rebind only addresses that appeared or went). Requests in flight
//! finish on the state they started with. A file that fails validation is logged and the running config
//! stays.
//!
//! This is where the layers meet: the control plane never imports the data plane; `start` hands the
//! data plane to it as a subscriber.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::config::{self, Config, ListenerConfig};
use crate::metrics::Metrics;
use crate::plane::Plane;
use crate::proxy::Proxy;
use crate::server::{self, ListenerSettings, RunningListener, ServerCtx};

/// Why edgesplit could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind listener `{name}` on {addr}: {source}")]
    Bind { name: String, addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Plane(String),
}

type ReloadReply = oneshot::Sender<Result<(), String>>;

/// A running edgesplit: its bound addresses and the levers tests and `main` pull.
pub struct Handle {
    pub admin_addr: SocketAddr,
    listeners: Arc<Mutex<Vec<RunningListener>>>,
    shutdown: CancellationToken,
    reload_tx: mpsc::Sender<ReloadReply>,
    done: tokio::task::JoinHandle<()>,
    pub metrics: Arc<Metrics>,
    pub plane: Arc<Plane>,
}

impl Handle {
    /// The bound address of each listener, by name.
    pub(crate) fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let l = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().map(|l| (l.name.clone(), l.local)).collect()
    }

    /// The bound address of the listener called `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs().into_iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// Reloads the config file now, as SIGHUP does.
    pub async fn reload(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.reload_tx.send(tx).await.map_err(|_| "edgesplit is stopping".to_string())?;
        rx.await.map_err(|_| "edgesplit is stopping".to_string())?
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until edgesplit has drained and stopped.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Starts edgesplit on `config`. `source` is the file it came from (reloads read it again); `stop`
/// resolves when it should shut down (SIGTERM/SIGINT in `main`).
pub async fn start(
    config: Config,
    source: Option<PathBuf>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Handle, StartError> {
    let plane = Arc::new(Plane::new(config.clone()).map_err(StartError::Plane)?);
    plane.follow();
    plane.share_exposures();
    plane.drive_rollouts();
    let metrics = plane.metrics.clone();
    let proxy = Proxy::new(
        plane.snapshot(),
        metrics.clone(),
        config.log.access_log,
        plane.exposures.clone(),
        plane.clock.clone(),
    )
    .map_err(StartError::Plane)?;
    let proxy = Arc::new(proxy);
    plane.subscribe(proxy.clone());
    tokio::spawn(plane.exposures.clone().run());
    let shutdown = CancellationToken::new();
    let workers = match config.limits.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let workers =
        server::Workers::start(workers).map_err(|e| StartError::Plane(format!("cannot start workers: {e}")))?;
    let ctx = Arc::new(ServerCtx {
        proxy: proxy.clone(),
        conns: Arc::new(Semaphore::new(config.limits.max_connections)),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        drain: Default::default(),
        workers,
    });

    let mut running = Vec::new();
    for l in &config.listeners {
        let settings = ListenerSettings::new(l, config.timeouts, config.limits);
        let r = server::start_listener(l, settings, &ctx).map_err(|source| {
            shutdown.cancel();
            StartError::Bind { name: l.name.clone(), addr: l.addr, source }
        })?;
        running.push(r);
    }
    let ready = Arc::new(AtomicBool::new(true));
    let admin_listener = server::bind_tcp(config.admin_listen).map_err(|source| {
        shutdown.cancel();
        StartError::Bind { name: "admin".into(), addr: config.admin_listen, source }
    })?;
    let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
        name: "admin".into(),
        addr: config.admin_listen,
        source,
    })?;
    let admin_stop = CancellationToken::new();
    let auth = Arc::new(admin::Auth::new(config.admin_auth.clone()));
    tokio::spawn(admin::serve(
        admin_listener,
        admin::Admin { plane: plane.clone(), ready: ready.clone(), auth },
        admin_stop.clone(),
    ));
    tracing::info!(addr = %admin_addr, "Admin listening");
    warn_about_admin_auth(&config.admin_auth, admin_addr);

    let listeners = Arc::new(Mutex::new(running));
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let plane_handle = plane.clone();
    let control = Control { config, source, ctx, listeners: listeners.clone(), ready, plane };
    let sd = shutdown.clone();
    let done = tokio::spawn(async move {
        control.run(reload_rx, stop, sd).await;
        admin_stop.cancel();
    });
    Ok(Handle { admin_addr, listeners, shutdown, reload_tx, done, metrics, plane: plane_handle })
}

/// `auth = "none"` (and SigV4 without a key, which only an in-process config can have) said loudly at
/// start, in lines that stand out in any log.
fn warn_about_admin_auth(auth: &config::AdminAuth, addr: SocketAddr) {
    const BANNER: &str = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";
    match (auth.mode, &auth.credentials) {
        (config::AdminAuthMode::None, _) => {
            tracing::warn!("{BANNER}");
            tracing::warn!(
                addr = %addr,
                "ADMIN API AUTHENTICATION IS OFF ([admin] auth = \"none\"): anyone who can reach {addr} can change \
                 routing policies and feature flags. For local development only."
            );
            tracing::warn!("{BANNER}");
        }
        (config::AdminAuthMode::SigV4, None) => {
            tracing::warn!(addr = %addr, "The admin API has no access key configured: every API call is refused");
        }
        (config::AdminAuthMode::SigV4, Some(key)) => {
            tracing::info!(access_key_id = %key.id, "Admin API calls need AWS SigV4 signatures");
        }
    }
}

struct Control {
    config: Config,
    source: Option<PathBuf>,
    ctx: Arc<ServerCtx>,
    listeners: Arc<Mutex<Vec<RunningListener>>>,
    /// Served on `/readyz`; false from the start of the drain.
    ready: Arc<AtomicBool>,
    plane: Arc<Plane>,
}

impl Control {
    async fn run(
        mut self,
        mut reload_rx: mpsc::Receiver<ReloadReply>,
        stop: impl Future<Output = ()>,
        shutdown: CancellationToken,
    ) {
        tokio::pin!(stop);
        let mut hup = hangup_signal();
        let mut last_text = self.source.as_ref().and_then(|p| config::read_file(p).ok());
        let poll_every = self.config.timeouts.config_poll;
        let mut poll =
            tokio::time::interval(if poll_every.is_zero() { std::time::Duration::from_secs(3600) } else { poll_every });
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = shutdown.cancelled() => break,
                reply = reload_rx.recv() => {
                    last_text = self.source.as_ref().and_then(|p| config::read_file(p).ok());
                    let result = self.reload("api").await;
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
                Some(()) = recv_hup(&mut hup) => {
                    last_text = self.source.as_ref().and_then(|p| config::read_file(p).ok());
                    let _ = self.reload("SIGHUP").await;
                }
                _ = poll.tick(), if !poll_every.is_zero() => {
                    let text = self.source.as_ref().and_then(|p| config::read_file(p).ok());
                    if text.is_some() && text != last_text {
                        last_text = text;
                        let _ = self.reload("file change").await;
                    }
                }
            }
        }
        self.drain().await;
    }

    async fn reload(&mut self, trigger: &str) -> Result<(), String> {
        let Some(path) = self.source.clone() else {
            return Err("edgesplit was started without a config file".into());
        };
        let result = match config::load(&path) {
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(error = %e, "Config rejected");
                }
                Err(errors.to_string())
            }
            Ok(new) => self.apply(new),
        };
        self.ctx.proxy.metrics.reload(result.is_ok());
        match &result {
            Ok(()) => tracing::info!(trigger, file = %path.display(), "Config reloaded"),
            Err(_) => {
                tracing::error!(trigger, file = %path.display(), "Reload failed; the running config stays")
            }
        }
        result
    }

    /// Compiles and publishes `new`, then reconciles the listener set.
    fn apply(&mut self, new: Config) -> Result<(), String> {
        // Bind new addresses before publishing anything, so a bind failure leaves everything as it was.
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = Vec::new();
        for l in &new.listeners {
            if listeners.iter().any(|r| same_listener(r, l)) {
                continue;
            }
            let settings = ListenerSettings::new(l, new.timeouts, new.limits);
            match server::start_listener(l, settings, &self.ctx) {
                Ok(r) => fresh.push(r),
                Err(e) => {
                    for r in &fresh {
                        r.stop();
                    }
                    return Err(format!("cannot bind listener `{}` on {}: {e}", l.name, l.addr));
                }
            }
        }
        if let Err(e) = self.plane.apply_config(new.clone()) {
            for r in &fresh {
                r.stop();
            }
            return Err(e);
        }
        listeners.retain(|r| {
            let keep = new.listeners.iter().any(|l| same_listener(r, l));
            if !keep {
                tracing::info!(listener = %r.name, addr = %r.local, "Listener removed");
                r.stop();
            }
            keep
        });
        for r in listeners.iter_mut() {
            if let Some(l) = new.listeners.iter().find(|l| same_listener(r, l)) {
                r.settings.store(Arc::new(ListenerSettings::new(l, new.timeouts, new.limits)));
                r.name = l.name.clone();
            }
        }
        listeners.extend(fresh);
        drop(listeners);

        let pending = restart_only_changes(&self.config, &new);
        if !pending.is_empty() {
            tracing::warn!(
                changed = pending.join(", "),
                "These settings changed but are read at start only: they apply at the next restart"
            );
        }
        self.config = new;
        Ok(())
    }

    async fn drain(self) {
        let grace = self.config.timeouts.shutdown_grace;
        self.ready.store(false, Relaxed);
        tracing::info!(grace = ?grace, "Shutting down: draining connections");
        self.ctx.shutdown.cancel();
        self.ctx.drain.start();
        {
            let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            for l in listeners.iter() {
                l.stop();
            }
        }
        self.ctx.tracker.close();
        self.ctx.proxy.tasks.close();
        let all = async {
            self.ctx.tracker.wait().await;
            self.ctx.proxy.tasks.wait().await;
        };
        match tokio::time::timeout(grace, all).await {
            Ok(()) => tracing::info!("Drained"),
            Err(_) => tracing::warn!(
                open = self.ctx.tracker.len() + self.ctx.proxy.tasks.len(),
                "Grace period over; closing what is left"
            ),
        }
        self.ctx.workers.stop();
    }
}

/// The settings a reload does not apply, by the name they have in the file, that differ between `old`
/// and `new`. Everything else is applied by a reload (`[admin] account_id` and `region` included: the ARNs
/// the API returns change with them). Keep in step with the README ("Reload") and config/edgesplit.toml.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let checks = [
        ("[admin] listen", old.admin_listen != new.admin_listen),
        ("[admin] auth and keys", old.admin_auth != new.admin_auth),
        ("[store] path", old.store_path != new.store_path),
        ("[store] backend and its settings", old.postgres != new.postgres),
        ("[log]", old.log != new.log),
        ("limits.max_connections", old.limits.max_connections != new.limits.max_connections),
        ("limits.workers", old.limits.workers != new.limits.workers),
        ("timeouts.config_poll", old.timeouts.config_poll != new.timeouts.config_poll),
        ("[evidently] max_exposures", old.quotas.exposures != new.quotas.exposures),
    ];
    checks.into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect()
}

/// A running listener stays bound across a reload when its address is configured again. Port 0 means
/// "any free port", so there the name must match too.
fn same_listener(running: &RunningListener, config: &ListenerConfig) -> bool {
    running.configured == config.addr && (config.addr.port() != 0 || running.name == config.name)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hup(hup: &mut Hangup) -> Option<()> {
    match hup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(extra: &str) -> Config {
        let text = format!(
            "[admin]\nauth = \"none\"\n{extra}\n[[distribution]]\nid = \"web\"\ndomains = [\"*\"]\n\
             [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n"
        );
        config::parse_to_run(&text, "t.toml", std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn every_restart_only_setting_is_named_when_it_changes() {
        let base = parse("");
        assert!(restart_only_changes(&base, &parse("")).is_empty());
        for (extra, name) in [
            ("[timeouts]\nconfig_poll = \"5s\"", "timeouts.config_poll"),
            ("[limits]\nworkers = 3", "limits.workers"),
            ("[limits]\nmax_connections = 5", "limits.max_connections"),
            ("[evidently]\nmax_exposures = 7", "[evidently] max_exposures"),
            ("[log]\nformat = \"json\"", "[log]"),
            ("[store]\npath = \"/tmp/x\"", "[store] path"),
        ] {
            assert_eq!(restart_only_changes(&base, &parse(extra)), [name], "{extra}");
        }
        // What a reload applies is not named.
        for extra in ["[timeouts]\nclient_idle = \"5s\"", "[limits]\nmax_headers = 50", "[evidently]\nmax_projects = 5"]
        {
            assert!(restart_only_changes(&base, &parse(extra)).is_empty(), "{extra}");
        }
    }
}
