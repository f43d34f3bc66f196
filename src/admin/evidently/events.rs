//! PutProjectEvents: per-event results (the call succeeds while single events may fail); custom events
//! are turned into metric values and attributed (see `evidently::events`), and the moments they update
//! are committed in one transaction before the answer.
//!
//! It runs on a blocking thread and holds the plane's lock only to read the project's metric rules: the
//! wait for the exposure log (up to 500 ms) and the store write happen unlocked, so events never hold
//! up an admin write or a reload. The results table is written by nothing else, and redb runs one write
//! transaction at a time, so concurrent calls still add up.

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::evidently::events::{attribute, rules};

const CUSTOM: &str = "aws.evidently.custom";
const EVALUATION: &str = "aws.evidently.evaluation";

#[derive(Deserialize)]
struct EventIn {
    timestamp: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    events: Option<Vec<EventIn>>,
}

fn failure(code: &str, message: impl Into<String>) -> Value {
    json!({ "errorCode": code, "errorMessage": message.into() })
}

/// Epoch seconds (int or float) as milliseconds.
fn millis(v: &Option<Value>) -> Option<i64> {
    let s = v.as_ref()?.as_f64()?;
    (s.is_finite() && s >= 0.0).then_some((s * 1000.0) as i64)
}

/// Call it off the async workers, without the plane's lock (see the module doc).
pub fn put(plane: &Plane, project: &str, call: &EvCall) -> EvResult<Value> {
    let metric_rules = {
        let st = plane.lock();
        crate::plane::evidently::project(&st.evidently, project)?;
        rules(&st.evidently, project)
    };
    let b: Body = call.json()?;
    let events = b.events.ok_or_else(|| invalid("events", "is required"))?;
    aws::EVENT_LIST.check("events", events.len())?;
    // Evaluations made just before are still in the exposure queue: let it drain (bounded), unlocked.
    plane.exposures.settle(std::time::Duration::from_millis(500));
    let mut adds = Vec::new();
    let mut results = Vec::with_capacity(events.len());
    let mut failed = 0;
    for e in events {
        let outcome = (|| -> Result<Value, Value> {
            let at = millis(&e.timestamp)
                .ok_or_else(|| failure("ValidationException", "timestamp must be epoch seconds"))?;
            let text = e.data.ok_or_else(|| failure("ValidationException", "data is required"))?;
            let data: Value = serde_json::from_str(&text)
                .map_err(|err| failure("ValidationException", format!("data is not valid JSON: {err}")))?;
            if !data.is_object() {
                return Err(failure("ValidationException", "data must be a JSON object"));
            }
            // An `EventType` outside the model's enum fails this event only, not the call (edgesplit's
            // choice: one bad event in a batch should not lose the others).
            if let Some(kind) = e.kind.as_deref() {
                aws::EVENT_TYPE.check("type", kind).map_err(|v| failure("ValidationException", v.to_string()))?;
            }
            match e.kind.as_deref() {
                Some(CUSTOM) => adds.extend(attribute(&metric_rules, &plane.exposures, project, at, &data)),
                // The evaluation-event schema is unpublished: accepted, not attributed.
                Some(EVALUATION) => {}
                _ => return Err(failure("ValidationException", format!("type must be {CUSTOM} or {EVALUATION}"))),
            }
            Ok(json!({ "eventId": crate::admin::uuid() }))
        })();
        match outcome {
            Ok(v) => results.push(v),
            Err(v) => {
                failed += 1;
                results.push(v);
            }
        }
    }
    plane.store.add_results(&adds).map_err(|e| {
        tracing::error!(error = %e, "Store write failed");
        EvError::new(EvCode::ServiceUnavailable, "The events could not be stored; none were.")
    })?;
    Ok(json!({ "eventResults": results, "failedEventCount": failed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_types_are_the_models() {
        assert_eq!(aws::EVENT_TYPE.values, [EVALUATION, CUSTOM]);
    }
}
