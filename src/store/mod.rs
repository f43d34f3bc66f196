//! The store: what the admin API writes, durable before the API answers 2xx, and what edgesplit must
//! remember across restarts (the stickiness cookie key when the config names none, session epochs of
//! policies written in the file, experiment results). Two backends behind one face:
//!
//! - **redb** (`redb`), embedded, for one instance (the default, and the demo's);
//! - **PostgreSQL** (`postgres`), shared by a fleet of instances (issue 16). Each write checks that
//!   the state it was applied to is the latest (the store's revision), so writes made on different
//!   instances are serialized: a write applied to an older state is refused as [`StoreError::Stale`],
//!   and the plane catches up and applies it again.

mod dump;
mod postgres;
mod redb;

use std::path::Path;

use crate::cd::model::StoredPolicy;
use crate::config::PostgresConfig;
use crate::evidently::exposure::Exposure;
use crate::evidently::stats::Moments;

pub use dump::{DUMP_CAP, Dump};
pub use postgres::{COPY_FILE_NAME, Health};

/// The database file in `[store] path` (named by the config layer, which checks the path).
pub use crate::config::STORE_FILE_NAME as FILE_NAME;

/// The tables a [`Row`] writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// CloudFront policies by id, as JSON.
    Policies = 0,
    /// Evidently resources by `Resource::key`, as JSON.
    Evidently = 1,
    /// Bookkeeping: the cookie key, session epochs, declaration fingerprints.
    Meta = 2,
    /// Experiment and launch metric moments by series bucket, as JSON (written by imports only; events
    /// add to them through [`Store::add_results`]).
    Results = 3,
    /// Guarded rollouts by distribution id, as JSON (`rollout::Rollout`).
    Rollouts = 4,
}

impl Table {
    pub const ALL: [Table; 5] = [Table::Policies, Table::Evidently, Table::Meta, Table::Results, Table::Rollouts];

    pub fn name(self) -> &'static str {
        match self {
            Table::Policies => "policy",
            Table::Evidently => "Evidently resource",
            Table::Meta => "meta",
            Table::Results => "result",
            Table::Rollouts => "rollout",
        }
    }
}

/// One row to put (`value`) or delete (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: Table,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

impl Row {
    pub fn policy(p: &StoredPolicy) -> Row {
        Row { table: Table::Policies, key: p.id.clone(), value: Some(serde_json::to_vec(p).unwrap_or_default()) }
    }
}

/// A store failure: the write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Failed(String),
    /// Another instance wrote first: the state this write was applied to is no longer the latest.
    #[error("store: another instance wrote first (the store is at revision {0})")]
    Stale(u64),
}

/// The control state as stored: read in one transaction.
#[derive(Debug, Default)]
pub struct Loaded {
    pub policies: Vec<StoredPolicy>,
    /// Evidently resources as (store key, JSON).
    pub evidently: Vec<(String, Vec<u8>)>,
    pub rollouts: Vec<crate::rollout::Rollout>,
}

impl Loaded {
    fn of(dump: &Dump) -> Result<Loaded, StoreError> {
        let policies = dump.tables[Table::Policies as usize]
            .iter()
            .map(|(id, doc)| {
                serde_json::from_slice(doc).map_err(|e| StoreError::Failed(format!("stored policy `{id}`: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let evidently = dump.tables[Table::Evidently as usize].iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let rollouts = rollouts(dump.tables[Table::Rollouts as usize].iter())?;
        Ok(Loaded { policies, evidently, rollouts })
    }
}

/// Stored rollouts, read and checked ([`crate::rollout::Rollout::check`]); one that does not read, or breaks
/// the rules, fails the load (the driver must not forget it, nor drive it).
fn rollouts<'a>(
    rows: impl Iterator<Item = (&'a String, &'a Vec<u8>)>,
) -> Result<Vec<crate::rollout::Rollout>, StoreError> {
    rows.map(|(k, v)| {
        serde_json::from_slice::<crate::rollout::Rollout>(v)
            .map_err(|e| e.to_string())
            .and_then(|r| r.check().map(|()| r))
            .map_err(|e| StoreError::Failed(format!("stored rollout `{k}`: {e}")))
    })
    .collect()
}

pub struct Store {
    backend: Backend,
}

enum Backend {
    Redb(redb::Redb),
    Postgres(Box<postgres::Pg>),
}

impl Store {
    /// Opens (or creates) `dir/edgesplit.redb`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Redb(redb::Redb::open(dir)?) })
    }

    /// A store that lives in memory only.
    pub fn in_memory() -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Redb(redb::Redb::in_memory()?) })
    }

    /// Connects to PostgreSQL and brings its schema up to date (the migrations in `migrations/`). With
    /// `copy` (a directory), keeps a last-known-good copy of the shared state there, and starts from it
    /// when the database cannot be reached.
    pub fn postgres(config: &PostgresConfig, copy: Option<&Path>) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Postgres(Box::new(postgres::Pg::connect(config, copy)?)) })
    }

    /// The store `[store]` names: PostgreSQL, redb in `path`, or redb in memory (with a warning).
    pub fn of(config: &crate::config::Config) -> Result<Store, StoreError> {
        match (&config.postgres, &config.store_path) {
            (Some(pg), copy) => Store::postgres(pg, copy.as_deref()),
            (None, Some(path)) => Store::open(path),
            (None, None) => {
                tracing::warn!("No [store] path: API writes live in memory and are lost at exit");
                Store::in_memory()
            }
        }
    }

    /// Everything the store holds, results included, read in one transaction (`edgesplit export`).
    pub fn dump(&self) -> Result<Dump, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.dump(),
            Backend::Postgres(s) => s.dump(true),
        }
    }

    /// Writes everything in `dump` in one transaction (`edgesplit import`), into a store that holds no
    /// policies, Evidently resources or results yet (its meta, such as a cookie key an instance made, is
    /// replaced by the dump's).
    pub fn import(&self, dump: &Dump) -> Result<(), StoreError> {
        // Every document reads, or nothing is written (an instance could not start on the policy or the
        // rollout, and would skip the resource).
        Loaded::of(dump)?;
        for (key, json) in &dump.tables[Table::Evidently as usize] {
            if crate::evidently::model::Resource::from_stored(key, json).is_none() {
                return Err(StoreError::Failed(format!("Evidently resource `{key}` does not read")));
            }
        }
        for (key, json) in &dump.tables[Table::Results as usize] {
            serde_json::from_slice::<Moments>(json)
                .map_err(|e| StoreError::Failed(format!("result bucket `{key}` does not read: {e}")))?;
        }
        self.load()?;
        let here = self.dump()?;
        if !here.is_empty() {
            let count = |t: Table| here.tables[t as usize].len();
            return Err(StoreError::Failed(format!(
                "the store already holds {} policies, {} Evidently resources, {} result buckets and {} rollouts: import into an empty store",
                count(Table::Policies),
                count(Table::Evidently),
                count(Table::Results),
                count(Table::Rollouts)
            )));
        }
        self.write(&dump.rows().collect::<Vec<_>>())
    }

    /// The stored control state, read in one transaction; later writes are checked against it.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.load(),
            Backend::Postgres(s) => s.load(),
        }
    }

    /// The stored control state, for inspection (a test): unlike [`Store::load`], it does not move the
    /// revision later writes are checked against.
    fn read(&self) -> Result<Loaded, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.load(),
            Backend::Postgres(s) => Loaded::of(&s.dump(false)?),
        }
    }

    /// Every stored Evidently resource, as (key, JSON), for inspection.
    pub fn evidently(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read().map(|l| l.evidently)
    }

    /// Every stored rollout, for inspection.
    pub fn rollouts(&self) -> Result<Vec<crate::rollout::Rollout>, StoreError> {
        self.read().map(|l| l.rollouts)
    }

    /// Every stored policy, for inspection.
    pub fn policies(&self) -> Result<Vec<StoredPolicy>, StoreError> {
        self.read().map(|l| l.policies)
    }

    /// Writes `rows` in one transaction: all or nothing, on disk on return. With PostgreSQL, refused as
    /// [`StoreError::Stale`] if another instance wrote since this one last loaded or wrote.
    pub fn write(&self, rows: &[Row]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.write(rows),
            Backend::Postgres(s) => s.write(rows),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.meta(key),
            Backend::Postgres(s) => s.meta(key),
        }
    }

    /// Bookkeeping, outside the control state's revision.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.set_meta(key, value),
            Backend::Postgres(s) => s.set_meta(key, value),
        }
    }

    /// The cookie signing key kept in the store, made (32 bytes from the OS generator) on first use; in
    /// a fleet, the first instance's, shared by every other.
    pub fn cookie_key(&self) -> Result<Vec<u8>, StoreError> {
        let made = crate::random::key()
            .map_err(|e| StoreError::Failed(format!("cannot make a cookie key: the OS random generator failed: {e}")))?
            .to_vec();
        match &self.backend {
            Backend::Redb(s) => s.cookie_key(made),
            Backend::Postgres(s) => s.cookie_key(made),
        }
    }

    /// Adds values to their buckets' moments, all in one transaction.
    pub fn add_results(&self, adds: &[(String, f64)]) -> Result<(), StoreError> {
        if adds.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Redb(s) => s.add_results(adds),
            Backend::Postgres(s) => s.add_results(adds),
        }
    }

    /// Every bucket whose key starts with `prefix`.
    pub fn results(&self, prefix: &str) -> Result<Vec<(String, Moments)>, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.results(prefix),
            Backend::Postgres(s) => s.results(prefix),
        }
    }

    /// Whether exposures are shared through this store (a fleet).
    pub fn shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Writes exposures this instance made, for the fleet (PostgreSQL only; the latest per entity and
    /// rule is kept), and forgets those older than `before_ms`.
    pub fn share_exposures(&self, exposures: &[Exposure], before_ms: i64) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(()),
            Backend::Postgres(s) => s.share_exposures(exposures, before_ms),
        }
    }

    /// The latest assignments of `entities` in `project` made at or after `since_ms`, by any instance
    /// (PostgreSQL only).
    pub fn shared_exposures(
        &self,
        project: &str,
        entities: &[String],
        since_ms: i64,
    ) -> Result<Vec<Exposure>, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(Vec::new()),
            Backend::Postgres(s) => s.shared_exposures(project, entities, since_ms),
        }
    }

    /// Shares this instance's guard counts with the fleet (PostgreSQL only): `(distribution, window counts
    /// as JSON)`, under `instance`, a process's id.
    pub fn share_counts(&self, instance: &str, rows: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(()),
            Backend::Postgres(s) => s.share_counts(instance, rows),
        }
    }

    /// Every other instance's shared window counts for `distribution`, as JSON (PostgreSQL only; nothing
    /// for redb).
    pub fn fleet_counts(&self, distribution: &str, except: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(Vec::new()),
            Backend::Postgres(s) => s.fleet_counts(distribution, except),
        }
    }

    /// Takes or renews the lease of the instance that drives the rollouts, for `ttl`: whether `holder`
    /// holds it (always, with redb: one instance owns the store).
    pub fn rollout_lease(&self, holder: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(true),
            Backend::Postgres(s) => s.rollout_lease(holder, ttl),
        }
    }

    /// Whether another instance wrote since this one last loaded or wrote (always `false` for redb,
    /// which one instance owns).
    pub fn behind(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(false),
            Backend::Postgres(s) => s.behind(),
        }
    }

    /// Calls `changed` (on a thread of its own) whenever another instance may have written: on each
    /// notification, and on a periodic revision check that heals a missed one. Nothing for redb.
    pub fn follow(&self, changed: Box<dyn Fn() + Send + Sync>) {
        if let Backend::Postgres(s) = &self.backend {
            s.follow(changed);
        }
    }

    /// The database connection's health (PostgreSQL only).
    pub fn health(&self) -> Option<&Health> {
        match &self.backend {
            Backend::Redb(_) => None,
            Backend::Postgres(s) => Some(s.health()),
        }
    }
}
