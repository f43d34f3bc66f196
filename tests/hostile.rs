//! Hostile input (issue 8, part 2): request smuggling, oversized and slow requests, CR/LF injection into
//! the headers edgesplit writes, path tricks on the admin API, deeply nested documents, tampered cookies.
//! Every test checks that the answer is a clean error (the right status; on the admin API the protocol's
//! error shape) and that edgesplit keeps serving afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What an origin received: request line, headers (lower-case names, in order) and body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An origin that records every request it receives (whole body included) and answers `ok`.
async fn recording_origin() -> (Origin, Log) {
    recording_origin_named("primary").await
}

/// [`recording_origin`], answering `x-origin: <name>`.
async fn recording_origin_named(name: &'static str) -> (Origin, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let sink = sink.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_else(|_| b"<cut>".to_vec());
            sink.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                path: parts.uri.to_string(),
                headers: parts.headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
                body,
            });
            Response::builder().header("x-origin", name).body(full("ok")).unwrap()
        }
    })
    .await;
    (origin, log)
}

/// Writes `bytes`, then reads until the server closes the connection or `wait` passes: the bytes read,
/// and whether the server closed.
async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let closed = matches!(tokio::time::timeout(wait, s.read_to_end(&mut out)).await, Ok(Ok(_)) | Ok(Err(_)));
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// How many HTTP/1.1 responses a byte stream holds.
fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

/// A plain request through the proxy still works.
async fn still_serves(edge: &Edge) {
    let (status, _, body) = get(&edge.url("http", "/after")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "the proxy stopped serving");
}

// === request smuggling ===

#[tokio::test]
async fn content_length_with_chunked_is_read_as_chunked_and_the_connection_is_closed() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    // CL.TE: a front end that trusts Content-Length would see one request whose body hides a second one.
    // edgesplit must frame by Transfer-Encoding alone and then close (RFC 9112 6.1), so the hidden request
    // is never read as a request of its own, in either header order.
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let chunked_body = format!("0\r\n\r\n{hidden}");
    for (first, second) in [
        (format!("Content-Length: {}", chunked_body.len()), "Transfer-Encoding: chunked".to_string()),
        ("Transfer-Encoding: chunked".to_string(), format!("Content-Length: {}", chunked_body.len())),
    ] {
        log.lock().unwrap().clear();
        let req = format!("POST /front HTTP/1.1\r\nHost: a\r\n{first}\r\n{second}\r\n\r\n{chunked_body}");
        let (reply, closed) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert_eq!(responses(&reply), 1, "the hidden request was answered:\n{reply}");
        assert!(closed, "the connection stayed open after a request with both Content-Length and chunked");
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/front"));
        assert!(seen[0].body.is_empty(), "{seen:?}");
        assert!(seen[0].header("content-length").iter().all(|v| v == "0"), "{seen:?}");
    }
    assert!(!log.lock().unwrap().iter().any(|s| s.path.contains("smuggled")));
    still_serves(&edge).await;
}

#[tokio::test]
async fn malformed_framing_is_400_and_never_reaches_the_origin() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let cases: &[(&str, &str)] = &[
        (
            "differing Content-Lengths",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        ),
        ("a Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 30\r\n\r\nabc"),
        ("a signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"),
        ("a negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabc"),
        ("a hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc"),
        (
            "obsolete line folding",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("folding of the first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
        ("chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        ("xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ("identity alone", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc"),
        (
            "chunked then identity in two fields",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        ),
        ("chunked on HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("a space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ("a bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n"),
        ("a NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\0 2\r\n\r\n"),
    ];
    for (what, req) in cases {
        let (reply, closed) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{what}: {reply:?}");
        assert_eq!(responses(&reply), 1, "{what}: {reply:?}");
        assert!(closed, "{what}: the connection stayed open");
    }
    assert_eq!(log.lock().unwrap().len(), 0, "{:?}", log.lock().unwrap());
    still_serves(&edge).await;
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_fault_not_the_origins() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let req = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
    let (reply, _) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let m = edge.metrics().await;
    assert!(!m.contains("edgesplit_upstream_errors_total{kind=\"protocol\"} 1"), "{m}");
    still_serves(&edge).await;
}

// === sizes ===

#[tokio::test]
async fn too_many_or_too_large_request_headers_are_431() {
    let (origin, log) = recording_origin().await;
    let edge =
        Edge::start(&simple_config(&origin.url(), None, "[limits]\nmax_header_bytes = 8192\nmax_headers = 20\n")).await;
    let many: String = (0..21).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "a".repeat(9000));
    let split: String = (0..10).map(|i| format!("X-Part{i}: {}\r\n", "b".repeat(900))).collect();
    for (what, headers) in [("21 headers", &many), ("one 9 KB header", &big), ("ten 900-byte headers", &split)] {
        let req = format!("GET / HTTP/1.1\r\nHost: a\r\n{headers}\r\n");
        let (reply, closed) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{what}: {reply:?}");
        assert!(closed, "{what}");
    }
    // Just under both limits: served.
    let fits: String = (0..18).map(|i| format!("X-H{i}: {}\r\n", "c".repeat(300))).collect();
    let req = format!("GET /fits HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{fits}\r\n");
    let (reply, _) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert_eq!(log.lock().unwrap().len(), 1);
    still_serves(&edge).await;

    // The default (100) is hyper's own, left unset: the same limit holds there too. A request edgesplit
    // passed on carries its Via (the test origin, hyper too, may then refuse the four headers added).
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    for (extra, passed) in [(99, false), (98, true)] {
        let headers: String = (0..extra).map(|i| format!("X-H{i}: {i}\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\n");
        let (reply, _) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(reply.contains("via: 1.1 edgesplit"), passed, "Host, Connection and {extra} more: {reply:?}");
        if !passed {
            assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
        }
    }
    still_serves(&edge).await;
}

/// hyper refuses a request target over 65534 bytes with 414, but the whole head must first fit in
/// `limits.max_header_bytes` (hyper's read buffer): with the default 64 KiB a long URI fills the buffer
/// first and the answer is 431. Either way it is refused before anything reaches the origin.
#[tokio::test]
async fn oversized_uris_are_414_or_431_depending_on_which_limit_is_hit_first() {
    let (origin, log) = recording_origin().await;
    let long = format!("/{}", "u".repeat(70_000));
    let req = format!("GET {long} HTTP/1.1\r\nHost: a\r\n\r\n");

    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let (reply, closed) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    assert!(closed);
    still_serves(&edge).await;

    let edge = Edge::start(&simple_config(&origin.url(), None, "[limits]\nmax_header_bytes = 131072\n")).await;
    let (reply, closed) = exchange(edge.addr("http"), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 414"), "{reply:?}");
    assert!(closed);
    // A 60 000-byte target fits under both: served.
    let (status, _, _) = get(&edge.url("http", &format!("/{}", "u".repeat(60_000)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log.lock().unwrap().iter().filter(|s| s.path.len() > 65_000).count(), 0);
    still_serves(&edge).await;
}

/// Sends `body` with a Content-Length to the admin listener over raw TCP and returns the answer.
async fn admin_raw(edge: &Edge, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(edge.handle.admin_addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("no answer").unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

const MIB: usize = 1 << 20;

#[tokio::test]
async fn cloudfront_bodies_over_1_mib_are_413_in_the_rest_xml_error_shape() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let body = vec![b'<'; MIB + 1];
    let (status, head, text) = admin_raw(&edge, "POST", "/2020-05-31/continuous-deployment-policy", &body).await;
    assert_eq!(status, 413, "{head}{text}");
    assert!(head.contains("content-type: text/xml"), "{head}");
    assert!(text.contains("<ErrorResponse") && text.contains("<Code>InvalidArgument</Code>"), "{text}");
    assert!(text.contains("<RequestId>"), "{text}");
    // Exactly 1 MiB is read (and is then just bad XML).
    let (status, _, text) =
        admin_raw(&edge, "POST", "/2020-05-31/continuous-deployment-policy", &vec![b' '; MIB - 1]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>MissingBody</Code>"), "{text}");
    still_serves(&edge).await;
    assert_eq!(get(&format!("http://{}/healthz", edge.handle.admin_addr)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn evidently_bodies_over_1_mib_are_413_in_the_rest_json_error_shape() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let (status, head, text) = admin_raw(&edge, "POST", "/projects", &vec![b' '; MIB + 1]).await;
    assert_eq!(status, 413, "{head}{text}");
    assert!(head.contains("x-amzn-errortype: validationexception"), "{head}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["__type"], "ValidationException");
    still_serves(&edge).await;
}

#[tokio::test]
async fn evidently_bodies_over_1_mib_are_refused_in_the_rest_json_error_shape() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let (status, head, text) = admin_raw(&edge, "POST", "/projects", &vec![b' '; MIB + 1]).await;
    // Today 400; 413 is what the ignored test above asks for.
    assert!(status == 400 || status == 413, "{head}{text}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-amzn-errortype: validationexception"), "{head}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["__type"], "ValidationException", "{v}");
    assert!(v["message"].as_str().unwrap().contains("larger than"), "{v}");
    // The same body in chunks, with no Content-Length: the same answer.
    let mut s = TcpStream::connect(edge.handle.admin_addr).await.unwrap();
    s.write_all(b"POST /projects HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..17 {
        s.write_all(format!("{:x}\r\n{}\r\n", 65536, " ".repeat(65536)).as_bytes()).await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("no answer").unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("ValidationException"), "{out}");
    // Under the cap the API works.
    let (status, v) = admin_json(&edge, "POST", "/projects", json!({ "name": "after" })).await;
    assert_eq!(status, 200, "{v}");
    still_serves(&edge).await;
}

/// The proxy has no body limit: bodies stream (README; `tests/streaming.rs` moves 1 GiB). A 3 MiB upload
/// arrives whole.
#[tokio::test]
async fn proxied_bodies_have_no_size_limit_and_arrive_whole() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let payload: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
    let req = Request::post(edge.url("http", "/upload")).body(full(payload.clone())).unwrap();
    let (status, _, _) = send(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.lock().unwrap()[0].body == payload, "the body changed on the way");
}

// === slow clients ===

#[tokio::test]
async fn a_slowloris_trickling_one_header_byte_a_second_is_cut_at_the_header_timeout() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "[timeouts]\nclient_header = \"2s\"\n")).await;
    let s = TcpStream::connect(edge.addr("http")).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    // Each byte arrives well within any per-read timer: only a deadline on the whole head stops this.
    let trickle = tokio::spawn(async move {
        let head = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: {}", "a".repeat(100));
        for b in head.bytes() {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(8), rd.read_to_end(&mut out)).await;
    trickle.abort();
    assert!(r.is_ok(), "a trickling client was still connected after 8 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(log.lock().unwrap().is_empty());
    still_serves(&edge).await;
}

/// The admin listener has its own head deadline (10 s) and connection cap: a trickling client there is
/// cut too, and the admin API keeps answering meanwhile.
#[tokio::test]
async fn a_slowloris_on_the_admin_listener_is_cut_at_its_head_deadline() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let s = TcpStream::connect(edge.handle.admin_addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for b in format!("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: {}", "a".repeat(100)).bytes() {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let (status, _, _) = get(&format!("http://{}/healthz", edge.handle.admin_addr)).await;
    assert_eq!(status, 200, "the admin API answers while a client trickles");
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut out)).await;
    trickle.abort();
    assert!(r.is_ok(), "a trickling admin client was still connected after 20 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(15), "{elapsed:?}");
}

// === CR/LF injection into the headers edgesplit writes ===

const EDGE_EVIDENTLY: &str = r#"
[distribution.evidently]
project = "shop"
entity = ["header:x-user-id", "cookie:uid"]
response_headers = true
context = { ua = "header:user-agent", plan = "query:plan" }
features = [{ feature = "evil", value_header = "x-evil-value" }]
"#;

/// Every header value an origin received: none may hold a CR, LF or NUL, and no `x-evil` header.
fn assert_no_split(seen: &Seen) {
    for (k, v) in &seen.headers {
        assert!(!v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)), "{k} holds a control byte: {v:?}");
        assert_ne!(k, "x-evil", "a header was injected: {seen:?}");
    }
}

#[tokio::test]
async fn evidently_string_values_with_crlf_are_injected_as_escaped_json_never_as_new_headers() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, EDGE_EVIDENTLY)).await;
    assert_eq!(admin_json(&edge, "POST", "/projects", json!({ "name": "shop" })).await.0, 200);
    let evil = "\r\nx-evil: 1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let (status, v) = admin_json(
        &edge,
        "POST",
        "/projects/shop/features",
        json!({ "name": "evil", "defaultVariation": "crlf", "evaluationStrategy": "DEFAULT_VARIATION", "variations": [
            { "name": "crlf", "value": { "stringValue": evil } },
            { "name": "plain", "value": { "stringValue": "x" } },
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    let (status, h, _) = get_with(&edge.url("http", "/"), &[("x-user-id", "u1")]).await;
    assert_eq!(status, StatusCode::OK);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_no_split(&seen[0]);
    assert_eq!(seen[0].header("x-evidently-evil"), ["crlf"]);
    // The value travels as JSON, so CR and LF are escapes: the origin reads back exactly the string.
    let value = &seen[0].header("x-evil-value")[0];
    assert_eq!(serde_json::from_str::<String>(value).unwrap(), evil, "{value}");
    // Echoed on the response the same way, and nothing was split there either.
    assert_eq!(h["x-evil-value"].to_str().unwrap(), value);
    assert!(h.get("x-evil").is_none());
    // EvaluateFeature hands the same string back in JSON.
    let (_, v) = admin_json(&edge, "POST", "/projects/shop/evaluations/evil", json!({ "entityId": "u1" })).await;
    assert_eq!(v["value"]["stringValue"], evil, "{v}");
    still_serves(&edge).await;
    assert!(!log.lock().unwrap().iter().any(|s| s.path.contains("smuggled")));
}

#[tokio::test]
async fn a_string_value_with_del_is_injected_as_its_json_not_null() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, EDGE_EVIDENTLY)).await;
    admin_json(&edge, "POST", "/projects", json!({ "name": "shop" })).await;
    let variations = json!([{ "name": "del", "value": { "stringValue": "a\u{7f}b" } }]);
    let body = json!({ "name": "evil", "defaultVariation": "del", "variations": variations });
    assert_eq!(admin_json(&edge, "POST", "/projects/shop/features", body).await.0, 200);
    get_with(&edge.url("http", "/"), &[("x-user-id", "u1")]).await;
    let value = log.lock().unwrap()[0].header("x-evil-value")[0].clone();
    assert_eq!(serde_json::from_str::<String>(&value).unwrap(), "a\u{7f}b", "{value}");
}

#[tokio::test]
async fn hostile_entity_ids_hosts_and_context_values_never_split_a_header() {
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, EDGE_EVIDENTLY)).await;
    admin_json(&edge, "POST", "/projects", json!({ "name": "shop" })).await;
    let variations =
        json!([{ "name": "a", "value": { "stringValue": "1" } }, { "name": "b", "value": { "stringValue": "2" } }]);
    let body = json!({ "name": "evil", "defaultVariation": "a", "variations": variations });
    assert_eq!(admin_json(&edge, "POST", "/projects/shop/features", body).await.0, 200);
    let addr = edge.addr("http");
    let too_long = "e".repeat(600);
    let cases: Vec<(&str, String)> = vec![
        // Percent-encoded CR/LF in the query feeds the context decoded: it stays a value, not a header.
        ("crlf in a decoded query value", "GET /?plan=%0D%0Ax-evil:%201 HTTP/1.1\r\nHost: a\r\n".into()),
        ("obs-text entity id", "GET / HTTP/1.1\r\nHost: a\r\nX-User-Id: caf\u{e9}\r\n".into()),
        ("tab in an entity id", "GET / HTTP/1.1\r\nHost: a\r\nX-User-Id: a\tb\r\n".into()),
        ("an entity id over 512 bytes", format!("GET / HTTP/1.1\r\nHost: a\r\nX-User-Id: {too_long}\r\n")),
        (
            "an entity cookie with a quote and a comma",
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: uid=\"a,b\\\"; x=1\r\n".into(),
        ),
        ("a Host with spaces and obs-text", "GET / HTTP/1.1\r\nHost: a b\u{e9}\r\n".into()),
        ("a Host with a path", "GET / HTTP/1.1\r\nHost: a/../b\r\n".into()),
        ("an absolute-form target naming another host", "GET http://evil.test/x HTTP/1.1\r\nHost: a\r\n".into()),
        ("a CONNECT-looking target", "GET a:443 HTTP/1.1\r\nHost: a\r\n".into()),
    ];
    for (what, head) in &cases {
        log.lock().unwrap().clear();
        let req = format!("{head}Connection: close\r\n\r\n");
        let (reply, _) = exchange(addr, req.as_bytes(), Duration::from_secs(5)).await;
        let status: u16 = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        // 404: a Host that is not visible ASCII names no distribution, not even the `*` one.
        assert!(matches!(status, 200 | 400 | 404), "{what}: {reply:?}");
        assert!(!reply.to_ascii_lowercase().contains("\r\nx-evil:"), "{what}: {reply:?}");
        for seen in log.lock().unwrap().iter() {
            assert_no_split(seen);
            assert_eq!(seen.header("x-evidently-evil").len(), 1, "{what}: {seen:?}");
        }
    }
    // A bare LF ends a header line for hyper, as for most servers: the client gets two headers, and the
    // origin sees exactly those two, each whole. Nothing is re-split on the way.
    log.lock().unwrap().clear();
    let req = "GET / HTTP/1.1\r\nHost: a\nX-Second: 2\r\nX-User-Id: u\nX-Third: 3\r\nConnection: close\r\n\r\n";
    let (reply, _) = exchange(addr, req.as_bytes(), Duration::from_secs(5)).await;
    let status: u16 = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(status == 200 || status == 400, "{reply:?}");
    if status == 200 {
        let seen = log.lock().unwrap()[0].clone();
        assert_no_split(&seen);
        assert_eq!(seen.header("host"), ["a"]);
        assert_eq!(seen.header("x-forwarded-host"), ["a"]);
        assert_eq!(seen.header("x-second"), ["2"]);
    }
    still_serves(&edge).await;
}

// === tampered stickiness cookies ===

const COOKIE_KEY: &str = "0123456789abcdef0123456789abcdef";

/// A staging pool, a sticky 15 % weight policy in the file (its cookies are bound to `config:web`) and a
/// known cookie key, so the test can mint cookies.
fn sticky_config(primary: &str, staging: &str) -> String {
    simple_config(primary, Some(staging), &format!("[continuous_deployment]\ncookie_key = \"{COOKIE_KEY}\"\n"))
        + "\n[distribution.policy]\ntype = \"SingleWeight\"\nweight = 0.15\nidle_ttl = 300\nmaximum_ttl = 600\n"
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn mint(policy: &str, target: edgesplit::domain::Target, issued: u64, last: u64, epoch: u64) -> String {
    use edgesplit::cd::cookie::{CookieKey, Session};
    CookieKey::new(COOKIE_KEY.as_bytes()).encode(policy, &Session { target, issued, last, epoch })
}

/// GET with a raw `Cookie` value: status, the side that served, the `issued` field of the cookie set.
async fn with_cookie(edge: &Edge, cookie: &[u8]) -> Option<(StatusCode, String, u64)> {
    let value = http::HeaderValue::from_bytes(cookie).ok()?;
    let req = Request::get(edge.url("http", "/")).header("cookie", value).body(full("")).unwrap();
    let (status, h, _) = send(&http1_client(), req).await;
    let set = h.get("set-cookie").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let issued = set.split(';').next().unwrap().split('.').nth(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((status, h["x-origin"].to_str().unwrap().to_string(), issued))
}

#[tokio::test]
async fn tampered_expired_or_foreign_stickiness_cookies_are_a_fresh_draw_never_an_error() {
    use edgesplit::domain::Target;
    let (p, plog) = recording_origin_named("primary").await;
    let (s, slog) = recording_origin_named("staging").await;
    let edge = Edge::start(&sticky_config(&p.url(), &s.url())).await;
    let now = unix_now();
    let policy = "config:web";

    // A genuine staging session 100 s old is honoured: staging, and the cookie keeps its issue time.
    let genuine = mint(policy, Target::Staging, now - 100, now - 50, 0);
    let (status, side, issued) = with_cookie(&edge, format!("edgesplit-cd={genuine}").as_bytes()).await.unwrap();
    assert_eq!((status, side.as_str(), issued), (StatusCode::OK, "staging", now - 100));

    // Everything else is a new session: issued now (the old issue time would mean it was honoured).
    let mut hostile: Vec<(String, Vec<u8>)> = vec![
        ("another policy's cookie".into(), mint("config:other", Target::Staging, now - 100, now - 50, 0).into_bytes()),
        (
            "an API policy's cookie".into(),
            mint("6f1c0b52-0000-4000-8000-000000000000", Target::Staging, now - 100, now - 50, 0).into_bytes(),
        ),
        ("an old epoch".into(), mint(policy, Target::Staging, now - 100, now - 50, 1).into_bytes()),
        ("idle past IdleTTL".into(), mint(policy, Target::Staging, now - 400, now - 301, 0).into_bytes()),
        ("past MaximumTTL".into(), mint(policy, Target::Staging, now - 601, now - 10, 0).into_bytes()),
        (
            "p switched to s".into(),
            mint(policy, Target::Primary, now - 100, now - 50, 0).replacen("v1.p.", "v1.s.", 1).into_bytes(),
        ),
        ("issued moved".into(), genuine.replacen(&(now - 100).to_string(), &(now - 10).to_string(), 1).into_bytes()),
        ("a leading +".into(), genuine.replacen("v1.s.", "v1.s.+", 1).into_bytes()),
        ("numbers past u64".into(), b"v1.s.99999999999999999999999.1.0.AAAAAAAAAAAAAAAAAAAAAA".to_vec()),
        ("a huge value".into(), "A".repeat(6000).into_bytes()),
        ("obs-text".into(), "v1.s.\u{e9}.1.0.AAAAAAAAAAAAAAAAAAAAAA".as_bytes().to_vec()),
        ("empty".into(), Vec::new()),
        ("dots only".into(), b".....".to_vec()),
        ("the mac padded".into(), format!("{genuine}==").into_bytes()),
        ("the mac doubled".into(), format!("{genuine}{}", genuine.rsplit('.').next().unwrap()).into_bytes()),
    ];
    for cut in 0..genuine.len() {
        hostile.push((format!("cut to {cut} bytes"), genuine.as_bytes()[..cut].to_vec()));
    }
    for (i, c) in genuine.bytes().enumerate() {
        for bit in 0..7 {
            let mut v = genuine.clone().into_bytes();
            v[i] = c ^ (1 << bit);
            hostile.push((format!("bit {bit} of byte {i} flipped"), v));
        }
    }
    let mut sent = 0;
    for (what, value) in &hostile {
        let mut cookie = b"edgesplit-cd=".to_vec();
        cookie.extend_from_slice(value);
        let Some((status, _, issued)) = with_cookie(&edge, &cookie).await else { continue };
        sent += 1;
        assert_eq!(status, StatusCode::OK, "{what}");
        assert!(issued >= now, "{what} was honoured as a session issued at {issued}");
    }
    assert!(sent > 300, "only {sent} hostile cookies could be sent");
    // And the cookie never reached an origin, whatever it held.
    for seen in plog.lock().unwrap().iter().chain(slog.lock().unwrap().iter()) {
        assert!(!seen.header("cookie").iter().any(|c| c.contains("edgesplit-cd=")), "{seen:?}");
    }
    assert_no_5xx(&edge.metrics().await);
    still_serves_sticky(&edge).await;
}

fn assert_no_5xx(metrics: &str) {
    for line in metrics.lines().filter(|l| l.contains("status=\"5xx\"")) {
        assert!(line.ends_with(" 0"), "{line}");
    }
}

#[tokio::test]
async fn a_session_and_an_entity_id_survive_a_utf8_cookie_beside_them() {
    use edgesplit::domain::Target;
    let (p, plog) = recording_origin_named("primary").await;
    let (s, _slog) = recording_origin_named("staging").await;
    let text = sticky_config(&p.url(), &s.url()) + EDGE_EVIDENTLY;
    let edge = Edge::start(&text).await;
    admin_json(&edge, "POST", "/projects", json!({ "name": "shop" })).await;
    let variations =
        json!([{ "name": "a", "value": { "stringValue": "1" } }, { "name": "b", "value": { "stringValue": "2" } }]);
    let body = json!({ "name": "evil", "defaultVariation": "a", "variations": variations });
    assert_eq!(admin_json(&edge, "POST", "/projects/shop/features", body).await.0, 200);
    let now = unix_now();
    let session = mint("config:web", Target::Staging, now - 100, now - 50, 0);
    // Regression: a line holding a UTF-8 cookie was skipped whole when looking for edgesplit's cookies.
    let line = format!("name=caf\u{e9}; edgesplit-cd={session}; edgesplit-entity=entity-1");
    for _ in 0..3 {
        let req = Request::get(edge.url("http", "/")).header("cookie", line.as_str()).body(full("")).unwrap();
        let (status, h, _) = send(&http1_client(), req).await;
        assert_eq!((status, h["x-origin"].to_str().unwrap()), (StatusCode::OK, "staging"), "the session was lost");
        let set: Vec<&str> = h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert!(!set.iter().any(|c| c.starts_with("edgesplit-entity=")), "a new entity id was issued: {set:?}");
    }
    assert!(plog.lock().unwrap().is_empty());
}

async fn still_serves_sticky(edge: &Edge) {
    let (status, h, _) = get(&edge.url("http", "/after")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h["set-cookie"].to_str().unwrap().starts_with("edgesplit-cd=v1."));
}

#[tokio::test]
async fn the_stickiness_cookie_never_reaches_an_origin_however_the_cookie_header_is_written() {
    let (p, plog) = recording_origin_named("primary").await;
    let (s, slog) = recording_origin_named("staging").await;
    let edge = Edge::start(&sticky_config(&p.url(), &s.url())).await;
    /// What the client sends as `Cookie` lines, and what the origin must receive.
    type Lines<'a> = &'a [&'a [u8]];
    let cases: &[(&str, Lines<'_>, Lines<'_>)] = &[
        ("between others", &[b"a=1; edgesplit-cd=x; b=2"], &[b"a=1; b=2"]),
        ("twice", &[b"edgesplit-cd=x; edgesplit-cd=y"], &[]),
        ("in its own line among others", &[b"edgesplit-cd=x", b"b=2"], &[b"b=2"]),
        ("with spaces around =", &[b"a=1; edgesplit-cd = x"], &[b"a=1"]),
        ("without a value", &[b"a=1; edgesplit-cd"], &[b"a=1"]),
        ("beside an obs-text cookie", &[b"edgesplit-cd=x; name=caf\xc3\xa9"], &[b"name=caf\xc3\xa9"]),
        ("beside an obs-text line", &[b"edgesplit-cd=x", b"name=caf\xc3\xa9"], &[b"name=caf\xc3\xa9"]),
        ("empty pairs", &[b";; edgesplit-cd=x;; a=1;"], &[b"a=1"]),
        ("a lookalike name stays", &[b"xedgesplit-cd=1; edgesplit-cdx=2"], &[b"xedgesplit-cd=1; edgesplit-cdx=2"]),
        // Issue 14: forms an origin framework might still parse as ours.
        ("after a comma", &[b"a=1, edgesplit-cd=x"], &[b"a=1"]),
        ("in capitals", &[b"EDGESPLIT-CD=x; b=2"], &[b"b=2"]),
        ("in mixed case after a comma", &[b"a=1,Edgesplit-Cd=x"], &[b"a=1"]),
        // HTTP/2-style crumbs, or two lines from an HTTP/1.1 client, go out as one line.
        ("crumbs", &[b"a=1", b"b=2"], &[b"a=1; b=2"]),
    ];
    for (what, lines, want) in cases {
        plog.lock().unwrap().clear();
        slog.lock().unwrap().clear();
        let mut req = Request::get(edge.url("http", "/"));
        for l in *lines {
            req = req.header("cookie", http::HeaderValue::from_bytes(l).unwrap());
        }
        let (status, _, _) = send(&http1_client(), req.body(full("")).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{what}");
        let seen: Vec<Seen> = plog.lock().unwrap().iter().chain(slog.lock().unwrap().iter()).cloned().collect();
        assert_eq!(seen.len(), 1);
        let got: Vec<&[u8]> =
            seen[0].headers.iter().filter(|(k, _)| k == "cookie").map(|(_, v)| v.as_slice()).collect();
        let want: Vec<&[u8]> = want.to_vec();
        assert_eq!(got, want, "{what}");
    }
    still_serves_sticky(&edge).await;
}

// === path tricks on the admin API ===

/// A raw admin call (the path is sent exactly as written): status, lower-cased head, body.
async fn admin_call(edge: &Edge, method: &str, path: &str, body: &str) -> (u16, String, String) {
    admin_raw(edge, method, path, body.as_bytes()).await
}

/// An Evidently error answer: a 4xx whose `X-Amzn-ErrorType` names the `__type` of its JSON body.
fn assert_evidently_error(what: &str, (status, head, body): &(u16, String, String), want: &[&str]) -> Value {
    assert!((400..500).contains(status), "{what}: {status} {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
    let kind = v["__type"].as_str().unwrap_or_else(|| panic!("{what}: no __type: {v}"));
    assert!(want.contains(&kind), "{what}: {kind} {v}");
    assert!(head.contains(&format!("x-amzn-errortype: {}", kind.to_ascii_lowercase())), "{what}: {head}");
    assert!(v["message"].is_string(), "{what}: {v}");
    v
}

#[tokio::test]
async fn percent_encoded_path_tricks_on_the_evidently_api_are_clean_4xx_and_touch_nothing() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    for name in ["shop", "other", "empty"] {
        assert_eq!(admin_json(&edge, "POST", "/projects", json!({ "name": name })).await.0, 200);
    }
    let variations = json!([{ "name": "on", "value": { "boolValue": true } }]);
    let (status, v) =
        admin_json(&edge, "POST", "/projects/other/features", json!({ "name": "secret", "variations": variations }))
            .await;
    assert_eq!(status, 200, "{v}");
    let (_, before) = admin_json(&edge, "GET", "/projects/other/features/secret", json!({})).await;

    let arn = "arn%3Aaws%3Aevidently%3Aus-east-1%3A000000000000%3Aproject%2F";
    let v = ["ValidationException"];
    let nf = ["ResourceNotFoundException"];
    let either = ["ValidationException", "ResourceNotFoundException"];
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("GET", "/projects/shop%2F..%2Fother/features/secret".into(), &v),
        ("GET", "/projects/shop%2f..%2fother".into(), &v),
        ("DELETE", "/projects/shop%2F..%2Fother".into(), &v),
        ("DELETE", "/projects/other%00".into(), &v),
        ("GET", "/projects/other%00/features/secret".into(), &v),
        ("GET", "/projects/other%252Ffeatures".into(), &v),
        ("GET", "/projects/shop%252F..%252Fother/features/secret".into(), &v),
        ("GET", "/projects/%C0%AF".into(), &v),
        ("GET", "/projects/shop%C0%AF..%C0%AFother/features/secret".into(), &v),
        ("GET", "/projects/%ED%A0%80".into(), &v),
        ("GET", "/projects/%E0%80%AE%E0%80%AE".into(), &v),
        ("GET", "/projects/other%".into(), &v),
        ("GET", "/projects/other%2".into(), &v),
        ("GET", "/projects/other%zz".into(), &v),
        ("GET", "/projects/shop/../other/features/secret".into(), &v),
        ("GET", "/projects/shop/%2E%2E/other/features/secret".into(), &v),
        ("DELETE", "/projects/shop/features/..%2F..%2Fother%2Ffeatures%2Fsecret".into(), &v),
        ("GET", "/projects/shop/features/secret".into(), &nf),
        ("GET", "/projects/./features/secret".into(), &nf),
        ("GET", "/projects/../features/secret".into(), &nf),
        ("POST", "/projects/shop%2F..%2Fother/evaluations/secret".into(), &v),
        ("POST", "/projects/shop/evaluations/..%2Fsecret".into(), &v),
        ("GET", format!("/projects/{arn}shop%2F..%2Fother/features/secret"), &v),
        ("GET", format!("/projects/{arn}shop%2Ffeature%2Fsecret"), &v),
        // Another account's or region's ARN names a project that is not here, never the local namesake.
        ("DELETE", format!("/projects/{}empty", arn.replace("000000000000", "999999999999")), &nf),
        ("DELETE", format!("/projects/{}empty", arn.replace("us-east-1", "eu-west-1")), &nf),
        ("GET", format!("/projects/{}other/features/secret", arn.replace("us-east-1", "eu-west-1")), &nf),
        ("POST", format!("/projects/{}other/evaluations/secret", arn.replace("000000000000", "999999999999")), &nf),
        (
            "GET",
            "/projects/arn%3Aaws%3Aevidently%3Aus-east-1%3A000000000000%3Asegment%2Fx%3Aproject%2Fother".into(),
            &either,
        ),
        ("GET", format!("/tags/{arn}shop%2F..%2Fother"), &either),
        ("POST", format!("/tags/{arn}shop%2F..%2Fother%2Ffeature%2Fsecret"), &either),
        ("GET", "/segments/..%2Fprojects%2Fother".into(), &v),
        ("GET", "/projects/other/features/secret%00".into(), &v),
    ];
    for (method, path, want) in &cases {
        let body = if *method == "POST" { r#"{"entityId":"e","tags":{"a":"b"}}"# } else { "" };
        let answer = admin_call(&edge, method, path, body).await;
        assert_evidently_error(&format!("{method} {path}"), &answer, want);
    }
    // Nothing changed: `other` and its feature are as they were.
    let (status, after) = admin_json(&edge, "GET", "/projects/other/features/secret", json!({})).await;
    assert_eq!((status, &after), (200, &before));
    let (_, list) = admin_json(&edge, "GET", "/projects", json!({})).await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 3, "{list}");
    still_serves(&edge).await;
}

/// CloudFront XML error: the status and the `<Code>`, in the wrapped `ErrorResponse`.
fn assert_cloudfront_error(what: &str, (status, head, body): &(u16, String, String), want: (u16, &str)) {
    assert_eq!(*status, want.0, "{what}: {body}");
    assert!(head.contains("content-type: text/xml"), "{what}: {head}");
    assert!(body.contains("<ErrorResponse") && body.contains(&format!("<Code>{}</Code>", want.1)), "{what}: {body}");
    assert!(head.contains("x-amzn-requestid: "), "{what}: {head}");
}

#[tokio::test]
async fn path_tricks_on_the_cloudfront_api_are_clean_errors_in_xml() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let cases: &[(&str, &str, (u16, &str))] = &[
        (
            "GET",
            "/2020-05-31/continuous-deployment-policy/..%2F..%2Fmetrics",
            (404, "NoSuchContinuousDeploymentPolicy"),
        ),
        ("GET", "/2020-05-31/continuous-deployment-policy/%00", (404, "NoSuchContinuousDeploymentPolicy")),
        ("GET", "/2020-05-31/continuous-deployment-policy/%C0%AF", (400, "InvalidArgument")),
        ("GET", "/2020-05-31/continuous-deployment-policy/%", (400, "InvalidArgument")),
        ("DELETE", "/2020-05-31/continuous-deployment-policy/%252F", (404, "NoSuchContinuousDeploymentPolicy")),
        ("GET", "/2020-05-31/continuous-deployment-policy/a/../b", (405, "InvalidArgument")),
        ("GET", "/2020-05-31/..%2Fcontinuous-deployment-policy", (404, "InvalidArgument")),
        ("GET", "/2020-05-31/distribution", (404, "InvalidArgument")),
        ("GET", "/2020-05-31/continuous-deployment-policy?MaxItems=%C0", (400, "InvalidArgument")),
        ("GET", "/2020-05-31/continuous-deployment-policy?MaxItems=99999999999999999999999", (400, "InvalidArgument")),
    ];
    for (method, path, want) in cases {
        let answer = admin_call(&edge, method, path, "").await;
        assert_cloudfront_error(&format!("{method} {path}"), &answer, *want);
    }
    still_serves(&edge).await;
}

// === deeply nested and oversized documents ===

#[tokio::test]
async fn deeply_nested_json_and_xml_are_a_clean_400_not_a_stack_overflow() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    admin_json(&edge, "POST", "/projects", json!({ "name": "shop" })).await;
    let variations = json!([{ "name": "on", "value": { "boolValue": true } }]);
    admin_json(&edge, "POST", "/projects/shop/features", json!({ "name": "f", "variations": variations })).await;

    let arrays = "[".repeat(100_000);
    let objects = "{\"a\":".repeat(50_000);
    let deep_context = json!({ "entityId": "e", "evaluationContext": format!("{{\"a\":{arrays}") }).to_string();
    let deep_payload = json!({ "pattern": "{\"a\":[1]}", "payload": objects }).to_string();
    let deep_event =
        json!({ "events": [{ "timestamp": 1, "type": "aws.evidently.custom", "data": arrays }] }).to_string();
    let cases: Vec<(&str, &str, &str)> = vec![
        ("POST", "/projects", &arrays),
        ("POST", "/projects", &objects),
        ("POST", "/projects/shop/features", &arrays),
        ("POST", "/segments", &objects),
        ("POST", "/test-segment-pattern", &arrays),
        ("POST", "/projects/shop/evaluations/f", &arrays),
        ("POST", "/projects/shop/evaluations/f", &deep_context),
        ("POST", "/test-segment-pattern", &deep_payload),
        ("PATCH", "/projects/shop", &objects),
    ];
    for (method, path, body) in &cases {
        let answer = admin_call(&edge, method, path, body).await;
        assert_eq!(answer.0, 400, "{method} {path}: {}", answer.2);
        assert_evidently_error(&format!("{method} {path}"), &answer, &["ValidationException"]);
    }
    // PutProjectEvents answers per event: the deep `data` is that event's error, the call succeeds.
    let (status, _, body) = admin_call(&edge, "POST", "/events/projects/shop", &deep_event).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["failedEventCount"].as_i64()), (200, Some(1)), "{v}");

    let xml = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let answer = admin_call(&edge, "POST", "/2020-05-31/continuous-deployment-policy", &xml).await;
    assert_cloudfront_error("deep XML", &answer, (400, "InvalidArgument"));
    let wide = format!("<a>{}</a>", "<b/>".repeat(200_000));
    let answer = admin_call(&edge, "POST", "/2020-05-31/continuous-deployment-policy", &wide).await;
    assert_cloudfront_error("wide XML", &answer, (400, "InvalidArgument"));
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><ContinuousDeploymentPolicyConfig>&b;</ContinuousDeploymentPolicyConfig>"#;
    let answer = admin_call(&edge, "POST", "/2020-05-31/continuous-deployment-policy", bomb).await;
    assert_cloudfront_error("entity expansion", &answer, (400, "InvalidArgument"));

    // Still serving, both the API and the proxy.
    let (status, _) = admin_json(&edge, "POST", "/projects/shop/evaluations/f", json!({ "entityId": "e" })).await;
    assert_eq!(status, 200);
    still_serves(&edge).await;
}

#[tokio::test]
async fn huge_and_deeply_nested_segment_patterns_are_validation_exceptions() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let long_values: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    let nested = |levels: usize| format!("{}[1]{}", "{\"a\":".repeat(levels), "}".repeat(levels));
    let dotted = |dots: usize| format!("{{\"{}\":[1]}}", vec!["a"; dots + 1].join("."));
    let ors = |levels: usize| {
        let mut p = "{\"a\":[1]}".to_string();
        for _ in 0..levels {
            p = format!("{{\"$or\":[{p},{{\"b\":[2]}}]}}");
        }
        p
    };
    let too_many: Vec<String> = (0..257).map(|i| i.to_string()).collect();
    let patterns: Vec<(&str, String)> = vec![
        ("1025 characters", format!("{{\"a\":[\"{}\"]}}", "x".repeat(1016))),
        ("1 MB", format!("{{\"a\":{}}}", serde_json::to_string(&vec!["x".repeat(100); 9000]).unwrap())),
        ("many long values", json!({ "a": long_values }).to_string()),
        ("17 nested objects", nested(17)),
        ("a 1000-level nesting", nested(1000)),
        ("16 dots", dotted(16)),
        ("17 nested $or", ors(17)),
        ("257 values", format!("{{\"a\":[{}]}}", too_many.join(","))),
        ("brackets only", "[".repeat(1000)),
        ("not JSON", "{\"a\":[1]".into()),
        ("an array", "[1]".into()),
        ("empty", "".into()),
    ];
    for (what, pattern) in &patterns {
        let body = json!({ "name": "seg", "pattern": pattern }).to_string();
        let answer = admin_call(&edge, "POST", "/segments", &body).await;
        let v = assert_evidently_error(what, &answer, &["ValidationException"]);
        assert_eq!(answer.0, 400, "{what}: {v}");
        let body = json!({ "pattern": pattern, "payload": "{}" }).to_string();
        let answer = admin_call(&edge, "POST", "/test-segment-pattern", &body).await;
        assert_evidently_error(what, &answer, &["ValidationException"]);
    }
    // At the limits: accepted.
    for (what, pattern) in [("16 nested objects", nested(15)), ("15 dots", dotted(15)), ("15 nested $or", ors(15))] {
        let answer = admin_call(
            &edge,
            "POST",
            "/test-segment-pattern",
            &json!({ "pattern": pattern, "payload": "{}" }).to_string(),
        )
        .await;
        assert_eq!(answer.0, 200, "{what}: {}", answer.2);
    }
    let (_, list) = admin_json(&edge, "GET", "/segments", json!({})).await;
    assert_eq!(list["segments"].as_array().map(Vec::len), Some(0), "{list}");
    still_serves(&edge).await;
}

// === what edgesplit writes into /metrics ===

/// A Prometheus text sample line: `name{label="value",...} number`, values escaped (`\\`, `\"`, `\n`).
fn is_sample(line: &str) -> bool {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        return false;
    }
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        let mut s = labels;
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let Some(eq) = s.find("=\"") else { return false };
            if !s[..eq].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return false;
            }
            let mut chars = s[eq + 2..].char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        if !matches!(chars.next(), Some((_, '\\' | '"' | 'n'))) {
                            return false;
                        }
                    }
                    Some((i, '"')) => break eq + 2 + i,
                    Some((_, '\n')) | None => return false,
                    Some(_) => {}
                }
            };
            s = s[end + 1..].strip_prefix(',').unwrap_or(&s[end + 1..]);
        }
    }
    rest.strip_prefix(' ').is_some_and(|v| v.parse::<f64>().is_ok() || matches!(v, "+Inf" | "-Inf" | "NaN"))
}

#[tokio::test]
async fn a_hostile_metric_monitor_name_cannot_break_the_metrics_text() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    admin_json(&edge, "POST", "/projects", json!({ "name": "shop" })).await;
    let variations =
        json!([{ "name": "a", "value": { "stringValue": "A" } }, { "name": "b", "value": { "stringValue": "B" } }]);
    admin_json(&edge, "POST", "/projects/shop/features", json!({ "name": "banner", "variations": variations })).await;
    let name = r#"x"}1\n#{\"#;
    let launch = json!({
        "name": "rollout",
        "groups": [{ "name": "ga", "feature": "banner", "variation": "a" }, { "name": "gb", "feature": "banner", "variation": "b" }],
        "scheduledSplitsConfig": { "steps": [{ "startTime": unix_now() - 60, "groupWeights": { "ga": 50000, "gb": 50000 } }] },
        "metricMonitors": [{ "metricDefinition": { "name": name, "entityIdKey": "u", "valueKey": "v" } }],
    });
    let (status, v) = admin_json(&edge, "POST", "/projects/shop/launches", launch).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(admin_json(&edge, "POST", "/projects/shop/launches/rollout/start", json!({})).await.0, 200);
    admin_json(&edge, "POST", "/projects/shop/evaluations/banner", json!({ "entityId": "e1" })).await;
    let data = json!({ "u": "e1", "v": 5.0 }).to_string();
    let events = json!({ "events": [{ "timestamp": unix_now(), "type": "aws.evidently.custom", "data": data }] });
    let (status, v) = admin_json(&edge, "POST", "/events/projects/shop", events).await;
    assert_eq!(status, 200, "{v}");
    let m = edge.metrics().await;
    assert!(m.contains("edgesplit_launch_metric_events_total{"), "{m}");
    for line in m.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        assert!(is_sample(line), "not a Prometheus sample: {line}");
    }
}

#[test]
fn the_sample_checker_knows_good_from_bad() {
    assert!(is_sample(r#"a_b{x="1",y="q\"\\\n"} 3"#));
    assert!(is_sample("a 1.5"));
    assert!(!is_sample(r#"a{x="1"}",y="2"} 3"#));
    assert!(!is_sample(r#"a{x="1} 3"#));
}

// === h2c upgrade smuggling ===

/// An origin that accepts `Upgrade: h2c` with `101` and then records every raw byte the tunnel brings.
/// Other requests get `200 no upgrade`.
async fn h2c_upgrading_origin() -> (String, Arc<Mutex<Vec<u8>>>, TaskGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let raw: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sink = raw.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                sink.lock().unwrap().extend_from_slice(&head);
                if String::from_utf8_lossy(&head).to_ascii_lowercase().contains("upgrade: h2c") {
                    let _ = s
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                        .await;
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                } else {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nno upgrade").await;
                }
            });
        }
    });
    (url, raw, TaskGuard(task))
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_tunnelled_to_the_origin() {
    let (url, raw, _guard) = h2c_upgrading_origin().await;
    let edge = Edge::start(&simple_config(&url, None, EDGE_EVIDENTLY)).await;
    let mut s = TcpStream::connect(edge.addr("http")).await.unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
          HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    // Smuggled: a request the proxy never parses, with a forged decision header.
    let _ = s.write_all(b"GET /internal HTTP/1.1\r\nHost: a\r\nx-evidently-evil: forged\r\n\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = String::from_utf8_lossy(&raw.lock().unwrap()).to_ascii_lowercase();
    assert!(!seen.contains("forged"), "a smuggled request reached the origin:\n{seen}");
    assert!(!reply.starts_with("HTTP/1.1 101"), "the h2c upgrade was tunnelled: {reply:?}");
    assert!(!seen.contains("upgrade: h2c"), "{seen}");
}

#[tokio::test]
async fn a_refused_websocket_upgrade_leaves_no_tunnel_behind() {
    // WebSocket smuggling: the origin refuses the upgrade (not 101); a proxy that kept a raw tunnel
    // anyway would pass the next request through unparsed. edgesplit parses it as its own request.
    let (origin, log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, EDGE_EVIDENTLY)).await;
    let first = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 1337\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let second = "GET /internal HTTP/1.1\r\nHost: a\r\nx-evidently-evil: forged\r\nConnection: close\r\n\r\n";
    let (reply, _) = exchange(edge.addr("http"), format!("{first}{second}").as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    for seen in log.lock().unwrap().iter() {
        assert!(seen.header("via").contains(&"1.1 edgesplit".to_string()), "{seen:?}");
        assert!(seen.header("x-evidently-evil").iter().all(|v| v != "forged"), "{seen:?}");
    }
    still_serves(&edge).await;
}

// === telling h2c from HTTP/1.1 on a plain listener ===

/// edgesplit reads a plain connection's first bytes to tell HTTP/2's preface from an HTTP/1.1 request
/// (issue 17: no hyper-util auto connection, sized for HTTP/2, in every HTTP/1.1 connection). A preface
/// split across writes is still HTTP/2; a head that starts like the preface and turns into something
/// else is HTTP/1.1; and bytes that stop mid-preface are cut at the header timeout.
#[tokio::test]
async fn a_split_h2c_preface_is_http2_and_a_near_miss_is_http1() {
    let (origin, _log) = recording_origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "[timeouts]\nclient_header = \"1s\"\n")).await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    for split in [1, 7, 16, 23] {
        let mut s = TcpStream::connect(edge.addr("http")).await.unwrap();
        s.write_all(&preface[..split]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.write_all(&preface[split..]).await.unwrap();
        s.write_all(&settings).await.unwrap();
        let mut head = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head)).await.unwrap().unwrap();
        // The server's first frame: its SETTINGS (type 4 on stream 0), not an HTTP/1.1 answer.
        assert_eq!((head[3], &head[5..9]), (4, &[0u8, 0, 0, 0][..]), "split at {split}: {head:?}");
    }
    // Starts as the preface, then is not: an HTTP/1.1 request (method PRI), answered as one.
    let near_miss = b"PRI * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (reply, closed) = exchange(edge.addr("http"), near_miss, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 "), "{reply:?}");
    assert!(closed);
    // Half a preface, then silence: closed within the header timeout (and a margin), never served.
    let started = Instant::now();
    let (reply, closed) = exchange(edge.addr("http"), &preface[..10], Duration::from_secs(5)).await;
    assert!(closed && reply.is_empty(), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    still_serves(&edge).await;
}
