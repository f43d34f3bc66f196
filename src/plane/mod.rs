//! The control plane: the authoritative state (the config file, the policies written through the API)
//! and the one place that compiles it into a [`Snapshot`] and publishes it to its `Subscriber`s (the
//! data plane) and to the API's evaluations. Writers (a reload, an API call) serialise on a mutex the
//! request path never touches; readers only load a published `ArcSwap`.

pub mod command;
mod declare;
mod events;
pub mod evidently;
pub mod results;
pub mod rollouts;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::cd::CdSettings;
use crate::cd::cookie::CookieKey;
use crate::cd::model::StoredPolicy;
use crate::config::{Config, Timeouts, UpstreamConfig};
use crate::domain::clock::EvalClock;
use crate::evidently::compile::EvSnapshot;
use crate::evidently::exposure::ExposureLog;
use crate::evidently::model::{EvResources, Resource};
use crate::metrics::Metrics;
use crate::routing::{CompileInput, HealthRegistry, Routes};
use crate::store::{Row, Store, StoreError, Table};

pub struct Plane {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    /// Experiment assignments made by evaluations, at the edge and in the API, for attributing events.
    pub exposures: Arc<ExposureLog>,
    /// The clock evaluations read.
    pub clock: Arc<EvalClock>,
    health: HealthRegistry,
    state: Mutex<ControlState>,
    published: ArcSwap<Snapshot>,
    subscribers: Mutex<Vec<Arc<dyn Subscriber>>>,
}

/// What one state compiles to, swapped whole on every change: what the data plane routes and
/// evaluates by, and what the API's evaluations read.
pub struct Snapshot {
    pub routes: Routes,
    /// Evidently's features, compiled for evaluation (shared by the snapshots of writes that did not
    /// change them).
    pub evidently: Arc<EvSnapshot>,
    /// What the data plane's upstream clients are built from.
    pub upstream: UpstreamConfig,
    pub timeouts: Timeouts,
}

/// Something that follows the published snapshots: the data plane. Called under the plane's lock, in
/// order, for every publish.
pub(crate) trait Subscriber: Send + Sync {
    fn publish(&self, snapshot: &Arc<Snapshot>);
}

/// Why [`Plane::execute`] refused a command.
#[derive(Debug)]
pub enum ExecuteError {
    /// The command breaks a rule; nothing was written.
    Domain(command::DomainError),
    /// The store refused the write (its source kept); nothing changed.
    Store(StoreError),
}

impl std::fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecuteError::Domain(e) => write!(f, "{e}"),
            ExecuteError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// What the control plane knows; changed only under the plane's lock.
#[derive(Clone)]
pub struct ControlState {
    pub config: Config,
    pub policies: BTreeMap<String, StoredPolicy>,
    /// Evidently's projects, features, launches, experiments and segments.
    pub evidently: EvResources,
    /// Guarded rollouts by distribution id.
    pub rollouts: BTreeMap<String, crate::rollout::Rollout>,
    /// A rollout declared in the file waits for its policy: the driver tries it again.
    rollouts_pending: bool,
    inline_epochs: HashMap<String, u64>,
    cookie_key: CookieKey,
}

impl ControlState {
    /// Applies one committed change to the state.
    fn commit(&mut self, change: command::Change) {
        match change {
            command::Change::PutPolicy(p) => {
                self.policies.insert(p.id.clone(), p);
            }
            command::Change::DeletePolicy(id) => {
                self.policies.remove(&id);
            }
            command::Change::PutResource(r) => self.evidently.put(r),
            command::Change::DeleteResource(key) => self.evidently.remove(&key),
            command::Change::PutRollout(r) => {
                self.rollouts.insert(r.distribution.clone(), r);
            }
        }
    }
}

/// What the store holds of the control state, read in one transaction.
struct Stored {
    policies: BTreeMap<String, StoredPolicy>,
    evidently: EvResources,
    rollouts: BTreeMap<String, crate::rollout::Rollout>,
}

#[cfg(test)]
impl ControlState {
    /// A state of `config` alone, with nothing stored and a fixed cookie key, for the pure rules' tests.
    pub(crate) fn of(config: Config) -> ControlState {
        ControlState {
            config,
            policies: BTreeMap::new(),
            evidently: EvResources::default(),
            rollouts: BTreeMap::new(),
            rollouts_pending: false,
            inline_epochs: HashMap::new(),
            cookie_key: CookieKey::new(&[1; 32]),
        }
    }
}

/// The policies, Evidently resources and rollouts the store holds, read in one transaction.
fn stored_state(store: &Store) -> Result<Stored, StoreError> {
    let loaded = store.load()?;
    let policies = loaded.policies.into_iter().map(|p| (p.id.clone(), p)).collect();
    let mut evidently = EvResources::default();
    for (key, json) in loaded.evidently {
        match Resource::from_stored(&key, &json) {
            Some(r) => evidently.put(r),
            None => tracing::warn!(key, "Unreadable Evidently resource in the store; skipped"),
        }
    }
    let rollouts = loaded.rollouts.into_iter().map(|r| (r.distribution.clone(), r)).collect();
    Ok(Stored { policies, evidently, rollouts })
}

/// Replaces the stored part of `st` (policies, Evidently resources, rollouts) with what the store holds now.
fn reload(store: &Store, st: &mut ControlState) -> Result<(), StoreError> {
    let stored = stored_state(store)?;
    st.policies = stored.policies;
    st.evidently = stored.evidently;
    st.rollouts = stored.rollouts;
    Ok(())
}

/// How long a command keeps being applied again while other instances write first (each try catches up
/// with them); past it the write fails (503), as the store is too contended to take it.
const STALE_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// The store rows of one command's changes.
fn rows(changes: &[command::Change]) -> Vec<Row> {
    let evidently = |key: String, value| Row { table: Table::Evidently, key, value };
    changes
        .iter()
        .map(|c| match c {
            command::Change::PutPolicy(p) => Row::policy(p),
            command::Change::DeletePolicy(id) => Row { table: Table::Policies, key: id.clone(), value: None },
            command::Change::PutResource(r) => evidently(r.key(), Some(r.to_json())),
            command::Change::DeleteResource(key) => evidently(key.clone(), None),
            command::Change::PutRollout(r) => Row {
                table: Table::Rollouts,
                key: r.distribution.clone(),
                value: Some(serde_json::to_vec(r).unwrap_or_default()),
            },
        })
        .collect()
}

/// Applies `cmd` to `st`, committing its changes to `store` first, in one transaction (`None`: a
/// rehearsal on a copy, which writes nothing). Nothing changes if the command is refused or the store
/// fails.
fn run(store: Option<&Store>, st: &mut ControlState, cmd: command::Command) -> Result<command::Outcome, ExecuteError> {
    run_touching(store, st, cmd, &mut false).map(|(outcome, _)| outcome)
}

/// [`run`], and whether the command changed Evidently's resources.
fn run_touching(
    store: Option<&Store>,
    st: &mut ControlState,
    cmd: command::Command,
    reloaded: &mut bool,
) -> Result<(command::Outcome, bool), ExecuteError> {
    let (started, mut attempt) = (std::time::Instant::now(), 0u32);
    let applied = loop {
        // Each way round the loop ends in a catch-up: another instance wrote since this copy was loaded.
        let store = match (command::apply(st, cmd.clone(), command::Fresh::now()), store) {
            (Ok(applied), None) => break applied,
            (Ok(applied), Some(store)) => match store.write(&rows(&applied.changes)) {
                Ok(()) => break applied,
                // Another instance wrote first. A random pause, growing with each lost race (up to
                // 16 ms), so that instances racing each other do not meet again at once.
                Err(StoreError::Stale(_)) if started.elapsed() < STALE_BUDGET => {
                    attempt += 1;
                    let pause = (crate::random::id128() % (1u128 << attempt.min(4))) as u64;
                    std::thread::sleep(std::time::Duration::from_millis(pause));
                    store
                }
                Err(e) => return Err(ExecuteError::Store(e)),
            },
            // Refused on this instance's copy: if another instance wrote since (the resource made there a
            // moment ago, the ETag it returned), the refusal may be stale, so that a fleet refuses a write
            // only on the state the store holds.
            (Err(_), Some(store)) if started.elapsed() < STALE_BUDGET && store.behind().unwrap_or(false) => store,
            (Err(e), _) => return Err(ExecuteError::Domain(e)),
        };
        // Catch up, and apply the command to that state.
        reload(store, st).map_err(ExecuteError::Store)?;
        *reloaded = true;
    };
    let evidently = applied
        .changes
        .iter()
        .any(|c| matches!(c, command::Change::PutResource(_) | command::Change::DeleteResource(_)));
    for change in applied.changes {
        st.commit(change);
    }
    Ok((applied.outcome, evidently))
}

/// The stored record of a file-written policy's session generation.
#[derive(PartialEq, serde::Serialize, serde::Deserialize)]
struct InlineEpoch {
    enabled: bool,
    sticky: bool,
    epoch: u64,
}

impl Plane {
    /// Opens the store, loads the policies, compiles and publishes the first state.
    pub fn new(config: Config) -> Result<Plane, String> {
        // Keys and ids come from the OS generator: without it, edgesplit does not start.
        crate::random::check().map_err(|e| format!("the OS random generator failed: {e}"))?;
        let max_exposures = config.quotas.exposures;
        let store = Store::of(&config).map_err(|e| e.to_string())?;
        let Stored { policies, evidently, rollouts } = stored_state(&store).map_err(|e| e.to_string())?;
        let cookie_key = cookie_key(&config, &store).map_err(|e| e.to_string())?;
        let metrics = Arc::new(Metrics::default());
        let health = HealthRegistry::default();
        let declared = config.declared.clone();
        let mut st = ControlState {
            config,
            policies,
            evidently,
            rollouts,
            rollouts_pending: false,
            inline_epochs: HashMap::new(),
            cookie_key,
        };
        update_inline_epochs(&store, &mut st).map_err(|e| e.to_string())?;
        let published = ArcSwap::from_pointee(compile(&st, &metrics, &health, None));
        let plane = Plane {
            metrics,
            store,
            // An hour (spec 5.1), and a bounded number of assignments.
            exposures: Arc::new(ExposureLog::new(events::EXPOSURE_WINDOW_MS, max_exposures)),
            clock: Arc::default(),
            health,
            state: Mutex::new(st),
            published,
            subscribers: Mutex::default(),
        };
        {
            let mut st = plane.lock();
            // Rehearsed on a copy first, as a reload does: a file whose declarations fail against what the
            // store holds is refused before any of them is written.
            let mut rehearsal = st.clone();
            declare::apply(None, &mut rehearsal, &declared).map_err(join)?;
            rollouts::declare(&plane.store, false, &mut rehearsal).map_err(join)?;
            declare::apply(Some(&plane.store), &mut st, &declared).map_err(join)?;
            rollouts::declare(&plane.store, true, &mut st).map_err(join)?;
            plane.publish(&st);
        }
        Ok(plane)
    }

    /// The one writer for typed commands: locks, applies the command to the state (a pure function),
    /// commits its changes to the store, applies them to the state, publishes. Nothing changes if the
    /// store refuses the write.
    pub fn execute(&self, cmd: command::Command) -> Result<command::Outcome, ExecuteError> {
        self.execute_then(cmd, |_, outcome| outcome)
    }

    /// [`Plane::execute`], then `answer` reads the outcome with the state the command left, under the
    /// same lock (an API's answer counts what the write made, and nothing written after it).
    pub(crate) fn execute_then<T>(
        &self,
        cmd: command::Command,
        answer: impl FnOnce(&ControlState, command::Outcome) -> T,
    ) -> Result<T, ExecuteError> {
        let mut st = self.lock();
        let mut reloaded = false;
        let (outcome, evidently_changed) = match run_touching(Some(&self.store), &mut st, cmd, &mut reloaded) {
            Ok(done) => done,
            Err(e) => {
                // Refused after catching up with another instance's writes: those are published now.
                if reloaded {
                    self.publish(&st);
                }
                return Err(e);
            }
        };
        // A policy write keeps the compiled Evidently features (unless the state was reloaded from the
        // store meanwhile): only the routes are compiled again.
        let keep = (!evidently_changed && !reloaded).then(|| self.published.load().evidently.clone());
        self.publish_keeping(&st, keep);
        Ok(answer(&st, outcome))
    }

    /// Catches up with writes other instances made (a fleet store): reloads and publishes if the store
    /// moved past the state this instance holds. Returns whether it did.
    pub fn catch_up(&self) -> Result<bool, StoreError> {
        // The revision is read before the lock is taken: a slow database holds up this call, not the
        // writers and readers of the state.
        if !self.store.behind()? {
            return Ok(false);
        }
        let mut st = self.lock();
        reload(&self.store, &mut st)?;
        self.publish(&st);
        Ok(true)
    }

    /// Follows the other instances' writes (a fleet store; nothing for redb): each change they commit
    /// is caught up with and published, within a notification's round trip or the store's poll.
    pub fn follow(self: &Arc<Self>) {
        let plane = Arc::downgrade(self);
        self.store.follow(Box::new(move || {
            if let Some(plane) = plane.upgrade()
                && let Err(e) = plane.catch_up()
            {
                tracing::warn!(error = %e, "Cannot catch up with the store");
            }
        }));
    }

    /// The control state, locked. Never hold it across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compiles the state and makes it the one the next request and the next API evaluation see.
    pub fn publish(&self, st: &ControlState) {
        self.publish_keeping(st, None);
    }

    /// [`Plane::publish`], with the compiled Evidently features taken from `evidently` when given
    /// (the state's Evidently resources did not change since they were compiled).
    fn publish_keeping(&self, st: &ControlState, evidently: Option<Arc<EvSnapshot>>) {
        let snapshot = Arc::new(compile(st, &self.metrics, &self.health, evidently));
        self.published.store(snapshot.clone());
        for s in self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            s.publish(&snapshot);
        }
    }

    /// The snapshot published last.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.load_full()
    }

    /// Adds a follower of the published snapshots; it gets the current one at once.
    pub(crate) fn subscribe(&self, s: Arc<dyn Subscriber>) {
        let _st = self.lock();
        s.publish(&self.published.load_full());
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    /// Moves the evaluation clock forward (tests of scheduled launch steps; the API and the edge both
    /// follow it).
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.clock.advance(by);
    }

    /// Adopts a new config file (already validated): new upstream clients only if their settings
    /// changed, so warm connection pools survive; then publishes.
    pub fn apply_config(&self, new: Config) -> Result<(), String> {
        let mut st = self.lock();
        let declared = new.declared.clone();
        // Rehearse the declared Evidently resources on a copy first: a file whose declarations fail is
        // rejected whole, with positions, before anything changes.
        let mut rehearsal = st.clone();
        rehearsal.config = new.clone();
        declare::apply(None, &mut rehearsal, &declared).map_err(join)?;
        rollouts::declare(&self.store, false, &mut rehearsal).map_err(join)?;
        if new.cd.cookie_key != st.config.cd.cookie_key {
            st.cookie_key = cookie_key(&new, &self.store).map_err(|e| e.to_string())?;
        }
        st.config = new;
        update_inline_epochs(&self.store, &mut st).map_err(|e| e.to_string())?;
        declare::apply(Some(&self.store), &mut st, &declared).map_err(join)?;
        rollouts::declare(&self.store, true, &mut st).map_err(join)?;
        self.publish(&st);
        Ok(())
    }
}

fn join(errors: Vec<crate::config::ConfigError>) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

fn cookie_key(config: &Config, store: &Store) -> Result<CookieKey, StoreError> {
    match &config.cd.cookie_key {
        Some(k) => Ok(CookieKey::new(k)),
        None => Ok(CookieKey::new(&store.cookie_key()?)),
    }
}

/// A file-written policy that was enabled or disabled, or had stickiness switched, since last seen gets
/// a new session epoch, kept in the store so a restart does not revive old sessions.
fn update_inline_epochs(store: &Store, st: &mut ControlState) -> Result<(), StoreError> {
    let mut epochs = HashMap::new();
    for d in &st.config.distributions {
        let Some(p) = &d.inline_policy else { continue };
        let key = format!("inline_epoch:{}", d.id);
        let seen: Option<InlineEpoch> = store.meta(&key)?.and_then(|b| serde_json::from_slice(&b).ok());
        let (enabled, sticky) = (p.enabled, p.sticky());
        let epoch = match &seen {
            Some(s) if s.enabled == enabled && s.sticky == sticky => s.epoch,
            Some(s) => s.epoch + 1,
            None => 0,
        };
        let record = InlineEpoch { enabled, sticky, epoch };
        if seen.as_ref() != Some(&record) {
            store.set_meta(&key, &serde_json::to_vec(&record).unwrap_or_default())?;
        }
        epochs.insert(d.id.clone(), epoch);
    }
    st.inline_epochs = epochs;
    Ok(())
}

fn compile(
    st: &ControlState,
    metrics: &Metrics,
    health: &HealthRegistry,
    evidently: Option<Arc<EvSnapshot>>,
) -> Snapshot {
    let cd = CdSettings {
        key: st.cookie_key.clone(),
        cookie_name: st.config.cd.cookie_name.as_str().into(),
        cache_control_private: st.config.cd.cache_control_private,
        refresh: st.config.cd.cookie_refresh.as_secs(),
    };
    let evidently = evidently.unwrap_or_else(|| {
        let arns = crate::evidently::arn::Arns::new(&st.config.region, &st.config.account_id);
        Arc::new(crate::evidently::compile::compile(&st.evidently, &arns))
    });
    let input = CompileInput {
        metrics,
        health,
        policies: &st.policies,
        inline_epochs: &st.inline_epochs,
        cd,
        evidently: &evidently,
    };
    Snapshot {
        routes: Routes::compile(&st.config, input),
        evidently,
        upstream: st.config.upstream.clone(),
        timeouts: st.config.timeouts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cd::model::{PolicyConfig, SingleWeight, TrafficConfig, TrafficType};
    use crate::evidently::input::NewProject;

    #[test]
    fn a_policy_write_keeps_the_compiled_evidently_features_and_an_evidently_write_compiles_them() {
        let text = "[[listener]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n[admin]\nauth = \"none\"\n\
                    [[distribution]]\nid = \"one\"\ndomains = [\"one.test\"]\nstaging_dns_name = \"s1.test\"\n\
                    [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n\
                    [distribution.staging]\norigins = [\"http://127.0.0.1:2\"]\n";
        let plane = Plane::new(crate::config::parse(text, "t.toml", std::path::Path::new(".")).unwrap()).unwrap();
        let before = plane.snapshot();
        let traffic = TrafficConfig {
            kind: TrafficType::SingleWeight,
            single_weight: Some(SingleWeight { weight: 0.1, stickiness: None }),
            single_header: None,
        };
        let config = PolicyConfig { staging_dns_names: vec!["s1.test".into()], enabled: true, traffic: Some(traffic) };
        plane.execute(command::Command::CreatePolicy { config }).unwrap();
        let after_policy = plane.snapshot();
        assert!(!Arc::ptr_eq(&before, &after_policy), "a new snapshot is published");
        assert!(Arc::ptr_eq(&before.evidently, &after_policy.evidently), "Evidently was compiled again");
        let project = NewProject {
            name: "p".into(),
            description: None,
            app_config_resource: None,
            data_delivery: None,
            tags: Default::default(),
        };
        plane.execute(command::Command::CreateProject(project)).unwrap();
        let after_project = plane.snapshot();
        assert!(!Arc::ptr_eq(&after_policy.evidently, &after_project.evidently));
        assert!(after_project.evidently.projects.contains_key("p"));
    }
}
