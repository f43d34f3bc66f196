//! `FILE text -> Config`: parse with error recovery, deserialize each section and list element on its own
//! so one bad value does not hide the next, then check every rule, collecting all problems.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderValue;
use http::uri::{Scheme, Uri};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::file::*;
use super::*;

/// Collects problems with their byte spans; turns them into `FILE:LINE:COL` at the end.
struct Problems<'a> {
    text: &'a str,
    file: &'a str,
    list: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    fn add(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.list.push(ConfigError { file: self.file.to_string(), line, col, message: message.into() });
    }

    fn toml(&mut self, e: toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        self.add(span, e.message().trim().to_string());
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

fn de<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, p: &mut Problems<'_>) -> Option<T> {
    T::deserialize(ValueDeserializer::from(value)).map_err(|e| p.toml(e)).ok()
}

/// Each element of an array of tables on its own, so every broken element is reported.
fn de_list<T: DeserializeOwned>(key: &str, value: Spanned<DeValue<'_>>, p: &mut Problems<'_>) -> Vec<T> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items.into_iter().filter_map(|item| de(item, p)).collect(),
        _ => {
            p.add(span, format!("`{key}` must be an array of tables: write it as [[{key}]]"));
            Vec::new()
        }
    }
}

#[derive(Default)]
struct FileConfig {
    listeners: Vec<FileListener>,
    distributions: Vec<FileDistribution>,
    admin: FileAdmin,
    /// Where `admin` is named (the `[admin]` header), for errors about the table as a whole.
    admin_at: Option<Range<usize>>,
    /// `[admin]` did not deserialize (already reported): say nothing more about it.
    admin_broken: bool,
    store: FileStore,
    log: FileLog,
    timeouts: FileTimeouts,
    limits: FileLimits,
    upstream: FileUpstream,
    cd: FileContinuousDeployment,
    evidently: FileEvidently,
}

const TOP_KEYS: &str =
    "listener, distribution, admin, store, log, timeouts, limits, upstream, continuous_deployment, evidently";

fn read_file_config(root: DeTable<'_>, p: &mut Problems<'_>) -> FileConfig {
    let mut fc = FileConfig::default();
    for (key, value) in root {
        let span = key.span();
        match key.get_ref().as_ref() {
            "listener" => fc.listeners = de_list("listener", value, p),
            "distribution" => fc.distributions = de_list("distribution", value, p),
            "admin" => {
                fc.admin_at = Some(span);
                match de(value, p) {
                    Some(a) => fc.admin = a,
                    None => fc.admin_broken = true,
                }
            }
            "store" => fc.store = de(value, p).unwrap_or_default(),
            "log" => fc.log = de(value, p).unwrap_or_default(),
            "timeouts" => fc.timeouts = de(value, p).unwrap_or_default(),
            "limits" => fc.limits = de(value, p).unwrap_or_default(),
            "upstream" => fc.upstream = de(value, p).unwrap_or_default(),
            "continuous_deployment" => fc.cd = de(value, p).unwrap_or_default(),
            "evidently" => fc.evidently = de(value, p).unwrap_or_default(),
            other => p.add(span, format!("unknown key `{other}`, expected one of {TOP_KEYS}")),
        }
    }
    fc
}

/// Parses and validates config text. `file` names it in errors; relative paths (certificates, CA file,
/// store) are taken from `base_dir`.
///
/// It does not insist on admin API credentials: a config without them (and without `auth = "none"`)
/// parses, and its admin API refuses every call. That suits code that only compiles a config. A file
/// that is run goes through [`parse_to_run`] (what [`super::load`] does), which reports them missing.
pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, file, base_dir, false)
}

/// [`parse`], plus the rules that only matter to a process that serves the config: today, that the
/// admin API has credentials or says `auth = "none"`.
pub fn parse_to_run(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, file, base_dir, true)
}

fn parse_with(text: &str, file: &str, base_dir: &Path, to_run: bool) -> Result<Config, ConfigErrors> {
    let mut p = Problems { text, file, list: Vec::new() };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            p.toml(e);
        }
        // The recoverable parser does not report in text order; `check` prints top to bottom.
        p.list.sort_by_key(|e| (e.line, e.col));
        return Err(ConfigErrors(p.list));
    }
    let fc = read_file_config(root.into_inner(), &mut p);
    if to_run {
        require_admin_credentials(&fc, &mut p);
    }
    let config = validate(fc, base_dir, &mut p);
    if p.list.is_empty() {
        Ok(config)
    } else {
        p.list.sort_by_key(|e| (e.line, e.col));
        Err(ConfigErrors(p.list))
    }
}

fn duration(v: &Option<Spanned<String>>, default: Duration, allow_zero: bool, p: &mut Problems<'_>) -> Duration {
    let Some(v) = v else { return default };
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) if d.is_zero() && !allow_zero => {
            p.add(v.span(), "must be longer than zero");
            default
        }
        Ok(d) => d,
        Err(e) => {
            p.add(
                v.span(),
                format!("`{}` is not a duration ({e}); write for example \"500ms\", \"10s\" or \"2m\"", v.get_ref()),
            );
            default
        }
    }
}

fn count(v: &Option<Spanned<i64>>, default: usize, range: Range<i64>, p: &mut Problems<'_>) -> usize {
    let Some(v) = v else { return default };
    let n = *v.get_ref();
    if range.contains(&n) {
        n as usize
    } else {
        p.add(v.span(), format!("{n} is out of range: must be at least {} and below {}", range.start, range.end));
        default
    }
}

fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() { path.to_path_buf() } else { base_dir.join(path) }
}

fn validate(fc: FileConfig, base_dir: &Path, p: &mut Problems<'_>) -> Config {
    let listeners = validate_listeners(&fc.listeners, base_dir, p);

    let admin_listen = match &fc.admin.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 9901)),
        Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
            p.add(s.span(), format!("`{}` is not an address: write IP:PORT such as \"127.0.0.1:9901\"", s.get_ref()));
            SocketAddr::from(([127, 0, 0, 1], 9901))
        }),
    };
    if let Some(l) = listeners.iter().find(|l| l.addr == admin_listen && admin_listen.port() != 0) {
        let span = fc.admin.listen.as_ref().map_or(0..0, |s| s.span());
        p.add(span, format!("the admin listener cannot share {} with listener `{}`", admin_listen, l.name));
    }

    let store_path = fc.store.path.as_ref().map(|s| {
        let path = resolve(base_dir, s.get_ref());
        let postgres = fc.store.backend.as_ref().is_some_and(|b| b.get_ref() == "postgres");
        let file = if postgres { super::COPY_FILE_NAME } else { super::STORE_FILE_NAME };
        // What `check` can tell without opening the store: the open itself refuses the same (see `files`).
        if let Err(e) = crate::files::check_dir_for(&path, file) {
            p.add(s.span(), format!("cannot use the store: {e}"));
        }
        path
    });
    let postgres = postgres(&fc.store, base_dir, p);
    let account_id = fc.admin.account_id.as_ref().map_or_else(
        || "000000000000".to_string(),
        |a| {
            if a.get_ref().len() != 12 || !a.get_ref().bytes().all(|b| b.is_ascii_digit()) {
                p.add(a.span(), "account_id must be 12 digits");
            }
            a.get_ref().clone()
        },
    );
    let region = fc.admin.region.as_ref().map_or_else(
        || "us-east-1".to_string(),
        |r| {
            let ok = !r.get_ref().is_empty()
                && r.get_ref().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                p.add(r.span(), format!("`{}` is not a region name such as \"us-east-1\"", r.get_ref()));
            }
            r.get_ref().clone()
        },
    );

    let admin_auth = validate_admin_auth(&fc.admin, p);

    let format = match fc.log.format.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("logfmt", _)) => LogFormat::Logfmt,
        Some(("json", _)) => LogFormat::Json,
        Some((other, span)) => {
            p.add(span, format!("unknown log format `{other}`, expected \"logfmt\" or \"json\""));
            LogFormat::Logfmt
        }
    };
    let level = fc.log.level.as_ref().map_or_else(|| "info".to_string(), |s| s.get_ref().clone());
    if let Some(s) = &fc.log.level
        && let Err(e) = tracing_subscriber::EnvFilter::builder().parse(s.get_ref())
    {
        p.add(s.span(), format!("bad log level `{}`: {e}", s.get_ref()));
    }
    let log = LogConfig { level, format, access_log: fc.log.access_log.unwrap_or(true) };

    let t = &fc.timeouts;
    let timeouts = Timeouts {
        client_header: duration(&t.client_header, Duration::from_secs(10), false, p),
        client_idle: duration(&t.client_idle, Duration::from_secs(60), false, p),
        client_send: duration(&t.client_send, Duration::from_secs(60), false, p),
        upstream_connect: duration(&t.upstream_connect, Duration::from_secs(3), false, p),
        upstream_response: duration(&t.upstream_response, Duration::from_secs(30), false, p),
        upstream_read: duration(&t.upstream_read, Duration::from_secs(60), false, p),
        upstream_idle: duration(&t.upstream_idle, Duration::from_secs(90), false, p),
        shutdown_grace: duration(&t.shutdown_grace, Duration::from_secs(30), true, p),
        config_poll: duration(&t.config_poll, Duration::from_secs(2), true, p),
        rollout_interval: duration(&t.rollout_interval, Duration::from_secs(1), false, p),
    };

    let l = &fc.limits;
    let limits = Limits {
        max_connections: count(&l.max_connections, 10_000, 1..10_000_001, p),
        max_header_bytes: count(&l.max_header_bytes, 64 * 1024, 8192..16 * 1024 * 1024 + 1, p),
        max_headers: count(&l.max_headers, super::DEFAULT_MAX_HEADERS, 1..10_001, p),
        workers: count(&l.workers, 0, 0..257, p),
    };

    let ca_file = fc.upstream.ca_file.as_ref().map(|s| {
        let path = resolve(base_dir, s.get_ref());
        if let Err(e) = crate::tls::load_roots(&path) {
            p.add(s.span(), e);
        }
        path
    });
    let upstream = UpstreamConfig {
        ca_file,
        pool_max_idle_per_host: count(&fc.upstream.pool_max_idle_per_host, 1024, 0..1_000_001, p),
        max_connections_per_origin: count(&fc.upstream.max_connections_per_origin, 1024, 1..1_000_001, p),
        unhealthy_for: duration(&fc.upstream.unhealthy_for, Duration::from_secs(10), true, p),
    };

    let distributions = validate_distributions(&fc.distributions, p);
    let cd = validate_cd(&fc.cd, p);
    let e = &fc.evidently;
    let quotas = EvidentlyQuotas {
        projects: count(&e.max_projects, 50, 1..1_000_001, p),
        segments: count(&e.max_segments, 500, 1..1_000_001, p),
        features_per_project: count(&e.max_features_per_project, 100, 1..1_000_001, p),
        launches_per_project: count(&e.max_launches_per_project, 500, 1..1_000_001, p),
        running_launches_per_project: count(&e.max_running_launches_per_project, 50, 1..1_000_001, p),
        experiments_per_project: count(&e.max_experiments_per_project, 500, 1..1_000_001, p),
        running_experiments_per_project: count(&e.max_running_experiments_per_project, 50, 1..1_000_001, p),
        exposures: count(&e.max_exposures, 100_000, 0..10_000_001, p),
    };

    let declared = declarations(e, p);

    Config {
        declared,
        listeners,
        admin_listen,
        account_id,
        region,
        admin_auth,
        store_path,
        postgres,
        log,
        timeouts,
        limits,
        upstream,
        distributions,
        cd,
        quotas,
    }
}

/// `[store]`: `backend = "postgres"` and its settings, checked as far as can be without connecting
/// (the URL parses, the CA file reads); the keys of the other backend are refused, not ignored.
fn postgres(
    s: &super::file::FileStore,
    base_dir: &std::path::Path,
    p: &mut Problems<'_>,
) -> Option<super::PostgresConfig> {
    let backend = s.backend.as_ref().map_or("redb", |b| b.get_ref().as_str());
    let pg_keys = [
        ("url", s.url.as_ref().map(Spanned::span)),
        ("url_env", s.url_env.as_ref().map(Spanned::span)),
        ("tls", s.tls.as_ref().map(Spanned::span)),
        ("ca_file", s.ca_file.as_ref().map(Spanned::span)),
        ("pool_size", s.pool_size.as_ref().map(Spanned::span)),
        ("connect_timeout", s.connect_timeout.as_ref().map(Spanned::span)),
        ("statement_timeout", s.statement_timeout.as_ref().map(Spanned::span)),
    ];
    match backend {
        "redb" => {
            for (key, span) in pg_keys {
                if let Some(span) = span {
                    p.add(span, format!("`{key}` is a setting of backend = \"postgres\""));
                }
            }
            return None;
        }
        "postgres" => {}
        other => {
            let span = s.backend.as_ref().map_or(0..0, Spanned::span);
            p.add(span, format!("backend must be \"redb\" or \"postgres\", not `{other}`"));
            return None;
        }
    }
    let url = secret(&s.url, &s.url_env, ("url", "url_env"), p);
    if url.is_none() && s.url.is_none() && s.url_env.is_none() {
        let span = s.backend.as_ref().map_or(0..0, Spanned::span);
        p.add(span, "backend = \"postgres\" needs url or url_env");
    }
    if let Some(u) = &url
        && let Err(e) = u.parse::<tokio_postgres::Config>()
    {
        // The URL holds a password: the message names the key, never the value.
        let span = s.url.as_ref().or(s.url_env.as_ref()).map_or(0..0, Spanned::span);
        p.add(span, format!("the database URL does not parse: {e}"));
    }
    let tls = match s.tls.as_ref().map(|t| t.get_ref().as_str()) {
        None | Some("disable") => {
            if let Some(ca) = &s.ca_file {
                p.add(ca.span(), "ca_file needs tls = \"require\"");
            }
            None
        }
        Some("require") => Some(s.ca_file.as_ref().map(|ca| {
            let path = resolve(base_dir, ca.get_ref());
            if let Err(e) = crate::files::read(&path, crate::files::PEM_CAP) {
                p.add(ca.span(), format!("cannot read the CA file: {e}"));
            }
            path
        })),
        Some(other) => {
            let span = s.tls.as_ref().map_or(0..0, Spanned::span);
            p.add(span, format!("tls must be \"disable\" or \"require\", not `{other}`"));
            None
        }
    };
    let pool_size = s.pool_size.as_ref().map_or(8, |n| {
        if !(1..=1000).contains(n.get_ref()) {
            p.add(n.span(), "pool_size must be 1 to 1000");
        }
        *n.get_ref()
    });
    Some(super::PostgresConfig {
        url: url.unwrap_or_default(),
        tls,
        pool_size,
        connect_timeout: duration(&s.connect_timeout, Duration::from_secs(5), false, p),
        statement_timeout: duration(&s.statement_timeout, Duration::from_secs(5), false, p),
    })
}

/// A secret given inline or through an environment variable (`NAME` / `NAME_env`): `None` when neither
/// is set or it is broken (which is then reported at the key).
fn secret(
    inline: &Option<Spanned<String>>,
    env: &Option<Spanned<String>>,
    names: (&str, &str),
    p: &mut Problems<'_>,
) -> Option<String> {
    match (inline, env) {
        (Some(k), Some(_)) => {
            p.add(k.span(), format!("set {} or {}, not both", names.0, names.1));
            None
        }
        (Some(k), None) if k.get_ref().is_empty() => {
            p.add(k.span(), format!("{} must not be empty", names.0));
            None
        }
        (Some(k), None) => Some(k.get_ref().clone()),
        (None, Some(var)) => match std::env::var(var.get_ref()) {
            Ok(v) if !v.is_empty() => Some(v),
            Ok(_) => {
                p.add(var.span(), format!("environment variable `{}` is empty", var.get_ref()));
                None
            }
            Err(_) => {
                p.add(var.span(), format!("environment variable `{}` is not set", var.get_ref()));
                None
            }
        },
        (None, None) => None,
    }
}

/// `[admin] auth`, the access key pair and the metrics token.
fn validate_admin_auth(a: &FileAdmin, p: &mut Problems<'_>) -> AdminAuth {
    let mode = match a.auth.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("sigv4", _)) => AdminAuthMode::SigV4,
        Some(("none", _)) => AdminAuthMode::None,
        Some((other, span)) => {
            p.add(span, format!("unknown auth `{other}`, expected \"sigv4\" or \"none\""));
            AdminAuthMode::SigV4
        }
    };
    let secret_key =
        secret(&a.secret_access_key, &a.secret_access_key_env, ("secret_access_key", "secret_access_key_env"), p);
    let credentials = match (&a.access_key_id, secret_key) {
        (Some(id), Some(secret)) => {
            let ok = (1..=128).contains(&id.get_ref().len())
                && id.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                p.add(id.span(), "access_key_id must be 1 to 128 letters, digits, '-', '_' or '.'");
            }
            Some(AccessKey { id: id.get_ref().clone(), secret })
        }
        (Some(id), None) => {
            if a.secret_access_key.is_none() && a.secret_access_key_env.is_none() {
                p.add(id.span(), "access_key_id needs secret_access_key or secret_access_key_env");
            }
            None
        }
        (None, _) => {
            if let Some(k) = a.secret_access_key.as_ref().or(a.secret_access_key_env.as_ref()) {
                p.add(k.span(), "a secret access key needs its access_key_id");
            }
            None
        }
    };
    let metrics_token = secret(&a.metrics_token, &a.metrics_token_env, ("metrics_token", "metrics_token_env"), p);
    if let (Some(token), Some(k)) = (&metrics_token, a.metrics_token.as_ref().or(a.metrics_token_env.as_ref()))
        && !token.bytes().all(|b| b.is_ascii_graphic())
    {
        p.add(k.span(), "the metrics token must be printable ASCII with no spaces");
    }
    AdminAuth { mode, credentials, metrics_token }
}

/// With `auth = "sigv4"` (the default), a file that is run must name the key pair. Broken or half-given
/// keys are reported by [`validate_admin_auth`]; this is for a file that gives none at all.
fn require_admin_credentials(fc: &FileConfig, p: &mut Problems<'_>) {
    let a = &fc.admin;
    let sigv4 = a.auth.as_ref().is_none_or(|s| s.get_ref() == "sigv4");
    let any_key = a.access_key_id.is_some() || a.secret_access_key.is_some() || a.secret_access_key_env.is_some();
    if sigv4 && !any_key && !fc.admin_broken {
        let span = a.auth.as_ref().map(|s| s.span()).or(fc.admin_at.clone()).unwrap_or(0..0);
        p.add(
            span,
            "the admin API checks AWS SigV4 signatures but has no key: set access_key_id and secret_access_key \
             (or secret_access_key_env) under [admin], or auth = \"none\" to let anyone call it (local development only)",
        );
    }
}

fn validate_cd(f: &FileContinuousDeployment, p: &mut Problems<'_>) -> CdConfig {
    let cookie_name = f.cookie_name.as_ref().map_or_else(
        || "edgesplit-cd".to_string(),
        |n| {
            let ok = !n.get_ref().is_empty()
                && n.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !ok {
                p.add(n.span(), format!("`{}` is not a valid cookie name", n.get_ref()));
            }
            n.get_ref().clone()
        },
    );
    let key_span = f.cookie_key.as_ref().or(f.cookie_key_env.as_ref()).map(|k| k.span());
    let cookie_key = match (&f.cookie_key, &f.cookie_key_env) {
        (Some(k), Some(_)) => {
            p.add(k.span(), "set cookie_key or cookie_key_env, not both");
            None
        }
        (Some(k), None) => Some(k.get_ref().clone().into_bytes()),
        (None, Some(var)) => match std::env::var(var.get_ref()) {
            Ok(v) => Some(v.into_bytes()),
            Err(_) => {
                p.add(var.span(), format!("environment variable `{}` is not set", var.get_ref()));
                None
            }
        },
        (None, None) => None,
    };
    if let (Some(key), Some(span)) = (&cookie_key, key_span)
        && key.len() < 32
    {
        p.add(span, "the cookie key must be at least 32 bytes long");
    }
    CdConfig {
        max_policies: count(&f.max_policies, 20, 1..100_001, p),
        cookie_name,
        cookie_key,
        cache_control_private: f.cache_control_private.unwrap_or(false),
        cookie_refresh: cookie_refresh(&f.cookie_refresh, p),
    }
}

/// At most half the least `IdleTTL` CloudFront allows, so a session in use is always refreshed before
/// its idle window ends.
fn cookie_refresh(v: &Option<Spanned<String>>, p: &mut Problems<'_>) -> Duration {
    let max = Duration::from_secs(u64::from(*crate::cd::model::STICKINESS_TTL.start()) / 2);
    let d = duration(v, Duration::from_secs(10), true, p);
    if let Some(v) = v
        && d > max
    {
        p.add(v.span(), format!("must be at most {}s (half the least IdleTTL)", max.as_secs()));
        return Duration::from_secs(10);
    }
    d
}

fn validate_policy(
    f: &Spanned<FilePolicy>,
    staging_dns_name: Option<&str>,
    p: &mut Problems<'_>,
) -> Option<crate::cd::model::PolicyConfig> {
    use crate::cd::model::*;
    let fp = f.get_ref();
    let Some(kind) = TrafficType::parse(fp.kind.get_ref()) else {
        p.add(
            fp.kind.span(),
            format!("unknown policy type `{}`, expected \"SingleWeight\" or \"SingleHeader\"", fp.kind.get_ref()),
        );
        return None;
    };
    let ttl = |v: &Option<Spanned<i64>>, p: &mut Problems<'_>| -> Option<u32> {
        let v = v.as_ref()?;
        u32::try_from(*v.get_ref()).map_err(|_| p.add(v.span(), "out of range")).ok()
    };
    let idle = ttl(&fp.idle_ttl, p);
    let max = ttl(&fp.maximum_ttl, p);
    let stickiness = match (idle, max) {
        (Some(idle_ttl), Some(maximum_ttl)) => Some(Stickiness { idle_ttl, maximum_ttl }),
        (None, None) => None,
        _ => {
            p.add(f.span(), "idle_ttl and maximum_ttl go together");
            None
        }
    };
    let single_weight = fp.weight.as_ref().map(|w| SingleWeight { weight: *w.get_ref(), stickiness });
    let single_header = match (&fp.header, &fp.value) {
        (Some(h), Some(v)) => Some(SingleHeader { header: h.get_ref().clone(), value: v.get_ref().clone() }),
        (None, None) => None,
        _ => {
            p.add(f.span(), "header and value go together");
            None
        }
    };
    let policy = PolicyConfig {
        staging_dns_names: staging_dns_name.map(|s| vec![s.to_string()]).unwrap_or_default(),
        enabled: fp.enabled.unwrap_or(true),
        traffic: Some(TrafficConfig { kind, single_weight, single_header }),
    };
    if let Err(e) = policy.validate() {
        p.add(f.span(), e);
        return None;
    }
    Some(policy)
}

/// The `[[evidently.*]]` declarations, in the order they must be applied. Their content is checked by
/// the API's own rules when they are applied (`edgesplit check` does that against an empty store).
fn declarations(e: &FileEvidently, p: &mut Problems<'_>) -> Vec<Declared> {
    let mut out = Vec::new();
    let kinds = [
        (DeclaredKind::Project, &e.projects),
        (DeclaredKind::Segment, &e.segments),
        (DeclaredKind::Feature, &e.features),
        (DeclaredKind::Launch, &e.launches),
        (DeclaredKind::Experiment, &e.experiments),
    ];
    for (kind, list) in kinds {
        for t in list {
            let span = t.span();
            let (line, col) = line_col(p.text, span.start);
            let at = ConfigError { file: p.file.to_string(), line, col, message: String::new() };
            let mut body = match serde_json::to_value(t.get_ref()) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    p.add(span, format!("[[{}]] must be a table", kind.table()));
                    continue;
                }
            };
            let Some(name) = body.get("name").and_then(|n| n.as_str()).map(str::to_string) else {
                p.add(span, format!("[[{}]] needs a `name`", kind.table()));
                continue;
            };
            let project = match kind {
                DeclaredKind::Project | DeclaredKind::Segment => None,
                _ => match body.remove("project") {
                    Some(serde_json::Value::String(s)) => Some(s),
                    _ => {
                        p.add(span, format!("[[{}]] `{name}` needs a `project`", kind.table()));
                        continue;
                    }
                },
            };
            let running = match (kind, body.remove("status")) {
                (_, None) => false,
                (DeclaredKind::Launch | DeclaredKind::Experiment, Some(serde_json::Value::String(s)))
                    if s == "RUNNING" =>
                {
                    true
                }
                (DeclaredKind::Launch | DeclaredKind::Experiment, Some(serde_json::Value::String(s)))
                    if s == "CREATED" =>
                {
                    false
                }
                _ => {
                    p.add(span, format!("[[{}]] `{name}`: status must be \"CREATED\" or \"RUNNING\"", kind.table()));
                    continue;
                }
            };
            if out.iter().any(|d: &Declared| d.kind == kind && d.project == project && d.name == name) {
                p.add(span, format!("[[{}]] `{name}` is declared twice", kind.table()));
                continue;
            }
            out.push(Declared { kind, project, name, body: serde_json::Value::Object(body), running, at });
        }
    }
    out
}

fn validate_listeners(list: &[FileListener], base_dir: &Path, p: &mut Problems<'_>) -> Vec<ListenerConfig> {
    let mut out: Vec<ListenerConfig> = Vec::new();
    let mut names = HashSet::new();
    for (i, l) in list.iter().enumerate() {
        let name = l.name.as_ref().map_or_else(|| format!("listener-{}", i + 1), |n| n.get_ref().clone());
        if !names.insert(name.clone()) {
            let span = l.name.as_ref().map_or(l.listen.span(), |n| n.span());
            p.add(span, format!("listener name `{name}` is used twice"));
        }
        let Ok(addr) = l.listen.get_ref().parse::<SocketAddr>() else {
            p.add(
                l.listen.span(),
                format!("`{}` is not an address: write IP:PORT such as \"0.0.0.0:8080\"", l.listen.get_ref()),
            );
            continue;
        };
        // Port 0 asks the kernel for a free port each time: never a clash.
        if let Some(other) = out.iter().find(|o| o.addr == addr && addr.port() != 0) {
            p.add(l.listen.span(), format!("{addr} is already used by listener `{}`", other.name));
        }
        let tls = if l.tls.is_empty() {
            None
        } else {
            let mut files = Vec::new();
            let mut keys = Vec::new();
            for c in &l.tls {
                let cert = resolve(base_dir, c.cert.get_ref());
                let key = resolve(base_dir, c.key.get_ref());
                // Each file read once, bounded (see `files`); a problem is reported at the key naming it.
                match crate::tls::load_certified_key(&cert, &key) {
                    Ok(ck) => keys.push((ck, cert.clone())),
                    Err(e) => match e.file {
                        crate::tls::PairFile::Cert => p.add(c.cert.span(), e.message),
                        crate::tls::PairFile::Key => p.add(c.key.span(), e.message),
                    },
                }
                files.push((cert, key));
            }
            if keys.len() < files.len() {
                None
            } else {
                match crate::tls::server_config_from(&keys) {
                    Ok(server_config) => Some(TlsConfig { server_config, files }),
                    Err(e) => {
                        p.add(l.listen.span(), e);
                        None
                    }
                }
            }
        };
        out.push(ListenerConfig { name, addr, tls });
    }
    out
}

fn validate_distributions(list: &[FileDistribution], p: &mut Problems<'_>) -> Vec<DistributionConfig> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let mut domains: HashMap<String, String> = HashMap::new();
    let mut staging_names: HashMap<String, String> = HashMap::new();
    for d in list {
        let id = d.id.get_ref().clone();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            p.add(
                d.id.span(),
                format!("distribution id `{id}` must be non-empty and use only letters, digits, '-', '_' and '.'"),
            );
        }
        if !ids.insert(id.clone()) {
            p.add(d.id.span(), format!("distribution id `{id}` is used twice"));
        }
        if d.domains.get_ref().is_empty() {
            p.add(d.domains.span(), "a distribution needs at least one domain (\"*\" matches any host)");
        }
        let mut own = Vec::new();
        for dom in d.domains.get_ref() {
            let name = dom.get_ref().to_ascii_lowercase();
            if !valid_domain(&name) {
                p.add(dom.span(), format!("`{}` is not a host name, a `*.suffix` wildcard or `*`", dom.get_ref()));
                continue;
            }
            if let Some(other) = domains.insert(name.clone(), id.clone()) {
                p.add(dom.span(), format!("domain `{name}` is already served by distribution `{other}`"));
            }
            own.push(name);
        }
        let primary = validate_pool(&d.primary, p);
        let staging = d.staging.as_ref().map(|s| validate_pool(s, p));
        let staging_dns_name = d.staging_dns_name.as_ref().map(|s| {
            let name = s.get_ref().to_ascii_lowercase();
            if !valid_domain(&name) || name.starts_with('*') {
                p.add(s.span(), format!("`{}` is not a host name", s.get_ref()));
            }
            if d.staging.is_none() {
                p.add(s.span(), "staging_dns_name needs a [distribution.staging] pool");
            }
            if let Some(other) = staging_names.insert(name.clone(), id.clone()) {
                p.add(s.span(), format!("staging_dns_name `{name}` is already used by distribution `{other}`"));
            }
            name
        });
        let policy_id = d.continuous_deployment_policy_id.as_ref().map(|s| s.get_ref().clone());
        let inline_policy = d.policy.as_ref().and_then(|f| validate_policy(f, staging_dns_name.as_deref(), p));
        if let Some(f) = &d.policy {
            if d.continuous_deployment_policy_id.is_some() {
                p.add(
                    f.span(),
                    "a distribution takes either [distribution.policy] or continuous_deployment_policy_id, not both",
                );
            }
            if d.staging.is_none() {
                p.add(f.span(), "a continuous deployment policy needs a [distribution.staging] pool");
            }
        }
        if let Some(pin) = &d.continuous_deployment_policy_id {
            if pin.get_ref().is_empty() {
                p.add(pin.span(), "continuous_deployment_policy_id must not be empty");
            }
            if d.staging.is_none() {
                p.add(pin.span(), "a continuous deployment policy needs a [distribution.staging] pool");
            }
        }
        let edge = d.evidently.as_ref().map(|e| validate_edge(e, p));
        if let (Some(e), Some(route)) = (&d.evidently, d.evidently.as_ref().and_then(|e| e.get_ref().route.as_ref())) {
            if d.policy.is_some() || d.continuous_deployment_policy_id.is_some() {
                p.add(route.span(), "feature-driven routing replaces the continuous deployment policy: drop [distribution.policy] / continuous_deployment_policy_id, or the route");
            }
            if d.staging.is_none() {
                p.add(e.span(), "feature-driven routing needs a [distribution.staging] pool");
            }
        }
        let rollout = d.rollout.as_ref().and_then(|r| {
            let span = r.span();
            let mut fine = true;
            let mut refuse = |p: &mut Problems<'_>, message: String| {
                p.add(span.clone(), format!("[distribution.rollout] {message}"));
                fine = false;
            };
            if let Err(e) = r.get_ref().check() {
                refuse(p, e);
            }
            if d.staging.is_none() {
                refuse(p, "needs a [distribution.staging] pool to roll out".into());
            }
            if d.policy.is_some() {
                refuse(p, "drives a policy made through the CloudFront API; [distribution.policy] is changed only by this file: use continuous_deployment_policy_id or staging_dns_name".into());
            }
            // A policy sends at most 15 % to staging; the launch of a feature-routed distribution up to 100 %.
            if edge.as_ref().is_none_or(|e| e.route.is_none())
                && let Err(e) = r.get_ref().check_cap(crate::rollout::POLICY_MAX_WEIGHT, "a continuous deployment policy")
            {
                refuse(p, e);
            }
            let (line, col) = line_col(p.text, span.start);
            let at = ConfigError { file: p.file.to_string(), line, col, message: String::new() };
            fine.then(|| DeclaredRollout { spec: r.get_ref().clone(), at })
        });
        out.push(DistributionConfig {
            id,
            domains: own,
            primary,
            staging,
            staging_dns_name,
            policy_id,
            inline_policy,
            edge,
            rollout,
        });
    }
    out
}

fn header_name(v: &Spanned<String>, p: &mut Problems<'_>) -> Option<HeaderName> {
    match HeaderName::from_bytes(v.get_ref().as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            p.add(v.span(), format!("`{}` is not a valid header name", v.get_ref()));
            None
        }
    }
}

fn validate_edge(e: &Spanned<FileEdgeEvidently>, p: &mut Problems<'_>) -> EdgeEvidently {
    let f = e.get_ref();
    // The names are checked against the Evidently model's shapes, as the API checks them.
    if let Err(v) = crate::limits::evidently::PROJECT_NAME.check("project", f.project.get_ref()) {
        p.add(
            f.project.span(),
            format!("`{}` is not an Evidently project name: {}", f.project.get_ref(), v.requirement()),
        );
    }
    let mut entity = Vec::new();
    for s in &f.entity {
        match s.get_ref().split_once(':') {
            Some(("cookie", name)) if !name.is_empty() => entity.push(EntitySource::Cookie(name.to_string())),
            Some(("header", name)) => {
                if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
                    entity.push(EntitySource::Header(h));
                } else {
                    p.add(s.span(), format!("`{name}` is not a valid header name"));
                }
            }
            _ => p.add(s.span(), format!("`{}`: write \"cookie:NAME\" or \"header:NAME\"", s.get_ref())),
        }
    }
    let entity_cookie =
        f.entity_cookie.as_ref().map_or_else(|| "edgesplit-entity".to_string(), |c| c.get_ref().clone());
    if entity_cookie.is_empty()
        || !entity_cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        let span = f.entity_cookie.as_ref().map_or(e.span(), |c| c.span());
        p.add(span, format!("`{entity_cookie}` is not a valid cookie name"));
    }
    let entity_cookie_max_age = duration(&f.entity_cookie_max_age, Duration::from_secs(400 * 86_400), false, p);
    let mut context = Vec::new();
    for (key, source) in &f.context {
        let attr = match source.get_ref().split_once(':') {
            Some(("header", name)) => HeaderName::from_bytes(name.as_bytes()).ok().map(ContextAttr::Header),
            Some(("query", name)) if !name.is_empty() => Some(ContextAttr::Query(name.to_string())),
            None => match source.get_ref().as_str() {
                "path" => Some(ContextAttr::Path),
                "method" => Some(ContextAttr::Method),
                "client_ip" => Some(ContextAttr::ClientIp),
                _ => None,
            },
            _ => None,
        };
        match attr {
            Some(a) => context.push((key.clone(), a)),
            None => p.add(
                source.span(),
                format!(
                    "`{}`: write \"header:NAME\", \"query:NAME\", \"path\", \"method\" or \"client_ip\"",
                    source.get_ref()
                ),
            ),
        }
    }
    let mut features: Vec<EdgeFeature> = Vec::new();
    for ef in &f.features {
        let g = ef.get_ref();
        if let Err(v) = crate::limits::evidently::FEATURE_NAME.check("feature", g.feature.get_ref()) {
            let what = format!("`{}` is not an Evidently feature name: {}", g.feature.get_ref(), v.requirement());
            p.add(g.feature.span(), what);
            continue;
        }
        let default = format!("x-evidently-{}", g.feature.get_ref().to_ascii_lowercase());
        let header = match &g.header {
            Some(h) => header_name(h, p),
            None => HeaderName::from_bytes(default.as_bytes()).ok(),
        };
        let value_header = g.value_header.as_ref().and_then(|h| header_name(h, p));
        let Some(header) = header else { continue };
        let taken = features.iter().any(|x| x.header == header || x.value_header.as_ref() == Some(&header))
            || value_header.as_ref().is_some_and(|v| {
                *v == header || features.iter().any(|x| x.header == *v || x.value_header.as_ref() == Some(v))
            });
        if taken {
            p.add(ef.span(), "two injected headers of this distribution have the same name");
            continue;
        }
        features.push(EdgeFeature { feature: g.feature.get_ref().clone(), header, value_header });
    }
    let route = f.route.as_ref().map(|r| {
        let g = r.get_ref();
        if g.staging_variations.get_ref().is_empty() {
            p.add(g.staging_variations.span(), "name at least one variation that means staging");
        }
        EdgeRoute { feature: g.feature.get_ref().clone(), staging_variations: g.staging_variations.get_ref().clone() }
    });
    EdgeEvidently {
        project: f.project.get_ref().clone(),
        entity,
        entity_cookie,
        entity_cookie_max_age,
        response_headers: f.response_headers.unwrap_or(false),
        context,
        features,
        route,
    }
}

fn valid_domain(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    name == "*"
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }))
}

fn validate_pool(pool: &Spanned<FilePool>, p: &mut Problems<'_>) -> PoolConfig {
    let f = pool.get_ref();
    if f.origins.get_ref().is_empty() {
        p.add(f.origins.span(), "a pool needs at least one origin");
    }
    let mut origins = Vec::new();
    for o in f.origins.get_ref() {
        match parse_origin(o.get_ref()) {
            Ok(origin) => origins.push(origin),
            Err(e) => p.add(o.span(), e),
        }
    }
    let host = f.host.as_ref().and_then(|h| match HeaderValue::from_str(h.get_ref()) {
        Ok(v) if !h.get_ref().is_empty() => Some(v),
        _ => {
            p.add(h.span(), format!("`{}` is not a valid Host header value", h.get_ref()));
            None
        }
    });
    let protocol = match f.protocol.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("http1", _)) => UpstreamProtocol::Http1,
        Some(("http2", _)) => UpstreamProtocol::Http2,
        Some((other, span)) => {
            p.add(span, format!("unknown protocol `{other}`, expected \"http1\" or \"http2\""));
            UpstreamProtocol::Http1
        }
    };
    PoolConfig { origins, host, protocol }
}

fn parse_origin(s: &str) -> Result<OriginUrl, String> {
    let uri: Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => return Err(format!("origin `{s}` must start with http:// or https://")),
    };
    let authority = uri.authority().cloned().ok_or_else(|| format!("origin `{s}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("origin `{s}` must not carry user information"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("origin `{s}` must be scheme://host[:port] with no path or query"));
    }
    Ok(OriginUrl { scheme, authority })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "t.toml", Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const GOOD: &str = r#"
[[listener]]
listen = "127.0.0.1:8080"

[[distribution]]
id = "web"
domains = ["example.com", "*"]
staging_dns_name = "staging.example.com"
[distribution.primary]
origins = ["http://127.0.0.1:9000", "https://origin.example.com"]
[distribution.staging]
origins = ["http://127.0.0.1:9001"]
protocol = "http2"
host = "staging.internal"
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD, "t.toml", Path::new(".")).unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.admin_listen, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(c.timeouts.client_header, Duration::from_secs(10));
        let d = &c.distributions[0];
        assert_eq!(d.primary.origins[1].to_string(), "https://origin.example.com");
        assert_eq!(d.staging.as_ref().unwrap().protocol, UpstreamProtocol::Http2);
    }

    #[test]
    fn the_cookie_refresh_granularity_defaults_to_10s_and_stays_below_half_the_least_idle_ttl() {
        let c = parse(GOOD, "t.toml", Path::new(".")).unwrap();
        assert_eq!(c.cd.cookie_refresh, Duration::from_secs(10));
        let with = |v: &str| format!("{GOOD}[continuous_deployment]\ncookie_refresh = \"{v}\"\n");
        let c = parse(&with("0s"), "t.toml", Path::new(".")).unwrap();
        assert_eq!(c.cd.cookie_refresh, Duration::ZERO);
        let c = parse(&with("150s"), "t.toml", Path::new(".")).unwrap();
        assert_eq!(c.cd.cookie_refresh, Duration::from_secs(150));
        let line = GOOD.lines().count() + 2;
        assert_eq!(errors(&with("151s")), [format!("t.toml:{line}:18: must be at most 150s (half the least IdleTTL)")]);
        assert!(errors(&with("soon"))[0].starts_with(&format!("t.toml:{line}:18: `soon` is not a duration")));
    }

    #[test]
    fn the_postgres_store_is_checked_without_connecting() {
        let with = |store: &str| format!("{GOOD}[admin]\nauth = \"none\"\n[store]\n{store}");
        let c = parse(
            &with("backend = \"postgres\"\nurl = \"postgres://u:hunter2@db:5432/edge\"\npool_size = 4\n"),
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        let pg = c.postgres.as_ref().unwrap();
        assert_eq!((pg.pool_size, pg.tls.clone(), pg.statement_timeout), (4, None, Duration::from_secs(5)));
        // The URL is a secret: never in Debug output.
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.store_path.is_none());
        // With postgres, `path` is where the instance keeps its last-known-good copy.
        let c = parse(
            &with("backend = \"postgres\"\nurl = \"postgres://db/x\"\npath = \"copy\"\n"),
            "e.toml",
            Path::new("/etc/edgesplit"),
        )
        .unwrap();
        assert_eq!(c.store_path.as_deref(), Some(Path::new("/etc/edgesplit/copy")));
        let cases = [
            ("backend = \"postgres\"\n", "needs url or url_env"),
            ("backend = \"postgres\"\nurl = \"postgres://db/x?sslmode=nonsense\"\n", "the database URL does not parse"),
            ("backend = \"postgres\"\nurl_env = \"EDGESPLIT_TEST_UNSET_VARIABLE\"\n", "is not set"),
            ("backend = \"postgres\"\nurl = \"postgres://db/x\"\ntls = \"maybe\"\n", "tls must be"),
            ("backend = \"postgres\"\nurl = \"postgres://db/x\"\npool_size = 0\n", "pool_size must be 1 to 1000"),
            ("backend = \"postgres\"\nurl = \"postgres://db/x\"\nca_file = \"/tmp/x.pem\"\n", "ca_file needs tls"),
            ("url = \"postgres://db/x\"\n", "`url` is a setting of backend = \"postgres\""),
            ("backend = \"sqlite\"\n", "backend must be"),
        ];
        for (store, want) in cases {
            let errs = errors(&with(store));
            assert!(errs.iter().any(|e| e.contains(want) && e.starts_with("t.toml:")), "{store}: {errs:?}");
            assert!(!errs.iter().any(|e| e.contains("hunter2")), "{errs:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_line_and_column() {
        let text = r#"
[[listener]]
listen = "nope"
colour = "blue"

[[listener]]
listen = "127.0.0.1:8080"

[timeouts]
client_header = "ten seconds"

[[distribution]]
id = "web"
domains = ["bad domain"]
[distribution.primary]
origins = ["ftp://x"]
"#;
        let errs = errors(text);
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].starts_with("t.toml:4:1: unknown field `colour`"), "{errs:#?}");
        assert!(errs[1].starts_with("t.toml:10:17: `ten seconds` is not a duration"), "{errs:#?}");
        assert!(errs[2].starts_with("t.toml:14:12: `bad domain`"), "{errs:#?}");
        assert!(errs[3].starts_with("t.toml:16:12: origin `ftp://x`"), "{errs:#?}");
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let errs = errors("[[listener]]\nlisten = \"127.0.0.1:1\"\nbroken = \n");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].starts_with("t.toml:3:"), "{errs:#?}");
    }

    #[test]
    fn syntax_errors_come_in_text_order() {
        // Regression (fuzz target `config`): toml's recoverable parser reported 1:13 before 1:10.
        let errs = parse("a = {b = 1 c\n", "t.toml", Path::new(".")).unwrap_err().0;
        assert!(errs.len() >= 2, "{errs:#?}");
        assert!(errs.windows(2).all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col)), "{errs:#?}");
    }

    #[test]
    fn unknown_top_level_key_and_duplicate_domain() {
        let text = format!(
            "extra = 1\n{GOOD}\n[[distribution]]\nid = \"web\"\ndomains = [\"EXAMPLE.com\"]\n[distribution.primary]\norigins = [\"http://a\"]\n"
        );
        let errs = errors(&text);
        assert!(errs.iter().any(|e| e.contains("unknown key `extra`")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("distribution id `web` is used twice")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("domain `example.com` is already served")), "{errs:#?}");
    }

    #[test]
    fn origin_rules() {
        assert!(parse_origin("http://a:80").is_ok());
        assert!(parse_origin("https://[::1]:8443/").is_ok());
        assert!(parse_origin("http://a/path").is_err());
        assert!(parse_origin("http://u:p@a").is_err());
        assert!(parse_origin("a:80").is_err());
    }

    #[test]
    fn operator_files_that_are_not_regular_files_are_positioned_errors() {
        // Read bounded and without blocking (see `files`); each problem at the key naming the path.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let huge = dir.path().join("huge.pem");
        std::fs::File::create(&huge).unwrap().set_len(1 << 40).unwrap();
        let text = format!(
            "{GOOD}[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.tls]]\ncert = \"/dev/zero\"\nkey = \"{}\"\n\
             [[listener.tls]]\ncert = \"{}\"\nkey = \"/dev/urandom\"\n\
             [upstream]\nca_file = \"{}\"\n[store]\npath = \"/dev/null\"\n",
            fifo.display(),
            huge.display(),
            dir.path().display(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(errors(&text)));
        let errs = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("validation blocked");
        let d = dir.path().display();
        assert_eq!(
            errs,
            [
                "t.toml:18:8: cannot read certificate: /dev/zero is a character device, not a regular file".to_string(),
                format!("t.toml:21:8: cannot read certificate: {d}/huge.pem is larger than the 1048576 bytes allowed"),
                format!("t.toml:24:11: cannot read CA file: {d} is a directory, not a regular file"),
                "t.toml:26:8: cannot use the store: /dev/null is a character device, not a directory".to_string(),
            ]
        );
        // The key of a pair whose certificate is fine is reported at `key`; a FIFO does not block.
        let (cert, _) = write_pair(dir.path());
        let text = format!(
            "{GOOD}[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.tls]]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            fifo.display()
        );
        assert_eq!(
            errors(&text),
            [format!("t.toml:19:7: cannot read private key: {d}/fifo is a FIFO, not a regular file")]
        );
    }

    /// A certificate and key that fit together, written as PEM into `dir`.
    fn write_pair(dir: &Path) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
        let (cert, key) = (dir.join("a.pem"), dir.join("a.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncéz", 6), (2, 3));
    }

    fn run_errors(text: &str) -> Vec<String> {
        match parse_to_run(text, "t.toml", Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_file_to_run_needs_admin_credentials_or_auth_none() {
        // `parse` lets it through (its admin API then refuses every call); `parse_to_run` does not.
        let c = parse(GOOD, "t.toml", Path::new(".")).unwrap();
        assert_eq!((c.admin_auth.mode, c.admin_auth.credentials.is_none()), (AdminAuthMode::SigV4, true));
        let errs = run_errors(GOOD);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with("t.toml:1:1: the admin API checks AWS SigV4 signatures but has no key"),
            "{errs:#?}"
        );
        assert!(errs[0].contains("auth = \"none\""), "{errs:#?}");
        // Positioned at [admin] when there is one, at `auth` when it says sigv4.
        let errs = run_errors(&format!("{GOOD}\n[admin]\nlisten = \"127.0.0.1:9901\"\n"));
        assert!(errs[0].starts_with("t.toml:16:2: the admin API checks"), "{errs:#?}");
        let errs = run_errors(&format!("{GOOD}\n[admin]\nauth = \"sigv4\"\n"));
        assert!(errs[0].starts_with("t.toml:17:8: the admin API checks"), "{errs:#?}");

        let c = parse_to_run(&format!("{GOOD}\n[admin]\nauth = \"none\"\n"), "t.toml", Path::new(".")).unwrap();
        assert_eq!(c.admin_auth.mode, AdminAuthMode::None);
        let c = parse_to_run(
            &format!(
                "{GOOD}\n[admin]\naccess_key_id = \"AKID\"\nsecret_access_key = \"s3cret\"\nmetrics_token = \"tok\"\n"
            ),
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.admin_auth.mode, AdminAuthMode::SigV4);
        assert_eq!(c.admin_auth.credentials, Some(AccessKey { id: "AKID".into(), secret: "s3cret".into() }));
        assert_eq!(c.admin_auth.metrics_token.as_deref(), Some("tok"));
        // Secrets stay out of Debug output.
        let debug = format!("{:?}", c.admin_auth);
        assert!(!debug.contains("s3cret") && !debug.contains("tok\""), "{debug}");
    }

    #[test]
    fn admin_key_problems_are_positioned() {
        let admin = |body: &str| run_errors(&format!("{GOOD}\n[admin]\n{body}"));
        let errs = admin("auth = \"basic\"\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n");
        assert_eq!(errs, ["t.toml:17:8: unknown auth `basic`, expected \"sigv4\" or \"none\""]);
        let errs = admin("access_key_id = \"AKID\"\n");
        assert_eq!(errs, ["t.toml:17:17: access_key_id needs secret_access_key or secret_access_key_env"]);
        let errs = admin("secret_access_key = \"s\"\n");
        assert_eq!(errs, ["t.toml:17:21: a secret access key needs its access_key_id"]);
        let errs = admin("access_key_id = \"A/B\"\nsecret_access_key = \"s\"\n");
        assert!(errs[0].starts_with("t.toml:17:17: access_key_id must be"), "{errs:#?}");
        let errs = admin("access_key_id = \"A\"\nsecret_access_key = \"s\"\nsecret_access_key_env = \"PATH\"\n");
        assert_eq!(errs, ["t.toml:18:21: set secret_access_key or secret_access_key_env, not both"]);
        let errs = admin("access_key_id = \"A\"\nsecret_access_key_env = \"EDGESPLIT_TEST_SURELY_UNSET\"\n");
        assert_eq!(errs, ["t.toml:18:25: environment variable `EDGESPLIT_TEST_SURELY_UNSET` is not set"]);
        let errs = admin("access_key_id = \"A\"\nsecret_access_key = \"\"\n");
        assert_eq!(errs, ["t.toml:18:21: secret_access_key must not be empty"]);
        let errs = admin("auth = \"none\"\nmetrics_token = \"two words\"\n");
        assert_eq!(errs, ["t.toml:18:17: the metrics token must be printable ASCII with no spaces"]);
        let errs = admin("auth = \"none\"\nmetrics_token_env = \"EDGESPLIT_TEST_SURELY_UNSET\"\n");
        assert_eq!(errs, ["t.toml:18:21: environment variable `EDGESPLIT_TEST_SURELY_UNSET` is not set"]);
        // A variable that is set (PATH always is) is read at load.
        let c = parse_to_run(
            &format!("{GOOD}\n[admin]\naccess_key_id = \"A\"\nsecret_access_key_env = \"PATH\"\n"),
            "t.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.admin_auth.credentials.unwrap().secret, std::env::var("PATH").unwrap());
        // A broken [admin] is reported once, not also as missing credentials.
        let errs = admin("colour = 1\n");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("unknown field `colour`"), "{errs:#?}");
    }
}
