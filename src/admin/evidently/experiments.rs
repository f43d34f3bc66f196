//! Experiments on the wire: the shape, GetExperiment and ListExperiments.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::evidently::model::Experiment;
use crate::plane::evidently::{find, project};

pub(crate) fn view(st: &ControlState, x: &Experiment) -> Value {
    let arns = arns(st);
    let treatments: Vec<Value> = x
        .treatments
        .iter()
        .map(|t| {
            let feature_variations = BTreeMap::from([(t.feature.as_str(), t.variation.as_str())]);
            let mut v = json!({ "name": t.name, "featureVariations": feature_variations });
            if let Some(d) = &t.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect();
    let mut online = json!({ "treatmentWeights": x.treatment_weights });
    if let Some(c) = &x.control_treatment {
        online["controlTreatmentName"] = json!(c);
    }
    let mut v = json!({
        "arn": arns.experiment(&x.project, &x.name),
        "name": x.name,
        "project": arns.project(&x.project),
        "status": x.status.as_str(),
        "type": "aws.evidently.onlineab",
        "treatments": treatments,
        "metricGoals": x.metric_goals,
        "onlineAbDefinition": online,
        "samplingRate": x.sampling_rate,
        "randomizationSalt": x.randomization_salt,
        "createdTime": x.created_time,
        "lastUpdatedTime": x.last_updated_time,
        "tags": x.tags,
    });
    if let Some(d) = &x.description {
        v["description"] = json!(d);
    }
    if let Some(r) = &x.status_reason {
        v["statusReason"] = json!(r);
    }
    if let Some(s) = &x.segment {
        v["segment"] = json!(arns.segment(s));
    }
    if let Some(t) = x.analysis_complete_time {
        v["schedule"] = json!({ "analysisCompleteTime": t });
    }
    if let Some(t) = x.started_time {
        let mut execution = json!({ "startedTime": t });
        if let Some(e) = x.ended_time {
            execution["endedTime"] = json!(e);
        }
        v["execution"] = execution;
    }
    v
}

/// CreateExperiment's and UpdateExperiment's answer.
pub fn answer(st: &ControlState, outcome: Outcome) -> Value {
    match written(outcome) {
        Some(Resource::Experiment(x)) => json!({ "experiment": view(st, &x) }),
        _ => json!({}),
    }
}

pub fn get(st: &ControlState, p: &str, name: &str) -> EvResult<Value> {
    Ok(json!({ "experiment": view(st, find::<Experiment>(&st.evidently, p, name)?) }))
}

pub fn list(st: &ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    project(&st.evidently, p)?;
    let status = status_filter(call, &aws::EXPERIMENT_STATUS)?;
    let items = st
        .evidently
        .experiments
        .iter()
        .filter(|(k, x)| k.0 == p && status.is_none_or(|s| x.status.as_str() == s))
        .map(|(k, v)| (k.1.clone(), v))
        .collect();
    let (page, next) = page(call, items, &aws::MAX_EXPERIMENTS, 50)?;
    Ok(listing("experiments", page.into_iter().map(|x| view(st, x)).collect::<Vec<_>>(), next))
}
