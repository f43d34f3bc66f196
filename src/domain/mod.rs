//! The domain layer: pure rules and types with no I/O, below everything else. Nothing here imports
//! another layer of the crate.
//!
//! - [`decision`]: Target, Reason, Decision: which pool serves a request, and why.
//! - [`clock`]: the wall clock.
//! - [`text`]: strict percent-decoding.

pub mod clock;
pub mod decision;
pub mod error;
pub mod text;

pub use decision::{Decision, Reason, Target};
