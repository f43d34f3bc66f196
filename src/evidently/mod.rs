//! Evidently, self-hosted: the resource model and its rules ([`model`]), the segment pattern language
//! ([`pattern`]), bucketing and the evaluation engine ([`engine`]). Pure and synchronous: no HTTP here.

pub mod arn;
pub mod compile;
pub mod engine;
pub mod errors;
pub mod events;
pub mod exposure;
pub mod input;
pub mod model;
pub mod pattern;
pub(crate) mod stats;
