//! CreateSegment, GetSegment, ListSegments, DeleteSegment, ListSegmentReferences, TestSegmentPattern.
//! Segments are immutable but for tags, and account-wide (shared by every project).

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::evidently::model::{Resource, Segment, Tags};
use crate::evidently::pattern::Pattern;

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    pattern: Option<String>,
    description: Option<String>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
struct TestBody {
    pattern: Option<String>,
    payload: Option<String>,
}

/// Checks and compiles a pattern sent as a JSON string (a `SegmentPattern`).
pub fn compile(field: &str, text: &str) -> EvResult<Pattern> {
    aws::SEGMENT_PATTERN.check(field, text)?;
    Pattern::parse(text).map_err(|e| invalid(field, e.to_string()))
}

/// Launches and experiments that use segment `name`: (launches, experiments).
fn users<'a>(
    st: &'a ControlState,
    name: &str,
) -> (Vec<&'a crate::evidently::model::Launch>, Vec<&'a crate::evidently::model::Experiment>) {
    let launches = st
        .evidently
        .launches
        .values()
        .filter(|l| l.steps.iter().any(|s| s.segment_overrides.iter().any(|o| o.segment == name)))
        .collect();
    let experiments = st.evidently.experiments.values().filter(|x| x.segment.as_deref() == Some(name)).collect();
    (launches, experiments)
}

pub fn view(st: &ControlState, s: &Segment) -> Value {
    let (launches, experiments) = users(st, &s.name);
    let mut v = json!({
        "arn": Arns(&st.config).segment(&s.name),
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

fn find<'a>(st: &'a ControlState, r: &str) -> EvResult<&'a Segment> {
    let name = segment_ref(&Arns(&st.config).base(), "segment", r)?;
    st.evidently.segments.get(&name).ok_or_else(|| {
        let arn = Arns(&st.config).segment(&name);
        not_found("segment", &arn, format!("Segment does not exist with arn '{arn}'"))
    })
}

pub fn create(plane: &Plane, st: &mut ControlState, call: &EvCall) -> EvResult<Value> {
    let b: CreateBody = call.json()?;
    let name = b.name.ok_or_else(|| invalid("name", "is required"))?;
    aws::SEGMENT_NAME.check("name", &name)?;
    let pattern = b.pattern.ok_or_else(|| invalid("pattern", "is required"))?;
    let parsed = compile("pattern", &pattern)?;
    check_opt(&aws::DESCRIPTION, "description", b.description.as_deref())?;
    let tags = b.tags.unwrap_or_default();
    check_tags(&tags)?;
    let arn = Arns(&st.config).segment(&name);
    if st.evidently.segments.contains_key(&name) {
        return Err(conflict("segment", &arn, format!("Segment with arn '{arn}' already exists.")));
    }
    if st.evidently.segments.len() >= st.config.quotas.segments {
        return Err(quota(
            "segment",
            format!("You have reached the maximum of {} segments.", st.config.quotas.segments),
        ));
    }
    // Compiled above to validate it: kept, so the state compiler does not parse it again.
    let s = Segment::new(name, pattern, b.description, now(), tags).with_compiled(parsed);
    commit(plane, st, vec![Resource::Segment(s.clone())], Vec::new())?;
    Ok(json!({ "segment": view(st, &s) }))
}

pub fn get(st: &ControlState, r: &str) -> EvResult<Value> {
    Ok(json!({ "segment": view(st, find(st, r)?) }))
}

pub fn list(st: &ControlState, call: &EvCall) -> EvResult<Value> {
    let items = st.evidently.segments.iter().map(|(k, v)| (k.clone(), v)).collect();
    let (page, next) = page(call, items, &aws::MAX_SEGMENTS, 50)?;
    Ok(listing("segments", page.into_iter().map(|s| view(st, s)).collect::<Vec<_>>(), next))
}

pub fn delete(plane: &Plane, st: &mut ControlState, r: &str) -> EvResult<Value> {
    let s = find(st, r)?;
    let name = s.name.clone();
    let (launches, experiments) = users(st, &name);
    if !launches.is_empty() || !experiments.is_empty() {
        let arn = Arns(&st.config).segment(&name);
        return Err(conflict("segment", &arn, "Segment is in use by a launch or an experiment."));
    }
    commit(plane, st, Vec::new(), vec![format!("segment/{name}")])?;
    Ok(json!({}))
}

fn time_string(t: Option<f64>) -> Option<String> {
    t.map(|t| {
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0)))
            .to_string()
    })
}

pub fn references(st: &ControlState, r: &str, call: &EvCall) -> EvResult<Value> {
    let name = find(st, r)?.name.clone();
    let kind = call.query("type").ok_or_else(|| invalid("type", "is required: EXPERIMENT or LAUNCH"))?;
    aws::SEGMENT_REFERENCE_RESOURCE_TYPE.check("type", kind)?;
    let arns = Arns(&st.config);
    let (launches, experiments) = users(st, &name);
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
        _ => return Err(invalid("type", "must be EXPERIMENT or LAUNCH")),
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

pub fn test_pattern(call: &EvCall) -> EvResult<Value> {
    let b: TestBody = call.json()?;
    let pattern = compile("pattern", &b.pattern.ok_or_else(|| invalid("pattern", "is required"))?)?;
    let payload_text = b.payload.ok_or_else(|| invalid("payload", "is required"))?;
    // `payload` is a bare `JsonValue` in the model, with no length; edgesplit bounds it as it bounds the
    // pattern it is tested against.
    aws::SEGMENT_PATTERN.check("payload", &payload_text)?;
    let payload: Value =
        serde_json::from_str(&payload_text).map_err(|e| invalid("payload", format!("is not valid JSON: {e}")))?;
    if !payload.is_object() {
        return Err(invalid("payload", "must be a JSON object"));
    }
    Ok(json!({ "match": pattern.matches(&payload) }))
}
