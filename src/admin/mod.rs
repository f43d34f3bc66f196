//! The admin listener (default 127.0.0.1:9901): `/healthz`, `/readyz`, `/metrics`, and the AWS
//! wire-compatible APIs: CloudFront's continuous deployment policies under `/2020-05-31/` ([`cloudfront`])
//! and Evidently ([`evidently`]); and edgesplit's own guarded rollouts under `/edgesplit/` ([`rollouts`]). It ignores the Host header for routing (D7), and routes on the raw path,
//! percent-decoding each segment after splitting, so ARNs with `%2F` stay one segment.
//!
//! Every API call is checked with AWS Signature Version 4 ([`sigv4`]) once its body is read (a body over
//! the cap is refused first), before the path is looked at; a refusal is a 403 in the protocol's own
//! error shape. `/healthz` and `/readyz` are always open; `/metrics` wants a bearer token when
//! `[admin] metrics_token` is set.

pub mod cloudfront;
pub mod evidently;
pub mod rollouts;
pub mod sigv4;
pub mod xml;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{AdminAuth, AdminAuthMode};
pub use crate::domain::text::percent_decode;
use crate::plane::Plane;

/// The largest admin request body read.
const MAX_BODY: usize = 1 << 20;
/// How long an admin request head, or its body, may take to arrive (slowloris).
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Open admin connections at most.
const MAX_CONNECTIONS: usize = 256;
/// Connections past [`MAX_CONNECTIONS`] still taken for the probes and `/metrics` (one request each,
/// [`RESERVE_HEAD_TIMEOUT`] to send it), so that a full listener still answers its health checks. Past
/// this too, a new connection is closed at once.
const RESERVE_CONNECTIONS: usize = 16;
const RESERVE_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// An admin connection with no request in flight for this long is closed (HTTP/2: GOAWAY), whatever
/// it sends meanwhile (an HTTP/2 preface and SETTINGS, PINGs); HTTP/1.1 is already bounded by
/// [`HEAD_TIMEOUT`], which hyper also runs while a keep-alive connection idles.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    pub plane: Arc<Plane>,
    /// False once shutdown starts, so load balancers stop sending new traffic while we drain.
    pub ready: Arc<AtomicBool>,
    /// Who may call the API and read `/metrics`; fixed at start, like all of `[admin]`.
    pub auth: Arc<Auth>,
}

/// The admin API's authentication settings and its refusal counters.
#[derive(Debug)]
pub struct Auth {
    pub settings: AdminAuth,
    /// Refusals by [`sigv4::Denied::REASONS`] index.
    denied: [AtomicU64; sigv4::Denied::REASONS.len()],
}

impl Auth {
    pub fn new(settings: AdminAuth) -> Auth {
        Auth { settings, denied: Default::default() }
    }

    /// Checks one API call's signature (always `Ok` with `auth = "none"`).
    fn check(&self, api: Api, parts: &http::request::Parts, body: &[u8]) -> Result<(), sigv4::Denied> {
        if self.settings.mode == AdminAuthMode::None {
            return Ok(());
        }
        let scope = match api {
            // CloudFront is a global service whose requests are signed for us-east-1, as on AWS.
            Api::CloudFront => sigv4::Scope { service: "cloudfront", region: Some("us-east-1"), double_encode: true },
            Api::Evidently => sigv4::Scope { service: "evidently", region: None, double_encode: true },
            Api::Rollouts => sigv4::Scope { service: "edgesplit", region: None, double_encode: true },
        };
        let req = sigv4::Signed {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            authority: parts.uri.authority().map(|a| a.as_str()),
            body,
        };
        let result = sigv4::verify(&req, &scope, self.settings.credentials.as_slice(), SystemTime::now());
        if let Err(d) = &result {
            if let Some(i) = sigv4::Denied::REASONS.iter().position(|r| *r == d.reason()) {
                self.denied[i].fetch_add(1, Relaxed);
            }
            tracing::info!(
                api = api.name(),
                method = %parts.method,
                path = parts.uri.path(),
                reason = d.reason(),
                message = %d.message(),
                "Admin API call refused"
            );
        }
        result.map(|_| ())
    }

    /// Whether a `/metrics` request may read (no token configured, or the right bearer token).
    fn metrics_allowed(&self, headers: &http::HeaderMap) -> bool {
        let Some(expected) = &self.settings.metrics_token else { return true };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        !given.is_empty() && sigv4::token_matches(expected, given)
    }

    /// Calls refused, by reason (for `/metrics`).
    fn denied(&self) -> Vec<(&'static str, u64)> {
        sigv4::Denied::REASONS.iter().zip(&self.denied).map(|(reason, n)| (*reason, n.load(Relaxed))).collect()
    }
}

/// Which AWS API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    CloudFront,
    Evidently,
    /// edgesplit's own: guarded rollouts.
    Rollouts,
}

impl Api {
    fn of(path: &str) -> Option<Api> {
        if path.starts_with(cloudfront::PREFIX) {
            Some(Api::CloudFront)
        } else if evidently::owns(path) {
            Some(Api::Evidently)
        } else if path.starts_with(rollouts::PREFIX) {
            Some(Api::Rollouts)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Api::CloudFront => "cloudfront",
            Api::Evidently => "evidently",
            Api::Rollouts => "edgesplit",
        }
    }

    /// 403 in this API's wire shape: CloudFront's `AccessDenied`, Evidently's `AccessDeniedException`.
    fn denied(self, message: String) -> Response<Full<Bytes>> {
        match self {
            Api::CloudFront => {
                let e = cloudfront::CfError::new(cloudfront::CfCode::AccessDenied, message);
                cloudfront::error_response(&e, &request_id())
            }
            Api::Evidently | Api::Rollouts => evidently::error_response(&evidently::access_denied(message)),
        }
    }

    /// 413 in this API's wire shape (the modelled 400 errors' codes, with the status that says what
    /// happened).
    fn too_large(self) -> Response<Full<Bytes>> {
        match self {
            Api::CloudFront => {
                let e = cloudfront::CfError::new(
                    cloudfront::CfCode::TooLarge,
                    format!("The request body is larger than {MAX_BODY} bytes or was cut short."),
                );
                cloudfront::error_response(&e, &request_id())
            }
            Api::Evidently | Api::Rollouts => evidently::error_response(&evidently::EvError {
                code: evidently::EvCode::TooLarge,
                ..evidently::invalid("body", format!("is larger than {MAX_BODY} bytes or was cut short"))
            }),
        }
    }
}

impl Admin {
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if let Some(api) = Api::of(req.uri().path()) {
            return self.api(api, req).await;
        }
        let path = req.uri().path();
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match (get, path) {
            (true, "/healthz") => text(StatusCode::OK, "ok\n".into()),
            (true, "/readyz") if self.ready.load(Relaxed) => text(StatusCode::OK, "ready\n".into()),
            (true, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into()),
            (true, "/metrics") if !self.auth.metrics_allowed(req.headers()) => {
                let mut r =
                    text(StatusCode::UNAUTHORIZED, "/metrics needs Authorization: Bearer <metrics_token>\n".into());
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"edgesplit\""));
                r
            }
            (true, "/metrics") => {
                let x = &self.plane.exposures;
                let outside = crate::metrics::Outside {
                    auth_denied: self.auth.denied(),
                    exposures: (x.recorded.load(Relaxed), x.dropped.load(Relaxed), x.unshared.load(Relaxed)),
                    monitors: self.plane.launch_monitors(),
                    store: self.plane.store.health().map(|h| (h.up(), h.failures.load(Relaxed))),
                    rollouts: self.plane.rollout_states(),
                };
                let mut r = text(StatusCode::OK, self.plane.metrics.render_all(&outside));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            (false, "/healthz" | "/readyz" | "/metrics") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into()),
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }

    /// One CloudFront or Evidently call: read the body (413 past the cap), check the signature (403),
    /// then decode the path and dispatch.
    async fn api(&self, api: Api, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        // A body trickled in slower than BODY_TIMEOUT is treated like one cut short.
        let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) | Err(_) => return api.too_large(),
        };
        if let Err(denied) = self.auth.check(api, &parts, &body) {
            return api.denied(denied.message());
        }
        // A fleet reads its own writes: a read first catches up with what the other instances committed
        // (one revision query), so a resource created through one instance is found through another at
        // once. With the database down, the read answers from this instance's copy. Reads are the GETs and
        // GetExperimentResults (a POST); not the evaluations and events, the SDKs' per-request calls,
        // which read the published snapshot like the proxy.
        let read = parts.method == Method::GET
            || (api == Api::Evidently && parts.method == Method::POST && parts.uri.path().ends_with("/results"));
        if read && self.plane.store.health().is_some_and(|h| h.up()) {
            let plane = self.plane.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || plane.catch_up()).await {
                tracing::debug!(error = %e, "A read could not catch up with the store; answering from this copy");
            }
        }
        let path = parts.uri.path();
        match api {
            Api::CloudFront => {
                let rest = path.strip_prefix(cloudfront::PREFIX).unwrap_or_default();
                let Some(segments) = rest.split('/').map(percent_decode).collect::<Option<Vec<_>>>() else {
                    let e = cloudfront::CfError::new(
                        cloudfront::CfCode::InvalidArgument,
                        "The path is not valid percent-encoding.",
                    );
                    return cloudfront::error_response(&e, &request_id());
                };
                let if_match = parts.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
                let call =
                    cloudfront::CfCall { method: &parts.method, segments, query: parts.uri.query(), if_match, body };
                cloudfront::handle(&self.plane, call).await
            }
            Api::Evidently => {
                let Some(segments) =
                    path.trim_start_matches('/').split('/').map(percent_decode).collect::<Option<Vec<_>>>()
                else {
                    let e = evidently::invalid("path", "is not valid percent-encoding");
                    return evidently::error_response(&e);
                };
                let query: Vec<(String, String)> = parts_query(parts.uri.query());
                let call = evidently::EvCall { method: parts.method, segments, query, body };
                evidently::handle(&self.plane, call).await
            }
            Api::Rollouts => {
                let rest = path.strip_prefix(rollouts::PREFIX).unwrap_or_default();
                let Some(segments) = rest.split('/').map(percent_decode).collect::<Option<Vec<_>>>() else {
                    return evidently::error_response(&evidently::invalid("path", "is not valid percent-encoding"));
                };
                rollouts::handle(&self.plane, rollouts::Call { method: parts.method, segments, body }).await
            }
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `a=1&b=2` as decoded pairs (a broken escape keeps the raw text).
pub fn parts_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| percent_decode(&s.replace('+', " ")).unwrap_or_else(|| s.to_string());
            (dec(k), dec(v))
        })
        .collect()
}

pub use crate::random::uuid;

pub(crate) fn request_id() -> String {
    uuid()
}

/// Serves the admin API until `stop` is cancelled.
pub async fn serve(listener: TcpListener, admin: Admin, stop: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let reserve = Arc::new(tokio::sync::Semaphore::new(RESERVE_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "Admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let (permit, reserved) = match slots.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                Err(_) => {
                    tracing::debug!("Admin listener full, reserve too: connection closed");
                    continue;
                }
            },
        };
        let admin = admin.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, admin, reserved, stop).await;
        });
    }
}

/// What an admin connection's idle check reads.
#[derive(Default)]
struct Busy {
    in_flight: std::sync::atomic::AtomicU32,
    requests: AtomicU64,
}

/// One admin connection. A `reserved` one (taken past the cap) serves one HTTP/1.1 request, and only
/// the probes and `/metrics`.
async fn serve_connection(stream: tokio::net::TcpStream, admin: Admin, reserved: bool, stop: CancellationToken) {
    let activity = Arc::new(Busy::default());
    let seen = activity.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let admin = admin.clone();
        let activity = activity.clone();
        async move {
            activity.in_flight.fetch_add(1, Relaxed);
            activity.requests.fetch_add(1, Relaxed);
            let probe = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
            let resp = if reserved && !probe {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "admin listener busy: only /healthz, /readyz and /metrics\n".into(),
                )
            } else {
                admin.handle(req).await
            };
            activity.in_flight.fetch_sub(1, Relaxed);
            Ok::<_, Infallible>(resp)
        }
    });
    let timer = hyper_util::rt::TokioTimer::new();
    let io = TokioIo::new(stream);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's head timer also runs while a keep-alive connection idles: an idle admin client
    // reconnects after HEAD_TIMEOUT, which costs nothing here.
    builder.http1().timer(timer.clone()).header_read_timeout(if reserved {
        RESERVE_HEAD_TIMEOUT
    } else {
        HEAD_TIMEOUT
    });
    builder.http2().timer(timer).max_concurrent_streams(16);
    if reserved {
        builder = builder.http1_only();
        builder.http1().keep_alive(false);
    }
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let idle = if reserved { RESERVE_HEAD_TIMEOUT } else { IDLE_TIMEOUT };
    let period = std::time::Duration::from_millis(250);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let (mut requests, mut quiet_since) = (0, tokio::time::Instant::now());
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.cancelled() => return,
            now = tick.tick() => {
                if closing.is_some_and(|deadline| now >= deadline) {
                    return;
                }
                let seen_requests = seen.requests.load(Relaxed);
                if seen.in_flight.load(Relaxed) > 0 || seen_requests != requests {
                    (requests, quiet_since) = (seen_requests, now);
                } else if closing.is_none() && now.duration_since(quiet_since) >= idle {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(now + std::time::Duration::from_secs(1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid(), u);
    }
}
