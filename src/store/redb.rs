//! The embedded backend (redb), for one instance: each write is one transaction committed with fsync.
//! Without `[store] path` it lives in memory: fine for tests and demos, gone at exit.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Dump, Loaded, Row, StoreError, Table};

const POLICIES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("cd_policies");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const EVIDENTLY: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("evidently");
/// Experiment and launch metric moments by series bucket (see `evidently::events::result_key`).
const RESULTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("results");
/// Each [`Table`]'s, in its order.
const ROLLOUTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("rollouts");
const TABLES: [TableDefinition<'_, &str, &[u8]>; 5] = [POLICIES, EVIDENTLY, META, RESULTS, ROLLOUTS];

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

use super::FILE_NAME;

/// `Database::create`, but the file is opened as `files::open_regular_rw` does: a FIFO or a device in
/// its place is refused (redb would block on it, or write to it) instead of opened.
fn open_file(path: &Path) -> Result<Database, StoreError> {
    let cannot = |e: &dyn std::fmt::Display| StoreError::Failed(format!("cannot open {}: {e}", path.display()));
    let file = crate::files::open_regular_rw(path).map_err(|e| StoreError::Failed(e.to_string()))?;
    let backend = redb::backends::FileBackend::new(file).map_err(|e| cannot(&e))?;
    Database::builder().create_with_backend(backend).map_err(|e| cannot(&e))
}

pub(super) struct Redb {
    /// `None` after an I/O error, until the file opens again.
    db: RwLock<Option<Database>>,
    /// The file, to open again after an I/O error; `None` in memory.
    path: Option<PathBuf>,
}

impl Redb {
    /// Opens (or creates) `dir/edgesplit.redb`.
    pub(super) fn open(dir: &Path) -> Result<Redb, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = open_file(&path)?;
        let store = Redb { db: RwLock::new(Some(db)), path: Some(path) };
        store.init()?;
        Ok(store)
    }

    /// A store that lives in memory only.
    pub(super) fn in_memory() -> Result<Redb, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(err)?;
        let store = Redb { db: RwLock::new(Some(db)), path: None };
        store.init()?;
        Ok(store)
    }

    fn init(&self) -> Result<(), StoreError> {
        self.with(|db| {
            let tx = db.begin_write().map_err(err)?;
            // Every table, so that reads find them (a file from before a table was added gets it here).
            for table in TABLES {
                tx.open_table(table).map_err(err)?;
            }
            tx.commit().map_err(err)
        })
    }

    /// Runs `f` on the database. After an I/O error (a full disk, say) redb refuses every later call
    /// until the database is opened again, so a failure here closes and reopens the file (redb repairs
    /// it on open): the call that failed answers its error, and the next ones work as soon as the disk
    /// does, with no restart. While the file cannot be opened, each call tries again first.
    fn with<T>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let closed = self.db.read().unwrap_or_else(PoisonError::into_inner).is_none();
        if closed {
            self.reopen();
        }
        let result = match self.db.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            Some(db) => f(db),
            None => return Err(StoreError::Failed("the database could not be opened again after an I/O error".into())),
        };
        if result.is_err() {
            self.reopen();
        }
        result
    }

    /// Closes the database file and opens it again (not in memory: there is no file).
    fn reopen(&self) {
        let Some(path) = &self.path else { return };
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // Closed first: the file is locked while open.
        *db = None;
        match open_file(path) {
            Ok(reopened) => {
                tracing::warn!(path = %path.display(), "Store reopened after a failure");
                *db = Some(reopened);
            }
            Err(e) => tracing::error!(path = %path.display(), error = %e, "Store cannot be reopened"),
        }
    }

    /// Adds values to their buckets' moments, all in one transaction.
    pub(super) fn add_results(&self, adds: &[(String, f64)]) -> Result<(), StoreError> {
        use crate::evidently::stats::Moments;
        if adds.is_empty() {
            return Ok(());
        }
        self.with(|db| {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut table = tx.open_table(RESULTS).map_err(err)?;
                for (k, x) in adds {
                    let mut m: Moments = match table.get(k.as_str()).map_err(err)? {
                        Some(v) => serde_json::from_slice(v.value()).unwrap_or_default(),
                        None => Moments::default(),
                    };
                    m.add(*x);
                    let bytes = serde_json::to_vec(&m).map_err(err)?;
                    table.insert(k.as_str(), bytes.as_slice()).map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        })
    }

    /// Every bucket whose key starts with `prefix`.
    pub(super) fn results(&self, prefix: &str) -> Result<Vec<(String, crate::evidently::stats::Moments)>, StoreError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(RESULTS).map_err(err)?;
            let mut out = Vec::new();
            for entry in table.range(prefix..).map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                let key = k.value();
                if !key.starts_with(prefix) {
                    break;
                }
                out.push((key.to_string(), serde_json::from_slice(v.value()).unwrap_or_default()));
            }
            Ok(out)
        })
    }

    /// Policies and Evidently resources, read in one transaction.
    pub(super) fn load(&self) -> Result<Loaded, StoreError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(err)?;
            let mut loaded = Loaded::default();
            for entry in tx.open_table(POLICIES).map_err(err)?.iter().map_err(err)? {
                let (_, v) = entry.map_err(err)?;
                loaded.policies.push(serde_json::from_slice(v.value()).map_err(err)?);
            }
            for entry in tx.open_table(EVIDENTLY).map_err(err)?.iter().map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                loaded.evidently.push((k.value().to_string(), v.value().to_vec()));
            }
            let table = tx.open_table(ROLLOUTS).map_err(err)?;
            let rows = table.iter().map_err(err)?.map(|e| e.map(|(k, v)| (k.value().to_string(), v.value().to_vec())));
            let rows = rows.collect::<Result<Vec<_>, _>>().map_err(err)?;
            loaded.rollouts = super::rollouts(rows.iter().map(|(k, v)| (k, v)))?;
            Ok(loaded)
        })
    }

    /// Every table, read in one transaction.
    pub(super) fn dump(&self) -> Result<Dump, StoreError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(err)?;
            let mut dump = Dump::default();
            for (table, definition) in Table::ALL.into_iter().zip(TABLES) {
                for entry in tx.open_table(definition).map_err(err)?.iter().map_err(err)? {
                    let (k, v) = entry.map_err(err)?;
                    dump.tables[table as usize].insert(k.value().to_string(), v.value().to_vec());
                }
            }
            Ok(dump)
        })
    }

    /// Writes `rows` in one transaction: all or nothing, on disk on return.
    pub(super) fn write(&self, rows: &[Row]) -> Result<(), StoreError> {
        self.with(|db| {
            let tx = db.begin_write().map_err(err)?;
            {
                let mut tables = [
                    tx.open_table(POLICIES).map_err(err)?,
                    tx.open_table(EVIDENTLY).map_err(err)?,
                    tx.open_table(META).map_err(err)?,
                    tx.open_table(RESULTS).map_err(err)?,
                    tx.open_table(ROLLOUTS).map_err(err)?,
                ];
                for row in rows {
                    let table = &mut tables[row.table as usize];
                    match &row.value {
                        Some(v) => table.insert(row.key.as_str(), v.as_slice()).map(drop),
                        None => table.remove(row.key.as_str()).map(drop),
                    }
                    .map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        })
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|db| {
            let tx = db.begin_read().map_err(err)?;
            let table = tx.open_table(META).map_err(err)?;
            Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
        })
    }

    pub(super) fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(&[Row { table: Table::Meta, key: key.to_string(), value: Some(value.to_vec()) }])
    }

    /// The stored cookie key, or `made` once stored.
    pub(super) fn cookie_key(&self, made: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if let Some(k) = self.meta("cookie_key")? {
            return Ok(k);
        }
        self.set_meta("cookie_key", &made)?;
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cd::model::{PolicyConfig, StoredPolicy};

    #[test]
    fn policies_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let p = StoredPolicy {
            id: "p1".into(),
            etag: "E1".into(),
            last_modified_ms: 5,
            config: PolicyConfig { staging_dns_names: vec!["s".into()], enabled: true, traffic: None },
            epoch: 0,
        };
        let key = {
            let s = Redb::open(dir.path()).unwrap();
            s.write(&[Row::policy(&p)]).unwrap();
            s.cookie_key(crate::random::key().unwrap().to_vec()).unwrap()
        };
        let s = Redb::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap().policies, vec![p]);
        assert_eq!(s.cookie_key(crate::random::key().unwrap().to_vec()).unwrap(), key);
        // 32 bytes from the OS generator: not zero, and another store makes another key.
        assert_eq!(key.len(), 32);
        assert_ne!(key, [0u8; 32]);
        assert_ne!(Redb::in_memory().unwrap().cookie_key(crate::random::key().unwrap().to_vec()).unwrap(), key);
        // Rows of several tables in one write.
        let resource = Row { table: Table::Evidently, key: "project/x".into(), value: Some(b"{}".to_vec()) };
        let delete = Row { table: Table::Policies, key: "p1".into(), value: None };
        s.write(&[delete, resource]).unwrap();
        let loaded = s.load().unwrap();
        assert!(loaded.policies.is_empty());
        assert_eq!(loaded.evidently, vec![("project/x".to_string(), b"{}".to_vec())]);
    }

    #[test]
    fn a_closed_database_is_opened_again_by_the_next_call() {
        // What a failed reopen leaves behind (see `with`): the next call opens the file again first.
        // Regression: after one failed write every later call failed until restart.
        let dir = tempfile::tempdir().unwrap();
        let s = Redb::open(dir.path()).unwrap();
        s.set_meta("k", b"v").unwrap();
        *s.db.write().unwrap() = None;
        assert_eq!(s.meta("k").unwrap().as_deref(), Some(&b"v"[..]));
        s.set_meta("k", b"w").unwrap();
        assert_eq!(s.meta("k").unwrap().as_deref(), Some(&b"w"[..]));
    }
}
