//! edgesplit: a reverse proxy that splits traffic between a primary and a staging origin pool, the way
//! CloudFront continuous deployment does, with an admin listener for operations.
//!
//! # Layers
//! Each layer imports only from itself and the layers above it in this list; `tests/layers.rs` holds the
//! code to it, with no exceptions, and fails on any import cycle between top-level modules.
//!
//! 1. **Domain**, pure rules and types, no I/O:
//!    [`domain`] (routing decisions, the domain's errors, the clock, percent-decoding), [`cd`] (CloudFront
//!    continuous deployment: policy model, rules, the signed session cookie and every `Set-Cookie`),
//!    [`evidently`] (the Evidently model, request decoding, ARNs, error shapes, segment patterns,
//!    evaluation engine, exposures, events and statistics), [`limits`] (input constraints generated
//!    from the AWS service models), [`rollout`] (guarded rollouts: the spec, the state machine, the guards' statistics).
//! 2. **Support**: [`files`] (bounded, non-blocking reads of operator files), [`random`] (secrets and
//!    ids from the OS generator), [`tls`] (certificates, SNI, client TLS), [`metrics`] (atomic counters,
//!    every line of `/metrics`), [`aws_models`] (`edgesplit install-models`).
//! 3. **Config**: [`config`], the TOML file to a validated [`config::Config`], every error as
//!    `FILE:LINE:COL: message`.
//! 4. **Control plane**: [`plane`] (the state under one lock; typed commands applied by pure rules,
//!    `Plane::execute` the one writer; compiling and publishing the [`plane::Snapshot`]), [`store`]
//!    (redb or PostgreSQL, one transaction per command), [`routing`] (the routing table compiled into the snapshot).
//! 5. **Data plane**, reading the snapshot only: [`server`] (accept, connection cap, TLS/ALPN, HTTP/1.1 +
//!    HTTP/2, the watchdog), [`proxy`] (the request path, the origin pool), [`edge_evidently`]
//!    (Evidently evaluated per request and injected as headers).
//!    **Wire**, beside it: [`admin`] (the admin listener: `/healthz`, `/readyz`, `/metrics`, SigV4, the
//!    CloudFront restXml and Evidently restJson APIs, which decode, run a command and encode).
//! 6. **App**: [`app`] (`Config -> running edgesplit`, the control loop: reload, drain), [`demo`],
//!    [`telemetry`] (logging, the access log), [`cli`] (`edgesplit rollout`: signed calls to the admin
//!    API's rollout endpoints, and their report); `main.rs` parses flags.

pub mod admin;
pub mod app;
pub mod aws_models;
pub mod cd;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod edge_evidently;
pub mod evidently;
pub mod files;
pub mod limits;
pub mod metrics;
pub mod plane;
pub mod proxy;
pub mod random;
pub mod rollout;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
