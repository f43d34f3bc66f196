//! Counters and histograms kept in atomics and written in the Prometheus text format on `/metrics`.
//! The request path only does relaxed atomic adds on handles resolved when the config was compiled.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::{Reason, Target};
use crate::rollout::guard::{ArmCounts, BUCKET_BOUNDS_US, BUCKETS, LatencyHistogram};

/// Upper bounds of the latency histogram on `/metrics`, in seconds: each is one of the guards' bucket
/// bounds (`rollout::guard::BUCKET_BOUNDS_US`), so one set of counters serves both.
const LATENCY_BOUNDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Latencies counted in the rollout guards' buckets (R10 from 250 µs to 63 s), which `/metrics` sums
/// into its coarser ones: an answer costs one add for its bucket and one for the sum.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        self.buckets[LatencyHistogram::bucket_of(d)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// The counts so far, as the guards read them.
    pub fn counts(&self) -> LatencyHistogram {
        LatencyHistogram::from_counts(std::array::from_fn(|i| self.buckets[i].load(Relaxed)))
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let counts = self.counts();
        let counts = counts.counts();
        let (mut cumulative, mut next) = (0, 0);
        for bound in LATENCY_BOUNDS {
            let us = (bound * 1e6).round() as u64;
            while next < BUCKET_BOUNDS_US.len() && BUCKET_BOUNDS_US[next] <= us {
                cumulative += counts[next];
                next += 1;
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count: u64 = counts.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Status classes counted: 1xx to 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Per distribution and target (primary, staging).
#[derive(Default)]
pub struct TargetMetrics {
    by_class: [AtomicU64; 5],
    pub latency: Histogram,
    /// What the guards of a rollout read.
    pub guard: GuardCounts,
}

impl TargetMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        self.latency.observe(elapsed);
    }
}

/// What a rollout's guards read beyond the answers and their latencies (`rollout::guard`): connections
/// staging refused before the request went to primary instead. The answers themselves are the by-class
/// counts (5xx, edgesplit's own 502 and 504 for connect failures and timeouts among them) and the latency
/// histogram, whose buckets are the guards': counting for the guards costs the request path nothing more.
/// Cumulative; the driver reads them at a step's start and subtracts.
#[derive(Default)]
pub struct GuardCounts {
    /// Connections refused, counted as errors with no latency.
    refused: AtomicU64,
}

impl GuardCounts {
    /// A connection this arm refused, whose request another arm answered.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }
}

impl TargetMetrics {
    /// The counts so far, for the guards.
    pub fn guard_counts(&self) -> ArmCounts {
        let refused = self.guard.refused.load(Relaxed);
        let answered: u64 = self.by_class.iter().map(|c| c.load(Relaxed)).sum();
        ArmCounts {
            requests: answered + refused,
            errors: self.by_class[4].load(Relaxed) + refused,
            latency: self.latency.counts(),
        }
    }
}

/// Everything counted for one distribution; survives reloads (looked up by id when compiling).
#[derive(Default)]
pub struct DistMetrics {
    pub primary: TargetMetrics,
    pub staging: TargetMetrics,
    decisions: [AtomicU64; Reason::ALL.len()],
}

impl DistMetrics {
    pub fn target(&self, t: Target) -> &TargetMetrics {
        match t {
            Target::Primary => &self.primary,
            Target::Staging => &self.staging,
        }
    }

    pub fn decision(&self, reason: Reason) {
        self.decisions[reason as usize].fetch_add(1, Relaxed);
    }
}

/// Kinds of upstream failure, each a counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UpstreamError {
    Connect = 0,
    Timeout = 1,
    Protocol = 2,
    /// Refused at `upstream.max_connections_per_origin` (a 503).
    Limit = 3,
}

impl UpstreamError {
    const NAMES: [&'static str; 4] = ["connect", "timeout", "protocol", "limit"];
}

/// project → feature → variation → reason → counter. Nested, so that a compile finds the counters that
/// exist by `&str`, without building keys (a compile asks for every feature × variation × reason).
type EvaluationCounters = BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, Arc<AtomicU64>>>>>;

/// The process-wide registry.
#[derive(Default)]
pub struct Metrics {
    dists: Mutex<BTreeMap<String, Arc<DistMetrics>>>,
    upstream_errors: [AtomicU64; UpstreamError::NAMES.len()],
    pub open_connections: AtomicI64,
    pub connections_total: AtomicU64,
    reload_ok: AtomicU64,
    reload_failed: AtomicU64,
    /// Requests for a host no distribution serves.
    pub unrouted: AtomicU64,
    /// Requests answered before any distribution took them: no such host (404), a bad Host (400), a
    /// head too large (431). In `edgesplit_requests_total` with empty distribution and target.
    pub unrouted_answers: Arc<TargetMetrics>,
    /// Client connections closed because a response waited `timeouts.client_send` for the client.
    pub send_timeouts: AtomicU64,
    /// Edge evaluations by (project, feature, variation, reason).
    evaluations: Mutex<EvaluationCounters>,
    /// The rollout driver's last reading, by distribution.
    rollouts: Mutex<BTreeMap<String, crate::rollout::Figures>>,
}

impl Metrics {
    /// The handle for a distribution; called when a config is compiled, never per request.
    pub fn distribution(&self, id: &str) -> Arc<DistMetrics> {
        let mut dists = self.dists.lock().unwrap_or_else(|e| e.into_inner());
        dists.entry(id.to_string()).or_default().clone()
    }

    /// The counter for one (project, feature, variation, reason); resolved when compiling, not per request.
    pub fn evaluation(&self, project: &str, feature: &str, variation: &str, reason: &'static str) -> Arc<AtomicU64> {
        let mut m = self.evaluations.lock().unwrap_or_else(|e| e.into_inner());
        let found =
            m.get(project).and_then(|f| f.get(feature)).and_then(|v| v.get(variation)).and_then(|r| r.get(reason));
        if let Some(counter) = found {
            return counter.clone();
        }
        let variations = m.entry(project.to_owned()).or_default().entry(feature.to_owned()).or_default();
        variations.entry(variation.to_owned()).or_default().entry(reason).or_default().clone()
    }

    /// Keeps the rollout driver's last reading of a distribution (`None` forgets it).
    pub fn set_rollout_figures(&self, distribution: &str, figures: Option<crate::rollout::Figures>) {
        let mut m = self.rollouts.lock().unwrap_or_else(|e| e.into_inner());
        match figures {
            Some(f) => m.insert(distribution.to_string(), f),
            None => m.remove(distribution),
        };
    }

    /// The rollout driver's last reading of a distribution.
    pub fn rollout_figures(&self, distribution: &str) -> Option<crate::rollout::Figures> {
        self.rollouts.lock().unwrap_or_else(|e| e.into_inner()).get(distribution).cloned()
    }

    pub(crate) fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn reload(&self, ok: bool) {
        if ok { &self.reload_ok } else { &self.reload_failed }.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let dists: Vec<(String, Arc<DistMetrics>)> = {
            let d = self.dists.lock().unwrap_or_else(|e| e.into_inner());
            d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        out.push_str("# HELP edgesplit_requests_total Requests answered, by distribution, target and status class.\n");
        out.push_str("# TYPE edgesplit_requests_total counter\n");
        for (id, m) in &dists {
            for (target, tm) in [("primary", &m.primary), ("staging", &m.staging)] {
                for (class, c) in CLASSES.iter().zip(&tm.by_class) {
                    let _ = writeln!(
                        out,
                        "edgesplit_requests_total{{distribution=\"{id}\",target=\"{target}\",status=\"{class}\"}} {}",
                        c.load(Relaxed)
                    );
                }
            }
        }
        for (class, c) in CLASSES.iter().zip(&self.unrouted_answers.by_class) {
            let _ = writeln!(
                out,
                "edgesplit_requests_total{{distribution=\"\",target=\"\",status=\"{class}\"}} {}",
                c.load(Relaxed)
            );
        }
        out.push_str("# HELP edgesplit_request_duration_seconds Time from request head to the end of the response.\n");
        out.push_str("# TYPE edgesplit_request_duration_seconds histogram\n");
        for (id, m) in &dists {
            for (target, tm) in [("primary", &m.primary), ("staging", &m.staging)] {
                let labels = format!("distribution=\"{id}\",target=\"{target}\"");
                tm.latency.render(&mut out, "edgesplit_request_duration_seconds", &labels);
            }
        }
        out.push_str("# HELP edgesplit_routing_decisions_total Routing decisions, by distribution and reason.\n");
        out.push_str("# TYPE edgesplit_routing_decisions_total counter\n");
        for (id, m) in &dists {
            for reason in Reason::ALL {
                let _ = writeln!(
                    out,
                    "edgesplit_routing_decisions_total{{distribution=\"{id}\",reason=\"{}\"}} {}",
                    reason.as_str(),
                    m.decisions[reason as usize].load(Relaxed)
                );
            }
        }
        out.push_str("# HELP edgesplit_evaluations_total Evidently evaluations at the edge, by project, feature, variation and reason.\n");
        out.push_str("# TYPE edgesplit_evaluations_total counter\n");
        {
            let m = self.evaluations.lock().unwrap_or_else(|e| e.into_inner());
            let counters = m.iter().flat_map(|(project, features)| {
                features.iter().flat_map(move |(feature, variations)| {
                    variations.iter().flat_map(move |(variation, reasons)| {
                        reasons.iter().map(move |(reason, c)| (project, feature, variation, reason, c))
                    })
                })
            });
            for (project, feature, variation, reason, c) in counters {
                let _ = writeln!(
                    out,
                    "edgesplit_evaluations_total{{project=\"{project}\",feature=\"{feature}\",variation=\"{variation}\",reason=\"{reason}\"}} {}",
                    c.load(Relaxed)
                );
            }
        }
        out.push_str("# HELP edgesplit_upstream_errors_total Failed upstream exchanges, by kind.\n");
        out.push_str("# TYPE edgesplit_upstream_errors_total counter\n");
        for (name, c) in UpstreamError::NAMES.iter().zip(&self.upstream_errors) {
            let _ = writeln!(out, "edgesplit_upstream_errors_total{{kind=\"{name}\"}} {}", c.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP edgesplit_unrouted_requests_total Requests for a host that no distribution serves (404).\n\
             # TYPE edgesplit_unrouted_requests_total counter\nedgesplit_unrouted_requests_total {}",
            self.unrouted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgesplit_send_timeouts_total Client connections closed because a response waited \
             timeouts.client_send for the client to read it.\n\
             # TYPE edgesplit_send_timeouts_total counter\nedgesplit_send_timeouts_total {}",
            self.send_timeouts.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgesplit_open_connections Client connections open now.\n\
             # TYPE edgesplit_open_connections gauge\nedgesplit_open_connections {}",
            self.open_connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgesplit_connections_total Client connections accepted.\n\
             # TYPE edgesplit_connections_total counter\nedgesplit_connections_total {}",
            self.connections_total.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgesplit_config_reloads_total Config reloads, by result.\n\
             # TYPE edgesplit_config_reloads_total counter\n\
             edgesplit_config_reloads_total{{result=\"ok\"}} {}\nedgesplit_config_reloads_total{{result=\"failed\"}} {}",
            self.reload_ok.load(Relaxed),
            self.reload_failed.load(Relaxed)
        );
        out
    }
}

impl Metrics {
    /// The rollout families: each rollout's state, step and weight, and the guards' figures per arm over
    /// the step's window (from the driver's last evaluation, on the instance that drives it).
    fn render_rollouts(&self, out: &mut String, rollouts: &[(String, crate::rollout::State, usize, f64)]) {
        out.push_str(
            "# HELP edgesplit_rollout_state A distribution's guarded rollout: 1 for the state it is in.\n\
             # TYPE edgesplit_rollout_state gauge\n",
        );
        for (d, state, _, _) in rollouts {
            for s in crate::rollout::State::ALL {
                let _ = writeln!(
                    out,
                    "edgesplit_rollout_state{{distribution=\"{}\",state=\"{}\"}} {}",
                    label(d),
                    s.as_str(),
                    u8::from(s == *state)
                );
            }
        }
        out.push_str(
            "# HELP edgesplit_rollout_step The rollout's current step, from 1.\n# TYPE edgesplit_rollout_step gauge\n",
        );
        for (d, _, step, _) in rollouts {
            let _ = writeln!(out, "edgesplit_rollout_step{{distribution=\"{}\"}} {step}", label(d));
        }
        out.push_str(
            "# HELP edgesplit_rollout_weight Staging's share in force, as the rollout set it.\n\
             # TYPE edgesplit_rollout_weight gauge\n",
        );
        for (d, _, _, weight) in rollouts {
            let _ = writeln!(out, "edgesplit_rollout_weight{{distribution=\"{}\"}} {weight}", label(d));
        }
        out.push_str(
            "# HELP edgesplit_rollout_guard_requests Requests in the current step's window, by arm.\n\
             # TYPE edgesplit_rollout_guard_requests gauge\n\
             # HELP edgesplit_rollout_guard_errors Errors (5xx, connect failures, timeouts) in the window, by arm.\n\
             # TYPE edgesplit_rollout_guard_errors gauge\n\
             # HELP edgesplit_rollout_guard_latency_seconds The latency guard's quantile in the window, by arm (its bucket's upper bound).\n\
             # TYPE edgesplit_rollout_guard_latency_seconds gauge\n\
             # HELP edgesplit_rollout_guard_breach 1 when the last evaluation found a breach.\n\
             # TYPE edgesplit_rollout_guard_breach gauge\n",
        );
        let figures = self.rollouts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (d, f) in &figures {
            for (target, arm) in [("primary", &f.primary), ("staging", &f.staging)] {
                let labels = format!("distribution=\"{}\",target=\"{target}\"", label(d));
                let _ = writeln!(out, "edgesplit_rollout_guard_requests{{{labels}}} {}", arm.requests);
                let _ = writeln!(out, "edgesplit_rollout_guard_errors{{{labels}}} {}", arm.errors);
                if let Some(ms) = arm.p99_ms {
                    let _ = writeln!(out, "edgesplit_rollout_guard_latency_seconds{{{labels}}} {}", ms / 1000.0);
                }
            }
            let _ = writeln!(
                out,
                "edgesplit_rollout_guard_breach{{distribution=\"{}\"}} {}",
                label(d),
                u8::from(f.verdict == "breach")
            );
        }
    }
}

/// A Prometheus label value: `\`, `"` and newlines escaped, as the text format requires.
/// One group of one running launch's metric monitor, aggregated from the stored moments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MonitorFigure {
    pub project: String,
    pub launch: String,
    pub metric: String,
    pub group: String,
    pub events: u64,
    pub mean: Option<f64>,
}

/// Figures kept outside the registry, gathered by their owners for one scrape.
#[derive(Debug, Default)]
pub(crate) struct Outside {
    /// Admin API calls refused by the SigV4 check, by reason.
    pub auth_denied: Vec<(&'static str, u64)>,
    /// Experiment assignments recorded, dropped, and (in a fleet) not shared with the other instances.
    pub exposures: (u64, u64, u64),
    /// Running launches' metric monitors.
    pub monitors: Vec<MonitorFigure>,
    /// The fleet store (PostgreSQL): reachable at the last call, and calls failed so far.
    pub store: Option<(bool, u64)>,
    /// Each distribution's rollout: (distribution, state, 1-based step, staging weight in force).
    pub rollouts: Vec<(String, crate::rollout::State, usize, f64)>,
}

impl Metrics {
    /// The whole `/metrics` page: the registry's families, then those gathered outside it. Every
    /// family's text is written in this module.
    pub(crate) fn render_all(&self, outside: &Outside) -> String {
        let mut out = self.render();
        out.push_str(
            "# HELP edgesplit_admin_auth_denied_total Admin API calls refused by the SigV4 check, by reason.\n\
             # TYPE edgesplit_admin_auth_denied_total counter\n",
        );
        for (reason, n) in &outside.auth_denied {
            let _ = writeln!(out, "edgesplit_admin_auth_denied_total{{reason=\"{reason}\"}} {n}");
        }
        self.render_rollouts(&mut out, &outside.rollouts);
        let (recorded, dropped, unshared) = outside.exposures;
        let _ = write!(
            out,
            "# HELP edgesplit_exposures_total Experiment assignments recorded for event attribution, by result.\n\
             # TYPE edgesplit_exposures_total counter\n\
             edgesplit_exposures_total{{result=\"recorded\"}} {recorded}\nedgesplit_exposures_total{{result=\"dropped\"}} {dropped}\n\
             edgesplit_exposures_total{{result=\"unshared\"}} {unshared}\n"
        );
        if let Some((up, failures)) = outside.store {
            let _ = write!(
                out,
                "# HELP edgesplit_store_up Whether the fleet store answered the last call (0: the control plane is degraded; the data plane serves its last snapshot).\n\
                 # TYPE edgesplit_store_up gauge\nedgesplit_store_up {}\n\
                 # HELP edgesplit_store_failures_total Fleet store calls that failed (connection lost, timeouts).\n\
                 # TYPE edgesplit_store_failures_total counter\nedgesplit_store_failures_total {failures}\n",
                u8::from(up)
            );
        }
        out.push_str(
            "# HELP edgesplit_launch_metric_events_total Events attributed to a running launch's metric monitor, by group.\n\
             # TYPE edgesplit_launch_metric_events_total counter\n\
             # HELP edgesplit_launch_metric_mean Mean of a running launch's monitored metric, by group.\n\
             # TYPE edgesplit_launch_metric_mean gauge\n",
        );
        for m in &outside.monitors {
            let labels = format!(
                "project=\"{}\",launch=\"{}\",metric=\"{}\",group=\"{}\"",
                label(&m.project),
                label(&m.launch),
                label(&m.metric),
                label(&m.group)
            );
            let _ = writeln!(out, "edgesplit_launch_metric_events_total{{{labels}}} {}", m.events);
            if let Some(mean) = m.mean {
                let _ = writeln!(out, "edgesplit_launch_metric_mean{{{labels}}} {mean}");
            }
        }
        out
    }
}

pub fn label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    std::borrow::Cow::Owned(v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"10\"} 2\n"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count{a=\"b\"} 3\n"));
    }

    #[test]
    fn every_prometheus_bound_is_a_guard_bucket_bound_and_edges_fall_alike() {
        for bound in LATENCY_BOUNDS {
            let us = (bound * 1e6).round() as u64;
            assert!(BUCKET_BOUNDS_US.contains(&us), "{bound} s is not a bound of the guards' buckets");
        }
        // A latency on a bound counts in it; a microsecond over, in the next.
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_millis(10));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.01\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 0.011001\n"), "{out}");
        assert_eq!(h.counts().count(), 3, "the guards read the same counts");
    }

    #[test]
    fn requests_are_counted_by_class() {
        let m = Metrics::default();
        let d = m.distribution("web");
        d.primary.record(200, Duration::from_millis(1));
        d.primary.record(503, Duration::from_millis(1));
        d.decision(Reason::NoPolicy);
        let text = m.render();
        assert!(text.contains("edgesplit_requests_total{distribution=\"web\",target=\"primary\",status=\"2xx\"} 1"));
        assert!(text.contains("edgesplit_requests_total{distribution=\"web\",target=\"primary\",status=\"5xx\"} 1"));
        assert!(text.contains("edgesplit_routing_decisions_total{distribution=\"web\",reason=\"no-policy\"} 1"));
    }

    #[test]
    fn evaluation_counters_are_shared_per_key_and_listed_in_key_order() {
        let m = Metrics::default();
        let a = m.evaluation("p", "f", "on", "DEFAULT");
        assert!(Arc::ptr_eq(&a, &m.evaluation("p", "f", "on", "DEFAULT")), "a recompile finds the same counter");
        a.fetch_add(2, Relaxed);
        m.evaluation("p", "f", "off", "LAUNCH_RULE_MATCH").fetch_add(1, Relaxed);
        m.evaluation("p", "f", "on", "ENTITY_OVERRIDES_MATCH");
        m.evaluation("a", "g", "x", "DEFAULT");
        let text = m.render();
        let lines: Vec<_> = text.lines().filter(|l| l.starts_with("edgesplit_evaluations_total{")).collect();
        assert_eq!(
            lines,
            [
                "edgesplit_evaluations_total{project=\"a\",feature=\"g\",variation=\"x\",reason=\"DEFAULT\"} 0",
                "edgesplit_evaluations_total{project=\"p\",feature=\"f\",variation=\"off\",reason=\"LAUNCH_RULE_MATCH\"} 1",
                "edgesplit_evaluations_total{project=\"p\",feature=\"f\",variation=\"on\",reason=\"DEFAULT\"} 2",
                "edgesplit_evaluations_total{project=\"p\",feature=\"f\",variation=\"on\",reason=\"ENTITY_OVERRIDES_MATCH\"} 0",
            ]
        );
    }
}
