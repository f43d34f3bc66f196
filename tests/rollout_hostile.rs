//! Hostile input on the rollout API (issue 18), `/edgesplit/rollouts`, in-process: documents nested 100,000
//! deep, bodies past the 1 MiB cap or not UTF-8, paths with broken escapes, `%2F` and 64 KiB ids, verbs,
//! segments and methods the API does not have, reasons past 1,024 bytes, weights such as `1e400` and `-0`,
//! 10,000 steps and bake times that overflow; then SigV4 on the same paths (signed for another service, not
//! signed, signed right), a body trickled in, and a state dump whose rollouts break the rules.
//!
//! Every refusal is an answer in the restJson error shape of the Evidently API beside it (`__type` and
//! `message`, `X-Amzn-ErrorType` naming the same type, a request id), with the status that says what was
//! wrong; nothing a refused call sent starts or moves a rollout, and the instance keeps answering, the API
//! and the proxy alike. Calls go over raw TCP, so that each path and body arrives exactly as written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use edgesplit::admin::sigv4::{self, Signed};
use edgesplit::config::AccessKey;
use edgesplit::store::{Dump, Store};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use support::cloudfront::{CF, element};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STAGING: &str = "staging.web.test";
const ROLLOUTS: &str = "/edgesplit/rollouts";
const MIB: usize = 1 << 20;
const KEY: &str = "AKIDROLLOUTTEST";
const SECRET: &str = "rollout-test-secret";

/// Distribution `web` with a staging pool named [`STAGING`], echoing origins; SigV4 on the admin API when
/// `signed`.
async fn edge(signed: bool) -> (Edge, Origin, Origin) {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let mut config = simple_config(&p.url(), Some(&s.url()), "")
        .replace("domains = [\"*\"]\n", &format!("domains = [\"*\"]\nstaging_dns_name = \"{STAGING}\"\n"));
    if signed {
        config = config
            .replace("auth = \"none\"\n", &format!("access_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\n"));
        assert!(config.contains(KEY), "simple_config no longer says auth = \"none\"");
    }
    (Edge::start(&config).await, p, s)
}

/// A SingleWeight policy for [`STAGING`], disabled at weight 0, as a rollout wants one.
fn policy_xml() -> String {
    support::cloudfront::weight_policy(STAGING, 0.0, false)
}

/// A spec that starts and then sits at its first step: long bakes, and more traffic than a test sends
/// before any guard reads.
fn calm_spec() -> Value {
    json!({"steps": [{"weight": 0.01, "bake": "1h"}, {"weight": 0.05, "bake": "1h"}],
           "guards": {"error_rate": {"min_requests": 1000000}, "latency": {"min_requests": 1000000}}})
}

/// An error answer a case expects: its status and its `__type`.
type Want = (u16, &'static str);

/// One answer: status, the head lower-cased, the body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.head.split("\r\n").find_map(|l| l.strip_prefix(&prefix))
    }
}

/// Sends one request exactly as written (`headers` after Host, a Content-Length, `Connection: close`) and
/// reads the answer, at most 20 s. A server that answers before it has read the whole body may reset the
/// connection under the rest: the write's error is ignored, the answer is what counts.
async fn raw(admin: SocketAddr, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(admin).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k == "host") {
        head.push_str(&format!("host: {admin}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    let (mut rd, mut wr) = s.split();
    let read = async {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    };
    let write = async {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(body).await;
    };
    let (out, ()) = tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(read, write) })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {} within 20 s", &path[..path.len().min(80)]));
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no HTTP answer to {method} {}: {:?}", &path[..path.len().min(80)], String::from_utf8_lossy(&out))
    });
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head, body: out[split + 4..].to_vec() }
}

/// An unsigned call (the admin of [`edge`]`(false)` runs `auth = "none"`).
async fn call(edge: &Edge, method: &str, path: &str, body: &[u8]) -> Answer {
    raw(edge.handle.admin_addr, method, path, &[("content-type".into(), "application/json".into())], body).await
}

/// A restJson error: `status`, the body's `__type` is `kind` and named again by `X-Amzn-ErrorType`, a string
/// `message`, a request id. Returns the message.
#[track_caller]
fn assert_error(what: &str, a: &Answer, status: u16, kind: &str) -> String {
    assert_eq!(a.status, status, "{what}: {}", a.text());
    assert_eq!(a.header("content-type"), Some("application/json"), "{what}: {}", a.head);
    assert_eq!(a.header("x-amzn-errortype"), Some(kind.to_ascii_lowercase().as_str()), "{what}: {}", a.head);
    assert!(a.header("x-amzn-requestid").is_some_and(|id| !id.is_empty()), "{what}: {}", a.head);
    let v = a.json();
    assert_eq!(v["__type"], kind, "{what}: {v}");
    v["message"].as_str().unwrap_or_else(|| panic!("{what}: no message: {v}")).to_string()
}

/// The admin listener answers its probe and the rollout list, and the proxy still proxies.
async fn still_answers(edge: &Edge) {
    let admin = edge.handle.admin_addr;
    assert_eq!(get(&format!("http://{admin}/healthz")).await.0, 200);
    let list = call(edge, "GET", ROLLOUTS, b"").await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(list.json()["rollouts"].is_array(), "{}", list.text());
    let (status, _, body) = get(&edge.url("http", "/still")).await;
    assert_eq!(status, 200, "{body}");
}

/// Creates the policy a rollout of `web` drives: its id and ETag.
async fn policy(edge: &Edge) -> (String, String) {
    support::cloudfront::create_policy(edge.handle.admin_addr, &policy_xml()).await
}

/// The policy's ETag and XML, as GetContinuousDeploymentPolicy answers.
async fn policy_now(edge: &Edge, id: &str) -> (String, String) {
    let (status, h, body) =
        support::cloudfront::api(edge.handle.admin_addr, "GET", &format!("{CF}/{id}"), "", &[]).await;
    assert_eq!(status, 200, "{body}");
    (h["etag"].to_str().unwrap().to_string(), body)
}

/// No rollout anywhere.
async fn assert_no_rollout(edge: &Edge) {
    let list = call(edge, "GET", ROLLOUTS, b"").await;
    assert_eq!(list.json(), json!({ "rollouts": [] }), "a refused call started a rollout");
}

// === bodies ===

#[tokio::test]
async fn deep_oversized_and_non_utf8_bodies_are_clean_errors() {
    let (edge, _p, _s) = edge(false).await;
    let (id, etag) = policy(&edge).await;
    let web = format!("{ROLLOUTS}/web");
    let pause = format!("{web}/pause");
    let arrays = "[".repeat(100_000).into_bytes();
    let objects = "{\"steps\":".repeat(50_000).into_bytes();
    let deep_steps = format!("{{\"steps\":[{{\"weight\":0.1,\"bake\":\"1s\"}}],\"guards\":{}", "[".repeat(100_000));
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("PUT", &web, arrays.clone()),
        ("PUT", &web, objects.clone()),
        ("PUT", &web, deep_steps.into_bytes()),
        ("POST", &pause, arrays.clone()),
        ("POST", &pause, objects.clone()),
        // Not UTF-8: the body, and a string inside an otherwise good document.
        ("PUT", &web, b"\xff\xfe{\"steps\":[]}".to_vec()),
        ("PUT", &web, b"{\"steps\":[{\"weight\":0.1,\"bake\":\"1\xffs\"}]}".to_vec()),
        ("POST", &pause, b"{\"reason\":\"\xc0\xaf\"}".to_vec()),
        ("POST", &pause, br#"{"reason":"\ud800"}"#.to_vec()),
        // Exactly 1 MiB is read whole, and is then no spec.
        ("PUT", &web, vec![b' '; MIB]),
        ("PUT", &web, vec![b'['; MIB]),
    ];
    for (method, path, body) in &cases {
        let what = format!("{method} {path} with {} bytes starting {:?}", body.len(), &body[..body.len().min(12)]);
        let a = call(&edge, method, path, body).await;
        assert_error(&what, &a, 400, "ValidationException");
    }
    // 1 MiB + 1 is not read past the cap: 413, whatever the call.
    for (method, path) in
        [("PUT", web.as_str()), ("POST", &pause), ("POST", &format!("{web}/abort")), ("GET", ROLLOUTS)]
    {
        let a = call(&edge, method, path, &vec![b'{'; MIB + 1]).await;
        let message = assert_error(&format!("{method} {path} 1 MiB + 1"), &a, 413, "ValidationException");
        assert!(message.contains("larger than 1048576 bytes"), "{message}");
    }
    // A pause whose 1 MiB body is all white space names no reason: the answer is about the rollout.
    let a = call(&edge, "POST", &pause, &vec![b' '; MIB]).await;
    assert_error("pause with 1 MiB of spaces", &a, 404, "ResourceNotFoundException");

    assert_no_rollout(&edge).await;
    assert_eq!(policy_now(&edge, &id).await.0, etag, "the policy was not written");
    still_answers(&edge).await;
    // And a good call after all that.
    let a = call(&edge, "PUT", &web, calm_spec().to_string().as_bytes()).await;
    assert_eq!(a.status, 201, "{}", a.text());
}

// === paths ===

#[tokio::test]
async fn path_tricks_are_clean_errors_and_reach_no_other_rollout() {
    let (edge, _p, _s) = edge(false).await;
    let (id, _) = policy(&edge).await;
    // The longest id hyper passes on (its request target is at most 65,534 bytes; past that it answers 414
    // itself, below).
    let long = "a".repeat(65_534 - format!("{ROLLOUTS}/").len() - "/abort".len());
    let spec = calm_spec().to_string();
    let validation = (400, "ValidationException");
    let unknown = (404, "ValidationException");
    let not_found = (404, "ResourceNotFoundException");
    let cases: Vec<(&str, String, Want)> = vec![
        // A 64 KiB id: looked up, not found, never started.
        ("GET", format!("{ROLLOUTS}/{long}"), not_found),
        ("PUT", format!("{ROLLOUTS}/{long}"), not_found),
        ("POST", format!("{ROLLOUTS}/{long}/abort"), not_found),
        // Broken escapes.
        ("GET", format!("{ROLLOUTS}/web%"), validation),
        ("GET", format!("{ROLLOUTS}/web%2"), validation),
        ("GET", format!("{ROLLOUTS}/web%zz"), validation),
        ("GET", format!("{ROLLOUTS}/web%+1"), validation),
        ("PUT", format!("{ROLLOUTS}/web%+F"), validation),
        ("GET", format!("{ROLLOUTS}/%C0%AF"), validation),
        ("GET", format!("{ROLLOUTS}/%ED%A0%80"), validation),
        ("GET", format!("{ROLLOUTS}/web%FF"), validation),
        ("POST", format!("{ROLLOUTS}/web/pause%"), validation),
        ("GET", "/edgesplit/%zz/web".into(), validation),
        // `%2F` stays inside the id: another distribution, which does not exist, never `web`.
        ("GET", format!("{ROLLOUTS}/we%2Fb"), not_found),
        ("PUT", format!("{ROLLOUTS}/..%2Fweb"), not_found),
        ("PUT", format!("{ROLLOUTS}/web%2F"), not_found),
        ("PUT", format!("{ROLLOUTS}/%2Fweb"), not_found),
        ("PUT", format!("{ROLLOUTS}/web%2F..%2Fweb"), not_found),
        ("PUT", format!("{ROLLOUTS}/web%00"), not_found),
        ("POST", format!("{ROLLOUTS}/web%2Fpause"), unknown),
        ("GET", format!("{ROLLOUTS}%2Fweb"), unknown),
        // Verbs, segments and methods the API does not have: Evidently's unknown operation.
        ("POST", format!("{ROLLOUTS}/web/explode"), unknown),
        ("POST", format!("{ROLLOUTS}/web/PAUSE"), unknown),
        ("POST", format!("{ROLLOUTS}/web/pause/now"), unknown),
        ("POST", format!("{ROLLOUTS}/web/abort/"), unknown),
        ("GET", format!("{ROLLOUTS}/web/"), unknown),
        ("GET", format!("{ROLLOUTS}/web/history"), unknown),
        ("GET", format!("{ROLLOUTS}//web"), unknown),
        ("PUT", format!("{ROLLOUTS}/web/../web"), unknown),
        ("GET", "/edgesplit/".into(), unknown),
        ("GET", "/edgesplit/rollout".into(), unknown),
        ("GET", "/edgesplit/rollouts/web/pause".into(), unknown),
        ("DELETE", format!("{ROLLOUTS}/web"), unknown),
        ("PATCH", format!("{ROLLOUTS}/web"), unknown),
        ("POST", format!("{ROLLOUTS}/web"), unknown),
        ("PUT", ROLLOUTS.into(), unknown),
        ("DELETE", ROLLOUTS.into(), unknown),
        ("OPTIONS", ROLLOUTS.into(), unknown),
        ("PUT", format!("{ROLLOUTS}/web/pause"), unknown),
        ("EXPLODE", format!("{ROLLOUTS}/web"), unknown),
    ];
    for (method, path, (status, kind)) in &cases {
        let what = format!("{method} {}", &path[..path.len().min(60)]);
        let body = if *method == "PUT" { spec.as_bytes() } else { b"" };
        let message = assert_error(&what, &call(&edge, method, path, body).await, *status, kind);
        if path.contains(&long) {
            assert!(message.contains(&long), "{what}: the id is named in full: {}", &message[..80]);
        }
    }
    // Past 65,534 bytes the request target is refused by hyper, before the API, with a bare 414.
    for path in [format!("{ROLLOUTS}/{}", "a".repeat(64 * 1024)), format!("{ROLLOUTS}/web/{}", "a".repeat(1 << 17))] {
        let a = call(&edge, "PUT", &path, spec.as_bytes()).await;
        assert_eq!((a.status, a.body.len()), (414, 0), "{}", a.text());
    }
    assert_no_rollout(&edge).await;
    let (_, xml) = policy_now(&edge, &id).await;
    assert_eq!(element(&xml, "Weight"), "0", "the policy of `web` was not touched");
    still_answers(&edge).await;
}

// === specs ===

#[tokio::test]
async fn numbers_out_of_range_and_huge_specs_are_validation_exceptions_that_start_nothing() {
    let (edge, _p, _s) = edge(false).await;
    let (id, etag) = policy(&edge).await;
    let web = format!("{ROLLOUTS}/web");
    let step = |weight: &str, bake: &str| format!(r#"{{"steps":[{{"weight":{weight},"bake":{bake}}}]}}"#);
    let ten_thousand = format!(r#"{{"steps":[{}]}}"#, vec![r#"{"weight":0.01,"bake":"1s"}"#; 10_000].join(","));
    let cases: Vec<(String, &str)> = vec![
        (step("1e400", "\"1s\""), "number out of range"),
        (step("-1e400", "\"1s\""), "number out of range"),
        (step("-0", "\"1s\""), "steps[1].weight: -0 is not in (0, 1]"),
        (step("-0.0", "\"1s\""), "steps[1].weight: -0 is not in (0, 1]"),
        (step("0", "\"1s\""), "steps[1].weight: 0 is not in"),
        (step("1e-400", "\"1s\""), "steps[1].weight: 0 is not in"),
        (step("-1e-300", "\"1s\""), "steps[1].weight"),
        (step("0.15000000000000002", "\"1s\""), "steps[1].weight: 0.15000000000000002 is above 0.15, the most a"),
        (step("1", "\"1s\""), "steps[1].weight: 1 is above 0.15"),
        (step("1.0000000000000002", "\"1s\""), "steps[1].weight: 1.0000000000000002 is not in (0, 1]"),
        (step("\"NaN\"", "\"1s\""), "invalid type: string \"NaN\", expected f64"),
        (step("\"Infinity\"", "\"1s\""), "invalid type: string"),
        (step("\"0.1\"", "\"1s\""), "invalid type: string"),
        (step("NaN", "\"1s\""), "expected value"),
        (step("Infinity", "\"1s\""), "expected value"),
        (step("null", "\"1s\""), "invalid type: null"),
        (step("0.1", "\"99999999999999999999s\""), "`99999999999999999999s` is not a duration"),
        (step("0.1", "\"18446744073709551616ms\""), "is not a duration"),
        (step("0.1", "\"7days 1ns\""), "steps[1].bake: at most 7 days"),
        (step("0.1", "\"-1s\""), "is not a duration"),
        (step("0.1", "\"\""), "is not a duration"),
        (step("0.1", "30"), "invalid type: integer `30`, expected a string"),
        (ten_thousand, "steps: a rollout has 1 to 20 steps, not 10000"),
        (r#"{"steps":[]}"#.into(), "not 0"),
        (
            r#"{"steps":[{"weight":0.1,"bake":"1s"}],"steps":[{"weight":0.1,"bake":"1s"}]}"#.into(),
            "duplicate field `steps`",
        ),
        (r#"{"steps":[{"weight":0.1,"bake":"1s"}],"promote":true}"#.into(), "unknown field `promote`"),
        (
            r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"error_rate":{"min_requests":18446744073709551616}}}"#
                .into(),
            "invalid type: floating point `1.8446744073709552e+19`, expected u64",
        ),
        (
            r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"error_rate":{"min_requests":-1}}}"#.into(),
            "invalid value: integer `-1`",
        ),
        (r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"error_rate":{"alpha":1e400}}}"#.into(), "out of range"),
        (
            r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"latency":{"quantile":-0}}}"#.into(),
            "guards.latency.quantile: -0 is not in (0, 1)",
        ),
        (
            r#"{"steps":[{"weight":0.1,"bake":"1s"}],"guards":{"latency":{"limit":"99999999999999999999h"}}}"#.into(),
            "is not a duration",
        ),
        ("null".into(), "invalid type: null"),
        ("[]".into(), "invalid length 0"),
        ("\"steps\"".into(), "invalid type: string"),
        ("".into(), "EOF while parsing"),
    ];
    for (body, want) in &cases {
        let what = format!("PUT {}", &body[..body.len().min(100)]);
        let message = assert_error(&what, &call(&edge, "PUT", &web, body.as_bytes()).await, 400, "ValidationException");
        assert!(message.contains(want), "{what}: {message}");
    }
    assert_no_rollout(&edge).await;
    assert_eq!(policy_now(&edge, &id).await.0, etag, "the policy was not written");
    still_answers(&edge).await;

    // The limits themselves are in: 0.15, 7 days, 20 steps.
    let edges = format!(r#"{{"steps":[{}]}}"#, vec![r#"{"weight":0.15,"bake":"7days"}"#; 20].join(","));
    let a = call(&edge, "PUT", &web, edges.as_bytes()).await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!((a.json()["steps"].as_u64(), a.json()["weight"].as_f64()), (Some(20), Some(0.15)));
    // A second start while it runs is a conflict, not a replacement.
    let message =
        assert_error("second start", &call(&edge, "PUT", &web, edges.as_bytes()).await, 409, "ConflictException");
    assert!(message.contains("already has a running rollout (step 1 of 20)"), "{message}");
}

// === reasons ===

#[tokio::test]
async fn reasons_past_1024_bytes_are_refused_and_move_nothing() {
    let (edge, _p, _s) = edge(false).await;
    policy(&edge).await;
    let web = format!("{ROLLOUTS}/web");
    let a = call(&edge, "PUT", &web, calm_spec().to_string().as_bytes()).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let reason = |text: &str| json!({ "reason": text }).to_string().into_bytes();

    let too_long: Vec<(String, Vec<u8>)> = vec![
        ("1025 bytes".into(), reason(&"x".repeat(1025))),
        ("342 euro signs, 1026 bytes".into(), reason(&"€".repeat(342))),
        ("100,000 bytes".into(), reason(&"x".repeat(100_000))),
    ];
    for verb in ["pause", "abort"] {
        for (what, body) in &too_long {
            let path = format!("{web}/{verb}");
            let message = assert_error(
                &format!("{verb}: {what}"),
                &call(&edge, "POST", &path, body).await,
                400,
                "ValidationException",
            );
            assert!(message.contains("reason: at most 1024 bytes, not"), "{message}");
        }
    }
    for (body, want) in [
        (br#"{"reason":5}"#.to_vec(), "invalid type: integer `5`"),
        (br#"{"reason":"ok","force":true}"#.to_vec(), "unknown field `force`"),
        (br#"{"reason":["a"]}"#.to_vec(), "invalid type: sequence"),
        (b"\"just a string\"".to_vec(), "invalid type: string"),
    ] {
        let message = assert_error(
            "odd reason",
            &call(&edge, "POST", &format!("{web}/pause"), &body).await,
            400,
            "ValidationException",
        );
        assert!(message.contains(want), "{message}");
    }
    assert_eq!(state(&edge).await, ("running".to_string(), 1), "a refused pause or abort moved nothing");

    // 1024 bytes once trimmed is the limit, and in.
    let padded = format!("  {}\n", "x".repeat(1024));
    let a = call(&edge, "POST", &format!("{web}/pause"), &reason(&padded)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["reason"].as_str().map(str::len), Some(1024));
    // A reason with CR/LF is text in a JSON body, never a header.
    let a = call(&edge, "POST", &format!("{web}/abort"), &reason("bad deploy\r\nx-injected: 1")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["reason"], "bad deploy\r\nx-injected: 1");
    assert!(a.header("x-injected").is_none(), "{}", a.head);
    // Ended: every move is a conflict.
    for verb in ["pause", "resume", "abort"] {
        let a = call(&edge, "POST", &format!("{web}/{verb}"), b"").await;
        let message = assert_error(verb, &a, 409, "ConflictException");
        assert!(message.contains("is aborted"), "{message}");
    }
    assert_eq!(state(&edge).await, ("aborted".to_string(), 3));
    still_answers(&edge).await;
}

/// The rollout of `web`: its state and how many events its history holds.
async fn state(edge: &Edge) -> (String, usize) {
    let v = call(edge, "GET", &format!("{ROLLOUTS}/web"), b"").await.json();
    (v["state"].as_str().unwrap().to_string(), v["history"].as_array().unwrap().len())
}

// === SigV4 ===

/// A request signed with `secret` for `service` (Host, `x-amz-date` and `content-type` signed), as raw
/// headers; `body` is what was signed.
fn signed(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    service: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let authority = admin.to_string();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(&authority).unwrap());
    headers.insert("x-amz-date", HeaderValue::from_str(&sigv4::format_amz_date(SystemTime::now())).unwrap());
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let req = Signed { method, path, query: None, headers: &headers, authority: Some(&authority), body };
    let key = AccessKey { id: KEY.into(), secret: secret.into() };
    let auth = sigv4::authorization(&req, &key, "us-east-1", service, true);
    headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect()
}

/// One call signed with `secret` for `service`.
async fn send(admin: SocketAddr, method: &str, path: String, body: Vec<u8>, service: &str, secret: &str) -> Answer {
    let headers = signed(admin, method, &path, &body, service, secret);
    raw(admin, method, &path, &headers, &body).await
}

#[tokio::test]
async fn the_rollout_api_wants_a_signature_for_edgesplit_and_nothing_else() {
    let (edge, _p, _s) = edge(true).await;
    let admin = edge.handle.admin_addr;
    let web = format!("{ROLLOUTS}/web");
    let spec = calm_spec().to_string().into_bytes();
    let denied = |what: &str, a: &Answer, want: &str| {
        let message = assert_error(what, a, 403, "AccessDeniedException");
        assert!(message.contains(want), "{what}: {message}");
    };

    // Not signed: refused before the path is read, however hostile the path.
    for path in
        [ROLLOUTS.to_string(), format!("{web}%zz"), format!("{web}/explode"), format!("{web}/{}", "a".repeat(60_000))]
    {
        let a = raw(admin, "GET", &path, &[], b"").await;
        denied(&format!("unsigned GET {}", &path[..path.len().min(60)]), &a, "Missing Authentication Token");
    }
    let a = raw(admin, "PUT", &web, &[], &spec).await;
    denied("unsigned PUT", &a, "Missing Authentication Token");
    // A body past the cap is refused before the signature is read.
    let a = raw(admin, "PUT", &web, &[], &vec![b' '; MIB + 1]).await;
    assert_error("unsigned 1 MiB + 1", &a, 413, "ValidationException");

    // Signed for another service, with another secret, or for another body.
    let want = "Credential should be scoped to correct service: 'edgesplit'.";
    denied("signed for evidently", &send(admin, "GET", ROLLOUTS.into(), vec![], "evidently", SECRET).await, want);
    denied("signed for cloudfront", &send(admin, "PUT", web.clone(), spec.clone(), "cloudfront", SECRET).await, want);
    denied(
        "signed for evidently, POST",
        &send(admin, "POST", format!("{web}/abort"), vec![], "evidently", SECRET).await,
        want,
    );
    let wrong = send(admin, "GET", ROLLOUTS.into(), vec![], "edgesplit", "not-the-secret").await;
    denied("wrong secret", &wrong, "does not match the signature you provided");
    let headers = signed(admin, "PUT", &web, &spec, "edgesplit", SECRET);
    let mut tampered = spec.clone();
    tampered[spec.len() - 2] = b' ';
    denied("body changed after signing", &raw(admin, "PUT", &web, &headers, &tampered).await, "does not match");
    // And the other way: Evidently's API refuses a signature for edgesplit.
    let a = send(admin, "GET", "/projects".into(), vec![], "edgesplit", SECRET).await;
    denied("evidently signed for edgesplit", &a, "Credential should be scoped to correct service: 'evidently'.");

    // Signed right: the API's own answers, hostile paths included (the signature covers them as sent).
    let a = send(admin, "GET", ROLLOUTS.into(), vec![], "edgesplit", SECRET).await;
    assert_eq!((a.status, a.json()), (200, json!({ "rollouts": [] })), "{}", a.text());
    let not_found = (404, "ResourceNotFoundException");
    let cases: Vec<(&str, String, Vec<u8>, Want)> = vec![
        ("GET", web.clone(), vec![], not_found),
        ("POST", format!("{web}/pause"), vec![], not_found),
        ("GET", format!("{ROLLOUTS}/we%2Fb"), vec![], not_found),
        ("GET", format!("{ROLLOUTS}/{}", "a".repeat(60_000)), vec![], not_found),
        ("GET", format!("{web}%zz"), vec![], (400, "ValidationException")),
        ("GET", format!("{web}%+1"), vec![], (400, "ValidationException")),
        ("POST", format!("{web}/explode"), vec![], (404, "ValidationException")),
        ("DELETE", web.clone(), vec![], (404, "ValidationException")),
        ("PUT", web.clone(), br#"{"steps":[{"weight":1e400,"bake":"1s"}]}"#.to_vec(), (400, "ValidationException")),
        // No policy yet: the distribution is not wired for a rollout.
        ("PUT", web.clone(), spec.clone(), (400, "ValidationException")),
    ];
    for (method, path, body, (status, kind)) in cases {
        let what = format!("signed {method} {}", &path[..path.len().min(60)]);
        assert_error(&what, &send(admin, method, path, body, "edgesplit", SECRET).await, status, kind);
    }

    // With a policy (made through CloudFront's API, signed for cloudfront), a signed start and pause.
    let xml = policy_xml().into_bytes();
    let a = send(admin, "POST", CF.into(), xml, "cloudfront", SECRET).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let a = send(admin, "PUT", web.clone(), spec.clone(), "edgesplit", SECRET).await;
    assert_eq!((a.status, a.json()["state"].as_str()), (201, Some("running")), "{}", a.text());
    let a = send(admin, "POST", format!("{web}/pause"), br#"{"reason":"signed"}"#.to_vec(), "edgesplit", SECRET).await;
    assert_eq!((a.status, a.json()["state"].as_str()), (200, Some("paused")), "{}", a.text());
    // Signed for evidently, the abort is refused and the rollout stays paused.
    let a = send(admin, "POST", format!("{web}/abort"), vec![], "evidently", SECRET).await;
    denied("abort signed for evidently", &a, want);
    let a = send(admin, "GET", web.clone(), vec![], "edgesplit", SECRET).await;
    assert_eq!(a.json()["state"], "paused", "{}", a.text());
    assert_eq!(get(&format!("http://{admin}/healthz")).await.0, 200);
    assert_eq!(get(&edge.url("http", "/still")).await.0, 200);
}

// === slow bodies ===

/// The admin listener reads a body for at most 30 s (`BODY_TIMEOUT` in `src/admin/mod.rs`); that bound is
/// longer than this suite waits for anything, so it is not checked here. What is checked: a body trickled in
/// a byte at a time holds up no other call, on the rollout API or elsewhere, while it lasts.
#[tokio::test]
async fn a_body_trickled_in_holds_up_no_other_call() {
    let (edge, _p, _s) = edge(false).await;
    policy(&edge).await;
    let admin = edge.handle.admin_addr;
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(format!("PUT {ROLLOUTS}/web HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for b in calm_spec().to_string().bytes().cycle().take(1000) {
            if s.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        still_answers(&edge).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
    let a = call(&edge, "PUT", &format!("{ROLLOUTS}/web"), calm_spec().to_string().as_bytes()).await;
    assert_eq!(a.status, 201, "a start from another client goes through meanwhile: {}", a.text());
    assert!(!trickle.is_finished(), "the trickle ran the whole time");
    trickle.abort();
}

// === state dumps ===

/// A state dump with one rollout, `web`, as `edgesplit export` writes it.
fn dump_with(rollout: &Value) -> Dump {
    let text = json!({ "format": "edgesplit-state/1", "revision": 0, "policies": {}, "evidently": {}, "meta": {},
                       "rollouts": { "web": rollout } });
    Dump::decode(text.to_string().as_bytes()).unwrap()
}

/// `edgesplit import` and a store's load read rollouts from a file or a database that someone else may have
/// written: one that breaks the rules a started rollout keeps (a weight past 15 %, no steps, a step past the
/// last, an endless history) is refused with the whole dump, rather than driving a policy past CloudFront's
/// 15 % or panicking the driver.
#[test]
fn an_imported_rollout_outside_the_rules_is_refused_with_its_dump() {
    let good = json!({
        "distribution": "web", "id": "r1", "policy_id": "E1",
        "spec": {"steps": [{"weight": 0.01, "bake": "1s"}, {"weight": 0.05, "bake": "1s"}]},
        "state": "running", "step": 1, "started_ms": 1, "step_started_ms": 1, "updated_ms": 1, "reason": null,
        "history": [{"at_ms": 1, "event": "started", "step": 1, "weight": 0.01}]
    });
    let with = |pointer: &str, value: Value| {
        let mut v = good.clone();
        *v.pointer_mut(pointer).unwrap() = value;
        v
    };
    let event = good["history"][0].clone();
    let cases = [
        (with("/spec/steps/0/weight", json!(0.9)), "steps[1].weight: 0.9 is above 0.15"),
        (with("/spec/steps/1/weight", json!(-1.0)), "steps[2].weight: -1 is not in (0, 1]"),
        (with("/spec/steps", json!([])), "a rollout has 1 to 20 steps, not 0"),
        (with("/step", json!(2)), "step: index 2 is not one of the 2 steps"),
        (with("/step", json!(u64::MAX)), "is not one of the 2 steps"),
        (with("/history", Value::Array(vec![event; 65])), "history: at most 64 events, not 65"),
        (with("/spec/steps/0/bake", json!("8days")), "steps[1].bake: at most 7 days"),
        (
            with(
                "/spec",
                json!({"steps": [{"weight": 0.01, "bake": "1s"}], "guards": {"error_rate": null, "latency": null}}),
            ),
            "at least one guard",
        ),
    ];
    for (rollout, want) in cases {
        let store = Store::in_memory().unwrap();
        let err = store.import(&dump_with(&rollout)).unwrap_err().to_string();
        assert!(err.contains("stored rollout `web`") && err.contains(want), "{want}: {err}");
        assert!(store.dump().unwrap().is_empty(), "a refused import wrote");
    }
    let store = Store::in_memory().unwrap();
    store.import(&dump_with(&good)).unwrap();
    let read = store.rollouts().unwrap();
    assert_eq!((read.len(), read[0].step, read[0].weight()), (1, 1, 0.05));
}
