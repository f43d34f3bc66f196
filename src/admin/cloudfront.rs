//! CloudFront's continuous deployment policy API (rest-xml, 2020-05-31), as boto3's `cloudfront`
//! client calls it: Create, Get, GetConfig, Update, Delete and List, with ETag/If-Match, CloudFront's
//! error codes in the wrapped `ErrorResponse` form, and every write on disk before the answer.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

use super::xml::{self, Node, esc};
use crate::cd::model::{
    PolicyConfig, SingleHeader, SingleWeight, Stickiness, StoredPolicy, TrafficConfig, TrafficType,
};
use crate::plane::command::{Command, DomainError, Outcome, ResourceId};
use crate::plane::{ExecuteError, Plane};

pub(crate) const PREFIX: &str = "/2020-05-31/";
const NS: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";

/// Every error code the continuous deployment policy operations answer: the model's error shapes for
/// those operations (a test holds them to the model), plus the few CloudFront answers outside it. The
/// one place a status is picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfCode {
    AccessDenied,
    ContinuousDeploymentPolicyAlreadyExists,
    ContinuousDeploymentPolicyInUse,
    InconsistentQuantities,
    InvalidArgument,
    InvalidIfMatchVersion,
    NoSuchContinuousDeploymentPolicy,
    PreconditionFailed,
    StagingDistributionInUse,
    TooManyContinuousDeploymentPolicies,
    /// Not in the model: CloudFront's answer to a write with no body.
    MissingBody,
    /// Not in the model: a method the resource does not take (405) ...
    MethodNotAllowed,
    /// ... or a path edgesplit does not serve (404), both `InvalidArgument` on the wire.
    NoSuchOperation,
    /// A body past the admin listener's 1 MiB (413, `InvalidArgument`).
    TooLarge,
    /// Not in the model: the store refused the write (503).
    ServiceUnavailable,
    /// Not in the model: the write's thread died (500).
    InternalError,
}

impl CfCode {
    pub const ALL: [CfCode; 16] = [
        CfCode::AccessDenied,
        CfCode::ContinuousDeploymentPolicyAlreadyExists,
        CfCode::ContinuousDeploymentPolicyInUse,
        CfCode::InconsistentQuantities,
        CfCode::InvalidArgument,
        CfCode::InvalidIfMatchVersion,
        CfCode::NoSuchContinuousDeploymentPolicy,
        CfCode::PreconditionFailed,
        CfCode::StagingDistributionInUse,
        CfCode::TooManyContinuousDeploymentPolicies,
        CfCode::MissingBody,
        CfCode::MethodNotAllowed,
        CfCode::NoSuchOperation,
        CfCode::TooLarge,
        CfCode::ServiceUnavailable,
        CfCode::InternalError,
    ];

    /// Whether the model declares it as an error of the policy operations (the rest are CloudFront's
    /// answers outside the model).
    #[cfg(test)]
    pub(crate) fn in_model(self) -> bool {
        !matches!(
            self,
            CfCode::MissingBody
                | CfCode::MethodNotAllowed
                | CfCode::NoSuchOperation
                | CfCode::TooLarge
                | CfCode::ServiceUnavailable
                | CfCode::InternalError
        )
    }

    /// The `<Code>` on the wire.
    pub fn name(self) -> &'static str {
        match self {
            CfCode::AccessDenied => "AccessDenied",
            CfCode::ContinuousDeploymentPolicyAlreadyExists => "ContinuousDeploymentPolicyAlreadyExists",
            CfCode::ContinuousDeploymentPolicyInUse => "ContinuousDeploymentPolicyInUse",
            CfCode::InconsistentQuantities => "InconsistentQuantities",
            CfCode::InvalidArgument | CfCode::MethodNotAllowed | CfCode::NoSuchOperation | CfCode::TooLarge => {
                "InvalidArgument"
            }
            CfCode::InvalidIfMatchVersion => "InvalidIfMatchVersion",
            CfCode::NoSuchContinuousDeploymentPolicy => "NoSuchContinuousDeploymentPolicy",
            CfCode::PreconditionFailed => "PreconditionFailed",
            CfCode::StagingDistributionInUse => "StagingDistributionInUse",
            CfCode::TooManyContinuousDeploymentPolicies => "TooManyContinuousDeploymentPolicies",
            CfCode::MissingBody => "MissingBody",
            CfCode::ServiceUnavailable => "ServiceUnavailable",
            CfCode::InternalError => "InternalError",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            CfCode::AccessDenied => StatusCode::FORBIDDEN,
            CfCode::ContinuousDeploymentPolicyAlreadyExists
            | CfCode::ContinuousDeploymentPolicyInUse
            | CfCode::StagingDistributionInUse => StatusCode::CONFLICT,
            CfCode::InconsistentQuantities
            | CfCode::InvalidArgument
            | CfCode::InvalidIfMatchVersion
            | CfCode::TooManyContinuousDeploymentPolicies
            | CfCode::MissingBody => StatusCode::BAD_REQUEST,
            CfCode::NoSuchContinuousDeploymentPolicy | CfCode::NoSuchOperation => StatusCode::NOT_FOUND,
            CfCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            CfCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            CfCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            CfCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            CfCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A CloudFront error: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfError {
    pub code: CfCode,
    pub message: String,
}

impl CfError {
    pub fn new(code: CfCode, message: impl Into<String>) -> CfError {
        CfError { code, message: message.into() }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

fn err(code: CfCode, message: impl Into<String>) -> CfError {
    CfError::new(code, message)
}

fn invalid(message: impl Into<String>) -> CfError {
    err(CfCode::InvalidArgument, message)
}

/// A member that breaks its shape's constraint in the model (`crate::limits::cloudfront`).
impl From<crate::limits::Violation> for CfError {
    fn from(v: crate::limits::Violation) -> CfError {
        invalid(v.to_string())
    }
}

fn no_such(id: &str) -> CfError {
    err(CfCode::NoSuchContinuousDeploymentPolicy, format!("The continuous deployment policy {id} does not exist."))
}

type CfResult<T> = Result<T, CfError>;

/// What the router hands an operation.
pub struct CfCall<'a> {
    pub method: &'a Method,
    /// Path segments after `/2020-05-31/`, percent-decoded.
    pub segments: Vec<String>,
    pub query: Option<&'a str>,
    pub if_match: Option<String>,
    pub body: Bytes,
}

/// Serves one CloudFront call; never fails.
pub async fn handle(plane: &Arc<Plane>, call: CfCall<'_>) -> Response<Full<Bytes>> {
    let request_id = crate::admin::request_id();
    match route(plane, call).await {
        Ok(resp) => with_request_id(resp, &request_id),
        Err(e) => error_response(&e, &request_id),
    }
}

async fn route(plane: &Arc<Plane>, call: CfCall<'_>) -> CfResult<Response<Full<Bytes>>> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match (call.method.clone(), segs.as_slice()) {
        (Method::POST, ["continuous-deployment-policy"]) => {
            let config = parse_config(&call.body)?;
            let p = blocking(plane, move |plane| create(plane, config)).await?;
            let location = format!("https://cloudfront.amazonaws.com{PREFIX}continuous-deployment-policy/{}", p.id);
            let mut resp = xml_response(StatusCode::CREATED, policy_xml(&p), Some(&p.etag));
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        (Method::GET, ["continuous-deployment-policy"]) => list(plane, call.query),
        (Method::GET, ["continuous-deployment-policy", id]) => {
            let p = plane.lock().policies.get(*id).cloned().ok_or_else(|| no_such(id))?;
            Ok(xml_response(StatusCode::OK, policy_xml(&p), Some(&p.etag)))
        }
        (Method::GET, ["continuous-deployment-policy", id, "config"]) => {
            let p = plane.lock().policies.get(*id).cloned().ok_or_else(|| no_such(id))?;
            Ok(xml_response(StatusCode::OK, config_xml(&p.config, true), Some(&p.etag)))
        }
        (Method::PUT, ["continuous-deployment-policy", id]) => {
            let id = id.to_string();
            let config = parse_config(&call.body);
            let if_match = call.if_match;
            let p = blocking(plane, move |plane| update(plane, &id, if_match.as_deref(), config)).await?;
            Ok(xml_response(StatusCode::OK, policy_xml(&p), Some(&p.etag)))
        }
        (Method::DELETE, ["continuous-deployment-policy", id]) => {
            let id = id.to_string();
            let if_match = call.if_match;
            blocking(plane, move |plane| delete(plane, &id, if_match.as_deref())).await?;
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
        (_, ["continuous-deployment-policy", ..]) => {
            Err(err(CfCode::MethodNotAllowed, "That method is not supported on this resource."))
        }
        _ => Err(err(
            CfCode::NoSuchOperation,
            "edgesplit serves the continuous deployment policy operations of CloudFront only.",
        )),
    }
}

/// Runs a write off the async workers: it takes the plane's lock and waits for the disk.
async fn blocking<T: Send + 'static>(
    plane: &Arc<Plane>,
    f: impl FnOnce(&Plane) -> CfResult<T> + Send + 'static,
) -> CfResult<T> {
    let plane = plane.clone();
    tokio::task::spawn_blocking(move || f(&plane))
        .await
        .unwrap_or_else(|_| Err(err(CfCode::InternalError, "The write was interrupted.")))
}

fn store_failed(e: crate::store::StoreError) -> CfError {
    tracing::error!(error = %e, "Store write failed");
    err(CfCode::ServiceUnavailable, "The policy could not be written to the store; nothing changed.")
}

/// Creates a policy as `CreateContinuousDeploymentPolicy` does.
pub fn create(plane: &Plane, config: PolicyConfig) -> CfResult<StoredPolicy> {
    policy(plane.execute(Command::CreatePolicy { config }))
}

fn update(plane: &Plane, id: &str, if_match: Option<&str>, config: CfResult<PolicyConfig>) -> CfResult<StoredPolicy> {
    let config = match config {
        Ok(c) => c,
        // The policy and the version named come before the body, as on CloudFront.
        Err(e) => {
            crate::plane::command::current_policy(&plane.lock(), id, if_match).map_err(from_domain)?;
            return Err(e);
        }
    };
    let cmd = Command::UpdatePolicy { id: id.to_string(), if_match: if_match.map(str::to_string), config };
    policy(plane.execute(cmd))
}

fn delete(plane: &Plane, id: &str, if_match: Option<&str>) -> CfResult<()> {
    let cmd = Command::DeletePolicy { id: id.to_string(), if_match: if_match.map(str::to_string) };
    plane.execute(cmd).map(drop).map_err(from_execute)
}

fn policy(r: Result<Outcome, ExecuteError>) -> CfResult<StoredPolicy> {
    match r.map_err(from_execute)? {
        Outcome::Policy(p) => Ok(p),
        Outcome::Resource(_) | Outcome::Rollout(_) | Outcome::Deleted => {
            Err(err(CfCode::InternalError, "The write answered no policy."))
        }
    }
}

fn from_execute(e: ExecuteError) -> CfError {
    match e {
        ExecuteError::Domain(e) => from_domain(e),
        ExecuteError::Store(e) => store_failed(e),
    }
}

/// The one map from the domain's errors to CloudFront's codes, with CloudFront's messages.
fn from_domain(e: DomainError) -> CfError {
    match e {
        DomainError::NotFound(ResourceId::Policy(id)) => no_such(&id),
        DomainError::Exists(ResourceId::Policy(id)) => err(
            CfCode::ContinuousDeploymentPolicyAlreadyExists,
            format!("A continuous deployment policy with the id {id} already exists."),
        ),
        DomainError::Invalid { field: _, message } => invalid(message),
        DomainError::Constraint(v) => invalid(v.to_string()),
        DomainError::Conflict { resource: _, message } => invalid(message),
        // Any other resource (Evidently's): no policy command names one.
        e @ (DomainError::NotFound(_) | DomainError::Exists(_)) => err(CfCode::InternalError, e.to_string()),
        DomainError::StagingInUse { name } => err(
            CfCode::StagingDistributionInUse,
            format!("A continuous deployment policy for the staging distribution {name} already exists."),
        ),
        DomainError::PolicyInUse { id: _, distribution } => err(
            CfCode::ContinuousDeploymentPolicyInUse,
            format!(
                "You cannot delete a continuous deployment policy that is associated with a primary distribution ({distribution})."
            ),
        ),
        DomainError::Quota { kind: _, scope: _, limit } => err(
            CfCode::TooManyContinuousDeploymentPolicies,
            format!("You have reached the maximum number of continuous deployment policies ({limit})."),
        ),
        DomainError::VersionMissing => {
            err(CfCode::InvalidIfMatchVersion, "The If-Match version is missing or not valid for the resource.")
        }
        DomainError::VersionMismatch => {
            err(CfCode::PreconditionFailed, "The If-Match version does not match the current version of the resource.")
        }
    }
}

fn list(plane: &Plane, query: Option<&str>) -> CfResult<Response<Full<Bytes>>> {
    let mut marker = None;
    let mut max_items = 100usize;
    for (k, v) in query.unwrap_or("").split('&').filter_map(|kv| kv.split_once('=')) {
        let v = crate::admin::percent_decode(v).ok_or_else(|| invalid("The query string is not valid."))?;
        match k {
            "Marker" => marker = Some(v).filter(|m| !m.is_empty()),
            // A bare `string` in the model, with no constraint; 1 to 1000 is edgesplit's bound.
            "MaxItems" => {
                max_items = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| invalid(format!("MaxItems {v} is not a whole number from 1 to 1000.")))?;
            }
            _ => {}
        }
    }
    let st = plane.lock();
    let after: Vec<&StoredPolicy> =
        st.policies.values().filter(|p| marker.as_deref().is_none_or(|m| p.id.as_str() > m)).collect();
    let page = &after[..after.len().min(max_items)];
    let mut out = format!("<ContinuousDeploymentPolicyList xmlns=\"{NS}\">");
    if after.len() > page.len()
        && let Some(last) = page.last()
    {
        out.push_str(&format!("<NextMarker>{}</NextMarker>", esc(&last.id)));
    }
    out.push_str(&format!("<MaxItems>{max_items}</MaxItems><Quantity>{}</Quantity>", st.policies.len()));
    if !page.is_empty() {
        out.push_str("<Items>");
        for p in page {
            out.push_str("<ContinuousDeploymentPolicySummary>");
            out.push_str(&policy_body("ContinuousDeploymentPolicy", p, false));
            out.push_str("</ContinuousDeploymentPolicySummary>");
        }
        out.push_str("</Items>");
    }
    out.push_str("</ContinuousDeploymentPolicyList>");
    Ok(xml_response(StatusCode::OK, out, None))
}

// === parsing ===

fn int(node: &Node, what: &str) -> CfResult<i64> {
    node.trimmed().parse().map_err(|_| invalid(format!("{what} must be a whole number, not `{}`.", node.trimmed())))
}

fn required<'a>(parent: &'a Node, name: &str) -> CfResult<&'a Node> {
    parent.child(name).ok_or_else(|| invalid(format!("{} is missing the required element {name}.", parent.name)))
}

/// Reads a `ContinuousDeploymentPolicyConfig` body and checks it (everything but the staging names,
/// which need the distributions).
pub fn parse_config(body: &[u8]) -> CfResult<PolicyConfig> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(err(CfCode::MissingBody, "This operation requires a body: a ContinuousDeploymentPolicyConfig."));
    }
    let text = std::str::from_utf8(body).map_err(|_| invalid("The request body is not UTF-8."))?;
    let root = xml::parse(text).map_err(invalid)?;
    if root.name != "ContinuousDeploymentPolicyConfig" {
        return Err(invalid(format!("Expected a ContinuousDeploymentPolicyConfig document, got {}.", root.name)));
    }
    let names = required(&root, "StagingDistributionDnsNames")?;
    let quantity = int(required(names, "Quantity")?, "Quantity")?;
    let staging_dns_names: Vec<String> = names
        .child("Items")
        .map(|items| items.all("DnsName").map(|n| n.trimmed().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    if quantity != staging_dns_names.len() as i64 {
        return Err(err(
            CfCode::InconsistentQuantities,
            format!(
                "The value of Quantity ({quantity}) and the number of Items ({}) do not match.",
                staging_dns_names.len()
            ),
        ));
    }
    let enabled = match required(&root, "Enabled")?.trimmed() {
        "true" => true,
        "false" => false,
        other => return Err(invalid(format!("Enabled must be true or false, not `{other}`."))),
    };
    let traffic = root.child("TrafficConfig").map(parse_traffic).transpose()?;
    let config = PolicyConfig { staging_dns_names, enabled, traffic };
    config.validate().map_err(invalid)?;
    Ok(config)
}

fn parse_traffic(t: &Node) -> CfResult<TrafficConfig> {
    let kind_text = required(t, "Type")?.trimmed();
    crate::limits::cloudfront::CONTINUOUS_DEPLOYMENT_POLICY_TYPE.check("Type", kind_text)?;
    // `TrafficType` has a variant per value of the model's enum (cd::model's tests hold them together).
    let kind = TrafficType::parse(kind_text)
        .ok_or_else(|| invalid(format!("Type must be SingleWeight or SingleHeader, not `{kind_text}`.")))?;
    let single_weight = t
        .child("SingleWeightConfig")
        .map(|w| -> CfResult<SingleWeight> {
            let weight_node = required(w, "Weight")?;
            let weight: f64 = weight_node
                .trimmed()
                .parse()
                .map_err(|_| invalid(format!("Weight must be a number, not `{}`.", weight_node.trimmed())))?;
            let stickiness = w
                .child("SessionStickinessConfig")
                .map(|s| -> CfResult<Stickiness> {
                    let ttl = |name: &str| -> CfResult<u32> {
                        let v = int(required(s, name)?, name)?;
                        u32::try_from(v).map_err(|_| {
                            invalid(format!("{name} {v} is out of range: it must be between 300 and 3600 seconds."))
                        })
                    };
                    Ok(Stickiness { idle_ttl: ttl("IdleTTL")?, maximum_ttl: ttl("MaximumTTL")? })
                })
                .transpose()?;
            Ok(SingleWeight { weight, stickiness })
        })
        .transpose()?;
    let single_header = t
        .child("SingleHeaderConfig")
        .map(|h| -> CfResult<SingleHeader> {
            Ok(SingleHeader {
                header: required(h, "Header")?.trimmed().to_string(),
                value: required(h, "Value")?.text.clone(),
            })
        })
        .transpose()?;
    Ok(TrafficConfig { kind, single_weight, single_header })
}

// === writing ===

fn iso8601(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A `ContinuousDeploymentPolicyConfig` element as written in responses (`root`: with the namespace).
pub fn config_xml(c: &PolicyConfig, root: bool) -> String {
    let mut out = if root {
        format!("<ContinuousDeploymentPolicyConfig xmlns=\"{NS}\">")
    } else {
        "<ContinuousDeploymentPolicyConfig>".to_string()
    };
    out.push_str(&format!("<StagingDistributionDnsNames><Quantity>{}</Quantity>", c.staging_dns_names.len()));
    if !c.staging_dns_names.is_empty() {
        out.push_str("<Items>");
        for n in &c.staging_dns_names {
            out.push_str(&format!("<DnsName>{}</DnsName>", esc(n)));
        }
        out.push_str("</Items>");
    }
    out.push_str(&format!("</StagingDistributionDnsNames><Enabled>{}</Enabled>", c.enabled));
    if let Some(t) = &c.traffic {
        out.push_str("<TrafficConfig>");
        if let Some(w) = &t.single_weight {
            out.push_str(&format!("<SingleWeightConfig><Weight>{}</Weight>", w.weight));
            if let Some(s) = &w.stickiness {
                out.push_str(&format!(
                    "<SessionStickinessConfig><IdleTTL>{}</IdleTTL><MaximumTTL>{}</MaximumTTL></SessionStickinessConfig>",
                    s.idle_ttl, s.maximum_ttl
                ));
            }
            out.push_str("</SingleWeightConfig>");
        }
        if let Some(h) = &t.single_header {
            out.push_str(&format!(
                "<SingleHeaderConfig><Header>{}</Header><Value>{}</Value></SingleHeaderConfig>",
                esc(&h.header),
                esc(&h.value)
            ));
        }
        out.push_str(&format!("<Type>{}</Type></TrafficConfig>", t.kind.as_str()));
    }
    out.push_str("</ContinuousDeploymentPolicyConfig>");
    out
}

fn policy_body(element: &str, p: &StoredPolicy, root: bool) -> String {
    let ns = if root { format!(" xmlns=\"{NS}\"") } else { String::new() };
    format!(
        "<{element}{ns}><Id>{}</Id><LastModifiedTime>{}</LastModifiedTime>{}</{element}>",
        esc(&p.id),
        iso8601(p.last_modified_ms),
        config_xml(&p.config, false)
    )
}

fn policy_xml(p: &StoredPolicy) -> String {
    policy_body("ContinuousDeploymentPolicy", p, true)
}

fn xml_response(status: StatusCode, body: String, etag: Option<&str>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    resp
}

fn with_request_id(mut resp: Response<Full<Bytes>>, id: &str) -> Response<Full<Bytes>> {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// The wrapped rest-xml error body botocore parses into `client.exceptions.<Code>`.
pub fn error_response(e: &CfError, request_id: &str) -> Response<Full<Bytes>> {
    let kind = if e.status().is_server_error() { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{NS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.code.name(),
        esc(&e.message),
        esc(request_id)
    );
    with_request_id(xml_response(e.status(), body, None), request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTO3_BODY: &str = r#"<ContinuousDeploymentPolicyConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>d111111abcdef8.cloudfront.net</DnsName></Items></StagingDistributionDnsNames><Enabled>true</Enabled><TrafficConfig><Type>SingleWeight</Type><SingleWeightConfig><Weight>0.05</Weight><SessionStickinessConfig><IdleTTL>300</IdleTTL><MaximumTTL>600</MaximumTTL></SessionStickinessConfig></SingleWeightConfig></TrafficConfig></ContinuousDeploymentPolicyConfig>"#;

    #[test]
    fn parses_what_boto3_sends_in_any_element_order() {
        let c = parse_config(BOTO3_BODY.as_bytes()).unwrap();
        assert_eq!(c.staging_dns_names, ["d111111abcdef8.cloudfront.net"]);
        assert!(c.enabled);
        let w = c.traffic.as_ref().unwrap().single_weight.as_ref().unwrap();
        assert_eq!(w.weight, 0.05);
        assert_eq!(w.stickiness, Some(Stickiness { idle_ttl: 300, maximum_ttl: 600 }));
        // Written back and read again: the same config.
        assert_eq!(parse_config(config_xml(&c, true).as_bytes()).unwrap(), c);
    }

    #[test]
    fn errors_have_cloudfront_codes() {
        let code = |body: &str| parse_config(body.as_bytes()).unwrap_err().code.name();
        assert_eq!(code(""), "MissingBody");
        assert_eq!(code("<ContinuousDeploymentPolicyConfig><Enabled>tru"), "InvalidArgument");
        assert_eq!(
            code(&BOTO3_BODY.replace("<Quantity>1</Quantity>", "<Quantity>2</Quantity>")),
            "InconsistentQuantities"
        );
        assert_eq!(code(&BOTO3_BODY.replace("0.05", "0.16")), "InvalidArgument");
        assert_eq!(code(&BOTO3_BODY.replace("<IdleTTL>300", "<IdleTTL>299")), "InvalidArgument");
        assert_eq!(code(&BOTO3_BODY.replace("<Enabled>true", "<Enabled>True")), "InvalidArgument");
        assert_eq!(code(&BOTO3_BODY.replace("SingleWeight</Type>", "SingleHeader</Type>")), "InvalidArgument");
    }

    #[test]
    fn error_codes_are_the_models_errors_of_the_policy_operations() {
        let model: serde_json::Value =
            serde_json::from_str(include_str!("../../models/cloudfront/2020-05-31/service-2.json")).unwrap();
        let mut declared = std::collections::BTreeMap::new();
        for (name, op) in model["operations"].as_object().unwrap() {
            if !name.contains("ContinuousDeploymentPolic") {
                continue;
            }
            for e in op["errors"].as_array().unwrap() {
                let shape = e["shape"].as_str().unwrap();
                let status = model["shapes"][shape]["error"]["httpStatusCode"].as_u64().unwrap();
                declared.insert(shape.to_string(), status);
            }
        }
        let ours: std::collections::BTreeMap<String, u64> = CfCode::ALL
            .iter()
            .filter(|c| c.in_model())
            .map(|c| (c.name().to_string(), u64::from(c.status().as_u16())))
            .collect();
        assert_eq!(ours, declared);
    }

    #[test]
    fn etags_are_e_and_13_characters_and_distinct() {
        let tags: std::collections::HashSet<String> = (0..10_000).map(|_| crate::random::etag()).collect();
        assert_eq!(tags.len(), 10_000);
        for t in &tags {
            assert_eq!(t.len(), 14, "{t}");
            assert!(t.starts_with('E') && t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{t}");
        }
        // Every character of the alphabet turns up (a modulo bias or a stuck generator would show).
        let seen: std::collections::HashSet<u8> = tags.iter().flat_map(|t| t.bytes().skip(1)).collect();
        assert_eq!(seen.len(), 36);
    }

    #[test]
    fn error_body_is_the_wrapped_form() {
        let r = error_response(&invalid("a < b"), "rid-1");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()["x-amzn-requestid"], "rid-1");
    }
}
