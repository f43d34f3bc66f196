//! Launches on the wire: the shape, GetLaunch and ListLaunches. A launch's request groups
//! `{name, feature, variation}` are stored as `LaunchGroup`s with a one-entry `featureVariations` map;
//! segment overrides are stored by segment name and sent back as ARNs (spec 2.5).

use serde_json::{Value, json};

use super::*;
use crate::evidently::model::Launch;
use crate::plane::evidently::{find, project};

pub(crate) fn view(st: &ControlState, l: &Launch) -> Value {
    let arns = arns(st);
    let mut v = json!({
        "arn": arns.launch(&l.project, &l.name),
        "name": l.name,
        "project": arns.project(&l.project),
        "status": l.status.as_str(),
        "type": "aws.evidently.splits",
        "groups": l.groups,
        "metricMonitors": l.metric_monitors.iter().map(|m| json!({ "metricDefinition": m })).collect::<Vec<_>>(),
        "randomizationSalt": l.randomization_salt,
        "createdTime": l.created_time,
        "lastUpdatedTime": l.last_updated_time,
        "tags": l.tags,
    });
    if !l.steps.is_empty() {
        let steps: Vec<Value> = l
            .steps
            .iter()
            .map(|s| {
                let overrides: Vec<Value> = s
                    .segment_overrides
                    .iter()
                    .map(|o| json!({ "segment": arns.segment(&o.segment), "evaluationOrder": o.evaluation_order, "weights": o.weights }))
                    .collect();
                json!({ "startTime": s.start_time, "groupWeights": s.group_weights, "segmentOverrides": overrides })
            })
            .collect();
        v["scheduledSplitsDefinition"] = json!({ "steps": steps });
    }
    if let Some(d) = &l.description {
        v["description"] = json!(d);
    }
    if let Some(r) = &l.status_reason {
        v["statusReason"] = json!(r);
    }
    if let Some(t) = l.started_time {
        let mut execution = json!({ "startedTime": t });
        if let Some(e) = l.ended_time {
            execution["endedTime"] = json!(e);
        }
        v["execution"] = execution;
    }
    v
}

/// CreateLaunch's, UpdateLaunch's and StartLaunch's answer.
pub fn answer(st: &ControlState, outcome: Outcome) -> Value {
    match written(outcome) {
        Some(Resource::Launch(l)) => json!({ "launch": view(st, &l) }),
        _ => json!({}),
    }
}

pub fn get(st: &ControlState, p: &str, name: &str) -> EvResult<Value> {
    Ok(json!({ "launch": view(st, find::<Launch>(&st.evidently, p, name)?) }))
}

pub fn list(st: &ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    project(&st.evidently, p)?;
    let status = status_filter(call, &aws::LAUNCH_STATUS)?;
    let items = st
        .evidently
        .launches
        .iter()
        .filter(|(k, l)| k.0 == p && status.is_none_or(|s| l.status.as_str() == s))
        .map(|(k, v)| (k.1.clone(), v))
        .collect();
    let (page, next) = page(call, items, &aws::MAX_LAUNCHES, 50)?;
    Ok(listing("launches", page.into_iter().map(|l| view(st, l)).collect::<Vec<_>>(), next))
}
