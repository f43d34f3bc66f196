//! Continuous deployment through the real proxy: policies written in the config file, the session
//! cookie on the wire, staging safety when staging refuses connections, and reload semantics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use http::{Request, StatusCode};
use support::*;

/// The config with a staging pool, a staging name and `policy` as `[distribution.policy]`.
fn config(primary: &str, staging: &str, policy: &str, extra: &str) -> String {
    simple_config(primary, Some(staging), extra)
        .replace("domains = [\"*\"]\n", "domains = [\"*\"]\nstaging_dns_name = \"staging.web.test\"\n")
        + &format!("\n[distribution.policy]\n{policy}\n")
}

fn side(headers: &http::HeaderMap) -> &str {
    headers["x-origin"].to_str().unwrap()
}

#[tokio::test]
async fn a_header_policy_written_in_the_file_routes_and_forwards_the_header() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let policy = "type = \"SingleHeader\"\nheader = \"aws-cf-cd-test\"\nvalue = \"blue\"";
    let edge = Edge::start(&config(&p.url(), &s.url(), policy, "")).await;
    let url = edge.url("http", "/");

    let (_, h, body) = get_with(&url, &[("aws-cf-cd-test", "blue")]).await;
    assert_eq!(side(&h), "staging");
    assert!(body.contains("aws-cf-cd-test: blue"), "the header reaches the origin:\n{body}");
    assert_eq!(side(&get_with(&url, &[("aws-cf-cd-test", "red")]).await.1), "primary");
    assert_eq!(side(&get_with(&url, &[]).await.1), "primary");
    let m = edge.metrics().await;
    assert!(m.contains("edgesplit_routing_decisions_total{distribution=\"web\",reason=\"header-match\"} 1"), "{m}");
    assert!(m.contains("edgesplit_routing_decisions_total{distribution=\"web\",reason=\"header-miss\"} 2"), "{m}");
    assert!(m.contains("edgesplit_requests_total{distribution=\"web\",target=\"staging\",status=\"2xx\"} 1"), "{m}");
}

#[tokio::test]
async fn sticky_sessions_on_the_wire() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let policy = "type = \"SingleWeight\"\nweight = 0.15\nidle_ttl = 300\nmaximum_ttl = 600";
    let edge =
        Edge::start(&config(&p.url(), &s.url(), policy, "[continuous_deployment]\ncache_control_private = true\n"))
            .await;
    let url = edge.url("http", "/");

    // Fresh viewers: a cookie each, for the side they drew; both sides appear.
    let mut cookies = std::collections::HashMap::new();
    for _ in 0..200 {
        let (_, h, _) = get_with(&url, &[]).await;
        let set = h["set-cookie"].to_str().unwrap().to_string();
        assert!(set.ends_with("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"), "{set}");
        assert_eq!(h["cache-control"], "private");
        let value = set.split(';').next().unwrap().strip_prefix("edgesplit-cd=").unwrap().to_string();
        let drawn = if value.starts_with("v1.s.") { "staging" } else { "primary" };
        assert_eq!(side(&h), drawn);
        cookies.entry(drawn).or_insert(value);
    }
    assert_eq!(cookies.len(), 2, "200 draws at 15 % gave only one side");

    // Replays stay on their side; the origin never sees edgesplit's cookie, but sees the others.
    for (want, value) in &cookies {
        for _ in 0..10 {
            let (_, h, body) = get_with(&url, &[("cookie", &format!("a=1; edgesplit-cd={value}; b=2"))]).await;
            assert_eq!(side(&h), *want);
            assert!(body.contains("cookie: a=1; b=2\n"), "{body}");
            assert!(!body.contains("edgesplit-cd"), "{body}");
        }
    }
}

/// D3's refresh granularity: a replayed cookie younger than `cookie_refresh` is honoured without a
/// `Set-Cookie` (no HMAC, ~100 bytes less per response); an older one comes back with `last seen` moved.
#[tokio::test]
async fn a_session_cookie_is_re_issued_only_past_the_refresh_granularity() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let policy = "type = \"SingleWeight\"\nweight = 0.15\nidle_ttl = 300\nmaximum_ttl = 600";
    // 2 s: a replay right after the first request is at most one second boundary later, so never due.
    let extra = "[continuous_deployment]\ncookie_refresh = \"2s\"\ncache_control_private = true\n";
    let edge = Edge::start(&config(&p.url(), &s.url(), policy, extra)).await;
    let url = edge.url("http", "/");
    let fields = |c: &str| c.split(';').next().unwrap().split('.').map(str::to_string).collect::<Vec<_>>();

    let (_, h, _) = get_with(&url, &[]).await;
    let first = h["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let (_, h, _) = get_with(&url, &[("cookie", &first)]).await;
    assert!(h.get("set-cookie").is_none(), "a cookie issued this second is not re-issued: {h:?}");
    assert!(h.get("cache-control").is_none(), "no cookie, no Cache-Control: private: {h:?}");
    assert!(edge.metrics().await.contains("reason=\"sticky\"} 1"));

    // Unix seconds: 3.1 s of sleep puts `now` at least three whole seconds past `last seen`.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (_, h, _) = get_with(&url, &[("cookie", &first)]).await;
    let again = h["set-cookie"].to_str().unwrap();
    assert!(again.ends_with("; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"), "{again}");
    assert_eq!(h["cache-control"], "private");
    let (old, new) = (fields(&first), fields(again));
    assert_eq!((&old[..3], &old[4]), (&new[..3], &new[4]), "same side, issue time and epoch");
    let (last_old, last_new) = (old[3].parse::<u64>().unwrap(), new[3].parse::<u64>().unwrap());
    assert!(last_new >= last_old + 3, "last seen moved: {first} -> {again}");
}

#[tokio::test]
async fn staging_that_refuses_connections_sends_requests_to_primary() {
    let p = Origin::echo("primary").await;
    let dead = dead_port().await;
    let policy = "type = \"SingleHeader\"\nheader = \"aws-cf-cd-test\"\nvalue = \"blue\"";
    let edge =
        Edge::start(&config(&p.url(), &format!("http://{dead}"), policy, "[upstream]\nunhealthy_for = \"30s\"\n"))
            .await;
    let url = edge.url("http", "/");
    // The first request finds staging down and is sent to primary on the spot (no body to replay).
    for _ in 0..3 {
        let (status, h, _) = get_with(&url, &[("aws-cf-cd-test", "blue")]).await;
        assert_eq!((status, side(&h)), (StatusCode::OK, "primary"));
    }
    let m = edge.metrics().await;
    // One refused connection; the two requests after it did not even try staging.
    assert!(m.contains("edgesplit_upstream_errors_total{kind=\"connect\"} 1"), "{m}");
    assert!(
        m.contains("edgesplit_routing_decisions_total{distribution=\"web\",reason=\"staging-unavailable\"} 3"),
        "{m}"
    );

    // A request with a body cannot be replayed: it gets the 502 and later ones go to primary.
    let p2 = Origin::echo("primary").await;
    let dead2 = dead_port().await;
    let edge = Edge::start(&config(&p2.url(), &format!("http://{dead2}"), policy, "")).await;
    let post = Request::post(edge.url("http", "/")).header("aws-cf-cd-test", "blue").body(full("payload")).unwrap();
    assert_eq!(send(&http1_client(), post).await.0, StatusCode::BAD_GATEWAY);
    let (status, h, _) = get_with(&edge.url("http", "/"), &[("aws-cf-cd-test", "blue")]).await;
    assert_eq!((status, side(&h)), (StatusCode::OK, "primary"));
}

#[tokio::test]
async fn reloading_a_disabled_file_policy_resets_sessions() {
    let (p, s) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let on = "type = \"SingleWeight\"\nweight = 0.15\nidle_ttl = 300\nmaximum_ttl = 600";
    let off = format!("enabled = false\n{on}");
    let edge = Edge::start(&config(&p.url(), &s.url(), on, "")).await;
    let url = edge.url("http", "/");
    let (_, h, _) = get_with(&url, &[]).await;
    let first = h["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let epoch = |c: &str| c.split('.').nth(4).unwrap().to_string();
    assert_eq!(epoch(&first), "0");

    edge.reload(&config(&p.url(), &s.url(), &off, "")).await.unwrap();
    let (_, h, _) = get_with(&url, &[("cookie", &first)]).await;
    assert_eq!(side(&h), "primary");
    assert!(h.get("set-cookie").is_none(), "a disabled policy sets no cookie");

    edge.reload(&config(&p.url(), &s.url(), on, "")).await.unwrap();
    let (_, h, _) = get_with(&url, &[("cookie", &first)]).await;
    let again = h["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(epoch(&again), "2", "enabled -> disabled -> enabled is two session resets");
    assert!(edge.metrics().await.contains("reason=\"sticky\"} 0"));
}

#[tokio::test]
async fn ambiguous_policy_configs_are_rejected() {
    let text = config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "type = \"SingleHeader\"\nheader = \"x-nope\"\nvalue = \"v\"",
        "",
    )
    .replace(
        "staging_dns_name = \"staging.web.test\"\n",
        "staging_dns_name = \"staging.web.test\"\ncontinuous_deployment_policy_id = \"abc\"\n",
    );
    let errors = edgesplit::config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap_err().to_string();
    assert!(errors.contains("either [distribution.policy] or continuous_deployment_policy_id"), "{errors}");
    assert!(errors.contains("must start with the prefix aws-cf-cd-"), "{errors}");
}
