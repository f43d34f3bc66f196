//! The request path end to end: real origins, a real edgesplit, real HTTP/1.1 and h2c clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use support::*;

fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed()
}

#[tokio::test]
async fn http1_request_reaches_primary_with_forwarding_headers_and_without_hop_by_hop() {
    let origin = Origin::echo("primary").await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;

    let req = Request::get(edge.url("http", "/a/b?c=d"))
        .header("host", "shop.example.com")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-keep", "yes")
        .body(empty())
        .unwrap();
    let (status, headers, body) = send(&http1_client(), req).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-origin"], "primary");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "primary");
    assert_eq!(lines[1], "GET /a/b?c=d");
    assert!(lines.contains(&"host: shop.example.com"), "{body}");
    assert!(lines.contains(&"x-keep: yes"), "{body}");
    assert!(lines.contains(&"x-forwarded-for: 203.0.113.9, 127.0.0.1"), "{body}");
    assert!(lines.contains(&"x-forwarded-proto: http"), "{body}");
    assert!(lines.contains(&"x-forwarded-host: shop.example.com"), "{body}");
    assert!(lines.contains(&"via: 1.1 edgesplit"), "{body}");
    for gone in ["x-drop-me", "keep-alive", "proxy-authorization", "te:"] {
        assert!(!body.contains(gone), "{gone} reached the origin:\n{body}");
    }
    // Response side: the origin's hop-by-hop headers are stripped, Via is added.
    assert!(headers.get("x-res-drop").is_none());
    assert!(headers.get("keep-alive").is_none());
    assert!(headers.get("proxy-x").is_none());
    assert_eq!(headers["via"], "1.1 edgesplit");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_proxied_to_an_http1_origin() {
    let origin = Origin::echo("primary").await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let req = Request::get(format!("http://app.test:{}/h2", edge.addr("http").port())).body(empty()).unwrap();
    // The client connects to the proxy's address but speaks for app.test.
    let client = h2c_client();
    let req = {
        let mut r = req;
        *r.uri_mut() = edge.url("http", "/h2").parse().unwrap();
        r.headers_mut().insert("x-h2", "1".parse().unwrap());
        r
    };
    let (status, _, body) = send(&client, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("GET /h2"), "{body}");
    assert!(body.contains("via: 2 edgesplit"), "{body}");
    assert!(body.contains(&format!("host: {}", edge.addr("http"))), "{body}");
}

#[tokio::test]
async fn http2_origin_pool_is_spoken_to_in_http2() {
    let origin = Origin::start(|req: Request<Incoming>| async move {
        Response::new(full(format!(
            "{:?} {}",
            req.version(),
            req.headers().get("host").map_or("-", |h| h.to_str().unwrap())
        )))
    })
    .await;
    let config = simple_config(&origin.url(), None, "").replace(
        &format!("origins = [\"{}\"]\n", origin.url()),
        &format!("origins = [\"{}\"]\nprotocol = \"http2\"\nhost = \"internal.test\"\n", origin.url()),
    );
    let edge = Edge::start(&config).await;
    let (status, _, body) = get(&edge.url("http", "/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "HTTP/2.0 internal.test");
}

#[tokio::test]
async fn origins_of_a_pool_take_turns() {
    let a = Origin::echo("a").await;
    let b = Origin::echo("b").await;
    let config = simple_config(&a.url(), None, "")
        .replace(&format!("\"{}\"", a.url()), &format!("\"{}\", \"{}\"", a.url(), b.url()));
    let edge = Edge::start(&config).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(get(&edge.url("http", "/")).await.1["x-origin"].to_str().unwrap().to_string());
    }
    assert_eq!(seen, ["a", "b", "a", "b"]);
}

#[tokio::test]
async fn unknown_host_is_404_when_no_default_distribution() {
    let origin = Origin::echo("primary").await;
    let config = simple_config(&origin.url(), None, "").replace("domains = [\"*\"]", "domains = [\"shop.test\"]");
    let edge = Edge::start(&config).await;
    let req = Request::get(edge.url("http", "/")).header("host", "other.test").body(empty()).unwrap();
    let (status, _, body) = send(&http1_client(), req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "no distribution serves this host\n");
    let req = Request::get(edge.url("http", "/")).header("host", "SHOP.test:80").body(empty()).unwrap();
    assert_eq!(send(&http1_client(), req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn connect_failure_is_502_and_counted() {
    let dead = dead_port().await;
    let edge = Edge::start(&simple_config(&format!("http://{dead}"), None, "")).await;
    let (status, headers, body) = get(&edge.url("http", "/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "upstream connection failed\n");
    let m = edge.metrics().await;
    assert!(m.contains("edgesplit_upstream_errors_total{kind=\"connect\"} 1"), "{m}");
    assert!(m.contains("edgesplit_requests_total{distribution=\"web\",target=\"primary\",status=\"5xx\"} 1"), "{m}");
}

#[tokio::test]
async fn slow_origin_is_504_after_the_upstream_timeout() {
    let origin = Origin::start(|_req: Request<Incoming>| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Response::new(full("late"))
    })
    .await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "[timeouts]\nupstream_response = \"300ms\"\n")).await;
    let started = std::time::Instant::now();
    let (status, _, body) = get(&edge.url("http", "/")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "upstream timed out\n");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(edge.metrics().await.contains("edgesplit_upstream_errors_total{kind=\"timeout\"} 1"));
}

#[tokio::test]
async fn expect_100_continue_gets_its_interim_answer_and_the_body_arrives() {
    let origin = Origin::start(|req: Request<Incoming>| async move {
        let expect = req.headers().get("expect").is_some();
        let n = req.into_body().collect().await.unwrap().to_bytes().len();
        Response::new(full(format!("{n} expect-forwarded={expect}")))
    })
    .await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "")).await;
    let mut s = tokio::net::TcpStream::connect(edge.addr("http")).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            rest.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&rest).contains("expect-forwarded") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("5 expect-forwarded=false"), "{text}");
}

#[tokio::test]
async fn oversized_request_head_is_431() {
    let origin = Origin::echo("primary").await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "[limits]\nmax_header_bytes = 8192\n")).await;
    let big = "a".repeat(9000);
    let reply = raw(
        edge.addr("http"),
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // And the proxy still serves.
    assert_eq!(get(&edge.url("http", "/")).await.0, StatusCode::OK);
}

/// At shutdown an idle keep-alive connection closes at once: the drain wakes every connection, which
/// then reads its flag. It does not wait for the watchdog's next tick (here a second away), nor for the
/// end of the 60 s grace.
#[tokio::test]
async fn shutdown_closes_an_idle_keep_alive_connection_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start(|_req: Request<Incoming>| async { Response::new(full("ok")) }).await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "[timeouts]\nshutdown_grace = \"60s\"\n")).await;
    let mut s = tokio::net::TcpStream::connect(edge.addr("http")).await.unwrap();
    let connected = std::time::Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let (mut buf, mut got) = ([0u8; 256], Vec::new());
    while !got.ends_with(b"\r\n\r\nok") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let started = std::time::Instant::now();
    // The watchdog ticks once a second from the connection's start (its longest period): well after
    // the bound below, so only the drain's wake-up can close the connection in time.
    assert!(started - connected < Duration::from_millis(300), "the request took {:?}", started - connected);
    edge.handle.shutdown();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("not closed").unwrap_or(0);
    assert_eq!(n, 0, "expected a close, got {:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(started.elapsed() < Duration::from_millis(600), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn slow_request_head_is_cut_at_the_header_timeout_but_idle_keepalive_lasts_longer() {
    let origin = Origin::start(|_req: Request<Incoming>| async { Response::new(full("ok")) }).await;
    let edge = Edge::start(&simple_config(
        &origin.url(),
        None,
        "[timeouts]\nclient_header = \"400ms\"\nclient_idle = \"3s\"\n",
    ))
    .await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Slowloris: half a head, then nothing. Closed within a couple of header timeouts.
    let mut s = tokio::net::TcpStream::connect(edge.addr("http")).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await.expect("not closed").unwrap_or(0);
    assert_eq!(n, 0, "expected a close, got {:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());

    // Idle keep-alive: one request, then silence longer than the header timeout: still open.
    let mut s = tokio::net::TcpStream::connect(edge.addr("http")).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\nok") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.write_all(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "idle connection was closed before client_idle"
    );

    // Then past client_idle with nothing in flight: closed.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection was never closed");
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let origin = Origin::echo("primary").await;
    let edge = Edge::start(&simple_config(&origin.url(), None, "[limits]\nmax_connections = 1\n")).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let first = tokio::net::TcpStream::connect(edge.addr("http")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second connection is accepted by the kernel but not served while the first is open.
    let mut second = tokio::net::TcpStream::connect(edge.addr("http")).await.unwrap();
    second.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 32];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await.is_err(),
        "served past the cap"
    );
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// A hand-written HTTP/1.1 origin that counts the connections it accepts. `mode`: "length" answers with
/// Content-Length, "chunked" with a chunked body, "close" answers with Content-Length and then closes the
/// connection without saying so (as an origin whose keep-alive timer fires while the proxy pools it).
async fn counting_origin(mode: &'static str) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let answer: &[u8] = match mode {
                        "chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    };
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    if mode == "close" {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn origin_connections_are_reused_for_length_and_chunked_bodies() {
    for mode in ["length", "chunked"] {
        let (addr, accepted) = counting_origin(mode).await;
        let edge = Edge::start(&simple_config(&format!("http://{addr}"), None, "[limits]\nworkers = 1\n")).await;
        let client = http1_client();
        for _ in 0..20 {
            let req = Request::get(edge.url("http", "/")).body(Empty::new().map_err(|n| match n {}).boxed()).unwrap();
            let (status, _, body) = send(&client, req).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "{mode}");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "{mode}: one pooled connection");
    }
}

#[tokio::test]
async fn a_pooled_connection_the_origin_closed_is_replaced_without_an_error() {
    let (addr, accepted) = counting_origin("close").await;
    let edge = Edge::start(&simple_config(&format!("http://{addr}"), None, "[limits]\nworkers = 1\n")).await;
    let client = http1_client();
    for i in 0..10 {
        let req = Request::get(edge.url("http", "/")).body(Empty::new().map_err(|n| match n {}).boxed()).unwrap();
        let (status, _, body) = send(&client, req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "request {i}");
        // Half the time the next request comes before the proxy has seen the close: it must be re-sent.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 10);
}
