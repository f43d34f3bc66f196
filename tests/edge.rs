//! Evidently decisions at the edge (D9), with real origins that echo what they receive: injected
//! headers, forged ones stripped, the entity cookie issued and reused, a context-driven segment
//! override, feature-driven routing across a scheduled step, and the edge agreeing with EvaluateFeature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::*;

const RESOURCES: &str = r#"
[[evidently.projects]]
name = "shop"

[[evidently.segments]]
name = "chrome"
pattern = '{"Browser":[{"prefix":"Chrome"}]}'

[[evidently.features]]
project = "shop"
name = "checkout"
variations = [{ name = "old", value = { stringValue = "v1" } }, { name = "new", value = { stringValue = "v \"2\"" } }]
entityOverrides = { vip = "new" }

[[evidently.launches]]
project = "shop"
name = "checkout-chrome"
status = "RUNNING"
groups = [{ name = "a", feature = "checkout", variation = "old" }, { name = "b", feature = "checkout", variation = "new" }]
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = { a = 50000, b = 50000 }
segmentOverrides = [{ segment = "chrome", evaluationOrder = 1, weights = { b = 100000 } }]
"#;

fn edge_config(primary: &str, staging: &str, evidently: &str, extra: &str) -> String {
    let base = simple_config(primary, Some(staging), extra)
        .replace("domains = [\"*\"]\n", "domains = [\"*\"]\nstaging_dns_name = \"staging.web.test\"\n");
    format!("{base}\n[distribution.evidently]\n{evidently}\n{RESOURCES}")
}

/// Unix milliseconds now.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Waits (up to 2 s) until the exposure log holds `n` entries: the drain task moves them on a tick.
async fn drained(exposures: &edgesplit::evidently::exposure::ExposureLog, n: usize) {
    for _ in 0..200 {
        if exposures.len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn seen<'a>(body: &'a str, header: &str) -> Vec<&'a str> {
    body.lines().filter_map(|l| l.strip_prefix(&format!("{header}: "))).collect()
}

const EDGE: &str = r#"project = "shop"
entity = ["header:x-user-id", "cookie:uid"]
response_headers = true
context = { Browser = "header:user-agent" }
features = [{ feature = "checkout", value_header = "x-evidently-checkout-value" }]"#;

#[tokio::test]
async fn decisions_are_injected_forgeries_stripped_and_the_entity_cookie_issued_then_reused() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let edge = Edge::start(&edge_config(&p.url(), &s.url(), EDGE, "[store]\npath = \"store\"\n")).await;
    let url = edge.url("http", "/");

    // An entity override, by header; a forged decision header from the client is replaced.
    let (_, h, body) = get_with(
        &url,
        &[("x-user-id", "vip"), ("x-evidently-checkout", "forged"), ("x-evidently-checkout-value", "\"forged\"")],
    )
    .await;
    assert_eq!(seen(&body, "x-evidently-checkout"), ["new"], "{body}");
    assert_eq!(seen(&body, "x-evidently-checkout-value"), [r#""v \"2\"""#], "{body}");
    assert_eq!(h["x-evidently-checkout"], "new", "echoed on the response");
    assert!(h.get("set-cookie").is_none(), "an entity id came with the request: no cookie");

    // No id at all: a random one is issued as a cookie and used for this request already.
    let (_, h, body) = get_with(&url, &[("user-agent", "Firefox/130")]).await;
    let set = h["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("edgesplit-entity="), "{set}");
    assert!(set.contains("; Path=/; HttpOnly; SameSite=Lax"), "{set}");
    let id = set.split(';').next().unwrap().trim_start_matches("edgesplit-entity=").to_string();
    assert_eq!(id.len(), 32);
    let first = seen(&body, "x-evidently-checkout")[0].to_string();
    // The browser sends it back: same variation every time, no new cookie.
    for _ in 0..5 {
        let (_, h, body) =
            get_with(&url, &[("cookie", &format!("edgesplit-entity={id}")), ("user-agent", "Firefox/130")]).await;
        assert!(h.get("set-cookie").is_none());
        assert_eq!(seen(&body, "x-evidently-checkout"), [first.as_str()]);
    }
    let m = edge.metrics().await;
    assert!(m.contains("edgesplit_evaluations_total{project=\"shop\",feature=\"checkout\",variation=\"new\",reason=\"ENTITY_OVERRIDES_MATCH\"} 1"), "{m}");
}

#[tokio::test]
async fn the_context_drives_a_segment_override() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let edge = Edge::start(&edge_config(&p.url(), &s.url(), EDGE, "")).await;
    let url = edge.url("http", "/");
    for i in 0..20 {
        let user = format!("user-{i}");
        let (_, _, body) = get_with(&url, &[("x-user-id", &user), ("user-agent", "Chrome/131")]).await;
        assert_eq!(seen(&body, "x-evidently-checkout"), ["new"], "Chrome users all get group b");
    }
    let m = edge.metrics().await;
    assert!(m.contains("feature=\"checkout\",variation=\"new\",reason=\"LAUNCH_RULE_MATCH\"} 20"), "{m}");
}

async fn evaluate_api(edge: &Edge, entity: &str, ua: &str) -> Value {
    let body = json!({ "entityId": entity, "evaluationContext": json!({ "Browser": ua }).to_string() });
    admin_json(edge, "POST", "/projects/shop/evaluations/checkout", body).await.1
}

#[tokio::test]
async fn the_edge_and_evaluate_feature_agree() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let edge = Edge::start(&edge_config(&p.url(), &s.url(), EDGE, "")).await;
    let url = edge.url("http", "/");
    let mut both = std::collections::HashSet::new();
    for i in 0..60 {
        let user = format!("entity-{i}");
        let ua = if i % 3 == 0 { "Chrome/1" } else { "Safari/17" };
        let (_, _, body) = get_with(&url, &[("x-user-id", &user), ("user-agent", ua)]).await;
        let api = evaluate_api(&edge, &user, ua).await;
        assert_eq!(seen(&body, "x-evidently-checkout"), [api["variation"].as_str().unwrap()], "{user} {ua}");
        both.insert(api["variation"].as_str().unwrap().to_string());
    }
    assert_eq!(both.len(), 2, "a 50/50 split over 60 entities shows both variations");
}

#[tokio::test]
async fn a_feature_routes_to_staging_and_its_scheduled_step_moves_the_canary() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    // Step 2 starts in an hour; the test moves the evaluation clock instead of waiting.
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let canary = format!(
        r#"
[[evidently.features]]
project = "shop"
name = "canary"
variations = [{{ name = "off", value = {{ boolValue = false }} }}, {{ name = "on", value = {{ boolValue = true }} }}]
[[evidently.launches]]
project = "shop"
name = "ramp"
status = "RUNNING"
groups = [{{ name = "stay", feature = "canary", variation = "off" }}, {{ name = "go", feature = "canary", variation = "on" }}]
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = {{ stay = 99000, go = 1000 }}
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = {start}
groupWeights = {{ stay = 0, go = 100000 }}
"#
    );
    let evidently = "project = \"shop\"\nentity = [\"header:x-user-id\"]\nroute = { feature = \"canary\", staging_variations = [\"on\"] }";
    let edge = Edge::start(&format!("{}{canary}", edge_config(&p.url(), &s.url(), evidently, ""))).await;
    let url = edge.url("http", "/");
    let side = |h: &http::HeaderMap| h["x-origin"].to_str().unwrap().to_string();
    // Step 1: 1 % on staging, exactly the entities the D5 buckets put there.
    let mut staged = 0;
    for i in 0..300 {
        let (_, h, _) = get_with(&url, &[("x-user-id", &format!("u{i}"))]).await;
        staged += usize::from(side(&h) == "staging");
    }
    assert!(staged <= 12, "{staged} of 300 on staging at a 1 % step");
    edge.handle.plane.advance_clock(std::time::Duration::from_secs(3601));
    for i in 0..20 {
        let (_, h, _) = get_with(&url, &[("x-user-id", &format!("u{i}"))]).await;
        assert_eq!(side(&h), "staging", "step 2: everyone on staging");
    }
    let m = edge.metrics().await;
    let primary = format!(
        "edgesplit_routing_decisions_total{{distribution=\"web\",reason=\"feature-primary\"}} {}",
        300 - staged
    );
    assert!(m.contains(&primary), "{m}");
    let staging =
        format!("edgesplit_routing_decisions_total{{distribution=\"web\",reason=\"feature-staging\"}} {}", staged + 20);
    assert!(m.contains(&staging), "{m}");
}

#[tokio::test]
async fn a_route_and_a_policy_on_one_distribution_is_rejected() {
    let text = edge_config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "project = \"shop\"\nroute = { feature = \"canary\", staging_variations = [\"on\"] }",
        "",
    ) + "\n[distribution.policy]\ntype = \"SingleHeader\"\nheader = \"aws-cf-cd-x\"\nvalue = \"1\"\n";
    let errors = edgesplit::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap_err().to_string();
    assert!(errors.contains("feature-driven routing replaces the continuous deployment policy"), "{errors}");
}

#[tokio::test]
async fn evaluations_in_a_running_experiment_are_recorded_as_exposures_from_the_edge_and_the_api() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let analysis =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + std::time::Duration::from_secs(86_400));
    let experiment = format!(
        r#"
[[evidently.features]]
project = "shop"
name = "price"
variations = [{{ name = "low", value = {{ longValue = 9 }} }}, {{ name = "high", value = {{ longValue = 12 }} }}]
[[evidently.experiments]]
project = "shop"
name = "pricing"
status = "RUNNING"
analysisCompleteTime = "{analysis}"
samplingRate = 100000
treatments = [{{ name = "control", feature = "price", variation = "low" }}, {{ name = "up", feature = "price", variation = "high" }}]
metricGoals = [{{ metricDefinition = {{ name = "spend", entityIdKey = "userDetails.userId", valueKey = "details.spend" }}, desiredChange = "INCREASE" }}]
"#
    );
    let evidently = "project = \"shop\"\nentity = [\"header:x-user-id\"]\nfeatures = [{ feature = \"price\", value_header = \"x-price\" }]";
    let edge = Edge::start(&format!("{}{experiment}", edge_config(&p.url(), &s.url(), evidently, ""))).await;

    let (_, _, body) = get_with(&edge.url("http", "/"), &[("x-user-id", "edge-user")]).await;
    let served = seen(&body, "x-evidently-price")[0].to_string();
    assert!(["low", "high"].contains(&served.as_str()), "{body}");
    let price = seen(&body, "x-price")[0];
    assert_eq!(price, if served == "low" { "9" } else { "12" }, "the typed value as JSON");
    let body = json!({ "entityId": "api-user" }).to_string();
    let req = Request::post(format!("http://{}/projects/shop/evaluations/price", edge.handle.admin_addr))
        .body(Full::new(bytes::Bytes::from(body)).map_err(|n| match n {}).boxed())
        .unwrap();
    let api: Value = serde_json::from_slice(
        &http1_client().request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes(),
    )
    .unwrap();
    assert_eq!(api["reason"], "EXPERIMENT_RULE_MATCH");

    let exposures = &edge.handle.plane.exposures;
    drained(exposures, 2).await;
    let edge_seen = exposures.latest("shop", "edge-user", now());
    assert_eq!(edge_seen.len(), 1, "{edge_seen:?}");
    assert_eq!(&*edge_seen[0].rule, "pricing");
    assert_eq!(&*edge_seen[0].arm, if served == "low" { "control" } else { "up" });
    let api_seen = exposures.latest("shop", "api-user", now());
    assert_eq!(api_seen.len(), 1);
    assert_eq!(
        json!(&*api_seen[0].arm),
        json!(serde_json::from_str::<Value>(api["details"].as_str().unwrap()).unwrap()["treatment"])
    );
    assert!(edge.metrics().await.contains("edgesplit_exposures_total{result=\"recorded\"} 2"));
}

#[tokio::test]
async fn only_launches_with_metric_monitors_remember_exposures() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let launch = |feature: &str, monitors: &str| {
        format!(
            r#"
[[evidently.features]]
project = "shop"
name = "{feature}"
variations = [{{ name = "a", value = {{ stringValue = "a" }} }}, {{ name = "b", value = {{ stringValue = "b" }} }}]
[[evidently.launches]]
project = "shop"
name = "{feature}-rollout"
status = "RUNNING"
groups = [{{ name = "ga", feature = "{feature}", variation = "a" }}, {{ name = "gb", feature = "{feature}", variation = "b" }}]
{monitors}
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = {{ ga = 50000, gb = 50000 }}
"#
        )
    };
    let monitored = launch(
        "watched",
        r#"metricMonitors = [{ metricDefinition = { name = "clicks", entityIdKey = "userDetails.userId", valueKey = "details.clicks" } }]"#,
    );
    let unmonitored = launch("plain", "");
    let evidently = "project = \"shop\"\nentity = [\"header:x-user-id\"]\nfeatures = [{ feature = \"watched\" }, { feature = \"plain\" }]";
    let edge =
        Edge::start(&format!("{}{monitored}{unmonitored}", edge_config(&p.url(), &s.url(), evidently, ""))).await;

    for i in 0..5 {
        let (_, _, body) = get_with(&edge.url("http", "/"), &[("x-user-id", &format!("u{i}"))]).await;
        assert_eq!(seen(&body, "x-evidently-watched").len(), 1, "{body}");
        assert_eq!(seen(&body, "x-evidently-plain").len(), 1, "both features are still evaluated: {body}");
    }
    let exposures = &edge.handle.plane.exposures;
    drained(exposures, 5).await;
    // Settle a little longer: an exposure of the unmonitored launch would arrive with the others.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(exposures.len(), 5);
    for i in 0..5 {
        let got = exposures.latest("shop", &format!("u{i}"), now());
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(&*got[0].rule, "watched-rollout");
    }
    assert!(edge.metrics().await.contains("edgesplit_exposures_total{result=\"recorded\"} 5"));
}
