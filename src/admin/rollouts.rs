//! edgesplit's own API for guarded rollouts (issue 18), JSON under `/edgesplit/`, signed with SigV4 for
//! the service `edgesplit` like the AWS APIs beside it. Errors come in the restJson shape of Evidently's
//! (`__type`, `message`, `X-Amzn-ErrorType`), so one client decoder reads both.
//!
//! | call | answer |
//! |---|---|
//! | `GET /edgesplit/rollouts` | 200 `{"rollouts": [Rollout]}` |
//! | `GET /edgesplit/rollouts/{distribution}` | 200 `Rollout` |
//! | `PUT /edgesplit/rollouts/{distribution}` with a `Spec` | 201 `Rollout`: started |
//! | `POST /edgesplit/rollouts/{distribution}/pause`, `/resume`, `/abort` with `{"reason": ...}` or nothing | 200 `Rollout` |
//!
//! A `Rollout` is the stored record (`rollout::Rollout`) with `step` counted from 1, plus `steps`, the
//! `weight` in force, and `guards`: the driver's last reading of both arms over the step's window.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::evidently::{EvError, Failure, error_response, invalid, json_response};
use crate::evidently::errors::EvCode;
use crate::plane::Plane;
use crate::plane::command::{Command, DomainError, Outcome, ResourceId};
use crate::rollout::{Action, Rollout, Spec};

pub const PREFIX: &str = "/edgesplit/";

/// One call: the path's segments after [`PREFIX`], percent-decoded.
pub struct Call {
    pub method: Method,
    pub segments: Vec<String>,
    pub body: Bytes,
}

/// Serves one call; never fails.
pub async fn handle(plane: &Arc<Plane>, call: Call) -> Response<Full<Bytes>> {
    let arns = plane.snapshot().evidently.arns.clone();
    match route(plane, call).await {
        Ok((status, v)) => json_response(status, &v),
        // In our words (`distribution `x` does not exist`), not Evidently's ARN-worded message.
        Err(Failure::Domain(e @ DomainError::NotFound(_))) => {
            error_response(&EvError::new(EvCode::ResourceNotFound, e.to_string()))
        }
        Err(e) => error_response(&e.into_error(&arns)),
    }
}

async fn route(plane: &Arc<Plane>, call: Call) -> Result<(StatusCode, Value), Failure> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match (&call.method, segs.as_slice()) {
        (&Method::GET, ["rollouts"] | ["rollouts", ""]) => {
            let rollouts: Vec<Value> = plane.lock().rollouts.values().map(|r| encode(plane, r)).collect();
            Ok((StatusCode::OK, json!({ "rollouts": rollouts })))
        }
        (&Method::GET, ["rollouts", d]) => {
            let found = plane.lock().rollouts.get(*d).map(|r| encode(plane, r));
            let r = found.ok_or_else(|| DomainError::NotFound(ResourceId::Rollout(d.to_string())))?;
            Ok((StatusCode::OK, r))
        }
        (&Method::PUT, ["rollouts", d]) => {
            let spec = Spec::from_json(&call.body).map_err(|e| invalid("rollout", e))?;
            let cmd = Command::StartRollout { distribution: d.to_string(), spec, declared: None };
            Ok((StatusCode::CREATED, write(plane, cmd).await?))
        }
        (&Method::POST, ["rollouts", d, verb @ ("pause" | "resume" | "abort")]) => {
            let reason = reason(&call.body)?;
            let action = match *verb {
                "pause" => Action::Pause { reason },
                "abort" => Action::Abort { reason },
                _ => Action::Resume,
            };
            let cmd = Command::MoveRollout { distribution: d.to_string(), action };
            Ok((StatusCode::OK, write(plane, cmd).await?))
        }
        _ => Err(EvError::new(
            EvCode::UnknownOperation,
            format!("No edgesplit operation is {} {PREFIX}{}", call.method, call.segments.join("/")),
        )
        .into()),
    }
}

/// The optional `{"reason": "..."}` of pause and abort (an empty body is none).
fn reason(body: &[u8]) -> Result<Option<String>, Failure> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        reason: Option<String>,
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| invalid("body", format!("does not read: {e}")))?;
    Ok(b.reason)
}

/// Runs a command off the async workers (it writes to the store) and encodes the rollout it leaves.
async fn write(plane: &Arc<Plane>, cmd: Command) -> Result<Value, Failure> {
    let p = plane.clone();
    let written = tokio::task::spawn_blocking(move || p.execute(cmd))
        .await
        .map_err(|_| EvError::new(EvCode::InternalServer, "The write was interrupted."))??;
    match written {
        Outcome::Rollout(r) => Ok(encode(plane, &r)),
        _ => Err(EvError::new(EvCode::InternalServer, "The write answered no rollout.").into()),
    }
}

/// A rollout as the API shows it.
fn encode(plane: &Plane, r: &Rollout) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    let figures = plane
        .metrics
        .rollout_figures(&r.distribution)
        .filter(|f| r.state.is_active() && f.rollout_id == r.id && f.step == r.step);
    if let Value::Object(m) = &mut v {
        m.insert("step".into(), json!(r.step + 1));
        m.insert("steps".into(), json!(r.spec.steps.len()));
        m.insert("weight".into(), json!(r.weight()));
        m.insert("guards".into(), serde_json::to_value(figures).unwrap_or_default());
    }
    v
}
