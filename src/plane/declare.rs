//! Evidently resources declared in the config file (GitOps). Each `[[evidently.*]]` entry is the API's
//! create request in TOML: it is decoded by the API's own decoders (`evidently::input`) into the same
//! typed [`Command`]s the API runs, with no HTTP in between, so the rules and errors are the same.
//! Missing resources are created, changed declarations update them (replacing what the file owns), and
//! `status = "RUNNING"` starts a launch or experiment that is still CREATED. A declaration that did not
//! change since it was last applied is left alone, so API changes to it stand until the file changes;
//! a resource deleted through the API comes back at the next reload. Removing a declaration does not
//! delete the resource.

use serde::de::DeserializeOwned;
use serde_json::json;

use super::command::{Command, DomainError};
use super::{ControlState, ExecuteError, run};
use crate::config::{ConfigError, Declared, DeclaredKind};
use crate::evidently::arn::Arns;
use crate::evidently::errors::EvCode;
use crate::evidently::input::{
    DataDeliveryBody, ExperimentBody, ExperimentPatch, FeatureBody, FeaturePatch, LaunchBody, ProjectBody,
    ProjectPatch, SegmentBody, StartBody,
};
use crate::evidently::model::RunStatus;
use crate::store::Store;

/// The fingerprint of a declaration, kept in the store to tell a changed declaration from an old one.
fn fingerprint(d: &Declared) -> Vec<u8> {
    serde_json::to_vec(&json!([d.body, d.running])).unwrap_or_default()
}

fn key(d: &Declared) -> String {
    format!("declared:{}/{}/{}", d.kind.table(), d.project.as_deref().unwrap_or(""), d.name)
}

/// Applies every declaration to `st`; errors come back positioned at the declaration that failed.
/// Without a store, a rehearsal: `st` (a copy) changes and nothing is written (for `edgesplit check`
/// and to vet a file before it is adopted).
pub(super) fn apply(
    store: Option<&Store>,
    st: &mut ControlState,
    declared: &[Declared],
) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for d in declared {
        let at = |message: String| ConfigError { message, ..d.at.clone() };
        let k = key(d);
        let print = fingerprint(d);
        let unchanged = store.is_some_and(|s| s.meta(&k).ok().flatten().as_deref() == Some(print.as_slice()));
        let mut applied = apply_one(store, st, d, unchanged);
        // In a fleet, instances starting together apply the same file: one's create can be applied again
        // to a state where another's already made the resource (refused as taken, or a start as not
        // CREATED). Once more, from the state as it is now: a declaration that is wrong fails again.
        if store.is_some_and(Store::shared) && matches!(applied, Err(ExecuteError::Domain(_))) {
            applied = apply_one(store, st, d, unchanged);
        }
        match applied {
            // Named as the API would have answered the same request.
            Err(ExecuteError::Domain(e)) => {
                let code = EvCode::of(&e).name();
                errors.push(at(format!("[[{}]] `{}`: {code}: {e}", d.kind.table(), d.name)));
            }
            Err(ExecuteError::Store(e)) => errors.push(at(format!("[[{}]] `{}`: {e}", d.kind.table(), d.name))),
            Ok(()) => {
                if let Some(store) = store.filter(|_| !unchanged)
                    && let Err(e) = store.set_meta(&k, &print)
                {
                    errors.push(at(format!("cannot record the declaration in the store: {e}")));
                }
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn body<T: DeserializeOwned>(d: &Declared) -> Result<T, DomainError> {
    serde_json::from_value(d.body.clone()).map_err(|e| DomainError::invalid(d.kind.table(), e.to_string()))
}

fn apply_one(store: Option<&Store>, st: &mut ControlState, d: &Declared, unchanged: bool) -> Result<(), ExecuteError> {
    let p = d.project.clone().unwrap_or_default();
    let pair = (p.clone(), d.name.clone());
    let e = &st.evidently;
    let exists = match d.kind {
        DeclaredKind::Project => e.projects.contains_key(&d.name),
        DeclaredKind::Segment => e.segments.contains_key(&d.name),
        DeclaredKind::Feature => e.features.contains_key(&pair),
        DeclaredKind::Launch => e.launches.contains_key(&pair),
        DeclaredKind::Experiment => e.experiments.contains_key(&pair),
    };
    if exists && unchanged {
        return Ok(());
    }
    let arns = Arns::new(&st.config.region, &st.config.account_id);
    let exec = |st: &mut ControlState, cmd: Command| run(store, st, cmd).map(drop);
    let domain = ExecuteError::Domain;
    match (d.kind, exists) {
        (DeclaredKind::Project, false) => {
            exec(st, Command::CreateProject(body::<ProjectBody>(d).and_then(ProjectBody::decode).map_err(domain)?))
        }
        (DeclaredKind::Project, true) => {
            let n = body::<ProjectBody>(d).and_then(ProjectBody::decode).map_err(domain)?;
            let patch = ProjectPatch { description: n.description, app_config_resource: n.app_config_resource };
            exec(st, Command::UpdateProject { project: d.name.clone(), patch })?;
            match d.body.get("dataDelivery") {
                Some(dd) => {
                    let dd: DataDeliveryBody = serde_json::from_value(dd.clone())
                        .map_err(|e| domain(DomainError::invalid("dataDelivery", e.to_string())))?;
                    let data_delivery = dd.decode().map_err(domain)?;
                    exec(st, Command::SetDataDelivery { project: d.name.clone(), data_delivery })
                }
                None => Ok(()),
            }
        }
        (DeclaredKind::Segment, exists) => {
            let s = body::<SegmentBody>(d).and_then(SegmentBody::decode).map_err(domain)?;
            if exists {
                // Segments are immutable: a changed one is made again, which only works while unused.
                let same = st
                    .evidently
                    .segments
                    .get(&d.name)
                    .is_some_and(|old| old.pattern() == s.pattern() && old.description == s.description);
                if same {
                    return Ok(());
                }
                exec(st, Command::DeleteSegment { segment: d.name.clone() })?;
            }
            exec(st, Command::CreateSegment(s))
        }
        (DeclaredKind::Feature, false) => {
            let feature = body::<FeatureBody>(d).and_then(FeatureBody::decode).map_err(domain)?;
            exec(st, Command::CreateFeature { project: p, feature })
        }
        (DeclaredKind::Feature, true) => {
            let n = body::<FeatureBody>(d).and_then(FeatureBody::decode).map_err(domain)?;
            let existing = st.evidently.features.get(&pair).map(|f| f.variations.clone()).unwrap_or_default();
            let remove_variations = existing
                .iter()
                .map(|v| v.name.clone())
                .filter(|name| !n.variations.iter().any(|v| &v.name == name))
                .collect();
            let patch = FeaturePatch {
                description: n.description,
                add_or_update_variations: n.variations,
                remove_variations,
                default_variation: Some(n.default_variation),
                evaluation_strategy: Some(n.evaluation_strategy),
                entity_overrides: Some(n.entity_overrides),
            };
            exec(st, Command::UpdateFeature { project: p, feature: d.name.clone(), patch })
        }
        (DeclaredKind::Launch, exists) => {
            let n = body::<LaunchBody>(d).and_then(|b| b.decode(&arns)).map_err(domain)?;
            let launch = d.name.clone();
            if exists {
                exec(st, Command::UpdateLaunch { project: p.clone(), launch: launch.clone(), patch: n.spec })?;
            } else {
                exec(st, Command::CreateLaunch { project: p.clone(), launch: n })?;
            }
            let created = st.evidently.launches.get(&pair).is_some_and(|l| l.status == RunStatus::Created);
            if d.running && created {
                exec(st, Command::StartLaunch { project: p, launch })?;
            }
            Ok(())
        }
        (DeclaredKind::Experiment, _) => {
            let n = body::<ExperimentBody>(d).and_then(|b| b.decode(&arns)).map_err(domain)?;
            let experiment = d.name.clone();
            match st.evidently.experiments.get(&pair).map(|x| x.status) {
                None => exec(st, Command::CreateExperiment { project: p.clone(), experiment: n })?,
                Some(status) => {
                    // Once started, only the description and the sampling rate may change.
                    let patch = match status {
                        RunStatus::Created => n.spec,
                        _ => ExperimentPatch {
                            description: n.spec.description,
                            sampling_rate: n.spec.sampling_rate,
                            ..ExperimentPatch::default()
                        },
                    };
                    exec(st, Command::UpdateExperiment { project: p.clone(), experiment: experiment.clone(), patch })?
                }
            }
            let created = st.evidently.experiments.get(&pair).is_some_and(|x| x.status == RunStatus::Created);
            if d.running && created {
                let start: StartBody = serde_json::from_value(json!({
                    "analysisCompleteTime": d.body.get("analysisCompleteTime")
                }))
                .map_err(|e| domain(DomainError::invalid("analysisCompleteTime", e.to_string())))?;
                let analysis_complete_time = start.decode().map_err(domain)?;
                exec(st, Command::StartExperiment { project: p, experiment, analysis_complete_time })?;
            }
            Ok(())
        }
    }
}
