//! Evidently's restJson1 API (2021-02-01), as boto3's `evidently` client calls it. Routing on decoded
//! path segments; one error type with the wire shape of spec 1.3 (`X-Amzn-ErrorType` header and a
//! `__type` body); every write committed to the store before the answer.

pub mod declare;
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

use crate::config::Config;
use crate::limits::evidently as aws;
use crate::limits::{Range, Text, Violation};
use crate::plane::{ControlState, Plane};

/// Every error shape Evidently's model declares; the one place a status is picked (a test holds both
/// to the model's `httpStatusCode`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvCode {
    Validation,
    AccessDenied,
    ResourceNotFound,
    Conflict,
    ServiceQuotaExceeded,
    Throttling,
    InternalServer,
    ServiceUnavailable,
    /// No operation has this method and path: a `ValidationException` (as edgesplit has always
    /// answered, and the hostile-path tests hold), with the 404 that says what happened.
    UnknownOperation,
    /// A body past the admin listener's 1 MiB: a `ValidationException`, answered 413 as AWS's front
    /// door answers an oversized request.
    TooLarge,
}

impl EvCode {
    pub const ALL: [EvCode; 10] = [
        EvCode::Validation,
        EvCode::AccessDenied,
        EvCode::ResourceNotFound,
        EvCode::Conflict,
        EvCode::ServiceQuotaExceeded,
        EvCode::Throttling,
        EvCode::InternalServer,
        EvCode::ServiceUnavailable,
        EvCode::UnknownOperation,
        EvCode::TooLarge,
    ];

    /// The shape's name: `X-Amzn-ErrorType` and `__type`.
    pub fn name(self) -> &'static str {
        match self {
            EvCode::Validation | EvCode::TooLarge | EvCode::UnknownOperation => "ValidationException",
            EvCode::AccessDenied => "AccessDeniedException",
            EvCode::ResourceNotFound => "ResourceNotFoundException",
            EvCode::Conflict => "ConflictException",
            EvCode::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            EvCode::Throttling => "ThrottlingException",
            EvCode::InternalServer => "InternalServerException",
            EvCode::ServiceUnavailable => "ServiceUnavailableException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            EvCode::Validation => StatusCode::BAD_REQUEST,
            EvCode::AccessDenied => StatusCode::FORBIDDEN,
            EvCode::ResourceNotFound => StatusCode::NOT_FOUND,
            EvCode::Conflict => StatusCode::CONFLICT,
            EvCode::ServiceQuotaExceeded => StatusCode::PAYMENT_REQUIRED,
            EvCode::Throttling => StatusCode::TOO_MANY_REQUESTS,
            EvCode::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
            EvCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            EvCode::UnknownOperation => StatusCode::NOT_FOUND,
            EvCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// An Evidently error: its code, message and the shape's modelled fields.
#[derive(Debug, Clone, PartialEq)]
pub struct EvError {
    pub code: EvCode,
    pub message: String,
    pub fields: serde_json::Map<String, Value>,
}

pub type EvResult<T> = Result<T, EvError>;

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
pub fn access_denied(message: impl Into<String>) -> EvError {
    EvError::new(EvCode::AccessDenied, message)
}

/// `ValidationException` for a body that is not the JSON the operation takes (`reason: cannotParse`).
pub fn cannot_parse(message: impl Into<String>) -> EvError {
    EvError::new(EvCode::Validation, message).with("reason", "cannotParse")
}

pub fn not_found(resource_type: &str, arn: &str, message: String) -> EvError {
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

fn store_failed(e: crate::store::StoreError) -> EvError {
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
            .map_err(|e| cannot_parse(format!("The request body is not valid for this operation: {e}")))
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn query_all<'b>(&'b self, name: &'b str) -> impl Iterator<Item = &'b str> + 'b {
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
    match route(plane, call).await {
        Ok(v) => with_request_id(json_response(StatusCode::OK, &v)),
        Err(e) => error_response(&e),
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

fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn route(plane: &Arc<Plane>, call: EvCall) -> EvResult<Value> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let m = call.method.clone();
    match (&m, segs.as_slice()) {
        (&Method::POST, ["projects"]) => write(plane, move |p, st| projects::create(p, st, &call)).await,
        (&Method::GET, ["projects"]) => projects::list(&plane.lock(), &call),
        (&Method::GET, ["projects", p]) => projects::get(&plane.lock(), p),
        (&Method::PATCH, ["projects", p]) => {
            let p = p.to_string();
            write(plane, move |pl, st| projects::update(pl, st, &p, &call)).await
        }
        (&Method::PATCH, ["projects", p, "data-delivery"]) => {
            let p = p.to_string();
            write(plane, move |pl, st| projects::update_data_delivery(pl, st, &p, &call)).await
        }
        (&Method::DELETE, ["projects", p]) => {
            let p = p.to_string();
            write(plane, move |pl, st| projects::delete(pl, st, &p)).await
        }
        (&Method::POST, ["projects", p, "features"]) => {
            let p = p.to_string();
            write(plane, move |pl, st| features::create(pl, st, &p, &call)).await
        }
        (&Method::GET, ["projects", p, "features"]) => features::list(&plane.lock(), p, &call),
        (&Method::GET, ["projects", p, "features", f]) => features::get(&plane.lock(), p, f),
        (&Method::PATCH, ["projects", p, "features", f]) => {
            let (p, f) = (p.to_string(), f.to_string());
            write(plane, move |pl, st| features::update(pl, st, &p, &f, &call)).await
        }
        (&Method::DELETE, ["projects", p, "features", f]) => {
            let (p, f) = (p.to_string(), f.to_string());
            write(plane, move |pl, st| features::delete(pl, st, &p, &f)).await
        }
        (&Method::POST, ["projects", p, "evaluations", f]) => evaluate::evaluate(plane, p, f, &call),
        (&Method::POST, ["projects", p, "evaluations"]) => evaluate::batch(plane, p, &call),
        (&Method::POST, ["projects", p, "launches"]) => {
            let p = p.to_string();
            write(plane, move |pl, st| launches::create(pl, st, &p, &call)).await
        }
        (&Method::GET, ["projects", p, "launches"]) => launches::list(&plane.lock(), p, &call),
        (&Method::GET, ["projects", p, "launches", l]) => launches::get(&plane.lock(), p, l),
        (&Method::PATCH, ["projects", p, "launches", l]) => {
            let (p, l) = (p.to_string(), l.to_string());
            write(plane, move |pl, st| launches::update(pl, st, &p, &l, &call)).await
        }
        (&Method::DELETE, ["projects", p, "launches", l]) => {
            let (p, l) = (p.to_string(), l.to_string());
            write(plane, move |pl, st| launches::delete(pl, st, &p, &l)).await
        }
        (&Method::POST, ["projects", p, "launches", l, "start"]) => {
            let (p, l) = (p.to_string(), l.to_string());
            write(plane, move |pl, st| launches::start(pl, st, &p, &l)).await
        }
        (&Method::POST, ["projects", p, "launches", l, "cancel"]) => {
            let (p, l) = (p.to_string(), l.to_string());
            write(plane, move |pl, st| launches::stop(pl, st, &p, &l, &call)).await
        }
        (&Method::POST, ["projects", p, "experiments"]) => {
            let p = p.to_string();
            write(plane, move |pl, st| experiments::create(pl, st, &p, &call)).await
        }
        (&Method::GET, ["projects", p, "experiments"]) => experiments::list(&plane.lock(), p, &call),
        (&Method::GET, ["projects", p, "experiments", x]) => experiments::get(&plane.lock(), p, x),
        (&Method::PATCH, ["projects", p, "experiments", x]) => {
            let (p, x) = (p.to_string(), x.to_string());
            write(plane, move |pl, st| experiments::update(pl, st, &p, &x, &call)).await
        }
        (&Method::DELETE, ["projects", p, "experiments", x]) => {
            let (p, x) = (p.to_string(), x.to_string());
            write(plane, move |pl, st| experiments::delete(pl, st, &p, &x)).await
        }
        (&Method::POST, ["projects", p, "experiments", x, "start"]) => {
            let (p, x) = (p.to_string(), x.to_string());
            write(plane, move |pl, st| experiments::start(pl, st, &p, &x, &call)).await
        }
        (&Method::POST, ["projects", p, "experiments", x, "cancel"]) => {
            let (p, x) = (p.to_string(), x.to_string());
            write(plane, move |pl, st| experiments::stop(pl, st, &p, &x, &call)).await
        }
        (&Method::POST, ["projects", p, "experiments", e, "results"]) => {
            let (p, e) = (p.to_string(), e.to_string());
            unlocked(plane, move |pl| results::get(pl, &p, &e, &call)).await
        }
        (&Method::POST, ["events", "projects", p]) => {
            let p = p.to_string();
            unlocked(plane, move |pl| events::put(pl, &p, &call)).await
        }
        (&Method::POST, ["segments"]) => write(plane, move |pl, st| segments::create(pl, st, &call)).await,
        (&Method::GET, ["segments"]) => segments::list(&plane.lock(), &call),
        (&Method::GET, ["segments", s]) => segments::get(&plane.lock(), s),
        (&Method::DELETE, ["segments", s]) => {
            let s = s.to_string();
            write(plane, move |pl, st| segments::delete(pl, st, &s)).await
        }
        (&Method::GET, ["segments", s, "references"]) => segments::references(&plane.lock(), s, &call),
        (&Method::POST, ["test-segment-pattern"]) => segments::test_pattern(&call),
        (&Method::GET, ["tags", arn]) => tags_list(&plane.lock(), arn),
        (&Method::POST, ["tags", arn]) => {
            let arn = arn.to_string();
            write(plane, move |pl, st| tags_write(pl, st, &arn, &call, true)).await
        }
        (&Method::DELETE, ["tags", arn]) => {
            let arn = arn.to_string();
            write(plane, move |pl, st| tags_write(pl, st, &arn, &call, false)).await
        }
        _ => Err(EvError::new(
            EvCode::UnknownOperation,
            format!("No Evidently operation is {m} {}.", call.segments.join("/")),
        )
        .with("reason", "unknownOperation")),
    }
}

/// Runs a write off the async workers, under the plane's lock.
async fn write<F>(plane: &Arc<Plane>, f: F) -> EvResult<Value>
where
    F: FnOnce(&Plane, &mut ControlState) -> EvResult<Value> + Send + 'static,
{
    let plane = plane.clone();
    tokio::task::spawn_blocking(move || {
        let mut st = plane.lock();
        f(&plane, &mut st)
    })
    .await
    .unwrap_or_else(|_| Err(EvError::new(EvCode::InternalServer, "The write was interrupted.")))
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
        .unwrap_or_else(|_| Err(EvError::new(EvCode::InternalServer, "The call was interrupted.")))
}

/// Commits resource changes; a store failure is a 503 and nothing changed.
pub fn commit(
    plane: &Plane,
    st: &mut ControlState,
    put: Vec<crate::evidently::model::Resource>,
    delete: Vec<String>,
) -> EvResult<()> {
    if st.dry_run {
        for k in &delete {
            st.evidently.remove(k);
        }
        for r in put {
            st.evidently.put(r);
        }
        return Ok(());
    }
    plane.write_evidently(st, put, delete).map_err(store_failed)
}

// === shared rules and helpers ===

pub fn now() -> f64 {
    crate::domain::clock::now_ms() as f64 / 1000.0
}

/// ARNs (D7: configured account and region).
pub struct Arns<'a>(pub &'a Config);

impl Arns<'_> {
    fn base(&self) -> String {
        format!("arn:aws:evidently:{}:{}", self.0.region, self.0.account_id)
    }
    pub fn project(&self, p: &str) -> String {
        format!("{}:project/{p}", self.base())
    }
    pub fn feature(&self, p: &str, f: &str) -> String {
        format!("{}:project/{p}/feature/{f}", self.base())
    }
    pub fn launch(&self, p: &str, l: &str) -> String {
        format!("{}:project/{p}/launch/{l}", self.base())
    }
    pub fn experiment(&self, p: &str, e: &str) -> String {
        format!("{}:project/{p}/experiment/{e}", self.base())
    }
    pub fn segment(&self, s: &str) -> String {
        format!("{}:segment/{s}", self.base())
    }
}

/// An optional string member, checked against its shape when present.
pub fn check_opt(shape: &Text, field: &str, v: Option<&str>) -> EvResult<()> {
    Ok(v.map_or(Ok(()), |v| shape.check(field, v))?)
}

/// Most tags a resource holds. The model bounds no `TagMap` (only UntagResource's `TagKeyList`, 50);
/// this is AWS's documented limit of 50 tags per resource, which edgesplit enforces on purpose.
const MAX_TAGS: usize = 50;

/// Tags: each key a `TagKey` and each value a `TagValue` (the model's), at most [`MAX_TAGS`] of them.
pub fn check_tags(tags: &crate::evidently::model::Tags) -> EvResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("a resource holds at most {MAX_TAGS} tags")));
    }
    for (k, v) in tags {
        aws::TAG_KEY.check_key("tags", k)?;
        aws::TAG_VALUE.check_map_value("tags", v)?;
    }
    Ok(())
}

/// The name in a reference to a `kind` (`project`, `segment`): the reference itself, or the name in an
/// ARN of this account and region (`arn_base` is `arn:aws:evidently:{region}:{account}`). An ARN of
/// another account or region names a resource that is not here (404), never the local one of that
/// name; anything else that starts with `arn:` is malformed (400). Callers check `r` against its
/// `ProjectRef` or `SegmentRef` shape first, so an ARN's name is already of the name's characters.
fn named<'r>(arn_base: &str, field: &str, kind: &str, r: &'r str) -> EvResult<&'r str> {
    if !r.starts_with("arn:") {
        return Ok(r);
    }
    let resource = |arn: &'r str| arn.strip_prefix(kind).and_then(|rest| rest.strip_prefix('/'));
    if let Some(name) = r.strip_prefix(arn_base).and_then(|rest| rest.strip_prefix(':')).and_then(resource) {
        return Ok(name);
    }
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    match (parts.as_slice(), parts.get(5).copied().and_then(resource)) {
        ([_, _, "evidently", _, _, _], Some(name)) if !name.is_empty() => {
            let mut title = kind.to_string();
            title[..1].make_ascii_uppercase();
            Err(not_found(kind, r, format!("{title} does not exist with arn '{r}'")))
        }
        _ => Err(invalid(field, format!("is not a {kind} name or ARN"))),
    }
}

/// A `{project}` reference: a name or a project ARN of this account and region.
pub fn project_ref(arn_base: &str, r: &str) -> EvResult<String> {
    aws::PROJECT_REF.check("project", r)?;
    let name = named(arn_base, "project", "project", r)?;
    aws::PROJECT_NAME.check("project", name)?;
    Ok(name.to_string())
}

/// A segment reference: a name or a segment ARN of this account and region.
pub fn segment_ref(arn_base: &str, field: &str, r: &str) -> EvResult<String> {
    aws::SEGMENT_REF.check(field, r)?;
    let name = named(arn_base, field, "segment", r)?;
    aws::SEGMENT_NAME.check(field, name)?;
    Ok(name.to_string())
}

/// A new resource in a project: 409 if `name` is taken, 402 once the project holds `max` of its kind.
/// `kind` is the resource type (`feature`, `launch`, `experiment`), `kinds` its plural.
pub fn check_new_in_project<T>(
    map: &std::collections::BTreeMap<(String, String), T>,
    (kind, kinds): (&str, &str),
    arn: &str,
    project: &str,
    name: &str,
    max: usize,
) -> EvResult<()> {
    if map.contains_key(&(project.to_string(), name.to_string())) {
        let mut title = kind.to_string();
        title[..1].make_ascii_uppercase();
        return Err(conflict(kind, arn, format!("{title} with arn '{arn}' already exists.")));
    }
    if map.keys().filter(|k| k.0 == project).count() >= max {
        return Err(quota(kind, format!("A project holds at most {max} {kinds}.")));
    }
    Ok(())
}

/// The project `r` names, or 404.
pub fn find_project<'a>(st: &'a ControlState, r: &str) -> EvResult<&'a crate::evidently::model::Project> {
    let name = project_ref(&Arns(&st.config).base(), r)?;
    st.evidently.projects.get(&name).ok_or_else(|| {
        let arn = Arns(&st.config).project(&name);
        not_found("project", &arn, format!("Project does not exist with arn '{arn}'"))
    })
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
pub fn listing(key: &str, items: impl serde::Serialize, next: Option<String>) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(key.to_string(), serde_json::to_value(items).unwrap_or(Value::Null));
    if let Some(n) = next {
        out.insert("nextToken".into(), Value::String(n));
    }
    Value::Object(out)
}

/// Resolves a taggable ARN to its store key.
fn arn_key(st: &ControlState, arn: &str) -> EvResult<String> {
    let prefix = format!("arn:aws:evidently:{}:{}:", st.config.region, st.config.account_id);
    let missing = || not_found("resource", arn, format!("Resource does not exist with arn '{arn}'"));
    aws::ARN.check("resourceArn", arn)?;
    let Some(rest) = arn.strip_prefix(&prefix) else { return Err(missing()) };
    let parts: Vec<&str> = rest.split('/').collect();
    let key = match parts.as_slice() {
        ["project", p] if st.evidently.projects.contains_key(*p) => format!("project/{p}"),
        ["project", p, kind @ ("feature" | "launch" | "experiment"), n] => {
            let k = (p.to_string(), n.to_string());
            let exists = match *kind {
                "feature" => st.evidently.features.contains_key(&k),
                "launch" => st.evidently.launches.contains_key(&k),
                _ => st.evidently.experiments.contains_key(&k),
            };
            if !exists {
                return Err(missing());
            }
            format!("{kind}/{p}/{n}")
        }
        ["segment", s] if st.evidently.segments.contains_key(*s) => format!("segment/{s}"),
        _ => return Err(missing()),
    };
    Ok(key)
}

fn tags_of(st: &ControlState, key: &str) -> Option<crate::evidently::model::Tags> {
    let parts: Vec<&str> = key.split('/').collect();
    let pair = |i: usize| {
        (parts.get(i).copied().unwrap_or("").to_string(), parts.get(i + 1).copied().unwrap_or("").to_string())
    };
    let e = &st.evidently;
    match parts.first().copied()? {
        "project" => e.projects.get(*parts.get(1)?).map(|p| p.tags.clone()),
        "feature" => e.features.get(&pair(1)).map(|f| f.tags.clone()),
        "launch" => e.launches.get(&pair(1)).map(|l| l.tags.clone()),
        "experiment" => e.experiments.get(&pair(1)).map(|x| x.tags.clone()),
        "segment" => e.segments.get(*parts.get(1)?).map(|s| s.tags.clone()),
        _ => None,
    }
}

fn tags_list(st: &ControlState, arn: &str) -> EvResult<Value> {
    let key = arn_key(st, arn)?;
    Ok(json!({ "tags": tags_of(st, &key).unwrap_or_default() }))
}

#[derive(serde::Deserialize)]
struct TagBody {
    tags: Option<crate::evidently::model::Tags>,
}

/// TagResource (merge) and UntagResource (`?tagKeys=`).
fn tags_write(plane: &Plane, st: &mut ControlState, arn: &str, call: &EvCall, add: bool) -> EvResult<Value> {
    use crate::evidently::model::Resource;
    let key = arn_key(st, arn)?;
    let mut tags = tags_of(st, &key).unwrap_or_default();
    if add {
        let body: TagBody = call.json()?;
        let new = body.tags.ok_or_else(|| invalid("tags", "is required"))?;
        tags.extend(new);
    } else {
        let keys: Vec<&str> = call.query_all("tagKeys").collect();
        aws::TAG_KEY_LIST.check("tagKeys", keys.len())?;
        for k in keys {
            aws::TAG_KEY.check("tagKeys", k)?;
            tags.remove(k);
        }
    }
    check_tags(&tags)?;
    let parts: Vec<String> = key.split('/').map(str::to_string).collect();
    let pair = (parts.get(1).cloned().unwrap_or_default(), parts.get(2).cloned().unwrap_or_default());
    let e = &st.evidently;
    let resource = match parts.first().map(String::as_str) {
        Some("project") => e.projects.get(&pair.0).cloned().map(|mut p| {
            p.tags = tags;
            Resource::Project(p)
        }),
        Some("feature") => e.features.get(&pair).cloned().map(|mut f| {
            f.tags = tags;
            Resource::Feature(f)
        }),
        Some("launch") => e.launches.get(&pair).cloned().map(|mut l| {
            l.tags = tags;
            Resource::Launch(l)
        }),
        Some("experiment") => e.experiments.get(&pair).cloned().map(|mut x| {
            x.tags = tags;
            Resource::Experiment(x)
        }),
        Some("segment") => e.segments.get(&pair.0).cloned().map(|mut s| {
            s.tags = tags;
            Resource::Segment(s)
        }),
        _ => None,
    };
    let resource =
        resource.ok_or_else(|| not_found("resource", arn, format!("Resource does not exist with arn '{arn}'")))?;
    commit(plane, st, vec![resource], Vec::new())?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "arn:aws:evidently:us-east-1:000000000000";

    #[test]
    fn error_codes_are_the_models_shapes_with_their_statuses() {
        let model: Value =
            serde_json::from_str(include_str!("../../../models/evidently/2021-02-01/service-2.json")).unwrap();
        let shapes = model["shapes"].as_object().unwrap();
        let declared: std::collections::BTreeMap<&str, u64> = shapes
            .iter()
            .filter(|(_, s)| s.get("exception").is_some())
            .map(|(n, s)| (n.as_str(), s["error"]["httpStatusCode"].as_u64().unwrap()))
            .collect();
        let ours: std::collections::BTreeMap<&str, u64> = EvCode::ALL
            .iter()
            .filter(|c| !matches!(c, EvCode::UnknownOperation | EvCode::TooLarge))
            .map(|c| (c.name(), u64::from(c.status().as_u16())))
            .collect();
        assert_eq!(ours, declared);
    }

    #[test]
    fn references_by_name_or_by_an_arn_of_this_account_only() {
        assert_eq!(project_ref(BASE, "shop").unwrap(), "shop");
        assert_eq!(project_ref(BASE, &format!("{BASE}:project/shop")).unwrap(), "shop");
        assert_eq!(segment_ref(BASE, "segment", &format!("{BASE}:segment/s")).unwrap(), "s");
        // Regression: another account's or region's ARN named the local project of the same name.
        let kind = |r: &str| project_ref(BASE, r).unwrap_err().code.name();
        assert_eq!(kind("arn:aws:evidently:us-east-1:999999999999:project/shop"), "ResourceNotFoundException");
        assert_eq!(kind("arn:aws:evidently:eu-west-1:000000000000:project/shop"), "ResourceNotFoundException");
        let e = segment_ref(BASE, "segment", "arn:aws:evidently:us-east-1:999999999999:segment/s").unwrap_err();
        assert_eq!(
            (e.status(), e.message.as_str()),
            (
                StatusCode::NOT_FOUND,
                "Segment does not exist with arn 'arn:aws:evidently:us-east-1:999999999999:segment/s'"
            )
        );
        // Malformed, or traversal in the name: 400.
        for bad in [
            "arn:aws:evidently:us-east-1:000000000000:segment/x:project/shop",
            "arn:aws:evidently:us-east-1:000000000000:project/shop/feature/f",
            "arn:aws:evidently:us-east-1:000000000000:project/shop/../other",
            "arn:aws:evidently:us-east-1:999999999999:project/shop/../other",
            "arn:aws:s3:::project/shop",
            "arn:",
            "shop/../other",
            "..%2Fother",
        ] {
            assert_eq!(kind(bad), "ValidationException", "{bad}");
        }
    }
}
