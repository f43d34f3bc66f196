//! Everything a store holds, as one JSON document: what `edgesplit export` prints and `edgesplit import`
//! reads (moving from redb to PostgreSQL, or back), and the shape of a fleet instance's last-known-good
//! copy of the shared state (`[store] path`, see [`super::postgres`]).
//!
//! ```json
//! { "format": "edgesplit-state/1", "revision": 42,
//!   "policies": { "<id>": { ...the stored policy... } },
//!   "evidently": { "<key>": { ...the stored resource... } },
//!   "meta": { "cookie_key": "<base64>", ... },
//!   "results": { "<bucket>": { ...moments... } } }
//! ```
//!
//! Documents are carried byte for byte (as raw JSON), so an import stores exactly what was exported.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Row, StoreError, Table};

/// The format's name and version, first in every dump.
const FORMAT: &str = "edgesplit-state/1";
/// The largest dump read back (a store at every quota is a few tens of MiB).
pub const DUMP_CAP: u64 = 1 << 30;

/// Every row of a store, by table, and the revision they make up (PostgreSQL's; 0 for redb).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dump {
    pub revision: u64,
    /// Indexed by [`Table`] (`Table::X as usize`).
    pub tables: [BTreeMap<String, Vec<u8>>; 5],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: String,
    revision: u64,
    policies: BTreeMap<String, Box<RawValue>>,
    evidently: BTreeMap<String, Box<RawValue>>,
    meta: BTreeMap<String, String>,
    #[serde(default)]
    results: BTreeMap<String, Box<RawValue>>,
    #[serde(default)]
    rollouts: BTreeMap<String, Box<RawValue>>,
}

impl Dump {
    /// The dump of `rows` (each a put) at `revision`.
    pub fn of(revision: u64, rows: impl IntoIterator<Item = Row>) -> Dump {
        let mut dump = Dump { revision, ..Dump::default() };
        dump.apply(rows);
        dump
    }

    /// Puts and deletes `rows`.
    pub fn apply(&mut self, rows: impl IntoIterator<Item = Row>) {
        for row in rows {
            let table = &mut self.tables[row.table as usize];
            match row.value {
                Some(v) => table.insert(row.key, v),
                None => table.remove(&row.key),
            };
        }
    }

    /// Every row, as puts, table by table.
    pub fn rows(&self) -> impl Iterator<Item = Row> + '_ {
        Table::ALL.into_iter().flat_map(move |table| {
            self.tables[table as usize].iter().map(move |(k, v)| Row { table, key: k.clone(), value: Some(v.clone()) })
        })
    }

    /// Whether it holds no control state (policies, Evidently resources) and no results.
    pub fn is_empty(&self) -> bool {
        [Table::Policies, Table::Evidently, Table::Results, Table::Rollouts]
            .iter()
            .all(|t| self.tables[*t as usize].is_empty())
    }

    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let raw = |table: Table| -> Result<BTreeMap<String, Box<RawValue>>, StoreError> {
            self.tables[table as usize]
                .iter()
                .map(|(k, v)| {
                    let text = String::from_utf8(v.clone())
                        .map_err(|_| StoreError::Failed(format!("{} `{k}` is not UTF-8", table.name())))?;
                    let json = RawValue::from_string(text)
                        .map_err(|e| StoreError::Failed(format!("{} `{k}` is not JSON: {e}", table.name())))?;
                    Ok((k.clone(), json))
                })
                .collect()
        };
        let wire = Wire {
            format: FORMAT.to_string(),
            revision: self.revision,
            policies: raw(Table::Policies)?,
            evidently: raw(Table::Evidently)?,
            meta: self.tables[Table::Meta as usize].iter().map(|(k, v)| (k.clone(), STANDARD.encode(v))).collect(),
            results: raw(Table::Results)?,
            rollouts: raw(Table::Rollouts)?,
        };
        let mut out = serde_json::to_vec_pretty(&wire).map_err(|e| StoreError::Failed(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Reads a dump; the error says what is wrong, with serde's line and column.
    pub fn decode(bytes: &[u8]) -> Result<Dump, String> {
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| format!("not an edgesplit state dump: {e}"))?;
        if wire.format != FORMAT {
            return Err(format!("format `{}` is not `{FORMAT}`", wire.format));
        }
        let raw = |m: BTreeMap<String, Box<RawValue>>| -> BTreeMap<String, Vec<u8>> {
            m.into_iter().map(|(k, v)| (k, v.get().as_bytes().to_vec())).collect()
        };
        let mut meta = BTreeMap::new();
        for (k, v) in wire.meta {
            let bytes = STANDARD.decode(&v).map_err(|e| format!("meta `{k}` is not base64: {e}"))?;
            meta.insert(k, bytes);
        }
        Ok(Dump {
            revision: wire.revision,
            tables: [raw(wire.policies), raw(wire.evidently), meta, raw(wire.results), raw(wire.rollouts)],
        })
    }

    /// Reads the dump at `path`; `Ok(None)` if there is none.
    pub fn read(path: &Path) -> Result<Option<Dump>, String> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let bytes = crate::files::read(path, DUMP_CAP).map_err(|e| e.to_string())?;
        Dump::decode(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the dump to `path` whole or not at all: to a temporary file beside it, synced, then
    /// renamed over it (and the directory synced), so a crash leaves the old copy or the new one.
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        use std::io::Write;
        let fail = |e: std::io::Error| StoreError::Failed(format!("cannot write {}: {e}", path.display()));
        let bytes = self.encode()?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dump {
        let put = |table, key: &str, value: &[u8]| Row { table, key: key.into(), value: Some(value.to_vec()) };
        Dump::of(
            7,
            [
                put(Table::Policies, "E1", br#"{"id":"E1","weight":0.15}"#),
                put(Table::Evidently, "project/p", br#"{"name":"p","t":1733000000.123456789}"#),
                put(Table::Meta, "cookie_key", &[0, 255, 10, 13]),
                put(Table::Results, "x/m/a/1", br#"{"n":3,"sum":6.0,"sum_sq":14.0}"#),
            ],
        )
    }

    #[test]
    fn a_dump_reads_back_byte_for_byte() {
        let dump = sample();
        let back = Dump::decode(&dump.encode().unwrap()).unwrap();
        assert_eq!(back, dump);
        assert!(!back.is_empty());
        assert_eq!(back.rows().count(), 4);
    }

    #[test]
    fn a_dump_that_is_not_one_is_refused_with_its_reason() {
        for (text, expected) in [
            ("[]", "not an edgesplit state dump"),
            (
                r#"{"format":"other/9","revision":0,"policies":{},"evidently":{},"meta":{}}"#,
                "is not `edgesplit-state/1`",
            ),
            (
                r#"{"format":"edgesplit-state/1","revision":0,"policies":{},"evidently":{},"meta":{"k":"%%"}}"#,
                "meta `k` is not base64",
            ),
            (
                r#"{"format":"edgesplit-state/1","revision":0,"policies":{},"evidently":{},"meta":{},"extra":1}"#,
                "unknown field",
            ),
            ("{\"format\":\"edgesplit-state/1\",\n\"revision\":-1}", "line 2"),
        ] {
            let e = Dump::decode(text.as_bytes()).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn a_dump_is_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.json");
        assert_eq!(Dump::read(&path).unwrap(), None);
        sample().write(&path).unwrap();
        assert_eq!(Dump::read(&path).unwrap(), Some(sample()));
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, b"{").unwrap();
        assert!(Dump::read(&path).unwrap_err().contains("copy.json"));
    }
}
