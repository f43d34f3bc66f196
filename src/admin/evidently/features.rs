//! Features on the wire: the shape (with its evaluation rules), GetFeature and ListFeatures.

use serde_json::{Value, json};

use super::*;
use crate::evidently::model::Feature;
use crate::plane::evidently::{feature, project, rules_of};

/// The launches and experiments, not yet ended, that serve this feature: `EvaluationRule`s.
fn rules(st: &ControlState, f: &Feature) -> Vec<Value> {
    let (launches, experiments) = rules_of(&st.evidently, &f.project, &f.name);
    let launches = launches.into_iter().map(|l| json!({ "name": l.name, "type": "aws.evidently.splits" }));
    let experiments = experiments.into_iter().map(|x| json!({ "name": x.name, "type": "aws.evidently.onlineab" }));
    launches.chain(experiments).collect()
}

pub(crate) fn view(st: &ControlState, f: &Feature) -> Value {
    let arns = arns(st);
    let mut v = json!({
        "arn": arns.feature(&f.project, &f.name),
        "name": f.name,
        "project": arns.project(&f.project),
        "status": "AVAILABLE",
        "valueType": f.variations.first().map_or("STRING", |v| v.value.value_type()),
        "variations": f.variations,
        "defaultVariation": f.default_variation,
        "evaluationStrategy": f.evaluation_strategy,
        "entityOverrides": f.entity_overrides,
        "evaluationRules": rules(st, f),
        "createdTime": f.created_time,
        "lastUpdatedTime": f.last_updated_time,
        "tags": f.tags,
    });
    if let Some(d) = &f.description {
        v["description"] = json!(d);
    }
    v
}

/// CreateFeature's and UpdateFeature's answer.
pub fn answer(st: &ControlState, outcome: Outcome) -> Value {
    match written(outcome) {
        Some(Resource::Feature(f)) => json!({ "feature": view(st, &f) }),
        _ => json!({}),
    }
}

pub fn get(st: &ControlState, p: &str, f: &str) -> EvResult<Value> {
    Ok(json!({ "feature": view(st, feature(&st.evidently, p, f)?) }))
}

pub fn list(st: &ControlState, p: &str, call: &EvCall) -> EvResult<Value> {
    project(&st.evidently, p)?;
    let items = st.evidently.features.iter().filter(|(k, _)| k.0 == p).map(|(k, v)| (k.1.clone(), v)).collect();
    let (page, next) = page(call, items, &aws::MAX_FEATURES, 50)?;
    let arns = arns(st);
    let features: Vec<Value> = page
        .into_iter()
        .map(|f| {
            json!({
                "arn": arns.feature(&f.project, &f.name),
                "name": f.name,
                "project": arns.project(&f.project),
                "status": "AVAILABLE",
                "createdTime": f.created_time,
                "lastUpdatedTime": f.last_updated_time,
                "defaultVariation": f.default_variation,
                "evaluationStrategy": f.evaluation_strategy,
                "evaluationRules": rules(st, f),
                "tags": f.tags,
            })
        })
        .collect();
    Ok(listing("features", features, next))
}
