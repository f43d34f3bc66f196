//! One client must never hurt another (issue 14), against the real binary: an upload the origin did not
//! wait for, a client that stops reading (HTTP/1.1 and HTTP/2 with a closed window), the per-origin
//! connection cap, a full admin listener and idle HTTP/2 handshakes, `Connection` naming injected headers,
//! methods with no place at an origin, and requests that name two hosts. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::process::Proc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The binary on `toml` (info logs, so the bound addresses can be read), in a folder of its own.
struct Running {
    proc: Proc,
    _dir: tempfile::TempDir,
}

async fn run(toml: &str) -> (Running, SocketAddr, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("edgesplit.toml");
    std::fs::write(&path, toml.replace("level = \"warn\"", "level = \"info\"")).unwrap();
    let mut proc = Proc::start(&path);
    let (addr, admin) = (proc.addr("http").await, proc.admin().await);
    (Running { proc, _dir: dir }, addr, admin)
}

/// One worker, so that every request shares one origin pool: what one client leaves in it, the next
/// one gets.
const ONE_WORKER: &str = "[limits]\nworkers = 1\n";

/// Reads one HTTP/1.1 response head (and the body of a `content-length: 0` or short one) from `s`.
async fn read_head(s: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts the origin's response bodies that ended before they were sent whole: the origin saw its
/// connection (or stream) go away.
#[derive(Default)]
struct Cut(AtomicUsize);

struct OnDrop(Arc<Cut>, bool);
impl OnDrop {
    fn finished(&mut self) {
        self.1 = true;
    }
}
impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.0.fetch_add(1, Relaxed);
        }
    }
}

/// An origin whose `/big` answers 1 GiB in 64 KiB chunks (more than any socket buffers hold), counting
/// the bodies it never finished; `/drip` answers ten chunks 700 ms apart; anything else is a short `ok`.
async fn big_origin() -> (Origin, Arc<Cut>) {
    let cut = Arc::new(Cut::default());
    let c = cut.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let c = c.clone();
        async move {
            let (chunks, pause) = match req.uri().path() {
                "/big" => (16 * 1024, Duration::ZERO),
                "/drip" => (10, Duration::from_millis(700)),
                _ => return Response::new(full("ok")),
            };
            let mut guard = OnDrop(c, false);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::iter(0..chunks).then(move |i| {
                if i == chunks - 1 {
                    guard.finished();
                }
                let chunk = chunk.clone();
                async move {
                    tokio::time::sleep(pause).await;
                    Ok::<_, hyper::Error>(Frame::data(chunk))
                }
            });
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
    })
    .await;
    (origin, cut)
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// === 1. an upload the origin did not wait for ===

/// A keep-alive origin written by hand, as nginx behaves: `/upload` is refused with a 401 at once, and
/// its body is then read and discarded on the same connection, which serves the next request after it.
/// hyper's server would close such a connection instead, hiding the problem.
async fn early_answering_origin() -> (SocketAddr, TaskGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    buf.drain(..end);
                    let upload = head.starts_with("post /upload");
                    if upload {
                        let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
                    }
                    while buf.len() < length {
                        match s.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    buf.drain(..length);
                    if !upload {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext").await;
                    }
                }
            });
        }
    });
    (addr, TaskGuard(task))
}

#[tokio::test]
async fn an_upload_the_origin_answered_early_never_holds_up_the_next_client() {
    let (origin, _task) = early_answering_origin().await;
    let origin = format!("http://{origin}");
    let extra = format!("{ONE_WORKER}[timeouts]\nupstream_response = \"3s\"\n");
    let (_edge, addr, _) = run(&simple_config(&origin, None, &extra)).await;

    // Client A starts a large upload, is refused, and then stalls with its body unsent.
    let mut a = TcpStream::connect(addr).await.unwrap();
    a.write_all(b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1000000\r\n\r\n0123456789").await.unwrap();
    let head = read_head(&mut a, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Client B, on the same worker, must not wait behind A's body (before the fix: a 504 after 3 s).
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = get(&format!("http://{addr}/next")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "next"));
        assert!(started.elapsed() < Duration::from_secs(2), "waited {:?} behind another client", started.elapsed());
    }
    drop(a);
}

// === 2. a client that stops reading ===

#[tokio::test]
async fn an_http1_client_that_never_reads_releases_its_origin_connection_at_the_send_timeout() {
    let (origin, cut) = big_origin().await;
    let extra = "[timeouts]\nclient_send = \"1s\"\n";
    let (edge, addr, admin) = run(&simple_config(&origin.url(), None, extra)).await;

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: web.test\r\n\r\n").await.unwrap();
    // It never reads: the origin's body must be cut (its connection closed) soon after `client_send`.
    wait_until("origin connection released", Duration::from_secs(10), || cut.0.load(Relaxed) == 1).await;
    // And the client's connection is closed: reading drains what was buffered, then ends.
    let closed = closed_within(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "the client connection stayed open:\n{}", edge.proc.log());
    let (_, _, m) = get(&format!("http://{admin}/metrics")).await;
    assert!(m.contains("edgesplit_send_timeouts_total 1"), "{m}");
    // Another client is served as usual.
    assert_eq!(get(&format!("http://{addr}/")).await.0, StatusCode::OK);
    drop(edge);
}

#[tokio::test]
async fn http2_streams_with_a_closed_window_release_their_origin_connections_at_the_send_timeout() {
    let (origin, cut) = big_origin().await;
    let extra = "[timeouts]\nclient_send = \"1s\"\n";
    let (edge, addr, _) = run(&simple_config(&origin.url(), None, extra)).await;

    // An h2c client that opens no window at all for its streams' data.
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake::<_, Empty<Bytes>>(io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut held = Vec::new();
    for _ in 0..20 {
        let req = Request::get(format!("http://{addr}/big")).body(Empty::new()).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        held.push(resp); // never read
    }
    // Before the fix the 20 origin connections stayed busy well past every timeout.
    wait_until("all 20 origin connections released", Duration::from_secs(10), || cut.0.load(Relaxed) == 20).await;
    let finished = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(finished.is_ok(), "the HTTP/2 connection stayed open");
    drop((held, edge));
}

#[tokio::test]
async fn a_response_waiting_on_a_slow_origin_is_not_cut_at_the_send_timeout() {
    // The origin takes 700 ms per chunk, 7 s in all, against a 1 s send timeout: the client is reading,
    // the origin is slow, and that is no reason to cut anything.
    let (origin, cut) = big_origin().await;
    let extra = "[timeouts]\nclient_send = \"1s\"\n";
    let (_edge, addr, _) = run(&simple_config(&origin.url(), None, extra)).await;
    let (status, _, body) = get(&format!("http://{addr}/drip")).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 10 * 64 * 1024));
    assert_eq!(cut.0.load(Relaxed), 0);
}

// === 3. the per-origin connection cap ===

#[tokio::test]
async fn past_the_per_origin_cap_a_request_is_a_quick_503_not_one_more_connection() {
    let open = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (o, m) = (open.clone(), most.clone());
    let origin = Origin::start(move |_req: Request<Incoming>| {
        let (o, m) = (o.clone(), m.clone());
        async move {
            let now = o.fetch_add(1, Relaxed) + 1;
            m.fetch_max(now, Relaxed);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            o.fetch_sub(1, Relaxed);
            Response::new(full("slow"))
        }
    })
    .await;
    // One worker: the cap is per worker.
    let extra = format!("{ONE_WORKER}[upstream]\nmax_connections_per_origin = 2\n");
    let (_edge, addr, admin) = run(&simple_config(&origin.url(), None, &extra)).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let url = format!("http://{addr}/");
            tokio::spawn(async move {
                let started = Instant::now();
                let (status, h, _) = get(&url).await;
                (status, h.get("retry-after").cloned(), started.elapsed())
            })
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::new();
    for c in calls {
        let (status, retry, took) = c.await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(retry.unwrap(), "1");
            assert!(took < Duration::from_secs(1), "a refusal waited {took:?}");
        }
        *by_status.entry(status.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(by_status, [(200, 2), (503, 4)].into(), "two connections served, the rest refused");
    assert_eq!(most.load(Relaxed), 2);
    let (_, _, m) = get(&format!("http://{admin}/metrics")).await;
    assert!(m.contains("edgesplit_upstream_errors_total{kind=\"limit\"} 4"), "{m}");
    // The connections came back: the next request is served.
    assert_eq!(get(&format!("http://{addr}/")).await.0, StatusCode::OK);
}

// === 4. the admin listener stays reachable; idle HTTP/2 handshakes are bounded ===

const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Whether the server closes `s` within `within` (reading and dropping whatever it sends first).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn probes_answer_while_idle_http2_connections_fill_the_admin_listener_and_those_are_closed() {
    let origin = Origin::echo("primary").await;
    let (_edge, _, admin) = run(&simple_config(&origin.url(), None, "")).await;
    // 260 connections that send the HTTP/2 preface and SETTINGS, then nothing: past the cap of 256.
    let mut idle = Vec::new();
    for _ in 0..260 {
        let mut s = TcpStream::connect(admin).await.unwrap();
        s.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let started = Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(3), get(&format!("http://{admin}{path}"))).await;
        let (status, _, _) = got.unwrap_or_else(|_| panic!("{path} did not answer with the listener full"));
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // The reserve serves probes only.
    let (status, _, body) = raw_status(admin, b"GET /projects HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(status, 503, "{body}");
    // The idle handshakes are closed at the admin idle timeout (10 s), all of them.
    let started = Instant::now();
    for s in &mut idle {
        let left = Duration::from_secs(20).saturating_sub(started.elapsed());
        assert!(closed_within(s, left).await, "an idle HTTP/2 admin connection stayed open");
    }
    // And the API is reachable again.
    let (status, _, _) = raw_status(admin, b"GET /projects HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(status, 200);
}

/// One raw HTTP/1.1 exchange: the status and the whole text.
async fn raw_status(addr: SocketAddr, req: &[u8]) -> (u16, String, String) {
    let text = raw(addr, req, Duration::from_secs(3)).await;
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, String::new(), text)
}

#[tokio::test]
async fn an_http2_handshake_that_sends_no_request_is_closed_at_the_header_timeout_on_a_proxy_listener() {
    let origin = Origin::echo("primary").await;
    let extra = "[timeouts]\nclient_header = \"1s\"\nclient_idle = \"60s\"\n";
    let (_edge, addr, _) = run(&simple_config(&origin.url(), None, extra)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await, "an h2c handshake with no request stayed open");
}

// === 5. injected headers survive `Connection` ===

const EVIDENTLY: &str = r#"
[distribution.evidently]
project = "shop"
entity = ["header:x-user-id"]
features = [{ feature = "banner", value_header = "x-banner-value" }]

[[evidently.projects]]
name = "shop"

[[evidently.features]]
project = "shop"
name = "banner"
variations = [{ name = "classic", value = { stringValue = "c" } }, { name = "bold", value = { stringValue = "b" } }]
defaultVariation = "classic"
"#;

#[tokio::test]
async fn connection_cannot_name_away_a_header_edgesplit_injects() {
    let origin = Origin::echo("primary").await;
    let (_edge, addr, _) = run(&simple_config(&origin.url(), None, EVIDENTLY)).await;
    let text = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: web.test\r\nx-user-id: u1\r\n\
          Connection: close, x-evidently-banner, x-banner-value, x-forwarded-for, x-forwarded-proto, \
          x-forwarded-host, via, x-client-drop\r\nx-client-drop: 1\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for injected in [
        "x-evidently-banner: classic",
        "x-banner-value: \"c\"",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: web.test",
        "via: 1.1 edgesplit",
    ] {
        assert!(text.contains(injected), "the origin did not get {injected}:\n{text}");
    }
    assert!(!text.contains("x-client-drop"), "the client's own hop-by-hop header must still go:\n{text}");
}

// === 6. methods with no place at an origin ===

#[tokio::test]
async fn connect_and_trace_are_answered_by_edgesplit_and_never_forwarded() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(req.method().to_string());
            Response::new(full("ok"))
        }
    })
    .await;
    let (_edge, addr, _) = run(&simple_config(&origin.url(), None, "")).await;
    for req in [
        &b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"[..],
        b"TRACE / HTTP/1.1\r\nHost: web.test\r\nCookie: secret=1\r\n\r\n",
    ] {
        let text = raw(addr, req, Duration::from_secs(3)).await;
        assert!(text.starts_with("HTTP/1.1 501"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
    assert!(seen.lock().unwrap().is_empty(), "forwarded: {:?}", seen.lock().unwrap());
    assert_eq!(get(&format!("http://{addr}/")).await.0, StatusCode::OK);
}

// === 7. one Host ===

#[tokio::test]
async fn requests_that_name_two_hosts_are_400_and_http2_cookie_crumbs_arrive_as_one_line() {
    let origin = Origin::echo("primary").await;
    let (_edge, addr, _) = run(&simple_config(&origin.url(), None, "")).await;
    for (what, req) in [
        ("two Host fields", &b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"[..]),
        ("absolute form against Host", b"GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n"),
    ] {
        let text = raw(addr, req, Duration::from_secs(3)).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{what}: {text}");
    }
    // Agreeing (in any case) is fine, and the target's authority is what the origin gets as Host.
    let text =
        raw(addr, b"GET http://A.test/x HTTP/1.1\r\nHost: a.TEST\r\nConnection: close\r\n\r\n", Duration::from_secs(3))
            .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("GET /x\n"), "{text}");

    // HTTP/2: `:authority` against `host`, then cookie crumbs to an HTTP/1.1 origin.
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake::<_, Empty<Bytes>>(io).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://a.test/").header("host", "b.test").body(Empty::new()).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let req =
        Request::get("http://a.test/").header("cookie", "a=1").header("cookie", "b=2").body(Empty::new()).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let cookies: Vec<&str> = body.lines().filter(|l| l.starts_with("cookie: ")).collect();
    assert_eq!(cookies, ["cookie: a=1; b=2"], "{body}");
}

// === 8. heads refused by hyper still count ===

#[tokio::test]
async fn a_431_edgesplit_answers_itself_is_logged_and_counted() {
    let origin = Origin::echo("primary").await;
    let (edge, addr, admin) = run(&simple_config(&origin.url(), None, "")).await;
    let big = format!("GET / HTTP/1.1\r\nHost: web.test\r\nx-big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let text = raw(addr, big.as_bytes(), Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    let line = edge.proc.find(&["edgesplit::access", "status=431"]);
    let line = match line {
        Some(l) => l,
        None => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            edge.proc.find(&["status=431"]).unwrap_or_else(|| panic!("no access line:\n{}", edge.proc.log()))
        }
    };
    assert!(line.contains("reason=head_refused"), "{line}");
    let (_, _, m) = get(&format!("http://{admin}/metrics")).await;
    assert!(m.contains("edgesplit_requests_total{distribution=\"\",target=\"\",status=\"4xx\"} 1"), "{m}");
}
