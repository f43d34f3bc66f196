//! HTTP/1.1 connections to origins, pooled per worker thread. A request with no body goes through
//! edgesplit's own client ([`super::origin`]) inside the request's future; a request with a body, and
//! every upgrade, through hyper's `client::conn::http1` (an idle connection of the first kind is handed
//! to hyper when an upload needs it).
//!
//! The pool is our own instead of hyper-util's general client. Each worker keeps its idle connections
//! in a thread-local list per origin, so a checkout is a pop with no lock, no hash of a pool key and no
//! channel to a pool task; a hyper connection's task runs on the same single-threaded runtime as the
//! request. A connection goes back to the list when its response body has been read to the end (see
//! [`Lease`] and [`Streamed`]; at once when the body came with the head); one whose body was cut short
//! is dropped and closes.
//!
//! Like hyper-util's client, a request that a reused connection refused before sending anything (the
//! origin closed it while idle) is sent again on a new connection. On our own client, an idle connection
//! the origin closed is seen at checkout when its close has already come (no system call otherwise);
//! should the close cross the request on the wire instead, a request of an idempotent method (RFC 9110
//! 9.2.2) that got not one byte of answer is sent again on a new connection, as browsers and nginx do.
//!
//! A connection goes back only when the request body has been sent whole too: an origin may answer (a
//! 401, a 413, a redirect) before reading an upload, and a client may then stall that upload. Reused, such
//! a connection would make the next request, another client's, wait behind it; so it is let go instead
//! (it closes once the upload ends or fails). And each worker has a cap on the exchanges in progress
//! with one origin (`upstream.max_connections_per_origin`, like nginx's `max_conns` without a shared
//! zone): past it a request fails at once ([`PoolError::Limit`], a 503) instead of opening one more
//! socket for one client's hundred streams. It is counted in the same thread-local lists, so it costs no
//! atomic operation; idle connections do not count (they are bounded by `pool_max_idle_per_host`), nor
//! do upgraded connections once they are tunnels.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::origin::{self, Conn, Decoder, Stream};
use super::upstream::UpBody;

/// One of the rare kinds of pooled exchange (an upload, an upgrade, a refusal), boxed; [`H1Pool::send`]
/// returns our own client's inline beside it.
type Rare<'a> = Pin<Box<dyn Future<Output = Result<Answer, PoolError>> + Send + 'a>>;

/// Why an exchange failed: before any byte went out (the origin refused or did not answer the connect),
/// or later.
pub enum PoolError {
    Connect(String),
    /// The client's request body failed (a malformed chunk, a client gone mid-upload).
    ClientBody(String),
    /// This worker has `upstream.max_connections_per_origin` exchanges in progress with the origin.
    Limit,
    Other(String),
}

impl PoolError {
    fn of(e: hyper::Error) -> PoolError {
        // hyper calls a failure of the body it was given to send a "user" error: here, the client's.
        if e.is_user() {
            PoolError::ClientBody(super::error_chain(&e))
        } else {
            PoolError::Other(super::error_chain(&e))
        }
    }
}

/// The HTTP/1.1 client settings shared by all workers; the connections themselves are per thread.
pub struct H1Pool {
    tls: TlsConnector,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Exchanges in progress per origin and worker (`upstream.max_connections_per_origin`).
    max_active: usize,
    /// Tells this pool's idle connections from those of a pool replaced by a reload.
    id: u64,
}

/// Origin identity in the idle lists: TLS or not, and host:port.
#[derive(Clone)]
struct Key {
    tls: bool,
    authority: Authority,
}

/// An idle connection: ours, or one hyper drives (it carried an upload or was handed to hyper for one).
enum Pooled {
    Own(Conn),
    Hyper(SendRequest<UpBody>),
}

impl Pooled {
    fn is_usable(&mut self) -> bool {
        match self {
            Pooled::Own(conn) => conn.is_reusable(),
            Pooled::Hyper(sender) => !sender.is_closed(),
        }
    }
}

struct IdleConn {
    conn: Pooled,
    since: Instant,
}

/// One origin's connections on this worker.
struct Slot {
    key: Key,
    idle: Vec<IdleConn>,
    /// Exchanges in progress (leases out, connects under way).
    active: usize,
}

#[derive(Default)]
struct Idle {
    pool: u64,
    /// The pool's `timeouts.upstream_idle`, for [`sweep_idle`].
    idle_timeout: Duration,
    /// Few origins per worker: a scan beats hashing.
    slots: Vec<Slot>,
}

impl Idle {
    /// The slot an admission of pool `pool` was counted in, unless a reload replaced that pool since.
    fn slot(&mut self, pool: u64, slot: usize) -> Option<&mut Slot> {
        if self.pool != pool {
            return None;
        }
        self.slots.get_mut(slot)
    }
}

impl Key {
    /// Byte equality: `Authority`'s own `==` ignores ASCII case, a byte at a time, and this runs for
    /// every request. Two spellings of one origin then get a slot each, which is harmless.
    fn same(&self, other: &Key) -> bool {
        self.tls == other.tls && self.authority.as_str() == other.authority.as_str()
    }
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One exchange counted in its origin's `active` on this worker; counted out when dropped. It names its
/// slot by index: a pool's slots are only ever added to, and a reload starts a new pool (new `pool` id).
struct Admission {
    pool: u64,
    slot: usize,
}

impl Admission {
    /// Ends the exchange with its connection back in this worker's idle list (unless the list is full or
    /// a reload replaced the pool, when the connection is dropped and closes).
    fn put_idle(self, conn: Pooled, max_idle: usize) {
        IDLE.with_borrow_mut(|idle| {
            if let Some(slot) = idle.slot(self.pool, self.slot)
                && slot.idle.len() < max_idle
            {
                slot.idle.push(IdleConn { conn, since: Instant::now() });
            }
        });
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        IDLE.with_borrow_mut(|idle| {
            if let Some(slot) = idle.slot(self.pool, self.slot) {
                slot.active = slot.active.saturating_sub(1);
            }
        });
    }
}

/// A connection lent to one exchange. [`Lease::release`] puts it back once the response body has ended.
pub struct Lease {
    admission: Admission,
    sender: SendRequest<UpBody>,
    max_idle: usize,
    /// Set once the request body has been handed over whole; `None` for a request with no body.
    body_done: Option<Arc<AtomicBool>>,
}

impl Lease {
    /// Returns the connection to this thread's idle list. Called only once the response body ended;
    /// otherwise the lease is dropped, and with it the connection.
    pub fn release(self) {
        let Lease { admission, sender, max_idle, body_done } = self;
        if sender.is_closed() || body_done.as_ref().is_some_and(|done| !done.load(Acquire)) {
            return;
        }
        admission.put_idle(Pooled::Hyper(sender), max_idle);
    }
}

/// One of our own connections lent to an exchange; back to the idle list by [`OwnLease::release`].
struct OwnLease {
    admission: Admission,
    conn: Conn,
    max_idle: usize,
}

impl OwnLease {
    /// Returns the connection to this thread's idle list if it may carry another request.
    fn release(self, keep_alive: bool) {
        let OwnLease { admission, mut conn, max_idle } = self;
        if !keep_alive || !conn.is_clean() {
            return;
        }
        conn.shrink();
        admission.put_idle(Pooled::Own(conn), max_idle);
    }
}

/// What [`H1Pool::reuse_hyper`] did: sent (with its outcome), or found the connection closed.
enum Reused {
    Sent(Result<Answer, PoolError>),
    Refused(Admission),
}

/// What an exchange brought back: hyper's response (and its connection's lease), or ours.
pub enum Answer {
    Hyper(Response<Incoming>, Option<Lease>),
    Own(http::response::Parts, OwnBody),
}

/// A response body from our own client: whole (it came with the head, and the connection is already
/// back in the pool), or read from the connection as the client takes it.
pub enum OwnBody {
    Whole(Bytes),
    Streamed(Box<Streamed>),
}

/// A response body read from its origin connection, which goes back to the pool at the body's end.
pub struct Streamed {
    lease: Option<OwnLease>,
    decoder: Decoder,
    keep_alive: bool,
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let Some(lease) = this.lease.as_mut() else { return Poll::Ready(None) };
        let polled = lease.conn.poll_body(&mut this.decoder, cx);
        match &polled {
            // A broken body closes its connection.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            // Back to the pool as soon as the body's last byte is read: hyper's server does not poll a
            // body again once it says it has ended (or once it gave trailers).
            Poll::Ready(_) if this.decoder.is_done() => {
                if let Some(lease) = this.lease.take() {
                    lease.release(this.keep_alive);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.lease.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }
}

impl H1Pool {
    pub fn new(
        tls: &rustls::ClientConfig,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        max_active: usize,
    ) -> H1Pool {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        H1Pool {
            tls: TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            idle_timeout,
            max_idle,
            max_active,
            id: NEXT_ID.fetch_add(1, Relaxed),
        }
    }

    /// Sends `req` (origin-form URI, Host already set) to `authority`. A request with no body goes
    /// through our own client, one with a body through hyper's, and an upgrade gets a fresh hyper
    /// connection that is never pooled. The lease, if any, goes back when the response body has ended
    /// and `body_done` (the request body's end, if it has one) is set.
    ///
    /// Only our own client's future is inline: the request's future, boxed per request, is moved and
    /// copied whole, and hyper's handshake and send futures would make it a third larger. Uploads and
    /// upgrades pay for a box of their own instead.
    pub fn send<'a>(
        &'a self,
        tls: bool,
        authority: &Authority,
        req: Request<UpBody>,
        upgrade: bool,
        body_done: Option<Arc<AtomicBool>>,
    ) -> Either<Rare<'a>, impl Future<Output = Result<Answer, PoolError>> + Send + 'a> {
        // Not an async fn: the admission and the choice of client are made here, and the common case's
        // future (our own client's) is returned as it is. An async fn would hold the request a second
        // time, beside the future it awaits, and be copied whole into its caller's (issue 17).
        let key = Key { tls, authority: authority.clone() };
        // One look at this worker's lists admits the exchange and takes the first idle connection.
        let (admission, first) = match self.admit(&key, !upgrade) {
            Ok(admitted) => admitted,
            Err(e) => return Either::Left(Box::pin(std::future::ready(Err(e)))),
        };
        if upgrade {
            return Either::Left(Box::pin(self.send_upgrade(key, req)));
        }
        if !req.body().is_end_stream() {
            return Either::Left(Box::pin(self.send_hyper(key, admission, first, req, body_done)));
        }
        let (parts, _) = req.into_parts();
        Either::Right(self.send_own(key, admission, first, parts))
    }

    /// An upgrade, on a fresh hyper connection that is never pooled.
    async fn send_upgrade(&self, key: Key, req: Request<UpBody>) -> Result<Answer, PoolError> {
        let mut sender = hyper_over(self.connect(&key).await?).await?;
        let resp = sender.send_request(req).await.map_err(PoolError::of)?;
        Ok(Answer::Hyper(resp, None))
    }

    /// A request with a body, on hyper's client: hyper sends the upload while it reads an early answer.
    async fn send_hyper(
        &self,
        key: Key,
        admission: Admission,
        mut first: Option<Pooled>,
        mut req: Request<UpBody>,
        body_done: Option<Arc<AtomicBool>>,
    ) -> Result<Answer, PoolError> {
        while let Some(pooled) = first.take().or_else(|| self.checkout(&admission)) {
            let mut sender = match pooled {
                Pooled::Hyper(sender) => sender,
                Pooled::Own(conn) => match conn.into_io() {
                    Some(io) => hyper_over(io).await?,
                    None => continue,
                },
            };
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(Answer::Hyper(resp, Some(self.lease(admission, sender, body_done)))),
                Err(mut e) => match e.take_message() {
                    // Refused before anything was written: the origin closed it while idle.
                    Some(r) => req = r,
                    None => return Err(PoolError::of(e.into_error())),
                },
            }
        }
        let mut sender = hyper_over(self.connect(&key).await?).await?;
        let resp = sender.send_request(req).await.map_err(PoolError::of)?;
        Ok(Answer::Hyper(resp, Some(self.lease(admission, sender, body_done))))
    }

    /// A request with no body, on our own client: a pooled connection if one is usable, else a new one.
    /// An async block, not an async fn: an async fn keeps each argument twice in its state (as the
    /// argument and as the local it is moved into), 416 bytes here, in every request's future.
    #[allow(clippy::manual_async_fn)] // deliberately not an async fn: see the block's comment
    fn send_own(
        &self,
        key: Key,
        mut admission: Admission,
        mut first: Option<Pooled>,
        parts: http::request::Parts,
    ) -> impl Future<Output = Result<Answer, PoolError>> + Send + '_ {
        async move {
            let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let idempotent = parts.method.is_idempotent();
            while let Some(pooled) = first.take().or_else(|| self.checkout(&admission)) {
                let mut conn = match pooled {
                    Pooled::Own(conn) => conn,
                    // One hyper drove for an upload goes on serving as such (boxed: rare).
                    Pooled::Hyper(sender) => match Box::pin(self.reuse_hyper(sender, &parts, admission)).await {
                        Reused::Sent(answer) => return answer,
                        Reused::Refused(back) => {
                            admission = back;
                            continue;
                        }
                    },
                };
                match conn.request(&parts.method, target, &parts.headers).await {
                    Ok(head) => return Ok(self.answer(admission, conn, head)),
                    // The origin closed the idle connection as the request went out: again, on a new one.
                    Err(e) if e.before_response() && idempotent => {
                        tracing::debug!(error = %e, "A reused origin connection was closed; sending again");
                    }
                    Err(e) => return Err(PoolError::Other(e.to_string())),
                }
            }
            // Boxed: connecting (TLS state included) is rare, and would otherwise make every request's future
            // several times larger, and moved around as such.
            let mut conn = Conn::new(Box::pin(self.connect(&key)).await?);
            match conn.request(&parts.method, target, &parts.headers).await {
                Ok(head) => Ok(self.answer(admission, conn, head)),
                Err(e) => Err(PoolError::Other(e.to_string())),
            }
        }
    }

    /// A bodiless request on an idle connection hyper drives; the admission comes back if the
    /// connection turned out closed before anything was written.
    async fn reuse_hyper(
        &self,
        mut sender: SendRequest<UpBody>,
        parts: &http::request::Parts,
        admission: Admission,
    ) -> Reused {
        if sender.ready().await.is_err() {
            return Reused::Refused(admission);
        }
        match sender.try_send_request(Request::from_parts(parts.clone(), UpBody::Empty)).await {
            Ok(resp) => Reused::Sent(Ok(Answer::Hyper(resp, Some(self.lease(admission, sender, None))))),
            Err(e) if e.message().is_some() => Reused::Refused(admission),
            Err(e) => Reused::Sent(Err(PoolError::of(e.into_error()))),
        }
    }

    /// The response of our own client: its body whole if it came with the head (the connection is then
    /// back in the pool before the client has the response), else read as it is taken.
    fn answer(&self, admission: Admission, mut conn: Conn, head: origin::Head) -> Answer {
        let origin::Head { parts, framing, keep_alive } = head;
        if let Some(body) = conn.take_whole(framing) {
            OwnLease { admission, conn, max_idle: self.max_idle }.release(keep_alive);
            return Answer::Own(parts, OwnBody::Whole(body));
        }
        let lease = Some(OwnLease { admission, conn, max_idle: self.max_idle });
        Answer::Own(parts, OwnBody::Streamed(Box::new(Streamed { lease, decoder: Decoder::new(framing), keep_alive })))
    }

    fn lease(&self, admission: Admission, sender: SendRequest<UpBody>, body_done: Option<Arc<AtomicBool>>) -> Lease {
        Lease { admission, sender, max_idle: self.max_idle, body_done }
    }

    /// Counts one more exchange with `key` on this worker, or refuses it at the cap, and with `idle`
    /// takes the most recent usable idle connection too. Also lets go of the connections of a pool a
    /// reload replaced.
    fn admit(&self, key: &Key, idle_too: bool) -> Result<(Admission, Option<Pooled>), PoolError> {
        IDLE.with_borrow_mut(|idle| {
            if idle.pool != self.id {
                // The settings changed (reload): connections made under the old ones are let go.
                *idle = Idle { pool: self.id, idle_timeout: self.idle_timeout, slots: Vec::new() };
            }
            let index = match idle.slots.iter().position(|s| s.key.same(key)) {
                Some(i) => i,
                None => {
                    idle.slots.push(Slot { key: key.clone(), idle: Vec::new(), active: 0 });
                    idle.slots.len() - 1
                }
            };
            let slot = &mut idle.slots[index];
            if slot.active >= self.max_active {
                return Err(PoolError::Limit);
            }
            slot.active += 1;
            let conn = if idle_too { self.take_idle(&mut slot.idle) } else { None };
            Ok((Admission { pool: self.id, slot: index }, conn))
        })
    }

    /// The most recently used idle connection to the admission's origin that is still open and not past
    /// the idle timeout.
    fn checkout(&self, admission: &Admission) -> Option<Pooled> {
        IDLE.with_borrow_mut(|idle| {
            let list = &mut idle.slot(admission.pool, admission.slot)?.idle;
            self.take_idle(list)
        })
    }

    /// The most recently used connection of an idle list that is still open and not past the idle
    /// timeout; the stale ones are dropped on the way.
    fn take_idle(&self, list: &mut Vec<IdleConn>) -> Option<Pooled> {
        let now = Instant::now();
        // The oldest are at the front: drop those past the idle timeout.
        let stale = list.iter().take_while(|c| now.duration_since(c.since) > self.idle_timeout).count();
        list.drain(..stale);
        while let Some(mut c) = list.pop() {
            if c.conn.is_usable() {
                return Some(c.conn);
            }
        }
        None
    }

    /// A new connection to `key`'s origin, TLS handshake included.
    async fn connect(&self, key: &Key) -> Result<Stream, PoolError> {
        let port = if key.tls { 443 } else { 80 };
        let connected = tokio::time::timeout(self.connect_timeout, tcp_connect(&key.authority, port)).await;
        let stream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(PoolError::Connect(e)),
            Err(_) => return Err(PoolError::Connect(format!("connect timed out after {:?}", self.connect_timeout))),
        };
        if !key.tls {
            return Ok(Stream::Tcp(stream));
        }
        let name = pki_types::ServerName::try_from(key.authority.host().trim_matches(['[', ']']).to_string())
            .map_err(|e| PoolError::Connect(format!("bad TLS server name: {e}")))?;
        let handshake = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, stream)).await;
        match handshake {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => Err(PoolError::Connect(format!("TLS handshake: {e}"))),
            Err(_) => Err(PoolError::Connect("TLS handshake timed out".into())),
        }
    }
}

/// Drops this worker's idle connections that the origin closed (or sent stray bytes on) or that sat past
/// the idle timeout. Each worker calls it once a second: nothing else watches an idle connection of our
/// own client, and one the origin closed would otherwise wait in CLOSE_WAIT for the next request to that
/// origin. The check costs no system call for a connection that is still open and quiet.
pub(crate) fn sweep_idle() {
    IDLE.with_borrow_mut(|idle| {
        let (now, timeout) = (Instant::now(), idle.idle_timeout);
        for slot in &mut idle.slots {
            slot.idle.retain_mut(|c| now.duration_since(c.since) <= timeout && c.conn.is_usable());
        }
    });
}

/// hyper's client over a connection, its task spawned on this worker.
async fn hyper_over(io: Stream) -> Result<SendRequest<UpBody>, PoolError> {
    let (sender, conn) =
        http1::Builder::new().handshake(TokioIo::new(io)).await.map_err(|e| PoolError::Connect(e.to_string()))?;
    tokio::spawn(drive(conn));
    Ok(sender)
}

/// Runs an origin connection to its end.
async fn drive(conn: http1::Connection<TokioIo<Stream>, UpBody>) {
    if let Err(e) = conn.with_upgrades().await {
        tracing::debug!(error = %e, "Origin connection closed with an error");
    }
}

/// Connects to the first address of `authority` that answers.
async fn tcp_connect(authority: &Authority, default_port: u16) -> Result<TcpStream, String> {
    let port = authority.port_u16().unwrap_or(default_port);
    let host = authority.host().trim_matches(['[', ']']);
    let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("resolving {host}: {e}"))?;
    let mut last = format!("{host} resolved to no address");
    for addr in addrs {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
        let Ok(socket) = socket else { continue };
        let _ = socket.set_keepalive(true);
        let _ = socket.set_nodelay(true);
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}
