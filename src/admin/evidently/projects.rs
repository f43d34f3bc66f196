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
    // Both ids are optional in the model; edgesplit asks for both, as a project is linked to an
    // application's environment or to nothing.
    let id = |k: &str| -> EvResult<String> {
        let field = format!("appConfigResource.{k}");
        let s = obj.get(k).and_then(Value::as_str).ok_or_else(|| invalid(&field, "is required"))?;
        aws::APP_CONFIG_RESOURCE_ID.check(&field, s)?;
        Ok(s.to_string())
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
            // Optional in the model; edgesplit asks for it, as a log destination without a group is no
            // destination.
            let group = c.get("logGroup").and_then(Value::as_str).unwrap_or("");
            aws::CW_LOG_GROUP_SAFE_NAME.check("cloudWatchLogs.logGroup", group)?;
            Ok(Some(json!({ "cloudWatchLogs": { "logGroup": group } })))
        }
        (None, Some(s)) => {
            // Likewise the bucket.
            let bucket = s.get("bucket").and_then(Value::as_str).unwrap_or("");
            aws::S3_BUCKET_SAFE_NAME.check("s3Destination.bucket", bucket)?;
            let mut v = json!({ "bucket": bucket });
            if let Some(prefix) = s.get("prefix").and_then(Value::as_str) {
                aws::S3_PREFIX_SAFE_NAME.check("s3Destination.prefix", prefix)?;
                v["prefix"] = json!(prefix);
            }
            Ok(Some(json!({ "s3Destination": v })))
        }
        (None, None) => Ok(None),
    }
}

pub fn create(plane: &Plane, st: &mut ControlState, call: &EvCall) -> EvResult<Value> {
    let b: CreateBody = call.json()?;
    let name = b.name.ok_or_else(|| invalid("name", "is required"))?;
    aws::PROJECT_NAME.check("name", &name)?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
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

pub fn update(plane: &Plane, st: &mut ControlState, r: &str, call: &EvCall) -> EvResult<Value> {
    let mut p = find_project(st, r)?.clone();
    let b: UpdateBody = call.json()?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
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

pub fn update_data_delivery(plane: &Plane, st: &mut ControlState, r: &str, call: &EvCall) -> EvResult<Value> {
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
