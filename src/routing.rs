//! The routing snapshot and the pure decisions over it: which distribution serves a host, primary or
//! staging, and which origin of the pool. Compiled from a [`Config`] off the request path; the data plane
//! reads it through an `ArcSwap` and never locks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use crate::config::{Config, PoolConfig, UpstreamProtocol};
use crate::metrics::{DistMetrics, Metrics};

/// Which origin pool serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Primary,
    Staging,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Staging => "staging",
        }
    }
}

/// Why a request went where it went; reaches the access log and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoPolicy = 0,
    Disabled = 1,
    HeaderMatch = 2,
    HeaderMiss = 3,
    Sticky = 4,
    WeightDraw = 5,
    StagingUnavailable = 6,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::NoPolicy,
        Reason::Disabled,
        Reason::HeaderMatch,
        Reason::HeaderMiss,
        Reason::Sticky,
        Reason::WeightDraw,
        Reason::StagingUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoPolicy => "no-policy",
            Reason::Disabled => "disabled",
            Reason::HeaderMatch => "header-match",
            Reason::HeaderMiss => "header-miss",
            Reason::Sticky => "sticky",
            Reason::WeightDraw => "weight-draw",
            Reason::StagingUnavailable => "staging-unavailable",
        }
    }
}

/// The routing decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub target: Target,
    pub reason: Reason,
}

/// One origin, ready to be put into an upstream URI.
#[derive(Debug)]
pub struct Origin {
    pub scheme: Scheme,
    pub authority: Authority,
    /// `scheme://authority`, for logs.
    pub label: Arc<str>,
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
    fn compile(p: &PoolConfig) -> Pool {
        let origins = p
            .origins
            .iter()
            .map(|o| Origin {
                scheme: o.scheme.clone(),
                authority: o.authority.clone(),
                label: o.to_string().into(),
            })
            .collect();
        Pool {
            origins,
            host: p.host.clone(),
            protocol: p.protocol,
            next: AtomicUsize::new(0),
        }
    }

    /// The next origin, round-robin. Validation guarantees a pool is never empty.
    pub fn pick(&self) -> Option<&Origin> {
        let n = self.origins.len();
        if n == 1 {
            return self.origins.first();
        }
        let i = self.next.fetch_add(1, Relaxed) % n.max(1);
        self.origins.get(i)
    }
}

pub struct Distribution {
    pub id: Arc<str>,
    pub primary: Pool,
    pub staging: Option<Pool>,
    pub metrics: Arc<DistMetrics>,
}

impl Distribution {
    pub fn pool(&self, target: Target) -> &Pool {
        match (target, &self.staging) {
            (Target::Staging, Some(staging)) => staging,
            _ => &self.primary,
        }
    }

    /// The routing seam: continuous deployment policies decide here. Until then every request goes to
    /// the primary pool.
    pub fn decide<B>(&self, _req: &http::Request<B>) -> Decision {
        Decision {
            target: Target::Primary,
            reason: Reason::NoPolicy,
        }
    }
}

/// Everything the data plane needs to route, compiled once per config change.
pub struct Snapshot {
    exact: HashMap<Box<str>, usize>,
    /// `*.example.com` is stored as `example.com` and matches exactly one more label.
    wildcard: HashMap<Box<str>, usize>,
    default: Option<usize>,
    pub distributions: Vec<Distribution>,
}

impl Snapshot {
    pub fn compile(config: &Config, metrics: &Metrics) -> Snapshot {
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
            distributions.push(Distribution {
                id: d.id.as_str().into(),
                primary: Pool::compile(&d.primary),
                staging: d.staging.as_ref().map(Pool::compile),
                metrics: metrics.distribution(&d.id),
            });
        }
        Snapshot {
            exact,
            wildcard,
            default,
            distributions,
        }
    }

    /// The distribution serving `host` (a Host header or `:authority`, port allowed, any case).
    pub fn find(&self, host: &str) -> Option<&Distribution> {
        self.find_index(host)
            .and_then(|i| self.distributions.get(i))
    }

    /// The index in [`Snapshot::distributions`] of the distribution serving `host`.
    pub fn find_index(&self, host: &str) -> Option<usize> {
        let host = strip_port(host);
        let i = self.lookup(host).or_else(|| {
            if host.bytes().any(|b| b.is_ascii_uppercase()) {
                self.lookup(&host.to_ascii_lowercase())
            } else {
                None
            }
        });
        i.or(self.default)
    }

    fn lookup(&self, host: &str) -> Option<usize> {
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop `:port`.
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn snapshot(domains: &[&[&str]]) -> Snapshot {
        let mut text = String::from("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
        for (i, ds) in domains.iter().enumerate() {
            let list: Vec<String> = ds.iter().map(|d| format!("\"{d}\"")).collect();
            text.push_str(&format!(
                "[[distribution]]\nid = \"d{i}\"\ndomains = [{}]\n[distribution.primary]\norigins = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n",
                list.join(", ")
            ));
        }
        let config = crate::config::parse(&text, "t", Path::new(".")).unwrap();
        Snapshot::compile(&config, &Metrics::default())
    }

    fn id(s: &Snapshot, host: &str) -> Option<String> {
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
        let picks: Vec<_> = (0..4)
            .map(|_| pool.pick().unwrap().label.to_string())
            .collect();
        assert_eq!(
            picks,
            [
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:1",
                "http://127.0.0.1:2"
            ]
        );
    }

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("a:80"), "a");
        assert_eq!(strip_port("a"), "a");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
