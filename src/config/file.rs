//! The serde mirror of the TOML file. Every table denies unknown keys; values keep their spans so that
//! validation can point at `FILE:LINE:COL`.

use serde::Deserialize;
use toml::Spanned;

/// One `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileListener {
    pub name: Option<Spanned<String>>,
    pub listen: Spanned<String>,
    /// Certificate/key pairs; present means HTTPS. The first pair is the default when SNI matches none.
    #[serde(default)]
    pub tls: Vec<FileCertificate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCertificate {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAdmin {
    pub listen: Option<Spanned<String>>,
    /// The account id in ARNs the APIs return (12 digits).
    pub account_id: Option<Spanned<String>>,
    /// The region in ARNs the APIs return.
    pub region: Option<Spanned<String>>,
    /// `"sigv4"` (default): every API call must carry an AWS Signature Version 4; `"none"`: anyone.
    pub auth: Option<Spanned<String>>,
    pub access_key_id: Option<Spanned<String>>,
    pub secret_access_key: Option<Spanned<String>>,
    /// The name of an environment variable holding the secret access key.
    pub secret_access_key_env: Option<Spanned<String>>,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    pub metrics_token: Option<Spanned<String>>,
    pub metrics_token_env: Option<Spanned<String>>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileStore {
    /// `redb` (default) or `postgres`.
    pub backend: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    /// PostgreSQL: the connection URL, inline or in an environment variable.
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    /// PostgreSQL: `disable`, `require` (TLS, server certificate checked against `ca_file` or the
    /// system's roots) .
    pub tls: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub pool_size: Option<Spanned<usize>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub statement_timeout: Option<Spanned<String>>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLog {
    pub level: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub access_log: Option<bool>,
}

/// `[timeouts]`: every value is a humantime duration such as `"500ms"`, `"10s"` or `"2m"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTimeouts {
    pub client_header: Option<Spanned<String>>,
    pub client_idle: Option<Spanned<String>>,
    pub client_send: Option<Spanned<String>>,
    pub upstream_connect: Option<Spanned<String>>,
    pub upstream_response: Option<Spanned<String>>,
    pub upstream_read: Option<Spanned<String>>,
    pub upstream_idle: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub config_poll: Option<Spanned<String>>,
    pub rollout_interval: Option<Spanned<String>>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimits {
    pub max_connections: Option<Spanned<i64>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
    pub workers: Option<Spanned<i64>>,
}

/// `[upstream]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstream {
    pub ca_file: Option<Spanned<String>>,
    pub pool_max_idle_per_host: Option<Spanned<i64>>,
    pub max_connections_per_origin: Option<Spanned<i64>>,
    pub unhealthy_for: Option<Spanned<String>>,
}

/// `[[distribution]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDistribution {
    pub id: Spanned<String>,
    pub domains: Spanned<Vec<Spanned<String>>>,
    pub primary: Spanned<FilePool>,
    pub staging: Option<Spanned<FilePool>>,
    pub staging_dns_name: Option<Spanned<String>>,
    /// Pins an API-managed policy by id (CloudFront's `ContinuousDeploymentPolicyId`).
    pub continuous_deployment_policy_id: Option<Spanned<String>>,
    /// A policy written in the file, owned by this distribution.
    pub policy: Option<Spanned<FilePolicy>>,
    /// Evidently decisions made at the edge and injected as request headers.
    pub evidently: Option<Spanned<FileEdgeEvidently>>,
    /// A guarded rollout of the distribution's policy: the API's rollout spec, in TOML.
    pub rollout: Option<Spanned<crate::rollout::Spec>>,
}

/// `[distribution.evidently]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEdgeEvidently {
    pub project: Spanned<String>,
    /// Where the entity id comes from, in order of preference: `"cookie:NAME"` or `"header:NAME"`.
    #[serde(default)]
    pub entity: Vec<Spanned<String>>,
    /// The cookie edgesplit issues when no source has an id (default `edgesplit-entity`).
    pub entity_cookie: Option<Spanned<String>>,
    pub entity_cookie_max_age: Option<Spanned<String>>,
    /// Also send the injected headers back on the response (debugging).
    pub response_headers: Option<bool>,
    /// Evaluation context: key -> `"header:NAME"`, `"query:NAME"`, `"path"`, `"method"` or `"client_ip"`.
    #[serde(default)]
    pub context: std::collections::BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub features: Vec<Spanned<FileEdgeFeature>>,
    /// Feature-driven routing (replaces the continuous deployment policy).
    pub route: Option<Spanned<FileEdgeRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEdgeFeature {
    pub feature: Spanned<String>,
    pub header: Option<Spanned<String>>,
    pub value_header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEdgeRoute {
    pub feature: Spanned<String>,
    pub staging_variations: Spanned<Vec<String>>,
}

/// `[distribution.policy]`: CloudFront's ContinuousDeploymentPolicyConfig, flattened.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePolicy {
    pub enabled: Option<bool>,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub weight: Option<Spanned<f64>>,
    pub idle_ttl: Option<Spanned<i64>>,
    pub maximum_ttl: Option<Spanned<i64>>,
    pub header: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
}

/// `[continuous_deployment]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileContinuousDeployment {
    pub max_policies: Option<Spanned<i64>>,
    pub cookie_name: Option<Spanned<String>>,
    pub cookie_key: Option<Spanned<String>>,
    pub cookie_key_env: Option<Spanned<String>>,
    pub cache_control_private: Option<bool>,
    pub cookie_refresh: Option<Spanned<String>>,
}

/// An origin pool: `[distribution.primary]` or `[distribution.staging]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePool {
    pub origins: Spanned<Vec<Spanned<String>>>,
    /// Host header sent to these origins instead of the client's.
    pub host: Option<Spanned<String>>,
    /// `"http1"` (default) or `"http2"`.
    pub protocol: Option<Spanned<String>>,
}

/// `[evidently]`: the service quotas, as configurable defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEvidently {
    pub max_projects: Option<Spanned<i64>>,
    pub max_segments: Option<Spanned<i64>>,
    pub max_features_per_project: Option<Spanned<i64>>,
    pub max_launches_per_project: Option<Spanned<i64>>,
    pub max_running_launches_per_project: Option<Spanned<i64>>,
    pub max_experiments_per_project: Option<Spanned<i64>>,
    pub max_running_experiments_per_project: Option<Spanned<i64>>,
    pub max_exposures: Option<Spanned<i64>>,
    /// Resources declared in the file (GitOps): each entry is the API's create request, in TOML.
    #[serde(default)]
    pub projects: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub segments: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub features: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub launches: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub experiments: Vec<Spanned<toml::Table>>,
}
