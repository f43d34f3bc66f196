//! Fuzz target `commands`: sequences of typed control-plane commands (`edgesplit::plane::command`), run
//! through `Plane::execute` on a fresh plane over an in-memory store, with the state's invariants
//! checked under the plane's lock after every command.
//!
//! The interpreter (bytes to commands) and the invariants live in `tests/support/command_driver.rs`,
//! shared with `tests/commands.rs`, which runs the same driver in `cargo test` on the seeds and on
//! 300 fixed-seed programs. Read that file for the invariants and the input's layout: 12-byte
//! records (a kind, then its arguments), at most 32 of them. The seeds in `fuzz/corpus/commands` run
//! launches (`launches`) and experiments (`experiments`) through their lives into every quota and
//! D6's refusals, and features through their updates (`features`).
#![no_main]

#[path = "../../tests/support/command_driver.rs"]
mod driver;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    driver::run(&driver::plane(), data, &mut driver::Tally::default());
});
