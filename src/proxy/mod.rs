//! The data plane's request path: find the distribution, decide primary or staging, pick an origin,
//! forward with clean headers, stream both bodies, answer 502/504 on upstream failure. [`Proxy::handle`]
//! never fails: every error becomes a short plain response here, in one place.

mod body;
pub mod headers;
pub mod origin;
pub mod pool;
pub mod upstream;
pub mod worker;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::Either;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use body::ProxyBody;
use headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use pool::{Answer, PoolError};
use upstream::{Clients, UpBody};

use crate::cd::{Outcome, cookie};
use crate::config::UpstreamProtocol;
use crate::domain::clock::EvalClock;
use crate::domain::{Decision, Reason, Target};
use crate::evidently::exposure::ExposureLog;
use crate::metrics::{Metrics, UpstreamError};
use crate::plane::{Snapshot, Subscriber};
use crate::routing::{Origin, Pool};

/// What the request path reads, swapped whole on every change: the control plane's snapshot, and the
/// upstream clients built from it (rebuilt only when `[upstream]` or the upstream timeouts change, so a
/// routing change keeps the warm connection pools).
pub struct Serving {
    pub snapshot: Arc<Snapshot>,
    /// Each distribution's Evidently decisions at the edge, by distribution index, compiled from the
    /// snapshot with their headers and counters ready.
    pub edges: Box<[Option<crate::edge_evidently::CompiledEdge>]>,
    pub clients: Arc<Clients>,
    pub upstream_response: Duration,
}

/// The shared data plane: the current [`Serving`] and what lives across reloads.
pub struct Proxy {
    pub serving: ArcSwap<Serving>,
    pub metrics: Arc<Metrics>,
    pub access_log: bool,
    /// Tunnels (WebSocket and other upgrades) run here so that shutdown drains them too.
    pub tasks: TaskTracker,
    /// Experiment assignments made by evaluations, here and in the API, for attributing events.
    pub exposures: Arc<ExposureLog>,
    /// The clock Evidently evaluations read (the control plane's).
    pub clock: Arc<EvalClock>,
}

impl Subscriber for Proxy {
    /// Adopts a new snapshot, with new upstream clients only if their settings changed. Clients that
    /// cannot be built (a CA file that became unreadable since the file was checked) keep the old ones.
    fn publish(&self, snapshot: &Arc<Snapshot>) {
        let current = self.serving.load();
        let clients = match Proxy::clients(snapshot, Some(&current.clients)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Cannot build the upstream clients; keeping the previous ones");
                current.clients.clone()
            }
        };
        self.serving.store(Arc::new(Serving {
            edges: crate::edge_evidently::compile_all(&snapshot.routes, &snapshot.evidently, &self.metrics),
            snapshot: snapshot.clone(),
            clients,
            upstream_response: snapshot.timeouts.upstream_response,
        }));
    }
}

/// Per client connection, shared by its requests and its idle watchdog.
pub struct ConnInfo {
    pub client: SocketAddr,
    pub tls: bool,
    client_ip: HeaderValue,
    pub activity: Activity,
    /// When the connection began: the origin of [`Activity::ticked`].
    born: Instant,
    /// The shortest timeout the connection's watchdog keeps for a request: 8 of its periods (so that a
    /// deadline it sees pass late is at most an eighth of the timeout late).
    watched_from: Duration,
}

/// Counters the connection watchdog reads to tell idle from busy, and a response the client takes from
/// one it has stopped taking (see `server::Watchdog`). A connection's task, its requests and its watchdog
/// all run on one worker thread, so the single-writer counters are plain loads and stores.
#[derive(Default)]
pub struct Activity {
    pub in_flight: AtomicU32,
    pub requests: AtomicU64,
    pub reads: AtomicU64,
    /// Response bodies waiting for the client to take what they last produced (or their first frame).
    pub waiting: AtomicU32,
    /// Frames the client side has taken from response bodies.
    pub pulls: AtomicU64,
    /// When the watchdog last ticked, in nanoseconds since the connection began: the clock by which
    /// [`Limit::Watchdog`] keeps upstream deadlines.
    pub ticked: AtomicU64,
}

impl Activity {
    /// A response body now waits for the client.
    pub(crate) fn wait_for_client(&self) {
        self.waiting.store(self.waiting.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// The client took a frame (or asked for the next one).
    pub(crate) fn client_pulled(&self) {
        self.waiting.store(self.waiting.load(Relaxed).saturating_sub(1), Relaxed);
        self.pulls.store(self.pulls.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// A waiting body went away without being taken.
    pub(crate) fn stop_waiting(&self) {
        self.waiting.store(self.waiting.load(Relaxed).saturating_sub(1), Relaxed);
    }
}

impl ConnInfo {
    /// `watchdog_period`: how often the connection's watchdog will tick and publish [`ConnInfo::tick`].
    pub fn new(client: SocketAddr, tls: bool, watchdog_period: Duration) -> ConnInfo {
        let ip = client.ip().to_string();
        let client_ip = HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            client,
            tls,
            client_ip,
            activity: Activity::default(),
            born: Instant::now(),
            watched_from: watchdog_period * 8,
        }
    }

    /// The watchdog ticked at `now`: deadlines kept by it ([`Limit::Watchdog`]) are judged by this time
    /// until the next tick.
    pub fn tick(&self, now: Instant) {
        self.activity.ticked.store(self.nanos(now), Relaxed);
    }

    fn nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.born);
        since.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(since.subsec_nanos()))
    }

    /// How an upstream exchange that began at `start` is held to `timeout`. By the watchdog when the
    /// request runs in its connection's task (`in_task`: `h1`'s, which every tick wakes) and the
    /// watchdog ticks at least 8 times within the timeout, so that the 504 comes at most an eighth of
    /// the timeout late; else by a timer of its own.
    fn limit(&self, in_task: bool, start: Instant, timeout: Duration) -> Limit<'_> {
        if in_task && timeout >= self.watched_from {
            Limit::Watchdog { activity: &self.activity, at: self.nanos(start + timeout) }
        } else {
            Limit::Timer(start + timeout)
        }
    }
}

/// How an upstream exchange's response deadline is kept.
///
/// A Tokio timer per request costs about 900 instructions (its entry registered in the worker's timer
/// wheel, under the wheel's lock, then taken out again; callgrind, issue 17), and nearly every request
/// is answered long before its deadline. The connection's watchdog already ticks, so for a request that
/// runs inside the connection's task the deadline is a comparison with the last tick instead.
enum Limit<'a> {
    /// A timer of the request's own.
    Timer(Instant),
    /// Past once the watchdog publishes a tick at or after `at` (nanoseconds since the connection began).
    Watchdog { activity: &'a Activity, at: u64 },
}

pin_project_lite::pin_project! {
    /// An exchange held to a [`Limit::Watchdog`] deadline. The tick that passes it wakes the connection's
    /// task, and with it this future, which then sees the tick.
    struct Watched<'a, F> {
        #[pin]
        exchange: F,
        activity: &'a Activity,
        at: u64,
    }
}

impl<F: Future<Output = Result<Answer, SendError>>> Future for Watched<'_, F> {
    type Output = Result<Answer, SendError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.project();
        match this.exchange.poll(cx) {
            std::task::Poll::Pending if this.activity.ticked.load(Relaxed) >= *this.at => {
                std::task::Poll::Ready(Err(SendError::Timeout))
            }
            polled => polled,
        }
    }
}

/// Run when a response is done (its body dropped): metrics, access log, in-flight count.
pub struct Finish {
    state: Arc<Serving>,
    conn: Arc<ConnInfo>,
    dist: Option<usize>,
    decision: Decision,
    status: u16,
    start: Instant,
    bytes: u64,
    body_error: bool,
    access: Option<Box<Access>>,
}

/// What the access log line needs beyond the counters; allocated only when the access log is on.
struct Access {
    method: Method,
    version: Version,
    host: Option<HeaderValue>,
    path: Option<PathAndQuery>,
    upstream: Option<Arc<str>>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.conn.activity.in_flight.fetch_sub(1, Relaxed);
        let elapsed = self.start.elapsed();
        let dist = self.dist.and_then(|i| self.state.snapshot.routes.distributions.get(i));
        match dist {
            Some(d) => d.metrics.target(self.decision.target).record(self.status, elapsed),
            None => self.state.snapshot.routes.unrouted.record(self.status, elapsed),
        }
        if let Some(a) = &self.access {
            tracing::info!(
                target: "edgesplit::access",
                client = %self.conn.client,
                method = %a.method,
                host = a.host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
                path = a.path.as_ref().map_or("-", |p| p.as_str()),
                proto = ?a.version,
                status = self.status,
                bytes = self.bytes,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                distribution = dist.map_or("-", |d| &*d.id),
                target = self.decision.target.as_str(),
                reason = self.decision.reason.as_str(),
                upstream = a.upstream.as_deref().unwrap_or("-"),
                aborted = self.body_error,
                "access"
            );
        }
    }
}

static VIA_1_1: HeaderValue = HeaderValue::from_static("1.1 edgesplit");
static VIA_2: HeaderValue = HeaderValue::from_static("2 edgesplit");
static PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
static PROTO_HTTPS: HeaderValue = HeaderValue::from_static("https");

/// How an upstream exchange failed.
enum SendError {
    /// No connection: nothing was sent.
    Connect(String),
    /// The client's request body failed: the client's fault, answered 400.
    ClientBody(String),
    /// The origin's connection cap is reached (`upstream.max_connections_per_origin`): nothing was sent.
    Limit,
    Timeout,
    Other(String),
}

/// Points a request at `origin` of `pool`: URI, Host (the pool's override or the client's) and the
/// HTTP version the pool speaks. False if the URI cannot be built.
fn aim(
    parts: &mut http::request::Parts,
    origin: &Origin,
    pool: &Pool,
    path: &PathAndQuery,
    host: &Option<HeaderValue>,
    upgrade: bool,
) -> bool {
    let h2 = !upgrade && pool.protocol == UpstreamProtocol::Http2;
    // HTTP/1.1 goes out in origin form (our pool knows the origin); hyper-util's HTTP/2 client picks its
    // connection by the absolute URI.
    let mut uri = http::uri::Parts::default();
    if h2 {
        uri.scheme = Some(origin.scheme.clone());
        uri.authority = Some(origin.authority.clone());
    }
    uri.path_and_query = Some(path.clone());
    let Ok(uri) = Uri::from_parts(uri) else { return false };
    parts.uri = uri;
    parts.version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
    match (&pool.host, host) {
        (Some(forced), _) => {
            parts.headers.insert(header::HOST, forced.clone());
        }
        (None, Some(client_host)) => {
            parts.headers.insert(header::HOST, client_host.clone());
        }
        (None, None) => {}
    }
    true
}

impl Proxy {
    /// `current`'s clients if they were built from the same settings, else new ones.
    fn clients(snapshot: &Snapshot, current: Option<&Arc<Clients>>) -> Result<Arc<Clients>, String> {
        match current {
            Some(c) if c.built_from == (snapshot.upstream.clone(), snapshot.timeouts) => Ok(c.clone()),
            _ => Ok(Arc::new(Clients::build(&snapshot.upstream, &snapshot.timeouts)?)),
        }
    }

    /// One exchange with `origin`, bounded by the upstream response timeout (`limit`: given, since
    /// the caller has read the clock already). HTTP/1.1 (and every upgrade) through our per-worker pool,
    /// HTTP/2 through hyper-util's client. Not an async fn, for the same reason as
    /// [`pool::H1Pool::send`]: the pool's future is wrapped, not awaited by a future that holds the
    /// request too.
    fn send<'a>(
        state: &'a Serving,
        limit: Limit<'a>,
        origin: &Origin,
        protocol: UpstreamProtocol,
        req: Request<UpBody>,
        upgrade: bool,
        body_done: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> impl Future<Output = Result<Answer, SendError>> + Send + 'a {
        let exchange = if upgrade || protocol == UpstreamProtocol::Http1 {
            let tls = origin.scheme == http::uri::Scheme::HTTPS;
            let sent = state.clients.h1.send(tls, &origin.authority, req, upgrade, body_done);
            Either::Left(sent.map(|r| {
                r.map_err(|e| match e {
                    PoolError::Connect(e) => SendError::Connect(e),
                    PoolError::ClientBody(e) => SendError::ClientBody(e),
                    PoolError::Limit => SendError::Limit,
                    PoolError::Other(e) => SendError::Other(e),
                })
            }))
        } else {
            Either::Right(h2_send(state, req))
        };
        match limit {
            Limit::Timer(deadline) => {
                Either::Left(tokio::time::timeout_at(deadline, exchange).map(|r| r.unwrap_or(Err(SendError::Timeout))))
            }
            Limit::Watchdog { activity, at } => Either::Right(Watched { exchange, activity, at }),
        }
    }

    /// The data plane on `snapshot`; it follows later ones once subscribed to the control plane. Fails
    /// only if the upstream clients cannot be built (`ca_file`).
    pub fn new(
        snapshot: Arc<Snapshot>,
        metrics: Arc<Metrics>,
        access_log: bool,
        exposures: Arc<ExposureLog>,
        clock: Arc<EvalClock>,
    ) -> Result<Proxy, String> {
        let state = Serving {
            edges: crate::edge_evidently::compile_all(&snapshot.routes, &snapshot.evidently, &metrics),
            clients: Proxy::clients(&snapshot, None)?,
            upstream_response: snapshot.timeouts.upstream_response,
            snapshot,
        };
        Ok(Proxy {
            serving: ArcSwap::from_pointee(state),
            metrics,
            access_log,
            tasks: TaskTracker::new(),
            exposures,
            clock,
        })
    }

    /// Serves one request. Never fails: errors are answered here (`Err` cannot happen; the `Result` is
    /// what hyper's service takes). Owned arguments and no wrapper: this future is boxed as it is, per
    /// request, so a wrapping one would be one more copy of its few KB (issue 17). `in_task`: this
    /// future runs inside the connection's task, which its watchdog wakes at every tick (`h1`'s requests;
    /// not hyper's, whose HTTP/2 streams are tasks of their own), so the upstream deadline can be kept
    /// by the watchdog ([`Limit`]).
    #[allow(clippy::manual_async_fn)] // deliberately not an async fn: see the block's comment
    pub fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        mut req: Request<Incoming>,
        in_task: bool,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static {
        // An async block, not an async fn, which would keep the request twice in its state (as the
        // argument and as the local it is moved into).
        async move {
            let start = Instant::now();
            conn.activity.in_flight.fetch_add(1, Relaxed);
            conn.activity.requests.fetch_add(1, Relaxed);
            let state = self.serving.load_full();

            let host = one_host(&req);
            let access = self.access_log.then(|| {
                Box::new(Access {
                    method: req.method().clone(),
                    version: req.version(),
                    host: host.clone().ok().flatten(),
                    path: req.uri().path_and_query().cloned(),
                    upstream: None,
                })
            });
            let dist_index = match &host {
                Ok(Some(h)) => h.to_str().ok().and_then(|h| state.snapshot.routes.find_index(h)),
                _ => None,
            };
            let mut finish = Finish {
                state: state.clone(),
                conn: conn.clone(),
                dist: dist_index,
                decision: Decision { target: Target::Primary, reason: Reason::NoPolicy },
                status: 0,
                start,
                bytes: 0,
                body_error: false,
                access,
            };
            let host = match host {
                Ok(host) => host,
                Err(why) => return Ok(synthetic(StatusCode::BAD_REQUEST, why, finish)),
            };
            let Some((i, dist)) = dist_index.and_then(|i| Some((i, state.snapshot.routes.distributions.get(i)?)))
            else {
                self.metrics.unrouted.fetch_add(1, Relaxed);
                return Ok(synthetic(StatusCode::NOT_FOUND, "no distribution serves this host\n", finish));
            };
            // CONNECT would make edgesplit a tunnel to anywhere, and TRACE echoes the request (cookies and
            // credentials included) back to scripts: neither has a place at an origin.
            if matches!(*req.method(), Method::CONNECT | Method::TRACE) {
                return Ok(synthetic(StatusCode::NOT_IMPLEMENTED, "method not supported by this proxy\n", finish));
            }
            // The client's hop-by-hop headers go before anything is injected: `Connection` must not be able to
            // name, and so remove, a decision header edgesplit adds (after its exposure is recorded).
            let upgrade = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
            headers::strip_hop_by_hop(req.headers_mut(), upgrade);

            let cd = &state.snapshot.routes.cd;
            // Evidently at the edge first: it injects decisions and may route (which replaces the policy).
            // The wall clock, read once if the edge or the stickiness needs it (a clock read is about 20 ns).
            let mut wall = None;
            let mut wall_ms = || *wall.get_or_insert_with(crate::domain::clock::now_ms);
            let edge = state.edges.get(i).and_then(Option::as_ref).map(|e| {
                let (uri, method) = (req.uri().clone(), req.method().clone());
                let now_ms = self.clock.at(wall_ms());
                let out = e.apply(req.headers_mut(), &uri, &method, conn.client.ip(), now_ms, &self.exposures);
                (e, out)
            });
            let now = if dist.rule.is_sticky() { wall_ms() / 1000 } else { 0 };
            let mut outcome = match edge.as_ref().and_then(|(_, out)| out.route) {
                Some(decision) => Outcome { decision, session: None },
                None => dist.rule.decide(req.headers(), cd, now, fastrand::u32(..)),
            };
            // Staging safety: with every staging origin marked down, the request goes to primary.
            let staging_origin = match (outcome.decision.target, &dist.staging) {
                (Target::Staging, Some(pool)) => pool.pick(),
                _ => None,
            };
            if outcome.decision.target == Target::Staging && staging_origin.is_none() {
                outcome = Outcome {
                    decision: Decision { target: Target::Primary, reason: Reason::StagingUnavailable },
                    session: None,
                };
            }
            let decision = outcome.decision;
            dist.metrics.decision(decision.reason);
            finish.decision = decision;
            let pool = dist.pool(decision.target);
            let Some(origin) = staging_origin.or_else(|| pool.pick_any()) else {
                return Ok(synthetic(StatusCode::BAD_GATEWAY, "no origin configured\n", finish));
            };
            // The stickiness cookie is edgesplit's own: origins never see it.
            cookie::strip(req.headers_mut(), &cd.cookie_name);
            if let Some(a) = finish.access.as_mut() {
                a.upstream = Some(origin.label.clone());
            }

            let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

            let (mut parts, body) = req.into_parts();
            let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
            let via = if parts.version == Version::HTTP_2 { &VIA_2 } else { &VIA_1_1 };
            let h = &mut parts.headers;
            // hyper's server already answered `100 Continue` when the body was first read.
            h.remove(header::EXPECT);
            headers::append_list(h, &X_FORWARDED_FOR, &conn.client_ip);
            h.insert(X_FORWARDED_PROTO.clone(), if conn.tls { PROTO_HTTPS.clone() } else { PROTO_HTTP.clone() });
            if let Some(client_host) = &host {
                h.insert(X_FORWARDED_HOST.clone(), client_host.clone());
            }
            headers::append_list(h, &header::VIA, via);
            // A bodiless request to staging is kept, to go to primary should staging refuse the connection.
            let retry = (decision.target == Target::Staging && body.is_end_stream() && !upgrade).then(|| parts.clone());
            if !aim(&mut parts, origin, pool, &path, &host, upgrade) {
                return Ok(synthetic(StatusCode::BAD_REQUEST, "bad request target\n", finish));
            }

            let protocol = if upgrade { UpstreamProtocol::Http1 } else { pool.protocol };
            let (body, body_done) = UpBody::client(body);
            let limit = conn.limit(in_task, start, state.upstream_response);
            let request = Request::from_parts(parts, body);
            let mut sent = Proxy::send(&state, limit, origin, protocol, request, upgrade, body_done).await;
            let mut origin = origin;
            if let (Err(SendError::Connect(e)), Some(mut parts)) = (&sent, retry) {
                origin.health.mark_down(state.snapshot.routes.unhealthy_for_ms);
                self.metrics.upstream_error(UpstreamError::Connect);
                // Primary answers this request, but staging failed it: its guards count the failure.
                dist.metrics.staging.guard.refused();
                tracing::warn!(error = %e, upstream = %origin.label, distribution = %dist.id, "Staging refused the connection; sending to primary");
                if let Some(primary) = dist.primary.pick_any()
                    && aim(&mut parts, primary, &dist.primary, &path, &host, false)
                {
                    outcome.session = None;
                    finish.decision = Decision { target: Target::Primary, reason: Reason::StagingUnavailable };
                    dist.metrics.decision(Reason::StagingUnavailable);
                    if let Some(a) = finish.access.as_mut() {
                        a.upstream = Some(primary.label.clone());
                    }
                    origin = primary;
                    // Boxed: this fallback is rare, and a second send future inline would make every
                    // request's future about 1.7 KB larger.
                    let fallback = Request::from_parts(parts, UpBody::Empty);
                    let limit = Limit::Timer(Instant::now() + state.upstream_response);
                    let protocol = dist.primary.protocol;
                    sent = Box::pin(Proxy::send(&state, limit, primary, protocol, fallback, false, None)).await;
                }
            }
            let answer = match sent {
                Ok(sent) => {
                    origin.health.mark_up();
                    sent
                }
                Err(SendError::Connect(e)) => {
                    origin.health.mark_down(state.snapshot.routes.unhealthy_for_ms);
                    self.metrics.upstream_error(UpstreamError::Connect);
                    tracing::warn!(error = %e, upstream = %origin.label, distribution = %dist.id, kind = "connect", "Upstream request failed");
                    return Ok(synthetic(StatusCode::BAD_GATEWAY, "upstream connection failed\n", finish));
                }
                Err(SendError::ClientBody(e)) => {
                    tracing::debug!(error = %e, client.addr = %conn.client, "The client's request body failed");
                    return Ok(synthetic(StatusCode::BAD_REQUEST, "bad request body\n", finish));
                }
                Err(SendError::Limit) => {
                    self.metrics.upstream_error(UpstreamError::Limit);
                    tracing::warn!(upstream = %origin.label, distribution = %dist.id, "Origin connection limit reached");
                    let mut resp =
                        synthetic(StatusCode::SERVICE_UNAVAILABLE, "origin connection limit reached\n", finish);
                    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    return Ok(resp);
                }
                Err(SendError::Other(e)) => {
                    self.metrics.upstream_error(UpstreamError::Protocol);
                    tracing::warn!(error = %e, upstream = %origin.label, distribution = %dist.id, kind = "protocol", "Upstream request failed");
                    return Ok(synthetic(StatusCode::BAD_GATEWAY, "upstream request failed\n", finish));
                }
                Err(SendError::Timeout) => {
                    self.metrics.upstream_error(UpstreamError::Timeout);
                    tracing::warn!(upstream = %origin.label, distribution = %dist.id, timeout = ?state.upstream_response, "Upstream response timed out");
                    return Ok(synthetic(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n", finish));
                }
            };

            let switching = match &answer {
                Answer::Hyper(resp, _) => resp.status() == StatusCode::SWITCHING_PROTOCOLS,
                Answer::Own(..) => false,
            };
            let (mut rparts, rbody) = match answer {
                Answer::Hyper(mut resp, lease) => {
                    if let (true, Some(downstream)) = (switching, downstream_upgrade) {
                        let upstream = hyper::upgrade::on(&mut resp);
                        self.tasks.spawn(tunnel(downstream, upstream));
                    }
                    let (mut parts, body) = resp.into_parts();
                    // edgesplit answers in its own version (RFC 9110 6.2), as our own client's responses do:
                    // an HTTP/1.0 origin must not make the client close its keep-alive connection.
                    if parts.version == Version::HTTP_10 {
                        parts.version = Version::HTTP_11;
                    }
                    (parts, body::Upstream::Hyper(body, lease))
                }
                Answer::Own(parts, body) => (parts, body::Upstream::Own(body)),
            };
            headers::strip_hop_by_hop(&mut rparts.headers, switching && upgrade);
            headers::append_list(&mut rparts.headers, &header::VIA, &VIA_1_1);
            if let Some((e, out)) = &edge {
                for (name, value) in &out.echo {
                    rparts.headers.insert(name.clone(), value.clone());
                }
                if let Some(set_cookie) = out.issued.as_deref().and_then(|id| e.entity_cookie(id, conn.tls)) {
                    rparts.headers.append(header::SET_COOKIE, set_cookie);
                }
            }
            if let Some(session) = outcome.session
                && let Some(set_cookie) = dist.rule.set_cookie(cd, &session, now, conn.tls)
            {
                rparts.headers.append(header::SET_COOKIE, set_cookie);
                if cd.cache_control_private {
                    rparts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
                }
            }
            finish.status = rparts.status.as_u16();
            Ok(Response::from_parts(rparts, ProxyBody::upstream(rbody, finish)))
        }
    }
}

/// One exchange on hyper-util's HTTP/2 client.
async fn h2_send(state: &Serving, req: Request<UpBody>) -> Result<Answer, SendError> {
    match state.clients.h2().request(req).await {
        Ok(resp) => Ok(Answer::Hyper(resp, None)),
        Err(e) if e.is_connect() => Err(SendError::Connect(error_chain(&e))),
        Err(e)
            if std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<hyper::Error>())
                .is_some_and(hyper::Error::is_user) =>
        {
            Err(SendError::ClientBody(error_chain(&e)))
        }
        Err(e) => Err(SendError::Other(error_chain(&e))),
    }
}

/// The host a request is for, from its one `Host` field and its target's authority (absolute form, or
/// HTTP/2's `:authority`): where both are there they must agree (RFC 9112 3.2.2 and RFC 9113 8.3.1 make
/// the target win; a proxy that routed by one and forwarded the other could be steered past its routing),
/// and two `Host` fields are refused outright. `Err` is the 400's text.
fn one_host(req: &Request<Incoming>) -> Result<Option<HeaderValue>, &'static str> {
    let mut fields = req.headers().get_all(header::HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err("more than one Host field\n");
    }
    match (field, req.uri().authority()) {
        (Some(field), Some(target)) if !field.as_bytes().eq_ignore_ascii_case(target.as_str().as_bytes()) => {
            Err("Host does not match the request target\n")
        }
        (Some(field), _) => Ok(Some(field.clone())),
        (None, Some(target)) => Ok(HeaderValue::from_str(target.as_str()).ok()),
        (None, None) => Ok(None),
    }
}

/// A short plain-text answer made by edgesplit itself.
fn synthetic(status: StatusCode, text: &'static str, mut finish: Finish) -> Response<ProxyBody> {
    finish.status = status.as_u16();
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(text.as_bytes()), Some(finish)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Copies bytes both ways between an upgraded client connection and an upgraded origin connection.
async fn tunnel(downstream: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(downstream, upstream) {
        Ok((down, up)) => {
            let mut down = TokioIo::new(down);
            let mut up = TokioIo::new(up);
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(error = %e, "Tunnel closed with an error");
            }
        }
        Err(e) => tracing::warn!(error = %e, "Upgrade failed"),
    }
}

/// `error: cause: cause` for logs; hyper's own Display is terse.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[test]
    fn the_watchdog_keeps_only_deadlines_it_ticks_8_times_within() {
        let conn = ConnInfo::new(([127, 0, 0, 1], 1).into(), false, Duration::from_secs(1));
        let start = Instant::now();
        assert!(matches!(conn.limit(true, start, Duration::from_secs(30)), Limit::Watchdog { .. }));
        assert!(matches!(conn.limit(true, start, Duration::from_secs(8)), Limit::Watchdog { .. }));
        assert!(matches!(conn.limit(true, start, Duration::from_millis(7_999)), Limit::Timer(_)));
        // hyper's requests: the watchdog's tick does not wake them.
        assert!(matches!(conn.limit(false, start, Duration::from_secs(30)), Limit::Timer(_)));
    }

    #[test]
    fn a_watched_exchange_times_out_at_the_first_tick_at_or_past_its_deadline() {
        let conn = ConnInfo::new(([127, 0, 0, 1], 1).into(), false, Duration::from_millis(10));
        let start = conn.born + Duration::from_secs(5);
        let Limit::Watchdog { activity, at } = conn.limit(true, start, Duration::from_millis(100)) else {
            panic!("a 100 ms timeout is 10 periods")
        };
        let mut watched = std::pin::pin!(Watched { exchange: std::future::pending(), activity, at });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(watched.as_mut().poll(&mut cx).is_pending());
        conn.tick(start + Duration::from_millis(99));
        assert!(watched.as_mut().poll(&mut cx).is_pending());
        conn.tick(start + Duration::from_millis(100));
        assert!(matches!(watched.as_mut().poll(&mut cx), Poll::Ready(Err(SendError::Timeout))));
    }

    #[test]
    fn a_watched_exchange_that_answers_is_not_timed_out() {
        let conn = ConnInfo::new(([127, 0, 0, 1], 1).into(), false, Duration::from_millis(10));
        let Limit::Watchdog { activity, at } = conn.limit(true, conn.born, Duration::from_millis(100)) else {
            panic!("a 100 ms timeout is 10 periods")
        };
        // Past the deadline already, but the answer that is there wins, as with tokio's `timeout`.
        conn.tick(conn.born + Duration::from_secs(1));
        let answer = std::future::ready(Err(SendError::Limit));
        let mut watched = std::pin::pin!(Watched { exchange: answer, activity, at });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(watched.as_mut().poll(&mut cx), Poll::Ready(Err(SendError::Limit))));
    }
}
