//! CreateProject, GetProject, ListProjects, UpdateProject, UpdateProjectDataDelivery, DeleteProject.

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::evidently::model::{Project, Resource, RunStatus, Tags};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    app_config_resource: Option<Value>,
    data_delivery: Option<Value>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    description: Option<String>,
    app_config_resource: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataDeliveryBody {
    cloud_watch_logs: Option<Value>,
    s3_destination: Option<Value>,
}

/// The wire shape, with the counters computed from what the project holds.
pub fn view(st: &ControlState, p: &Project) -> Value {
    let e = &st.evidently;
    let mine = |k: &(String, String)| k.0 == p.name;
    let launches: Vec<_> = e.launches.iter().filter(|(k, _)| mine(k)).map(|(_, l)| l.status).collect();
    let experiments: Vec<_> = e.experiments.iter().filter(|(k, _)| mine(k)).map(|(_, x)| x.status).collect();
    let mut v = json!({
        "arn": Arns(&st.config).project(&p.name),
        "name": p.name,
        "status": "AVAILABLE",
        "createdTime": p.created_time,
        "lastUpdatedTime": p.last_updated_time,
        "featureCount": e.features.keys().filter(|k| mine(k)).count(),
        "launchCount": launches.len(),
        "activeLaunchCount": launches.iter().filter(|s| **s == RunStatus::Running).count(),
        "experimentCount": experiments.len(),
        "activeExperimentCount": experiments.iter().filter(|s| **s == RunStatus::Running).count(),
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

fn check_app_config(v: &Option<Value>) -> EvResult<Option<Value>> {
    let Some(v) = v else { return Ok(None) };
    let obj = v.as_object().ok_or_else(|| invalid("appConfigResource", "must be an object"))?;
    let id = |k: &str| -> EvResult<String> {
        let s = obj.get(k).and_then(Value::as_str).unwrap_or("");
        let ok = (4..=7).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(s.to_string())
        } else {
            Err(invalid(&format!("appConfigResource.{k}"), "must be 4 to 7 of [a-z0-9]"))
        }
    };
    let application_id = id("applicationId")?;
    let environment_id = id("environmentId")?;
    // Evidently made a configuration profile per project; edgesplit names one so the shape is whole.
    let profile: String = application_id.chars().rev().collect();
    Ok(Some(
        json!({ "applicationId": application_id, "environmentId": environment_id, "configurationProfileId": profile }),
    ))
}

fn check_data_delivery(cloud_watch_logs: &Option<Value>, s3: &Option<Value>) -> EvResult<Option<Value>> {
    match (cloud_watch_logs, s3) {
        (Some(_), Some(_)) => Err(invalid("dataDelivery", "name either cloudWatchLogs or s3Destination, not both")),
        (Some(c), None) => {
            let group = c.get("logGroup").and_then(Value::as_str).unwrap_or("");
            let ok = (1..=512).contains(&group.len())
                && group.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
            if !ok {
                return Err(invalid("cloudWatchLogs.logGroup", "must be 1 to 512 of [-a-zA-Z0-9._/]"));
            }
            Ok(Some(json!({ "cloudWatchLogs": { "logGroup": group } })))
        }
        (None, Some(s)) => {
            let bucket = s.get("bucket").and_then(Value::as_str).unwrap_or("");
            let ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !bucket.starts_with('-')
                && !bucket.ends_with('-');
            if !ok {
                return Err(invalid(
                    "s3Destination.bucket",
                    "must be 3 to 63 of [a-z0-9-], not starting or ending with '-'",
                ));
            }
            let mut v = json!({ "bucket": bucket });
            if let Some(prefix) = s.get("prefix").and_then(Value::as_str) {
                check_len("s3Destination.prefix", prefix, 1, 1024)?;
                v["prefix"] = json!(prefix);
            }
            Ok(Some(json!({ "s3Destination": v })))
        }
        (None, None) => Ok(None),
    }
}

pub fn create(plane: &Plane, st: &mut ControlState, call: &Call) -> EvResult<Value> {
    let b: CreateBody = call.json()?;
    let name = b.name.ok_or_else(|| invalid("name", "is required"))?;
    check_name("name", &name, 127)?;
    check_description("description", &b.description)?;
    let tags = b.tags.unwrap_or_default();
    check_tags(&tags)?;
    let app_config_resource = check_app_config(&b.app_config_resource)?;
    let data_delivery = match &b.data_delivery {
        Some(d) => check_data_delivery(&d.get("cloudWatchLogs").cloned(), &d.get("s3Destination").cloned())?,
        None => None,
    };
    let arn = Arns(&st.config).project(&name);
    if st.evidently.projects.contains_key(&name) {
        return Err(conflict("project", &arn, format!("Project with arn '{arn}' already exists.")));
    }
    if st.evidently.projects.len() >= st.config.quotas.projects {
        return Err(quota(
            "project",
            format!("You have reached the maximum of {} projects.", st.config.quotas.projects),
        ));
    }
    let t = now();
    let p = Project {
        name,
        description: b.description,
        created_time: t,
        last_updated_time: t,
        app_config_resource,
        data_delivery,
        tags,
    };
    commit(plane, st, vec![Resource::Project(p.clone())], Vec::new())?;
    Ok(json!({ "project": view(st, &p) }))
}

pub fn get(st: &ControlState, r: &str) -> EvResult<Value> {
    let p = find_project(st, r)?;
    Ok(json!({ "project": view(st, p) }))
}

pub fn list(st: &ControlState, call: &Call) -> EvResult<Value> {
    let items: Vec<(String, &Project)> = st.evidently.projects.iter().map(|(k, v)| (k.clone(), v)).collect();
    let (page, next) = page(call, items, 50, 50)?;
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

pub fn update(plane: &Plane, st: &mut ControlState, r: &str, call: &Call) -> EvResult<Value> {
    let mut p = find_project(st, r)?.clone();
    let b: UpdateBody = call.json()?;
    check_description("description", &b.description)?;
    if let Some(d) = b.description {
        p.description = Some(d);
    }
    if let Some(a) = check_app_config(&b.app_config_resource)? {
        p.app_config_resource = Some(a);
    }
    p.last_updated_time = now();
    commit(plane, st, vec![Resource::Project(p.clone())], Vec::new())?;
    Ok(json!({ "project": view(st, &p) }))
}

pub fn update_data_delivery(plane: &Plane, st: &mut ControlState, r: &str, call: &Call) -> EvResult<Value> {
    let mut p = find_project(st, r)?.clone();
    let b: DataDeliveryBody = call.json()?;
    p.data_delivery = check_data_delivery(&b.cloud_watch_logs, &b.s3_destination)?;
    p.last_updated_time = now();
    commit(plane, st, vec![Resource::Project(p.clone())], Vec::new())?;
    Ok(json!({ "project": view(st, &p) }))
}

pub fn delete(plane: &Plane, st: &mut ControlState, r: &str) -> EvResult<Value> {
    let p = find_project(st, r)?;
    let name = p.name.clone();
    let e = &st.evidently;
    let busy = e.features.keys().chain(e.launches.keys()).chain(e.experiments.keys()).any(|k| k.0 == name);
    if busy {
        let arn = Arns(&st.config).project(&name);
        return Err(conflict("project", &arn, "Project has sub-resources"));
    }
    commit(plane, st, Vec::new(), vec![format!("project/{name}")])?;
    Ok(json!({}))
}
