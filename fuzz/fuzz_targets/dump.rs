//! Fuzz target `dump`: a state dump, as `edgesplit import` reads it from a file and a fleet instance
//! reads its last-known-good copy at start (`edgesplit::store::Dump::decode`).
//!
//! Invariants, checked on every input:
//! 1. `decode` never panics: a document is `Ok` or an error with a message.
//! 2. An accepted dump encodes, and the encoding decodes to the same dump (documents byte for byte).
//! 3. Importing it into an empty in-memory store either writes all of it (an export gives it back) or
//!    refuses it and writes nothing.
//!
//! Input: the file's bytes.
#![no_main]

use edgesplit::store::{Dump, Store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dump = match Dump::decode(data) {
        Ok(dump) => dump,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    let encoded = dump.encode().expect("a decoded dump encodes");
    assert_eq!(Dump::decode(&encoded).as_ref(), Ok(&dump), "round trip through {}", String::from_utf8_lossy(&encoded));
    let store = Store::in_memory().unwrap();
    let mut stored = match store.import(&dump) {
        Ok(()) => store.dump().unwrap(),
        Err(_) => {
            assert!(store.dump().unwrap().rows().next().is_none(), "a refused import wrote");
            return;
        }
    };
    // redb keeps no revision.
    stored.revision = dump.revision;
    assert_eq!(stored, dump);
});
