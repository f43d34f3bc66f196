//! No sleeping or slow work under the control-plane lock (issue 14, item 9). PutProjectEvents waited for
//! the exposure log (up to 500 ms) holding the plane's lock; GetExperimentResults read the store and
//! computed its statistics holding it, on an async worker. Either stalled every admin write and every
//! reload, and the second also every other task of its worker.
//!
//! In process, on a [`Plane`] whose exposure log has no drain task: an exposure left in its queue makes
//! PutProjectEvents' wait last its whole 500 ms, every time, so the test controls how long the call is
//! in progress instead of hoping a race goes its way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use edgesplit::admin::evidently::{EvCall, handle};
use edgesplit::evidently::events::{BUCKET_SECS, result_key};
use edgesplit::evidently::exposure::{Exposure, RuleKind};
use edgesplit::plane::Plane;
use support::simple_config;

fn config() -> edgesplit::config::Config {
    let text = simple_config("http://127.0.0.1:1", None, "");
    edgesplit::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap()
}

/// A plane as `run` builds it, minus the exposure log's drain task (which `app::start` spawns).
fn plane() -> Arc<Plane> {
    Arc::new(Plane::new(config()).unwrap())
}

/// One Evidently call, as the admin listener makes it: status and JSON body.
async fn call(plane: &Arc<Plane>, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let segments = path.trim_start_matches('/').split('/').map(str::to_string).collect();
    let call = EvCall { method, segments, query: Vec::new(), body: Bytes::from(body.to_string()) };
    let resp = handle(plane, call).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn ok(plane: &Arc<Plane>, method: Method, path: &str, body: Value) -> Value {
    let (status, v) = call(plane, method, path, body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    v
}

/// An admin write and a reload, each finished within `within` of `since`; how long each took.
async fn write_and_reload(plane: &Arc<Plane>, name: &str) -> (Duration, Duration) {
    let started = Instant::now();
    ok(plane, Method::POST, "/projects", json!({ "name": name })).await;
    let write = started.elapsed();
    let started = Instant::now();
    let p = plane.clone();
    tokio::task::spawn_blocking(move || p.apply_config(config())).await.unwrap().unwrap();
    (write, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_project_events_waits_for_the_exposure_log_without_holding_up_writes_or_reloads() {
    let plane = plane();
    ok(&plane, Method::POST, "/projects", json!({ "name": "shop" })).await;
    // Queued, and never drained: the events' wait for the log lasts its whole 500 ms.
    plane.exposures.record(Exposure {
        project: "shop".into(),
        kind: RuleKind::Experiment,
        rule: "x".into(),
        arm: "a".into(),
        entity: "u".into(),
        at_ms: 1,
    });
    let started = Instant::now();
    let events = {
        let plane = plane.clone();
        let data = json!({ "userDetails": { "userId": "u" } }).to_string();
        let body = json!({ "events": [{ "timestamp": 1, "type": "aws.evidently.custom", "data": data }] });
        tokio::spawn(async move { call(&plane, Method::POST, "/events/projects/shop", body).await })
    };
    // Well inside the wait (the call reaches it in microseconds).
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (write, reload) = write_and_reload(&plane, "other").await;
    let done = started.elapsed();
    // The events cannot have finished before 500 ms: both went through while they were waiting. Before
    // the fix both waited for the lock, so `done` was past 500 ms whatever the machine's speed.
    assert!(done < Duration::from_millis(500), "write {write:?} and reload {reload:?} waited for the events");
    let (status, out) = events.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["failedEventCount"], 0, "{out}");
    assert!(started.elapsed() >= Duration::from_millis(500), "the events did not wait for the log");
}

/// Timestamps the results call computes (the API allows 100,800, which takes about 8 s in a debug build):
/// long enough a computation that a write and a reload fit in it a hundred times over.
const TIMESTAMPS: i64 = 10_000;

#[tokio::test(flavor = "current_thread")]
async fn experiment_results_are_computed_off_the_async_thread_and_outside_the_lock() {
    // One async thread: before the fix the whole computation ran on it, within the task's first poll,
    // holding the plane's lock, so nothing else (the write below, a probe, a reload) could start until
    // it was over.
    let plane = plane();
    ok(&plane, Method::POST, "/projects", json!({ "name": "shop" })).await;
    let variations: Vec<Value> =
        (0..5).map(|i| json!({ "name": format!("v{i}"), "value": { "longValue": i } })).collect();
    let feature = json!({ "name": "price", "variations": variations });
    ok(&plane, Method::POST, "/projects/shop/features", feature).await;
    let treatments: Vec<Value> =
        (0..5).map(|i| json!({ "name": format!("t{i}"), "feature": "price", "variation": format!("v{i}") })).collect();
    let weights: serde_json::Map<String, Value> = (0..5).map(|i| (format!("t{i}"), json!(20_000))).collect();
    let experiment = json!({
        "name": "pricing",
        "treatments": treatments,
        "metricGoals": [{ "metricDefinition": { "name": "spend", "entityIdKey": "user", "valueKey": "spend" } }],
        "onlineAbConfig": { "controlTreatmentName": "t0", "treatmentWeights": weights },
    });
    ok(&plane, Method::POST, "/projects/shop/experiments", experiment).await;

    // Every treatment has values from the first bucket on, so each five-minute timestamp carries every
    // statistic of every treatment.
    let start = 1_600_000_200 / BUCKET_SECS * BUCKET_SECS;
    let mut adds = Vec::new();
    for i in 0..5 {
        let arm = format!("t{i}");
        for (bucket, x) in [(start, 1.0), (start, 2.0 + i as f64), (start + 600, 3.0), (start + 900_000, 4.0)] {
            adds.push((result_key("shop", RuleKind::Experiment, "pricing", "spend", &arm, bucket), x));
        }
    }
    plane.store.add_results(&adds).unwrap();
    let body = json!({
        "metricNames": ["spend"],
        "treatmentNames": ["t0", "t1", "t2", "t3", "t4"],
        "resultStats": ["BaseStat", "TreatmentEffect", "ConfidenceInterval", "PValue"],
        "period": 300,
        "startTime": start,
        "endTime": start + TIMESTAMPS * 300,
    });

    let started = Instant::now();
    let results = {
        let plane = plane.clone();
        tokio::spawn(
            async move { call(&plane, Method::POST, "/projects/shop/experiments/pricing/results", body).await },
        )
    };
    // Lets the results task run: before the fix, to its end.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!results.is_finished(), "the results were computed on the async thread, in one go");
    let (write, reload) = write_and_reload(&plane, "other").await;
    assert!(!results.is_finished(), "write {write:?} and reload {reload:?} waited for the results");

    let (status, out) = results.await.unwrap();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["timestamps"].as_array().unwrap().len(), TIMESTAMPS as usize);
    // control: Mean; t1..t4: Mean, TreatmentEffect, two bounds, PValue.
    assert_eq!(out["resultsData"].as_array().unwrap().len(), 1 + 4 * 5);
    // Cumulative from the start: {1, 2} until the bucket at +600 s adds 3, and the one at +900,000 s adds 4.
    let data = out["resultsData"].as_array().unwrap();
    let mean = data.iter().find(|d| d["treatmentName"] == "t0" && d["resultStat"] == "Mean").unwrap();
    let mean: Vec<f64> = mean["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let k = (900_000 / 300) as usize;
    assert_eq!((mean[0], mean[1], mean[2], mean[k - 1], mean[k], mean[mean.len() - 1]), (1.5, 1.5, 2.0, 2.0, 2.5, 2.5));
    eprintln!("results: {took:?} for {TIMESTAMPS} timestamps; meanwhile a write took {write:?}, a reload {reload:?}");
}
