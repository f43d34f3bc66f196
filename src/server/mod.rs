//! Client-facing sockets: bind, accept under a connection cap, TLS with ALPN, HTTP/1.1 (our own server
//! for the common bodiless request, [`h1`], and hyper's for the rest) and HTTP/2 through hyper (h2c
//! prior knowledge on plain TCP, told from HTTP/1.1 by its first bytes), the per-connection watchdog
//! for the header-read and idle timeouts, and graceful drain.

pub mod h1;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Limits, ListenerConfig, Timeouts};
use crate::proxy::{Activity, ConnInfo, Proxy};

/// What every listener shares.
pub(crate) struct ServerCtx {
    pub proxy: Arc<Proxy>,
    /// One permit per open client connection (`limits.max_connections`).
    pub conns: Arc<Semaphore>,
    /// Every connection task; shutdown waits on it.
    pub tracker: TaskTracker,
    /// Cancelled once at shutdown: listeners stop, handshakes give up.
    pub shutdown: CancellationToken,
    /// Started once at shutdown, after `shutdown`: client connections close gracefully.
    pub drain: Drain,
    /// The threads that accept and serve client connections.
    pub workers: Workers,
}

/// Tells every client connection to close gracefully. A connection is woken through the token, on which
/// it registers once, and reads the flag on each wake: a load, where polling the token's future would take
/// two locks on every wake of every connection (issue 17).
#[derive(Default)]
pub(crate) struct Drain {
    started: AtomicBool,
    token: CancellationToken,
}

impl Drain {
    pub fn start(&self) {
        // The flag first: a connection the token wakes must find it set.
        self.started.store(true, Release);
        self.token.cancel();
    }

    fn started(&self) -> bool {
        self.started.load(Acquire)
    }
}

/// Per-listener settings read at each accept, so a reload changes them without rebinding.
pub(crate) struct ListenerSettings {
    pub tls: Option<TlsAcceptor>,
    pub timeouts: Timeouts,
    /// hyper's connection builders, configured once here rather than per connection.
    http1: http1::Builder,
    /// `limits.max_header_bytes` and `limits.max_headers`, for the heads [`h1`] parses itself.
    max_head: usize,
    max_fields: usize,
    http2: http2::Builder<TokioExecutor>,
}

/// Which protocol serves a connection: told by ALPN over TLS, by the first bytes on plain TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

impl ListenerSettings {
    pub fn new(config: &ListenerConfig, timeouts: Timeouts, limits: Limits) -> ListenerSettings {
        let tls = config.tls.as_ref().map(|t| TlsAcceptor::from(t.server_config.clone()));
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            // The watchdog below owns the header-read timeout: hyper's own timer also runs while a
            // keep-alive connection is idle, which would cut idle connections at the header timeout.
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes);
        // Left unset at hyper's own default: hyper then parses into an inline array, where a set limit makes
        // it fill `max_headers` slots one by one for every request head (about 1.7k instructions).
        if limits.max_headers != crate::config::DEFAULT_MAX_HEADERS {
            h1.max_headers(limits.max_headers);
        }
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // nginx's default: each stream may hold an origin connection.
            .max_concurrent_streams(128);
        ListenerSettings {
            tls,
            timeouts,
            http1: h1,
            http2: h2,
            max_head: limits.max_header_bytes,
            max_fields: limits.max_headers.min(h1::MAX_FIELDS),
        }
    }
}

/// A bound listener with its accept loop running.
pub(crate) struct RunningListener {
    pub name: String,
    /// The address as configured (port 0 stays 0), which identifies the listener across reloads.
    pub configured: SocketAddr,
    /// The address actually bound.
    pub local: SocketAddr,
    pub settings: Arc<ArcSwap<ListenerSettings>>,
    stop: CancellationToken,
}

impl RunningListener {
    /// Stops accepting; connections already open keep going.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Binds `addr` with SO_REUSEADDR and a deep backlog.
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    bind_socket(addr, false)
}

fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The data plane's threads: one single-threaded tokio runtime per core, each accepting on its own
/// SO_REUSEPORT socket of every listener and serving its connections start to finish, nginx style.
/// A request, its client connection and its pooled origin connection stay on one thread, so nothing on
/// the request path wakes another thread. The control plane and the admin API run on the main runtime.
pub(crate) struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stop: CancellationToken,
}

impl Workers {
    /// Starts `n` workers (at least one, at most [`crate::proxy::worker::MAX_WORKERS`]).
    pub fn start(n: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        for i in 0..n.clamp(1, crate::proxy::worker::MAX_WORKERS) {
            let (tx, rx) = std::sync::mpsc::channel();
            let stop = stop.clone();
            std::thread::Builder::new().name(format!("edgesplit-w{i}")).spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                crate::proxy::worker::set(i);
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    tokio::spawn(housekeeping());
                    stop.cancelled().await
                });
            })?;
            handles.push(rx.recv().map_err(|_| io::Error::other("a worker thread died at start"))??);
        }
        Ok(Workers { handles, stop })
    }

    /// Ends every worker thread; what still runs there is dropped. Called after the drain.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

thread_local! {
    /// Client connections this worker has opened or closed.
    static CHURN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A worker's once-a-second chores: sweeping its idle origin connections
/// ([`crate::proxy::pool::sweep_idle`]), and returning freed memory.
///
/// mimalloc returns freed pages to the OS lazily, on a later allocation or free by the same thread, once
/// its purge delay (1 s) has passed: a worker that goes quiet right after its connections close would
/// keep their memory for good, and one that goes quiet after a burst of new connections would keep what
/// their first requests used and freed. So once a second, for three seconds after connections opened or
/// closed, the worker asks mimalloc to collect what is past the delay. Costs one timer wake-up a second
/// per worker.
async fn housekeeping() {
    let (mut seen, mut ticks_left) = (0, 0u32);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::proxy::pool::sweep_idle();
        let churn = CHURN.get();
        if churn != seen {
            (seen, ticks_left) = (churn, 3);
        }
        if ticks_left > 0 {
            ticks_left -= 1;
            alloc_ctl::collect(false);
        }
    }
}

/// Binds a listener, one socket per worker, and starts the accept loops.
///
/// With several workers the sockets share the port through SO_REUSEPORT, and the kernel spreads new
/// connections across them. Because SO_REUSEPORT would also let a second edgesplit share a port in
/// use, the address is first bound once without it: a port taken by anyone fails as it should.
pub(crate) fn start_listener(
    config: &ListenerConfig,
    settings: ListenerSettings,
    ctx: &Arc<ServerCtx>,
) -> io::Result<RunningListener> {
    let workers = &ctx.workers.handles;
    let probe = {
        let _rt = workers[0].enter();
        bind_socket(config.addr, false)?
    };
    let local = probe.local_addr()?;
    let mut sockets = Vec::with_capacity(workers.len());
    if workers.len() == 1 {
        sockets.push(probe);
    } else {
        drop(probe);
        for w in workers {
            let _rt = w.enter();
            sockets.push(bind_socket(local, true)?);
        }
    }
    let settings = Arc::new(ArcSwap::from_pointee(settings));
    let stop = ctx.shutdown.child_token();
    for (w, listener) in workers.iter().zip(sockets) {
        w.spawn(accept_loop(listener, settings.clone(), ctx.clone(), stop.clone()));
    }
    tracing::info!(listener = %config.name, addr = %local, tls = config.tls.is_some(), workers = workers.len(), "Listening");
    Ok(RunningListener { name: config.name.clone(), configured: config.addr, local, settings, stop })
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<ArcSwap<ListenerSettings>>,
    ctx: Arc<ServerCtx>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, backoff = ?backoff, "Accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        // At the cap, this worker holds the new client unserved and accepts no more until a slot frees:
        // the others wait in the kernel's backlog (as HAProxy's maxconn). Accepting before taking the
        // permit matters with several workers: a permit taken first could sit idle on one worker while
        // a client waits on another's socket.
        let permit = tokio::select! {
            p = ctx.conns.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.cancelled() => return,
        };
        backoff = Duration::from_millis(5);
        let _ = stream.set_nodelay(true);
        let settings = settings.load_full();
        let ctx2 = ctx.clone();
        CHURN.set(CHURN.get().wrapping_add(1));
        ctx.tracker.spawn(async move {
            let _permit = permit;
            ctx2.proxy.metrics.open_connections.fetch_add(1, Relaxed);
            ctx2.proxy.metrics.connections_total.fetch_add(1, Relaxed);
            serve_tcp(stream, addr, &settings, &ctx2).await;
            ctx2.proxy.metrics.open_connections.fetch_sub(1, Relaxed);
            CHURN.set(CHURN.get().wrapping_add(1));
        });
    }
}

async fn serve_tcp(stream: TcpStream, addr: SocketAddr, settings: &Arc<ListenerSettings>, ctx: &Arc<ServerCtx>) {
    let info = Arc::new(ConnInfo::new(addr, settings.tls.is_some(), Watchdog::period(&settings.timeouts)));
    let mut io = Watched { inner: stream, info: info.clone(), replay: Replay::default() };
    match &settings.tls {
        None => {
            let protocol = tokio::select! {
                p = sniff(&mut io, &settings.timeouts) => p,
                _ = ctx.shutdown.cancelled() => return,
            };
            match protocol {
                Ok(protocol) => serve_io(io, protocol, info, settings, ctx).await,
                Err(e) => {
                    tracing::debug!(client.addr = %addr, error = %e, "Connection closed before its first request")
                }
            }
        }
        Some(acceptor) => {
            // The handshake in a box of its own, freed once it is done: inline, its state would size every
            // connection's task, plain ones too, and after it a dead 4 KB would stay in each TLS one. The
            // stream is boxed for the same reason (issue 17).
            let Some(tls) = Box::pin(handshake(io, acceptor, addr, settings, ctx)).await else { return };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_io(tls, if h2 { Protocol::Http2 } else { Protocol::Http1 }, info, settings, ctx).await
        }
    }
}

/// HTTP/2's connection preface: what an h2c client with prior knowledge sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a plain connection's first bytes until they are HTTP/2's preface or cannot be (one read for
/// an HTTP/1.1 request), and keeps them for hyper to read again. Waits up to `client_idle` for the
/// first byte and `client_header` for the rest, as the watchdog would.
async fn sniff(io: &mut Watched, t: &Timeouts) -> io::Result<Protocol> {
    use tokio::io::AsyncReadExt;
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no request");
    let mut wait = t.client_idle;
    let replay = &mut io.replay;
    while usize::from(replay.len) < PREFACE.len() {
        let free = &mut replay.bytes[usize::from(replay.len)..];
        let n = tokio::time::timeout(wait, io.inner.read(free)).await.map_err(|_| timed_out())??;
        if n == 0 {
            // Closed: hyper sees the end of the stream too, and says nothing.
            break;
        }
        replay.len += n as u8;
        if replay.bytes[..usize::from(replay.len)] != PREFACE[..usize::from(replay.len)] {
            break;
        }
        wait = t.client_header;
    }
    let reads = &io.info.activity.reads;
    reads.store(reads.load(Relaxed).wrapping_add(1), Relaxed);
    Ok(if replay.bytes == *PREFACE { Protocol::Http2 } else { Protocol::Http1 })
}

/// The TLS handshake, within the header timeout and until shutdown; `None` (logged) if it fails.
async fn handshake(
    io: Watched,
    acceptor: &TlsAcceptor,
    addr: SocketAddr,
    settings: &ListenerSettings,
    ctx: &ServerCtx,
) -> Option<Box<tokio_rustls::server::TlsStream<Watched>>> {
    let handshake = tokio::time::timeout(settings.timeouts.client_header, acceptor.accept(io));
    let tls = tokio::select! {
        r = handshake => r,
        _ = ctx.shutdown.cancelled() => return None,
    };
    match tls {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        Ok(Err(e)) => {
            tracing::debug!(client.addr = %addr, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(client.addr = %addr, "TLS handshake timed out");
            None
        }
    }
}

/// Serves `io` over HTTP/1.1 ([`h1`] first, hyper's connection from the first request it does not serve)
/// or HTTP/2 (hyper's). Each connection is boxed: in the task, the HTTP/1.1 one would be sized as the
/// larger HTTP/2 one (1.5 KB), and some compilers keep room for a connection twice in the future that
/// awaits it (issue 17).
async fn serve_io<I>(
    io: I,
    protocol: Protocol,
    info: Arc<ConnInfo>,
    settings: &Arc<ListenerSettings>,
    ctx: &Arc<ServerCtx>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        Protocol::Http1 => {
            let closing = Arc::new(AtomicBool::new(false));
            let conn =
                Box::pin(http1_connection(io, info.clone(), ctx.proxy.clone(), settings.clone(), closing.clone()));
            // Graceful shutdown sets `closing`: read between requests by `h1::serve`, passed on to hyper's.
            serve(conn, |_| closing.store(true, Relaxed), info, settings, ctx).await
        }
        Protocol::Http2 => {
            let svc = service(ctx.proxy.clone(), info.clone());
            let conn = Box::pin(settings.http2.serve_connection(TokioIo::new(io), svc));
            serve(conn, |c| c.graceful_shutdown(), info, settings, ctx).await
        }
    }
}

/// hyper's service: each request to [`Proxy::handle`].
#[allow(clippy::type_complexity)] // the future is `handle`'s opaque type: only its bounds can be written
fn service(
    proxy: Arc<Proxy>,
    info: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<crate::proxy::ProxyBody>,
    Error = std::convert::Infallible,
    Future = Pin<
        Box<impl Future<Output = Result<hyper::Response<crate::proxy::ProxyBody>, std::convert::Infallible>> + Send>,
    >,
> + Clone {
    service_fn(move |req| {
        // Boxed: hyper keeps the service's future inline in every connection, idle or not, and this one
        // is a few KB (2.4 KB in the release build). The allocation is paid per request instead: about
        // 0.5k instructions (1 %), for that much less per idle keep-alive connection (memory.sh).
        // The box is made first, so that the future is built in it rather than built and copied in.
        Pin::from(Box::write(Box::new_uninit(), proxy.clone().handle(info.clone(), req, false)))
    })
}

/// An HTTP/1.1 connection: [`h1::serve`] until a request is not its own, then hyper's server with the
/// bytes read so far, graceful shutdown passed on (`closing`).
async fn http1_connection<I>(
    mut io: I,
    info: Arc<ConnInfo>,
    proxy: Arc<Proxy>,
    settings: Arc<ListenerSettings>,
    closing: Arc<AtomicBool>,
) -> hyper::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let rest = match h1::serve(&mut io, &info, &proxy, settings.max_head, settings.max_fields, &closing).await {
        h1::Ended::Done => return Ok(()),
        h1::Ended::Hyper(rest) => rest,
    };
    let io = TokioIo::new(h1::Prefixed { prefix: rest, io });
    // Boxed: only connections handed over pay for hyper's (about 0.7 KB).
    let mut conn = Box::pin(settings.http1.serve_connection(io, service(proxy, info)).with_upgrades());
    let mut told = false;
    std::future::poll_fn(|cx| {
        if !told && closing.load(Relaxed) {
            told = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx)
    })
    .await
}

/// Drives a connection under the watchdog (idle, header and send timeouts) and the shutdown.
async fn serve<C>(
    mut conn: Pin<Box<C>>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    info: Arc<ConnInfo>,
    settings: &ListenerSettings,
    ctx: &Arc<ServerCtx>,
) where
    C: Future<Output = hyper::Result<()>>,
{
    let mut dog = Watchdog::new(&settings.timeouts);
    let mut tick = Tick::new(dog.period);
    let mut closing: Option<Instant> = None;
    // Polled once, which registers this task with the drain's token; kept (a dropped one unregisters),
    // and from then on `Drain::started` says.
    let mut drain = std::pin::pin!(ctx.drain.token.cancelled());
    let mut registered = false;
    loop {
        // By hand rather than `select!`: the connection first, and no lock on a wake (see `Drain`).
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Closed(r));
            }
            if closing.is_none() {
                let cancelled = !registered && {
                    registered = true;
                    drain.as_mut().poll(cx).is_ready()
                };
                if cancelled || ctx.drain.started() {
                    return Poll::Ready(Event::Drain);
                }
            }
            tick.poll_tick(cx).map(Event::Tick)
        })
        .await;
        match event {
            Event::Closed(r) => {
                if let Err(e) = r {
                    tracing::debug!(client.addr = %info.client, error = %e, "Connection closed with an error");
                    if let Some(status) = automatic_status(&e) {
                        answered_by_hyper(&ctx.proxy, &info, status);
                    }
                }
                return;
            }
            Event::Drain => {
                graceful_shutdown(conn.as_mut());
                closing = Some(Instant::now() + settings.timeouts.shutdown_grace);
            }
            Event::Tick(now) => {
                // Published before the connection is polled again (the loop's next turn), where a request
                // whose upstream deadline this tick passed sees it.
                info.tick(now);
                if closing.is_some_and(|deadline| now >= deadline) {
                    return;
                }
                match dog.check(&info.activity, now) {
                    Verdict::Fine => {}
                    Verdict::Idle if closing.is_none() => {
                        tracing::debug!(client.addr = %info.client, "Idle connection closed");
                        graceful_shutdown(conn.as_mut());
                        closing = Some(now + dog.period * 2);
                    }
                    Verdict::Idle => {}
                    Verdict::HeaderTimeout => {
                        tracing::debug!(client.addr = %info.client, "Client header timeout");
                        return;
                    }
                    Verdict::SendTimeout => {
                        // Dropping the connection drops its responses, and with them their origin
                        // connections (closed, not pooled: their bodies were cut short).
                        tracing::debug!(client.addr = %info.client, "Client send timeout: the client stopped reading");
                        ctx.proxy.metrics.send_timeouts.fetch_add(1, Relaxed);
                        return;
                    }
                }
            }
        }
    }
}

/// The watchdog's clock: fires every `period`, the next one a period after a late one (no burst).
///
/// A sleep reset by hand, not an `Interval`: once polled (its waker registered) it is polled again only
/// after it has fired, which `Sleep::is_elapsed` tells with one atomic load. An `Interval` is polled on
/// every wake-up of the connection, two or three per request: about 400 instructions a request
/// (callgrind). Boxed, as `Interval` boxes its sleep: inline it made every connection 127 B larger
/// (memory.sh).
struct Tick {
    sleep: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    /// Polled since the last reset, so the sleep holds the task's waker.
    armed: bool,
}

impl Tick {
    fn new(period: Duration) -> Tick {
        Tick { sleep: Box::pin(tokio::time::sleep_until(Instant::now() + period)), period, armed: false }
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.armed && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        // Outside the task's budget: with the budget spent, a sleep answers Pending without registering
        // the waker, and, polled again only once it has fired, it would never wake the connection.
        if std::pin::pin!(tokio::task::coop::unconstrained(self.sleep.as_mut())).poll(cx).is_ready() {
            let now = Instant::now();
            self.sleep.as_mut().reset(now + self.period);
            self.armed = false;
            return Poll::Ready(now);
        }
        self.armed = true;
        Poll::Pending
    }
}

/// What woke a connection's serve loop.
enum Event {
    Closed(hyper::Result<()>),
    Drain,
    Tick(Instant),
}

/// The status hyper's HTTP/1.1 server answered by itself for a request head it could not take (its
/// `on_error`: 400 for a malformed head, 414 for a long URI, 431 for a head past `max_header_bytes`).
fn automatic_status(e: &hyper::Error) -> Option<u16> {
    if !e.is_parse() || e.is_parse_version_h2() {
        return None;
    }
    if !e.is_parse_too_large() {
        return Some(400);
    }
    // hyper tells the two apart only in its message.
    Some(if e.to_string().contains("URI") { 414 } else { 431 })
}

/// A request hyper refused before edgesplit saw it still counts, and still writes its access-log line.
fn answered_by_hyper(proxy: &Proxy, info: &ConnInfo, status: u16) {
    proxy.metrics.unrouted_answers.record(status, Duration::ZERO);
    if proxy.access_log {
        tracing::info!(
            target: "edgesplit::access",
            client = %info.client,
            method = "-",
            host = "-",
            path = "-",
            proto = "HTTP/1.1",
            status,
            bytes = 0,
            duration_ms = 0.0,
            distribution = "-",
            target = "-",
            reason = "head_refused",
            upstream = "-",
            aborted = false,
            "access"
        );
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Fine,
    Idle,
    HeaderTimeout,
    /// A response has waited `client_send` for the client to take its bytes.
    SendTimeout,
}

/// Tells an idle connection (no request in flight, no byte received) from one that is slowly sending a
/// request head, and a busy one from one whose client stopped taking its responses (an HTTP/1.1 reader
/// that never reads, HTTP/2 streams with a zero window), from counters the request path bumps; checked
/// every `period`, so a timeout fires within two periods after it is due. Costs the request path a few
/// single-writer stores per request and response frame, and nothing per byte.
struct Watchdog {
    idle: Duration,
    header: Duration,
    send: Duration,
    period: Duration,
    requests: u64,
    reads: u64,
    pulls: u64,
    quiet_since: Instant,
    reading_since: Option<Instant>,
    /// When the client last took a frame while a response waited for it.
    taken_at: Instant,
}

impl Watchdog {
    /// An eighth of the shortest client timeout, within 10 ms and 1 s.
    fn period(t: &Timeouts) -> Duration {
        let shortest = t.client_idle.min(t.client_header).min(t.client_send);
        (shortest / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    fn new(t: &Timeouts) -> Watchdog {
        let now = Instant::now();
        Watchdog {
            idle: t.client_idle,
            header: t.client_header,
            send: t.client_send,
            period: Watchdog::period(t),
            requests: 0,
            reads: 0,
            pulls: 0,
            quiet_since: now,
            reading_since: None,
            taken_at: now,
        }
    }

    fn check(&mut self, a: &Activity, now: Instant) -> Verdict {
        let requests = a.requests.load(Relaxed);
        let reads = a.reads.load(Relaxed);
        let pulls = a.pulls.load(Relaxed);
        if a.waiting.load(Relaxed) == 0 || pulls != self.pulls {
            self.pulls = pulls;
            self.taken_at = now;
        } else if now.duration_since(self.taken_at) >= self.send {
            return Verdict::SendTimeout;
        }
        if a.in_flight.load(Relaxed) > 0 || requests != self.requests {
            self.requests = requests;
            self.reads = reads;
            self.quiet_since = now;
            self.reading_since = None;
            return Verdict::Fine;
        }
        if reads != self.reads {
            self.reads = reads;
            // The bytes came at most one period ago.
            self.reading_since.get_or_insert(now.checked_sub(self.period).unwrap_or(now));
        }
        match self.reading_since {
            Some(since) if now.duration_since(since) >= self.header => Verdict::HeaderTimeout,
            Some(_) => Verdict::Fine,
            None if now.duration_since(self.quiet_since) >= self.idle => Verdict::Idle,
            None => Verdict::Fine,
        }
    }
}

/// The client socket, counting reads for the watchdog, and giving back the bytes [`sniff`] read first.
struct Watched {
    inner: TcpStream,
    info: Arc<ConnInfo>,
    replay: Replay,
}

/// The first bytes of a plain connection, read to tell HTTP/2 from HTTP/1.1 (inline: no allocation).
#[derive(Default)]
struct Replay {
    bytes: [u8; 24],
    len: u8,
    taken: u8,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let r = &mut self.replay;
        if r.taken < r.len {
            // A read of its own, as hyper-util's `Rewind` does: hyper's buffer then grows (and its limits
            // trip) as they always did.
            let left = &r.bytes[usize::from(r.taken)..usize::from(r.len)];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            r.taken += n as u8;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            // Only this connection's task writes `reads`: a plain store, no locked add.
            let reads = &self.info.activity.reads;
            reads.store(reads.load(Relaxed).wrapping_add(1), Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_watchdog_ticks_even_when_polled_with_the_task_budget_spent() {
        // Each poll first spends the task's whole budget (as a busy connection can), then polls the tick:
        // it must still hold the waker, or nothing would wake the task when it is due.
        let mut tick = Tick::new(Duration::from_millis(20));
        let spent_then_tick = std::future::poll_fn(|cx| {
            while std::pin::pin!(tokio::task::coop::consume_budget()).poll(cx).is_ready() {}
            tick.poll_tick(cx)
        });
        let started = Instant::now();
        let at = tokio::time::timeout(Duration::from_secs(5), spent_then_tick).await.expect("the tick never fired");
        assert!(at >= started + Duration::from_millis(20));
        // And again after its reset, a period later.
        let again = tokio::time::timeout(Duration::from_secs(5), std::future::poll_fn(|cx| tick.poll_tick(cx)))
            .await
            .expect("the second tick never fired");
        assert!(again >= at + Duration::from_millis(20));
    }

    fn timeouts(header: u64, idle: u64) -> Timeouts {
        Timeouts {
            client_header: Duration::from_secs(header),
            client_idle: Duration::from_secs(idle),
            client_send: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(1),
            upstream_response: Duration::from_secs(1),
            upstream_read: Duration::from_secs(1),
            upstream_idle: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
            config_poll: Duration::from_secs(1),
            rollout_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn idle_connection_times_out_after_idle_not_header() {
        let mut dog = Watchdog::new(&timeouts(8, 40));
        let a = Activity::default();
        let t0 = Instant::now();
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(10)), Verdict::Fine);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(39)), Verdict::Fine);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(40)), Verdict::Idle);
    }

    #[test]
    fn slow_head_times_out_after_header() {
        let mut dog = Watchdog::new(&timeouts(8, 40));
        let a = Activity::default();
        let t0 = Instant::now();
        a.reads.store(1, Relaxed);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(1)), Verdict::Fine);
        a.reads.store(2, Relaxed);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(5)), Verdict::Fine);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(9)), Verdict::HeaderTimeout);
    }

    #[test]
    fn a_response_the_client_does_not_take_times_out_after_send() {
        let mut dog = Watchdog::new(&timeouts(8, 40));
        let a = Activity::default();
        let t0 = Instant::now();
        a.in_flight.store(1, Relaxed);
        a.wait_for_client();
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(30)), Verdict::Fine);
        // Taken: the clock starts again.
        a.client_pulled();
        a.wait_for_client();
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(50)), Verdict::Fine);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(109)), Verdict::Fine);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(110)), Verdict::SendTimeout);
    }

    #[test]
    fn a_response_waiting_on_its_origin_is_not_a_send_timeout() {
        let mut dog = Watchdog::new(&timeouts(8, 40));
        let a = Activity::default();
        let t0 = Instant::now();
        a.in_flight.store(1, Relaxed);
        a.wait_for_client();
        a.client_pulled(); // polled: now the origin owes the next frame
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(1000)), Verdict::Fine);
    }

    #[test]
    fn requests_in_flight_are_never_timed_out() {
        let mut dog = Watchdog::new(&timeouts(1, 1));
        let a = Activity::default();
        a.in_flight.store(1, Relaxed);
        a.reads.store(5, Relaxed);
        let t0 = Instant::now();
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(100)), Verdict::Fine);
        a.in_flight.store(0, Relaxed);
        a.requests.store(1, Relaxed);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(101)), Verdict::Fine);
        assert_eq!(dog.check(&a, t0 + Duration::from_secs(102)), Verdict::Idle);
    }
}
