//! Typed commands and the pure state machine that applies them (issue 15): `apply` is a function of the
//! state, the command and [`Fresh`] (the clock and the new ids), with no I/O. It returns the [`Change`]s
//! to commit and what to answer, or a typed [`DomainError`]; [`super::Plane::execute`] is the one writer
//! that locks, applies, commits the changes to the store in one transaction, then publishes. Each wire
//! protocol maps `DomainError` to its own codes, exhaustively.
//!
//! CloudFront's continuous deployment policies are ruled here; Evidently's resources in
//! [`super::evidently`], whose inputs arrive decoded and checked against the service model
//! (`evidently::input`).

use crate::cd::model::{PolicyConfig, StoredPolicy};
pub use crate::domain::error::{DomainError, QuotaScope, ResourceId, ResourceKind};
use crate::evidently::input::{
    ExperimentPatch, FeaturePatch, LaunchPatch, NewExperiment, NewFeature, NewLaunch, NewProject, ProjectPatch, Stop,
};
use crate::evidently::model::{Experiment, Launch, Resource, Segment, Tags};

use super::ControlState;
use super::evidently as ev;

/// A change to the control state. Names arrive resolved (a project ARN already read as its name).
#[derive(Debug, Clone)]
pub enum Command {
    CreatePolicy {
        config: PolicyConfig,
    },
    /// `if_match` is the ETag the caller read; a write without one is refused.
    UpdatePolicy {
        id: String,
        if_match: Option<String>,
        config: PolicyConfig,
    },
    DeletePolicy {
        id: String,
        if_match: Option<String>,
    },
    CreateProject(NewProject),
    UpdateProject {
        project: String,
        patch: ProjectPatch,
    },
    /// UpdateProjectDataDelivery: `None` delivers nowhere.
    SetDataDelivery {
        project: String,
        data_delivery: Option<serde_json::Value>,
    },
    DeleteProject {
        project: String,
    },
    CreateFeature {
        project: String,
        feature: NewFeature,
    },
    UpdateFeature {
        project: String,
        feature: String,
        patch: FeaturePatch,
    },
    DeleteFeature {
        project: String,
        feature: String,
    },
    /// A segment decoded with its pattern compiled; its times are the command's.
    CreateSegment(Segment),
    DeleteSegment {
        segment: String,
    },
    CreateLaunch {
        project: String,
        launch: NewLaunch,
    },
    UpdateLaunch {
        project: String,
        launch: String,
        patch: LaunchPatch,
    },
    DeleteLaunch {
        project: String,
        launch: String,
    },
    StartLaunch {
        project: String,
        launch: String,
    },
    StopLaunch {
        project: String,
        launch: String,
        stop: Stop,
    },
    CreateExperiment {
        project: String,
        experiment: NewExperiment,
    },
    UpdateExperiment {
        project: String,
        experiment: String,
        patch: ExperimentPatch,
    },
    DeleteExperiment {
        project: String,
        experiment: String,
    },
    StartExperiment {
        project: String,
        experiment: String,
        /// Epoch seconds.
        analysis_complete_time: f64,
    },
    StopExperiment {
        project: String,
        experiment: String,
        stop: Stop,
    },
    /// TagResource (`add`) and UntagResource (`remove`).
    Retag {
        resource: ResourceId,
        add: Tags,
        remove: Vec<String>,
    },
    /// Starts a guarded rollout of the distribution's policy (replacing an ended one).
    StartRollout {
        distribution: String,
        spec: crate::rollout::Spec,
        /// The fingerprint of the config file's declaration it comes from, if it does.
        declared: Option<String>,
    },
    /// Moves a distribution's rollout: the operator's pause, resume and abort, the driver's advance,
    /// finish and rollback.
    MoveRollout {
        distribution: String,
        action: crate::rollout::Action,
    },
}

/// What the world gives a command: the time, and ids and versions no one can guess (drawn by the
/// caller, so that `apply` stays pure and its tests can fix them).
#[derive(Debug, Clone)]
pub struct Fresh {
    pub now_ms: u64,
    pub id: String,
    pub etag: String,
}

impl Fresh {
    /// The wall clock and new ids from the OS generator.
    pub fn now() -> Fresh {
        Fresh { now_ms: crate::domain::clock::now_ms(), id: crate::random::uuid(), etag: crate::random::etag() }
    }

    /// The time in epoch seconds, as Evidently's timestamps are.
    pub fn seconds(&self) -> f64 {
        self.now_ms as f64 / 1000.0
    }
}

/// What a command changes; all of one command's changes commit in one store transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutPolicy(StoredPolicy),
    DeletePolicy(String),
    /// An Evidently resource, written whole.
    PutResource(Resource),
    /// An Evidently resource, by its store key (`Resource::key`).
    DeleteResource(String),
    /// A distribution's rollout, written whole.
    PutRollout(crate::rollout::Rollout),
}

/// What a command answers with, once committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Policy(StoredPolicy),
    /// The Evidently resource as written.
    Resource(Resource),
    /// The rollout as written.
    Rollout(crate::rollout::Rollout),
    Deleted,
}

/// The changes and the answer of one applied command.
#[derive(Debug)]
pub struct Applied {
    pub(super) changes: Vec<Change>,
    pub(super) outcome: Outcome,
}

impl Applied {
    fn put(r: Resource) -> Applied {
        Applied { changes: vec![Change::PutResource(r.clone())], outcome: Outcome::Resource(r) }
    }

    fn delete(key: String) -> Applied {
        Applied { changes: vec![Change::DeleteResource(key)], outcome: Outcome::Deleted }
    }
}

/// Applies `cmd` to `st`: the changes to commit, or why not. Pure.
pub fn apply(st: &ControlState, cmd: Command, fresh: Fresh) -> Result<Applied, DomainError> {
    let (e, q, t) = (&st.evidently, &st.config.quotas, fresh.seconds());
    Ok(match cmd {
        Command::CreatePolicy { config } => {
            let limit = st.config.cd.max_policies;
            if st.policies.len() >= limit {
                return Err(DomainError::Quota { kind: ResourceKind::Policy, scope: QuotaScope::Account, limit });
            }
            check_names(st, &config, None)?;
            let p = StoredPolicy { id: fresh.id, etag: fresh.etag, last_modified_ms: fresh.now_ms, config, epoch: 0 };
            Applied { changes: vec![Change::PutPolicy(p.clone())], outcome: Outcome::Policy(p) }
        }
        Command::UpdatePolicy { id, if_match, config } => {
            let old = current_policy(st, &id, if_match.as_deref())?;
            check_names(st, &config, Some(&id))?;
            let p = StoredPolicy {
                epoch: old.next_epoch(&config),
                id,
                etag: fresh.etag,
                last_modified_ms: fresh.now_ms,
                config,
            };
            Applied { changes: vec![Change::PutPolicy(p.clone())], outcome: Outcome::Policy(p) }
        }
        Command::DeletePolicy { id, if_match } => {
            current_policy(st, &id, if_match.as_deref())?;
            if let Some(d) = st.config.distributions.iter().find(|d| d.policy_id.as_deref() == Some(id.as_str())) {
                return Err(DomainError::PolicyInUse { id, distribution: d.id.clone() });
            }
            super::rollouts::check_not_driven(st, &id)?;
            Applied { changes: vec![Change::DeletePolicy(id)], outcome: Outcome::Deleted }
        }
        Command::CreateProject(p) => Applied::put(Resource::Project(ev::create_project(e, q, p, t)?)),
        Command::UpdateProject { project, patch } => {
            Applied::put(Resource::Project(ev::update_project(e, &project, patch, t)?))
        }
        Command::SetDataDelivery { project, data_delivery } => {
            Applied::put(Resource::Project(ev::set_data_delivery(e, &project, data_delivery, t)?))
        }
        Command::DeleteProject { project } => Applied::delete(ev::delete_project(e, &project)?),
        Command::CreateFeature { project, feature } => {
            Applied::put(Resource::Feature(ev::create_feature(e, q, &project, feature, t)?))
        }
        Command::UpdateFeature { project, feature, patch } => {
            Applied::put(Resource::Feature(ev::update_feature(e, &project, &feature, patch, t)?))
        }
        Command::DeleteFeature { project, feature } => Applied::delete(ev::delete_feature(e, &project, &feature)?),
        Command::CreateSegment(s) => Applied::put(Resource::Segment(ev::create_segment(e, q, s, t)?)),
        Command::DeleteSegment { segment } => Applied::delete(ev::delete_segment(e, &segment)?),
        Command::CreateLaunch { project, launch } => {
            Applied::put(Resource::Launch(ev::create_launch(e, q, &project, launch, t)?))
        }
        Command::UpdateLaunch { project, launch, patch } => {
            Applied::put(Resource::Launch(ev::update_launch(e, &project, &launch, patch, t)?))
        }
        Command::DeleteLaunch { project, launch } => Applied::delete(ev::delete::<Launch>(e, &project, &launch)?),
        Command::StartLaunch { project, launch } => {
            let l = ev::find::<Launch>(e, &project, &launch)?.clone();
            Applied::put(Resource::Launch(ev::start(e, q, l, t)?))
        }
        Command::StopLaunch { project, launch, stop } => {
            let l = ev::find::<Launch>(e, &project, &launch)?.clone();
            Applied::put(Resource::Launch(ev::stop(l, stop, t)?))
        }
        Command::CreateExperiment { project, experiment } => {
            Applied::put(Resource::Experiment(ev::create_experiment(e, q, &project, experiment, t)?))
        }
        Command::UpdateExperiment { project, experiment, patch } => {
            Applied::put(Resource::Experiment(ev::update_experiment(e, &project, &experiment, patch, t)?))
        }
        Command::DeleteExperiment { project, experiment } => {
            Applied::delete(ev::delete::<Experiment>(e, &project, &experiment)?)
        }
        Command::StartExperiment { project, experiment, analysis_complete_time } => Applied::put(Resource::Experiment(
            ev::start_experiment(e, q, &project, &experiment, analysis_complete_time, t)?,
        )),
        Command::StopExperiment { project, experiment, stop } => {
            let x = ev::find::<Experiment>(e, &project, &experiment)?.clone();
            Applied::put(Resource::Experiment(ev::stop(x, stop, t)?))
        }
        Command::Retag { resource, add, remove } => Applied::put(ev::retag(e, &resource, add, &remove)?),
        Command::StartRollout { distribution, spec, declared } => {
            super::rollouts::start(st, distribution, spec, declared, fresh)?
        }
        Command::MoveRollout { distribution, action } => super::rollouts::apply(st, &distribution, action, fresh)?,
    })
}

/// The policy `id`, if the caller named its current version.
pub(crate) fn current_policy<'a>(
    st: &'a ControlState,
    id: &str,
    if_match: Option<&str>,
) -> Result<&'a StoredPolicy, DomainError> {
    let p = st.policies.get(id).ok_or_else(|| DomainError::NotFound(ResourceId::Policy(id.into())))?;
    match if_match.map(str::trim).filter(|t| !t.is_empty()) {
        None => Err(DomainError::VersionMissing),
        Some(tag) if tag != p.etag => Err(DomainError::VersionMismatch),
        Some(_) => Ok(p),
    }
}

/// The staging names against the distributions and the other policies.
fn check_names(st: &ControlState, config: &PolicyConfig, own_id: Option<&str>) -> Result<(), DomainError> {
    let invalid = |message: String| DomainError::invalid("StagingDistributionDnsNames", message);
    if config.staging_dns_names.is_empty() {
        return Err(invalid("StagingDistributionDnsNames must name one staging distribution.".into()));
    }
    for (i, name) in config.staging_dns_names.iter().enumerate() {
        if config.staging_dns_names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(invalid(format!("The staging distribution DNS name {name} is listed twice.")));
        }
        let Some(dist) = st
            .config
            .distributions
            .iter()
            .find(|d| d.staging_dns_name.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(name)))
        else {
            return Err(invalid(format!("No staging distribution has the DNS name {name}.")));
        };
        if let Some(route) = dist.edge.as_ref().and_then(|e| e.route.as_ref()) {
            return Err(invalid(format!(
                "Distribution {} routes by the Evidently feature {}; a policy would have no effect there.",
                dist.id, route.feature
            )));
        }
        let taken_by_policy = st.policies.values().any(|p| {
            Some(p.id.as_str()) != own_id && p.config.staging_dns_names.iter().any(|n| n.eq_ignore_ascii_case(name))
        });
        if taken_by_policy || dist.inline_policy.is_some() {
            return Err(DomainError::StagingInUse { name: name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cd::model::{SingleWeight, TrafficConfig, TrafficType};

    /// A state from a config file with two distributions whose staging DNS names are `s1.test` and
    /// `s2.test`.
    fn state(max_policies: usize) -> ControlState {
        let mut text = format!(
            "[[listener]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n[admin]\nauth = \"none\"\n\
             [continuous_deployment]\nmax_policies = {max_policies}\n"
        );
        for (id, staging) in [("one", "s1.test"), ("two", "s2.test")] {
            text.push_str(&format!(
                "[[distribution]]\nid = \"{id}\"\ndomains = [\"{id}.test\"]\nstaging_dns_name = \"{staging}\"\n\
                 [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n\
                 [distribution.staging]\norigins = [\"http://127.0.0.1:2\"]\n"
            ));
        }
        let config = crate::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap();
        ControlState::of(config)
    }

    fn config(names: &[&str], weight: f64, enabled: bool) -> PolicyConfig {
        PolicyConfig {
            staging_dns_names: names.iter().map(|n| n.to_string()).collect(),
            enabled,
            traffic: Some(TrafficConfig {
                kind: TrafficType::SingleWeight,
                single_weight: Some(SingleWeight { weight, stickiness: None }),
                single_header: None,
            }),
        }
    }

    fn fresh(n: u64) -> Fresh {
        Fresh { now_ms: 1_000 * n, id: format!("id{n}"), etag: format!("E{n}") }
    }

    /// Applies and commits `cmd` the way `Plane::execute` does, minus the store.
    fn run(st: &mut ControlState, cmd: Command, n: u64) -> Result<Outcome, DomainError> {
        let applied = apply(st, cmd, fresh(n))?;
        for c in applied.changes {
            st.commit(c);
        }
        Ok(applied.outcome)
    }

    #[test]
    fn create_takes_the_fresh_id_and_version_and_checks_names_and_quota() {
        let mut st = state(2);
        let out = run(&mut st, Command::CreatePolicy { config: config(&["s1.test"], 0.1, true) }, 1).unwrap();
        let Outcome::Policy(p) = out else { panic!("{out:?}") };
        assert_eq!((p.id.as_str(), p.etag.as_str(), p.last_modified_ms, p.epoch), ("id1", "E1", 1000, 0));
        // The same staging distribution again, in any case: in use.
        let again = run(&mut st, Command::CreatePolicy { config: config(&["S1.TEST"], 0.1, true) }, 2);
        assert_eq!(again, Err(DomainError::StagingInUse { name: "S1.TEST".into() }));
        for (names, why) in
            [(&[][..], "one"), (&["nope.test"][..], "No staging"), (&["s2.test", "S2.test"][..], "twice")]
        {
            let e = run(&mut st, Command::CreatePolicy { config: config(names, 0.1, true) }, 3).unwrap_err();
            assert!(matches!(&e, DomainError::Invalid { message, .. } if message.contains(why)), "{e:?}");
        }
        run(&mut st, Command::CreatePolicy { config: config(&["s2.test"], 0.1, true) }, 4).unwrap();
        let full = run(&mut st, Command::CreatePolicy { config: config(&["s2.test"], 0.1, true) }, 5);
        assert_eq!(full, Err(DomainError::Quota { kind: ResourceKind::Policy, scope: QuotaScope::Account, limit: 2 }));
    }

    #[test]
    fn update_and_delete_need_the_current_version() {
        let mut st = state(10);
        run(&mut st, Command::CreatePolicy { config: config(&["s1.test"], 0.1, true) }, 1).unwrap();
        let update = |if_match: Option<&str>, enabled| Command::UpdatePolicy {
            id: "id1".into(),
            if_match: if_match.map(str::to_string),
            config: config(&["s1.test"], 0.15, enabled),
        };
        assert_eq!(run(&mut st, update(None, true), 2), Err(DomainError::VersionMissing));
        assert_eq!(run(&mut st, update(Some("  "), true), 2), Err(DomainError::VersionMissing));
        assert_eq!(run(&mut st, update(Some("E9"), true), 2), Err(DomainError::VersionMismatch));
        // Its own staging name is not "in use"; a new version each time; disabling starts a new epoch.
        let Ok(Outcome::Policy(p)) = run(&mut st, update(Some("E1"), true), 2) else { panic!() };
        assert_eq!((p.id.as_str(), p.etag.as_str(), p.epoch), ("id1", "E2", 0));
        let Ok(Outcome::Policy(p)) = run(&mut st, update(Some("E2"), false), 3) else { panic!() };
        assert_eq!((p.etag.as_str(), p.epoch), ("E3", 1));
        let missing = Command::DeletePolicy { id: "nope".into(), if_match: Some("E3".into()) };
        assert_eq!(run(&mut st, missing, 4), Err(DomainError::NotFound(ResourceId::Policy("nope".into()))));
        let stale = Command::DeletePolicy { id: "id1".into(), if_match: Some("E2".into()) };
        assert_eq!(run(&mut st, stale, 4), Err(DomainError::VersionMismatch));
        let delete = Command::DeletePolicy { id: "id1".into(), if_match: Some("E3".into()) };
        assert_eq!(run(&mut st, delete, 4), Ok(Outcome::Deleted));
        assert!(st.policies.is_empty());
    }

    #[test]
    fn a_policy_a_distribution_names_cannot_be_deleted() {
        let mut st = state(10);
        run(&mut st, Command::CreatePolicy { config: config(&["s1.test"], 0.1, true) }, 1).unwrap();
        st.config.distributions[1].policy_id = Some("id1".into());
        let delete = Command::DeletePolicy { id: "id1".into(), if_match: Some("E1".into()) };
        assert_eq!(
            run(&mut st, delete, 2),
            Err(DomainError::PolicyInUse { id: "id1".into(), distribution: "two".into() })
        );
    }
}
