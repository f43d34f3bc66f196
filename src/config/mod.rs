//! Configuration: `edgesplit.toml` -> [`file`] (serde mirror, spans kept) -> [`Config`] (validated runtime
//! types). Every problem in a file is reported at once, each as `FILE:LINE:COL: message`.
//!
//! Which settings apply on reload: everything but `[admin]`, `[store]`, `[log]` and
//! `limits.max_connections`, which are read once at start (the log says so when they change).
//! Listeners are rebound only when the set of listen addresses changes; a listener whose address stays
//! picks up new TLS certificates and timeouts for its next connection.

mod file;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue};

pub use validate::{parse, parse_to_run};

/// A validated configuration, ready to compile into a routing snapshot.
#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    pub admin_listen: SocketAddr,
    /// Account id and region written into ARNs (`[admin] account_id`, `region`).
    pub account_id: String,
    pub region: String,
    /// Who may call the admin API and read `/metrics` (`[admin] auth`, keys, `metrics_token`).
    pub admin_auth: AdminAuth,
    pub store_path: Option<PathBuf>,
    /// `[store] backend = "postgres"`: the fleet store.
    pub postgres: Option<PostgresConfig>,
    pub log: LogConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub upstream: UpstreamConfig,
    pub distributions: Vec<DistributionConfig>,
    pub cd: CdConfig,
    pub quotas: EvidentlyQuotas,
    /// Evidently resources declared in the file, in the order they are applied.
    pub declared: Vec<Declared>,
}

/// `[admin] auth`: how admin API calls are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAuthMode {
    /// AWS Signature Version 4 with the configured key (the default).
    SigV4,
    /// No check at all: anyone who reaches the admin listener may call the API (local development).
    None,
}

/// One access key pair the admin API accepts SigV4 signatures from.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey").field("id", &self.id).field("secret", &"..").finish()
    }
}

/// `[admin]` authentication, validated. Read at start only, like the rest of `[admin]`.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminAuth {
    pub mode: AdminAuthMode,
    /// The key pair SigV4 signatures must verify against. `None` with [`AdminAuthMode::SigV4`] happens
    /// only through [`parse`] (which [`load`] refuses): every API call is then refused.
    pub credentials: Option<AccessKey>,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuth")
            .field("mode", &self.mode)
            .field("credentials", &self.credentials)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| ".."))
            .finish()
    }
}

/// What kind of Evidently resource a declaration makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclaredKind {
    Project,
    Segment,
    Feature,
    Launch,
    Experiment,
}

impl DeclaredKind {
    pub fn table(self) -> &'static str {
        match self {
            DeclaredKind::Project => "evidently.projects",
            DeclaredKind::Segment => "evidently.segments",
            DeclaredKind::Feature => "evidently.features",
            DeclaredKind::Launch => "evidently.launches",
            DeclaredKind::Experiment => "evidently.experiments",
        }
    }
}

/// One Evidently resource declared in the file: the API request body as JSON, and where it was written
/// (so an error applying it points at the file).
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub kind: DeclaredKind,
    /// The project, for features, launches and experiments.
    pub project: Option<String>,
    pub name: String,
    pub body: serde_json::Value,
    /// Launches and experiments: start them (`status = "RUNNING"`).
    pub running: bool,
    /// Experiments started from the file end their analysis this long after the start.
    pub at: ConfigError,
}

/// `[evidently]`: Evidently's service quotas (spec 2.9), whose defaults these are; past one, the API
/// answers ServiceQuotaExceededException (402).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidentlyQuotas {
    pub projects: usize,
    pub segments: usize,
    pub features_per_project: usize,
    pub launches_per_project: usize,
    pub running_launches_per_project: usize,
    pub experiments_per_project: usize,
    pub running_experiments_per_project: usize,
    /// Experiment and launch assignments kept in memory (an hour at most) for attributing events.
    pub exposures: usize,
}

/// `[continuous_deployment]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdConfig {
    /// CloudFront's TooManyContinuousDeploymentPolicies limit.
    pub max_policies: usize,
    pub cookie_name: String,
    /// The stickiness cookie's signing key; `None` means the one generated once and kept in the store.
    pub cookie_key: Option<Vec<u8>>,
    pub cache_control_private: bool,
    /// D3's refresh granularity: a session's cookie is re-issued once its `last seen` is this old.
    pub cookie_refresh: Duration,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    pub addr: SocketAddr,
    /// Present for HTTPS listeners: certificates loaded and checked, ALPN `h2`, `http/1.1`.
    pub tls: Option<TlsConfig>,
}

#[derive(Clone)]
pub struct TlsConfig {
    pub server_config: Arc<rustls::ServerConfig>,
    /// The (cert, key) files it came from, for logs.
    pub files: Vec<(PathBuf, PathBuf)>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").field("files", &self.files).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or `edgesplit=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
}

/// `[store] backend = "postgres"`: where the fleet's shared state lives, and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection URL (`postgres://user:password@host:port/db`), secrets included: never printed.
    pub url: String,
    /// TLS to the database: off (`disable`), or required with the server's certificate checked against
    /// `ca_file` (PEM) or, without one, the system's roots.
    pub tls: Option<Option<PathBuf>>,
    /// Most connections the pool opens.
    pub pool_size: usize,
    /// A connection attempt, and a wait for a free connection from the pool.
    pub connect_timeout: std::time::Duration,
    /// Any one statement (and the whole of a store call).
    pub statement_timeout: std::time::Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<secret>")
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// The database file the embedded store keeps in `[store] path`.
pub const STORE_FILE_NAME: &str = "edgesplit.redb";
/// With `backend = "postgres"`, the last-known-good copy of the fleet's state in `[store] path`.
pub const COPY_FILE_NAME: &str = "last-known-good.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time a client may take to send a request head, counted from its first byte.
    pub client_header: Duration,
    /// Longest time a client connection may sit with no request in flight and no byte received.
    pub client_idle: Duration,
    /// Longest time a response may wait on a client that does not take its bytes (a stalled reader, a
    /// closed HTTP/2 window): past it the response is aborted and its origin connection closed.
    pub client_send: Duration,
    pub upstream_connect: Duration,
    /// Longest wait for an origin's response head once the request is sent: 504 past it.
    pub upstream_response: Duration,
    /// Longest wait for the next bytes of an origin's response body (nginx's `proxy_read_timeout`):
    /// past it the response is cut short and the origin connection closed.
    pub upstream_read: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub upstream_idle: Duration,
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    pub shutdown_grace: Duration,
    /// How often the config file is checked for changes (0 turns polling off; SIGHUP still reloads).
    pub config_poll: Duration,
    /// How often guarded rollouts are evaluated (their guards read, their steps advanced).
    pub rollout_interval: Duration,
}

/// `limits.max_headers` when unset: hyper's own default, which lets hyper parse heads into an inline array.
pub(crate) const DEFAULT_MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    /// Largest request head (HTTP/1.1) or header list (HTTP/2) accepted; larger is 431.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Data-plane threads; 0 means one per core.
    pub workers: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub ca_file: Option<PathBuf>,
    pub pool_max_idle_per_host: usize,
    /// Exchanges in progress with one HTTP/1.1 origin, per worker; a request past it is answered 503.
    pub max_connections_per_origin: usize,
    /// How long an origin that refused a connection is skipped (passive health).
    pub unhealthy_for: Duration,
}

#[derive(Debug, Clone)]
pub struct DistributionConfig {
    pub id: String,
    /// Lower-case host names, `*.suffix` wildcards, or `*` for the default distribution.
    pub domains: Vec<String>,
    pub primary: PoolConfig,
    pub staging: Option<PoolConfig>,
    pub staging_dns_name: Option<String>,
    /// A policy pinned by id (`continuous_deployment_policy_id`).
    pub policy_id: Option<String>,
    /// A policy written in the file (`[distribution.policy]`).
    pub inline_policy: Option<crate::cd::model::PolicyConfig>,
    /// Evidently decisions at the edge (`[distribution.evidently]`).
    pub edge: Option<EdgeEvidently>,
    /// A guarded rollout declared in the file (`[distribution.rollout]`).
    pub rollout: Option<DeclaredRollout>,
}

/// `[distribution.rollout]`: a rollout spec, checked, and where it is written (for the errors the store's
/// state gives it when it is started).
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredRollout {
    pub spec: crate::rollout::Spec,
    pub at: ConfigError,
}

/// Where the entity id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntitySource {
    Cookie(String),
    Header(HeaderName),
}

/// A request attribute that goes into the evaluation context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextAttr {
    Header(HeaderName),
    Query(String),
    Path,
    Method,
    ClientIp,
}

/// `[distribution.evidently]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeEvidently {
    pub project: String,
    pub entity: Vec<EntitySource>,
    pub entity_cookie: String,
    pub entity_cookie_max_age: Duration,
    pub response_headers: bool,
    pub context: Vec<(String, ContextAttr)>,
    pub features: Vec<EdgeFeature>,
    pub route: Option<EdgeRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeFeature {
    pub feature: String,
    pub header: HeaderName,
    pub value_header: Option<HeaderName>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRoute {
    pub feature: String,
    pub staging_variations: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub origins: Vec<OriginUrl>,
    pub host: Option<HeaderValue>,
    pub protocol: UpstreamProtocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    Http2,
}

/// One origin server, `http://` or `https://` with an authority and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl fmt::Display for OriginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// One problem in a config file, positioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The bytes of a config file, read as [`crate::files::read`] does: a regular file of at most
/// [`crate::files::CONFIG_CAP`] bytes, never blocking (the control loop polls the file with it).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, crate::files::FileError> {
    crate::files::read(path, crate::files::CONFIG_CAP)
}

/// Reads and validates a config file that is to be run: [`parse_to_run`], so the admin API must have
/// credentials (or `auth = "none"`). The file is read by `read_file`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let unreadable = |message: String| ConfigErrors(vec![ConfigError { file: name.clone(), line: 1, col: 1, message }]);
    let bytes = read_file(path).map_err(|e| unreadable(format!("cannot read config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        unreadable(format!("cannot read config file: it is not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
    })?;
    parse_to_run(&text, &name, path.parent().unwrap_or(Path::new(".")))
}
