//! Guarded rollouts in the control plane (issue 18): the commands that start and move a rollout, each
//! writing the rollout and the policy weight it sets in one transaction, and the [`Driver`] that reads
//! both arms' counts and moves the rollouts on (advance, finish, roll back).
//!
//! A rollout drives the weight of the CloudFront continuous deployment policy that applies to its
//! distribution, as an operator would with UpdateContinuousDeploymentPolicy: each transition writes the
//! policy with a new ETag, so GetContinuousDeploymentPolicy shows the weight in force. A rollback or an
//! abort sets the weight to 0 and moves the policy's session epoch, so a client pinned to staging is
//! back on primary at its next request.

use std::collections::HashMap;
use std::time::Instant;

use crate::cd::model::{StoredPolicy, TrafficType};
use crate::evidently::input::Stop;
use crate::evidently::model::{Launch, Resource, RunStatus, ScheduledStep};
use crate::rollout::guard::{self, ArmCounts, Verdict};
use crate::rollout::{Action, Figures, POLICY_MAX_WEIGHT, Refused, Rollout, SharedWindow, Spec, State, WireCounts};

use super::command::{Applied, Change, Command, DomainError, Fresh, Outcome, ResourceId};
use super::{ControlState, Plane};
use crate::config::{ConfigError, DeclaredRollout};
use crate::store::Store;

/// StartRollout: checks that the distribution is wired for it, then starts at the first step.
pub(super) fn start(
    st: &ControlState,
    distribution: String,
    spec: Spec,
    declared: Option<String>,
    fresh: Fresh,
) -> Result<Applied, DomainError> {
    spec.check().map_err(|e| DomainError::invalid("rollout", e))?;
    let driven = driven(st, &distribution)?;
    match &driven {
        Driven::Policy(_) => spec.check_cap(POLICY_MAX_WEIGHT, "a continuous deployment policy"),
        Driven::Launch(_) => spec.check_cap(1.0, "a launch"),
    }
    .map_err(|e| DomainError::invalid("rollout", e))?;
    if let Some(r) = st.rollouts.get(&distribution)
        && r.state.is_active()
    {
        return Err(DomainError::Conflict {
            resource: ResourceId::Rollout(distribution.clone()),
            message: format!(
                "distribution `{distribution}` already has a {} rollout (step {} of {}): abort it first",
                r.state.as_str(),
                r.step + 1,
                r.spec.steps.len()
            ),
        });
    }
    let policy_id = match &driven {
        Driven::Policy(p) => p.id.clone(),
        Driven::Launch(_) => String::new(),
    };
    let mut rollout = Rollout::start(distribution, fresh.id.clone(), policy_id, spec, fresh.now_ms);
    if let Driven::Launch(l) = &driven {
        rollout.launch = Some(format!("{}/{}", l.project, l.name));
    }
    rollout.declared = declared;
    Ok(write(st, rollout, &fresh, false))
}

/// A transition of a distribution's rollout.
pub(super) fn apply(
    st: &ControlState,
    distribution: &str,
    action: Action,
    fresh: Fresh,
) -> Result<Applied, DomainError> {
    let r =
        st.rollouts.get(distribution).ok_or_else(|| DomainError::NotFound(ResourceId::Rollout(distribution.into())))?;
    let moved = r.apply(action, fresh.now_ms).map_err(|e| match e {
        Refused::Conflict(message) => {
            DomainError::Conflict { resource: ResourceId::Rollout(distribution.into()), message }
        }
        Refused::Invalid(message) => DomainError::invalid("rollout", message),
    })?;
    let ends = moved.ends_sessions() && !r.ends_sessions();
    Ok(write(st, moved, &fresh, ends))
}

/// The rollouts declared in the config file (`[distribution.rollout]`): each one whose declaration changed
/// since it was last applied is started, unless the distribution's rollout is still active (then the
/// file is refused, positioned, and says to abort it first). An unchanged declaration is left alone, so a
/// rollout that finished or rolled back is not started again by a reload. With `write` false, a
/// rehearsal on a copy of the state: nothing is written, and what was applied is read from `store`.
pub(super) fn declare(store: &Store, write: bool, st: &mut ControlState) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let was_pending = std::mem::take(&mut st.rollouts_pending);
    let declared: Vec<(String, DeclaredRollout)> =
        st.config.distributions.iter().filter_map(|d| Some((d.id.clone(), d.rollout.clone()?))).collect();
    for (d, decl) in declared {
        let at =
            |message: String| ConfigError { message: format!("[distribution.rollout] {message}"), ..decl.at.clone() };
        let print = fingerprint(&decl.spec);
        let key = format!("declared-rollout:{d}");
        let record = |errors: &mut Vec<ConfigError>| {
            if write && let Err(e) = store.set_meta(&key, print.as_bytes()) {
                errors.push(at(format!("cannot record the declaration in the store: {e}")));
            }
        };
        if store.meta(&key).ok().flatten().as_deref() == Some(print.as_bytes()) {
            continue;
        }
        let current = st.rollouts.get(&d);
        // Another instance of the fleet started it from the same file.
        if current.is_some_and(|r| r.declared.as_deref() == Some(print.as_str())) {
            record(&mut errors);
            continue;
        }
        if let Some(r) = current.filter(|r| r.state.is_active()) {
            errors.push(at(format!(
                "distribution `{d}` has a {} rollout (step {} of {}) that this declaration would replace: abort it \
                 first (`edgesplit rollout abort {d}`), then reload",
                r.state.as_str(),
                r.step + 1,
                r.spec.steps.len()
            )));
            continue;
        }
        // No policy yet (one made through the API after the file, or `edgesplit check` on an empty
        // store): the declaration waits, and the driver starts it once the policy is there.
        let waits = st
            .config
            .distributions
            .iter()
            .find(|x| x.id == d)
            .is_some_and(|x| x.inline_policy.is_none() && crate::routing::policy_for(x, &st.policies).is_none());
        if waits {
            if write && !st.rollouts_pending {
                tracing::warn!(distribution = %d, "The rollout declared for this distribution waits for a continuous deployment policy that applies to it");
            }
            st.rollouts_pending = true;
            continue;
        }
        let cmd = Command::StartRollout { distribution: d.clone(), spec: decl.spec, declared: Some(print.clone()) };
        match super::run(write.then_some(store), st, cmd) {
            Ok(_) => {
                if write {
                    tracing::info!(distribution = %d, "Rollout started from the config file");
                }
                record(&mut errors);
            }
            Err(e) => errors.push(at(e.to_string())),
        }
    }
    if was_pending && !st.rollouts_pending && write {
        tracing::info!("Every declared rollout has its policy now");
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The fingerprint of a declared spec: SHA-256 of its JSON, in hex.
fn fingerprint(spec: &Spec) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(serde_json::to_vec(spec).unwrap_or_default());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A policy that an active rollout drives cannot be deleted.
pub(super) fn check_not_driven(st: &ControlState, policy_id: &str) -> Result<(), DomainError> {
    match st.rollouts.values().find(|r| r.state.is_active() && r.policy_id == policy_id) {
        Some(r) => Err(DomainError::Conflict {
            resource: ResourceId::Policy(policy_id.into()),
            message: format!(
                "The policy is driven by the {} rollout of distribution {}; abort the rollout first.",
                r.state.as_str(),
                r.distribution
            ),
        }),
        None => Ok(()),
    }
}

/// What a rollout drives: a distribution's continuous deployment policy, or the running launch of the
/// feature that routes it (with the groups that serve a staging variation).
enum Driven<'a> {
    Policy(&'a StoredPolicy),
    Launch(&'a Launch),
}

/// What a rollout of `distribution` drives, or why the distribution cannot have one.
fn driven<'a>(st: &'a ControlState, distribution: &str) -> Result<Driven<'a>, DomainError> {
    let invalid = |message: String| DomainError::invalid("distribution", message);
    let d = st
        .config
        .distributions
        .iter()
        .find(|d| d.id == distribution)
        .ok_or_else(|| DomainError::NotFound(ResourceId::Distribution(distribution.into())))?;
    if d.staging.is_none() {
        return Err(invalid(format!("distribution `{distribution}` has no staging pool to roll out")));
    }
    if let Some((project, route)) = d.edge.as_ref().and_then(|e| Some((&e.project, e.route.as_ref()?))) {
        return launch_of(st, distribution, project, route).map(Driven::Launch);
    }
    if d.inline_policy.is_some() {
        return Err(invalid(format!(
            "distribution `{distribution}` has its policy written in the config file ([distribution.policy]), which \
             only the file changes; a rollout drives a policy made through the CloudFront API"
        )));
    }
    let policy = crate::routing::policy_for(d, &st.policies).ok_or_else(|| {
        invalid(format!(
            "no continuous deployment policy applies to distribution `{distribution}`: create one that names its \
             staging distribution{} (CreateContinuousDeploymentPolicy) first",
            d.staging_dns_name.as_deref().map(|n| format!(" `{n}`")).unwrap_or_default()
        ))
    })?;
    match policy.config.traffic.as_ref().map(|t| t.kind) {
        Some(TrafficType::SingleWeight) => Ok(Driven::Policy(policy)),
        _ => Err(invalid(format!(
            "policy {} of distribution `{distribution}` sends to staging by header (SingleHeader); a rollout drives a \
             SingleWeight policy's share",
            policy.id
        ))),
    }
}

/// The running launch of the feature that routes `distribution`, or why it cannot be rolled out. Stopping the launch (a rollback) must send every entity to
/// primary, so the feature's default variation must be a primary one.
fn launch_of<'a>(
    st: &'a ControlState,
    distribution: &str,
    project: &str,
    route: &crate::config::EdgeRoute,
) -> Result<&'a Launch, DomainError> {
    let invalid = |message: String| DomainError::invalid("distribution", message);
    let feature = route.feature.as_str();
    let staging = |variation: &String| route.staging_variations.contains(variation);
    let launch = st
        .evidently
        .launches
        .values()
        .find(|l| {
            l.project == project
                && l.status == RunStatus::Running
                && l.groups.iter().any(|g| g.feature_variations.contains_key(feature))
        })
        .ok_or_else(|| {
            invalid(format!(
                "distribution `{distribution}` routes by the Evidently feature `{project}/{feature}`, and no launch of \
                 it is running: start one whose groups serve its primary and staging variations"
            ))
        })?;
    let (to_staging, to_primary): (Vec<_>, Vec<_>) =
        launch.groups.iter().partition(|g| g.feature_variations.get(feature).is_some_and(staging));
    if to_staging.is_empty() || to_primary.is_empty() {
        return Err(invalid(format!(
            "launch `{project}/{}` needs a group serving a staging variation ({}) and one serving another",
            launch.name,
            route.staging_variations.join(", ")
        )));
    }
    let default = st.evidently.features.get(&(project.to_string(), feature.to_string())).map(|f| &f.default_variation);
    if default.is_some_and(staging) {
        return Err(invalid(format!(
            "the default variation of feature `{project}/{feature}` routes to staging, so stopping the launch (a \
             rollback) would not send traffic back to primary"
        )));
    }
    Ok(launch)
}

/// The changes of a rollout transition: the rollout, and what it drives when that must change.
/// - A policy: its weight, its switch, and its session epoch (`ends` moves it: staging's sessions end).
/// - A launch: one scheduled step from now with the rollout's share split over the groups (weights in
///   thousandths of a percent, as Evidently's), or, when the rollout ends staging, the launch stopped:
///   CANCELLED with the rollout's reason (a rollback, an abort), or COMPLETED (`at_end = "disable"`).
fn write(st: &ControlState, rollout: Rollout, fresh: &Fresh, ends: bool) -> Applied {
    let mut changes = Vec::with_capacity(2);
    if let Some(key) = &rollout.launch {
        let found = key.split_once('/').and_then(|(p, l)| st.evidently.launches.get(&(p.to_string(), l.to_string())));
        if let Some(launch) = found.filter(|l| l.status == RunStatus::Running)
            && let Some(l) = drive_launch(st, launch, &rollout, fresh.seconds())
        {
            changes.push(Change::PutResource(Resource::Launch(l)));
        }
    } else if let Some(old) = st.policies.get(&rollout.policy_id) {
        let mut config = old.config.clone();
        config.enabled = rollout.policy_enabled();
        if let Some(w) = config.traffic.as_mut().and_then(|t| t.single_weight.as_mut()) {
            w.weight = rollout.weight();
        }
        let epoch = if ends { old.epoch + 1 } else { old.next_epoch(&config) };
        if config != old.config || epoch != old.epoch {
            changes.push(Change::PutPolicy(StoredPolicy {
                id: old.id.clone(),
                etag: fresh.etag.clone(),
                last_modified_ms: fresh.now_ms,
                config,
                epoch,
            }));
        }
    }
    changes.push(Change::PutRollout(rollout.clone()));
    Applied { changes, outcome: Outcome::Rollout(rollout) }
}

/// The launch as `rollout` leaves it, or `None` when it does not change.
fn drive_launch(st: &ControlState, launch: &Launch, rollout: &Rollout, now_s: f64) -> Option<Launch> {
    if rollout.ends_sessions() {
        let (state, reason) = match rollout.state {
            State::Finished => (RunStatus::Completed, "the rollout finished".to_string()),
            _ => (RunStatus::Cancelled, rollout.reason.clone().unwrap_or_else(|| "rolled back".into())),
        };
        let reason = format!("edgesplit rollout of distribution {}: {reason}", rollout.distribution);
        // Evidently's reason is at most 160 characters.
        let reason: String = reason.chars().take(160).collect();
        return super::evidently::stop(launch.clone(), Stop { state, reason: Some(reason) }, now_s).ok();
    }
    let d = st.config.distributions.iter().find(|d| d.id == rollout.distribution)?;
    let route = d.edge.as_ref()?.route.as_ref()?;
    let staging: Vec<&str> = launch
        .groups
        .iter()
        .filter(|g| g.feature_variations.get(&route.feature).is_some_and(|v| route.staging_variations.contains(v)))
        .map(|g| g.name.as_str())
        .collect();
    let primary: Vec<&str> = launch.groups.iter().map(|g| g.name.as_str()).filter(|g| !staging.contains(g)).collect();
    let to_staging = (rollout.weight() * 100_000.0).round() as i64;
    let mut weights = std::collections::BTreeMap::new();
    for (groups, total) in [(&staging, to_staging), (&primary, 100_000 - to_staging)] {
        let n = groups.len().max(1) as i64;
        for (i, g) in groups.iter().enumerate() {
            weights.insert(g.to_string(), total / n + i64::from((i as i64) < total % n));
        }
    }
    // The step in force keeps its segment overrides.
    let current =
        launch.steps.iter().filter(|s| s.start_time <= now_s).max_by(|a, b| a.start_time.total_cmp(&b.start_time));
    if current.is_some_and(|s| s.group_weights == weights) {
        return None;
    }
    let segment_overrides = current.map(|s| s.segment_overrides.clone()).unwrap_or_default();
    let mut l = launch.clone();
    l.steps = vec![ScheduledStep { start_time: now_s, group_weights: weights, segment_overrides }];
    l.last_updated_time = now_s;
    Some(l)
}

/// Moves rollouts on from both arms' counts: evaluated every `timeouts.rollout_interval` by the app.
///
/// Each instance counts both arms of each active rollout over the current step's window, which starts
/// when the instance first sees the step (at its start, after a resume, or after the instance started):
/// counts from before a restart are not in it, so a restart makes the step gather its minimum sample
/// again rather than judge on counts it cannot see. On a fleet store every instance shares its window
/// counts, and the guards read the sum of every instance's counts of the same window; one instance, the
/// holder of the store's lease, acts on the verdicts. With redb the one instance does both.
pub struct Driver {
    /// This process, in the fleet's shared counts and lease.
    instance: String,
    watches: HashMap<String, Watch>,
    /// Whether this instance held the lease at its last evaluation.
    leading: bool,
}

/// The counts at the start of the window of the step an instance watches.
struct Watch {
    window: String,
    since: Instant,
    primary: ArmCounts,
    staging: ArmCounts,
}

impl Default for Driver {
    fn default() -> Self {
        Driver { instance: crate::random::uuid(), watches: HashMap::new(), leading: false }
    }
}

impl Driver {
    /// One evaluation of every active rollout: this instance's counts shared, the figures published, and
    /// (by the lease holder) at most one transition each. Blocking (it calls the store): run it off the
    /// async workers.
    pub fn tick(&mut self, plane: &Plane, lease: std::time::Duration) {
        let active: Vec<Rollout> = {
            let mut st = plane.lock();
            if st.rollouts_pending {
                let before = st.rollouts.clone();
                if let Err(errors) = declare(&plane.store, true, &mut st) {
                    for e in errors {
                        tracing::warn!(error = %e, "A declared rollout cannot start");
                    }
                }
                if st.rollouts != before {
                    plane.publish(&st);
                }
            }
            st.rollouts.values().filter(|r| r.state.is_active()).cloned().collect()
        };
        self.watches.retain(|d, _| active.iter().any(|r| &r.distribution == d));
        if active.is_empty() {
            return;
        }
        let mut local = Vec::with_capacity(active.len());
        for r in &active {
            let metrics = plane.metrics.distribution(&r.distribution);
            let (primary, staging) = (metrics.primary.guard_counts(), metrics.staging.guard_counts());
            let window = r.window();
            let watch =
                self.watches.entry(r.distribution.clone()).or_insert_with(|| Watch::new(&window, &primary, &staging));
            if watch.window != window {
                *watch = Watch::new(&window, &primary, &staging);
            }
            let shared = SharedWindow {
                window,
                primary: (&primary.since(&watch.primary)).into(),
                staging: (&staging.since(&watch.staging)).into(),
            };
            local.push((watch.since.elapsed().as_millis() as u64, shared));
        }
        let fleet = plane.store.shared();
        if fleet {
            let rows = active
                .iter()
                .zip(&local)
                .map(|(r, (_, w))| (r.distribution.clone(), serde_json::to_vec(w).unwrap_or_default()))
                .collect();
            if let Err(e) = plane.store.share_counts(&self.instance, rows) {
                tracing::warn!(error = %e, "Rollout counts not shared with the fleet");
            }
        }
        let leading = plane.store.rollout_lease(&self.instance, lease).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Cannot take or renew the rollout lease");
            false
        });
        if leading != self.leading && fleet {
            if leading {
                tracing::info!(instance = %self.instance, "This instance drives the fleet's rollouts (it holds the lease)");
            } else {
                tracing::info!(instance = %self.instance, "This instance no longer drives the fleet's rollouts");
            }
        }
        self.leading = leading;
        for (r, (window_ms, mine)) in active.into_iter().zip(local) {
            let (mut primary, staging) =
                if fleet { fleet_window(plane, &self.instance, &r, &mine) } else { counts(&mine) };
            if r.weight() >= 1.0
                && primary.requests == 0
                && let Some(reference) = r.primary_reference.as_ref().and_then(WireCounts::counts)
            {
                primary = reference;
            }
            let verdict = guard::evaluate(&r.spec.guards, &primary, &staging);
            let figures = Figures::of(&r, window_ms, &primary, &staging, &verdict);
            plane.metrics.set_rollout_figures(&r.distribution, Some(figures));
            if !leading {
                continue;
            }
            let now_ms = crate::domain::clock::now_ms();
            let last = r.spec.steps.len() - 1;
            let action = match &verdict {
                Verdict::Breach(breach) => {
                    Action::RollBack { from: r.step, reason: format!("step {}: {breach}", r.step + 1) }
                }
                Verdict::Pass if r.state == State::Running && r.baked(now_ms) && r.step < last => {
                    Action::Advance { from: r.step, reference: Some((&primary).into()) }
                }
                Verdict::Pass if r.state == State::Running && r.baked(now_ms) => Action::Finish { from: r.step },
                _ => continue,
            };
            let cmd = Command::MoveRollout { distribution: r.distribution.clone(), action: action.clone() };
            match plane.execute(cmd) {
                Ok(Outcome::Rollout(moved)) => log(&moved, &action),
                Ok(_) => {}
                Err(e) => tracing::warn!(distribution = %r.distribution, error = %e, "Rollout transition not written"),
            }
        }
    }
}

/// Both arms' counts of one instance's window.
fn counts(w: &SharedWindow) -> (ArmCounts, ArmCounts) {
    (w.primary.counts().unwrap_or_default(), w.staging.counts().unwrap_or_default())
}

/// Both arms' counts over the fleet: every instance's shared counts of the rollout's current window
/// (this instance's own as it just counted them, whatever the store answers).
fn fleet_window(plane: &Plane, instance: &str, r: &Rollout, mine: &SharedWindow) -> (ArmCounts, ArmCounts) {
    let rows = plane.store.fleet_counts(&r.distribution, instance).unwrap_or_else(|e| {
        tracing::warn!(error = %e, distribution = %r.distribution, "Cannot read the fleet's rollout counts; judging on this instance's");
        Vec::new()
    });
    let (mut primary, mut staging) = counts(mine);
    for row in rows {
        let Ok(w) = serde_json::from_slice::<SharedWindow>(&row) else { continue };
        if w.window == mine.window {
            let (p, s) = counts(&w);
            primary.merge(&p);
            staging.merge(&s);
        }
    }
    (primary, staging)
}

impl Plane {
    /// Drives the rollouts: a thread that runs a [`Driver`] every `timeouts.rollout_interval`, until the
    /// plane is dropped.
    pub fn drive_rollouts(self: &std::sync::Arc<Self>) {
        let plane = std::sync::Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("edgesplit-rollouts".into()).spawn(move || {
            let mut driver = Driver::default();
            loop {
                let Some(every) = plane.upgrade().map(|p| p.lock().config.timeouts.rollout_interval) else { return };
                std::thread::sleep(every);
                let Some(plane) = plane.upgrade() else { return };
                // Renewed every evaluation; another instance takes over when five go by without one.
                let lease = (every * 5).max(std::time::Duration::from_secs(2));
                driver.tick(&plane, lease);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "Cannot start the rollout driver");
        }
    }

    /// Each rollout's (distribution, state, 1-based step, weight in force), for `/metrics`.
    pub(crate) fn rollout_states(&self) -> Vec<(String, State, usize, f64)> {
        let st = self.lock();
        st.rollouts.values().map(|r| (r.distribution.clone(), r.state, r.step + 1, r.weight())).collect()
    }
}

impl Watch {
    fn new(window: &str, primary: &ArmCounts, staging: &ArmCounts) -> Watch {
        Watch { window: window.to_string(), since: Instant::now(), primary: primary.clone(), staging: staging.clone() }
    }
}

/// The log line of a transition the driver made.
fn log(r: &Rollout, action: &Action) {
    let (d, step, weight) = (&r.distribution, r.step + 1, r.weight());
    match action {
        Action::RollBack { reason, .. } => {
            tracing::warn!(distribution = %d, step, weight, reason = %reason, "Rollout rolled back: staging breached a guard")
        }
        Action::Advance { .. } => tracing::info!(distribution = %d, step, weight, "Rollout advanced"),
        Action::Finish { .. } => {
            tracing::info!(distribution = %d, step, weight, at_end = ?r.spec.at_end, "Rollout finished")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cd::model::{PolicyConfig, SingleWeight, Stickiness, TrafficConfig};

    fn state(extra: &str) -> ControlState {
        let text = format!(
            "[[listener]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n[admin]\nauth = \"none\"\n\
             [[distribution]]\nid = \"shop\"\ndomains = [\"shop.test\"]\nstaging_dns_name = \"s.test\"\n\
             [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n\
             [distribution.staging]\norigins = [\"http://127.0.0.1:2\"]\n{extra}"
        );
        let config = crate::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap();
        ControlState::of(config)
    }

    fn policy(st: &mut ControlState, kind: TrafficType) {
        let config = PolicyConfig {
            staging_dns_names: vec!["s.test".into()],
            enabled: false,
            traffic: Some(TrafficConfig {
                kind,
                single_weight: Some(SingleWeight {
                    weight: 0.0,
                    stickiness: Some(Stickiness { idle_ttl: 300, maximum_ttl: 600 }),
                }),
                single_header: None,
            }),
        };
        st.policies.insert(
            "E1".into(),
            StoredPolicy { id: "E1".into(), etag: "T0".into(), last_modified_ms: 0, config, epoch: 3 },
        );
    }

    fn spec() -> Spec {
        Spec::from_json(br#"{"steps":[{"weight":0.01,"bake":"1s"},{"weight":0.05,"bake":"1s"}]}"#).unwrap()
    }

    fn run(st: &mut ControlState, cmd: Command, n: u64) -> Result<Outcome, DomainError> {
        let applied = super::super::command::apply(
            st,
            cmd,
            Fresh { now_ms: n * 1000, id: format!("r{n}"), etag: format!("T{n}") },
        )?;
        for c in applied.changes {
            st.commit(c);
        }
        Ok(applied.outcome)
    }

    fn weight(st: &ControlState) -> (f64, bool, u64, String) {
        let p = &st.policies["E1"];
        (
            p.config.traffic.as_ref().unwrap().single_weight.as_ref().unwrap().weight,
            p.config.enabled,
            p.epoch,
            p.etag.clone(),
        )
    }

    #[test]
    fn a_rollout_drives_its_policy_weight_and_a_rollback_ends_staging_sessions() {
        let mut st = state("");
        policy(&mut st, TrafficType::SingleWeight);
        let start = |st: &mut ControlState, n| {
            run(st, Command::StartRollout { distribution: "shop".into(), spec: spec(), declared: None }, n)
        };
        let Ok(Outcome::Rollout(r)) = start(&mut st, 1) else { panic!() };
        assert_eq!((r.id.as_str(), r.policy_id.as_str(), r.state), ("r1", "E1", State::Running));
        // Enabled at 1 %: enabling moves the epoch (CloudFront's rule), the ETag is new.
        assert_eq!(weight(&st), (0.01, true, 4, "T1".into()));
        let again = start(&mut st, 2).unwrap_err();
        assert!(
            matches!(&again, DomainError::Conflict { message, .. } if message.contains("already has a running rollout")),
            "{again:?}"
        );
        let mv = |action| Command::MoveRollout { distribution: "shop".into(), action };
        run(&mut st, mv(Action::Advance { from: 0, reference: None }), 3).unwrap();
        assert_eq!(weight(&st), (0.05, true, 4, "T3".into()));
        // A pause changes nothing in the policy: no policy write, the ETag stays.
        run(&mut st, mv(Action::Pause { reason: None }), 4).unwrap();
        assert_eq!(weight(&st).3, "T3");
        let delete = Command::DeletePolicy { id: "E1".into(), if_match: Some("T3".into()) };
        assert!(matches!(run(&mut st, delete, 5), Err(DomainError::Conflict { .. })), "a driven policy stays");
        run(&mut st, mv(Action::RollBack { from: 1, reason: "error rate".into() }), 6).unwrap();
        assert_eq!(weight(&st), (0.0, true, 5, "T6".into()), "weight 0, and the epoch moved");
        assert_eq!(st.rollouts["shop"].state, State::RolledBack);
        // An ended rollout is replaced by the next start.
        let Ok(Outcome::Rollout(r)) = start(&mut st, 7) else { panic!() };
        assert_eq!((r.id.as_str(), r.step), ("r7", 0));
        assert_eq!(weight(&st).0, 0.01);
    }

    #[test]
    fn a_rollout_that_contradicts_the_wiring_is_refused_with_the_reason() {
        let why = |st: &ControlState, distribution: &str| {
            let cmd = Command::StartRollout { distribution: distribution.into(), spec: spec(), declared: None };
            match super::super::command::apply(st, cmd, Fresh { now_ms: 0, id: "r".into(), etag: "T".into() }) {
                Err(e) => format!("{e:?}"),
                Ok(_) => "accepted".into(),
            }
        };
        let mut st = state("");
        assert!(why(&st, "nope").contains("NotFound(Distribution(\"nope\"))"));
        assert!(why(&st, "shop").contains("no continuous deployment policy applies"));
        policy(&mut st, TrafficType::SingleHeader);
        assert!(why(&st, "shop").contains("by header (SingleHeader)"));
        let inline = state("[distribution.policy]\ntype = \"SingleWeight\"\nweight = 0.1\n");
        assert!(why(&inline, "shop").contains("written in the config file"), "{}", why(&inline, "shop"));
        let mv = Command::MoveRollout { distribution: "shop".into(), action: Action::Resume };
        let e =
            super::super::command::apply(&st, mv, Fresh { now_ms: 0, id: "r".into(), etag: "T".into() }).unwrap_err();
        assert_eq!(e, DomainError::NotFound(ResourceId::Rollout("shop".into())));
    }

    /// A step at 100 % leaves primary nothing to count: a driver that never saw the step before (after a
    /// restart, or on the instance that took the lease over) judges it against the reference the advance
    /// stored, and finishes the rollout.
    #[test]
    fn a_step_at_100_percent_is_judged_against_the_stored_reference_by_a_new_driver() {
        let text = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[admin]\nauth = \"none\"\n\
                    [[distribution]]\nid = \"web\"\ndomains = [\"*\"]\n\
                    [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n\
                    [distribution.staging]\norigins = [\"http://127.0.0.1:2\"]\n\
                    [distribution.evidently]\nproject = \"p\"\nroute = { feature = \"f\", staging_variations = [\"on\"] }\n\
                    [[evidently.projects]]\nname = \"p\"\n\
                    [[evidently.features]]\nproject = \"p\"\nname = \"f\"\ndefaultVariation = \"off\"\n\
                    variations = [{ name = \"off\", value = { boolValue = false } }, { name = \"on\", value = { boolValue = true } }]\n\
                    [[evidently.launches]]\nproject = \"p\"\nname = \"l\"\nstatus = \"RUNNING\"\n\
                    groups = [{ name = \"a\", feature = \"f\", variation = \"off\" }, { name = \"b\", feature = \"f\", variation = \"on\" }]\n";
        let plane = Plane::new(crate::config::parse(text, "t.toml", std::path::Path::new(".")).unwrap()).unwrap();
        let spec = Spec::from_json(
            br#"{"steps":[{"weight":0.5,"bake":"0s"},{"weight":1,"bake":"0s"}],
                 "guards":{"error_rate":{"min_requests":10},"latency":{"min_requests":10}}}"#,
        )
        .unwrap();
        plane.execute(Command::StartRollout { distribution: "web".into(), spec, declared: None }).unwrap();
        let arms = plane.metrics.distribution("web");
        let answer = |staging: bool, n: usize| {
            for _ in 0..n {
                let arm = if staging { &arms.staging } else { &arms.primary };
                arm.record(200, std::time::Duration::from_millis(2));
            }
        };
        let lease = std::time::Duration::from_secs(2);
        let rollout = || plane.lock().rollouts["web"].clone();
        let mut first = Driver::default();
        first.tick(&plane, lease);
        answer(false, 50);
        answer(true, 50);
        first.tick(&plane, lease);
        let r = rollout();
        assert_eq!((r.step, r.weight()), (1, 1.0), "advanced to 100 %");
        assert_eq!(r.primary_reference.as_ref().map(|w| w.requests), Some(50), "the advance kept primary's window");
        // A new driver, and only staging answers now.
        let mut second = Driver::default();
        second.tick(&plane, lease);
        answer(true, 50);
        second.tick(&plane, lease);
        assert_eq!(rollout().state, State::Finished, "{:?}", plane.metrics.rollout_figures("web"));
        let figures = plane.metrics.rollout_figures("web").unwrap();
        assert_eq!((figures.primary.requests, figures.staging.requests), (50, 50));
    }
}
