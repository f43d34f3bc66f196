//! SigV4 on the admin API, end to end in-process: refusals in each protocol's error shape, signed calls
//! over HTTP/1.1 and h2c (where `host` is the `:authority`), the clock window, CloudFront's region, and
//! the open and token-guarded plain endpoints. Signing here uses edgesplit's own signer, checked against
//! the AWS test suite and botocore in `src/admin/sigv4.rs`; `tests/python/test_auth.py` does the same
//! with boto3 itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::time::{Duration, SystemTime};

use edgesplit::admin::sigv4::{self, Signed};
use edgesplit::config::AccessKey;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use support::{Edge, full, get, get_with, h2c_client, http1_client, send, simple_config};

const KEY: &str = "AKIDRUSTTEST";
const SECRET: &str = "rust-test-secret";
const TOKEN: &str = "metrics-token-123";

async fn edge() -> Edge {
    let config = simple_config("http://127.0.0.1:1", None, "").replace(
        "auth = \"none\"\n",
        &format!("access_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\nmetrics_token = \"{TOKEN}\"\n"),
    );
    assert!(config.contains(KEY), "simple_config no longer says auth = \"none\"");
    Edge::start(&config).await
}

/// A request to the admin API signed with `key`/`secret` for `service`/`region` at `at`. With `h2`, no
/// Host header: the signature covers the `:authority`.
fn signed(
    edge: &Edge,
    (method, path_and_query, body): (&str, &str, &str),
    (key, secret): (&str, &str),
    (service, region): (&str, &str),
    at: SystemTime,
    h2: bool,
) -> Request<support::Body> {
    let authority = edge.handle.admin_addr.to_string();
    let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let mut headers = HeaderMap::new();
    if !h2 {
        headers.insert("host", HeaderValue::from_str(&authority).unwrap());
    }
    headers.insert("x-amz-date", HeaderValue::from_str(&sigv4::format_amz_date(at)).unwrap());
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let req = Signed { method, path, query, headers: &headers, authority: Some(&authority), body: body.as_bytes() };
    let key = AccessKey { id: key.into(), secret: secret.into() };
    let auth = sigv4::authorization(&req, &key, region, service, true);
    headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let mut builder = Request::builder().method(method).uri(format!("http://{authority}{path_and_query}"));
    for (k, v) in &headers {
        if k != "host" {
            builder = builder.header(k, v);
        }
    }
    builder.body(full(body.to_string())).unwrap()
}

fn good(edge: &Edge, call: (&str, &str, &str), service: &str) -> Request<support::Body> {
    signed(edge, call, (KEY, SECRET), (service, "us-east-1"), SystemTime::now(), false)
}

async fn call(req: Request<support::Body>) -> (StatusCode, HeaderMap, String) {
    send(&http1_client(), req).await
}

fn assert_ev_denied((status, headers, body): &(StatusCode, HeaderMap, String), message: &str) {
    assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(headers["x-amzn-errortype"], "AccessDeniedException");
    assert!(headers.contains_key("x-amzn-requestid"));
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["__type"], "AccessDeniedException", "{v}");
    assert!(v["message"].as_str().unwrap().contains(message), "{v}");
}

fn assert_cf_denied((status, headers, body): &(StatusCode, HeaderMap, String), message: &str) {
    assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/xml"), "{headers:?}");
    assert!(body.contains("<ErrorResponse") && body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(body.contains("<RequestId>") && body.contains(message), "{body}");
}

const CD: &str = "/2020-05-31/continuous-deployment-policy";

#[tokio::test]
async fn unsigned_calls_are_refused_in_each_protocols_shape_and_signed_ones_pass() {
    let edge = edge().await;
    let admin = edge.handle.admin_addr;
    let unsigned = |method: &str, path: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(format!("http://{admin}{path}"))
            .header("content-type", "application/json")
            .body(full(body.to_string()))
            .unwrap()
    };
    assert_ev_denied(&call(unsigned("POST", "/projects", r#"{"name":"p"}"#)).await, "Missing Authentication Token");
    assert_cf_denied(&call(unsigned("GET", CD, "")).await, "Missing Authentication Token");

    let (status, _, body) = call(good(&edge, ("POST", "/projects", r#"{"name":"shop"}"#), "evidently")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let arn = "/projects/arn%3Aaws%3Aevidently%3Aus-east-1%3A000000000000%3Aproject%2Fshop";
    let (status, _, body) = call(good(&edge, ("GET", arn, ""), "evidently")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"name\":\"shop\""), "{body}");
    let (status, _, body) = call(good(&edge, ("GET", &format!("{CD}?MaxItems=5"), ""), "cloudfront")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<MaxItems>5</MaxItems>"), "{body}");

    // HTTP/2 has no Host header: `host` is signed as the :authority.
    let req =
        signed(&edge, ("GET", "/projects", ""), (KEY, SECRET), ("evidently", "eu-west-1"), SystemTime::now(), true);
    let (status, _, body) = send(&h2c_client(), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wrong_secrets_unknown_keys_skewed_clocks_and_regions_are_refused() {
    let edge = edge().await;
    let now = SystemTime::now();
    let list = ("GET", "/projects", "");
    let ev = |key, secret, region, at| signed(&edge, list, (key, secret), ("evidently", region), at, false);
    assert_ev_denied(&call(ev(KEY, "wrong", "us-east-1", now)).await, "does not match the signature you provided");
    assert_ev_denied(
        &call(ev("AKIDOTHER", SECRET, "us-east-1", now)).await,
        "security token included in the request is invalid",
    );
    let twenty = Duration::from_secs(20 * 60);
    assert_ev_denied(&call(ev(KEY, SECRET, "us-east-1", now - twenty)).await, "Signature expired");
    assert_ev_denied(&call(ev(KEY, SECRET, "us-east-1", now + twenty)).await, "Signature not yet current");
    let (status, _, body) = call(ev(KEY, SECRET, "ap-southeast-2", now - Duration::from_secs(600))).await;
    assert_eq!(status, StatusCode::OK, "any region and 10 minutes of skew are fine for Evidently: {body}");

    let cf = |region| signed(&edge, ("GET", CD, ""), (KEY, SECRET), ("cloudfront", region), now, false);
    assert_cf_denied(&call(cf("eu-west-1")).await, "scoped to a valid region, not &apos;eu-west-1&apos;");
    assert_eq!(call(cf("us-east-1")).await.0, StatusCode::OK);
    // Signed for the other API's service.
    let wrong = signed(&edge, list, (KEY, SECRET), ("cloudfront", "us-east-1"), now, false);
    assert_ev_denied(&call(wrong).await, "Credential should be scoped to correct service: 'evidently'.");

    // Counted by reason.
    let metrics = get_with(
        &format!("http://{}/metrics", edge.handle.admin_addr),
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await
    .2;
    for (reason, n) in [("signature", 1), ("unknown_key", 1), ("clock", 2), ("scope", 2), ("missing", 0)] {
        let line = format!("edgesplit_admin_auth_denied_total{{reason=\"{reason}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
}

#[tokio::test]
async fn health_is_open_and_metrics_wants_the_token() {
    let edge = edge().await;
    let admin = edge.handle.admin_addr;
    assert_eq!(get(&format!("http://{admin}/healthz")).await.0, StatusCode::OK);
    assert_eq!(get(&format!("http://{admin}/readyz")).await.0, StatusCode::OK);
    let (status, headers, _) = get(&format!("http://{admin}/metrics")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"edgesplit\"");
    for wrong in [format!("Bearer {TOKEN}0"), "Bearer".to_string(), format!("Basic {TOKEN}"), TOKEN.to_string()] {
        let status = get_with(&format!("http://{admin}/metrics"), &[("authorization", &wrong)]).await.0;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let (status, _, body) =
        get_with(&format!("http://{admin}/metrics"), &[("authorization", &format!("Bearer {TOKEN}"))]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("edgesplit_admin_auth_denied_total"), "{body}");

    // Without a token, /metrics is open (the test harness's usual config).
    let open = Edge::start(&simple_config("http://127.0.0.1:1", None, "")).await;
    let url = format!("http://{}/metrics", open.handle.admin_addr);
    let req = Request::get(url).body(Empty::new().map_err(|n| match n {}).boxed()).unwrap();
    assert_eq!(send(&http1_client(), req).await.0, StatusCode::OK);
}

#[test]
fn load_refuses_a_file_without_keys_and_parse_lets_it_through_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgesplit.toml");
    let text = simple_config("http://127.0.0.1:1", None, "").replace("auth = \"none\"\n", "");
    std::fs::write(&path, &text).unwrap();
    let err = edgesplit::config::load(&path).unwrap_err().to_string();
    let line = text.lines().position(|l| l == "[admin]").unwrap() + 1;
    assert!(
        err.contains(&format!("edgesplit.toml:{line}:2: the admin API checks AWS SigV4 signatures but has no key")),
        "{err}"
    );
    let config = edgesplit::config::parse(&text, "t.toml", dir.path()).unwrap();
    assert_eq!(config.admin_auth.mode, edgesplit::config::AdminAuthMode::SigV4);
    assert!(config.admin_auth.credentials.is_none());
}
