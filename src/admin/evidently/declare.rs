//! Evidently resources declared in the config file (GitOps). Each `[[evidently.*]]` entry is the API's
//! create request in TOML, applied by the very code that serves the API, so the rules and errors are the
//! same: missing resources are created, changed declarations update them (replacing what the file owns),
//! and `status = "RUNNING"` starts a launch or experiment that is still CREATED. A declaration that did
//! not change since it was last applied is left alone, so API changes to it stand until the file
//! changes; a resource deleted through the API comes back at the next reload. Removing a declaration
//! does not delete the resource.

use serde_json::{Map, Value, json};

use super::*;
use crate::config::{ConfigError, Declared, DeclaredKind};
use crate::evidently::model::RunStatus;

fn call(method: Method, body: Value) -> EvCall {
    EvCall {
        method,
        segments: Vec::new(),
        query: Vec::new(),
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    }
}

/// The fingerprint of a declaration, kept in the store to tell a changed declaration from an old one.
fn fingerprint(d: &Declared) -> Vec<u8> {
    serde_json::to_vec(&json!([d.body, d.running])).unwrap_or_default()
}

fn key(d: &Declared) -> String {
    format!("declared:{}/{}/{}", d.kind.table(), d.project.as_deref().unwrap_or(""), d.name)
}

fn pick(body: &Value, keys: &[&str]) -> Value {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = body.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// Applies every declaration; errors come back positioned at the declaration that failed. With
/// `st.dry_run`, nothing is written (for `edgesplit check` and to vet a reload before it happens).
pub fn apply(plane: &Plane, st: &mut ControlState, declared: &[Declared]) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for d in declared {
        let k = key(d);
        let print = fingerprint(d);
        let unchanged = !st.dry_run && plane.store.meta(&k).ok().flatten().as_deref() == Some(print.as_slice());
        if let Err(e) = apply_one(plane, st, d, unchanged) {
            errors.push(ConfigError {
                message: format!("[[{}]] `{}`: {}: {}", d.kind.table(), d.name, e.code.name(), e.message),
                ..d.at.clone()
            });
            continue;
        }
        if !st.dry_run
            && !unchanged
            && let Err(e) = plane.store.set_meta(&k, &print)
        {
            errors.push(ConfigError {
                message: format!("cannot record the declaration in the store: {e}"),
                ..d.at.clone()
            });
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn apply_one(plane: &Plane, st: &mut ControlState, d: &Declared, unchanged: bool) -> EvResult<()> {
    let p = d.project.as_deref().unwrap_or("");
    let pair = (p.to_string(), d.name.clone());
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
    let b = &d.body;
    match (d.kind, exists) {
        (DeclaredKind::Project, false) => projects::create(plane, st, &call(Method::POST, b.clone())).map(drop),
        (DeclaredKind::Project, true) => {
            projects::update(plane, st, &d.name, &call(Method::PATCH, pick(b, &["description", "appConfigResource"])))?;
            match b.get("dataDelivery") {
                Some(dd) => {
                    projects::update_data_delivery(plane, st, &d.name, &call(Method::PATCH, dd.clone())).map(drop)
                }
                None => Ok(()),
            }
        }
        (DeclaredKind::Segment, false) => segments::create(plane, st, &call(Method::POST, b.clone())).map(drop),
        (DeclaredKind::Segment, true) => {
            // Segments are immutable: a changed one is made again, which only works while unused.
            let same = st.evidently.segments.get(&d.name).is_some_and(|s| {
                Some(s.pattern()) == b.get("pattern").and_then(Value::as_str)
                    && s.description.as_deref() == b.get("description").and_then(Value::as_str)
            });
            if same {
                return Ok(());
            }
            segments::delete(plane, st, &d.name)?;
            segments::create(plane, st, &call(Method::POST, b.clone())).map(drop)
        }
        (DeclaredKind::Feature, false) => features::create(plane, st, p, &call(Method::POST, b.clone())).map(drop),
        (DeclaredKind::Feature, true) => {
            let declared: Vec<String> = b
                .get("variations")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string)).collect())
                .unwrap_or_default();
            let existing = st.evidently.features.get(&pair).map(|f| f.variations.clone()).unwrap_or_default();
            let remove: Vec<String> =
                existing.iter().map(|v| v.name.clone()).filter(|n| !declared.contains(n)).collect();
            let mut patch = json!({
                "addOrUpdateVariations": b.get("variations").cloned().unwrap_or(json!([])),
                "entityOverrides": b.get("entityOverrides").cloned().unwrap_or(json!({})),
                "evaluationStrategy": b.get("evaluationStrategy").cloned().unwrap_or(json!("ALL_RULES")),
                "defaultVariation": b.get("defaultVariation").cloned().unwrap_or_else(|| json!(declared.first())),
            });
            if !remove.is_empty() {
                patch["removeVariations"] = json!(remove);
            }
            if let Some(desc) = b.get("description") {
                patch["description"] = desc.clone();
            }
            features::update(plane, st, p, &d.name, &call(Method::PATCH, patch)).map(drop)
        }
        (DeclaredKind::Launch, false) => {
            launches::create(plane, st, p, &call(Method::POST, b.clone()))?;
            start_launch(plane, st, d)
        }
        (DeclaredKind::Launch, true) => {
            let keys = ["description", "groups", "scheduledSplitsConfig", "metricMonitors", "randomizationSalt"];
            launches::update(plane, st, p, &d.name, &call(Method::PATCH, pick(b, &keys)))?;
            start_launch(plane, st, d)
        }
        (DeclaredKind::Experiment, false) => {
            experiments::create(plane, st, p, &call(Method::POST, b.clone()))?;
            start_experiment(plane, st, d)
        }
        (DeclaredKind::Experiment, true) => {
            let status = st.evidently.experiments.get(&pair).map(|x| x.status);
            let keys: &[&str] = match status {
                Some(RunStatus::Created) => &[
                    "description",
                    "treatments",
                    "metricGoals",
                    "onlineAbConfig",
                    "randomizationSalt",
                    "samplingRate",
                    "segment",
                ],
                _ => &["description", "samplingRate"],
            };
            experiments::update(plane, st, p, &d.name, &call(Method::PATCH, pick(b, keys)))?;
            start_experiment(plane, st, d)
        }
    }
}

fn start_launch(plane: &Plane, st: &mut ControlState, d: &Declared) -> EvResult<()> {
    let p = d.project.as_deref().unwrap_or("");
    let created =
        st.evidently.launches.get(&(p.to_string(), d.name.clone())).is_some_and(|l| l.status == RunStatus::Created);
    if d.running && created {
        launches::start(plane, st, p, &d.name)?;
    }
    Ok(())
}

fn start_experiment(plane: &Plane, st: &mut ControlState, d: &Declared) -> EvResult<()> {
    let p = d.project.as_deref().unwrap_or("");
    let created =
        st.evidently.experiments.get(&(p.to_string(), d.name.clone())).is_some_and(|x| x.status == RunStatus::Created);
    if d.running && created {
        let body = pick(&d.body, &["analysisCompleteTime"]);
        experiments::start(plane, st, p, &d.name, &call(Method::POST, body))?;
    }
    Ok(())
}
