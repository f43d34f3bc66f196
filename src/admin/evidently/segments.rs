//! Segments on the wire: the shape, GetSegment, ListSegments, ListSegmentReferences and
//! TestSegmentPattern. Segments are immutable but for tags, and account-wide (shared by every project).

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::evidently::model::Segment;
use crate::plane::evidently::{segment, segment_users};

#[derive(Deserialize)]
struct TestBody {
    pattern: Option<String>,
    payload: Option<String>,
}

pub(crate) fn view(st: &ControlState, s: &Segment) -> Value {
    let (launches, experiments) = segment_users(&st.evidently, &s.name);
    let mut v = json!({
        "arn": arns(st).segment(&s.name),
        "name": s.name,
        "pattern": s.pattern(),
        "createdTime": s.created_time,
        "lastUpdatedTime": s.last_updated_time,
        "launchCount": launches.len(),
        "experimentCount": experiments.len(),
        "tags": s.tags,
    });
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

/// CreateSegment's answer.
pub fn answer(st: &ControlState, outcome: Outcome) -> Value {
    match written(outcome) {
        Some(Resource::Segment(s)) => json!({ "segment": view(st, &s) }),
        _ => json!({}),
    }
}

pub fn get(st: &ControlState, name: &str) -> EvResult<Value> {
    Ok(json!({ "segment": view(st, segment(&st.evidently, name)?) }))
}

pub fn list(st: &ControlState, call: &EvCall) -> EvResult<Value> {
    let items = st.evidently.segments.iter().map(|(k, v)| (k.clone(), v)).collect();
    let (page, next) = page(call, items, &aws::MAX_SEGMENTS, 50)?;
    Ok(listing("segments", page.into_iter().map(|s| view(st, s)).collect::<Vec<_>>(), next))
}

fn time_string(t: Option<f64>) -> Option<String> {
    t.map(|t| {
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0)))
            .to_string()
    })
}

pub fn references(st: &ControlState, name: &str, call: &EvCall) -> EvResult<Value> {
    segment(&st.evidently, name)?;
    let kind = call.query("type").ok_or_else(|| invalid("type", "is required: EXPERIMENT or LAUNCH"))?;
    aws::SEGMENT_REFERENCE_RESOURCE_TYPE.check("type", kind)?;
    let arns = arns(st);
    let (launches, experiments) = segment_users(&st.evidently, name);
    let refs: Vec<(String, Value)> = match kind {
        "LAUNCH" => launches
            .into_iter()
            .map(|l| {
                let v = json!({
                    "name": l.name, "type": "LAUNCH", "arn": arns.launch(&l.project, &l.name), "status": l.status.as_str(),
                    "startTime": time_string(l.started_time), "endTime": time_string(l.ended_time),
                    "lastUpdatedOn": time_string(Some(l.last_updated_time)),
                });
                (format!("{}/{}", l.project, l.name), v)
            })
            .collect(),
        "EXPERIMENT" => experiments
            .into_iter()
            .map(|x| {
                let v = json!({
                    "name": x.name, "type": "EXPERIMENT", "arn": arns.experiment(&x.project, &x.name), "status": x.status.as_str(),
                    "startTime": time_string(x.started_time), "endTime": time_string(x.ended_time),
                    "lastUpdatedOn": time_string(Some(x.last_updated_time)),
                });
                (format!("{}/{}", x.project, x.name), v)
            })
            .collect(),
        _ => return Err(invalid("type", "must be EXPERIMENT or LAUNCH").into()),
    };
    let items: Vec<(String, &Value)> = refs.iter().map(|(k, v)| (k.clone(), v)).collect();
    let (page, next) = page(call, items, &aws::MAX_REFERENCES, 50)?;
    let cleaned: Vec<Value> = page
        .into_iter()
        .map(|v| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.retain(|_, val| !val.is_null());
            }
            v
        })
        .collect();
    Ok(listing("referencedBy", cleaned, next))
}

pub(crate) fn test_pattern(call: &EvCall) -> EvResult<Value> {
    let b: TestBody = call.json()?;
    let pattern = input::pattern("pattern", &b.pattern.ok_or_else(|| invalid("pattern", "is required"))?)?;
    let payload_text = b.payload.ok_or_else(|| invalid("payload", "is required"))?;
    // `payload` is a bare `JsonValue` in the model, with no length; edgesplit bounds it as it bounds the
    // pattern it is tested against.
    aws::SEGMENT_PATTERN.check("payload", &payload_text)?;
    let payload: Value =
        serde_json::from_str(&payload_text).map_err(|e| invalid("payload", format!("is not valid JSON: {e}")))?;
    if !payload.is_object() {
        return Err(invalid("payload", "must be a JSON object").into());
    }
    Ok(json!({ "match": pattern.matches(&payload) }))
}
