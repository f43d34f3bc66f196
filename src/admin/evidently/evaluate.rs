//! EvaluateFeature and BatchEvaluateFeature: lock-free, against the published snapshot, exactly as the
//! proxy evaluates.

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::domain::error::ResourceId;
use crate::evidently::compile::EvSnapshot;
use crate::evidently::engine::CompiledFeature;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvaluateBody {
    entity_id: Option<String>,
    evaluation_context: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    entity_id: Option<String>,
    feature: Option<String>,
    evaluation_context: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody {
    requests: Option<Vec<BatchItem>>,
}

/// The context: a JSON string holding a JSON object (absent means none).
fn context(field: &str, text: &Option<String>) -> EvResult<Value> {
    let Some(text) = text else { return Ok(Value::Null) };
    let v: Value = serde_json::from_str(text).map_err(|e| invalid(field, format!("is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid(field, "must be a JSON object").into());
    }
    Ok(v)
}

fn entity(field: &str, e: Option<String>) -> EvResult<String> {
    let e = e.ok_or_else(|| invalid(field, "is required"))?;
    aws::ENTITY_ID.check(field, &e)?;
    Ok(e)
}

/// One evaluation as the wire's `variation`, `value`, `reason`, `details`; a launch or experiment
/// assignment is recorded as an exposure, as the proxy does.
fn result(
    plane: &Plane,
    project: &str,
    f: &CompiledFeature,
    entity_id: &str,
    ctx: &Value,
) -> serde_json::Map<String, Value> {
    let e = plane.evaluate(project, f, entity_id, ctx);
    let mut out = serde_json::Map::new();
    if let Some((name, value)) = f.variations.get(e.variation) {
        out.insert("variation".into(), json!(&**name));
        out.insert("value".into(), serde_json::to_value(value).unwrap_or(Value::Null));
    }
    out.insert("reason".into(), json!(e.reason.as_str()));
    out.insert("details".into(), json!(e.details.to_json()));
    out
}

/// The project's name, checked against the snapshot (no lock).
fn project_name(snapshot: &EvSnapshot, p: &str) -> EvResult<String> {
    let name = project_ref(&snapshot.arns, p)?;
    if !snapshot.projects.contains_key(&name) {
        return Err(DomainError::NotFound(ResourceId::Project(name)).into());
    }
    Ok(name)
}

pub fn evaluate(plane: &Plane, p: &str, f: &str, call: &EvCall) -> EvResult<Value> {
    let state = plane.snapshot();
    let project = project_name(&state.evidently, p)?;
    aws::FEATURE_NAME.check("feature", f)?;
    let b: EvaluateBody = call.json()?;
    let entity_id = entity("entityId", b.entity_id)?;
    let ctx = context("evaluationContext", &b.evaluation_context)?;
    let Some(feature) = state.evidently.feature(&project, f) else {
        return Err(DomainError::NotFound(ResourceId::Feature(project, f.to_string())).into());
    };
    Ok(Value::Object(result(plane, &project, feature, &entity_id, &ctx)))
}

pub(crate) fn batch(plane: &Plane, p: &str, call: &EvCall) -> EvResult<Value> {
    let state = plane.snapshot();
    let project = project_name(&state.evidently, p)?;
    let b: BatchBody = call.json()?;
    let requests = b.requests.ok_or_else(|| invalid("requests", "is required"))?;
    aws::EVALUATION_REQUESTS_LIST.check("requests", requests.len())?;
    let project_arn = state.evidently.arns.project(&project);
    let mut results = Vec::with_capacity(requests.len());
    for (i, r) in requests.into_iter().enumerate() {
        let entity_id = entity(&format!("requests[{i}].entityId"), r.entity_id)?;
        let feature = r.feature.ok_or_else(|| invalid(&format!("requests[{i}].feature"), "is required"))?;
        aws::FEATURE_NAME.check(&format!("requests[{i}].feature"), &feature)?;
        let ctx = context(&format!("requests[{i}].evaluationContext"), &r.evaluation_context)?;
        let feature_arn = state.evidently.arns.feature(&project, &feature);
        let mut item = match state.evidently.feature(&project, &feature) {
            Some(f) => result(plane, &project, f, &entity_id, &ctx),
            None => {
                let mut m = serde_json::Map::new();
                m.insert("reason".into(), json!(format!("Feature does not exist with arn '{feature_arn}'")));
                m
            }
        };
        item.insert("entityId".into(), json!(entity_id));
        item.insert("feature".into(), json!(feature_arn));
        item.insert("project".into(), json!(project_arn));
        results.push(Value::Object(item));
    }
    Ok(json!({ "results": results }))
}
