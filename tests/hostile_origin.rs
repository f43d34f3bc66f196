//! Misbehaving origins: raw-TCP origins that write scripted bytes, against edgesplit in-process, driven
//! by a real HTTP/1.1 client. They pin how edgesplit's HTTP/1.1 client towards origins frames responses
//! and when it reuses an origin connection, whatever that client is built on:
//!
//! - framing that must be honoured, and the connection reuse that goes with it: Content-Length (reused);
//!   chunked with chunk extensions and upper- and lower-case hex (reused), and with a trailer section
//!   (exact, and reused); a close-delimited body (a new connection next); HTTP/1.0 without `Connection: keep-alive` (a new
//!   connection) and with it (reused); `Connection: close` on HTTP/1.1 (a new connection);
//! - responses with no body whatever their headers say: `100 Continue` and `103 Early Hints` before the
//!   final response, the answer to HEAD with `Content-Length: 1000` (passed on), 204 and 304 with
//!   `Content-Length: 5`; each without a hang, and the connection reused;
//! - malformed responses, each a prompt 502 (or, once the head has gone out, a body that fails, never
//!   one that looks whole), after which edgesplit serves the next request from a new origin connection:
//!   garbage instead of a status line, a non-numeric status code, a non-numeric Content-Length, two
//!   differing Content-Lengths, a head over 500 KB, 101 header fields, a close with no response; an
//!   invalid chunk size, a chunk size past u64, a body cut short of its Content-Length;
//! - timing and state: a body silent past `timeouts.upstream_read` cut short, and one that trickles
//!   slower than it in all but never pauses that long delivered whole; a head trickled a byte every 5 ms; bytes past the Content-Length, and a response
//!   sent unasked on an idle connection, never served as the next response (no response smuggling
//!   through the pool); an idle connection the origin closed is not used, and edgesplit closes its side
//!   within seconds, as it does one idle past `timeouts.upstream_idle`; `101 Switching Protocols` to
//!   a request that asked for no upgrade is a 502, never a tunnel.
//!
//! Each origin records the connections it accepted and the request heads read on each, so a test says
//! which requests shared an origin connection. The client is one HTTP/1.1 connection to edgesplit (no
//! pool), opened again only where edgesplit or the client closed it, and edgesplit runs one worker, so
//! a test's requests reach one origin pool in order. Every wait is bounded; everything listens on
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any one exchange through edgesplit may take before the test calls it a hang.
const WAIT: Duration = Duration::from_secs(4);
/// How long an origin connection waits for the next request head before it gives up.
const ORIGIN_IDLE: Duration = Duration::from_secs(10);
const HOST: &str = "hostile.test";

// === the scripted origin ===

/// One thing a scripted origin does once it has read a request head.
#[derive(Clone, Debug)]
enum Step {
    /// Writes these bytes at once.
    Send(Vec<u8>),
    /// Writes these bytes one at a time, this far apart.
    Trickle(Vec<u8>, Duration),
    Pause(Duration),
    /// Closes the connection (FIN); nothing after it is played.
    Close,
}

fn send(bytes: impl AsRef<[u8]>) -> Step {
    Step::Send(bytes.as_ref().to_vec())
}

/// A 200 with `body` and its Content-Length.
fn with_length(body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body a well-behaved answer carries: which origin connection and which request on it.
fn tag(conn: usize, req: usize) -> String {
    format!("c{conn}r{req}")
}

/// A well-behaved answer: a 200 with Content-Length, its body [`tag`]ged.
fn tagged(conn: usize, req: usize) -> Vec<Step> {
    vec![send(with_length(tag(conn, req)))]
}

type Heads = Arc<Mutex<Vec<Vec<String>>>>;
type Script = dyn Fn(usize, usize) -> Vec<Step> + Send + Sync;

/// An origin on raw TCP. For request `req` (from 0) of accepted connection `conn` (from 0), once it has
/// read the whole request head (up to the blank line, and a `Content-Length` body after it), it plays
/// `script(conn, req)`, then waits for the next request on that connection, until a [`Step::Close`],
/// the peer's close, or [`ORIGIN_IDLE`].
struct RawOrigin {
    addr: SocketAddr,
    heads: Heads,
    _task: TaskGuard,
}

impl RawOrigin {
    async fn start(script: impl Fn(usize, usize) -> Vec<Step> + Send + Sync + 'static) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads: Heads = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let log = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let conn = {
                    let mut log = log.lock().unwrap();
                    log.push(Vec::new());
                    log.len() - 1
                };
                tokio::spawn(serve(stream, conn, script.clone(), log.clone()));
            }
        });
        RawOrigin { addr, heads, _task: TaskGuard(task) }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Per accepted connection, in order, the request heads read on it, whole.
    fn heads(&self) -> Vec<Vec<String>> {
        self.heads.lock().unwrap().clone()
    }

    /// Per accepted connection, `METHOD target` of each request read on it.
    fn requests(&self) -> Vec<Vec<String>> {
        let line = |head: &String| head.split(' ').take(2).collect::<Vec<_>>().join(" ");
        self.heads().iter().map(|conn| conn.iter().map(line).collect()).collect()
    }
}

/// One origin connection: read a head, play the script's answer, again.
async fn serve(mut s: TcpStream, conn: usize, script: Arc<Script>, heads: Heads) {
    // Each trickled byte is a segment of its own, not held back by Nagle until an ACK.
    let _ = s.set_nodelay(true);
    let mut pending = Vec::new();
    for req in 0.. {
        let Some(head) = read_head(&mut s, &mut pending).await else { return };
        heads.lock().unwrap()[conn].push(String::from_utf8_lossy(&head).into_owned());
        for step in script(conn, req) {
            let written = match step {
                Step::Send(bytes) => s.write_all(&bytes).await,
                Step::Trickle(bytes, gap) => trickle(&mut s, &bytes, gap).await,
                Step::Pause(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Step::Close => {
                    let _ = s.shutdown().await;
                    return;
                }
            };
            // Edgesplit may close while a hostile answer is still being written (a head too large).
            if written.is_err() {
                return;
            }
        }
    }
}

async fn trickle(s: &mut TcpStream, bytes: &[u8], gap: Duration) -> std::io::Result<()> {
    for b in bytes {
        s.write_all(std::slice::from_ref(b)).await?;
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

/// The next request head (through its blank line) from `pending` and then `s`; `None` once the peer
/// closes, fails or stays silent for [`ORIGIN_IDLE`].
async fn read_head(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            // A request's Content-Length body is read too, and dropped.
            let body = String::from_utf8_lossy(&pending[..end]).lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
            });
            let whole = end + 4 + body.unwrap_or(0);
            if pending.len() >= whole {
                let rest = pending.split_off(whole);
                let mut head = std::mem::replace(pending, rest);
                head.truncate(end + 4);
                return Some(head);
            }
        }
        match tokio::time::timeout(ORIGIN_IDLE, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => pending.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

// === the client ===

/// A response as the client got it; `body` is `Err` when it was cut short or failed.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, String>,
}

impl Answer {
    /// The body, which must have arrived whole.
    fn text(&self) -> String {
        let body = self.body.as_ref().unwrap_or_else(|e| panic!("{}: body failed: {e}", self.status));
        String::from_utf8_lossy(body).into_owned()
    }

    /// Asserts a 200 with `body`.
    fn assert_ok(&self, body: &str) {
        assert_eq!((self.status, self.text().as_str()), (StatusCode::OK, body));
    }
}

/// One HTTP/1.1 client connection to edgesplit, with no pool: requests go over it one after another.
struct EdgeConn {
    addr: SocketAddr,
    sender: http1::SendRequest<Empty<Bytes>>,
    _task: TaskGuard,
}

impl EdgeConn {
    async fn open(addr: SocketAddr) -> EdgeConn {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await.expect("connect timed out").unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        EdgeConn { addr, sender, _task: TaskGuard(task) }
    }

    /// Sends `method path` (no body) and reads the answer to its end. `Err` when no response came (the
    /// connection closed first); panics on a hang.
    async fn try_request(&mut self, method: &str, path: &str) -> Result<Answer, String> {
        let req = Request::builder().method(method).uri(path).header("host", HOST).body(Empty::new()).unwrap();
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await.map_err(|e| format!("connection unusable: {e:?}"))?;
            let resp = sender.send_request(req).await.map_err(|e| format!("no response: {e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes()).map_err(|e| format!("{e:?}"));
            Ok(Answer { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no complete answer within {WAIT:?} (a hang)"))
    }

    /// [`EdgeConn::try_request`], which must get a response.
    async fn request(&mut self, method: &str, path: &str) -> Answer {
        self.try_request(method, path).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.request("GET", path).await
    }

    /// A GET over this connection, or over a new one if this one was closed (by edgesplit after a
    /// response it had to cut short, or by the client after an HTTP/1.0 answer without keep-alive).
    async fn get_again(&mut self, path: &str) -> Answer {
        if !self.sender.is_closed()
            && let Ok(answer) = self.try_request("GET", path).await
        {
            return answer;
        }
        *self = EdgeConn::open(self.addr).await;
        self.get(path).await
    }
}

/// One data-plane worker: origin connections are pooled per worker, so with one the reuse a test asserts
/// does not hang on which worker a new client connection lands on.
const ONE_WORKER: &str = "[limits]\nworkers = 1\n";

/// A scripted origin, edgesplit in front of it (one worker), and a client connection to edgesplit.
async fn setup(script: impl Fn(usize, usize) -> Vec<Step> + Send + Sync + 'static) -> (RawOrigin, Edge, EdgeConn) {
    let origin = RawOrigin::start(script).await;
    let edge = Edge::start(&simple_config(&origin.url(), None, ONE_WORKER)).await;
    let client = EdgeConn::open(edge.addr("http")).await;
    (origin, edge, client)
}

/// `n` bytes of a pattern that shows a lost, doubled or shifted stretch.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36]).collect()
}

// === framing and connection reuse ===

/// Requests with no body go through edgesplit's own client and uploads through hyper's; one pooled
/// origin connection carries both kinds, handed from one client to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_bodiless_requests_take_turns_on_one_origin_connection() {
    let (origin, edge, mut client) = setup(tagged).await;
    let upload = |path: &str| {
        let url = format!("http://{}{path}", edge.addr("http"));
        Request::post(url).header("host", HOST).body(full("an upload")).unwrap()
    };
    client.get("/a").await.assert_ok("c0r0");
    let (status, _, body) = support::send(&http1_client(), upload("/b")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "c0r1"));
    client.get("/c").await.assert_ok("c0r2");
    let (status, _, body) = support::send(&http1_client(), upload("/d")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "c0r3"));
    client.get("/e").await.assert_ok("c0r4");
    assert_eq!(origin.requests(), vec![vec!["GET /a", "POST /b", "GET /c", "POST /d", "GET /e"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_body_is_delivered_whole_and_one_origin_connection_serves_both_requests() {
    let big = pattern(200_000);
    let body = big.clone();
    let (origin, _edge, mut client) = setup(move |conn, req| match req {
        0 => vec![send(with_length(&body))],
        _ => tagged(conn, req),
    })
    .await;
    let first = client.get("/one").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.as_ref().unwrap() == &big, "the body was not delivered whole and exact");
    let second = client.get("/two").await;
    assert_eq!(origin.requests(), vec![vec!["GET /one", "GET /two"]]);
    second.assert_ok("c0r1");
    // A real HTTP/1.1 request head reached the origin, with the client's Host.
    let head = &origin.heads()[0][0];
    assert!(head.starts_with("GET /one HTTP/1.1\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!("\r\nhost: {HOST}\r\n")), "{head}");
}

/// A chunked 200 with chunk extensions (one with a quoted `;`), sizes in upper- and lower-case hex, a
/// 4095-byte chunk, and, with `trailers`, a trailer section; and the body it carries.
fn chunked(trailers: bool) -> (Vec<u8>, Vec<u8>) {
    let long = pattern(0xFFF);
    let mut wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n".to_vec();
    if trailers {
        wire.extend_from_slice(b"trailer: x-checksum\r\n");
    }
    wire.extend_from_slice(b"\r\n5;ext=1\r\nhello\r\n");
    wire.extend_from_slice(b"A\r\n0123456789\r\n");
    wire.extend_from_slice(b"b;name=\"quoted;value\";flag\r\nABCDEFGHIJK\r\n");
    wire.extend_from_slice(b"1f\r\nthirty-one bytes, lower-case 1f\r\n");
    wire.extend_from_slice(b"FFF\r\n");
    wire.extend_from_slice(&long);
    wire.extend_from_slice(b"\r\n0\r\n");
    if trailers {
        wire.extend_from_slice(b"x-checksum: abc\r\nx-other: 1\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let mut body = b"hello0123456789ABCDEFGHIJKthirty-one bytes, lower-case 1f".to_vec();
    body.extend_from_slice(&long);
    (wire, body)
}

/// The first request is answered with [`chunked`]`(trailers)`, later ones with a chunked [`tag`], its
/// size line and data in two writes. Checks the first answer's body exact; returns the second answer,
/// and the origin.
async fn chunked_then_again(trailers: bool) -> (Answer, RawOrigin) {
    let (wire, want) = chunked(trailers);
    let (origin, _edge, mut client) = setup(move |conn, req| match (conn, req) {
        (0, 0) => vec![send(&wire)],
        _ => vec![
            send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;x\r\n"),
            Step::Pause(Duration::from_millis(20)),
            send(format!("{}\r\n0\r\n\r\n", tag(conn, req))),
        ],
    })
    .await;
    let first = client.get("/chunked").await;
    assert_eq!(first.status, StatusCode::OK);
    let got = first.body.as_ref().unwrap_or_else(|e| panic!("chunked body failed: {e}"));
    assert!(got == &want, "chunked body not exact: {} bytes, want {}", got.len(), want.len());
    (client.get("/again").await, origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_with_extensions_and_mixed_case_hex_is_exact_and_the_connection_reused() {
    let (again, origin) = chunked_then_again(false).await;
    assert_eq!(origin.requests(), vec![vec!["GET /chunked", "GET /again"]]);
    again.assert_ok("c0r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_with_a_trailer_section_is_exact_and_the_next_request_is_served() {
    let (again, origin) = chunked_then_again(true).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(matches!(again.text().as_str(), "c0r1" | "c1r0"), "{}", again.text());
    assert_eq!(origin.requests().concat(), ["GET /chunked", "GET /again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_with_a_trailer_section_leaves_the_connection_reusable() {
    let (again, origin) = chunked_then_again(true).await;
    assert_eq!(origin.requests(), vec![vec!["GET /chunked", "GET /again"]]);
    again.assert_ok("c0r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_body_is_delivered_whole_and_the_next_request_opens_a_new_connection() {
    let big = pattern(100_000);
    let body = big.clone();
    let (origin, _edge, mut client) = setup(move |conn, req| match (conn, req) {
        (0, 0) => vec![
            send(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n"),
            send(&body[..50_000]),
            Step::Pause(Duration::from_millis(30)),
            send(&body[50_000..]),
            Step::Pause(Duration::from_millis(30)),
            Step::Close,
        ],
        _ => tagged(conn, req),
    })
    .await;
    let first = client.get("/until-close").await;
    assert_eq!(first.status, StatusCode::OK);
    let got = first.body.as_ref().unwrap_or_else(|e| panic!("close-delimited body failed: {e}"));
    assert!(got == &big, "close-delimited body not whole: {} bytes", got.len());
    let next = client.get("/next").await;
    assert_eq!(origin.requests(), vec![vec!["GET /until-close"], vec!["GET /next"]]);
    next.assert_ok("c1r0");
}

/// The answer to the first request on connection 0 is `first`; the origin then keeps the connection
/// open and would answer more requests on it (`stale`), so only edgesplit's choice makes a new one.
fn first_then_open(first: &'static [u8]) -> impl Fn(usize, usize) -> Vec<Step> + Send + Sync + 'static {
    move |conn, req| match (conn, req) {
        (0, 0) => vec![send(first)],
        (0, _) => vec![send(with_length("stale"))],
        _ => tagged(conn, req),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_response_without_keep_alive_is_delivered_and_its_connection_not_reused() {
    let (origin, _edge, mut client) =
        setup(first_then_open(b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello")).await;
    client.get("/old").await.assert_ok("hello");
    // Edgesplit answers in its own version, HTTP/1.1: the client's connection stays open.
    let next = client.get("/next").await;
    assert_eq!(origin.requests(), vec![vec!["GET /old"], vec!["GET /next"]]);
    next.assert_ok("c1r0");
}

/// A well-behaved answer in HTTP/1.0 with `Connection: keep-alive`, its body [`tag`]ged.
fn tagged_http10_keep_alive(conn: usize, req: usize) -> Vec<Step> {
    let body = tag(conn, req);
    let head = format!("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: {}\r\n\r\n", body.len());
    vec![send(head + &body)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_response_with_keep_alive_and_content_length_reuses_the_connection() {
    let (origin, _edge, mut client) = setup(tagged_http10_keep_alive).await;
    client.get("/a").await.assert_ok("c0r0");
    let next = client.get("/b").await;
    assert_eq!(origin.requests(), vec![vec!["GET /a", "GET /b"]]);
    next.assert_ok("c0r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_answered_in_http10_reaches_the_client_as_http11() {
    // Uploads go through hyper's client; its response keeps the origin's version unless edgesplit sets
    // its own. Two requests on one client connection: the second is answered too (not closed after 1.0).
    let (_origin, edge, _client) = setup(tagged_http10_keep_alive).await;
    let upload = format!("POST /up HTTP/1.1\r\nhost: {HOST}\r\ncontent-length: 3\r\n\r\nabc");
    let text = raw(edge.addr("http"), format!("{upload}{upload}").as_bytes(), Duration::from_millis(500)).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(!text.contains("HTTP/1.0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_on_an_http11_response_is_honoured_and_the_next_request_opens_a_new_connection() {
    let (origin, _edge, mut client) =
        setup(first_then_open(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello")).await;
    client.get("/closing").await.assert_ok("hello");
    let next = client.get("/next").await;
    assert_eq!(origin.requests(), vec![vec!["GET /closing"], vec!["GET /next"]]);
    next.assert_ok("c1r0");
}

// === responses with no body, whatever their headers say ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_100_and_103_before_the_final_response_are_passed_over() {
    const INFORMATIONAL: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n";
    let (origin, _edge, mut client) = setup(|conn, req| match req {
        // All in one write.
        0 => vec![send([INFORMATIONAL, &with_length("final")[..]].concat())],
        // Each in a write of its own.
        _ => vec![
            send(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Step::Pause(Duration::from_millis(20)),
            send(b"HTTP/1.1 103 Early Hints\r\nlink: </app.js>; rel=preload; as=script\r\n\r\n"),
            Step::Pause(Duration::from_millis(20)),
            send(with_length(tag(conn, req))),
        ],
    })
    .await;
    client.get("/hints").await.assert_ok("final");
    let apart = client.get("/hints-apart").await;
    assert_eq!(origin.requests(), vec![vec!["GET /hints", "GET /hints-apart"]]);
    apart.assert_ok("c0r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answered_with_content_length_has_no_body_and_the_connection_is_reused() {
    let (origin, _edge, mut client) = setup(|conn, req| match req {
        0 => vec![send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\ncontent-type: text/html\r\n\r\n")],
        _ => tagged(conn, req),
    })
    .await;
    let head = client.request("HEAD", "/page").await;
    assert_eq!((head.status, head.text().as_str()), (StatusCode::OK, ""));
    assert_eq!(head.headers.get("content-length").map(|v| v.as_bytes()), Some(&b"1000"[..]), "{:?}", head.headers);
    let after = client.get("/after-head").await;
    assert_eq!(origin.requests(), vec![vec!["HEAD /page", "GET /after-head"]]);
    after.assert_ok("c0r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_content_and_not_modified_with_content_length_have_no_body_and_the_connection_is_reused() {
    let (origin, _edge, mut client) = setup(|conn, req| match req {
        0 => vec![send(b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n")],
        1 => vec![send(b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 5\r\n\r\n")],
        _ => tagged(conn, req),
    })
    .await;
    let started = Instant::now();
    let none = client.get("/204").await;
    assert_eq!((none.status, none.text().as_str()), (StatusCode::NO_CONTENT, ""));
    let same = client.get("/304").await;
    assert_eq!((same.status, same.text().as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(same.headers.get("etag").map(|v| v.as_bytes()), Some(&b"\"v1\""[..]));
    let after = client.get("/after").await;
    assert!(started.elapsed() < Duration::from_secs(2), "waited for a body: {:?}", started.elapsed());
    assert_eq!(origin.requests(), vec![vec!["GET /204", "GET /304", "GET /after"]]);
    after.assert_ok("c0r2");
}

// === malformed responses ===

/// The first origin connection answers with `bad`, every later one well: the client gets a prompt 502,
/// then a 200 from a new origin connection (the broken one is never used again).
async fn bad_head_is_502_and_then_a_new_connection_serves(bad: Vec<Step>) {
    let (origin, _edge, mut client) = setup(move |conn, req| match conn {
        0 => bad.clone(),
        _ => tagged(conn, req),
    })
    .await;
    let started = Instant::now();
    let answer = client.get("/bad").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{:?}", answer.body);
    assert!(answer.body.is_ok(), "edgesplit's own 502 was cut: {:?}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(2), "the 502 took {:?}", started.elapsed());
    let good = client.get_again("/good").await;
    assert_eq!(origin.requests(), vec![vec!["GET /bad"], vec!["GET /good"]]);
    good.assert_ok("c1r0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_status_line_is_502_and_the_proxy_keeps_serving() {
    bad_head_is_502_and_then_a_new_connection_serves(vec![send(b"this is no status line\x00\xff\r\n\r\n")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_numeric_status_code_is_502_and_the_proxy_keeps_serving() {
    let bad = b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\nok";
    bad_head_is_502_and_then_a_new_connection_serves(vec![send(bad)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_numeric_content_length_is_502_and_the_proxy_keeps_serving() {
    let bad = b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\nhello";
    bad_head_is_502_and_then_a_new_connection_serves(vec![send(bad)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_differing_content_lengths_are_502_and_the_proxy_keeps_serving() {
    let bad = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!";
    bad_head_is_502_and_then_a_new_connection_serves(vec![send(bad)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_head_over_500_kb_is_502_and_the_proxy_keeps_serving() {
    let mut bad = b"HTTP/1.1 200 OK\r\nx-huge: ".to_vec();
    bad.extend(std::iter::repeat_n(b'a', 512 * 1024));
    bad.extend_from_slice(b"\r\ncontent-length: 2\r\n\r\nok");
    bad_head_is_502_and_then_a_new_connection_serves(vec![send(bad)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_one_header_fields_are_502_and_the_proxy_keeps_serving() {
    let mut bad = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..100 {
        bad.push_str(&format!("x-field-{i}: {i}\r\n"));
    }
    bad.push_str("content-length: 2\r\n\r\nok"); // field 101
    bad_head_is_502_and_then_a_new_connection_serves(vec![send(bad)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_closing_without_a_response_is_502_and_the_proxy_keeps_serving() {
    bad_head_is_502_and_then_a_new_connection_serves(vec![Step::Close]).await;
}

/// The first origin connection sends a 200's head and `good_then` (which goes wrong once the head has
/// been forwarded), every later one answers well: the client gets the 200 with a body that fails, never
/// one that looks complete, and edgesplit serves the next request from a new origin connection.
async fn body_is_cut_short_and_then_a_new_connection_serves(head: &'static [u8], good_then: Vec<Step>) {
    let (origin, _edge, mut client) = setup(move |conn, req| match conn {
        0 => [vec![send(head), Step::Pause(Duration::from_millis(50))], good_then.clone()].concat(),
        _ => tagged(conn, req),
    })
    .await;
    // The head went out before the body broke, so there is a response (a client that got none would be
    // told so here), and it must not end as if whole.
    match client.try_request("GET", "/cut").await {
        Ok(answer) => {
            assert_eq!(answer.status, StatusCode::OK);
            assert!(answer.body.is_err(), "a broken body was delivered as complete: {:?}", answer.body);
        }
        Err(e) => panic!("the 200's head was sent before the body broke, yet no response came: {e}"),
    }
    let good = client.get_again("/good").await;
    assert_eq!(origin.requests(), vec![vec!["GET /cut"], vec!["GET /good"]]);
    good.assert_ok("c1r0");
}

const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunk_size_cuts_the_body_short_and_the_proxy_keeps_serving() {
    body_is_cut_short_and_then_a_new_connection_serves(CHUNKED_HEAD, vec![send(b"zz\r\nhello\r\n0\r\n\r\n")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_overflowing_u64_cuts_the_body_short_and_the_proxy_keeps_serving() {
    body_is_cut_short_and_then_a_new_connection_serves(
        CHUNKED_HEAD,
        vec![send(b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_cut_short_of_its_content_length_is_a_failed_body_and_the_proxy_keeps_serving() {
    body_is_cut_short_and_then_a_new_connection_serves(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
        vec![Step::Close],
    )
    .await;
}

// === timing and state ===

/// One worker, and `timeouts.upstream_read` at 300 ms.
const QUICK_READ: &str = "[limits]\nworkers = 1\n[timeouts]\nupstream_read = \"300ms\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_silent_mid_body_past_upstream_read_cuts_the_response_and_its_connection() {
    // The first connection sends 10 bytes of 100, then nothing for longer than the test waits.
    let origin = RawOrigin::start(|conn, req| match conn {
        0 => vec![send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789"), Step::Pause(ORIGIN_IDLE)],
        _ => tagged(conn, req),
    })
    .await;
    let edge = Edge::start(&simple_config(&origin.url(), None, QUICK_READ)).await;
    let mut client = EdgeConn::open(edge.addr("http")).await;
    let started = Instant::now();
    let answer = client.try_request("GET", "/stalls").await.expect("the head came before the stall");
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_err(), "a stalled body was delivered as complete: {:?}", answer.body);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "cut after {took:?}");
    // The stalled connection is not reused: the next request opens another.
    let next = client.get_again("/next").await;
    assert_eq!(origin.requests(), vec![vec!["GET /stalls"], vec!["GET /next"]]);
    next.assert_ok("c1r0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_body_that_keeps_coming_is_not_cut_by_upstream_read() {
    // 30 bytes, one every 50 ms: 1.5 s in all, five times upstream_read, but never 300 ms of silence.
    let body = pattern(30);
    let slow = body.clone();
    let origin = RawOrigin::start(move |conn, req| match req {
        0 => vec![
            send(b"HTTP/1.1 200 OK\r\ncontent-length: 30\r\n\r\n"),
            Step::Trickle(slow.clone(), Duration::from_millis(50)),
        ],
        _ => tagged(conn, req),
    })
    .await;
    let edge = Edge::start(&simple_config(&origin.url(), None, QUICK_READ)).await;
    let mut client = EdgeConn::open(edge.addr("http")).await;
    let answer = client.get("/slow").await;
    assert_eq!(answer.body.as_deref().map_err(|e| e.as_str()), Ok(&body[..]));
    client.get("/after").await.assert_ok("c0r1");
    assert_eq!(origin.requests(), vec![vec!["GET /slow", "GET /after"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_head_trickled_a_byte_every_5_ms_is_delivered_intact() {
    const SLOW: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-trickled: yes\r\ncontent-length: 11\r\n\r\nhello world";
    let (origin, _edge, mut client) = setup(|conn, req| match req {
        0 => vec![Step::Trickle(SLOW.to_vec(), Duration::from_millis(5))],
        _ => tagged(conn, req),
    })
    .await;
    let answer = client.get("/slow").await;
    answer.assert_ok("hello world");
    assert_eq!(answer.headers.get("x-trickled").map(|v| v.as_bytes()), Some(&b"yes"[..]));
    assert_eq!(answer.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"text/plain"[..]));
    let after = client.get("/after").await;
    assert_eq!(origin.requests(), vec![vec!["GET /slow", "GET /after"]]);
    after.assert_ok("c0r1");
}

const SMUGGLED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nSMUGGL";

/// Every origin connection answers its first request with `hello` and a second response: in the same
/// write, or `later`, while the connection is idle. A request that did go over such a connection again
/// would get `REUSED`. The requests after the first get `hello` from a new connection, or a 502; never
/// `SMUGGL`.
async fn extra_bytes_are_never_served(later: Option<Duration>) {
    let (_origin, _edge, mut client) = setup(move |_, req| match (req, later) {
        (0, None) => vec![send([&with_length("hello")[..], SMUGGLED].concat())],
        (0, Some(later)) => vec![send(with_length("hello")), Step::Pause(later), send(SMUGGLED)],
        _ => vec![send(with_length("REUSED"))],
    })
    .await;
    client.get("/first").await.assert_ok("hello");
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let answer = client.get_again(&format!("/next{i}")).await;
        let body = answer.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        assert!(!matches!(&body, Ok(b) if b.contains("SMUGGL")), "request {i} got the smuggled response");
        match answer.status {
            StatusCode::OK => assert_eq!(body.as_deref(), Ok("hello"), "request {i} did not go over a new connection"),
            StatusCode::BAD_GATEWAY => {}
            other => panic!("request {i}: {other} {body:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_past_the_content_length_are_never_served_as_the_next_response() {
    extra_bytes_are_never_served(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_sent_unasked_on_an_idle_connection_is_never_served_as_the_next_response() {
    extra_bytes_are_never_served(Some(Duration::from_millis(50))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_origin_closed_is_not_used_and_the_next_request_succeeds() {
    let (origin, _edge, mut client) = setup(|conn, req| match (conn, req) {
        (0, 0) => vec![send(with_length(tag(conn, req))), Step::Pause(Duration::from_millis(200)), Step::Close],
        _ => tagged(conn, req),
    })
    .await;
    client.get("/a").await.assert_ok("c0r0");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = client.get("/b").await;
    assert_eq!(origin.requests(), vec![vec!["GET /a"], vec!["GET /b"]]);
    b.assert_ok("c1r0");
}

/// One request through edgesplit (with `extra` config) to an origin that answers it once, then, with
/// `origin_closes`, closes its side 100 ms later. Returns how the origin's wait for edgesplit's close
/// ended (at most 5 s: `Ok(Ok(0))` is the close) and how long after the origin's close (or its answer)
/// it came.
async fn answer_once_then_wait_for_edgesplits_close(
    extra: &str,
    origin_closes: bool,
) -> (Result<Result<usize, String>, tokio::time::error::Elapsed>, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let edge = Edge::start(&simple_config(&url, None, extra)).await;
    let mut client = EdgeConn::open(edge.addr("http")).await;
    let origin = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_head(&mut s, &mut Vec::new()).await.unwrap();
        s.write_all(&with_length("once")).await.unwrap();
        if origin_closes {
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.shutdown().await.unwrap(); // FIN; edgesplit's side is now in CLOSE_WAIT until it closes
        }
        let since = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        (read.map(|r| r.map_err(|e| e.to_string())), since.elapsed())
    });
    client.get("/once").await.assert_ok("once");
    tokio::time::timeout(Duration::from_secs(8), origin).await.unwrap().unwrap()
}

/// Nothing waits on an idle pooled connection, yet edgesplit closes its side soon after the origin
/// closes: a worker sweeps its idle connections once a second, so none is left in CLOSE_WAIT until the
/// next request to that origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_origin_closed_is_closed_by_edgesplit_within_seconds() {
    let (read, after) = answer_once_then_wait_for_edgesplits_close(ONE_WORKER, true).await;
    assert_eq!(read, Ok(Ok(0)), "edgesplit did not close its side within 5 s");
    assert!(after < Duration::from_secs(3), "closed {after:?} after the origin");
}

/// The same sweep lets go of a connection idle past `timeouts.upstream_idle`, with no request to notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_past_upstream_idle_is_closed_with_no_request_coming() {
    // The origin keeps its side open; edgesplit's close shows as the end of the stream.
    let extra = format!("{ONE_WORKER}[timeouts]\nupstream_idle = \"500ms\"\n");
    let (read, after) = answer_once_then_wait_for_edgesplits_close(&extra, false).await;
    assert_eq!(read, Ok(Ok(0)), "edgesplit kept the idle connection for 5 s");
    assert!(after >= Duration::from_millis(500) && after < Duration::from_secs(3), "closed {after:?} after the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_protocols_to_a_request_that_asked_for_no_upgrade_is_502_and_no_tunnel() {
    // The first two connections switch protocols unasked and then send bytes of the "new protocol".
    let (origin, edge, mut client) = setup(|conn, req| match conn {
        0 | 1 => vec![
            send(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"),
            Step::Pause(Duration::from_millis(50)),
            send(b"TUNNELED BYTES"),
        ],
        _ => tagged(conn, req),
    })
    .await;
    let answer = client.get("/no-upgrade").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{:?} {:?}", answer.headers, answer.body);
    // On the wire: no 101, and none of the origin's bytes after it.
    let wire = raw(edge.addr("http"), format!("GET /raw HTTP/1.1\r\nhost: {HOST}\r\n\r\n").as_bytes(), WAIT / 4).await;
    assert!(wire.starts_with("HTTP/1.1 502 "), "{wire}");
    assert!(!wire.contains("TUNNELED"), "{wire}");
    client.get_again("/good").await.assert_ok("c2r0");
    assert_eq!(origin.requests(), vec![vec!["GET /no-upgrade"], vec!["GET /raw"], vec!["GET /good"]]);
}
