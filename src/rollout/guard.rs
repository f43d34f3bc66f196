//! The guards of a rollout step: both arms' counts over the same window ([`ArmCounts`]: requests, errors, a
//! [`LatencyHistogram`]) in, a [`Verdict`] out: [`Verdict::Pass`], [`Verdict::NeedMore`] (which guard lacks
//! sample, and how many requests more), or a [`Breach`] whose `Display` is the reason a rollback gives.
//! Pure and synchronous; the normal distribution comes from `crate::evidently::stats`.
//!
//! # Counts
//! Every count is a plain `u64` sum over the window, so the counts of several fleet instances merge by addition
//! ([`ArmCounts::merge`]) and the guards read the whole fleet. An error is a 5xx answer, a connect failure or a
//! timeout; the latency histogram holds the requests that have a latency to record, so its count may be below
//! `requests`, and the latency guard reads that count as its sample.
//!
//! # The latency histogram
//! 55 upper bounds, the Renard R10 preferred numbers (ISO 3: 1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8 in each
//! decade, each about 1.259 times the one before) from 250 µs to 63 s, and an overflow bucket above 63 s. A
//! bucket holds the latencies in `(previous bound, bound]`. Round numbers read well in a reason ("p99 160 ms");
//! a quantile is reported as its bucket's upper bound, so it is overstated by less than one bucket's width
//! (28 % at most); and an arm's histogram is 56 counters, 448 bytes, cheap to send and merge.
//!
//! # Error-rate guard ([`ErrorRateGuard`])
//! With `x` errors out of `n` requests per arm (`p` primary, `s` staging), rates `p̂ = x/n`, the pooled rate
//! `p̄ = (x_s + x_p) / (n_s + n_p)` and the margin `m`, the statistic of the one-sided two-proportion z-test of
//! `H0: p_s ≤ p_p + m` against `H1: p_s > p_p + m` is
//!
//! `z = (p̂_s − p̂_p − m) / √(p̄·(1 − p̄)·(1/n_s + 1/n_p))`, with `p-value = 1 − Φ(z)`,
//!
//! and the guard breaches when `p < alpha`. The pooled variance is exact for `m = 0`. For `m > 0` the two
//! rates differ under `H0`'s boundary, and with equal arms the pooled `2·p̄(1 − p̄)` is at least
//! `p_s(1 − p_s) + p_p(1 − p_p)` (`x(1 − x)` is concave), so the test errs on the quiet side. The margin keeps
//! a tiny difference that enough traffic makes significant (1.0 % against 1.2 % over a million requests each,
//! `z = 13.6`) from rolling back. There is no test when neither arm has an error or both have only errors.
//! The optional `ceiling` is an absolute limit, a plain comparison and no test: a staging rate above it is a
//! breach once staging has the minimum sample, whatever primary does (and before primary has its own sample).
//!
//! # Latency guard ([`LatencyGuard`])
//! Let `n_p`, `n_s` be the latency counts, `q` the quantile, `r = ⌈q·n_p⌉` the rank of primary's q-quantile,
//! `B` the upper bound of the bucket that holds primary's `r`-th smallest latency, and `k` the staging latencies
//! above `B`. Under `H0` both arms draw from the same continuous distribution `F`, so `U = 1 − F(X_(r))` (the
//! share of the distribution above primary's `r`-th latency) is `Beta(n_p − r + 1, r)`, and given `U` the staging
//! latencies above `X_(r)` are `Binomial(n_s, U)`: the count `K` is beta-binomial `BB(n_s, n_p − r + 1, r)`, of
//! mean `n_s·(n_p − r + 1)/(n_p + 1) ≈ n_s·(1 − q)`. The p-value is its exact tail `P(K ≥ k)`, and the guard
//! breaches when `p < alpha` and staging's own q-quantile `S` (a bucket bound) is slower by the minimum
//! slowdown: `S ≥ B + min_slowdown` and `S ≥ B·(1 + min_slowdown_ratio)`. As `B ≥ X_(r)`, `k` never exceeds
//! the count above `X_(r)`: the buckets only make the test more conservative. The test depends on the ranks
//! alone, so it holds for any latency distribution.
//!
//! Why not `Binomial(n_s, 1 − q)`, the share above primary's quantile taken as known: with a few hundred
//! primary requests, that quantile is itself a noisy order statistic (at `n_p = 300`, the share of `F` above
//! primary's p99 averages 4/301 = 1.3 %, with a standard deviation of 0.66 %), and the binomial tail alarms
//! several times as often as `alpha` (6.8 times at 300 requests per arm in
//! `a_binomial_null_for_latency_would_alarm_too_often`).
//!
//! The optional `limit` is an absolute limit: a breach when staging's q-quantile bucket lies wholly above it
//! (the bucket's lower bound is at least the limit), once staging has the minimum sample.
//!
//! # False alarms and repeated looks
//! One evaluation of arms that behave alike breaches with probability at most about `alpha` per test (the
//! z-test's normal approximation is close at these sample sizes; the latency test is exact, then
//! conservative). A rollout evaluates again and again: over `L` evaluations and two guards the chance of
//! any false alarm is at most `2·L·alpha` (the union bound), and lower in practice because evaluations of
//! growing cumulative counts are strongly correlated. The margin and the minimum slowdown lower it further
//! when the arms really are alike. The tests measure both by simulation, at alpha 0.001 with both arms at 1 %
//! errors and the same latencies: per evaluation, the z-test alarms at 0.0001 to 0.001 (500 to 10,000 requests
//! per arm) and the latency test never (0 in 20,000, the buckets at work); over 60 looks of growing counts (to
//! 6,000 requests per arm), 1.2 % of runs see a false alarm from the tests alone, none with the defaults.
//!
//! # Traffic needed
//! To detect primary rate `p₁` against staging rate `p₂` with probability `power`, the error-rate test needs
//! about `n = (z_{1−α}·√(2·p̄(1 − p̄)) + z_{power}·√(p₁(1 − p₁) + p₂(1 − p₂)))² / (p₂ − p₁ − m)²` requests per
//! arm, with `p̄ = (p₁ + p₂)/2` ([`requests_needed`]). For 1 % against 3 % at `alpha = 0.001` and 90 %
//! power: 1,871 per arm with no margin, 2,309 with the default margin of 0.2 points (the simulation finds
//! 1,800 and 2,300). The latency test needs little when every staging request is slower: +200 ms on an origin
//! whose p99 is 204 ms is found 9 times in 10 with 7 requests per arm, so the minimum sample decides; a
//! slowdown of 5 % of the requests needs about 3,000 per arm.

use std::fmt;
use std::time::Duration;

use crate::evidently::stats::{norm_ppf, norm_sf};

/// Renard R10 mantissas, in hundredths: 1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8.
const R10: [u64; 10] = [100, 125, 160, 200, 250, 315, 400, 500, 630, 800];

/// The histogram's buckets: the bounded ones and the overflow bucket above the last bound.
pub const BUCKETS: usize = 56;

/// The buckets' upper bounds in microseconds: R10 from 250 µs to 63 s (see the module doc).
pub const BUCKET_BOUNDS_US: [u64; BUCKETS - 1] = r10_bounds();

const fn r10_bounds() -> [u64; BUCKETS - 1] {
    let mut out = [0; BUCKETS - 1];
    // 250 µs is the mantissa 2.5 in the decade that starts at 100 µs, where a hundredth is 1 µs.
    let (mut i, mut mantissa, mut hundredth_us) = (0, 4, 1);
    while i < out.len() {
        out[i] = R10[mantissa] * hundredth_us;
        i += 1;
        mantissa += 1;
        if mantissa == R10.len() {
            mantissa = 0;
            hundredth_us *= 10;
        }
    }
    out
}

/// Latencies counted in fixed log-spaced buckets ([`BUCKET_BOUNDS_US`]); merging is adding the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: [0; BUCKETS] }
    }
}

impl LatencyHistogram {
    /// A histogram from its bucket counts, as [`LatencyHistogram::counts`] gave them (another instance's).
    pub fn from_counts(counts: [u64; BUCKETS]) -> Self {
        LatencyHistogram { counts }
    }

    /// The bucket counts, the last one the overflow bucket.
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// The index of the bucket that holds `latency`: the first whose bound is at least `latency`, or the
    /// overflow bucket `BUCKETS - 1`.
    pub fn bucket_of(latency: Duration) -> usize {
        // Whole microseconds rounded up, so that a latency a nanosecond above a bound is above it.
        let us = latency.as_nanos().div_ceil(1_000);
        BUCKET_BOUNDS_US.partition_point(|&bound| u128::from(bound) < us)
    }

    /// The upper bound of bucket `index`; `None` for the overflow bucket (and past it).
    pub fn upper_bound(index: usize) -> Option<Duration> {
        BUCKET_BOUNDS_US.get(index).map(|&us| Duration::from_micros(us))
    }

    /// The lower bound of bucket `index` (exclusive: the bucket holds latencies above it).
    pub fn lower_bound(index: usize) -> Duration {
        match index.checked_sub(1) {
            None => Duration::ZERO,
            Some(previous) => Duration::from_micros(BUCKET_BOUNDS_US.get(previous).copied().unwrap_or(u64::MAX)),
        }
    }

    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        if let Some(count) = self.counts.get_mut(Self::bucket_of(latency)) {
            *count = count.saturating_add(1);
        }
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The latencies counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |sum, &c| sum.saturating_add(c))
    }

    /// The latencies counted in the buckets above bucket `index`, that is, above its upper bound.
    pub fn count_above(&self, index: usize) -> u64 {
        self.counts.iter().skip(index.saturating_add(1)).fold(0, |sum, &c| sum.saturating_add(c))
    }

    /// The index of the bucket that holds the q-quantile, the `⌈q·n⌉`-th smallest latency; `None` when the
    /// histogram is empty or `q` is outside `(0, 1]`.
    pub fn quantile_index(&self, q: f64) -> Option<usize> {
        self.index_of_rank(rank(q, self.count())?)
    }

    /// The q-quantile as the upper bound of the bucket that holds it, `Duration::MAX` when that is the overflow
    /// bucket; `None` when the histogram is empty or `q` is outside `(0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.quantile_index(q).map(|i| Self::upper_bound(i).unwrap_or(Duration::MAX))
    }

    /// The bucket that holds the `r`-th smallest latency (`r` from 1).
    fn index_of_rank(&self, r: u64) -> Option<usize> {
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= r {
                return Some(i);
            }
        }
        None
    }
}

/// The rank of the q-quantile among `n` values, `⌈q·n⌉` within `1..=n` (a hair below an integer `q·n`
/// rounds to it, so that 0.99 · 300 is rank 297 whatever the last bit of 0.99).
fn rank(q: f64, n: u64) -> Option<u64> {
    if !(q > 0.0 && q <= 1.0) || n == 0 {
        return None;
    }
    let r = (q * n as f64 - 1e-9).ceil();
    Some((r as u64).clamp(1, n))
}

/// One arm's counts over an evaluation window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArmCounts {
    /// Requests sent to the arm.
    pub requests: u64,
    /// Of those, the 5xx answers, connect failures and timeouts.
    pub errors: u64,
    /// The latencies of the requests that have one to record.
    pub latency: LatencyHistogram,
}

impl ArmCounts {
    /// Counts one request: an error or not, and its latency when it has one (a connect failure may not).
    pub fn record(&mut self, error: bool, latency: Option<Duration>) {
        self.requests = self.requests.saturating_add(1);
        if error {
            self.errors = self.errors.saturating_add(1);
        }
        if let Some(latency) = latency {
            self.latency.record(latency);
        }
    }

    /// Adds another window's or instance's counts to these.
    /// The counts added since `earlier`, both cumulative counts of the same arm (a window from two
    /// readings of the same counters).
    pub fn since(&self, earlier: &ArmCounts) -> ArmCounts {
        let mut counts = [0; BUCKETS];
        for ((c, now), then) in counts.iter_mut().zip(self.latency.counts()).zip(earlier.latency.counts()) {
            *c = now.saturating_sub(*then);
        }
        ArmCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            latency: LatencyHistogram::from_counts(counts),
        }
    }

    pub fn merge(&mut self, other: &ArmCounts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.latency.merge(&other.latency);
    }

    /// The errors and requests, as the error-rate guard reads them.
    pub fn error_rate(&self) -> Rate {
        Rate { errors: self.errors.min(self.requests), requests: self.requests }
    }
}

/// The guards of a rollout step; a guard left out (JSON `null`) is not checked, one not named has its
/// defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Staging's error rate against primary's, and against a ceiling.
    pub error_rate: Option<ErrorRateGuard>,
    /// Staging's latency quantile against primary's, and against a limit.
    pub latency: Option<LatencyGuard>,
}

impl Default for GuardConfig {
    /// Both guards, with their defaults.
    fn default() -> Self {
        GuardConfig { error_rate: Some(ErrorRateGuard::default()), latency: Some(LatencyGuard::default()) }
    }
}

/// Staging's error rate against primary's: the one-sided two-proportion z-test of the module doc.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorRateGuard {
    /// The test's false-alarm probability per evaluation (one-sided).
    pub alpha: f64,
    /// Requests each arm needs before the test runs (and staging before the ceiling applies).
    pub min_requests: u64,
    /// How far above primary's rate staging's may be without a breach, as a fraction (0.002 = 0.2 points).
    pub margin: f64,
    /// An absolute limit on staging's observed rate, as a fraction (0.05 = 5 %).
    pub ceiling: Option<f64>,
}

impl Default for ErrorRateGuard {
    /// alpha 0.001; 500 requests per arm, so that the test sees about five errors per arm at 1 %; a margin of
    /// 0.2 points, which costs a quarter more traffic to detect 1 % → 3 % (2,309 against 1,870 requests per arm);
    /// a 5 % ceiling.
    fn default() -> Self {
        ErrorRateGuard { alpha: 0.001, min_requests: 500, margin: 0.002, ceiling: Some(0.05) }
    }
}

/// Staging's latency quantile against primary's: the exceedance test of the module doc.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyGuard {
    /// The quantile compared, in `(0, 1)`: 0.99 compares the p99.
    pub quantile: f64,
    /// The test's false-alarm probability per evaluation (one-sided).
    pub alpha: f64,
    /// Latencies each arm needs before the test runs (and staging before the limit applies).
    pub min_requests: u64,
    /// How much slower staging's quantile must be than primary's, at least, for a breach.
    #[serde(with = "super::duration")]
    pub min_slowdown: Duration,
    /// And by how much, relatively (0.2 = 20 % slower).
    pub min_slowdown_ratio: f64,
    /// An absolute limit on staging's quantile.
    #[serde(with = "super::duration::option")]
    pub limit: Option<Duration>,
}

impl Default for LatencyGuard {
    /// p99; alpha 0.001; 300 latencies per arm, so that three lie above primary's p99; a slowdown of at least
    /// 50 ms and 20 % (one bucket up is 25 % or more, so the ratio asks for one bucket; the 50 ms keeps a
    /// fast origin, p99 5 ms, from rolling back over 2 ms); no absolute limit.
    fn default() -> Self {
        LatencyGuard {
            quantile: 0.99,
            alpha: 0.001,
            min_requests: 300,
            min_slowdown: Duration::from_millis(50),
            min_slowdown_ratio: 0.2,
            limit: None,
        }
    }
}

/// Which guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    ErrorRate,
    Latency,
}

impl Guard {
    /// The guard's name in a reason, a log line or a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Guard::ErrorRate => "error rate",
            Guard::Latency => "latency",
        }
    }
}

/// A guard that lacks sample, and how many requests more each arm needs (0 when it has enough).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub guard: Guard,
    /// More requests (latencies, for the latency guard) primary needs.
    pub primary: u64,
    /// More requests (latencies, for the latency guard) staging needs.
    pub staging: u64,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every guard has its sample and none breached.
    Pass,
    /// No guard breached, and these lack sample.
    NeedMore { shortfalls: Vec<Shortfall> },
    /// A guard breached: roll back. The first found, in the order error-rate test, error ceiling, latency test,
    /// latency limit.
    Breach(Breach),
}

/// Errors out of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub errors: u64,
    pub requests: u64,
}

impl Rate {
    /// The fraction; 0 with no requests.
    pub fn value(self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.errors as f64 / self.requests as f64 }
    }
}

/// One arm's latency quantile (a bucket bound, `Duration::MAX` for the overflow bucket) and its sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmQuantile {
    /// The quantile's bucket bound.
    pub value: Duration,
    /// The latencies it was read from.
    pub requests: u64,
}

/// Why staging is rolled back: the guard, both arms' figures and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Breach {
    /// The two-proportion test: staging's rate exceeds primary's plus `margin`, at `p < alpha`.
    ErrorRate { primary: Rate, staging: Rate, margin: f64, z: f64, p: f64, alpha: f64 },
    /// Staging's observed rate is above the absolute ceiling.
    ErrorCeiling { primary: Rate, staging: Rate, ceiling: f64 },
    /// The exceedance test: `staging_above` of staging's latencies lie above primary's q-quantile, at `p < alpha`,
    /// and staging's own q-quantile is slower by the minimum slowdown.
    Latency { quantile: f64, primary: ArmQuantile, staging: ArmQuantile, staging_above: u64, p: f64, alpha: f64 },
    /// Staging's q-quantile lies wholly above the absolute limit (`primary` is `None` with no primary latency).
    LatencyLimit { quantile: f64, primary: Option<ArmQuantile>, staging: ArmQuantile, limit: Duration },
}

impl Breach {
    /// The guard that breached.
    pub fn guard(&self) -> Guard {
        match self {
            Breach::ErrorRate { .. } | Breach::ErrorCeiling { .. } => Guard::ErrorRate,
            Breach::Latency { .. } | Breach::LatencyLimit { .. } => Guard::Latency,
        }
    }
}

/// Checks both arms' counts against the guards.
pub fn evaluate(config: &GuardConfig, primary: &ArmCounts, staging: &ArmCounts) -> Verdict {
    let mut shortfalls = Vec::new();
    if let Some(guard) = &config.error_rate {
        match check_error_rate(guard, primary, staging) {
            Check::Pass => {}
            Check::NeedMore(shortfall) => shortfalls.push(shortfall),
            Check::Breach(breach) => return Verdict::Breach(breach),
        }
    }
    if let Some(guard) = &config.latency {
        match check_latency(guard, primary, staging) {
            Check::Pass => {}
            Check::NeedMore(shortfall) => shortfalls.push(shortfall),
            Check::Breach(breach) => return Verdict::Breach(breach),
        }
    }
    if shortfalls.is_empty() { Verdict::Pass } else { Verdict::NeedMore { shortfalls } }
}

/// Requests per arm the error-rate test needs to detect `primary_rate` against `staging_rate` with
/// probability `power` (the normal approximation of the module doc), and at least the guard's minimum;
/// `None` when the difference does not exceed the margin or an input is out of range.
pub fn requests_needed(guard: &ErrorRateGuard, primary_rate: f64, staging_rate: f64, power: f64) -> Option<u64> {
    let effect = staging_rate - primary_rate - guard.margin;
    let rates_ok = (0.0..=1.0).contains(&primary_rate) && (0.0..=1.0).contains(&staging_rate);
    if !(effect > 0.0 && rates_ok) {
        return None;
    }
    let z_alpha = norm_ppf(1.0 - guard.alpha)?;
    let z_power = norm_ppf(power)?;
    let mean = (primary_rate + staging_rate) / 2.0;
    let null_sd = (2.0 * mean * (1.0 - mean)).sqrt();
    let alt_sd = (primary_rate * (1.0 - primary_rate) + staging_rate * (1.0 - staging_rate)).sqrt();
    let n = ((z_alpha * null_sd + z_power * alt_sd) / effect).powi(2).ceil();
    n.is_finite().then(|| (n as u64).max(guard.min_requests))
}

enum Check {
    Pass,
    NeedMore(Shortfall),
    Breach(Breach),
}

fn check_error_rate(guard: &ErrorRateGuard, primary: &ArmCounts, staging: &ArmCounts) -> Check {
    let (p, s) = (primary.error_rate(), staging.error_rate());
    let need = Shortfall {
        guard: Guard::ErrorRate,
        primary: guard.min_requests.saturating_sub(p.requests),
        staging: guard.min_requests.saturating_sub(s.requests),
    };
    if need.primary == 0
        && need.staging == 0
        && let Some((z, pv)) = two_proportion(p, s, guard.margin)
        && pv < guard.alpha
    {
        return Check::Breach(Breach::ErrorRate {
            primary: p,
            staging: s,
            margin: guard.margin,
            z,
            p: pv,
            alpha: guard.alpha,
        });
    }
    if need.staging == 0
        && let Some(ceiling) = guard.ceiling
        && s.value() > ceiling
    {
        return Check::Breach(Breach::ErrorCeiling { primary: p, staging: s, ceiling });
    }
    if need.primary > 0 || need.staging > 0 { Check::NeedMore(need) } else { Check::Pass }
}

fn check_latency(guard: &LatencyGuard, primary: &ArmCounts, staging: &ArmCounts) -> Check {
    let (hp, hs) = (&primary.latency, &staging.latency);
    let (n_p, n_s) = (hp.count(), hs.count());
    let need = Shortfall {
        guard: Guard::Latency,
        primary: guard.min_requests.saturating_sub(n_p),
        staging: guard.min_requests.saturating_sub(n_s),
    };
    let q = guard.quantile;
    let staging_index = hs.quantile_index(q);
    let arm = |index: usize, requests: u64| ArmQuantile {
        value: LatencyHistogram::upper_bound(index).unwrap_or(Duration::MAX),
        requests,
    };
    if need.primary == 0
        && need.staging == 0
        && let Some(r) = rank(q, n_p)
        && let Some(primary_index) = hp.index_of_rank(r)
        && let Some(staging_index) = staging_index
    {
        let above = hs.count_above(primary_index);
        let (b, s) = (arm(primary_index, n_p), arm(staging_index, n_s));
        let slower = s.value >= b.value.saturating_add(guard.min_slowdown)
            && s.value.as_secs_f64() >= b.value.as_secs_f64() * (1.0 + guard.min_slowdown_ratio);
        if slower
            && let Some(pv) = beta_binomial_sf(n_s, above, n_p - r + 1, r)
            && pv < guard.alpha
        {
            return Check::Breach(Breach::Latency {
                quantile: q,
                primary: b,
                staging: s,
                staging_above: above,
                p: pv,
                alpha: guard.alpha,
            });
        }
    }
    if need.staging == 0
        && let Some(limit) = guard.limit
        && let Some(staging_index) = staging_index
        && LatencyHistogram::lower_bound(staging_index) >= limit
    {
        let primary = hp.quantile_index(q).map(|i| arm(i, n_p));
        return Check::Breach(Breach::LatencyLimit { quantile: q, primary, staging: arm(staging_index, n_s), limit });
    }
    if need.primary > 0 || need.staging > 0 { Check::NeedMore(need) } else { Check::Pass }
}

/// The pooled one-sided two-proportion z statistic of `H0: p_s ≤ p_p + margin` and its p-value; `None`
/// when an arm has no requests or the pooled rate is 0 or 1 (no variance).
fn two_proportion(primary: Rate, staging: Rate, margin: f64) -> Option<(f64, f64)> {
    if primary.requests == 0 || staging.requests == 0 {
        return None;
    }
    let (n_p, n_s) = (primary.requests as f64, staging.requests as f64);
    let pooled = (primary.errors as f64 + staging.errors as f64) / (n_p + n_s);
    let se = (pooled * (1.0 - pooled) * (1.0 / n_s + 1.0 / n_p)).sqrt();
    if !(se > 0.0 && se.is_finite()) {
        return None;
    }
    let z = (staging.value() - primary.value() - margin) / se;
    Some((z, norm_sf(z)?))
}

/// `P(K ≥ k)` for `K ~ BB(n, a, b)`, the beta-binomial with integer `a, b ≥ 1`: the exceedance test's p-value.
///
/// `P(0) = B(a, n + b) / B(a, b) = Π_{m<a} (b + m)/(n + b + m)` (the gamma functions telescope for an integer
/// `a`, which is small: about `n_p·(1 − q)`), and `P(j + 1)/P(j) = (n − j)(j + a) / ((j + 1)(n − j − 1 + b))`.
/// The walk to `P(k)` keeps a mantissa and a log scale so that nothing underflows, then the tail is summed
/// relative to `P(k)` until a term no longer counts.
fn beta_binomial_sf(n: u64, k: u64, a: u64, b: u64) -> Option<f64> {
    if k == 0 {
        return Some(1.0);
    }
    if k > n {
        return Some(0.0);
    }
    if a == 0 || b == 0 {
        return None;
    }
    let (nf, af, bf) = (n as f64, a as f64, b as f64);
    let ratio = |j: f64| (nf - j) * (j + af) / ((j + 1.0) * (nf - j - 1.0 + bf));
    let mut ln_scale: f64 = (0..a).map(|m| (-nf / (nf + bf + m as f64)).ln_1p()).sum();
    // P(k) = mantissa · e^ln_scale.
    let mut mantissa = 1.0;
    for j in 0..k {
        mantissa *= ratio(j as f64);
        if mantissa < 1e-200 {
            ln_scale += mantissa.ln();
            mantissa = 1.0;
        }
    }
    ln_scale += mantissa.ln();
    // Σ_{j ≥ k} P(j) / P(k), rescaled when the terms grow (k below the mode).
    let (mut sum, mut term) = (1.0f64, 1.0f64);
    for j in k..n {
        term *= ratio(j as f64);
        sum += term;
        if sum > 1e200 {
            ln_scale += sum.ln();
            term /= sum;
            sum = 1.0;
        }
        if term <= sum * 1e-17 {
            break;
        }
    }
    let p = (ln_scale + sum.ln()).exp();
    p.is_finite().then_some(p.min(1.0))
}

// === Display: the reasons a rollback gives, in a log line and in the API ===

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Rate {
    /// `7.9 % (79/1000)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", Percent(self.value()), self.errors, self.requests)
    }
}

impl fmt::Display for Shortfall {
    /// `error rate needs 120 more primary and 300 more staging requests`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.guard == Guard::Latency { "latencies" } else { "requests" };
        match (self.primary, self.staging) {
            (0, s) => write!(f, "{} needs {s} more staging {what}", self.guard),
            (p, 0) => write!(f, "{} needs {p} more primary {what}", self.guard),
            (p, s) => write!(f, "{} needs {p} more primary and {s} more staging {what}", self.guard),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => f.write_str("pass"),
            Verdict::NeedMore { shortfalls } => {
                for (i, shortfall) in shortfalls.iter().enumerate() {
                    write!(f, "{}{shortfall}", if i == 0 { "" } else { "; " })?;
                }
                Ok(())
            }
            Verdict::Breach(breach) => write!(f, "breach: {breach}"),
        }
    }
}

impl fmt::Display for Breach {
    /// One line naming the guard, both arms' figures and the verdict, e.g. `error rate: staging 7.9 % (79/1000)
    /// vs primary 1.0 % (10/1000), one-sided two-proportion z = 7.5, p = 4e-14 < alpha 0.001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::ErrorRate { primary, staging, margin, z, p, alpha } => {
                write!(f, "error rate: staging {staging} vs primary {primary}, one-sided two-proportion z = {z:.1}")?;
                if *margin > 0.0 {
                    write!(f, " over a margin of {} points", Number(margin * 100.0))?;
                }
                write!(f, ", p = {} < alpha {alpha}", PValue(*p))
            }
            Breach::ErrorCeiling { primary, staging, ceiling } => {
                write!(f, "error rate: staging {staging} above the {} ceiling (primary {primary})", Percent(*ceiling))
            }
            Breach::Latency { quantile, primary, staging, staging_above, p, alpha } => {
                let q = Number(quantile * 100.0);
                write!(
                    f,
                    "p{q} latency: staging {} vs primary {} ({} requests), {staging_above} of {} staging requests \
                     above primary's p{q} ({} expected), one-sided exceedance test p = {} < alpha {alpha}",
                    Latency(staging.value),
                    Latency(primary.value),
                    primary.requests,
                    staging.requests,
                    Percent(1.0 - quantile),
                    PValue(*p),
                )
            }
            Breach::LatencyLimit { quantile, primary, staging, limit } => {
                let q = Number(quantile * 100.0);
                write!(
                    f,
                    "p{q} latency: staging {} ({} requests) above the {} limit",
                    Latency(staging.value),
                    staging.requests,
                    Latency(*limit),
                )?;
                match primary {
                    Some(primary) => {
                        write!(f, " (primary {} ({} requests))", Latency(primary.value), primary.requests)
                    }
                    None => f.write_str(" (primary has no latency yet)"),
                }
            }
        }
    }
}

/// A figure without trailing zeros, to 6 decimals: `99`, `99.9`, `0.2`.
struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", (self.0 * 1e6).round() / 1e6)
    }
}

/// A fraction as a percentage: `7.9 %`, and two decimals below 1 % (`0.25 %`).
struct Percent(f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = self.0 * 100.0;
        if pct != 0.0 && pct.abs() < 1.0 { write!(f, "{pct:.2} %") } else { write!(f, "{pct:.1} %") }
    }
}

/// A p-value to one significant digit: `4e-14`; below the smallest normal double, `< 1e-300`.
struct PValue(f64);

impl fmt::Display for PValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1e-300 { f.write_str("< 1e-300") } else { write!(f, "{:.0e}", self.0) }
    }
}

/// A latency: `250 µs`, `12.5 ms`, `1.6 s`; `Duration::MAX` (the overflow bucket) as `> 63 s`.
struct Latency(Duration);

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if self.0 == Duration::MAX {
            let last = BUCKET_BOUNDS_US.last().copied().unwrap_or(0);
            write!(f, "> {}", Latency(Duration::from_micros(last)))
        } else if us < 1_000 {
            write!(f, "{us} µs")
        } else if us < 1_000_000 {
            write!(f, "{} ms", Number(us as f64 / 1e3))
        } else {
            write!(f, "{} s", Number(us as f64 / 1e6))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point
mod tests {
    use super::*;
    use fastrand::Rng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[track_caller]
    fn close(got: f64, want: f64, rel: f64) {
        assert!((got - want).abs() <= rel * want.abs(), "got {got:e}, want {want:e}");
    }

    fn rate(errors: u64, requests: u64) -> Rate {
        Rate { errors, requests }
    }

    /// An arm with error counts only.
    fn counts(requests: u64, errors: u64) -> ArmCounts {
        ArmCounts { requests, errors, latency: LatencyHistogram::default() }
    }

    /// An arm of `n` requests without errors, every one with this latency.
    fn steady(n: u64, latency: Duration) -> ArmCounts {
        let mut arm = ArmCounts::default();
        for _ in 0..n {
            arm.record(false, Some(latency));
        }
        arm
    }

    fn errors_only(margin: f64) -> GuardConfig {
        GuardConfig {
            error_rate: Some(ErrorRateGuard { margin, ceiling: None, ..ErrorRateGuard::default() }),
            latency: None,
        }
    }

    fn latency_only(min_slowdown: Duration, min_slowdown_ratio: f64) -> GuardConfig {
        GuardConfig {
            error_rate: None,
            latency: Some(LatencyGuard { min_slowdown, min_slowdown_ratio, ..LatencyGuard::default() }),
        }
    }

    fn breached(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Breach(_))
    }

    /// Binomial(n, p) by the geometric gaps between successes: about n·p draws instead of n.
    fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
        let ln_miss = (1.0 - p).ln();
        let (mut successes, mut trial) = (0, 0u64);
        loop {
            let u = 1.0 - rng.f64(); // (0, 1]
            trial += (u.ln() / ln_miss).floor() as u64 + 1;
            if trial > n {
                return successes;
            }
            successes += 1;
        }
    }

    /// A log-normal latency: `median · e^(σ·Z)`, Z standard normal by Box–Muller.
    fn lognormal(rng: &mut Rng, median_ms: f64, sigma: f64) -> Duration {
        let (u1, u2) = (1.0 - rng.f64(), rng.f64());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        Duration::from_secs_f64(median_ms / 1e3 * (sigma * z).exp())
    }

    /// The origin both arms share in the simulations: 1 % errors, latencies log-normal with a median of 40 ms and
    /// σ = 0.7 (p99 ≈ 204 ms). `slow` of the requests take `extra` longer.
    fn add_requests(rng: &mut Rng, arm: &mut ArmCounts, n: u64, slow: f64, extra: Duration) {
        arm.requests += n;
        arm.errors += binomial(rng, n, 0.01);
        for _ in 0..n {
            let mut latency = lognormal(rng, 40.0, 0.7);
            if slow > 0.0 && rng.f64() < slow {
                latency += extra;
            }
            arm.latency.record(latency);
        }
    }

    fn arm(rng: &mut Rng, n: u64, slow: f64, extra: Duration) -> ArmCounts {
        let mut arm = ArmCounts::default();
        add_requests(rng, &mut arm, n, slow, extra);
        arm
    }

    // === the histogram ===

    #[test]
    fn bounds_are_r10_from_250_us_to_63_s() {
        assert_eq!(BUCKET_BOUNDS_US[..12], [250, 315, 400, 500, 630, 800, 1_000, 1_250, 1_600, 2_000, 2_500, 3_150]);
        assert_eq!(BUCKET_BOUNDS_US[BUCKETS - 2], 63_000_000);
        for pair in BUCKET_BOUNDS_US.windows(2) {
            let ratio = pair[1] as f64 / pair[0] as f64;
            assert!((1.24..=1.28).contains(&ratio), "{} -> {}: ×{ratio}", pair[0], pair[1]);
        }
    }

    #[test]
    fn a_latency_lands_in_the_bucket_whose_bounds_hold_it() {
        let of = LatencyHistogram::bucket_of;
        assert_eq!(of(Duration::ZERO), 0);
        assert_eq!(of(Duration::from_micros(250)), 0, "a bucket holds its upper bound");
        assert_eq!(of(Duration::from_nanos(250_001)), 1, "and nothing above it");
        let i100 = of(ms(100));
        assert_eq!(LatencyHistogram::upper_bound(i100), Some(ms(100)));
        assert_eq!(LatencyHistogram::lower_bound(i100), ms(80));
        assert_eq!(of(Duration::from_nanos(100_000_001)), i100 + 1);
        assert_eq!(of(ms(63_000)), BUCKETS - 2);
        assert_eq!(of(ms(63_001)), BUCKETS - 1);
        assert_eq!(of(Duration::MAX), BUCKETS - 1);
        assert_eq!(LatencyHistogram::upper_bound(BUCKETS - 1), None);
        assert_eq!(LatencyHistogram::lower_bound(0), Duration::ZERO);
        assert_eq!(LatencyHistogram::lower_bound(BUCKETS - 1), ms(63_000));
    }

    #[test]
    fn the_rank_of_a_quantile_is_the_ceiling_of_q_n() {
        assert_eq!(rank(0.99, 300), Some(297));
        assert_eq!(rank(0.99, 100), Some(99));
        assert_eq!(rank(0.99, 301), Some(298));
        assert_eq!(rank(0.999, 1_000), Some(999));
        assert_eq!(rank(0.5, 3), Some(2));
        assert_eq!(rank(0.001, 10), Some(1));
        assert_eq!(rank(1.0, 10), Some(10));
        assert_eq!(rank(0.99, 0), None);
        assert_eq!(rank(0.0, 10), None);
        assert_eq!(rank(f64::NAN, 10), None);
    }

    #[test]
    fn quantile_is_the_upper_bound_of_the_bucket_holding_its_rank() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None, "empty");
        for _ in 0..97 {
            h.record(ms(10)); // (8 ms, 10 ms]
        }
        for _ in 0..2 {
            h.record(ms(90)); // (80 ms, 100 ms]
        }
        h.record(ms(70_000)); // overflow
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(ms(10)));
        assert_eq!(h.quantile(0.97), Some(ms(10)));
        assert_eq!(h.quantile(0.98), Some(ms(100)));
        assert_eq!(h.quantile(0.99), Some(ms(100)));
        assert_eq!(h.quantile(1.0), Some(Duration::MAX));
        assert_eq!((h.quantile(0.0), h.quantile(1.5), h.quantile(f64::NAN)), (None, None, None));
        assert_eq!(h.count_above(LatencyHistogram::bucket_of(ms(10))), 3);
        assert_eq!(h.count_above(LatencyHistogram::bucket_of(ms(100))), 1);
        assert_eq!(h.count_above(BUCKETS - 1), 0);
        assert_eq!(h.count_above(usize::MAX), 0);
    }

    #[test]
    fn counts_merge_by_addition_in_any_order() {
        let mut a = ArmCounts::default();
        a.record(false, Some(ms(5)));
        a.record(true, None);
        let mut b = ArmCounts::default();
        b.record(true, Some(ms(500)));
        b.record(false, Some(ms(5)));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.requests, ab.errors, ab.latency.count()), (4, 2, 3));
        assert_eq!(ab.latency.counts()[LatencyHistogram::bucket_of(ms(5))], 2);
        assert_eq!(LatencyHistogram::from_counts(*ab.latency.counts()), ab.latency);
        assert_eq!(counts(10, 30).error_rate(), rate(10, 10), "errors never exceed requests");
    }

    // === the statistics, against golden values ===

    // Golden values, computed independently of this file with Python 3's math module only (no Rust code):
    //   z: the formula of the module doc, pbar = (xp + xs) / (np + ns),
    //      se = math.sqrt(pbar * (1 - pbar) * (1 / np + 1 / ns)), z = (xs / ns - xp / np - m) / se,
    //      p = 0.5 * math.erfc(z / math.sqrt(2));
    //   the beta-binomial tail: sum over j = k..n of its pmf written with lgamma, not by the recurrence used here:
    //      lbeta = lambda a, b: math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    //      pmf = math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
    //                     + lbeta(j + a, n - j + b) - lbeta(a, b))
    //      (for k = n, the single term math.exp(lbeta(n + a, b) - lbeta(a, b)), which does not underflow);
    //   requests needed: the module doc's formula with statistics.NormalDist().inv_cdf for the z quantiles.
    #[test]
    fn the_z_statistic_matches_golden_values() {
        // primary, staging, margin, z, p
        let cases = [
            (rate(10, 1_000), rate(79, 1_000), 0.0, 7.482_362_447_753_515, 3.649_914_204_068_349_3e-14),
            (rate(10, 1_000), rate(70, 1_000), 0.0, 6.846_531_968_814_577, 3.783_087_190_325_403e-12),
            (rate(10, 1_000), rate(70, 1_000), 0.002, 6.618_314_236_520_757_5, 1.816_590_422_279_805_2e-11),
            (rate(150, 10_000), rate(240, 12_000), 0.002, 1.679_049_621_599_790_3, 0.046_571_186_665_030_39),
            (rate(10, 1_000), rate(12, 1_000), 0.0, 0.428_766_167_636_614_6, 0.334_046_701_158_520_1),
            (rate(10_000, 1_000_000), rate(12_000, 1_000_000), 0.0, 13.558_776_733_532_769, 3.514_933_512_105_085e-42),
        ];
        for (primary, staging, margin, want_z, want_p) in cases {
            let (z, p) = two_proportion(primary, staging, margin).unwrap();
            close(z, want_z, 1e-12);
            close(p, want_p, 1e-8);
        }
        // No variance, no test.
        assert_eq!(two_proportion(rate(0, 1_000), rate(0, 1_000), 0.0), None);
        assert_eq!(two_proportion(rate(1_000, 1_000), rate(1_000, 1_000), 0.0), None);
        assert_eq!(two_proportion(rate(0, 0), rate(5, 1_000), 0.0), None);
    }

    #[test]
    fn the_exceedance_p_value_matches_golden_values() {
        // staging latencies n_s, of them above primary's quantile k, primary latencies n_p, rank r, P(K >= k)
        let cases: [(u64, u64, u64, u64, f64); 7] = [
            (300, 8, 300, 297, 0.111_118_412_140_644_45),
            (300, 13, 300, 297, 0.009_814_262_912_624_985),
            (500, 20, 500, 495, 0.001_823_743_910_573_677_5),
            (400, 30, 1_000, 990, 8.708_172_625_712_348e-10),
            (60, 60, 100, 99, 1.004_736_312_299_653_7e-43),
            (300, 300, 300, 297, 3.397_691_454_830_199_6e-173),
            // P(K >= 1) = 1 - P(0) = 1 - 50/100 exactly.
            (50, 1, 50, 50, 0.5),
        ];
        for (n_s, k, n_p, r, want) in cases {
            close(beta_binomial_sf(n_s, k, n_p - r + 1, r).unwrap(), want, 1e-9);
        }
        assert_eq!(beta_binomial_sf(2_000, 0, 2, 99), Some(1.0));
        assert_eq!(beta_binomial_sf(10, 11, 2, 99), Some(0.0));
        // The whole distribution sums to 1, from the far side of the mode too.
        close(beta_binomial_sf(100_000, 1, 1_001, 99_000).unwrap(), 1.0, 1e-9);
    }

    #[test]
    fn the_exceedance_null_is_exact_without_buckets() {
        // Unbucketed continuous values (uniform): the count of staging values above primary's r-th smallest,
        // tested at alpha 0.01, is rejected at the test's exact size (the beta-binomial tail at its critical
        // count, a little under alpha because counts are whole), within 4 standard errors of 20,000 simulations.
        // With buckets the test can only be quieter; this checks that the null itself is not.
        const EVALUATIONS: u32 = 20_000;
        let (n_p, n_s, r, alpha) = (300u64, 300u64, 297u64, 0.01);
        let sf = |k| beta_binomial_sf(n_s, k, n_p - r + 1, r).unwrap();
        let critical = (0..=n_s).find(|&k| sf(k) < alpha).unwrap();
        let size = sf(critical);
        let mut rng = Rng::with_seed(6);
        let mut rejected = 0u32;
        for _ in 0..EVALUATIONS {
            let mut primary: Vec<f64> = (0..n_p).map(|_| rng.f64()).collect();
            primary.sort_by(f64::total_cmp);
            let threshold = primary[r as usize - 1];
            let above = (0..n_s).filter(|_| rng.f64() > threshold).count() as u64;
            rejected += u32::from(sf(above) < alpha);
        }
        let rate = f64::from(rejected) / f64::from(EVALUATIONS);
        let se = (size * (1.0 - size) / f64::from(EVALUATIONS)).sqrt();
        eprintln!("exceedance null without buckets: rejected {rate}, exact size {size} (critical count {critical})");
        assert!((rate - size).abs() < 4.0 * se, "{rate} against {size}");
    }

    #[test]
    fn requests_needed_matches_the_formula() {
        let guard = |margin| ErrorRateGuard { margin, ..ErrorRateGuard::default() };
        // Python (see above): 1870.2205682618587, 2308.914281804764, 3324.8365657988606.
        assert_eq!(requests_needed(&guard(0.0), 0.01, 0.03, 0.9), Some(1_871));
        assert_eq!(requests_needed(&guard(0.002), 0.01, 0.03, 0.9), Some(2_309));
        assert_eq!(requests_needed(&guard(0.005), 0.01, 0.03, 0.9), Some(3_325));
        assert_eq!(requests_needed(&guard(0.002), 0.01, 0.5, 0.9), Some(500), "never below the minimum");
        assert_eq!(requests_needed(&guard(0.002), 0.01, 0.012, 0.9), None, "within the margin");
        assert_eq!(requests_needed(&guard(0.002), 0.01, 1.5, 0.9), None);
    }

    // === verdicts ===

    #[test]
    fn a_clear_error_rate_breach_is_detected() {
        let config = GuardConfig { latency: None, ..GuardConfig::default() };
        let verdict = evaluate(&config, &counts(1_000, 10), &counts(1_000, 70));
        let Verdict::Breach(Breach::ErrorRate { primary, staging, z, p, .. }) = verdict else {
            panic!("7 % against 1 % is a breach of the test (before the ceiling): {verdict:?}");
        };
        assert_eq!((primary, staging), (rate(10, 1_000), rate(70, 1_000)));
        close(z, 6.618_314_236_520_757_5, 1e-12);
        close(p, 1.816_590_422_279_805_2e-11, 1e-8);
        let breach = Breach::ErrorRate {
            primary: rate(10, 1_000),
            staging: rate(79, 1_000),
            margin: 0.0,
            z: 7.482_362_447_753_515,
            p: 3.649_914_204_068_349_3e-14,
            alpha: 0.001,
        };
        assert_eq!(breach.guard(), Guard::ErrorRate);
        assert_eq!(
            breach.to_string(),
            "error rate: staging 7.9 % (79/1000) vs primary 1.0 % (10/1000), one-sided two-proportion z = 7.5, \
             p = 4e-14 < alpha 0.001"
        );
        let Verdict::Breach(with_margin) = evaluate(&config, &counts(1_000, 10), &counts(1_000, 79)) else {
            panic!("a breach");
        };
        assert_eq!(
            with_margin.to_string(),
            "error rate: staging 7.9 % (79/1000) vs primary 1.0 % (10/1000), one-sided two-proportion z = 7.3 \
             over a margin of 0.2 points, p = 2e-13 < alpha 0.001"
        );
    }

    #[test]
    fn a_tiny_but_significant_difference_is_within_the_margin() {
        let (primary, staging) = (counts(1_000_000, 10_000), counts(1_000_000, 12_000));
        assert!(breached(&evaluate(&errors_only(0.0), &primary, &staging)), "z = 13.6 without a margin");
        assert_eq!(evaluate(&errors_only(0.002), &primary, &staging), Verdict::Pass);
    }

    #[test]
    fn the_error_ceiling_does_not_wait_for_primary() {
        let config = GuardConfig { latency: None, ..GuardConfig::default() };
        let verdict = evaluate(&config, &counts(100, 1), &counts(500, 30));
        let Verdict::Breach(breach) = verdict else { panic!("6 % is above the 5 % ceiling: {verdict:?}") };
        assert_eq!(breach, Breach::ErrorCeiling { primary: rate(1, 100), staging: rate(30, 500), ceiling: 0.05 });
        assert_eq!(
            breach.to_string(),
            "error rate: staging 6.0 % (30/500) above the 5.0 % ceiling (primary 1.0 % (1/100))"
        );
        let at_ceiling = evaluate(&config, &counts(100, 1), &counts(500, 25));
        assert_eq!(
            at_ceiling,
            Verdict::NeedMore { shortfalls: vec![Shortfall { guard: Guard::ErrorRate, primary: 400, staging: 0 }] },
            "5.0 % is not above the ceiling"
        );
    }

    #[test]
    fn need_more_below_the_minimum_sample_says_how_many() {
        let primary = steady(380, ms(40));
        let mut staging = steady(100, ms(40));
        for _ in 0..20 {
            staging.record(false, None); // requests without a latency (connect failures would be errors too)
        }
        let verdict = evaluate(&GuardConfig::default(), &primary, &staging);
        assert_eq!(
            verdict,
            Verdict::NeedMore {
                shortfalls: vec![
                    Shortfall { guard: Guard::ErrorRate, primary: 120, staging: 380 },
                    Shortfall { guard: Guard::Latency, primary: 0, staging: 200 },
                ]
            }
        );
        assert_eq!(
            verdict.to_string(),
            "error rate needs 120 more primary and 380 more staging requests; latency needs 200 more staging latencies"
        );
        // Enough of both: the same arms pass.
        assert_eq!(evaluate(&GuardConfig::default(), &steady(500, ms(40)), &steady(500, ms(40))), Verdict::Pass);
    }

    #[test]
    fn added_latency_of_200_ms_is_detected_at_p99() {
        // 300 requests per arm, the defaults; staging 200 ms slower on every request. A miss is possible: when
        // primary's own p99 lands in the (250 ms, 315 ms] bucket (about 1 evaluation in 25 with this distribution,
        // whose p99 is 204 ms), only about 20 staging requests lie above it, and 17 or fewer are not significant.
        // Measured: 195 of 200.
        const EVALUATIONS: u32 = 200;
        let mut rng = Rng::with_seed(0x18);
        let extra = ms(200);
        let mut detected = 0u32;
        for _ in 0..EVALUATIONS {
            let (primary, staging) = (arm(&mut rng, 300, 0.0, extra), arm(&mut rng, 300, 1.0, extra));
            match evaluate(&GuardConfig::default(), &primary, &staging) {
                Verdict::Breach(Breach::Latency { primary, staging, p, .. }) => {
                    assert!(staging.value >= primary.value + ms(50) && p < 0.001, "{primary:?} {staging:?} {p}");
                    detected += 1;
                }
                Verdict::NeedMore { .. } => {} // the error-rate guard wants 500 requests per arm
                verdict => panic!("{verdict:?}"),
            }
        }
        eprintln!("+200 ms at p99, 300 requests per arm: detected in {detected} of {EVALUATIONS}");
        assert!(detected >= 194, "{detected} of {EVALUATIONS}");
        let breach = Breach::Latency {
            quantile: 0.99,
            primary: ArmQuantile { value: ms(250), requests: 300 },
            staging: ArmQuantile { value: ms(500), requests: 300 },
            staging_above: 113,
            p: 3e-90,
            alpha: 0.001,
        };
        assert_eq!(breach.guard(), Guard::Latency);
        assert_eq!(
            breach.to_string(),
            "p99 latency: staging 500 ms vs primary 250 ms (300 requests), 113 of 300 staging requests above \
             primary's p99 (1.0 % expected), one-sided exceedance test p = 3e-90 < alpha 0.001"
        );
    }

    #[test]
    fn a_small_slowdown_is_below_the_minimum_slowdown() {
        // Every staging request one bucket slower: significant, but 1 ms.
        let (primary, staging) = (steady(500, ms(4)), steady(500, Duration::from_micros(4_500)));
        assert_eq!(evaluate(&latency_only(ms(50), 0.2), &primary, &staging), Verdict::Pass);
        let verdict = evaluate(&latency_only(Duration::ZERO, 0.2), &primary, &staging);
        let Verdict::Breach(breach) = verdict else { panic!("without the absolute minimum: {verdict:?}") };
        assert_eq!(
            breach.to_string(),
            "p99 latency: staging 5 ms vs primary 4 ms (500 requests), 500 of 500 staging requests above \
             primary's p99 (1.0 % expected), one-sided exceedance test p = 1e-288 < alpha 0.001"
        );
        // And a relative minimum above one bucket's width asks for two.
        assert_eq!(evaluate(&latency_only(Duration::ZERO, 0.3), &primary, &staging), Verdict::Pass);
    }

    #[test]
    fn the_latency_limit_breaches_on_a_quantile_wholly_above_it() {
        let config = GuardConfig {
            error_rate: None,
            latency: Some(LatencyGuard { limit: Some(ms(500)), ..LatencyGuard::default() }),
        };
        // Alike arms, so the test stays quiet: only the limit speaks.
        let verdict = evaluate(&config, &steady(300, ms(600)), &steady(300, ms(600)));
        let Verdict::Breach(breach) = verdict else { panic!("630 ms bucket above a 500 ms limit: {verdict:?}") };
        assert_eq!(
            breach.to_string(),
            "p99 latency: staging 630 ms (300 requests) above the 500 ms limit (primary 630 ms (300 requests))"
        );
        // The (400 ms, 500 ms] bucket is not wholly above the limit.
        assert_eq!(evaluate(&config, &steady(300, ms(480)), &steady(300, ms(480))), Verdict::Pass);
        // The limit needs staging's sample only.
        let Verdict::Breach(breach) = evaluate(&config, &ArmCounts::default(), &steady(300, ms(70_000))) else {
            panic!("a breach");
        };
        assert_eq!(
            breach.to_string(),
            "p99 latency: staging > 63 s (300 requests) above the 500 ms limit (primary has no latency yet)"
        );
    }

    #[test]
    fn latency_figures_read_well() {
        let read = |d: Duration| Latency(d).to_string();
        assert_eq!(read(Duration::from_micros(315)), "315 µs");
        assert_eq!(read(Duration::from_micros(12_500)), "12.5 ms");
        assert_eq!(read(ms(1_600)), "1.6 s");
        assert_eq!(read(Duration::MAX), "> 63 s");
        assert_eq!(Percent(0.0025).to_string(), "0.25 %");
        assert_eq!(Number(99.9).to_string(), "99.9");
    }

    // === simulations: false alarms and traffic needed ===
    //
    // Fixed seeds, so every run draws the same numbers; the bounds hold with room to spare. The figures are
    // printed (`cargo test --lib rollout -- --nocapture`) for the README.

    #[test]
    fn error_rate_false_alarms_stay_below_alpha() {
        // Both arms at 1 %; the test alone (no margin, no ceiling) at alpha 0.001, and the defaults.
        const EVALUATIONS: u32 = 20_000;
        let mut rng = Rng::with_seed(1);
        let defaults = GuardConfig { latency: None, ..GuardConfig::default() };
        for n in [500, 2_000, 10_000] {
            let (mut test, mut default) = (0u32, 0u32);
            for _ in 0..EVALUATIONS {
                let primary = counts(n, binomial(&mut rng, n, 0.01));
                let staging = counts(n, binomial(&mut rng, n, 0.01));
                test += u32::from(breached(&evaluate(&errors_only(0.0), &primary, &staging)));
                default += u32::from(breached(&evaluate(&defaults, &primary, &staging)));
            }
            let (test, default) =
                (f64::from(test) / f64::from(EVALUATIONS), f64::from(default) / f64::from(EVALUATIONS));
            eprintln!(
                "error rate, 1 % both, {n} requests per arm: false alarms {test} (test alone), {default} (defaults)"
            );
            assert!(test < 0.003, "{test} at {n} requests per arm");
            assert!(default <= test);
        }
    }

    #[test]
    fn latency_false_alarms_stay_below_alpha() {
        // Both arms from the same distribution; the exceedance test alone (no minimum slowdown) at alpha 0.001.
        const EVALUATIONS: u32 = 20_000;
        let mut rng = Rng::with_seed(2);
        let test_alone = latency_only(Duration::ZERO, 0.0);
        let (mut test, mut default) = (0u32, 0u32);
        for _ in 0..EVALUATIONS {
            let (primary, staging) = (arm(&mut rng, 300, 0.0, ms(0)), arm(&mut rng, 300, 0.0, ms(0)));
            test += u32::from(breached(&evaluate(&test_alone, &primary, &staging)));
            default += u32::from(breached(&evaluate(&latency_only(ms(50), 0.2), &primary, &staging)));
        }
        let (test, default) = (f64::from(test) / f64::from(EVALUATIONS), f64::from(default) / f64::from(EVALUATIONS));
        eprintln!(
            "latency p99, same distribution, 300 per arm: false alarms {test} (test alone), {default} (defaults)"
        );
        assert!(test < 0.003, "{test}");
        assert!(default <= test);
    }

    #[test]
    fn a_binomial_null_for_latency_would_alarm_too_often() {
        // The same simulation as above, with Binomial(n_s, 1 - q) as the null instead of the beta-binomial: it
        // takes primary's p99 for the truth, and alarms several times as often as alpha.
        fn binomial_sf(n: u64, k: u64, p: f64) -> f64 {
            let ln_c: f64 = (0..k).map(|i| ((n - i) as f64 / (i + 1) as f64).ln()).sum();
            let mut term = (ln_c + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()).exp();
            let mut sum = 0.0;
            for j in k..=n {
                sum += term;
                term *= (n - j) as f64 / (j + 1) as f64 * p / (1.0 - p);
            }
            sum
        }
        const EVALUATIONS: u32 = 20_000;
        let mut rng = Rng::with_seed(2);
        let mut naive = 0u32;
        for _ in 0..EVALUATIONS {
            let (primary, staging) = (arm(&mut rng, 300, 0.0, ms(0)), arm(&mut rng, 300, 0.0, ms(0)));
            let index = primary.latency.quantile_index(0.99).unwrap();
            let above = staging.latency.count_above(index);
            naive += u32::from(binomial_sf(300, above, 0.01) < 0.001);
        }
        let naive = f64::from(naive) / f64::from(EVALUATIONS);
        eprintln!("latency p99, binomial null, 300 per arm: false alarms {naive}");
        assert!(naive > 0.003, "{naive}");
    }

    #[test]
    fn repeated_looks_over_a_long_run() {
        // 500 runs of 60 evaluations; between looks each arm gets 100 more requests (6,000 at the end), both at
        // 1 % errors and the same latency. The union bound over 2 guards and 60 looks at alpha 0.001 is 0.12 per
        // run for the tests alone; the defaults' margin and minimum slowdown make a false alarm rarer still.
        const RUNS: u32 = 500;
        const LOOKS: u32 = 60;
        let mut rng = Rng::with_seed(3);
        let tests_alone =
            GuardConfig { error_rate: errors_only(0.0).error_rate, latency: latency_only(Duration::ZERO, 0.0).latency };
        let (mut test_runs, mut default_runs) = (0u32, 0u32);
        for _ in 0..RUNS {
            let (mut primary, mut staging) = (ArmCounts::default(), ArmCounts::default());
            let (mut test_alarm, mut default_alarm) = (false, false);
            for _ in 0..LOOKS {
                add_requests(&mut rng, &mut primary, 100, 0.0, ms(0));
                add_requests(&mut rng, &mut staging, 100, 0.0, ms(0));
                test_alarm |= breached(&evaluate(&tests_alone, &primary, &staging));
                default_alarm |= breached(&evaluate(&GuardConfig::default(), &primary, &staging));
            }
            test_runs += u32::from(test_alarm);
            default_runs += u32::from(default_alarm);
        }
        let (test, default) = (f64::from(test_runs) / f64::from(RUNS), f64::from(default_runs) / f64::from(RUNS));
        eprintln!("long run, {LOOKS} looks, runs with a false alarm: {test} (tests alone), {default} (defaults)");
        assert!(test < 0.12, "{test}");
        assert!(default < 0.01, "{default}");
    }

    #[test]
    fn traffic_needed_to_detect_1_to_3_percent() {
        // The smallest n per arm (to 100) at which 1 % against 3 % breaches in at least 90 % of 4,000 simulated
        // evaluations at alpha 0.001, no ceiling; against the formula (1,871 with no margin, 2,309 with 0.2 points).
        const EVALUATIONS: u32 = 4_000;
        let mut rng = Rng::with_seed(4);
        for (margin, formula) in [(0.0, 1_871.0), (0.002, 2_309.0)] {
            let config = errors_only(margin);
            let needed = (5..=60)
                .map(|i| i * 100)
                .find(|&n| {
                    let detected = (0..EVALUATIONS)
                        .filter(|_| {
                            let primary = counts(n, binomial(&mut rng, n, 0.01));
                            let staging = counts(n, binomial(&mut rng, n, 0.03));
                            breached(&evaluate(&config, &primary, &staging))
                        })
                        .count();
                    detected as f64 >= 0.9 * f64::from(EVALUATIONS)
                })
                .unwrap();
            eprintln!("1 % -> 3 %, margin {margin}: 90 % detection at {needed} requests per arm (formula {formula})");
            assert!((needed as f64 - formula).abs() <= 0.15 * formula, "{needed} against {formula}");
        }
    }

    #[test]
    fn traffic_needed_to_detect_200_ms_at_p99() {
        // The smallest n per arm at which +200 ms breaches the p99 guard in at least 90 % of simulated evaluations,
        // with the minimum sample set aside (so that the test's own need shows) and the default slowdown: on
        // every staging request, and on 5 % of them.
        let mut rng = Rng::with_seed(5);
        let config = GuardConfig {
            error_rate: None,
            latency: Some(LatencyGuard { min_requests: 1, ..LatencyGuard::default() }),
        };
        let mut needed = |slow: f64, grid: &[u64], evaluations: u32| {
            grid.iter()
                .copied()
                .find(|&n| {
                    let detected = (0..evaluations)
                        .filter(|_| {
                            let (primary, staging) = (arm(&mut rng, n, 0.0, ms(0)), arm(&mut rng, n, slow, ms(200)));
                            breached(&evaluate(&config, &primary, &staging))
                        })
                        .count();
                    detected as f64 >= 0.9 * f64::from(evaluations)
                })
                .unwrap()
        };
        let all = needed(1.0, &(2..=40).collect::<Vec<_>>(), 1_000);
        let some = needed(0.05, &[500, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000], 200);
        eprintln!("+200 ms at p99: 90 % detection at {all} requests per arm (every request), {some} (5 % of them)");
        assert!((5..=20).contains(&all), "{all}");
        assert!((1_500..=5_000).contains(&some), "{some}");
    }
}
