//! Evidently's restJson1 API (2021-02-01), as boto3's `evidently` client calls it: routing on decoded
//! path segments, each write decoded (`evidently::input`) into a typed [`Command`] that the plane runs
//! (committed to the store before the answer), and the result encoded. One error type with the wire
//! shape of spec 1.3 (`X-Amzn-ErrorType` header and a `__type` body), and one exhaustive map from the
//! domain's errors to it (`from_domain`).

mod evaluate;
mod events;
mod experiments;
mod features;
mod launches;
mod projects;
mod results;
mod segments;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::domain::error::{DomainError, QuotaScope};
use crate::evidently::arn::Arns;
pub use crate::evidently::errors::EvCode;
use crate::evidently::input::{self, project_ref, segment_ref};
use crate::evidently::model::Resource;
use crate::limits::evidently as aws;
use crate::limits::{Range, Text, Violation};
use crate::plane::command::{Command, Outcome};
use crate::plane::{ControlState, ExecuteError, Plane};
use crate::store::StoreError;

/// An Evidently error: its code, message and the shape's modelled fields.
#[derive(Debug, Clone, PartialEq)]
pub struct EvError {
    pub code: EvCode,
    pub message: String,
    pub fields: serde_json::Map<String, Value>,
}

/// Why a call failed: the wire's own errors, the domain's (worded with this account's ARNs when
/// answered), or the store's.
#[derive(Debug)]
pub enum Failure {
    Wire(EvError),
    Domain(DomainError),
    Store(StoreError),
}

pub(crate) type EvResult<T> = Result<T, Failure>;

impl From<EvError> for Failure {
    fn from(e: EvError) -> Failure {
        Failure::Wire(e)
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Failure {
        Failure::Domain(e)
    }
}

impl From<Violation> for Failure {
    fn from(v: Violation) -> Failure {
        Failure::Domain(DomainError::Constraint(v))
    }
}

impl From<ExecuteError> for Failure {
    fn from(e: ExecuteError) -> Failure {
        match e {
            ExecuteError::Domain(e) => Failure::Domain(e),
            ExecuteError::Store(e) => Failure::Store(e),
        }
    }
}

impl Failure {
    /// The error as answered.
    pub(crate) fn into_error(self, arns: &Arns) -> EvError {
        match self {
            Failure::Wire(e) => e,
            Failure::Domain(e) => from_domain(arns, e),
            Failure::Store(e) => store_failed(e),
        }
    }
}

/// The one map from the domain's errors to Evidently's, with Evidently's messages. No catch-all arm: a
/// new domain error does not compile until it is mapped here.
pub(crate) fn from_domain(arns: &Arns, e: DomainError) -> EvError {
    match e {
        DomainError::NotFound(id) => {
            let (kind, arn) = (id.kind(), arns.of(&id));
            not_found(kind.name(), &arn, format!("{} does not exist with arn '{arn}'", kind.title()))
        }
        DomainError::Exists(id) => {
            let (kind, arn) = (id.kind(), arns.of(&id));
            conflict(kind.name(), &arn, format!("{} with arn '{arn}' already exists.", kind.title()))
        }
        DomainError::Conflict { resource, message } => conflict(resource.kind().name(), &arns.of(&resource), message),
        DomainError::Invalid { field, message } => invalid(&field, message),
        DomainError::Constraint(v) => v.into(),
        DomainError::Quota { kind, scope, limit } => {
            let kinds = kind.plural();
            let message = match scope {
                QuotaScope::Account => format!("You have reached the maximum of {limit} {kinds}."),
                QuotaScope::Project => format!("A project holds at most {limit} {kinds}."),
                QuotaScope::Running => format!("A project runs at most {limit} {kinds} at a time."),
            };
            quota(kind.name(), message)
        }
        // CloudFront's policies only; should one reach this API, it conflicts with what is there.
        e @ (DomainError::StagingInUse { .. }
        | DomainError::PolicyInUse { .. }
        | DomainError::VersionMissing
        | DomainError::VersionMismatch) => EvError::new(EvCode::Conflict, e.to_string()),
    }
}

impl EvError {
    pub fn new(code: EvCode, message: impl Into<String>) -> EvError {
        EvError { code, message: message.into(), fields: serde_json::Map::new() }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> EvError {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

/// `ValidationException` for one field (`reason: fieldValidationFailed`).
pub fn invalid(field: &str, message: impl Into<String>) -> EvError {
    let message = message.into();
    EvError::new(EvCode::Validation, format!("{field}: {message}"))
        .with("reason", "fieldValidationFailed")
        .with("fieldList", json!([{ "name": field, "message": message }]))
}

/// A member that breaks its shape's constraint in the model (`crate::limits`): `ValidationException`
/// with AWS's message, `Value 'x' at 'name' failed to satisfy constraint: Member must ...`.
impl From<Violation> for EvError {
    fn from(v: Violation) -> EvError {
        let field = json!([{ "name": v.member, "message": v.requirement() }]);
        EvError::new(EvCode::Validation, v.to_string()).with("reason", "fieldValidationFailed").with("fieldList", field)
    }
}

/// `AccessDeniedException` (403): the request's signature or credentials were refused.
pub(crate) fn access_denied(message: impl Into<String>) -> EvError {
    EvError::new(EvCode::AccessDenied, message)
}

/// `ValidationException` for a body that is not the JSON the operation takes (`reason: cannotParse`).
pub(crate) fn cannot_parse(message: impl Into<String>) -> EvError {
    EvError::new(EvCode::Validation, message).with("reason", "cannotParse")
}

pub(crate) fn not_found(resource_type: &str, arn: &str, message: String) -> EvError {
    EvError::new(EvCode::ResourceNotFound, message).with("resourceId", arn).with("resourceType", resource_type)
}

pub fn conflict(resource_type: &str, arn: &str, message: impl Into<String>) -> EvError {
    EvError::new(EvCode::Conflict, message).with("resourceId", arn).with("resourceType", resource_type)
}

pub fn quota(resource_type: &str, message: impl Into<String>) -> EvError {
    EvError::new(EvCode::ServiceQuotaExceeded, message)
        .with("resourceType", resource_type)
        .with("serviceCode", "evidently")
}

fn store_failed(e: StoreError) -> EvError {
    tracing::error!(error = %e, "Store write failed");
    EvError::new(EvCode::ServiceUnavailable, "The change could not be written to the store; nothing changed.")
}

/// The parsed call, owned so that a write can take it to a blocking thread.
pub struct EvCall {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
}

impl EvCall {
    /// The body as `T`; an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> EvResult<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        serde_json::from_slice(body)
            .map_err(|e| cannot_parse(format!("The request body is not valid for this operation: {e}")).into())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn query_all<'b>(&'b self, name: &'b str) -> impl Iterator<Item = &'b str> + 'b {
        self.query.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Is this path one of Evidently's?
pub fn owns(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(first, "projects" | "segments" | "tags" | "test-segment-pattern" | "events")
}

/// Serves one Evidently call; never fails.
pub async fn handle(plane: &Arc<Plane>, call: EvCall) -> Response<Full<Bytes>> {
    let arns = plane.snapshot().evidently.arns.clone();
    match route(plane, &arns, call).await {
        Ok(v) => with_request_id(json_response(StatusCode::OK, &v)),
        Err(e) => error_response(&e.into_error(&arns)),
    }
}

/// The error shape botocore resolves: `X-Amzn-ErrorType` plus `__type`, `message` and the modelled fields.
pub fn error_response(e: &EvError) -> Response<Full<Bytes>> {
    let mut body = e.fields.clone();
    body.insert("__type".into(), Value::String(e.code.name().into()));
    body.insert("message".into(), Value::String(e.message.clone()));
    let mut r = json_response(e.status(), &Value::Object(body));
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(e.code.name()));
    with_request_id(r)
}

fn with_request_id(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    if let Ok(v) = HeaderValue::from_str(&crate::admin::request_id()) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn route(plane: &Arc<Plane>, arns: &Arns, call: EvCall) -> EvResult<Value> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let m = call.method.clone();
    let project = |p: &str| project_ref(arns, p);
    let named = |shape: &Text, field: &str, v: &str| -> EvResult<String> {
        shape.check(field, v)?;
        Ok(v.to_string())
    };
    match (&m, segs.as_slice()) {
        (&Method::POST, ["projects"]) => {
            let cmd = Command::CreateProject(call.json::<input::ProjectBody>()?.decode()?);
            write(plane, cmd, projects::answer).await
        }
        (&Method::GET, ["projects"]) => projects::list(&plane.lock(), &call),
        (&Method::GET, ["projects", p]) => projects::get(&plane.lock(), &project(p)?),
        (&Method::PATCH, ["projects", p]) => {
            let project = project(p)?;
            let patch = call.json::<input::ProjectPatchBody>()?.decode()?;
            write(plane, Command::UpdateProject { project, patch }, projects::answer).await
        }
        (&Method::PATCH, ["projects", p, "data-delivery"]) => {
            let project = project(p)?;
            let data_delivery = call.json::<input::DataDeliveryBody>()?.decode()?;
            write(plane, Command::SetDataDelivery { project, data_delivery }, projects::answer).await
        }
        (&Method::DELETE, ["projects", p]) => {
            write(plane, Command::DeleteProject { project: project(p)? }, empty).await
        }
        (&Method::POST, ["projects", p, "features"]) => {
            let project = project(p)?;
            let feature = call.json::<input::FeatureBody>()?.decode()?;
            write(plane, Command::CreateFeature { project, feature }, features::answer).await
        }
        (&Method::GET, ["projects", p, "features"]) => features::list(&plane.lock(), &project(p)?, &call),
        (&Method::GET, ["projects", p, "features", f]) => {
            features::get(&plane.lock(), &project(p)?, &named(&aws::FEATURE_NAME, "feature", f)?)
        }
        (&Method::PATCH, ["projects", p, "features", f]) => {
            let (project, feature) = (project(p)?, named(&aws::FEATURE_NAME, "feature", f)?);
            let patch = call.json::<input::FeaturePatchBody>()?.decode()?;
            write(plane, Command::UpdateFeature { project, feature, patch }, features::answer).await
        }
        (&Method::DELETE, ["projects", p, "features", f]) => {
            let (project, feature) = (project(p)?, named(&aws::FEATURE_NAME, "feature", f)?);
            write(plane, Command::DeleteFeature { project, feature }, empty).await
        }
        (&Method::POST, ["projects", p, "evaluations", f]) => evaluate::evaluate(plane, p, f, &call),
        (&Method::POST, ["projects", p, "evaluations"]) => evaluate::batch(plane, p, &call),
        (&Method::POST, ["projects", p, "launches"]) => {
            let project = project(p)?;
            let launch = call.json::<input::LaunchBody>()?.decode(arns)?;
            write(plane, Command::CreateLaunch { project, launch }, launches::answer).await
        }
        (&Method::GET, ["projects", p, "launches"]) => launches::list(&plane.lock(), &project(p)?, &call),
        (&Method::GET, ["projects", p, "launches", l]) => {
            launches::get(&plane.lock(), &project(p)?, &named(&aws::LAUNCH_NAME, "launch", l)?)
        }
        (&Method::PATCH, ["projects", p, "launches", l]) => {
            let (project, launch) = (project(p)?, named(&aws::LAUNCH_NAME, "launch", l)?);
            let patch = call.json::<input::LaunchPatchBody>()?.decode(arns)?;
            write(plane, Command::UpdateLaunch { project, launch, patch }, launches::answer).await
        }
        (&Method::DELETE, ["projects", p, "launches", l]) => {
            let (project, launch) = (project(p)?, named(&aws::LAUNCH_NAME, "launch", l)?);
            write(plane, Command::DeleteLaunch { project, launch }, empty).await
        }
        (&Method::POST, ["projects", p, "launches", l, "start"]) => {
            let (project, launch) = (project(p)?, named(&aws::LAUNCH_NAME, "launch", l)?);
            write(plane, Command::StartLaunch { project, launch }, launches::answer).await
        }
        (&Method::POST, ["projects", p, "launches", l, "cancel"]) => {
            let (project, launch) = (project(p)?, named(&aws::LAUNCH_NAME, "launch", l)?);
            let stop = call.json::<input::StopBody>()?.decode(&aws::LAUNCH_STOP_DESIRED_STATE)?;
            write(plane, Command::StopLaunch { project, launch, stop }, ended).await
        }
        (&Method::POST, ["projects", p, "experiments"]) => {
            let project = project(p)?;
            let experiment = call.json::<input::ExperimentBody>()?.decode(arns)?;
            write(plane, Command::CreateExperiment { project, experiment }, experiments::answer).await
        }
        (&Method::GET, ["projects", p, "experiments"]) => experiments::list(&plane.lock(), &project(p)?, &call),
        (&Method::GET, ["projects", p, "experiments", x]) => {
            experiments::get(&plane.lock(), &project(p)?, &named(&aws::EXPERIMENT_NAME, "experiment", x)?)
        }
        (&Method::PATCH, ["projects", p, "experiments", x]) => {
            let (project, experiment) = (project(p)?, named(&aws::EXPERIMENT_NAME, "experiment", x)?);
            let patch = call.json::<input::ExperimentPatchBody>()?.decode(arns)?;
            write(plane, Command::UpdateExperiment { project, experiment, patch }, experiments::answer).await
        }
        (&Method::DELETE, ["projects", p, "experiments", x]) => {
            let (project, experiment) = (project(p)?, named(&aws::EXPERIMENT_NAME, "experiment", x)?);
            write(plane, Command::DeleteExperiment { project, experiment }, empty).await
        }
        (&Method::POST, ["projects", p, "experiments", x, "start"]) => {
            let (project, experiment) = (project(p)?, named(&aws::EXPERIMENT_NAME, "experiment", x)?);
            let analysis_complete_time = call.json::<input::StartBody>()?.decode()?;
            write(plane, Command::StartExperiment { project, experiment, analysis_complete_time }, started).await
        }
        (&Method::POST, ["projects", p, "experiments", x, "cancel"]) => {
            let (project, experiment) = (project(p)?, named(&aws::EXPERIMENT_NAME, "experiment", x)?);
            let stop = call.json::<input::StopBody>()?.decode(&aws::EXPERIMENT_STOP_DESIRED_STATE)?;
            write(plane, Command::StopExperiment { project, experiment, stop }, ended).await
        }
        (&Method::POST, ["projects", p, "experiments", e, "results"]) => {
            let (p, e) = (project(p)?, named(&aws::EXPERIMENT_NAME, "experiment", e)?);
            unlocked(plane, move |pl| results::get(pl, &p, &e, &call)).await
        }
        (&Method::POST, ["events", "projects", p]) => {
            let (p, arns) = (project(p)?, arns.clone());
            unlocked(plane, move |pl| events::put(pl, &arns, &p, &call)).await
        }
        (&Method::POST, ["segments"]) => {
            let segment = call.json::<input::SegmentBody>()?.decode()?;
            write(plane, Command::CreateSegment(segment), segments::answer).await
        }
        (&Method::GET, ["segments"]) => segments::list(&plane.lock(), &call),
        (&Method::GET, ["segments", s]) => segments::get(&plane.lock(), &segment_ref(arns, "segment", s)?),
        (&Method::DELETE, ["segments", s]) => {
            write(plane, Command::DeleteSegment { segment: segment_ref(arns, "segment", s)? }, empty).await
        }
        (&Method::GET, ["segments", s, "references"]) => {
            segments::references(&plane.lock(), &segment_ref(arns, "segment", s)?, &call)
        }
        (&Method::POST, ["test-segment-pattern"]) => segments::test_pattern(&call),
        (&Method::GET, ["tags", arn]) => {
            let resource = input::tagged(arns, arn)?;
            let r = crate::plane::evidently::resource(&plane.lock().evidently, &resource)?;
            Ok(json!({ "tags": tags_of(&r) }))
        }
        (&Method::POST, ["tags", arn]) => {
            let resource = input::tagged(arns, arn)?;
            let add = call.json::<TagBody>()?.tags.ok_or_else(|| invalid("tags", "is required"))?;
            input::check_tags(&add)?;
            write(plane, Command::Retag { resource, add, remove: Vec::new() }, empty).await
        }
        (&Method::DELETE, ["tags", arn]) => {
            let resource = input::tagged(arns, arn)?;
            let remove: Vec<String> = call.query_all("tagKeys").map(str::to_string).collect();
            input::check_tag_keys(&remove)?;
            write(plane, Command::Retag { resource, add: Default::default(), remove }, empty).await
        }
        _ => Err(EvError::new(
            EvCode::UnknownOperation,
            format!("No Evidently operation is {m} {}.", call.segments.join("/")),
        )
        .with("reason", "unknownOperation")
        .into()),
    }
}

/// Runs a write off the async workers: the command through [`Plane::execute_then`], its answer encoded
/// from the state it left, under the same lock.
async fn write(plane: &Arc<Plane>, cmd: Command, encode: fn(&ControlState, Outcome) -> Value) -> EvResult<Value> {
    let plane = plane.clone();
    tokio::task::spawn_blocking(move || plane.execute_then(cmd, encode).map_err(Failure::from))
        .await
        .unwrap_or_else(|_| Err(EvError::new(EvCode::InternalServer, "The write was interrupted.").into()))
}

/// Runs a call off the async workers, without the plane's lock: for calls that wait or compute
/// (PutProjectEvents, GetExperimentResults), which take the lock only for what they read.
async fn unlocked<F>(plane: &Arc<Plane>, f: F) -> EvResult<Value>
where
    F: FnOnce(&Plane) -> EvResult<Value> + Send + 'static,
{
    let plane = plane.clone();
    tokio::task::spawn_blocking(move || f(&plane))
        .await
        .unwrap_or_else(|_| Err(EvError::new(EvCode::InternalServer, "The call was interrupted.").into()))
}

/// The answer of a delete or a tagging call.
fn empty(_: &ControlState, _: Outcome) -> Value {
    json!({})
}

/// The resource a write answers with.
fn written(outcome: Outcome) -> Option<Resource> {
    match outcome {
        Outcome::Resource(r) => Some(r),
        Outcome::Policy(_) | Outcome::Rollout(_) | Outcome::Deleted => None,
    }
}

/// StopLaunch's and StopExperiment's answer.
fn ended(_: &ControlState, outcome: Outcome) -> Value {
    let t = match written(outcome) {
        Some(Resource::Launch(l)) => l.ended_time,
        Some(Resource::Experiment(x)) => x.ended_time,
        _ => None,
    };
    json!({ "endedTime": t })
}

/// StartExperiment's answer.
fn started(_: &ControlState, outcome: Outcome) -> Value {
    let t = match written(outcome) {
        Some(Resource::Experiment(x)) => x.started_time,
        _ => None,
    };
    json!({ "startedTime": t })
}

/// This account's ARNs, for answers.
fn arns(st: &ControlState) -> Arns {
    Arns::new(&st.config.region, &st.config.account_id)
}

/// One page of a sorted listing: `maxResults` (the operation's shape, e.g. `MaxProjects`; `default` when
/// absent) after `nextToken`.
pub fn page<'a, T>(
    call: &EvCall,
    items: Vec<(String, &'a T)>,
    max_results: &Range<i64>,
    default: usize,
) -> EvResult<(Vec<&'a T>, Option<String>)> {
    let limit = match call.query("maxResults") {
        None => default,
        Some(v) => {
            let n = v.parse::<i64>().map_err(|_| invalid("maxResults", format!("`{v}` is not a whole number")))?;
            max_results.check("maxResults", n)?;
            // A page holds at least one item, whatever a model says.
            usize::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| invalid("maxResults", "must be at least 1"))?
        }
    };
    let after = call.query("nextToken");
    if let Some(t) = after {
        aws::NEXT_TOKEN.check("nextToken", t)?;
    }
    let rest: Vec<(String, &T)> = items.into_iter().filter(|(k, _)| after.is_none_or(|a| k.as_str() > a)).collect();
    let next = (rest.len() > limit).then(|| rest[limit - 1].0.clone());
    Ok((rest.into_iter().take(limit).map(|(_, v)| v).collect(), next))
}

/// A list answer: `{key: items}` plus `nextToken` when more remain.
pub(crate) fn listing(key: &str, items: impl serde::Serialize, next: Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(key.to_string(), serde_json::to_value(items).unwrap_or(Value::Null));
    if let Some(n) = next {
        out.insert("nextToken".into(), Value::String(n));
    }
    Value::Object(out)
}

/// The `status` filter of ListLaunches (`LaunchStatus`) and ListExperiments (`ExperimentStatus`).
fn status_filter<'c>(call: &'c EvCall, statuses: &Text) -> EvResult<Option<&'c str>> {
    let status = call.query("status");
    input::check_opt(statuses, "status", status)?;
    Ok(status)
}

fn tags_of(r: &Resource) -> &crate::evidently::model::Tags {
    match r {
        Resource::Project(p) => &p.tags,
        Resource::Feature(f) => &f.tags,
        Resource::Launch(l) => &l.tags,
        Resource::Experiment(x) => &x.tags,
        Resource::Segment(s) => &s.tags,
    }
}

#[derive(serde::Deserialize)]
struct TagBody {
    tags: Option<crate::evidently::model::Tags>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::{ResourceId, ResourceKind};

    #[test]
    fn every_domain_error_gets_its_code_and_evidentlys_words() {
        let arns = Arns::new("us-east-1", "000000000000");
        let feature = ResourceId::Feature("p".into(), "f".into());
        let cases = [
            (
                DomainError::NotFound(feature.clone()),
                "Feature does not exist with arn 'arn:aws:evidently:us-east-1:000000000000:project/p/feature/f'",
            ),
            (
                DomainError::Exists(ResourceId::Segment("s".into())),
                "Segment with arn 'arn:aws:evidently:us-east-1:000000000000:segment/s' already exists.",
            ),
            (DomainError::Conflict { resource: feature, message: "busy".into() }, "busy"),
            (DomainError::invalid("name", "is required"), "name: is required"),
            (
                DomainError::Quota { kind: ResourceKind::Launch, scope: QuotaScope::Running, limit: 5 },
                "A project runs at most 5 launches at a time.",
            ),
            (
                DomainError::Quota { kind: ResourceKind::Project, scope: QuotaScope::Account, limit: 50 },
                "You have reached the maximum of 50 projects.",
            ),
            (DomainError::VersionMismatch, "the version read (If-Match) is not the current one"),
        ];
        for (e, message) in cases {
            let code = EvCode::of(&e);
            let out = from_domain(&arns, e);
            assert_eq!((out.code, out.message.as_str()), (code, message));
        }
        let e = from_domain(&arns, DomainError::NotFound(ResourceId::Project("p".into())));
        assert_eq!((e.status(), e.fields["resourceType"].as_str()), (StatusCode::NOT_FOUND, Some("project")));
    }
}
