//! The fleet backend: PostgreSQL, shared by every instance (issue 16).
//!
//! - **One truth.** The control state is the rows of `edgesplit_policies` and `edgesplit_evidently`,
//!   with one revision (`edgesplit_revision`) raised by every write. A write locks the revision row,
//!   and goes through only if the revision is the one of the state this instance applied the command
//!   to ([`Pg::write`]); otherwise it is refused as [`StoreError::Stale`] and the plane catches up and
//!   applies the command again. Writes on different instances are so serialized, and the rules (ETags,
//!   names, one running launch per feature, quotas) hold across the fleet.
//! - **In step.** A write notifies `edgesplit`; each instance listens on a connection of its own and
//!   also reads the revision every [`POLL`], which heals a missed notification ([`Pg::follow`]).
//! - **Bounded.** Every call has a deadline (connect plus statement timeout); the pool has a size and a
//!   wait timeout. A call that misses its deadline fails (a write answers 503); if it committed after
//!   all, the revision tells, and the next write or check catches up.
//!
//! - **A last-known-good copy.** With `[store] path`, the state this instance holds (at the revision it
//!   holds, meta included) is also kept in `path/last-known-good.json` ([`super::Dump`]), rewritten
//!   after each change it sees. While the database cannot be reached, reads are answered from it, so an
//!   instance restarting during an outage starts from it and serves what the fleet served; writes still
//!   fail (503) until the database is back.
//!
//! The plane is synchronous (its lock is a std mutex, its writes run on blocking threads), so the
//! async client runs on a small runtime of this store's own, and each call waits for its answer on a
//! channel: callable from any thread, an async worker's included (it blocks that worker for the call,
//! as a redb fsync does).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls, Socket};
use tokio_util::sync::CancellationToken;

use super::{Dump, Loaded, Row, StoreError, Table};
use crate::config::PostgresConfig;
use crate::evidently::exposure::{Exposure, RuleKind};
use crate::evidently::stats::Moments;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The last-known-good copy's file, in `[store] path`.
pub use crate::config::COPY_FILE_NAME;

/// How often a follower reads the revision, besides listening.
const POLL: Duration = Duration::from_millis(500);
/// The channel writes notify.
const CHANNEL: &str = "edgesplit";
/// Serializes the migrations of instances starting together (`pg_advisory_lock`).
const MIGRATIONS_LOCK: i64 = 0x6564_6765_7370_6c02;
/// Serializes result updates across the fleet (`pg_advisory_xact_lock`).
const RESULTS_LOCK: i64 = 0x6564_6765_7370_6c01;

/// The database connection as this instance last saw it.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    /// Calls that failed (not refusals): connection lost, timeouts.
    pub failures: AtomicU64,
}

impl Health {
    /// Whether the last call or check reached the database.
    pub fn up(&self) -> bool {
        !self.down.load(Relaxed)
    }

    fn record<T>(&self, r: &Result<T, StoreError>) {
        match r {
            Ok(_) | Err(StoreError::Stale(_)) => self.set(true),
            Err(StoreError::Failed(e)) => {
                self.failures.fetch_add(1, Relaxed);
                self.set(false);
                tracing::warn!(error = %e, "PostgreSQL store call failed");
            }
        }
    }

    fn set(&self, up: bool) {
        let was_down = self.down.swap(!up, Relaxed);
        match (was_down, up) {
            (false, false) => tracing::error!(
                "PostgreSQL store unreachable: control plane degraded (the data plane serves its last snapshot)"
            ),
            (true, true) => tracing::info!("PostgreSQL store reachable again"),
            _ => {}
        }
    }
}

pub(super) struct Pg {
    /// `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    follower: Follower,
    /// The revision of the state this instance holds: what its next write expects.
    seen: Arc<AtomicU64>,
    /// A whole call's deadline.
    deadline: Duration,
    health: Arc<Health>,
    stop: CancellationToken,
    /// Whether this instance brought the schema up to date (not yet if it started from its copy).
    migrated: Arc<AtomicBool>,
    /// The last-known-good copy, with `[store] path`.
    copy: Option<Arc<Copy>>,
}

/// The state this instance holds, as stored, kept on disk by [`keep_copy`].
struct Copy {
    path: PathBuf,
    state: Mutex<Dump>,
    changed: tokio::sync::Notify,
}

impl Copy {
    fn update(&self, f: impl FnOnce(&mut Dump)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
    }

    fn read<T>(&self, f: impl FnOnce(&Dump) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What the follower needs to open its own connection.
#[derive(Clone)]
enum Follower {
    Plain(tokio_postgres::Config),
    Tls(tokio_postgres::Config, tokio_postgres_rustls::MakeRustlsConnect),
}

/// A failure, named by the call it broke.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Failed(format!("{what}: {e}")))
    }
}

impl Pg {
    /// Connects, and brings the schema up to date (refinery, in one transaction per migration). With
    /// `copy_dir`, keeps the last-known-good copy there, and if the database cannot be reached, starts
    /// from that copy (the schema is brought up to date by the first call that reaches it).
    pub(super) fn connect(config: &PostgresConfig, copy_dir: Option<&Path>) -> Result<Pg, StoreError> {
        let mut pg: tokio_postgres::Config =
            config.url.parse().map_err(|e| StoreError::Failed(format!("the database URL does not parse: {e}")))?;
        pg.connect_timeout(config.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        // Every statement bounded on the server too.
        // (after the URL's own `options`, such as a search_path, which stay).
        let timeout = format!("-c statement_timeout={}", config.statement_timeout.as_millis());
        let options = match pg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {timeout}"),
            _ => timeout,
        };
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name("edgesplit");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("edgesplit-store")
            .enable_all()
            .build()
            .ctx("cannot start the store's runtime")?;
        let manager = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let (pool, follower) = match &config.tls {
            None => (Manager::from_config(pg.clone(), NoTls, manager), Follower::Plain(pg)),
            Some(ca) => {
                let tls = crate::tls::client_config(ca.as_deref()).ctx("database TLS")?;
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                (Manager::from_config(pg.clone(), tls.clone(), manager), Follower::Tls(pg, tls))
            }
        };
        let pool = Pool::builder(pool)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .ctx("the database pool")?;
        let copy = match copy_dir {
            None => None,
            Some(dir) => {
                std::fs::create_dir_all(dir).ctx(&format!("cannot create {}", dir.display()))?;
                let path = dir.join(COPY_FILE_NAME);
                let found = Dump::read(&path).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "The last-known-good copy is unreadable; it will be rewritten");
                    None
                });
                Some((path, found))
            }
        };
        let mut store = Pg {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            pool,
            follower,
            seen: Arc::default(),
            deadline: config.connect_timeout + config.statement_timeout,
            health: Arc::default(),
            stop: CancellationToken::new(),
            migrated: Arc::default(),
            copy: None,
        };
        let reached = store.call("migrations", |_| async { Ok(()) });
        match (reached, copy) {
            (Ok(()), copy) => {
                // Served only if the first load fails after all; replaced by it otherwise.
                if let Some((path, found)) = copy {
                    let found = found.unwrap_or_default();
                    store.seen.store(found.revision, Relaxed);
                    store.keep_copy(path, found);
                }
            }
            (Err(e), Some((path, Some(found)))) => {
                tracing::warn!(
                    error = %e,
                    copy = %path.display(),
                    revision = found.revision,
                    "PostgreSQL unreachable at start: starting from the last-known-good copy (writes answer 503 until it is back)"
                );
                store.seen.store(found.revision, Relaxed);
                store.keep_copy(path, found);
            }
            (Err(e), Some((path, None))) => {
                return Err(StoreError::Failed(format!(
                    "{e} (and there is no last-known-good copy at {})",
                    path.display()
                )));
            }
            (Err(e), None) => return Err(e),
        }
        Ok(store)
    }

    /// Keeps `state` (then every change) in the copy at `path`, rewritten after each change.
    fn keep_copy(&mut self, path: PathBuf, state: Dump) {
        let copy = Arc::new(Copy { path, state: Mutex::new(state), changed: tokio::sync::Notify::new() });
        let (writer, stop) = (copy.clone(), self.stop.clone());
        self.handle.spawn(async move {
            loop {
                tokio::select! {
                    () = writer.changed.notified() => {}
                    () = stop.cancelled() => return,
                }
                let (state, path) = (writer.read(Dump::clone), writer.path.clone());
                match tokio::task::spawn_blocking(move || state.write(&path)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "Cannot write the last-known-good copy"),
                    Err(e) => tracing::warn!(error = %e, "Cannot write the last-known-good copy"),
                }
            }
        });
        self.copy = Some(copy);
    }

    pub(super) fn health(&self) -> &Health {
        &self.health
    }

    /// Runs `f` on the store's runtime, within the deadline, and waits for its answer.
    fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (pool, deadline, migrated) = (self.pool.clone(), self.deadline, self.migrated.clone());
        self.handle.spawn(async move {
            let call = async {
                if !migrated.load(Relaxed) {
                    migrate(&pool).await?;
                    migrated.store(true, Relaxed);
                }
                f(pool).await
            };
            let r = tokio::time::timeout(deadline, call)
                .await
                .unwrap_or_else(|_| Err(StoreError::Failed(format!("{what}: no answer within {deadline:?}"))));
            let _ = tx.send(r);
        });
        let r = rx
            .recv_timeout(deadline + Duration::from_secs(1))
            .unwrap_or_else(|_| Err(StoreError::Failed(format!("{what}: no answer within {deadline:?}"))));
        self.health.record(&r);
        r
    }

    /// The control state and its revision, read in one snapshot; later writes expect that revision.
    /// While the database cannot be reached, the last-known-good copy's (the state this instance holds).
    pub(super) fn load(&self) -> Result<Loaded, StoreError> {
        match self.dump(false) {
            Ok(dump) => {
                self.seen.store(dump.revision, Relaxed);
                let loaded = Loaded::of(&dump);
                if let Some(copy) = &self.copy {
                    copy.update(|state| *state = dump);
                }
                loaded
            }
            Err(e @ StoreError::Failed(_)) => match &self.copy {
                Some(copy) => copy.read(Loaded::of),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Every table but the results (with `results`, every table) and the revision, read in one snapshot.
    pub(super) fn dump(&self, results: bool) -> Result<Dump, StoreError> {
        self.call("load", move |pool| async move {
            let e = "load";
            let mut c = pool.get().await.ctx(e)?;
            let tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .ctx(e)?;
            let revision: i64 = tx.query_one("SELECT revision FROM edgesplit_revision", &[]).await.ctx(e)?.get(0);
            let mut dump = Dump { revision: u64::try_from(revision).unwrap_or(0), ..Dump::default() };
            for table in Table::ALL.into_iter().filter(|t| results || *t != Table::Results) {
                let (name, key, value) = sql_table(table);
                for row in tx.query(&format!("SELECT {key}, {value} FROM {name}"), &[]).await.ctx(e)? {
                    dump.tables[table as usize].insert(row.get(0), row.get(1));
                }
            }
            tx.commit().await.ctx(e)?;
            Ok(dump)
        })
    }

    /// Writes `rows` and raises the revision, if it is still the one this instance holds.
    pub(super) fn write(&self, rows: &[Row]) -> Result<(), StoreError> {
        let expected = i64::try_from(self.seen.load(Relaxed)).unwrap_or(i64::MAX);
        let written = rows.to_vec();
        let rows = written.clone();
        let revision = self.call("write", move |pool| async move {
            let e = "write";
            let mut c = pool.get().await.ctx(e)?;
            let tx = c.transaction().await.ctx(e)?;
            // The row lock makes a second writer wait, then read the first one's revision.
            let current: i64 =
                tx.query_one("SELECT revision FROM edgesplit_revision FOR UPDATE", &[]).await.ctx(e)?.get(0);
            if current != expected {
                return Err(StoreError::Stale(u64::try_from(current).unwrap_or(0)));
            }
            for row in &rows {
                let (name, key, value) = sql_table(row.table);
                match &row.value {
                    Some(v) => {
                        let put = format!(
                            "INSERT INTO {name} ({key}, {value}) VALUES ($1, $2) \
                             ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value}"
                        );
                        tx.execute(&put, &[&row.key, v]).await
                    }
                    None => tx.execute(&format!("DELETE FROM {name} WHERE {key} = $1"), &[&row.key]).await,
                }
                .ctx(e)?;
            }
            let revision: i64 = tx
                .query_one("UPDATE edgesplit_revision SET revision = revision + 1 RETURNING revision", &[])
                .await
                .ctx(e)?
                .get(0);
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &revision.to_string()]).await.ctx(e)?;
            tx.commit().await.ctx(e)?;
            Ok(revision)
        })?;
        let revision = u64::try_from(revision).unwrap_or(0);
        self.seen.store(revision, Relaxed);
        if let Some(copy) = &self.copy {
            copy.update(|state| {
                state.apply(written);
                state.revision = revision;
            });
        }
        Ok(())
    }

    /// Keeps a meta row in the copy.
    fn copy_meta(&self, key: &str, value: &[u8]) {
        if let Some(copy) = &self.copy {
            copy.update(|state| {
                state.apply([Row { table: Table::Meta, key: key.into(), value: Some(value.to_vec()) }])
            });
        }
    }

    /// A meta row from the copy, while the database cannot be reached.
    fn meta_from_copy(&self, key: &str, e: StoreError) -> Result<Option<Vec<u8>>, StoreError> {
        match (&self.copy, e) {
            (Some(copy), StoreError::Failed(_)) => Ok(copy.read(|s| s.tables[Table::Meta as usize].get(key).cloned())),
            (_, e) => Err(e),
        }
    }

    /// Whether the stored revision moved past the one this instance holds.
    pub(super) fn behind(&self) -> Result<bool, StoreError> {
        let seen = self.seen.load(Relaxed);
        let current = self.call("revision", |pool| async move {
            let c = pool.get().await.ctx("revision")?;
            let row = c.query_one("SELECT revision FROM edgesplit_revision", &[]).await.ctx("revision")?;
            Ok(row.get::<_, i64>(0))
        })?;
        Ok(u64::try_from(current).unwrap_or(0) != seen)
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let owned = key.to_string();
        self.call("meta", move |pool| async move {
            let c = pool.get().await.ctx("meta")?;
            let row = c.query_opt("SELECT value FROM edgesplit_meta WHERE key = $1", &[&owned]).await.ctx("meta")?;
            Ok(row.map(|r| r.get(0)))
        })
        .or_else(|e| self.meta_from_copy(key, e))
    }

    pub(super) fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let (owned, bytes) = (key.to_string(), value.to_vec());
        self.call("meta", move |pool| async move {
            let (key, value) = (owned, bytes);
            let c = pool.get().await.ctx("meta")?;
            c.execute(
                "INSERT INTO edgesplit_meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .await
            .ctx("meta")?;
            Ok(())
        })?;
        self.copy_meta(key, value);
        Ok(())
    }

    /// The fleet's cookie key: `made` if no instance stored one before.
    pub(super) fn cookie_key(&self, made: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let key = self.call("cookie key", move |pool| async move {
            let e = "cookie key";
            let c = pool.get().await.ctx(e)?;
            c.execute(
                "INSERT INTO edgesplit_meta (key, value) VALUES ('cookie_key', $1) ON CONFLICT (key) DO NOTHING",
                &[&made],
            )
            .await
            .ctx(e)?;
            let row = c.query_one("SELECT value FROM edgesplit_meta WHERE key = 'cookie_key'", &[]).await.ctx(e)?;
            Ok(row.get::<_, Vec<u8>>(0))
        });
        match key {
            Ok(key) => {
                self.copy_meta("cookie_key", &key);
                Ok(key)
            }
            Err(e) => self.meta_from_copy("cookie_key", e)?.ok_or_else(|| {
                StoreError::Failed("cookie key: the database is unreachable and the copy holds none".into())
            }),
        }
    }

    /// Adds values to their buckets' moments, under a fleet-wide lock so concurrent calls add up.
    pub(super) fn add_results(&self, adds: &[(String, f64)]) -> Result<(), StoreError> {
        let adds = adds.to_vec();
        self.call("results", move |pool| async move {
            let e = "results";
            let mut c = pool.get().await.ctx(e)?;
            let tx = c.transaction().await.ctx(e)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RESULTS_LOCK]).await.ctx(e)?;
            let keys: Vec<&str> = adds.iter().map(|(k, _)| k.as_str()).collect();
            let mut moments: BTreeMap<String, Moments> = BTreeMap::new();
            for row in
                tx.query("SELECT key, moments FROM edgesplit_results WHERE key = ANY($1)", &[&keys]).await.ctx(e)?
            {
                let bytes: &[u8] = row.get(1);
                moments.insert(row.get(0), serde_json::from_slice(bytes).unwrap_or_default());
            }
            for (k, x) in &adds {
                moments.entry(k.clone()).or_default().add(*x);
            }
            for (k, m) in &moments {
                let bytes = serde_json::to_vec(m).ctx(e)?;
                tx.execute(
                    "INSERT INTO edgesplit_results (key, moments) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET moments = EXCLUDED.moments",
                    &[k, &bytes],
                )
                .await
                .ctx(e)?;
            }
            tx.commit().await.ctx(e)
        })
    }

    /// Every bucket whose key starts with `prefix`.
    pub(super) fn results(&self, prefix: &str) -> Result<Vec<(String, Moments)>, StoreError> {
        let prefix = prefix.to_string();
        self.call("results", move |pool| async move {
            let e = "results";
            let c = pool.get().await.ctx(e)?;
            let rows = c
                .query("SELECT key, moments FROM edgesplit_results WHERE starts_with(key, $1) ORDER BY key", &[&prefix])
                .await
                .ctx(e)?;
            Ok(rows
                .iter()
                .map(|row| {
                    let bytes: &[u8] = row.get(1);
                    (row.get(0), serde_json::from_slice(bytes).unwrap_or_default())
                })
                .collect())
        })
    }

    pub(super) fn share_exposures(&self, exposures: &[Exposure], before_ms: i64) -> Result<(), StoreError> {
        // One row per (project, entity, kind, rule): the latest of the batch (an upsert may not touch a
        // row twice).
        let mut latest: BTreeMap<(&str, &str, &str, &str), (&str, i64)> = BTreeMap::new();
        for e in exposures {
            let slot = latest.entry((&e.project, &e.entity, kind_name(e.kind), &e.rule)).or_insert((&e.arm, e.at_ms));
            if e.at_ms >= slot.1 {
                *slot = (&e.arm, e.at_ms);
            }
        }
        let mut columns: [Vec<String>; 5] = Default::default();
        let mut at: Vec<i64> = Vec::with_capacity(latest.len());
        for ((project, entity, kind, rule), (arm, at_ms)) in latest {
            for (c, v) in columns.iter_mut().zip([project, entity, kind, rule, arm]) {
                c.push(v.to_string());
            }
            at.push(at_ms);
        }
        self.call("exposures", move |pool| async move {
            let e = "exposures";
            let c = pool.get().await.ctx(e)?;
            let [project, entity, kind, rule, arm] = &columns;
            if !at.is_empty() {
                c.execute(
                    "INSERT INTO edgesplit_exposures (project, entity, kind, rule, arm, at_ms)                      SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])                      ON CONFLICT (project, entity, kind, rule) DO UPDATE SET arm = EXCLUDED.arm, at_ms = EXCLUDED.at_ms                      WHERE edgesplit_exposures.at_ms <= EXCLUDED.at_ms",
                    &[project, entity, kind, rule, arm, &at],
                )
                .await
                .ctx(e)?;
            }
            c.execute("DELETE FROM edgesplit_exposures WHERE at_ms < $1", &[&before_ms]).await.ctx(e)?;
            Ok(())
        })
    }

    /// Writes this instance's window counts, `(distribution, counts as JSON)`, and prunes the rows of
    /// instances silent for an hour.
    pub(super) fn share_counts(&self, instance: &str, rows: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        let instance = instance.to_string();
        self.call("rollout counts", move |pool| async move {
            let e = "rollout counts";
            let c = pool.get().await.ctx(e)?;
            for (distribution, counts) in &rows {
                c.execute(
                    "INSERT INTO edgesplit_rollout_counts (instance, distribution, counts) VALUES ($1, $2, $3) \
                     ON CONFLICT (instance, distribution) DO UPDATE SET counts = EXCLUDED.counts, updated_at = now()",
                    &[&instance, distribution, counts],
                )
                .await
                .ctx(e)?;
            }
            c.execute("DELETE FROM edgesplit_rollout_counts WHERE updated_at < now() - interval '1 hour'", &[])
                .await
                .ctx(e)?;
            Ok(())
        })
    }

    /// The window counts of every instance but `except` for `distribution`, as JSON.
    pub(super) fn fleet_counts(&self, distribution: &str, except: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let (distribution, except) = (distribution.to_string(), except.to_string());
        self.call("rollout counts", move |pool| async move {
            let c = pool.get().await.ctx("rollout counts")?;
            let rows = c
                .query(
                    "SELECT counts FROM edgesplit_rollout_counts WHERE distribution = $1 AND instance <> $2",
                    &[&distribution, &except],
                )
                .await
                .ctx("rollout counts")?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Takes or renews the rollout driver's lease for `ttl`: whether `holder` holds it now.
    pub(super) fn rollout_lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (holder, ttl_ms) = (holder.to_string(), ttl.as_millis() as f64);
        self.call("rollout lease", move |pool| async move {
            let c = pool.get().await.ctx("rollout lease")?;
            let row = c
                .query_opt(
                    "INSERT INTO edgesplit_rollout_lease (id, holder, expires_at) \
                     VALUES (true, $1, now() + make_interval(secs => $2::float8 / 1000.0)) \
                     ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                     WHERE edgesplit_rollout_lease.holder = EXCLUDED.holder OR edgesplit_rollout_lease.expires_at < now() \
                     RETURNING holder",
                    &[&holder, &ttl_ms],
                )
                .await
                .ctx("rollout lease")?;
            Ok(row.is_some())
        })
    }

    pub(super) fn shared_exposures(
        &self,
        project: &str,
        entities: &[String],
        since_ms: i64,
    ) -> Result<Vec<Exposure>, StoreError> {
        let (project, entities) = (project.to_string(), entities.to_vec());
        self.call("exposures", move |pool| async move {
            let e = "exposures";
            let c = pool.get().await.ctx(e)?;
            let rows = c
                .query(
                    "SELECT entity, kind, rule, arm, at_ms FROM edgesplit_exposures                      WHERE project = $1 AND entity = ANY($2) AND at_ms >= $3",
                    &[&project, &entities, &since_ms],
                )
                .await
                .ctx(e)?;
            let project: Arc<str> = project.as_str().into();
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let kind = match r.get::<_, &str>(1) {
                        "experiment" => RuleKind::Experiment,
                        "launch" => RuleKind::Launch,
                        _ => return None,
                    };
                    Some(Exposure {
                        project: project.clone(),
                        kind,
                        rule: r.get::<_, &str>(2).into(),
                        arm: r.get::<_, &str>(3).into(),
                        entity: r.get::<_, &str>(0).into(),
                        at_ms: r.get(4),
                    })
                })
                .collect())
        })
    }

    /// Calls `changed` on a blocking thread of the store's runtime after each notification, after each
    /// (re)connection, and whenever the periodic check finds the revision moved. Calls never overlap;
    /// one that comes while another runs is folded into a single next call.
    pub(super) fn follow(&self, changed: Box<dyn Fn() + Send + Sync>) {
        let trigger = Trigger { changed: Arc::from(changed), pending: Arc::default(), running: Arc::default() };
        let (follower, seen, health, stop) =
            (self.follower.clone(), self.seen.clone(), self.health.clone(), self.stop.clone());
        self.handle.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let ended = match &follower {
                    Follower::Plain(pg) => listen(pg, NoTls, &trigger, &seen, &stop).await,
                    Follower::Tls(pg, tls) => listen(pg, tls.clone(), &trigger, &seen, &stop).await,
                };
                match ended {
                    Ok(()) => return,
                    Err(e) => {
                        health.record::<()>(&Err(StoreError::Failed(format!("following the store: {e}"))));
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = stop.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

/// Brings the schema up to date (refinery, in one transaction per migration).
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut c = pool.get().await.ctx("migrations")?;
    // Instances starting together would each create the tables: one at a time, the others then find
    // them applied.
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATIONS_LOCK]).await.ctx("migrations")?;
    let ran = embedded::migrations::runner().run_async(&mut **c).await.ctx("migrations");
    c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATIONS_LOCK]).await.ctx("migrations")?;
    ran.map(drop)
}

/// A [`Table`]'s SQL table, key column and value column.
fn sql_table(table: Table) -> (&'static str, &'static str, &'static str) {
    match table {
        Table::Policies => ("edgesplit_policies", "id", "document"),
        Table::Evidently => ("edgesplit_evidently", "key", "document"),
        Table::Meta => ("edgesplit_meta", "key", "value"),
        Table::Results => ("edgesplit_results", "key", "moments"),
        Table::Rollouts => ("edgesplit_rollouts", "distribution", "document"),
    }
}

fn kind_name(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Experiment => "experiment",
        RuleKind::Launch => "launch",
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop.cancel();
        // Never blocks, wherever the store is dropped (an async context included).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs the follower's callback, never two at once.
struct Trigger {
    changed: Arc<dyn Fn() + Send + Sync>,
    pending: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
}

impl Trigger {
    fn fire(&self) {
        self.pending.store(true, Relaxed);
        if self.running.swap(true, Relaxed) {
            return;
        }
        let (changed, pending, running) = (self.changed.clone(), self.pending.clone(), self.running.clone());
        tokio::task::spawn_blocking(move || {
            while pending.swap(false, Relaxed) {
                changed();
            }
            running.store(false, Relaxed);
            // A fire between the last check and the store above would be lost: look once more.
            if pending.load(Relaxed) && !running.swap(true, Relaxed) {
                while pending.swap(false, Relaxed) {
                    changed();
                }
                running.store(false, Relaxed);
            }
        });
    }
}

/// One listening connection: fires on each notification and on a moved revision; `Ok` when stopped,
/// `Err` when the connection is lost (the caller reconnects with backoff).
async fn listen<T>(
    pg: &tokio_postgres::Config,
    tls: T,
    trigger: &Trigger,
    seen: &AtomicU64,
    stop: &CancellationToken,
) -> Result<(), String>
where
    T: MakeTlsConnect<Socket> + Send,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = pg.connect(tls).await.map_err(|e| e.to_string())?;
    let (notified, mut notifications) = tokio::sync::mpsc::channel::<()>(1);
    let reader = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match m {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = notified.try_send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(|e| e.to_string())?;
        // Whatever was written while this instance was not listening.
        trigger.fire();
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                n = notifications.recv() => match n {
                    Some(()) => trigger.fire(),
                    None => return Err("the listening connection closed".to_string()),
                },
                _ = tick.tick() => {
                    let row = client
                        .query_one("SELECT revision FROM edgesplit_revision", &[])
                        .await
                        .map_err(|e| e.to_string())?;
                    if u64::try_from(row.get::<_, i64>(0)).unwrap_or(0) != seen.load(Relaxed) {
                        trigger.fire();
                    }
                }
            }
        }
    }
    .await;
    reader.abort();
    result
}
