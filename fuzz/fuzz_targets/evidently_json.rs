//! Fuzz target `evidently_json`: Evidently's restJson1 API (`edgesplit::admin::evidently::handle`), driven
//! with arbitrary methods, paths, queries and bodies against a fresh control plane over an in-memory store.
//!
//! Invariants, checked on every answer:
//! 1. No panic, in the router or in a write on the blocking pool.
//! 2. Every answer is a well-formed restJson1 response: `Content-Type: application/json`, an
//!    `x-amzn-RequestId`, and a body that is a JSON object.
//! 3. 2xx answers carry no `X-Amzn-ErrorType`; 4xx answers carry one, equal to the body's `__type`, with
//!    a string `message`.
//! 4. No 5xx, except a store failure (503 `ServiceUnavailableException`).
//!
//! Input: up to 8 calls separated by `\n===\n`. A call is a request line `METHOD /path?query`, a newline,
//! and the body (any bytes). Paths and queries are decoded the way the admin listener decodes them.
//! Each input starts from the same state: the project `shop` with the segment `chrome`, the feature
//! `checkout`, the running launch `ramp` and the experiment `exp` (not started), declared in a config.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use edgesplit::admin::evidently::{self, EvCall};
use edgesplit::admin::percent_decode;
use edgesplit::config::Config;
use edgesplit::plane::{ControlState, Plane};
use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_CALLS: usize = 8;
const SEPARATOR: &[u8] = b"\n===\n";

/// The plane every input starts from; a fixed cookie key spares a store write per input.
const BASE: &str = r#"
[[listener]]
listen = "127.0.0.1:0"

[continuous_deployment]
cookie_key = "fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-fuzz"

[[distribution]]
id = "web"
domains = ["*"]
[distribution.primary]
origins = ["http://127.0.0.1:1"]
"#;

/// The Evidently resources every input starts with (applied once; each input gets a copy of the result).
const DECLARED: &str = r#"
[[evidently.projects]]
name = "shop"
description = "declared"

[[evidently.segments]]
name = "chrome"
pattern = '{"Browser":["Chrome"]}'

[[evidently.features]]
project = "shop"
name = "checkout"
variations = [{ name = "old", value = { stringValue = "v1" } }, { name = "new", value = { stringValue = "v2" } }]
defaultVariation = "old"
entityOverrides = { vip = "new" }

[[evidently.launches]]
project = "shop"
name = "ramp"
status = "RUNNING"
groups = [{ name = "control", feature = "checkout", variation = "old" }, { name = "treat", feature = "checkout", variation = "new" }]
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = { control = 50000, treat = 50000 }
segmentOverrides = [{ segment = "chrome", evaluationOrder = 1, weights = { treat = 100000 } }]

[[evidently.experiments]]
project = "shop"
name = "exp"
treatments = [{ name = "control", feature = "checkout", variation = "old" }, { name = "treat", feature = "checkout", variation = "new" }]
metricGoals = [{ desiredChange = "INCREASE", metricDefinition = { name = "clicks", entityIdKey = "userDetails.userId", valueKey = "details.clicks", eventPattern = '{"details.clicks":[{"exists":true}]}' } }]
onlineAbConfig = { controlTreatmentName = "control", treatmentWeights = { control = 50000, treat = 50000 } }
"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    base: Config,
    /// The control state after applying [`DECLARED`].
    declared: ControlState,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let parse = |text: &str| {
            edgesplit::config::parse(text, "fuzz.toml", std::path::Path::new("."))
                .unwrap_or_else(|e| panic!("the fixture config does not parse:\n{e}"))
        };
        let base = parse(BASE);
        let full = Plane::new(parse(&format!("{BASE}{DECLARED}")))
            .unwrap_or_else(|e| panic!("the fixture declarations do not apply:\n{e}"));
        let declared = full.lock().clone();
        Fixture { runtime, base, declared }
    })
}

/// A fresh plane (its own empty in-memory store, exposure log and metrics) holding the declared resources.
/// Applying the declarations costs a dozen store commits; copying their result in does not, and the
/// store is only read back at start.
fn fresh_plane(fx: &Fixture) -> Arc<Plane> {
    let plane = Arc::new(Plane::new(fx.base.clone()).expect("plane"));
    {
        let mut st = plane.lock();
        *st = fx.declared.clone();
        plane.publish(&st);
    }
    plane
}

/// Splits `data` at every `sep`.
fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = data.windows(sep.len()).position(|w| w == sep) {
        parts.push(&data[..at]);
        data = &data[at + sep.len()..];
    }
    parts.push(data);
    parts
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let plane = fresh_plane(fx);
    fx.runtime.block_on(async {
        // As `app::start` does: move recorded exposures into memory (PutProjectEvents waits for it).
        let exposures = tokio::spawn(plane.exposures.clone().run());
        for raw in split(data, SEPARATOR).into_iter().take(MAX_CALLS) {
            let (line, body) = match raw.iter().position(|&b| b == b'\n') {
                Some(at) => (&raw[..at], &raw[at + 1..]),
                None => (raw, &[][..]),
            };
            let Ok(line) = std::str::from_utf8(line) else { continue };
            let (method, target) = line.split_once(' ').unwrap_or((line, "/"));
            let Ok(method) = Method::from_bytes(method.as_bytes()) else { continue };
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            if !evidently::owns(path) {
                continue;
            }
            let segments = path.trim_start_matches('/').split('/').map(percent_decode).collect::<Option<Vec<_>>>();
            let response = match segments {
                None => evidently::error_response(&evidently::invalid("path", "is not valid percent-encoding")),
                Some(segments) => {
                    let call = EvCall {
                        method,
                        segments,
                        query: edgesplit::admin::parts_query(query),
                        body: Bytes::copy_from_slice(body),
                    };
                    evidently::handle(&plane, call).await
                }
            };
            check(line, response).await;
        }
        exposures.abort();
    });
});

async fn check(request: &str, response: Response<Full<Bytes>>) {
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    let status = parts.status;
    let context = || format!("{request} -> {status} {}", String::from_utf8_lossy(&body));
    assert_eq!(
        parts.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "{}",
        context()
    );
    assert!(parts.headers.contains_key("x-amzn-requestid"), "no request id: {}", context());
    let value: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", context()));
    let Value::Object(object) = &value else { panic!("body is not a JSON object: {}", context()) };
    let error_type = parts.headers.get("x-amzn-errortype").map(|v| v.to_str().unwrap_or("<not text>"));
    if status.is_success() {
        assert_eq!(error_type, None, "a 2xx with an error type: {}", context());
        return;
    }
    let in_range = status.is_client_error()
        || (status == StatusCode::SERVICE_UNAVAILABLE && error_type == Some("ServiceUnavailableException"));
    assert!(in_range, "status out of range: {}", context());
    let Some(error_type) = error_type else { panic!("an error without X-Amzn-ErrorType: {}", context()) };
    assert_eq!(object.get("__type").and_then(Value::as_str), Some(error_type), "{}", context());
    assert!(object.get("message").is_some_and(Value::is_string), "no message: {}", context());
}
