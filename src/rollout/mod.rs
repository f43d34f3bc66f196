//! Guarded rollouts (issue 18): a distribution's staging share ramps up in steps, and each step compares
//! staging against primary over the same window and rolls staging back when it does measurably worse.
//!
//! This module is the domain side of that feature, and so is pure: no I/O, no clock, no locks.
//! - [`guard`]: the statistics that turn both arms' counts into a verdict (pass, need more traffic, or a
//!   breach with the reason an operator reads).
//! - [`Spec`]: what an operator asks for (steps of a share and a bake time, guards, what to do at the end),
//!   decoded from the API's JSON or the config file and checked here.
//! - [`Rollout`]: one rollout's stored record, and [`Rollout::apply`], the state machine every transition goes
//!   through, whoever asks for it (the operator, or the driver that reads the guards).
//!
//! ```text
//!            start
//!              │
//!              ▼        pause          
//!   ┌──────► running ───────────► paused
//!   │ advance  │  │ ◄─────────── │  │
//!   └──────────┘  │    resume     │  │
//!     finish ─────┤               │  │
//!                 ▼               │  │
//!    finished  rolled_back ◄──────┘  │   (a breach, running or paused)
//!              aborted     ◄─────────┘   (the operator, running or paused)
//! ```
//! An ended rollout (finished, rolled back, aborted) stays as it is until the next start replaces it.

pub mod guard;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use guard::GuardConfig;

/// Steps a rollout may have at most.
pub const MAX_STEPS: usize = 20;
/// The longest bake time of one step.
pub const MAX_BAKE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The history events a rollout keeps: the first (its start) and the latest.
pub const MAX_HISTORY: usize = 64;
/// The longest reason an operator may give, in bytes.
pub const MAX_REASON: usize = 1024;
/// The largest staging share a CloudFront continuous deployment policy takes (`SingleWeight`).
pub const POLICY_MAX_WEIGHT: f64 = 0.15;

/// One step: staging's share, and how long it must run with every guard passing before the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Staging's share of traffic, a fraction: in `(0, 0.15]` for a continuous deployment policy
    /// (CloudFront's `SingleWeight`), in `(0, 1]` for a launch.
    pub weight: f64,
    /// The bake time, written as a humantime duration ("30s", "5m").
    #[serde(with = "duration")]
    pub bake: Duration,
}

/// What a rollout does once its last step has baked with its guards passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtEnd {
    /// Keep the last step's share (staging is promoted by a deploy, not by edgesplit).
    #[default]
    Hold,
    /// Disable the policy: all traffic to primary, staging sessions ended.
    Disable,
}

/// A rollout as asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub guards: GuardConfig,
    #[serde(default)]
    pub at_end: AtEnd,
}

impl Spec {
    /// Decodes and checks a spec sent as JSON. The error names the field.
    pub fn from_json(body: &[u8]) -> Result<Spec, String> {
        let spec: Spec = serde_json::from_slice(body).map_err(|e| format!("the rollout does not read: {e}"))?;
        spec.check()?;
        Ok(spec)
    }

    /// The steps' shares against the most that what the rollout drives can send to staging: a policy's
    /// 15 %, a launch's 100 %.
    pub fn check_cap(&self, cap: f64, what: &str) -> Result<(), String> {
        match self.steps.iter().position(|s| s.weight > cap) {
            Some(i) => Err(format!(
                "steps[{}].weight: {} is above {}, the most {what} sends to staging",
                i + 1,
                self.steps[i].weight,
                cap
            )),
            None => Ok(()),
        }
    }

    /// The rules serde cannot say: counts, ranges, and guards that make sense.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!("steps: a rollout has 1 to {MAX_STEPS} steps, not {}", self.steps.len()));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let n = i + 1;
            if !(step.weight.is_finite() && step.weight > 0.0 && step.weight <= 1.0) {
                return Err(format!("steps[{n}].weight: {} is not in (0, 1]", step.weight));
            }
            if step.bake > MAX_BAKE {
                return Err(format!("steps[{n}].bake: at most 7 days"));
            }
        }
        let g = &self.guards;
        if g.error_rate.is_none() && g.latency.is_none() {
            return Err("guards: a rollout needs at least one guard (error_rate or latency)".into());
        }
        if let Some(e) = &g.error_rate {
            check_alpha("guards.error_rate.alpha", e.alpha)?;
            check_count("guards.error_rate.min_requests", e.min_requests)?;
            if !(e.margin.is_finite() && (0.0..1.0).contains(&e.margin)) {
                return Err(format!("guards.error_rate.margin: {} is not in [0, 1)", e.margin));
            }
            if let Some(c) = e.ceiling
                && !(c.is_finite() && c > 0.0 && c <= 1.0)
            {
                return Err(format!("guards.error_rate.ceiling: {c} is not in (0, 1]"));
            }
        }
        if let Some(l) = &g.latency {
            if !(l.quantile.is_finite() && l.quantile > 0.0 && l.quantile < 1.0) {
                return Err(format!("guards.latency.quantile: {} is not in (0, 1)", l.quantile));
            }
            check_alpha("guards.latency.alpha", l.alpha)?;
            check_count("guards.latency.min_requests", l.min_requests)?;
            if !(l.min_slowdown_ratio.is_finite() && l.min_slowdown_ratio >= 0.0) {
                return Err(format!("guards.latency.min_slowdown_ratio: {} is negative", l.min_slowdown_ratio));
            }
            if l.min_slowdown > Duration::from_secs(3600) || l.limit.is_some_and(|d| d > Duration::from_secs(3600)) {
                return Err("guards.latency: min_slowdown and limit are at most 1h".into());
            }
        }
        Ok(())
    }
}

fn check_alpha(field: &str, alpha: f64) -> Result<(), String> {
    if alpha.is_finite() && alpha > 0.0 && alpha <= 0.5 {
        Ok(())
    } else {
        Err(format!("{field}: {alpha} is not in (0, 0.5]"))
    }
}

fn check_count(field: &str, n: u64) -> Result<(), String> {
    if (1..=1_000_000_000).contains(&n) { Ok(()) } else { Err(format!("{field}: {n} is not in 1..=1000000000")) }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Baking its step; advances when the step has baked and its guards pass.
    Running,
    /// Held at its step by the operator; the guards still roll it back on a breach.
    Paused,
    /// Staging breached a guard: its share is 0 and its sessions ended.
    RolledBack,
    /// Stopped by the operator: staging's share is 0 and its sessions ended.
    Aborted,
    /// Every step baked with its guards passing; then [`AtEnd`].
    Finished,
}

impl State {
    pub const ALL: [State; 5] = [State::Running, State::Paused, State::RolledBack, State::Aborted, State::Finished];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::RolledBack => "rolled_back",
            State::Aborted => "aborted",
            State::Finished => "finished",
        }
    }

    /// Running or paused: the guards are read and the driver acts.
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Paused)
    }
}

/// A transition, asked for by the operator or by the driver. The driver's name the step it read, so that
/// one decided on a state that has moved since (another instance, the operator) is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pause {
        reason: Option<String>,
    },
    Resume,
    Abort {
        reason: Option<String>,
    },
    /// The step (0-based) has baked with its guards passing: on to the next. `reference` is primary's
    /// counts over the step's window, kept for a next step that leaves primary nothing to count.
    Advance {
        from: usize,
        reference: Option<WireCounts>,
    },
    /// The last step has baked with its guards passing.
    Finish {
        from: usize,
    },
    /// A guard breached during step `from`.
    RollBack {
        from: usize,
        reason: String,
    },
}

/// What happened, in a rollout's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    Advanced,
    Paused,
    Resumed,
    RolledBack,
    Aborted,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    pub event: EventKind,
    /// 1-based, the step the rollout is at after the event.
    pub step: usize,
    /// Staging's share after the event.
    pub weight: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One distribution's rollout, as stored (the key is the distribution id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub distribution: String,
    /// New on every start, so that the driver tells a restarted rollout from the one it watched.
    pub id: String,
    /// The continuous deployment policy whose weight the rollout drives (empty when it drives a launch).
    pub policy_id: String,
    /// Or the running launch, `project/launch`, of a distribution routed by an Evidently feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<String>,
    pub spec: Spec,
    pub state: State,
    /// 0-based index into `spec.steps`.
    pub step: usize,
    pub started_ms: u64,
    /// When the current step began baking (or baking resumed after a pause).
    pub step_started_ms: u64,
    pub updated_ms: u64,
    /// Why it was rolled back, aborted or paused.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub history: Vec<Event>,
    /// Primary's counts over the window of the step before this one (set by each advance): a step at
    /// 100 % leaves primary nothing to count, and its guards compare staging with these. Stored, so that
    /// a restart or another fleet instance taking over still has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_reference: Option<WireCounts>,
    /// The fingerprint of the config file's declaration it was started from (`None`: started through the
    /// API), so that a reload starts it again only when the declaration changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The rollout's state does not allow it (the message says which state, and what would).
    Conflict(String),
    /// The input breaks a rule.
    Invalid(String),
}

impl Rollout {
    /// A rollout started now at its first step.
    pub fn start(distribution: String, id: String, policy_id: String, spec: Spec, now_ms: u64) -> Rollout {
        let mut r = Rollout {
            distribution,
            id,
            policy_id,
            launch: None,
            spec,
            state: State::Running,
            step: 0,
            started_ms: now_ms,
            step_started_ms: now_ms,
            updated_ms: now_ms,
            reason: None,
            history: Vec::new(),
            primary_reference: None,
            declared: None,
        };
        r.record(EventKind::Started, now_ms, None);
        r
    }

    /// Staging's share in force: the step's while running or paused, the last step's once finished and
    /// held, and 0 once rolled back, aborted, or finished with the policy disabled.
    pub fn weight(&self) -> f64 {
        match (self.state, self.spec.at_end) {
            (State::Running | State::Paused, _) | (State::Finished, AtEnd::Hold) => {
                self.spec.steps.get(self.step).map_or(0.0, |s| s.weight)
            }
            (State::RolledBack | State::Aborted, _) | (State::Finished, AtEnd::Disable) => 0.0,
        }
    }

    /// Whether the driven policy stays enabled (only a finish with [`AtEnd::Disable`] disables it).
    pub fn policy_enabled(&self) -> bool {
        !(self.state == State::Finished && self.spec.at_end == AtEnd::Disable)
    }

    /// Whether this transition ends staging's sessions (its share went to 0): the policy's session epoch
    /// moves, so that a client pinned to staging is back on primary at its next request.
    pub fn ends_sessions(&self) -> bool {
        matches!(self.state, State::RolledBack | State::Aborted)
            || (self.state == State::Finished && self.spec.at_end == AtEnd::Disable)
    }

    /// The bake time of the current step.
    pub fn bake(&self) -> Duration {
        self.spec.steps.get(self.step).map_or(Duration::ZERO, |s| s.bake)
    }

    /// Whether the current step has baked by `now_ms`.
    pub fn baked(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.step_started_ms) >= self.bake().as_millis() as u64
    }

    /// The rules a stored rollout keeps, checked when one is read back (the store's load, `edgesplit import`):
    /// its spec's, shares within what it drives (a policy's 15 %), a step inside it, a bounded history. Every
    /// rollout [`Rollout::start`] and [`Rollout::apply`] leave keeps them; a document that breaks them was
    /// written by hand, and would set a policy weight past 15 % or panic the driver (`steps.len() - 1` of no
    /// steps).
    pub fn check(&self) -> Result<(), String> {
        self.spec.check()?;
        if self.launch.is_none() {
            self.spec.check_cap(POLICY_MAX_WEIGHT, "a continuous deployment policy")?;
        }
        if self.step >= self.spec.steps.len() {
            return Err(format!("step: index {} is not one of the {} steps", self.step, self.spec.steps.len()));
        }
        if self.primary_reference.as_ref().is_some_and(|w| w.counts().is_none()) {
            return Err(format!("primary_reference: a latency histogram has {} buckets", guard::BUCKETS));
        }
        if self.history.len() > MAX_HISTORY {
            return Err(format!("history: at most {MAX_HISTORY} events, not {}", self.history.len()));
        }
        Ok(())
    }

    /// Applies one transition: the rollout it leaves, or why not. Pure.
    pub fn apply(&self, action: Action, now_ms: u64) -> Result<Rollout, Refused> {
        let mut r = self.clone();
        let last = self.spec.steps.len().saturating_sub(1);
        let conflict = |what: &str| {
            Err(Refused::Conflict(format!(
                "the rollout of distribution `{}` is {}: it cannot {what}",
                self.distribution,
                self.state.as_str().replace('_', " ")
            )))
        };
        let stale = |from: usize| {
            Err(Refused::Conflict(format!(
                "the rollout of distribution `{}` is at step {}, not {}",
                self.distribution,
                self.step + 1,
                from + 1
            )))
        };
        let reason = |text: Option<String>| -> Result<Option<String>, Refused> {
            match text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
                Some(t) if t.len() > MAX_REASON => {
                    Err(Refused::Invalid(format!("reason: at most {MAX_REASON} bytes, not {}", t.len())))
                }
                t => Ok(t),
            }
        };
        let (kind, detail) = match action {
            Action::Pause { reason: why } => {
                if self.state != State::Running {
                    return conflict("be paused (only a running rollout can)");
                }
                r.state = State::Paused;
                r.reason = reason(why)?;
                (EventKind::Paused, r.reason.clone())
            }
            Action::Resume => {
                if self.state != State::Paused {
                    return conflict("be resumed (only a paused rollout can)");
                }
                // The step bakes again from the start: time paused is not time watched at this share.
                r.state = State::Running;
                r.reason = None;
                r.step_started_ms = now_ms;
                (EventKind::Resumed, None)
            }
            Action::Abort { reason: why } => {
                if !self.state.is_active() {
                    return conflict("be aborted (it has ended)");
                }
                r.state = State::Aborted;
                r.reason = Some(reason(why)?.unwrap_or_else(|| "aborted by the operator".into()));
                (EventKind::Aborted, r.reason.clone())
            }
            Action::Advance { from, reference } => {
                if self.state != State::Running {
                    return conflict("advance");
                }
                if from != self.step {
                    return stale(from);
                }
                if from >= last {
                    return Err(Refused::Invalid("the last step finishes, it does not advance".into()));
                }
                r.step = from + 1;
                r.step_started_ms = now_ms;
                r.primary_reference = reference;
                (EventKind::Advanced, None)
            }
            Action::Finish { from } => {
                if self.state != State::Running {
                    return conflict("finish");
                }
                if from != self.step {
                    return stale(from);
                }
                if from != last {
                    return Err(Refused::Invalid("only the last step finishes".into()));
                }
                r.state = State::Finished;
                (EventKind::Finished, None)
            }
            Action::RollBack { from, reason: why } => {
                if !self.state.is_active() {
                    return conflict("be rolled back (it has ended)");
                }
                if from != self.step {
                    return stale(from);
                }
                r.state = State::RolledBack;
                r.reason = Some(why);
                (EventKind::RolledBack, r.reason.clone())
            }
        };
        r.updated_ms = now_ms;
        r.record(kind, now_ms, detail);
        Ok(r)
    }

    fn record(&mut self, event: EventKind, at_ms: u64, detail: Option<String>) {
        if self.history.len() >= MAX_HISTORY {
            // Keep the start, drop the oldest after it.
            self.history.remove(1);
        }
        self.history.push(Event { at_ms, event, step: self.step + 1, weight: self.weight(), detail });
    }
}

/// What the driver read at its last evaluation of a rollout: both arms over the step's window, and the
/// verdict. Shown by the API and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The rollout and step read.
    #[serde(skip)]
    pub rollout_id: String,
    #[serde(skip)]
    pub step: usize,
    /// How long the window has run.
    pub window_ms: u64,
    pub primary: ArmFigures,
    pub staging: ArmFigures,
    /// `pass`, `need_more` or `breach`.
    pub verdict: &'static str,
    /// What the verdict says: the shortfall, or the breach's reason.
    pub detail: String,
}

/// One arm over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmFigures {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    /// The latency guard's quantile (p99 unless tuned), as its bucket's upper bound, in milliseconds.
    pub p99_ms: Option<f64>,
}

impl Figures {
    pub fn of(
        r: &Rollout,
        window_ms: u64,
        primary: &guard::ArmCounts,
        staging: &guard::ArmCounts,
        verdict: &guard::Verdict,
    ) -> Figures {
        let q = r.spec.guards.latency.map_or(0.99, |l| l.quantile);
        let arm = |a: &guard::ArmCounts| ArmFigures {
            requests: a.requests,
            errors: a.errors,
            error_rate: a.error_rate().value(),
            p99_ms: a.latency.quantile(q).filter(|d| *d != Duration::MAX).map(|d| d.as_secs_f64() * 1000.0),
        };
        Figures {
            rollout_id: r.id.clone(),
            step: r.step,
            window_ms,
            primary: arm(primary),
            staging: arm(staging),
            verdict: match verdict {
                guard::Verdict::Pass => "pass",
                guard::Verdict::NeedMore { .. } => "need_more",
                guard::Verdict::Breach(_) => "breach",
            },
            detail: match verdict {
                guard::Verdict::Pass => "every guard has its sample, and none breached".into(),
                v => v.to_string(),
            },
        }
    }
}

/// One instance's counts of both arms over a step's window, as shared with the fleet (JSON): the window
/// names the rollout, the step and when it started baking, so that only counts of the same window add up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedWindow {
    pub window: String,
    pub primary: WireCounts,
    pub staging: WireCounts,
}

/// [`guard::ArmCounts`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireCounts {
    pub requests: u64,
    pub errors: u64,
    /// The latency histogram's bucket counts ([`guard::BUCKETS`] of them).
    pub latency: Vec<u64>,
}

impl From<&guard::ArmCounts> for WireCounts {
    fn from(a: &guard::ArmCounts) -> WireCounts {
        WireCounts { requests: a.requests, errors: a.errors, latency: a.latency.counts().to_vec() }
    }
}

impl WireCounts {
    /// The counts, if the histogram has the right number of buckets.
    pub fn counts(&self) -> Option<guard::ArmCounts> {
        let latency: [u64; guard::BUCKETS] = self.latency.as_slice().try_into().ok()?;
        Some(guard::ArmCounts {
            requests: self.requests,
            errors: self.errors.min(self.requests),
            latency: guard::LatencyHistogram::from_counts(latency),
        })
    }
}

impl Rollout {
    /// The name of the current step's window, as [`SharedWindow::window`] carries it.
    pub fn window(&self) -> String {
        format!("{}/{}/{}", self.id, self.step, self.step_started_ms)
    }
}

/// Durations as humantime strings ("30s", "1m 30s") in JSON and TOML.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration such as \"30s\" or \"5m\": {e}")))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                    serde::de::Error::custom(format!("`{text}` is not a duration such as \"30s\" or \"5m\": {e}"))
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::from_json(
            br#"{"steps":[{"weight":0.01,"bake":"30s"},{"weight":0.05,"bake":"1m"},{"weight":0.15,"bake":"1m"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_spec_reads_with_default_guards_and_round_trips() {
        let s = spec();
        assert_eq!(s.steps[1], Step { weight: 0.05, bake: Duration::from_secs(60) });
        assert_eq!(s.guards, GuardConfig::default());
        assert_eq!(s.at_end, AtEnd::Hold);
        let again: Spec = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(again, s);
        let tuned = Spec::from_json(
            br#"{"steps":[{"weight":0.1,"bake":"0s"}],"at_end":"disable",
                 "guards":{"error_rate":{"min_requests":50},"latency":{"min_slowdown":"20ms","limit":"2s"}}}"#,
        )
        .unwrap();
        let e = tuned.guards.error_rate.unwrap();
        assert_eq!((e.min_requests, e.alpha), (50, 0.001), "a named guard keeps the defaults it does not name");
        let l = tuned.guards.latency.unwrap();
        assert_eq!((l.min_slowdown, l.limit), (Duration::from_millis(20), Some(Duration::from_secs(2))));
        let no_latency = Spec::from_json(br#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"latency":null}}"#);
        assert_eq!(no_latency.unwrap().guards.latency, None);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"steps":[]}"#, "steps: a rollout has 1 to 20 steps"),
            (r#"{"steps":[{"weight":1.2,"bake":"1s"}]}"#, "steps[1].weight: 1.2 is not in (0, 1]"),
            (r#"{"steps":[{"weight":0,"bake":"1s"}]}"#, "steps[1].weight"),
            (r#"{"steps":[{"weight":0.1,"bake":"soon"}]}"#, "`soon` is not a duration"),
            (r#"{"steps":[{"weight":0.1,"bake":"9d"}]}"#, "steps[1].bake: at most 7 days"),
            (r#"{"steps":[{"weight":0.1,"bake":"1s","x":1}]}"#, "unknown field `x`"),
            (r#"{"steps":[{"weight":0.1,"bake":"1s"}],"at_end":"promote"}"#, "unknown variant `promote`"),
            (
                r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"error_rate":null,"latency":null}}"#,
                "at least one guard",
            ),
            (
                r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"error_rate":{"alpha":0}}}"#,
                "guards.error_rate.alpha",
            ),
            (
                r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"latency":{"quantile":1}}}"#,
                "guards.latency.quantile",
            ),
            (r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"error_rate":{"min_requests":0}}}"#, "min_requests: 0"),
        ];
        for (body, want) in cases {
            let err = Spec::from_json(body.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
        let too_many = format!(r#"{{"steps":[{}]}}"#, vec![r#"{"weight":0.1,"bake":"1s"}"#; 21].join(","));
        assert!(Spec::from_json(too_many.as_bytes()).unwrap_err().contains("not 21"));
    }

    #[test]
    fn a_healthy_rollout_advances_through_every_step_then_holds() {
        let mut r = Rollout::start("shop".into(), "id".into(), "E1".into(), spec(), 1_000);
        assert_eq!((r.state, r.weight(), r.bake()), (State::Running, 0.01, Duration::from_secs(30)));
        assert!(!r.baked(30_999) && r.baked(31_000));
        r = r.apply(Action::Advance { from: 0, reference: None }, 31_000).unwrap();
        assert_eq!((r.step, r.weight(), r.step_started_ms), (1, 0.05, 31_000));
        assert!(r.apply(Action::Advance { from: 0, reference: None }, 32_000).is_err(), "a stale advance is refused");
        r = r.apply(Action::Advance { from: 1, reference: None }, 91_000).unwrap();
        assert!(matches!(r.apply(Action::Advance { from: 2, reference: None }, 200_000), Err(Refused::Invalid(_))));
        r = r.apply(Action::Finish { from: 2 }, 151_000).unwrap();
        assert_eq!((r.state, r.weight(), r.policy_enabled(), r.ends_sessions()), (State::Finished, 0.15, true, false));
        let events: Vec<_> = r.history.iter().map(|e| (e.event, e.step)).collect();
        assert_eq!(
            events,
            [(EventKind::Started, 1), (EventKind::Advanced, 2), (EventKind::Advanced, 3), (EventKind::Finished, 3)]
        );
        assert!(matches!(r.apply(Action::Pause { reason: None }, 1), Err(Refused::Conflict(_))));
    }

    #[test]
    fn a_rollback_ends_staging_and_an_ended_rollout_takes_no_more_transitions() {
        let r = Rollout::start("shop".into(), "id".into(), "E1".into(), spec(), 0);
        let paused = r.apply(Action::Pause { reason: Some(" look ".into()) }, 5).unwrap();
        assert_eq!((paused.state, paused.reason.as_deref(), paused.weight()), (State::Paused, Some("look"), 0.01));
        assert!(
            paused.apply(Action::Advance { from: 0, reference: None }, 6).is_err(),
            "a paused rollout does not advance"
        );
        let back = paused.apply(Action::RollBack { from: 0, reason: "error rate".into() }, 7).unwrap();
        assert_eq!((back.state, back.weight(), back.ends_sessions()), (State::RolledBack, 0.0, true));
        assert_eq!(back.history.last().unwrap().detail.as_deref(), Some("error rate"));
        for action in [Action::Resume, Action::Abort { reason: None }, Action::RollBack { from: 0, reason: "x".into() }]
        {
            assert!(matches!(back.apply(action, 8), Err(Refused::Conflict(_))));
        }
        let resumed = paused.apply(Action::Resume, 100).unwrap();
        assert_eq!((resumed.state, resumed.step_started_ms, resumed.reason.clone()), (State::Running, 100, None));
        let aborted = resumed.apply(Action::Abort { reason: None }, 101).unwrap();
        assert_eq!((aborted.state, aborted.reason.as_deref()), (State::Aborted, Some("aborted by the operator")));
        let long = "x".repeat(MAX_REASON + 1);
        assert!(matches!(resumed.apply(Action::Pause { reason: Some(long) }, 1), Err(Refused::Invalid(_))));
    }

    #[test]
    fn a_stored_rollout_outside_the_rules_fails_its_check() {
        let r = Rollout::start("d".into(), "id".into(), "E1".into(), spec(), 0);
        assert_eq!(r.check(), Ok(()));
        let mut far = r.clone();
        far.spec.steps[0].weight = 1.9;
        assert!(far.check().unwrap_err().contains("steps[1].weight: 1.9"), "{:?}", far.check());
        far.spec.steps[0].weight = 0.9;
        assert!(far.check().unwrap_err().contains("steps[1].weight: 0.9 is above 0.15"), "{:?}", far.check());
        far.launch = Some("shop/ramp".into());
        assert_eq!(far.check(), Ok(()), "a launch takes up to 100 %");
        far = r.clone();
        far.spec.steps.clear();
        assert!(far.check().unwrap_err().contains("1 to 20 steps"));
        far = r.clone();
        far.step = 3;
        assert_eq!(far.check(), Err("step: index 3 is not one of the 3 steps".into()));
        far = r.clone();
        far.history = vec![r.history[0].clone(); MAX_HISTORY + 1];
        assert!(far.check().unwrap_err().contains("at most 64 events"));
    }

    #[test]
    fn finishing_with_disable_ends_sessions_and_history_is_bounded() {
        let mut s = spec();
        s.at_end = AtEnd::Disable;
        s.steps.truncate(1);
        let mut r = Rollout::start("d".into(), "id".into(), "E1".into(), s, 0);
        for i in 0..200 {
            r = r.apply(Action::Pause { reason: None }, i).unwrap().apply(Action::Resume, i).unwrap();
        }
        assert_eq!(r.history.len(), MAX_HISTORY);
        assert_eq!(r.history[0].event, EventKind::Started, "the start is kept");
        let done = r.apply(Action::Finish { from: 0 }, 1_000).unwrap();
        assert_eq!((done.weight(), done.policy_enabled(), done.ends_sessions()), (0.0, false, true));
    }
}
