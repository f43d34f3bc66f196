//! Projects on the wire: the shape (with its counters), GetProject and ListProjects.

use serde_json::{Value, json};

use super::*;
use crate::evidently::model::{Experiment, Launch, Project};
use crate::plane::evidently::{counts, project};

/// The wire shape, with the counters computed from what the project holds.
pub(crate) fn view(st: &ControlState, p: &Project) -> Value {
    let e = &st.evidently;
    let (launches, active_launches) = counts::<Launch>(e, &p.name);
    let (experiments, active_experiments) = counts::<Experiment>(e, &p.name);
    let mut v = json!({
        "arn": arns(st).project(&p.name),
        "name": p.name,
        "status": "AVAILABLE",
        "createdTime": p.created_time,
        "lastUpdatedTime": p.last_updated_time,
        "featureCount": e.features.keys().filter(|k| k.0 == p.name).count(),
        "launchCount": launches,
        "activeLaunchCount": active_launches,
        "experimentCount": experiments,
        "activeExperimentCount": active_experiments,
        "tags": p.tags,
    });
    if let Some(d) = &p.description {
        v["description"] = json!(d);
    }
    if let Some(a) = &p.app_config_resource {
        v["appConfigResource"] = a.clone();
    }
    if let Some(d) = &p.data_delivery {
        v["dataDelivery"] = d.clone();
    }
    v
}

/// CreateProject's, UpdateProject's and UpdateProjectDataDelivery's answer.
pub fn answer(st: &ControlState, outcome: Outcome) -> Value {
    match written(outcome) {
        Some(Resource::Project(p)) => json!({ "project": view(st, &p) }),
        _ => json!({}),
    }
}

pub fn get(st: &ControlState, name: &str) -> EvResult<Value> {
    Ok(json!({ "project": view(st, project(&st.evidently, name)?) }))
}

pub fn list(st: &ControlState, call: &EvCall) -> EvResult<Value> {
    let items: Vec<(String, &Project)> = st.evidently.projects.iter().map(|(k, v)| (k.clone(), v)).collect();
    let (page, next) = page(call, items, &aws::MAX_PROJECTS, 50)?;
    let projects: Vec<Value> = page
        .into_iter()
        .map(|p| {
            let mut v = view(st, p);
            if let Some(o) = v.as_object_mut() {
                o.remove("appConfigResource");
                o.remove("dataDelivery");
            }
            v
        })
        .collect();
    Ok(listing("projects", projects, next))
}
