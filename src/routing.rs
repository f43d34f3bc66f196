//! The routing snapshot and the pure decisions over it: which distribution serves a host, primary or
//! staging, and which origin of the pool. Compiled from a [`Config`] off the request path; the data plane
//! reads it through an `ArcSwap` and never locks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use crate::cd::model::StoredPolicy;
use crate::cd::{CdSettings, Rule};
use crate::config::{Config, PoolConfig, UpstreamProtocol};
use crate::domain::Target;
use crate::domain::clock::now_ms;
use crate::metrics::{DistMetrics, Metrics};

/// One origin, ready to be put into an upstream URI.
#[derive(Debug)]
pub struct Origin {
    pub scheme: Scheme,
    pub authority: Authority,
    /// `scheme://authority`, for logs.
    pub label: Arc<str>,
    pub health: Arc<Health>,
}

/// Passive health of one origin: a refused connection marks it down for a while; the first request
/// after that tries it again. Kept across reloads (see [`HealthRegistry`]).
#[derive(Debug, Default)]
pub struct Health {
    /// Unix milliseconds until which the origin is skipped; 0 when up.
    down_until_ms: AtomicU64,
}

impl Health {
    pub(crate) fn is_up(&self) -> bool {
        let until = self.down_until_ms.load(Relaxed);
        until == 0 || until <= now_ms()
    }

    pub(crate) fn mark_down(&self, for_ms: u64) {
        if for_ms > 0 {
            self.down_until_ms.store(now_ms() + for_ms, Relaxed);
        }
    }

    pub(crate) fn mark_up(&self) {
        if self.down_until_ms.load(Relaxed) != 0 {
            self.down_until_ms.store(0, Relaxed);
        }
    }
}

/// Health by origin URL, so a reload or a policy change does not forget which origins are down.
#[derive(Debug, Default)]
pub struct HealthRegistry(Mutex<HashMap<String, Arc<Health>>>);

impl HealthRegistry {
    fn get(&self, label: &str) -> Arc<Health> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(label.to_string()).or_default().clone()
    }
}

/// A compiled origin pool with its round-robin cursor.
#[derive(Debug)]
pub struct Pool {
    pub origins: Box<[Origin]>,
    pub host: Option<HeaderValue>,
    pub protocol: UpstreamProtocol,
    next: AtomicUsize,
}

impl Pool {
    fn compile(p: &PoolConfig, health: &HealthRegistry) -> Pool {
        let origins = p
            .origins
            .iter()
            .map(|o| {
                let label = o.to_string();
                Origin {
                    scheme: o.scheme.clone(),
                    authority: o.authority.clone(),
                    health: health.get(&label),
                    label: label.into(),
                }
            })
            .collect();
        Pool { origins, host: p.host.clone(), protocol: p.protocol, next: AtomicUsize::new(0) }
    }

    /// The next healthy origin, round-robin; `None` when every origin is marked down.
    pub fn pick(&self) -> Option<&Origin> {
        let n = self.origins.len();
        let start = if n > 1 { self.next.fetch_add(1, Relaxed) % n } else { 0 };
        (0..n).filter_map(|i| self.origins.get((start + i) % n)).find(|o| o.health.is_up())
    }

    /// Like [`Pool::pick`], but when all are down it still returns one: the primary pool has no
    /// fallback, so trying a suspect origin beats failing outright.
    pub(crate) fn pick_any(&self) -> Option<&Origin> {
        self.pick().or_else(|| self.origins.get(self.next.fetch_add(1, Relaxed) % self.origins.len().max(1)))
    }
}

pub struct Distribution {
    pub id: Arc<str>,
    pub primary: Pool,
    pub staging: Option<Pool>,
    /// The continuous deployment policy in force, compiled.
    pub rule: Rule,
    /// Evidently decisions at the edge, if configured: the data plane compiles them (`edge::compile_all`).
    pub edge: Option<crate::config::EdgeEvidently>,
    pub metrics: Arc<DistMetrics>,
}

impl Distribution {
    pub fn pool(&self, target: Target) -> &Pool {
        match (target, &self.staging) {
            (Target::Staging, Some(staging)) => staging,
            _ => &self.primary,
        }
    }
}

/// What a snapshot is compiled from besides the config.
pub struct CompileInput<'a> {
    pub metrics: &'a Metrics,
    pub health: &'a HealthRegistry,
    /// Policies managed through the API, by id.
    pub policies: &'a BTreeMap<String, StoredPolicy>,
    /// Session epochs of the policies written in the file, by distribution id.
    pub inline_epochs: &'a HashMap<String, u64>,
    pub cd: CdSettings,
    /// The compiled Evidently features the edge evaluates.
    pub evidently: &'a crate::evidently::compile::EvSnapshot,
}

/// Which policy applies to a distribution (D2): the one written in the file, else the one pinned by
/// id, else the API policy that lists the distribution's `staging_dns_name`.
pub(crate) fn policy_for<'a>(
    d: &crate::config::DistributionConfig,
    policies: &'a BTreeMap<String, StoredPolicy>,
) -> Option<&'a StoredPolicy> {
    if d.inline_policy.is_some() {
        return None;
    }
    if let Some(id) = &d.policy_id {
        return policies.get(id);
    }
    let name = d.staging_dns_name.as_deref()?;
    policies.values().find(|p| p.config.staging_dns_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// Everything the data plane needs to route, compiled once per config change.
pub struct Routes {
    exact: HashMap<Box<str>, usize>,
    /// `*.example.com` is stored as `example.com` and matches exactly one more label.
    wildcard: HashMap<Box<str>, usize>,
    default: Option<usize>,
    pub distributions: Vec<Distribution>,
    pub cd: CdSettings,
    /// How long a refused origin is skipped, in milliseconds.
    pub unhealthy_for_ms: u64,
    /// Requests answered before any distribution took them (no such host, a bad Host).
    pub unrouted: Arc<crate::metrics::TargetMetrics>,
}

impl Routes {
    pub fn compile(config: &Config, input: CompileInput<'_>) -> Routes {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        let mut distributions = Vec::with_capacity(config.distributions.len());
        for (i, d) in config.distributions.iter().enumerate() {
            for domain in &d.domains {
                if domain == "*" {
                    default = Some(i);
                } else if let Some(parent) = domain.strip_prefix("*.") {
                    wildcard.insert(parent.into(), i);
                } else {
                    exact.insert(domain.as_str().into(), i);
                }
            }
            let rule = match (&d.staging, &d.inline_policy, policy_for(d, input.policies)) {
                (None, _, _) => Rule::None,
                (Some(_), Some(inline), _) => {
                    let epoch = input.inline_epochs.get(&d.id).copied().unwrap_or(0);
                    Rule::compile(inline, &format!("config:{}", d.id), epoch)
                }
                (Some(_), None, Some(p)) => Rule::compile(&p.config, &p.id, p.epoch),
                (Some(_), None, None) => Rule::None,
            };
            distributions.push(Distribution {
                id: d.id.as_str().into(),
                primary: Pool::compile(&d.primary, input.health),
                staging: d.staging.as_ref().map(|s| Pool::compile(s, input.health)),
                rule,
                edge: d.edge.clone(),
                metrics: input.metrics.distribution(&d.id),
            });
        }
        Routes {
            exact,
            wildcard,
            default,
            distributions,
            cd: input.cd,
            unhealthy_for_ms: config.upstream.unhealthy_for.as_millis() as u64,
            unrouted: input.metrics.unrouted_answers.clone(),
        }
    }

    /// The distribution serving `host` (a Host header or `:authority`, port allowed, any case).
    pub fn find(&self, host: &str) -> Option<&Distribution> {
        self.find_index(host).and_then(|i| self.distributions.get(i))
    }

    /// The index in [`Routes::distributions`] of the distribution serving `host`.
    pub fn find_index(&self, host: &str) -> Option<usize> {
        let host = strip_port(host);
        let i = self.lookup(host).or_else(|| {
            if host.bytes().any(|b| b.is_ascii_uppercase()) { self.lookup(&host.to_ascii_lowercase()) } else { None }
        });
        i.or(self.default)
    }

    fn lookup(&self, host: &str) -> Option<usize> {
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        // Byte searches: a `char` pattern decodes UTF-8 as it goes, a few times the cost on the request path.
        let dot = host.bytes().position(|b| b == b'.')?;
        self.wildcard.get(&host[dot + 1..]).copied()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop `:port`.
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.bytes().rposition(|b| b == b':') {
        Some(colon) if host.as_bytes()[colon + 1..].iter().all(u8::is_ascii_digit) => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn snapshot(domains: &[&[&str]]) -> Routes {
        let mut text = String::from("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
        for (i, ds) in domains.iter().enumerate() {
            let list: Vec<String> = ds.iter().map(|d| format!("\"{d}\"")).collect();
            text.push_str(&format!(
                "[[distribution]]\nid = \"d{i}\"\ndomains = [{}]\n[distribution.primary]\norigins = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n",
                list.join(", ")
            ));
        }
        let config = crate::config::parse(&text, "t", Path::new(".")).unwrap();
        Routes::compile(&config, test_input(&Metrics::default(), &HealthRegistry::default()))
    }

    fn test_input<'a>(metrics: &'a Metrics, health: &'a HealthRegistry) -> CompileInput<'a> {
        static NO_POLICIES: BTreeMap<String, StoredPolicy> = BTreeMap::new();
        static NO_EVIDENTLY: std::sync::LazyLock<crate::evidently::compile::EvSnapshot> =
            std::sync::LazyLock::new(Default::default);
        static NO_EPOCHS: std::sync::LazyLock<HashMap<String, u64>> = std::sync::LazyLock::new(HashMap::new);
        CompileInput {
            metrics,
            health,
            policies: &NO_POLICIES,
            inline_epochs: &NO_EPOCHS,
            cd: CdSettings {
                key: crate::cd::cookie::CookieKey::new(b"k"),
                cookie_name: "c".into(),
                cache_control_private: false,
                refresh: 10,
            },
            evidently: &NO_EVIDENTLY,
        }
    }

    fn id(s: &Routes, host: &str) -> Option<String> {
        s.find(host).map(|d| d.id.to_string())
    }

    #[test]
    fn host_matching_order() {
        let s = snapshot(&[&["shop.example.com"], &["*.example.com"], &["*"]]);
        assert_eq!(id(&s, "shop.example.com").as_deref(), Some("d0"));
        assert_eq!(id(&s, "SHOP.Example.com:8443").as_deref(), Some("d0"));
        assert_eq!(id(&s, "shop.example.com.").as_deref(), Some("d0"));
        assert_eq!(id(&s, "api.example.com").as_deref(), Some("d1"));
        assert_eq!(id(&s, "a.b.example.com").as_deref(), Some("d2"));
        assert_eq!(id(&s, "example.com").as_deref(), Some("d2"));
        assert_eq!(id(&s, "[::1]:80").as_deref(), Some("d2"));
    }

    #[test]
    fn no_default_means_no_match() {
        let s = snapshot(&[&["a.test"]]);
        assert!(s.find("b.test").is_none());
    }

    #[test]
    fn round_robin_visits_every_origin() {
        let s = snapshot(&[&["*"]]);
        let pool = &s.distributions[0].primary;
        let picks: Vec<_> = (0..4).map(|_| pool.pick().unwrap().label.to_string()).collect();
        assert_eq!(picks, ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:1", "http://127.0.0.1:2"]);
    }

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("a:80"), "a");
        assert_eq!(strip_port("a"), "a");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("a:"), "a", "an empty port is still a port");
        assert_eq!(strip_port("a:8x"), "a:8x", "not a port: kept");
        assert_eq!(strip_port("é.test:443"), "é.test", "slices on byte positions stay on char boundaries");
    }
}
