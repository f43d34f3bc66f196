//! edgesplit's own HTTP/1.1 server (`src/server/h1.rs`, issue 17) on the wire: the bodiless requests it
//! serves itself, pipelined, and the hand-over to hyper's server in the middle of a connection at the
//! first request that is not its own (an upload, HTTP/1.0), with every byte read so far. Raw bytes on a
//! TCP socket, so that what goes over the wire is what is checked. `tests/hostile.rs` holds the hostile
//! heads, which both servers must refuse alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Log = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// An origin that records method, path and body, and answers by path: `/204`, `/304` (with an ETag),
/// anything else 200 `ok` with a `Content-Length`.
async fn origin() -> (Origin, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let sink = sink.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            let path = parts.uri.path().to_string();
            sink.lock().unwrap().push((parts.method.to_string(), path.clone(), body));
            match path.as_str() {
                "/204" => Response::builder().status(StatusCode::NO_CONTENT).body(full("")).unwrap(),
                "/304" => Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header("etag", "\"v1\"")
                    .body(full(""))
                    .unwrap(),
                _ => Response::builder().header("x-path", path).body(full("ok")).unwrap(),
            }
        }
    })
    .await;
    (origin, log)
}

/// Writes `bytes` (in pieces of `piece` bytes, `gap` apart), then reads until the server closes the
/// connection (bounded): what came back.
async fn exchange(addr: SocketAddr, bytes: &[u8], piece: usize, gap: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    for chunk in bytes.chunks(piece) {
        s.write_all(chunk).await.unwrap();
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server did not close the connection after Connection: close")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The responses in a byte stream, split at each status line.
fn responses(text: &str) -> Vec<String> {
    text.split("HTTP/1.1 ").filter(|r| !r.is_empty()).map(|r| format!("HTTP/1.1 {r}")).collect()
}

fn paths(log: &Log) -> Vec<String> {
    log.lock().unwrap().iter().map(|(m, p, _)| format!("{m} {p}")).collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_connection_close_is_honoured() {
    let (origin, log) = origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let req = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let reply = exchange(edge.addr("http"), req.as_bytes(), req.len(), Duration::ZERO).await;
    let rs = responses(&reply);
    assert_eq!(rs.len(), 3, "{reply}");
    for (r, path) in rs.iter().zip(["/a", "/b", "/c"]) {
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains(&format!("x-path: {path}\r\n")), "answered out of order: {reply}");
        assert!(r.contains("content-length: 2\r\n") && r.ends_with("\r\n\r\nok"), "{r}");
        assert!(r.contains("\r\ndate: "), "no Date field: {r}");
    }
    assert!(rs[2].contains("connection: close\r\n"), "Connection: close was not answered in kind: {}", rs[2]);
    assert!(!rs[0].contains("connection: close"), "{}", rs[0]);
    assert_eq!(paths(&log), ["GET /a", "GET /b", "GET /c"]);
}

#[tokio::test]
async fn an_upload_mid_connection_goes_to_hyper_with_every_byte_and_the_connection_goes_on() {
    let (origin, log) = origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    // One write: the first request is edgesplit's own, the upload (and all after it) hyper's, which must
    // get the upload's head, its body and the next request whole.
    for upload in [
        "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /up HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
    ] {
        log.lock().unwrap().clear();
        let req = format!(
            "GET /first HTTP/1.1\r\nHost: a\r\n\r\n{upload}GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        );
        let reply = exchange(edge.addr("http"), req.as_bytes(), req.len(), Duration::ZERO).await;
        let rs = responses(&reply.replace("HTTP/1.0 ", "HTTP/1.1 "));
        assert_eq!(rs.len(), 3, "{upload:?}: {reply}");
        assert!(rs.iter().all(|r| r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("ok")), "{reply}");
        let seen = log.lock().unwrap().clone();
        let method = if upload.starts_with("POST") { "POST" } else { "GET" };
        assert_eq!(paths(&log), ["GET /first", &format!("{method} /up"), "GET /last"], "{upload:?}");
        if method == "POST" {
            assert_eq!(seen[1].2, b"hello", "the upload's body did not arrive whole");
        }
    }
}

#[tokio::test]
async fn head_204_and_304_carry_no_body_and_the_connection_goes_on() {
    let (origin, log) = origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let req = "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let reply = exchange(edge.addr("http"), req.as_bytes(), req.len(), Duration::ZERO).await;
    let rs = responses(&reply);
    assert_eq!(rs.len(), 4, "{reply}");
    // HEAD: the length a GET would get, and no body.
    assert!(rs[0].starts_with("HTTP/1.1 200 OK\r\n") && rs[0].contains("content-length: 2\r\n"), "{}", rs[0]);
    assert!(rs[0].ends_with("\r\n\r\n"), "a HEAD response carried a body: {:?}", rs[0]);
    assert!(rs[1].starts_with("HTTP/1.1 204 No Content\r\n") && rs[1].ends_with("\r\n\r\n"), "{:?}", rs[1]);
    assert!(!rs[1].contains("content-length") && !rs[1].contains("transfer-encoding"), "{:?}", rs[1]);
    assert!(rs[2].starts_with("HTTP/1.1 304 Not Modified\r\n") && rs[2].ends_with("\r\n\r\n"), "{:?}", rs[2]);
    assert!(rs[2].contains("etag: \"v1\"\r\n"), "{:?}", rs[2]);
    assert!(rs[3].ends_with("\r\n\r\nok"), "{:?}", rs[3]);
    assert_eq!(paths(&log), ["HEAD /h", "GET /204", "GET /304", "GET /last"]);
}

#[tokio::test]
async fn a_head_trickled_a_few_bytes_at_a_time_is_served() {
    let (origin, log) = origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let req = "GET /slow?q=1 HTTP/1.1\r\nHost: a\r\nX-Long: abcdefghijklmnopqrstuvwxyz\r\nConnection: close\r\n\r\n";
    let reply = exchange(edge.addr("http"), req.as_bytes(), 3, Duration::from_millis(2)).await;
    let rs = responses(&reply);
    assert_eq!(rs.len(), 1, "{reply}");
    assert!(rs[0].starts_with("HTTP/1.1 200 OK\r\n") && rs[0].ends_with("ok"), "{reply}");
    assert_eq!(paths(&log), ["GET /slow"]);
}

#[tokio::test]
async fn heads_that_are_not_its_own_get_hyper_s_answers() {
    let (origin, log) = origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    // After a request served by edgesplit's own server, a malformed head is hyper's to refuse (400),
    // and a head with too many fields its 431: the same answers as on a fresh connection.
    let many: String = (0..120).map(|i| format!("x-f{i}: 1\r\n")).collect();
    for (bad, status) in [
        ("GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n".to_string(), "400"),
        (format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"), "431"),
    ] {
        log.lock().unwrap().clear();
        let req = format!("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n{bad}");
        let reply = exchange(edge.addr("http"), req.as_bytes(), req.len(), Duration::ZERO).await;
        let rs = responses(&reply);
        assert_eq!(rs.len(), 2, "{reply}");
        assert!(rs[0].starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(rs[1].starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
        assert_eq!(paths(&log), ["GET /ok"]);
    }
}

#[tokio::test]
async fn a_head_with_no_line_feed_is_not_buffered_past_the_limit() {
    let (origin, log) = origin().await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    // 200 KB of request line and no line feed, after a served request: refused as hyper refuses a head
    // past `limits.max_header_bytes` (64 KiB), not read on for ever; the connection closes.
    let req = format!("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /{}", "a".repeat(200_000));
    let mut s = TcpStream::connect(edge.addr("http")).await.unwrap();
    // The server may close while the rest is still being sent: a failed write is fine.
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("still open");
    let reply = String::from_utf8_lossy(&out);
    let rs = responses(&reply);
    assert_eq!(rs.len(), 2, "{reply}");
    assert!(rs[1].starts_with("HTTP/1.1 414 ") || rs[1].starts_with("HTTP/1.1 431 "), "{reply}");
    assert_eq!(paths(&log), ["GET /ok"]);
}
