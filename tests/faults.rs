//! Faults (issue 8, part 4), against the real binary: origins that die mid-stream or hang, a staging pool
//! that is down, `kill -9` after acknowledged writes and during a stream of them, a store that cannot
//! grow, and reloads and policy changes under load. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use serde_json::{Value, json};
use support::cloudfront::{CF, api, create_policy, element, header_policy, update_policy, weight_policy};
use support::process::{BIN, Proc};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// [`simple_config`] for the binary, with info logs: the test reads the bound addresses from them.
fn config(primary: &str, staging: Option<&str>, extra: &str) -> String {
    simple_config(primary, staging, extra).replace("level = \"warn\"", "level = \"info\"")
}

/// Writes `text` to `path` atomically (a reload never reads half a file).
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A config file in a fresh folder; the store, when wanted, is `store/` beside it.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { dir: tempfile::tempdir().unwrap() }
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("edgesplit.toml")
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

// === calls ===

fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed()
}

async fn ev(admin: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, _, text) = api(admin, method, path, &body.to_string(), &[("content-type", "application/json")]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

// === origins that fail ===

#[derive(Clone, Copy, Debug)]
enum Death {
    /// Reads the request, sends a head announcing 1 MB and 16 KiB of it, then closes (FIN).
    Fin,
    /// The same without reading the request, so the kernel answers with a reset, as when the origin's
    /// process is killed.
    Rst,
    /// Reads the request, sends a chunked head and 16 KiB of chunks, then closes before the last chunk.
    Chunked,
}

/// An origin on raw TCP that dies mid-response on every connection.
async fn dying_origin(death: Death) -> (String, TaskGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                match death {
                    Death::Rst => {
                        // One byte: the request has started to arrive; the rest stays unread.
                        let _ = s.read(&mut buf[..1]).await;
                    }
                    Death::Fin | Death::Chunked => {
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            let Ok(n) = s.read(&mut buf).await else { return };
                            if n == 0 {
                                return;
                            }
                            got.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                let part = vec![b'x'; 16 * 1024];
                let _ = match death {
                    Death::Fin | Death::Rst => {
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n").await.unwrap();
                        s.write_all(&part).await
                    }
                    Death::Chunked => {
                        s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
                        s.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await.unwrap();
                        s.write_all(&part).await.unwrap();
                        s.write_all(b"\r\n").await
                    }
                };
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Dropped: FIN, or RST when request bytes are still unread.
            });
        }
    });
    (url, TaskGuard(task))
}

fn with_host(url: &str, host: &str) -> Request<Body> {
    Request::get(url).header("host", host).body(empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_dying_mid_stream_cuts_the_client_short_without_a_hang_and_the_proxy_keeps_serving() {
    let healthy = Origin::echo("healthy").await;
    let mut extra = String::new();
    let mut guards = Vec::new();
    for (host, death) in [("fin.test", Death::Fin), ("rst.test", Death::Rst), ("chunked.test", Death::Chunked)] {
        let (url, guard) = dying_origin(death).await;
        guards.push(guard);
        extra.push_str(&format!(
            "\n[[distribution]]\nid = \"{}\"\ndomains = [\"{host}\"]\n[distribution.primary]\norigins = [\"{url}\"]\n",
            host.trim_end_matches(".test")
        ));
    }
    let files = Files::new();
    write_config(&files.config(), &config(&healthy.url(), None, &extra));
    let mut proc = Proc::start(&files.config());
    let addr = proc.addr("http").await;
    let url = format!("http://{addr}/stream");

    for host in ["fin.test", "rst.test", "chunked.test"] {
        for _ in 0..3 {
            let started = Instant::now();
            let resp = tokio::time::timeout(Duration::from_secs(10), http1_client().request(with_host(&url, host)))
                .await
                .expect("no response head")
                .expect("the head was sent before the origin died");
            assert_eq!(resp.status(), StatusCode::OK, "{host}");
            let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await;
            let body = body.unwrap_or_else(|_| panic!("{host}: the client hung on a dead origin"));
            assert!(body.is_err(), "{host}: a cut body was delivered as complete");
            assert!(started.elapsed() < Duration::from_secs(5), "{host}: {:?}", started.elapsed());
        }
    }
    // On the wire, a chunked response cut upstream is cut downstream too: never a clean last chunk.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: chunked.test\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("hung").ok();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "the cut response was terminated as if complete");

    // Still serving, on fresh and pooled connections alike.
    let client = http1_client();
    for _ in 0..20 {
        let (status, h, _) = send(&client, with_host(&url, "ok.test")).await;
        assert_eq!((status, h["x-origin"].to_str().unwrap()), (StatusCode::OK, "healthy"));
    }
    proc.wait_for(&["msg=access", "host=rst.test", "aborted=true"]).await;
    assert!(proc.running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_origin_is_504_within_the_upstream_timeout_and_the_proxy_keeps_serving() {
    // The watchdog ticks every second here (an eighth of the 10 s header timeout): too coarse for a
    // 500 ms deadline, which each request then keeps with a timer of its own.
    hanging_origin_is_504("[timeouts]\nupstream_response = \"500ms\"\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_origin_is_504_on_time_when_the_connection_watchdog_keeps_the_deadline() {
    // The watchdog ticks every 50 ms (an eighth of the 400 ms header timeout), 10 times within the
    // deadline: HTTP/1.1 requests served in the connection's task are held to it by its ticks.
    hanging_origin_is_504("[timeouts]\nupstream_response = \"500ms\"\nclient_header = \"400ms\"\n").await;
}

/// Eight requests to a hanging origin are answered 504 after the 500 ms upstream timeout (not before,
/// and not seconds later), while other requests are served at once.
async fn hanging_origin_is_504(timeouts: &str) {
    let origin = Origin::start(|req: Request<Incoming>| async move {
        if req.uri().path() == "/hang" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Response::new(full("ok"))
    })
    .await;
    let files = Files::new();
    write_config(&files.config(), &config(&origin.url(), None, timeouts));
    let mut proc = Proc::start(&files.config());
    let addr = proc.addr("http").await;
    let hung: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("http://{addr}/hang");
            tokio::spawn(async move {
                let started = Instant::now();
                let (status, _, body) = get(&url).await;
                (status, body, started.elapsed())
            })
        })
        .collect();
    // While they wait, other requests are served at once.
    let (status, _, body) = get(&format!("http://{addr}/fast")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    for h in hung {
        let (status, body, took) = h.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"));
        assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "{took:?}");
    }
    let (_, _, metrics) = get(&format!("http://{}/metrics", proc.admin().await)).await;
    assert!(metrics.contains("edgesplit_upstream_errors_total{kind=\"timeout\"} 8"), "{metrics}");
    assert_eq!(get(&format!("http://{addr}/fast")).await.0, StatusCode::OK);
}

// === staging down ===

/// The config with a staging pool (and its staging name) plus `extra`.
fn staging_config(primary: &str, staging: &str, extra: &str) -> String {
    config(primary, Some(staging), extra)
        .replace("domains = [\"*\"]\n", "domains = [\"*\"]\nstaging_dns_name = \"staging.web.test\"\n")
}

/// `n` GETs over one keep-alive client (with `headers`): each must be 200 from primary.
async fn all_from_primary(url: &str, n: usize, headers: &[(&str, &str)]) {
    let client = http1_client();
    for i in 0..n {
        let mut req = Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (status, h, _) = send(&client, req.body(empty()).unwrap()).await;
        assert_eq!((status, h["x-origin"].to_str().unwrap()), (StatusCode::OK, "primary"), "request {i}");
    }
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(line_start)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_staging_down_every_request_is_answered_200_from_primary() {
    let primary = Origin::echo("primary").await;
    let dead = dead_port().await;
    let files = Files::new();
    // `unhealthy_for = "0s"`: staging is never skipped, so every request drawn for staging really tries
    // it and is sent on to primary (the retry path, not just the skip).
    let text = staging_config(&primary.url(), &format!("http://{dead}"), "[upstream]\nunhealthy_for = \"0s\"\n")
        .replace("[log]\n", "[log]\naccess_log = false\n");
    write_config(&files.config(), &text);
    let mut proc = Proc::start(&files.config());
    let url = format!("http://{}/", proc.addr("http").await);
    let admin = proc.admin().await;

    // CloudFront's highest weight, no stickiness: 15 % of 400 requests drawn for staging (at least one
    // but for a chance of 0.85^400, about 1e-28).
    let (id, etag) = create_policy(admin, &weight_policy("staging.web.test", 0.15, true)).await;
    all_from_primary(&url, 400, &[]).await;
    let (_, _, m) = get(&format!("http://{admin}/metrics")).await;
    let unavailable = "edgesplit_routing_decisions_total{distribution=\"web\",reason=\"staging-unavailable\"} ";
    let retried = metric(&m, unavailable);
    assert!(retried > 0 && metric(&m, "edgesplit_upstream_errors_total{kind=\"connect\"} ") == retried, "{m}");

    // A header policy: every matching request is drawn for staging, and still answered by primary.
    update_policy(admin, &id, &etag, &header_policy("staging.web.test", "blue")).await;
    all_from_primary(&url, 100, &[("aws-cf-cd-test", "blue")]).await;
    let (_, _, m) = get(&format!("http://{admin}/metrics")).await;
    assert_eq!(metric(&m, unavailable), retried + 100, "{m}");

    // The default `unhealthy_for`: after the first refusal staging is skipped outright.
    write_config(&files.config(), &text.replace("unhealthy_for = \"0s\"", "unhealthy_for = \"10s\""));
    proc.signal("-HUP");
    proc.wait_for(&["Config reloaded"]).await;
    all_from_primary(&url, 100, &[("aws-cf-cd-test", "blue")]).await;
    let (_, _, m) = get(&format!("http://{admin}/metrics")).await;
    // One refusal at most (the first staging attempt after the reload); 100 came from the phase before.
    assert!(metric(&m, "edgesplit_upstream_errors_total{kind=\"connect\"} ") <= retried + 101, "{m}");
    for line in m.lines().filter(|l| l.contains("status=\"5xx\"")) {
        assert!(line.ends_with(" 0"), "{line}");
    }
}

// === kill -9 and the store ===

/// `n` distributions `d0..`, each with a staging pool named `s{i}.test`, and the store beside the file.
fn fleet_config(origin: &str, n: usize, extra: &str) -> String {
    let mut text = config(origin, None, &format!("[store]\npath = \"store\"\n{extra}"))
        .replace("[log]\n", "[log]\naccess_log = false\n");
    for i in 0..n {
        text.push_str(&format!(
            "\n[[distribution]]\nid = \"d{i}\"\ndomains = [\"d{i}.test\"]\nstaging_dns_name = \"s{i}.test\"\n\
             [distribution.primary]\norigins = [\"{origin}\"]\n[distribution.staging]\norigins = [\"{origin}\"]\n"
        ));
    }
    text
}

/// Everything the admin API says exists: policies (id -> (ETag, body)) and Evidently resources (path -> JSON).
async fn everything(admin: SocketAddr) -> (BTreeMap<String, (String, String)>, BTreeMap<String, Value>) {
    let mut policies = BTreeMap::new();
    let (status, _, list) = api(admin, "GET", &format!("{CF}?MaxItems=1000"), "", &[]).await;
    assert_eq!(status, 200, "{list}");
    for chunk in list.split("<Id>").skip(1) {
        let id = &chunk[..chunk.find("</Id>").unwrap()];
        let (status, h, body) = api(admin, "GET", &format!("{CF}/{id}"), "", &[]).await;
        assert_eq!(status, 200, "{body}");
        policies.insert(id.to_string(), (h["etag"].to_str().unwrap().to_string(), body));
    }
    let mut resources = BTreeMap::new();
    let (_, projects) = ev(admin, "GET", "/projects?maxResults=50", json!({})).await;
    for p in projects["projects"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let (status, v) = ev(admin, "GET", &format!("/projects/{name}"), json!({})).await;
        assert_eq!(status, 200);
        resources.insert(format!("project/{name}"), v);
        let (_, features) = ev(admin, "GET", &format!("/projects/{name}/features?maxResults=100"), json!({})).await;
        for f in features["features"].as_array().unwrap() {
            let fname = f["name"].as_str().unwrap();
            let (status, v) = ev(admin, "GET", &format!("/projects/{name}/features/{fname}"), json!({})).await;
            assert_eq!(status, 200);
            resources.insert(format!("feature/{name}/{fname}"), v);
        }
    }
    (policies, resources)
}

fn variations() -> Value {
    json!([{ "name": "off", "value": { "boolValue": false } }, { "name": "on", "value": { "boolValue": true } }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9_with_its_etag() {
    let origin = Origin::echo("primary").await;
    let files = Files::new();
    write_config(&files.config(), &fleet_config(&origin.url(), 10, ""));
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;

    let mut etags = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..10 {
        let (id, etag) = create_policy(admin, &weight_policy(&format!("s{i}.test"), 0.01 * i as f64, true)).await;
        etags.insert(id.clone(), etag);
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate().take(5) {
        let etag = update_policy(admin, id, &etags[id], &header_policy(&format!("s{i}.test"), "x")).await;
        etags.insert(id.clone(), etag);
    }
    let (status, _, _) = api(admin, "DELETE", &format!("{CF}/{}", ids[9]), "", &[("if-match", &etags[&ids[9]])]).await;
    assert_eq!(status, 204);
    etags.remove(&ids[9]);
    for p in 0..3 {
        assert_eq!(ev(admin, "POST", "/projects", json!({ "name": format!("p{p}") })).await.0, 200);
        for f in 0..5 {
            let body = json!({ "name": format!("f{f}"), "variations": variations() });
            assert_eq!(ev(admin, "POST", &format!("/projects/p{p}/features"), body).await.0, 200);
        }
        let patch = json!({ "description": "changed", "defaultVariation": "on" });
        assert_eq!(ev(admin, "PATCH", &format!("/projects/p{p}/features/f0"), patch).await.0, 200);
        assert_eq!(ev(admin, "DELETE", &format!("/projects/p{p}/features/f4"), json!({})).await.0, 200);
    }
    let before = everything(admin).await;
    assert_eq!(before.0.len(), 9);
    assert_eq!(before.1.len(), 3 + 3 * 4);
    for (id, etag) in &etags {
        assert_eq!(&before.0[id].0, etag);
    }

    proc.kill9();
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    let after = everything(admin).await;
    assert_eq!(after.0, before.0, "policies changed across kill -9");
    assert_eq!(after.1, before.1, "Evidently resources changed across kill -9");
    // And they are live, not just listed: an ETag still guards an update.
    let id = &ids[0];
    let (status, _, body) =
        api(admin, "PUT", &format!("{CF}/{id}"), &weight_policy("s0.test", 0.1, true), &[("if-match", "ESTALE")]).await;
    assert_eq!(status, 412, "{body}");
    update_policy(admin, id, &etags[id], &weight_policy("s0.test", 0.1, true)).await;
    assert!(proc.find(&["Unreadable"]).is_none(), "{}", proc.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_stream_of_writes_keeps_every_acknowledged_one_and_nothing_half_written() {
    let origin = Origin::echo("primary").await;
    let files = Files::new();
    write_config(&files.config(), &fleet_config(&origin.url(), 1, "[evidently]\nmax_projects = 100000\n"));
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    let (policy, etag) = create_policy(admin, &weight_policy("s0.test", 0.0, true)).await;

    // Four writers make projects, each followed by a feature in it; a fifth keeps replacing the policy
    // with weight k/10000, k = 1, 2, ... Every 2xx is recorded as acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for t in 0..4 {
        let (stop, acked, count) = (stop.clone(), acked.clone(), count.clone());
        writers.push(tokio::spawn(async move {
            let client = http1_client();
            let call = |method: &'static str, path: String, body: Value| {
                let req = Request::builder()
                    .method(method)
                    .uri(format!("http://{admin}{path}"))
                    .body(full(body.to_string()))
                    .unwrap();
                let client = client.clone();
                async move {
                    let r = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await;
                    matches!(r, Ok(Ok(resp)) if resp.status() == StatusCode::OK)
                }
            };
            for i in 0.. {
                if stop.load(Relaxed) {
                    break;
                }
                let p = format!("w{t}-{i}");
                if !call("POST", "/projects".into(), json!({ "name": p })).await {
                    break;
                }
                acked.lock().unwrap().push(format!("project/{p}"));
                count.fetch_add(1, Relaxed);
                let body = json!({ "name": "f", "variations": variations() });
                if !call("POST", format!("/projects/{p}/features"), body).await {
                    break;
                }
                acked.lock().unwrap().push(format!("feature/{p}/f"));
                count.fetch_add(1, Relaxed);
            }
        }));
    }
    let last_policy = Arc::new(Mutex::new((0u64, etag)));
    {
        let (stop, last, policy) = (stop.clone(), last_policy.clone(), policy.clone());
        writers.push(tokio::spawn(async move {
            let client = http1_client();
            for k in 1..=1500u64 {
                if stop.load(Relaxed) {
                    break;
                }
                let etag = last.lock().unwrap().1.clone();
                let req = Request::put(format!("http://{admin}{CF}/{policy}"))
                    .header("if-match", etag)
                    .body(full(weight_policy("s0.test", k as f64 / 10000.0, true)))
                    .unwrap();
                match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                    Ok(Ok(resp)) if resp.status() == StatusCode::OK => {
                        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
                        *last.lock().unwrap() = (k, etag);
                    }
                    _ => break,
                }
            }
        }));
    }
    // Kill once enough is acknowledged (writes are then in flight on every writer).
    let deadline = Instant::now() + Duration::from_secs(8);
    while count.load(Relaxed) < 150 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proc.kill9();
    stop.store(true, Relaxed);
    for w in writers {
        tokio::time::timeout(Duration::from_secs(15), w).await.expect("a writer hung").unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let (k, last_etag) = last_policy.lock().unwrap().clone();
    assert!(acked.len() >= 20 && k >= 5, "too few writes before the kill: {} and {k}", acked.len());

    // The store, read directly: opens cleanly, every record whole, no feature without its project.
    {
        let store = edgesplit::store::Store::open(&files.store()).expect("the store does not open after kill -9");
        let rows = store.evidently().unwrap();
        let keys: std::collections::BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        for (key, json) in &rows {
            assert!(edgesplit::evidently::model::Resource::from_stored(key, json).is_some(), "half-written {key}");
            if let Some(rest) = key.strip_prefix("feature/") {
                let project = rest.split('/').next().unwrap();
                assert!(keys.contains(format!("project/{project}").as_str()), "{key} without its project");
            }
        }
        for a in &acked {
            assert!(keys.contains(a.as_str()), "acknowledged {a} was lost");
        }
        assert_eq!(store.policies().unwrap().len(), 1);
    }

    // Restarted on it: everything acknowledged is served; the policy is the last acknowledged version
    // (same ETag) or the one in flight at the kill.
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    for a in &acked {
        let path = match a.split('/').collect::<Vec<_>>().as_slice() {
            ["project", p] => format!("/projects/{p}"),
            ["feature", p, f] => format!("/projects/{p}/features/{f}"),
            _ => unreachable!(),
        };
        assert_eq!(ev(admin, "GET", &path, json!({})).await.0, 200, "{a}");
    }
    let (status, h, body) = api(admin, "GET", &format!("{CF}/{policy}"), "", &[]).await;
    assert_eq!(status, 200);
    let weight: f64 = element(&body, "Weight").parse().unwrap();
    let stored_k = (weight * 10000.0).round() as u64;
    assert!(stored_k == k || stored_k == k + 1, "policy at k={stored_k}, last acknowledged k={k}");
    if stored_k == k {
        assert_eq!(h["etag"].to_str().unwrap(), last_etag);
    }
    assert!(proc.find(&["Unreadable"]).is_none(), "{}", proc.log());
    eprintln!("{} Evidently writes and {k} policy updates acknowledged before the kill", acked.len());
}

/// The binary started so that its files may not grow past `limit` bytes (RLIMIT_FSIZE, soft: the hard
/// limit stays unlimited so the test can lift it). SIGXFSZ is ignored by the shell before `exec`, and an
/// ignored signal stays ignored across `exec`: a write past the limit then fails with EFBIG, as on a
/// full disk, instead of killing the process. No privilege needed. `None` without `prlimit`.
fn start_with_file_limit(config: &Path, limit: u64) -> Option<Proc> {
    let found = Command::new("prlimit").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        return None;
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("trap '' XFSZ; exec prlimit --fsize={limit}:unlimited -- \"$@\""))
        .arg("sh")
        .arg(BIN)
        .args(["run", "--config"])
        .arg(config);
    Some(Proc::spawn(cmd))
}

const EDGE_FEATURE: &str =
    "[distribution.evidently]\nproject = \"shop\"\nentity = [\"header:x-user-id\"]\nfeatures = [{ feature = \"f\" }]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_writes_503_in_each_shape_while_proxying_and_evaluation_go_on() {
    let origin = Origin::echo("primary").await;
    let files = Files::new();
    let text = fleet_config(&origin.url(), 1, &format!("[evidently]\nmax_projects = 100000\n{EDGE_FEATURE}"));
    write_config(&files.config(), &text);

    // Seed the store, then stop cleanly.
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    assert_eq!(ev(admin, "POST", "/projects", json!({ "name": "shop" })).await.0, 200);
    let body = json!({ "name": "f", "variations": variations(), "defaultVariation": "on" });
    assert_eq!(ev(admin, "POST", "/projects/shop/features", body).await.0, 200);
    let (policy, mut etag) = create_policy(admin, &weight_policy("s0.test", 0.0, true)).await;
    assert_eq!(proc.stop().await, 0);

    // Again, with 8 KiB of room left in the file.
    let db = files.store().join("edgesplit.redb");
    let size = std::fs::metadata(&db).unwrap().len();
    let Some(mut proc) = start_with_file_limit(&files.config(), size + 8192) else {
        eprintln!("SKIPPED: `prlimit` (util-linux) is not installed, so no file size limit can be set");
        return;
    };
    let admin = proc.admin().await;
    let url = format!("http://{}/", proc.addr("http").await);

    // Writes of both APIs until each has met the full disk (bounded); every 2xx is acknowledged.
    let mut acked = Vec::new();
    let (mut refused_projects, mut ev_503, mut cf_503) = (Vec::new(), 0, 0);
    for i in 0..3000 {
        if ev_503 > 0 && cf_503 > 0 {
            break;
        }
        let name = format!("p{i}");
        let body = json!({ "name": name, "description": "x".repeat(160) }).to_string();
        let (status, h, text) = api(admin, "POST", "/projects", &body, &[("content-type", "application/json")]).await;
        match status {
            200 => acked.push(name),
            503 => {
                ev_503 += 1;
                refused_projects.push(name);
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["__type"], "ServiceUnavailableException", "{v}");
                assert_eq!(h["x-amzn-errortype"], "ServiceUnavailableException");
                assert!(v["message"].as_str().unwrap().contains("nothing changed"), "{v}");
            }
            other => panic!("project write answered {other}: {text}"),
        }
        let weight = (i % 150) as f64 / 1000.0;
        let xml = weight_policy("s0.test", weight, true);
        let (status, h, text) = api(admin, "PUT", &format!("{CF}/{policy}"), &xml, &[("if-match", &etag)]).await;
        match status {
            200 => etag = h["etag"].to_str().unwrap().to_string(),
            503 => {
                cf_503 += 1;
                assert!(text.contains("<ErrorResponse") && text.contains("<Code>ServiceUnavailable</Code>"), "{text}");
                assert!(text.contains("<Type>Receiver</Type>"), "{text}");
                assert!(h.contains_key("x-amzn-requestid"));
            }
            other => panic!("policy write answered {other}: {text}"),
        }
    }
    assert!(ev_503 > 0 && cf_503 > 0, "the store never filled: {} writes acknowledged", acked.len());
    assert!(proc.running(), "edgesplit died of the full disk (SIGXFSZ?)");

    // Meanwhile everything that only reads goes on: the proxy, edge evaluation, EvaluateFeature, reads.
    for _ in 0..20 {
        let (status, _, body) = get_with_user(&url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("x-evidently-f: on"), "{body}");
    }
    let (status, v) = ev(admin, "POST", "/projects/shop/evaluations/f", json!({ "entityId": "u1" })).await;
    assert_eq!((status, v["variation"].as_str()), (200, Some("on")), "{v}");
    assert_eq!(ev(admin, "GET", &format!("/projects/{}", acked[0]), json!({})).await.0, 200);
    assert_eq!(ev(admin, "GET", &format!("/projects/{}", refused_projects[0]), json!({})).await.0, 404);
    assert_eq!(get(&format!("http://{admin}/readyz")).await.0, StatusCode::OK);

    // Room again (the limit lifted): writes work again without a restart.
    let lifted = Command::new("prlimit")
        .arg(format!("--pid={}", proc.child.id()))
        .arg("--fsize=unlimited:unlimited")
        .status()
        .is_ok_and(|s| s.success());
    if lifted {
        let (status, v) = ev(admin, "POST", "/projects", json!({ "name": "after" })).await;
        assert_eq!(status, 200, "writes stayed refused after the disk had room again: {v}");
        acked.push("after".into());
        etag = update_policy(admin, &policy, &etag, &weight_policy("s0.test", 0.15, true)).await;
    } else {
        eprintln!("NOTE: could not lift the file size limit of a running process; recovery not checked");
    }

    // After a restart on the same store: everything acknowledged, nothing refused.
    assert_eq!(proc.stop().await, 0);
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    for name in &acked {
        assert_eq!(ev(admin, "GET", &format!("/projects/{name}"), json!({})).await.0, 200, "{name} lost");
    }
    for name in &refused_projects {
        assert_eq!(ev(admin, "GET", &format!("/projects/{name}"), json!({})).await.0, 404, "{name} refused yet stored");
    }
    let (status, h, _) = api(admin, "GET", &format!("{CF}/{policy}"), "", &[]).await;
    assert_eq!((status, h["etag"].to_str().unwrap()), (200, etag.as_str()));
}

async fn get_with_user(url: &str) -> (StatusCode, http::HeaderMap, String) {
    get_with(url, &[("x-user-id", "u1")]).await
}

/// `chattr` on the store file; false when the file system or the process cannot (overlayfs, no
/// CAP_LINUX_IMMUTABLE).
fn chattr(flag: &str, file: &Path) -> bool {
    Command::new("chattr").arg(flag).arg(file).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_answers_writes_503_and_recovers_when_writable_again() {
    let origin = Origin::echo("primary").await;
    let files = Files::new();
    write_config(&files.config(), &fleet_config(&origin.url(), 1, EDGE_FEATURE));
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    let url = format!("http://{}/", proc.addr("http").await);
    assert_eq!(ev(admin, "POST", "/projects", json!({ "name": "shop" })).await.0, 200);
    let body = json!({ "name": "f", "variations": variations(), "defaultVariation": "on" });
    assert_eq!(ev(admin, "POST", "/projects/shop/features", body).await.0, 200);
    let (policy, etag) = create_policy(admin, &weight_policy("s0.test", 0.0, true)).await;

    // Immutable: even root's writes to the open file fail (EPERM), as on a file system remounted
    // read-only. Root ignores permission bits, so `chmod` would not do.
    let db = files.store().join("edgesplit.redb");
    if !chattr("+i", &db) {
        eprintln!("SKIPPED: `chattr +i` is not possible here (file system or capabilities)");
        return;
    }
    let (status, h, text) = api(admin, "POST", "/projects", r#"{"name":"refused"}"#, &[]).await;
    let cf = api(admin, "PUT", &format!("{CF}/{policy}"), &weight_policy("s0.test", 0.1, true), &[("if-match", &etag)])
        .await;
    let (status2, _, text2) = api(admin, "POST", "/projects", r#"{"name":"refused2"}"#, &[]).await;
    // Reads and the data plane go on.
    let (proxied, _, seen) = get_with_user(&url).await;
    let (evaluated, v) = ev(admin, "POST", "/projects/shop/evaluations/f", json!({ "entityId": "u1" })).await;
    assert!(chattr("-i", &db), "could not make the store writable again");

    assert_eq!(status, 503, "{text}");
    assert_eq!(h["x-amzn-errortype"], "ServiceUnavailableException");
    assert_eq!(cf.0, 503, "{}", cf.2);
    assert!(cf.2.contains("<Code>ServiceUnavailable</Code>"), "{}", cf.2);
    assert_eq!(status2, 503, "{text2}");
    assert_eq!(proxied, StatusCode::OK);
    assert!(seen.contains("x-evidently-f: on"), "{seen}");
    assert_eq!((evaluated, v["variation"].as_str()), (200, Some("on")), "{v}");
    // Writable again: the next writes work, with no restart; the refused ones never happened.
    assert_eq!(ev(admin, "POST", "/projects", json!({ "name": "later" })).await.0, 200);
    update_policy(admin, &policy, &etag, &weight_policy("s0.test", 0.05, true)).await;
    assert_eq!(ev(admin, "GET", "/projects/refused", json!({})).await.0, 404);
    assert_eq!(proc.stop().await, 0);
    let mut proc = Proc::start(&files.config());
    let admin = proc.admin().await;
    assert_eq!(ev(admin, "GET", "/projects/later", json!({})).await.0, 200);
    assert_eq!(ev(admin, "GET", "/projects/refused", json!({})).await.0, 404);
}

// === reloads and policy changes under load ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_and_twenty_policy_changes_under_load_drop_no_request() {
    let (a, b, s) = (Origin::echo("a").await, Origin::echo("b").await, Origin::echo("staging").await);
    let files = Files::new();
    // Each reload swaps the primary origin; every other one also changes a timeout, which rebuilds
    // the upstream clients (their pools are dropped under the requests in flight).
    let text = |i: usize| {
        let primary = if i.is_multiple_of(2) { a.url() } else { b.url() };
        let timeout = if i % 4 < 2 { "30s" } else { "29s" };
        staging_config(
            &primary,
            &s.url(),
            &format!("[timeouts]\nconfig_poll = \"200ms\"\nupstream_response = \"{timeout}\"\n"),
        )
        .replace("[log]\n", "[log]\naccess_log = false\n")
    };
    write_config(&files.config(), &text(0));
    let mut proc = Proc::start(&files.config());
    let addr = proc.addr("http").await;
    let admin = proc.admin().await;
    let (policy, mut etag) = create_policy(admin, &weight_policy("staging.web.test", 0.15, true)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
            tokio::spawn(async move {
                let client = http1_client();
                let mut i = 0;
                while !stop.load(Relaxed) {
                    i += 1;
                    let req = Request::get(format!("http://{addr}/t{t}/{i}"))
                        .header("aws-cf-cd-test", if i % 2 == 0 { "blue" } else { "red" })
                        .body(empty())
                        .unwrap();
                    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                        Ok(Ok(resp)) => {
                            let status = resp.status();
                            let body = resp.into_body().collect().await;
                            if status != StatusCode::OK || body.is_err() {
                                failures.lock().unwrap().push(format!("t{t}/{i}: {status} {body:?}"));
                            }
                        }
                        Ok(Err(e)) => failures.lock().unwrap().push(format!("t{t}/{i}: {e:?}")),
                        Err(_) => failures.lock().unwrap().push(format!("t{t}/{i}: timed out")),
                    }
                    done.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();

    let started = Instant::now();
    for i in 1..=20 {
        let before = proc.count(&["Config reloaded"]);
        write_config(&files.config(), &text(i));
        proc.signal("-HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc.count(&["Config reloaded"]) <= before {
            assert!(Instant::now() < deadline, "reload {i} did not happen:\n{}", proc.log());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let xml = match i % 4 {
            0 => weight_policy("staging.web.test", 0.15, true),
            1 => header_policy("staging.web.test", "blue"),
            2 => weight_policy("staging.web.test", 0.05, false),
            _ => weight_policy("staging.web.test", (i % 16) as f64 / 100.0, true),
        };
        etag = update_policy(admin, &policy, &etag, &xml).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Keep the load on until a few thousand requests have been made (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(Relaxed) < 3000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Relaxed);
    for l in load {
        tokio::time::timeout(Duration::from_secs(15), l).await.expect("a load task hung").unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let total = done.load(Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(total >= 1000, "only {total} requests in {:?}", started.elapsed());
    assert!(proc.find(&["Reload failed"]).is_none(), "{}", proc.log());
    eprintln!("{total} requests, 20 reloads and 20 policy updates in {:?}", started.elapsed());
}
