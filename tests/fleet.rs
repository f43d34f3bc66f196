//! A fleet: several edgesplit processes on one PostgreSQL database (issue 16). Each test starts a
//! throwaway cluster from Debian's package (`support::postgres`), real origins, and the real binary
//! several times over, and drives the admin APIs over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cloudfront::{CF, api, create_policy, element, header_policy};
use support::postgres::Postgres;
use support::process::Proc;
use support::*;

const STAGING: &str = "staging.web.test";

/// One instance of the fleet: the process, its proxy listener and admin addresses.
struct Instance {
    _proc: Proc,
    http: SocketAddr,
    admin: SocketAddr,
}

/// The config of an instance of the fleet on `db`, with `store` appended to its `[store]` table.
fn fleet_config(db: &Postgres, primary: &str, staging: &str, store: &str) -> String {
    instance_config(primary, staging, &format!("[store]\nbackend = \"postgres\"\nurl = \"{}\"\n{store}", db.url()))
}

/// The config of an instance with the distribution `web`, on the store `store` (TOML).
fn instance_config(primary: &str, staging: &str, store: &str) -> String {
    simple_config(primary, Some(staging), store)
        .replace("level = \"warn\"", "level = \"info\"")
        .replace("domains = [\"*\"]\n", &format!("domains = [\"*\"]\nstaging_dns_name = \"{STAGING}\"\n"))
}

/// Writes a config for `db` and starts `n` instances on it.
async fn fleet(dir: &std::path::Path, db: &Postgres, primary: &str, staging: &str, n: usize) -> Vec<Instance> {
    fleet_declaring(dir, db, primary, staging, n, "").await
}

/// [`fleet`], with `declared` (TOML) appended to the config; every instance is started before any is
/// waited for.
async fn fleet_declaring(
    dir: &std::path::Path,
    db: &Postgres,
    primary: &str,
    staging: &str,
    n: usize,
    declared: &str,
) -> Vec<Instance> {
    let config = fleet_config(db, primary, staging, declared);
    let path: PathBuf = dir.join("edgesplit.toml");
    std::fs::write(&path, config).unwrap();
    fleet_from(&path, n).await
}

/// Which pool answers a request carrying the staging header through `proxy`.
async fn pool_for_header(proxy: SocketAddr, value: &str) -> String {
    get_with(&format!("http://{proxy}/"), &[("aws-cf-cd-test", value)]).await.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_is_served_by_every_other_within_a_second() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 3).await;
    for i in &fleet {
        assert!(pool_for_header(i.http, "on").await.contains("primary"));
    }
    let written = Instant::now();
    create_policy(fleet[0].admin, &header_policy(STAGING, "on")).await;
    let mut seen = Vec::new();
    for i in &fleet[1..] {
        loop {
            if pool_for_header(i.http, "on").await.contains("staging") {
                seen.push(written.elapsed());
                break;
            }
            assert!(written.elapsed() < Duration::from_secs(1), "not seen within 1 s through {}", i.http);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!("propagation to the other instances: {seen:?}");
    // The Evidently API too: a project made on B is listed by C.
    let (status, _) = ev(fleet[1].admin, "POST", "/projects", json!({ "name": "shop" })).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = ev(fleet[2].admin, "GET", "/projects/shop", json!({})).await;
        if status == 200 {
            assert_eq!(body["project"]["name"], "shop");
            break;
        }
        assert!(Instant::now() < deadline, "project not seen on C within 1 s: {body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_updating_one_policy_with_one_etag_one_wins_the_other_gets_precondition_failed() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 2).await;
    let (id, mut etag) = create_policy(fleet[0].admin, &header_policy(STAGING, "v0")).await;
    for round in 1..=20 {
        let xml = |who: usize| header_policy(STAGING, &format!("r{round}-{who}"));
        let path = format!("{CF}/{id}");
        let (x0, x1) = (xml(0), xml(1));
        let if_match = [("if-match", etag.as_str())];
        let (a, b) = tokio::join!(
            api(fleet[0].admin, "PUT", &path, &x0, &if_match),
            api(fleet[1].admin, "PUT", &path, &x1, &if_match),
        );
        let statuses = [a.0, b.0];
        let won: Vec<_> = [&a, &b].into_iter().filter(|r| r.0 == 200).collect();
        assert_eq!(won.len(), 1, "round {round}: {statuses:?}\n{}\n{}", a.2, b.2);
        let lost = [&a, &b].into_iter().find(|r| r.0 != 200).unwrap();
        assert_eq!(lost.0, 412, "round {round}: {}", lost.2);
        assert!(lost.2.contains("PreconditionFailed"), "{}", lost.2);
        etag = won[0].1["etag"].to_str().unwrap().to_string();
        // Both instances agree on the winner, in their API and at once in their proxies (the loser caught
        // up with the winner's write before it refused its own).
        let who = if a.0 == 200 { 0 } else { 1 };
        for i in &fleet {
            let (status, _, body) = api(i.admin, "GET", &format!("{CF}/{id}"), "", &[]).await;
            assert_eq!(status, 200);
            assert_eq!(element(&body, "Value"), format!("r{round}-{who}"));
            let routed = pool_for_header(i.http, &format!("r{round}-{who}")).await;
            assert!(routed.contains("staging"), "round {round}: {} does not route by the winner yet", i.http);
        }
    }
}

/// Read-your-writes across a load balancer: what one instance just committed is read, updated and deleted
/// through another at once, with no wait for the other to follow. (Without the read's catch-up, B
/// answers 404 in some round of most runs: A's notification takes a few milliseconds to be followed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_written_through_one_instance_is_read_updated_and_deleted_through_another_at_once() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 2).await;
    let (a, b) = (fleet[0].admin, fleet[1].admin);
    for round in 0..20 {
        // A write through B on what A just made (B's refusal would be stale), then a read through A of
        // what B just made.
        let (id, etag) = create_policy(a, &header_policy(STAGING, &format!("c{round}"))).await;
        let path = format!("{CF}/{id}");
        let xml = header_policy(STAGING, &format!("u{round}"));
        let (status, headers, body) = api(b, "PUT", &path, &xml, &[("if-match", etag.as_str())]).await;
        assert_eq!(status, 200, "round {round}: PUT through B: {body}");
        let etag = headers["etag"].to_str().unwrap().to_string();
        let (status, headers, body) = api(a, "GET", &path, "", &[]).await;
        assert_eq!((status, headers["etag"].to_str().unwrap()), (200, etag.as_str()), "round {round}: {body}");
        assert_eq!(element(&body, "Value"), format!("u{round}"));
        let (status, _, body) = api(b, "DELETE", &path, "", &[("if-match", etag.as_str())]).await;
        assert_eq!(status, 204, "round {round}: DELETE through B: {body}");

        let project = format!("p{round}");
        assert_eq!(ev(a, "POST", "/projects", json!({ "name": project })).await.0, 200);
        let feature = json!({ "name": "f", "variations": [{ "name": "on", "value": { "boolValue": true } }] });
        let (status, body) = ev(b, "POST", &format!("/projects/{project}/features"), feature).await;
        assert_eq!(status, 200, "round {round}: CreateFeature through B: {body}");
        let (status, body) = ev(a, "GET", &format!("/projects/{project}/features/f"), json!({})).await;
        assert_eq!(status, 200, "round {round}: GetFeature through A: {body}");
    }
    // GetExperimentResults is a POST that reads: through B, at once, on an experiment made through A.
    let feature = json!({ "name": "g", "variations": [
        { "name": "a", "value": { "stringValue": "a" } },
        { "name": "b", "value": { "stringValue": "b" } },
    ]});
    assert_eq!(ev(a, "POST", "/projects/p0/features", feature).await.0, 200);
    let ask = json!({ "metricNames": ["m"], "treatmentNames": ["control"] });
    for round in 0..20 {
        let experiment = json!({
            "name": format!("x{round}"),
            "treatments": [
                { "name": "control", "feature": "g", "variation": "a" },
                { "name": "treat", "feature": "g", "variation": "b" },
            ],
            "metricGoals": [{ "metricDefinition": { "name": "m", "entityIdKey": "user", "valueKey": "v" } }],
        });
        let (status, body) = ev(a, "POST", "/projects/p0/experiments", experiment).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = ev(b, "POST", &format!("/projects/p0/experiments/x{round}/results"), ask.clone()).await;
        assert_eq!(status, 200, "round {round}: GetExperimentResults through B: {body}");
    }
}

/// In process, two planes on one database, neither following the other (no listener): B's copy stays
/// behind A's write, every time. A write that B's copy refuses is checked against the store and applied
/// again on its state; a refusal the store's state bears out stays one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_on_a_stale_copy_is_applied_again_on_the_stores_state() {
    use edgesplit::admin::evidently::{EvCall, handle};
    use edgesplit::plane::Plane;
    use http_body_util::BodyExt;
    let db = Postgres::start();
    let text = fleet_config(&db, "http://127.0.0.1:1", "http://127.0.0.1:2", "");
    let plane = || {
        let config = edgesplit::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap();
        std::sync::Arc::new(Plane::new(config).unwrap())
    };
    let (a, b) = (plane(), plane());
    let call = |plane: std::sync::Arc<Plane>, path: &str, body: Value| {
        let segments = path.trim_start_matches('/').split('/').map(str::to_string).collect();
        let call = EvCall { method: http::Method::POST, segments, query: Vec::new(), body: body.to_string().into() };
        async move {
            let resp = handle(&plane, call).await;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let feature = json!({ "name": "f", "variations": [{ "name": "on", "value": { "boolValue": true } }] });
    assert_eq!(call(a.clone(), "/projects", json!({ "name": "shop" })).await.0, 200);
    let (status, body) = call(b.clone(), "/projects/shop/features", feature.clone()).await;
    assert_eq!(status, 200, "CreateFeature on B, behind A's project: {body}");
    // A is behind B now: its copy takes the name, the store's state refuses it.
    let (status, body) = call(a.clone(), "/projects/shop/features", feature).await;
    assert_eq!((status, body["__type"].as_str()), (409, Some("ConflictException")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stickiness_cookie_from_one_instance_is_honoured_by_another() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 2).await;
    let weight = "<ContinuousDeploymentPolicyConfig xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
         <StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>staging.web.test</DnsName></Items></StagingDistributionDnsNames>\
         <Enabled>true</Enabled><TrafficConfig><Type>SingleWeight</Type><SingleWeightConfig><Weight>0.15</Weight>\
         <SessionStickinessConfig><IdleTTL>300</IdleTTL><MaximumTTL>600</MaximumTTL></SessionStickinessConfig>\
         </SingleWeightConfig></TrafficConfig></ContinuousDeploymentPolicyConfig>";
    let (id, _) = create_policy(fleet[0].admin, weight).await;
    // B has taken the policy (its snapshot is published with its state).
    let deadline = Instant::now() + Duration::from_secs(1);
    while api(fleet[1].admin, "GET", &format!("{CF}/{id}"), "", &[]).await.0 != 200 {
        assert!(Instant::now() < deadline, "B did not take the policy within 1 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Sessions from A: find one pinned to staging and one to primary.
    let mut pinned = std::collections::BTreeMap::new();
    for _ in 0..400 {
        let (_, headers, body) = get(&format!("http://{}/", fleet[0].http)).await;
        let Some(cookie) = headers.get("set-cookie") else { continue };
        let cookie = cookie.to_str().unwrap().split(';').next().unwrap().to_string();
        pinned.entry(body.contains("staging")).or_insert(cookie);
        if pinned.len() == 2 {
            break;
        }
    }
    assert_eq!(pinned.len(), 2, "no session of each pool in 400 tries");
    // B honours them: every request with A's cookie goes where A pinned it.
    for (to_staging, cookie) in &pinned {
        for _ in 0..20 {
            let body = get_with(&format!("http://{}/", fleet[1].http), &[("cookie", cookie)]).await.2;
            assert_eq!(body.contains("staging"), *to_staging, "B moved a session A pinned ({cookie})");
        }
    }
}

async fn ev(admin: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, _, text) = api(admin, method, path, &body.to_string(), &[("content-type", "application/json")]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_the_fleet_keeps_proxying_refuses_writes_then_takes_them_again() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 2).await;
    let (id, etag) = create_policy(fleet[0].admin, &header_policy(STAGING, "on")).await;
    let proxies: Vec<SocketAddr> = fleet.iter().map(|i| i.http).collect();
    // Both instances route by the policy before the outage starts.
    for proxy in &proxies {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !pool_for_header(*proxy, "on").await.contains("staging") {
            assert!(Instant::now() < deadline, "{proxy} did not take the policy");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Traffic through both instances for the whole outage, counting what fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for proxy in proxies.clone() {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, _, body) = get_with(&format!("http://{proxy}/"), &[("aws-cf-cd-test", "on")]).await;
                if status == 200 && body.contains("staging") {
                    ok += 1
                } else {
                    failed.push(format!("{status} {}", body.chars().take(200).collect::<String>()));
                }
            }
            (ok, failed)
        }));
    }
    // And wrk on both, at full speed, until the database is back.
    let wrks: Vec<Wrk> = proxies.iter().map(|p| Wrk::start(*p, &[("aws-cf-cd-test", "on")])).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    db.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Writes are refused in each protocol's shape, quickly (bounded by the store's timeouts).
    let started = Instant::now();
    let path = format!("{CF}/{id}");
    let (status, _, body) =
        api(fleet[1].admin, "PUT", &path, &header_policy(STAGING, "on"), &[("if-match", &etag)]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
    let (status, body) = ev(fleet[0].admin, "POST", "/projects", json!({ "name": "during" })).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["__type"], "ServiceUnavailableException");
    assert!(started.elapsed() < Duration::from_secs(15), "refusals took {:?}", started.elapsed());
    // Still ready, and saying the control plane is degraded.
    let (status, _, _) = api(fleet[0].admin, "GET", "/readyz", "", &[]).await;
    assert_eq!(status, 200);
    let (_, _, metrics) = api(fleet[0].admin, "GET", "/metrics", "", &[]).await;
    assert!(metrics.contains("edgesplit_store_up 0"), "{metrics}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.restart();
    // Writes are taken again once the pool reconnects.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = ev(fleet[0].admin, "POST", "/projects", json!({ "name": "after" })).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes still refused after the restart: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the other instance sees that write.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ev(fleet[1].admin, "GET", "/projects/after", json!({})).await.0 != 200 {
        assert!(Instant::now() < deadline, "B did not catch up after the outage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (proxy, wrk) in proxies.iter().zip(wrks) {
        let (requests, report) = wrk.finish();
        // Enough requests to span the outage, not a speed: the debug build makes 1,300 to 1,800 here
        // alone, and made 843 in a CI run beside the file's other tests (each with its own cluster).
        assert!(requests > 200, "{proxy}: too little wrk traffic to tell: {report}");
        assert!(!report.contains("Non-2xx") && !report.contains("Socket errors"), "{proxy}: {report}");
        eprintln!("wrk through {proxy} across the outage: {requests} requests, none failed");
    }
    for l in load {
        let (ok, failed) = l.await.unwrap();
        // A count that spans the outage, as for wrk above (about 200 here in a debug build).
        assert!(ok > 20, "too little traffic to tell: {ok}");
        assert!(
            failed.is_empty(),
            "{} proxied requests failed during the outage ({ok} fine): {failed:?}",
            failed.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_write_burst_loses_nothing_that_was_acknowledged() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let mut fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 2).await;
    let admin = fleet[0].admin;
    let burst = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for n in 0..10_000 {
            let name = format!("p{n}");
            let body = json!({ "name": name, "pattern": "{\"a\":[1]}" }).to_string();
            match tokio::time::timeout(Duration::from_secs(5), try_post(admin, "/segments", body)).await {
                Ok(Some(200)) => acknowledged.push(name),
                _ => break,
            }
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    fleet[0]._proc.kill9();
    let acknowledged = burst.await.unwrap();
    assert!(acknowledged.len() > 5, "the burst was too short to tell: {}", acknowledged.len());
    // Every acknowledged segment is there, through the other instance.
    let deadline = Instant::now() + Duration::from_secs(2);
    for name in &acknowledged {
        loop {
            let (status, body) = ev(fleet[1].admin, "GET", &format!("/segments/{name}"), json!({})).await;
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "acknowledged {name} is lost: {status} {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("{} writes acknowledged before kill -9, all found", acknowledged.len());
}

/// A POST that may fail (the instance killed under it): its status, or `None`.
async fn try_post(admin: SocketAddr, path: &str, body: String) -> Option<u16> {
    let req = http::Request::post(format!("http://{admin}{path}")).body(full(body)).unwrap();
    let resp = http1_client().request(req).await.ok()?;
    Some(resp.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_to_two_instances_count_in_results_read_on_a_third() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fleet = fleet(dir.path(), &db, &primary.url(), &staging.url(), 3).await;
    let (a, b, c) = (fleet[0].admin, fleet[1].admin, fleet[2].admin);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (path, body) in [
        ("/projects", json!({ "name": "p" })),
        (
            "/projects/p/features",
            json!({ "name": "f", "variations": [
                { "name": "a", "value": { "stringValue": "a" } },
                { "name": "b", "value": { "stringValue": "b" } },
            ]}),
        ),
        (
            "/projects/p/experiments",
            json!({
                "name": "x",
                "treatments": [
                    { "name": "control", "feature": "f", "variation": "a" },
                    { "name": "treat", "feature": "f", "variation": "b" },
                ],
                "metricGoals": [{ "metricDefinition": { "name": "m", "entityIdKey": "user", "valueKey": "v" } }],
                "samplingRate": 100_000,
            }),
        ),
        ("/projects/p/experiments/x/start", json!({ "analysisCompleteTime": now + 3600 })),
    ] {
        let (status, body) = ev(a, "POST", path, body).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // A evaluates 300 entities; B and C must know the experiment before their events arrive.
    let deadline = Instant::now() + Duration::from_secs(2);
    for i in [b, c] {
        while ev(i, "GET", "/projects/p/experiments/x", json!({})).await.1["experiment"]["status"] != "RUNNING" {
            assert!(Instant::now() < deadline, "the experiment did not reach every instance");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut arms = std::collections::BTreeMap::<String, Vec<String>>::new();
    for n in 0..300 {
        let user = format!("u{n}");
        let (status, body) = ev(a, "POST", "/projects/p/evaluations/f", json!({ "entityId": user })).await;
        assert_eq!(status, 200, "{body}");
        let details: Value = serde_json::from_str(body["details"].as_str().unwrap()).unwrap();
        arms.entry(details["treatment"].as_str().unwrap().to_string()).or_default().push(user);
    }
    assert!(
        arms.values().all(|users| users.len() >= 100),
        "{:?}",
        arms.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    // A shares its exposures within ~100 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Each entity's event goes to C or to A, alternately: value 1 for control, 3 for treat. Stamped after
    // every evaluation (an event before its entity's evaluation is not attributed).
    let sent_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let mut batches: [Vec<Value>; 2] = Default::default();
    for (arm, users) in &arms {
        let v = if arm == "control" { 1 } else { 3 };
        for (k, user) in users.iter().enumerate() {
            let data = json!({ "user": user, "v": v }).to_string();
            batches[k % 2].push(json!({ "timestamp": sent_at, "type": "aws.evidently.custom", "data": data }));
        }
    }
    for (instance, events) in [(c, &batches[0]), (a, &batches[1])] {
        for chunk in events.chunks(50) {
            let (status, body) = ev(instance, "POST", "/events/projects/p", json!({ "events": chunk })).await;
            assert_eq!((status, &body["failedEventCount"]), (200, &json!(0)), "{body}");
        }
    }
    // B reads fleet-wide results: every treatment has its 100+ events (one instance's share would be
    // about half, under 100), and A, B and C answer alike.
    let ask = json!({ "metricNames": ["m"], "treatmentNames": ["control", "treat"], "startTime": now - 60, "endTime": sent_at + 60 });
    let (status, on_b) = ev(b, "POST", "/projects/p/experiments/x/results", ask.clone()).await;
    assert_eq!(status, 200, "{on_b}");
    assert!(!on_b["details"].as_str().unwrap_or("").contains("Not enough events"), "{on_b}");
    let means: Vec<(String, f64)> = on_b["resultsData"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resultStat"] == "Mean")
        .map(|r| (r["treatmentName"].as_str().unwrap().to_string(), r["values"][0].as_f64().unwrap()))
        .collect();
    assert_eq!(means, [("control".to_string(), 1.0), ("treat".to_string(), 3.0)]);
    for other in [a, c] {
        assert_eq!(ev(other, "POST", "/projects/p/experiments/x/results", ask.clone()).await.1, on_b);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_one_file_all_start_and_apply_it_once() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let declared = "[[evidently.projects]]\nname = \"shop\"\n\
         [[evidently.features]]\nproject = \"shop\"\nname = \"checkout\"\n\
         variations = [{ name = \"old\", value = { stringValue = \"v1\" } }, { name = \"new\", value = { stringValue = \"v2\" } }]\n\
         [[evidently.launches]]\nproject = \"shop\"\nname = \"ramp\"\nstatus = \"RUNNING\"\n\
         groups = [{ name = \"a\", feature = \"checkout\", variation = \"old\" }, { name = \"b\", feature = \"checkout\", variation = \"new\" }]\n\
         [[evidently.launches.scheduledSplitsConfig.steps]]\nstartTime = 0\ngroupWeights = { a = 50000, b = 50000 }\n";
    // Every instance started at once (`fleet_declaring` spawns them all before waiting for any).
    let fleet = fleet_declaring(dir.path(), &db, &primary.url(), &staging.url(), 3, declared).await;
    for i in &fleet {
        let (status, body) = ev(i.admin, "GET", "/projects/shop/launches/ramp", json!({})).await;
        assert_eq!((status, body["launch"]["status"].as_str()), (200, Some("RUNNING")), "{body}");
    }
    assert_eq!(db.psql("SELECT count(*) FROM edgesplit_evidently WHERE key LIKE 'launch/%'").trim(), "1");
}

/// Waits until `file` exists and contains `needle` (the last-known-good copy is written just after the
/// change it holds).
async fn wait_for_file(file: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(file).is_ok_and(|t| t.contains(needle)) {
        assert!(Instant::now() < deadline, "{} never held {needle}", file.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_restarted_while_the_database_is_down_starts_from_its_last_known_good_copy() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let copy_dir = dir.path().join("copy");
    let store = format!("path = \"{}\"\nconnect_timeout = \"1s\"\n", copy_dir.display());
    let config = dir.path().join("a.toml");
    std::fs::write(&config, fleet_config(&db, &primary.url(), &staging.url(), &store)).unwrap();
    let mut proc = Proc::start(&config);
    let admin = proc.admin().await;
    let (id, _) = create_policy(admin, &header_policy(STAGING, "on")).await;
    let (status, body) = ev(admin, "POST", "/projects", json!({ "name": "kept" })).await;
    assert_eq!(status, 200, "{body}");
    let copy = copy_dir.join("last-known-good.json");
    wait_for_file(&copy, "project/kept").await;
    let held = std::fs::read_to_string(&copy).unwrap();
    assert!(held.contains(&id) && held.contains("\"cookie_key\""), "{held}");

    // A rolling restart during an outage: the database goes, the instance is killed and started again.
    db.stop();
    proc.kill9();
    let mut proc = Proc::start(&config);
    let (http, admin) = (proc.addr("http").await, proc.admin().await);
    assert!(proc.find(&["starting from the last-known-good copy"]).is_some(), "{}", proc.log());
    // It routes by the fleet's policy, answers reads from its state, is ready, and says it is degraded.
    assert!(pool_for_header(http, "on").await.contains("staging"));
    assert_eq!(api(admin, "GET", &format!("{CF}/{id}"), "", &[]).await.0, 200);
    assert_eq!(ev(admin, "GET", "/projects/kept", json!({})).await.0, 200);
    assert_eq!(api(admin, "GET", "/readyz", "", &[]).await.0, 200);
    let (_, _, metrics) = api(admin, "GET", "/metrics", "", &[]).await;
    assert!(metrics.contains("edgesplit_store_up 0"), "{metrics}");
    // Writes wait for the database.
    let (status, body) = ev(admin, "POST", "/projects", json!({ "name": "during" })).await;
    assert_eq!((status, body["__type"].as_str()), (503, Some("ServiceUnavailableException")), "{body}");

    // Without a copy, an instance cannot start on an unreachable database, and says why.
    let bare = dir.path().join("b.toml");
    let empty_dir = dir.path().join("empty");
    let store = format!("path = \"{}\"\nconnect_timeout = \"1s\"\n", empty_dir.display());
    std::fs::write(&bare, fleet_config(&db, &primary.url(), &staging.url(), &store)).unwrap();
    let out = std::process::Command::new(support::process::BIN).args(["run", "--config"]).arg(&bare).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no last-known-good copy at"), "{stderr}");

    // The database back: the instance reconnects, takes writes, and keeps what it had.
    db.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = ev(admin, "POST", "/projects", json!({ "name": "after" })).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes still refused after the restart: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ev(admin, "GET", "/projects/kept", json!({})).await.0, 200);
    assert!(pool_for_header(http, "on").await.contains("staging"));
    wait_for_file(&copy, "project/after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_from_redb_and_import_into_postgres_keeps_policies_resources_results_and_sessions() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    // A single instance on redb, with a sticky policy, a project and experiment results.
    let redb = dir.path().join("single.toml");
    let store = format!("[store]\npath = \"{}\"\n", dir.path().join("redb").display());
    let single = instance_config(&primary.url(), &staging.url(), &store);
    std::fs::write(&redb, single).unwrap();
    let mut proc = Proc::start(&redb);
    let (http, admin) = (proc.addr("http").await, proc.admin().await);
    let weight = "<ContinuousDeploymentPolicyConfig xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
         <StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>staging.web.test</DnsName></Items></StagingDistributionDnsNames>\
         <Enabled>true</Enabled><TrafficConfig><Type>SingleWeight</Type><SingleWeightConfig><Weight>0.15</Weight>\
         <SessionStickinessConfig><IdleTTL>300</IdleTTL><MaximumTTL>600</MaximumTTL></SessionStickinessConfig>\
         </SingleWeightConfig></TrafficConfig></ContinuousDeploymentPolicyConfig>";
    let (id, etag) = create_policy(admin, weight).await;
    assert_eq!(ev(admin, "POST", "/projects", json!({ "name": "moved" })).await.0, 200);
    let mut cookie = None;
    for _ in 0..400 {
        let (_, headers, body) = get(&format!("http://{http}/")).await;
        if body.contains("staging")
            && let Some(c) = headers.get("set-cookie")
        {
            cookie = Some(c.to_str().unwrap().split(';').next().unwrap().to_string());
            break;
        }
    }
    let cookie = cookie.expect("no session pinned to staging in 400 tries");
    assert_eq!(proc.stop().await, 0);
    let export = |config: &std::path::Path, out: &std::path::Path| {
        let o = std::process::Command::new(support::process::BIN)
            .args(["export", "--config"])
            .arg(config)
            .arg("--output")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let import = |config: &std::path::Path, file: &std::path::Path| {
        std::process::Command::new(support::process::BIN)
            .args(["import", "--config"])
            .arg(config)
            .arg(file)
            .output()
            .unwrap()
    };
    let dump = dir.path().join("state.json");
    let said = export(&redb, &dump);
    assert!(said.contains("exported 1 policies, 1 Evidently resources"), "{said}");
    // A results bucket too, as events would have made: results travel with the rest.
    let mut edited: Value = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    edited["results"]["moved/x/m/control/1"] = json!({ "n": 3, "sum": 6.0, "sum_sq": 14.0 });
    std::fs::write(&dump, serde_json::to_vec(&edited).unwrap()).unwrap();
    let fleet_toml = dir.path().join("fleet.toml");
    std::fs::write(&fleet_toml, fleet_config(&db, &primary.url(), &staging.url(), "")).unwrap();
    let o = import(&fleet_toml, &dump);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A second import is refused: the store is not empty any more.
    let o = import(&fleet_toml, &dump);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("import into an empty store"));
    // A file that is not a dump is refused with its reason.
    std::fs::write(dir.path().join("bad.json"), "{\"format\": 1}").unwrap();
    let o = import(&fleet_toml, &dir.path().join("bad.json"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an edgesplit state dump"));

    // The fleet serves what the single instance did: the policy with its ETag, the project, and the
    // session pinned to staging (the cookie key moved too).
    let fleet = fleet_from(&fleet_toml, 2).await;
    for i in &fleet {
        let (status, headers, _) = api(i.admin, "GET", &format!("{CF}/{id}"), "", &[]).await;
        assert_eq!((status, headers["etag"].to_str().unwrap()), (200, etag.as_str()));
        assert_eq!(ev(i.admin, "GET", "/projects/moved", json!({})).await.0, 200);
        for _ in 0..10 {
            let body = get_with(&format!("http://{}/", i.http), &[("cookie", &cookie)]).await.2;
            assert!(body.contains("staging"), "{} moved the imported session", i.http);
        }
    }
    // And an export of the fleet holds the same state as the single instance's.
    let again = dir.path().join("again.json");
    export(&fleet_toml, &again);
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap(),
        serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap(),
    );
    for table in ["policies", "evidently", "results"] {
        assert_eq!(a[table], b[table], "{table}");
    }
    assert_eq!(b["results"].as_object().unwrap().len(), 1);
    assert_eq!(a["meta"]["cookie_key"], b["meta"]["cookie_key"]);
}

/// Starts `n` instances on `config` (every one started before any is waited for).
async fn fleet_from(config: &std::path::Path, n: usize) -> Vec<Instance> {
    let procs: Vec<Proc> = (0..n).map(|_| Proc::start(config)).collect();
    let mut out = Vec::new();
    for mut proc in procs {
        let http = proc.addr("http").await;
        let admin = proc.admin().await;
        out.push(Instance { _proc: proc, http, admin });
    }
    out
}

/// wrk against one proxy listener until [`Wrk::finish`] (at most a minute): 1 thread, 4 connections.
struct Wrk(std::process::Child);

impl Wrk {
    fn start(proxy: SocketAddr, headers: &[(&str, &str)]) -> Wrk {
        let mut cmd = std::process::Command::new("wrk");
        cmd.args(["-t1", "-c4", "-d60s", "--latency"]);
        for (name, value) in headers {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        cmd.arg(format!("http://{proxy}/"));
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("wrk is needed (Debian package wrk; .ci/run installs it)");
        Wrk(child)
    }

    /// Stops wrk (SIGINT: it prints its report) and returns the requests it completed, and the report.
    fn finish(self) -> (u64, String) {
        let ok = std::process::Command::new("kill").args(["-INT", &self.0.id().to_string()]).status().unwrap();
        assert!(ok.success());
        let out = self.0.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let requests = report
            .lines()
            .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.parse().ok()))
            .unwrap_or_else(|| panic!("no request count in wrk's report: {report}"));
        (requests, report)
    }
}

/// The rollout through one instance's `/edgesplit/` API.
async fn rollout(admin: SocketAddr, method: &str, body: &str) -> (u16, Value) {
    let (status, _, text) = api(admin, method, "/edgesplit/rollouts/web", body, &[]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Which instance logged all of `needles` first, waiting at most 10 s.
async fn which_logged(fleet: &[Instance], needles: &[&str]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = fleet.iter().position(|i| i._proc.find(needles).is_some()) {
            return i;
        }
        let logs: Vec<String> = fleet.iter().map(|i| i._proc.log()).collect();
        assert!(Instant::now() < deadline, "no instance logged {needles:?}:\n{}", logs.join("\n---\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_drives_a_rollout_on_the_fleets_counts_and_another_takes_over_when_it_dies() {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let fast = "[timeouts]\nrollout_interval = \"100ms\"\n";
    let mut fleet = fleet_declaring(dir.path(), &db, &primary.url(), &staging.url(), 2, fast).await;
    create_policy(fleet[0].admin, &support::cloudfront::weight_policy(STAGING, 0.0, false)).await;
    let spec = json!({"steps": [{"weight": 0.05, "bake": "1s"}, {"weight": 0.1, "bake": "3s"}, {"weight": 0.15, "bake": "1s"}],
                      "guards": {"error_rate": {"min_requests": 60}, "latency": {"min_requests": 40}}});
    let (status, r) = rollout(fleet[0].admin, "PUT", &spec.to_string()).await;
    assert_eq!(status, 201, "{r}");
    let leader = which_logged(&fleet, &["This instance drives the fleet's rollouts"]).await;
    let other = 1 - leader;
    // Traffic through the other instance only: the leader advances on the fleet's counts, not its own.
    let wrk = Wrk::start(fleet[other].http, &[]);
    let step_2 = Instant::now();
    loop {
        let (_, r) = rollout(fleet[leader].admin, "GET", "").await;
        if r["step"] == 2 {
            let g = &r["guards"];
            assert!(g["staging"]["requests"].as_u64().unwrap_or(0) < 1_000_000, "{g}");
            break;
        }
        assert!(step_2.elapsed() < Duration::from_secs(30), "no step 2: {r:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The leader logs the step after it stores it, and its log is read by another thread: wait for it.
    which_logged(&fleet[leader..=leader], &["Rollout advanced"]).await;
    assert!(fleet[other]._proc.find(&["Rollout advanced"]).is_none(), "only the leader acts");
    // The leader dies mid-step; the other takes the lease over and finishes the rollout.
    fleet[leader]._proc.kill9();
    let killed = Instant::now();
    which_logged(&fleet[other..=other], &["This instance drives the fleet's rollouts"]).await;
    let took_over = killed.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let (_, r) = rollout(fleet[other].admin, "GET", "").await;
        if r["state"] == "finished" {
            break r;
        }
        assert!(Instant::now() < deadline, "not finished: {r:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (requests, _) = wrk.finish();
    let events: Vec<&str> = r["history"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["started", "advanced", "advanced", "finished"], "{r:#}");
    which_logged(&fleet[other..=other], &["Rollout finished"]).await;
    eprintln!("lease taken over {took_over:?} after kill -9; {requests} requests through the other instance");
    assert!(took_over < Duration::from_secs(10), "{took_over:?}");
}
