//! Guarded rollouts end to end (issue 18): real origins, edgesplit itself (in-process, or the binary for
//! restarts and the CLI), a continuous deployment policy made through the CloudFront API, a rollout started
//! through `/edgesplit/`, and real traffic while the driver (every 100 ms here) advances the steps or rolls
//! staging back. Bake times are a second or two; the guards' minimum samples are lowered where a test only
//! needs the mechanism, and left at their defaults where the statistics are the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use serde_json::{Value, json};
use support::cloudfront::{CF, api, create_policy, element};
use support::process::{BIN, Proc};
use support::*;

const STAGING: &str = "staging.web.test";

/// What the staging origin does, switched while a test runs.
const HEALTHY: u8 = 0;
const FAILING: u8 = 1;
const SLOW: u8 = 2;

/// An origin that answers its `name`, and as `mode` says: 200, 500, or 200 after 200 ms; and 500 on a
/// random `error_share` of requests (fixed seed), for the equal-error-rate test.
async fn origin(name: &'static str, mode: Arc<AtomicU8>, error_share: f64, seed: u64) -> Origin {
    let rng = Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(seed)));
    Origin::start(move |_req: Request<Incoming>| {
        let (mode, rng) = (mode.load(Relaxed), rng.clone());
        async move {
            if mode == SLOW {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let unlucky = rng.lock().unwrap().f64() < error_share;
            let status = if mode == FAILING || unlucky { 500 } else { 200 };
            Response::builder().status(status).header("x-origin", name).body(full(name)).unwrap()
        }
    })
    .await
}

/// The config: distribution `web` with a staging pool named [`STAGING`], the driver every 100 ms, `extra`
/// appended.
fn config(primary: &Origin, staging: &Origin, extra: &str) -> String {
    simple_config(&primary.url(), Some(&staging.url()), &format!("[timeouts]\nrollout_interval = \"100ms\"\n{extra}"))
        .replace("domains = [\"*\"]\n", &format!("domains = [\"*\"]\nstaging_dns_name = \"{STAGING}\"\n"))
}

/// A SingleWeight policy for [`STAGING`], disabled at weight 0 (the rollout enables it), with stickiness.
fn policy_xml() -> String {
    format!(
        "<ContinuousDeploymentPolicyConfig xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
         <StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>{STAGING}</DnsName></Items></StagingDistributionDnsNames>\
         <Enabled>false</Enabled><TrafficConfig><Type>SingleWeight</Type><SingleWeightConfig><Weight>0</Weight>\
         <SessionStickinessConfig><IdleTTL>300</IdleTTL><MaximumTTL>600</MaximumTTL></SessionStickinessConfig>\
         </SingleWeightConfig></TrafficConfig></ContinuousDeploymentPolicyConfig>"
    )
}

/// One call to the rollout API, unsigned (the tests' admin runs `auth = "none"`): status and JSON.
async fn call(admin: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let (status, _, text) = api(admin, method, &format!("/edgesplit/rollouts{path}"), &body, &[]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn rollout(admin: SocketAddr) -> Value {
    let (status, r) = call(admin, "GET", "/web", Value::Null).await;
    assert_eq!(status, 200, "{r}");
    r
}

/// Polls the rollout until `done` holds (at most `within`), and returns it.
async fn until(admin: SocketAddr, within: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let r = rollout(admin).await;
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "no {what} within {within:?}: {r:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Steady traffic through the proxy from `conns` keep-alive clients, counted by the origin that answered.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    primary: Arc<AtomicU64>,
    staging: Arc<AtomicU64>,
}

impl Load {
    fn start(proxy: SocketAddr, conns: usize) -> Load {
        let (stop, primary, staging) = (Arc::new(AtomicBool::new(false)), Arc::default(), Arc::default());
        let tasks = (0..conns)
            .map(|_| {
                let (stop, primary, staging): (Arc<AtomicBool>, Arc<AtomicU64>, Arc<AtomicU64>) =
                    (stop.clone(), Arc::clone(&primary), Arc::clone(&staging));
                tokio::spawn(async move {
                    let client = http1_client();
                    // Bounded: a test stops the load long before this.
                    for _ in 0..200_000 {
                        if stop.load(Relaxed) {
                            return;
                        }
                        let req = Request::get(format!("http://{proxy}/")).body(empty()).unwrap();
                        let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await
                        else {
                            continue;
                        };
                        let counter = match resp.headers().get("x-origin").map(|v| v.as_bytes()) {
                            Some(b"staging") => &staging,
                            _ => &primary,
                        };
                        let _ = resp.into_body().collect().await;
                        counter.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        Load { stop, tasks, primary, staging }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        (self.primary.load(Relaxed), self.staging.load(Relaxed))
    }
}

fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed()
}

/// A GET carrying `cookie`: the origin that answered, and the session cookie set, if any.
async fn visit(proxy: SocketAddr, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = Request::get(format!("http://{proxy}/"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let (_, headers, _) = send(&http1_client(), req.body(empty()).unwrap()).await;
    let origin = headers.get("x-origin").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let set = headers.get("set-cookie").map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (origin, set)
}

/// A client pinned to staging: its session cookie.
async fn staging_session(proxy: SocketAddr) -> String {
    for _ in 0..500 {
        if let (origin, Some(cookie)) = visit(proxy, None).await
            && origin == "staging"
        {
            assert_eq!(visit(proxy, Some(&cookie)).await.0, "staging", "the session sticks");
            return cookie;
        }
    }
    panic!("no request went to staging in 500");
}

/// The weight, the switch and the ETag of the policy, as GetContinuousDeploymentPolicy answers.
async fn policy(admin: SocketAddr, id: &str) -> (f64, bool, String) {
    let (status, h, body) = api(admin, "GET", &format!("{CF}/{id}"), "", &[]).await;
    assert_eq!(status, 200, "{body}");
    let weight = element(&body, "Weight").parse().unwrap();
    (weight, element(&body, "Enabled") == "true", h["etag"].to_str().unwrap().to_string())
}

fn events(r: &Value) -> Vec<String> {
    r["history"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap().to_string()).collect()
}

/// Guards with small minimum samples: the mechanism, not the statistics.
fn quick_guards() -> Value {
    json!({"error_rate": {"min_requests": 60}, "latency": {"min_requests": 40}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_staging_ramps_through_every_step_and_holds() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm, 0.0, 2).await);
    let edge = Edge::start(&config(&p, &s, "")).await;
    let admin = edge.handle.admin_addr;
    let (id, _) = create_policy(admin, &policy_xml()).await;
    let spec = json!({"steps": [{"weight": 0.05, "bake": "1s"}, {"weight": 0.1, "bake": "1s"}, {"weight": 0.15, "bake": "1s"}],
                      "guards": quick_guards()});
    let (status, r) = call(admin, "PUT", "/web", spec).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(
        (r["state"].as_str(), r["step"].as_u64(), r["steps"].as_u64(), r["weight"].as_f64()),
        (Some("running"), Some(1), Some(3), Some(0.05))
    );
    assert_eq!(policy(admin, &id).await.0, 0.05, "the policy carries the step's weight");
    let load = Load::start(edge.addr("http"), 8);
    let r = until(admin, Duration::from_secs(60), "finish", |r| r["state"] == "finished").await;
    let (primary, staging) = load.stop().await;
    assert_eq!(events(&r), ["started", "advanced", "advanced", "finished"], "{r:#}");
    let weights: Vec<f64> = r["history"].as_array().unwrap().iter().map(|e| e["weight"].as_f64().unwrap()).collect();
    assert_eq!(weights, [0.05, 0.1, 0.15, 0.15]);
    // Each step baked its second at least.
    let at: Vec<u64> = r["history"].as_array().unwrap().iter().map(|e| e["at_ms"].as_u64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 1000), "{at:?}");
    let (weight, enabled, _) = policy(admin, &id).await;
    assert_eq!((weight, enabled), (0.15, true), "held at the last step");
    assert!(staging > 0 && primary > staging, "{primary} primary, {staging} staging");
    let m = edge.metrics().await;
    let malformed: Vec<&str> = m
        .lines()
        .filter(|l| !(l.starts_with("# HELP ") || l.starts_with("# TYPE ") || l.starts_with("edgesplit_")))
        .collect();
    assert!(malformed.is_empty(), "not in the text format: {malformed:?}");
    for line in [
        "edgesplit_rollout_state{distribution=\"web\",state=\"finished\"} 1",
        "edgesplit_rollout_state{distribution=\"web\",state=\"running\"} 0",
        "edgesplit_rollout_step{distribution=\"web\"} 3",
        "edgesplit_rollout_weight{distribution=\"web\"} 0.15",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    // Listed; a second start on a finished rollout replaces it.
    let (status, list) = call(admin, "GET", "", Value::Null).await;
    assert_eq!((status, list["rollouts"].as_array().unwrap().len()), (200, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_that_starts_failing_at_step_2_is_rolled_back_and_its_sticky_clients_return_to_primary() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm.clone(), 0.0, 2).await);
    let edge = Edge::start(&config(&p, &s, "")).await;
    let (admin, proxy) = (edge.handle.admin_addr, edge.addr("http"));
    let (id, _) = create_policy(admin, &policy_xml()).await;
    let spec =
        json!({"steps": [{"weight": 0.05, "bake": "1s"}, {"weight": 0.15, "bake": "10m"}], "guards": quick_guards()});
    assert_eq!(call(admin, "PUT", "/web", spec).await.0, 201);
    let load = Load::start(proxy, 8);
    until(admin, Duration::from_secs(60), "step 2", |r| r["step"] == 2).await;
    let pinned = staging_session(proxy).await;
    // The breach starts: staging answers 500 from now on.
    sm.store(FAILING, Relaxed);
    let breach = Instant::now();
    let breach_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let r = until(admin, Duration::from_secs(30), "rollback", |r| r["state"] == "rolled_back").await;
    let detected = breach.elapsed();
    // The sticky client's next request: primary, at once.
    let (back_on, _) = visit(proxy, Some(&pinned)).await;
    let on_primary = breach.elapsed();
    let (_, staging_total) = load.stop().await;
    assert_eq!(back_on, "primary", "a client pinned to staging is back on primary");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.starts_with("step 2: error rate: staging"), "{reason}");
    assert!(reason.contains("vs primary 0.0 %") && reason.contains("alpha 0.001"), "{reason}");
    assert_eq!(events(&r), ["started", "advanced", "rolled_back"]);
    let rolled_back_ms = r["history"][2]["at_ms"].as_u64().unwrap();
    let (weight, enabled, _) = policy(admin, &id).await;
    assert_eq!((weight, enabled, r["weight"].as_f64()), (0.0, true, Some(0.0)));
    // New clients all go to primary now.
    for _ in 0..50 {
        assert_eq!(visit(proxy, None).await.0, "primary");
    }
    let m = edge.metrics().await;
    assert!(m.contains("edgesplit_rollout_state{distribution=\"web\",state=\"rolled_back\"} 1"), "{m}");
    println!(
        "rollback timeline: breach at {breach_ms} ms, rolled back at {rolled_back_ms} ms (+{} ms; seen by the test after {detected:?}), \
         pinned client on primary after {on_primary:?}; staging answered {staging_total} requests in all; reason: {reason}",
        rolled_back_ms.saturating_sub(breach_ms)
    );
    assert!(detected < Duration::from_secs(20), "{detected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_that_adds_200_ms_is_rolled_back_by_the_latency_guard() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(SLOW)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm, 0.0, 2).await);
    let edge = Edge::start(&config(&p, &s, "")).await;
    let admin = edge.handle.admin_addr;
    create_policy(admin, &policy_xml()).await;
    let spec = json!({"steps": [{"weight": 0.15, "bake": "10m"}], "guards": quick_guards()});
    assert_eq!(call(admin, "PUT", "/web", spec).await.0, 201);
    let load = Load::start(edge.addr("http"), 16);
    let r = until(admin, Duration::from_secs(60), "rollback", |r| r["state"] == "rolled_back").await;
    load.stop().await;
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.starts_with("step 1: p99 latency: staging 250 ms vs primary"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_with_the_same_one_percent_errors_as_primary_is_never_rolled_back() {
    // Default guards (the statistics are the point); both origins fail 1 % of requests at random.
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.01, 7).await, origin("staging", sm, 0.01, 8).await);
    let edge = Edge::start(&config(&p, &s, "")).await;
    let admin = edge.handle.admin_addr;
    create_policy(admin, &policy_xml()).await;
    let spec = json!({"steps": [{"weight": 0.15, "bake": "10m"}]});
    assert_eq!(call(admin, "PUT", "/web", spec).await.0, 201);
    let load = Load::start(edge.addr("http"), 8);
    // Long enough for hundreds of evaluations, each past the minimum sample for most of the run.
    let run = Duration::from_secs(20);
    let started = Instant::now();
    let mut evaluated = 0;
    while started.elapsed() < run {
        let r = rollout(admin).await;
        assert_eq!(r["state"], "running", "a false alarm: {r:#}");
        if r["guards"]["verdict"] == "pass" {
            evaluated += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (primary, staging) = load.stop().await;
    let r = rollout(admin).await;
    assert_eq!(r["state"], "running", "{r:#}");
    let g = &r["guards"];
    println!("1 % vs 1 %: {primary} primary and {staging} staging requests, guards {g}");
    assert!(g["staging"]["requests"].as_u64().unwrap() >= 500, "the guards had their minimum sample: {g}");
    assert!(g["staging"]["errors"].as_u64().unwrap() > 0 && g["primary"]["errors"].as_u64().unwrap() > 0, "{g}");
    assert!(evaluated > 10, "the guards passed on most reads: {evaluated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_what_contradicts_the_wiring_and_moves_only_what_its_state_allows() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm, 0.0, 2).await);
    let extra = format!(
        "[[distribution]]\nid = \"filed\"\ndomains = [\"filed.test\"]\n[distribution.primary]\norigins = [\"{}\"]\n\
         [distribution.staging]\norigins = [\"{}\"]\n[distribution.policy]\ntype = \"SingleWeight\"\nweight = 0.1\n",
        p.url(),
        s.url()
    );
    let edge = Edge::start(&config(&p, &s, &extra)).await;
    let admin = edge.handle.admin_addr;
    let spec = json!({"steps": [{"weight": 0.05, "bake": "1m"}]});
    let cases = [
        ("/web", spec.clone(), 400, "ValidationException", "no continuous deployment policy applies"),
        ("/filed", spec.clone(), 400, "ValidationException", "written in the config file"),
        ("/nope", spec.clone(), 404, "ResourceNotFoundException", "distribution `nope` does not exist"),
        (
            "/web",
            json!({"steps": [{"weight": 1.5, "bake": "1m"}]}),
            400,
            "ValidationException",
            "steps[1].weight: 1.5 is not in (0, 1]",
        ),
        ("/web", json!({"steps": []}), 400, "ValidationException", "1 to 20 steps"),
        ("/web", json!({"steps": [{"weight": 0.05}]}), 400, "ValidationException", "missing field `bake`"),
    ];
    for (path, body, want, code, message) in cases {
        let (status, e) = call(admin, "PUT", path, body).await;
        assert_eq!((status, e["__type"].as_str()), (want, Some(code)), "{path}: {e}");
        assert!(e["message"].as_str().unwrap().contains(message), "{path}: {e}");
    }
    create_policy(admin, &policy_xml()).await;
    assert_eq!(call(admin, "GET", "/web", Value::Null).await.0, 404);
    let (status, e) = call(admin, "PUT", "/web", json!({"steps": [{"weight": 0.5, "bake": "1m"}]})).await;
    assert_eq!((status, e["__type"].as_str()), (400, Some("ValidationException")), "{e}");
    let over = "steps[1].weight: 0.5 is above 0.15, the most a continuous deployment policy sends";
    assert!(e["message"].as_str().unwrap().contains(over), "{e}");
    assert_eq!(call(admin, "PUT", "/web", spec.clone()).await.0, 201);
    let (status, e) = call(admin, "PUT", "/web", spec.clone()).await;
    assert_eq!((status, e["__type"].as_str()), (409, Some("ConflictException")), "{e}");
    let (status, r) = call(admin, "POST", "/web/pause", json!({"reason": "checking dashboards"})).await;
    assert_eq!((status, r["state"].as_str(), r["reason"].as_str()), (200, Some("paused"), Some("checking dashboards")));
    let (status, e) = call(admin, "POST", "/web/pause", Value::Null).await;
    assert_eq!((status, e["__type"].as_str()), (409, Some("ConflictException")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("is paused: it cannot be paused"), "{e}");
    assert_eq!(call(admin, "POST", "/web/resume", Value::Null).await.1["state"], "running");
    let (status, e) = call(admin, "POST", "/web/pause", json!({"why": 1})).await;
    assert_eq!((status, e["__type"].as_str()), (400, Some("ValidationException")), "{e}");
    let (status, r) = call(admin, "POST", "/web/abort", Value::Null).await;
    assert_eq!((status, r["state"].as_str(), r["weight"].as_f64()), (200, Some("aborted"), Some(0.0)));
    assert_eq!(call(admin, "POST", "/web/resume", Value::Null).await.0, 409);
    let (status, e) = call(admin, "DELETE", "/web", Value::Null).await;
    assert_eq!((status, e["__type"].as_str()), (404, Some("ValidationException")), "{e}");
}

/// The binary on a config with a store on disk: restarted mid-rollout, it resumes at its step; and the CLI
/// pauses, resumes and aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_rollout_resumes_at_its_step_and_the_cli_pauses_and_aborts() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm, 0.0, 2).await);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let text = config(&p, &s, &format!("[store]\npath = \"{}\"\n", store.display()))
        .replace("level = \"warn\"", "level = \"info\"");
    let path = dir.path().join("edgesplit.toml");
    std::fs::write(&path, text).unwrap();
    let mut proc = Proc::start(&path);
    let (admin, proxy) = (proc.admin().await, proc.addr("http").await);
    let (id, _) = create_policy(admin, &policy_xml()).await;
    let spec = json!({"steps": [{"weight": 0.05, "bake": "1s"}, {"weight": 0.1, "bake": "2s"}, {"weight": 0.15, "bake": "1s"}],
                      "guards": quick_guards()});
    assert_eq!(call(admin, "PUT", "/web", spec).await.0, 201);
    let load = Load::start(proxy, 8);
    until(admin, Duration::from_secs(60), "step 2", |r| r["step"] == 2).await;
    load.stop().await;
    assert_eq!(proc.stop().await, 0);

    let mut proc = Proc::start(&path);
    let (admin, proxy) = (proc.admin().await, proc.addr("http").await);
    let r = rollout(admin).await;
    assert_eq!((r["state"].as_str(), r["step"].as_u64(), r["weight"].as_f64()), (Some("running"), Some(2), Some(0.1)));
    assert_eq!(policy(admin, &id).await.0, 0.1, "the policy still carries step 2's weight");

    // The CLI, against this instance.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("rollout")
            .args(["--endpoint", &format!("http://{admin}")])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["pause", "web", "--reason", "hold for the release train"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("paused"), "{out}");
    let (code, out, _) = cli(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("web") && out.contains("paused"), "{out}");
    // Paused, with traffic and its bake long past: it stays at step 2.
    let load = Load::start(proxy, 8);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (rollout(admin).await["state"].as_str(), rollout(admin).await["step"].as_u64()),
        (Some("paused"), Some(2))
    );
    let (code, out, err) = cli(&["resume", "web"]);
    assert_eq!(code, Some(0), "{out}{err}");
    until(admin, Duration::from_secs(60), "step 3", |r| r["step"] == 3).await;
    let (code, out, err) = cli(&["abort", "web", "--reason", "found a bug"]);
    load.stop().await;
    assert_eq!(code, Some(0), "{out}{err}");
    let r = rollout(admin).await;
    assert_eq!(
        (r["state"].as_str(), r["reason"].as_str(), r["weight"].as_f64()),
        (Some("aborted"), Some("found a bug"), Some(0.0))
    );
    let (code, _, err) = cli(&["abort", "web"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("ConflictException"), "{err}");
    let (code, out, _) = cli(&["status", "web"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("aborted") && out.contains("found a bug"), "{out}");
    proc.wait_for(&["Rollout advanced"]).await; // the driver logs its transitions
    assert_eq!(proc.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_declared_in_the_file_starts_on_reload_once_per_declaration() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm, 0.0, 2).await);
    let plain = config(&p, &s, "");
    let edge = Edge::start(&plain).await;
    let admin = edge.handle.admin_addr;
    let declared = |bake: &str| {
        format!(
            "{plain}[distribution.rollout]\nat_end = \"disable\"\nsteps = [{{ weight = 0.05, bake = \"{bake}\" }}]\n\
             [distribution.rollout.guards.error_rate]\nmin_requests = 60\n"
        )
    };
    // Declared before its policy exists: it waits, and starts once the policy is made.
    edge.reload(&declared("10m")).await.unwrap();
    assert_eq!(call(admin, "GET", "/web", Value::Null).await.0, 404);
    let (id, _) = create_policy(admin, &policy_xml()).await;
    let started = Instant::now();
    let first = loop {
        match call(admin, "GET", "/web", Value::Null).await {
            (200, r) => break r,
            (404, _) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("the declared rollout did not start once its policy was made: {other:?}"),
        }
    };
    assert_eq!(first["declared"].as_str().map(str::len), Some(64), "{first}");
    assert_eq!((first["state"].as_str(), first["weight"].as_f64()), (Some("running"), Some(0.05)));
    assert_eq!(first["spec"]["guards"]["error_rate"]["min_requests"], 60);
    assert_eq!(policy(admin, &id).await.0, 0.05);
    // The same file again: the same rollout.
    edge.reload(&declared("10m")).await.unwrap();
    assert_eq!(rollout(admin).await["id"], first["id"]);
    // A changed declaration while the rollout runs: refused, positioned, and nothing changes.
    let e = edge.reload(&declared("20m")).await.unwrap_err();
    assert!(
        e.contains("edgesplit.toml:")
            && e.contains("[distribution.rollout] distribution `web` has a running rollout (step 1 of 1)"),
        "{e}"
    );
    assert!(e.contains("abort it first"), "{e}");
    assert_eq!(rollout(admin).await["id"], first["id"]);
    // Aborted: an unchanged file does not start it again; a changed one does.
    assert_eq!(call(admin, "POST", "/web/abort", Value::Null).await.0, 200);
    edge.reload(&declared("10m")).await.unwrap();
    assert_eq!(rollout(admin).await["state"], "aborted");
    edge.reload(&declared("1s")).await.unwrap();
    let second = rollout(admin).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["state"], "running");
    // With traffic it bakes and finishes, and `at_end = "disable"` disables the policy.
    let load = Load::start(edge.addr("http"), 8);
    let done = until(admin, Duration::from_secs(60), "finish", |r| r["state"] == "finished").await;
    load.stop().await;
    assert_eq!(done["weight"].as_f64(), Some(0.0));
    let (weight, enabled, _) = policy(admin, &id).await;
    assert!(!enabled, "the policy is disabled at the end ({weight})");
}

#[test]
fn a_declared_rollout_that_contradicts_the_file_is_a_positioned_config_error() {
    let base = "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[distribution]]\nid = \"web\"\ndomains = [\"*\"]\n\
                [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n";
    let staging = "[distribution.staging]\norigins = [\"http://127.0.0.1:2\"]\n";
    let cases = [
        (
            format!("{base}[distribution.rollout]\nsteps = [{{ weight = 0.05, bake = \"1m\" }}]\n"),
            "f.toml:8:1: [distribution.rollout] needs a [distribution.staging] pool",
        ),
        (
            format!(
                "{base}{staging}[distribution.policy]\ntype = \"SingleWeight\"\nweight = 0.1\n[distribution.rollout]\nsteps = [{{ weight = 0.05, bake = \"1m\" }}]\n"
            ),
            "[distribution.rollout] drives a policy made through the CloudFront API",
        ),
        (
            format!("{base}{staging}[distribution.rollout]\nsteps = [{{ weight = 0.5, bake = \"1m\" }}]\n"),
            "steps[1].weight: 0.5 is above 0.15",
        ),
        (
            format!("{base}{staging}[distribution.rollout]\nsteps = [{{ weight = 0.05, bake = \"soon\" }}]\n"),
            "`soon` is not a duration",
        ),
        (
            format!(
                "{base}{staging}[distribution.rollout]\nsteps = [{{ weight = 0.05, bake = \"1m\" }}]\ncolour = 1\n"
            ),
            "unknown field `colour`",
        ),
    ];
    for (text, want) in cases {
        let e = edgesplit::config::parse(&text, "f.toml", std::path::Path::new(".")).unwrap_err().to_string();
        assert!(e.contains("f.toml:") && e.contains(want), "{want}: {e}");
    }
}

/// A distribution routed by an Evidently feature: the rollout drives the feature's running launch, past
/// 15 % up to 100 %, and a rollback stops the launch as CANCELLED with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_routed_distribution_ramps_its_launch_to_100_percent_and_a_rollback_cancels_it() {
    let (pm, sm) = (Arc::new(AtomicU8::new(HEALTHY)), Arc::new(AtomicU8::new(HEALTHY)));
    let (p, s) = (origin("primary", pm, 0.0, 1).await, origin("staging", sm.clone(), 0.0, 2).await);
    let resources = r#"
[distribution.evidently]
project = "shop"
route = { feature = "canary", staging_variations = ["on"] }

[[evidently.projects]]
name = "shop"
[[evidently.features]]
project = "shop"
name = "canary"
defaultVariation = "off"
variations = [{ name = "off", value = { boolValue = false } }, { name = "on", value = { boolValue = true } }]
[[evidently.launches]]
project = "shop"
name = "ramp"
status = "RUNNING"
groups = [{ name = "stay", feature = "canary", variation = "off" }, { name = "go", feature = "canary", variation = "on" }]
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = { stay = 100000, go = 0 }
"#;
    let edge = Edge::start(&config(&p, &s, resources)).await;
    let (admin, proxy) = (edge.handle.admin_addr, edge.addr("http"));
    let spec = json!({"steps": [{"weight": 0.2, "bake": "1s"}, {"weight": 0.5, "bake": "1s"}, {"weight": 1.0, "bake": "1s"}],
                      "guards": quick_guards()});
    let (status, r) = call(admin, "PUT", "/web", spec.clone()).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!((r["launch"].as_str(), r["weight"].as_f64()), (Some("shop/ramp"), Some(0.2)));
    let status = std::process::Command::new(BIN)
        .args(["rollout", "--endpoint", &format!("http://{admin}"), "status", "web"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("launch shop/ramp") && !out.contains("policy "), "{out}");
    let weights = |l: &Value| {
        l["launch"]["scheduledSplitsDefinition"]["steps"].as_array().unwrap().last().unwrap()["groupWeights"].clone()
    };
    assert_eq!(weights(&get_json(admin, "/projects/shop/launches/ramp").await), json!({"go": 20000, "stay": 80000}));
    let load = Load::start(proxy, 8);
    let r = until(admin, Duration::from_secs(60), "finish", |r| r["state"] == "finished").await;
    assert_eq!(events(&r), ["started", "advanced", "advanced", "finished"]);
    let l = get_json(admin, "/projects/shop/launches/ramp").await;
    assert_eq!((weights(&l), l["launch"]["status"].as_str()), (json!({"go": 100000, "stay": 0}), Some("RUNNING")));
    // Every request on staging now; then a new rollout from 20 %, and staging breaks at once.
    assert_eq!(visit(proxy, None).await.0, "staging");
    assert_eq!(call(admin, "PUT", "/web", spec).await.0, 201);
    sm.store(FAILING, Relaxed);
    let r = until(admin, Duration::from_secs(30), "rollback", |r| r["state"] == "rolled_back").await;
    load.stop().await;
    let l = get_json(admin, "/projects/shop/launches/ramp").await;
    assert_eq!(l["launch"]["status"], "CANCELLED", "{l}");
    let reason = l["launch"]["statusReason"].as_str().unwrap();
    assert!(reason.starts_with("edgesplit rollout of distribution web: step 1: error rate"), "{reason}");
    assert!(r["reason"].as_str().unwrap().starts_with("step 1: error rate"));
    for _ in 0..20 {
        assert_eq!(visit(proxy, None).await.0, "primary", "the stopped launch serves the default variation, primary");
    }
}

async fn get_json(admin: SocketAddr, path: &str) -> Value {
    let (status, _, text) = api(admin, "GET", path, "", &[]).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}
