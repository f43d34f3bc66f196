//! PutProjectEvents on the wire: per-event results (the call succeeds while single events may fail),
//! the events recorded by [`Plane::put_events`].

use serde_json::{Value, json};

use super::*;

/// Call it off the async workers, without the plane's lock (see `Plane::put_events`).
pub fn put(plane: &Plane, arns: &Arns, project: &str, call: &EvCall) -> EvResult<Value> {
    // The project first: a missing one answers 404 whatever the body.
    crate::plane::evidently::project(&plane.lock().evidently, project)?;
    let decoded = call.json::<input::EventsBody>()?.decode()?;
    let events: Vec<input::Event> = decoded.iter().filter_map(|e| e.as_ref().ok().cloned()).collect();
    plane.put_events(project, &events).map_err(|e| match Failure::from(e) {
        Failure::Store(e) => {
            tracing::error!(error = %e, "Store write failed");
            EvError::new(EvCode::ServiceUnavailable, "The events could not be stored; none were.").into()
        }
        other => other,
    })?;
    let failed = decoded.iter().filter(|e| e.is_err()).count();
    let results: Vec<Value> = decoded
        .into_iter()
        .map(|e| match e {
            Ok(_) => json!({ "eventId": crate::random::uuid() }),
            Err(e) => {
                let e = from_domain(arns, e);
                json!({ "errorCode": e.code.name(), "errorMessage": e.message })
            }
        })
        .collect();
    Ok(json!({ "eventResults": results, "failedEventCount": failed }))
}
