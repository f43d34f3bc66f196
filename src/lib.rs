//! edgesplit: a reverse proxy that splits traffic between a primary and a staging origin pool, the way
//! CloudFront continuous deployment does, with an admin listener for operations.
//!
//! # Layout
//! - [`config`]: the TOML file -> validated [`config::Config`], every error as `FILE:LINE:COL: message`.
//! - [`app`]: `Config -> running edgesplit`; the control loop (reload, drain).
//! - [`server`]: client sockets: accept, connection cap, TLS/ALPN, HTTP/1.1 + HTTP/2, timeouts.
//! - [`proxy`]: the request path: distribution, decision, origin, header hygiene, streaming, 502/504.
//! - [`routing`]: the immutable snapshot the request path reads, and the pure decisions over it.
//! - [`edge`]: Evidently decisions evaluated per request and injected as headers.
//! - [`tls`]: certificates, SNI, and the client TLS config towards origins.
//! - [`files`]: bounded, non-blocking reads of the files an operator names (config, PEM).
//! - [`random`]: secrets and unguessable ids from the OS generator.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: atomic counters and the Prometheus text format.
//! - [`telemetry`]: logging and the access log.
//! - [`demo`]: `edgesplit demo`'s origins and config.
//! - [`aws_models`]: `edgesplit install-models`, the Evidently model today's AWS SDKs no longer ship.
//! - [`limits`]: input constraints (lengths, patterns, ranges, enums) generated from the AWS service models.

pub mod admin;
pub mod app;
pub mod aws_models;
pub mod cd;
pub mod config;
pub mod demo;
pub mod domain;
pub mod edge;
pub mod evidently;
pub mod files;
pub mod limits;
pub mod metrics;
pub mod plane;
pub mod proxy;
pub mod random;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
