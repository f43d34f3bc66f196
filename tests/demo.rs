//! `edgesplit demo`: its pieces (the embedded config is valid, its origins answer which side served), and
//! the real binary, `edgesplit demo --ephemeral-ports`, with every curl line its banner prints run by a
//! real curl against it. (The plain demo binds fixed ports; these use free ones. The banner's boto3 lines
//! are run by tests/python/test_demo_lines.py, which has boto3.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::process::Command;

use http::StatusCode;
use support::process::{BIN, Proc};
use tokio::net::TcpListener;

#[tokio::test]
async fn the_demo_config_serves_through_the_demo_origins() {
    let store = tempfile::tempdir().unwrap();
    let mut config = edgesplit::demo::config(store.path()).unwrap();
    assert_eq!(config.listeners[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9901");
    // The admin API checks SigV4 with the documented dev pair test/test.
    let key = config.admin_auth.credentials.clone().expect("the demo's key pair");
    assert_eq!((key.id.as_str(), key.secret.as_str()), ("test", "test"));
    assert_eq!((edgesplit::demo::ACCESS_KEY_ID, edgesplit::demo::SECRET_ACCESS_KEY), ("test", "test"));
    assert_eq!(config.distributions[0].primary.origins[0].authority.as_str(), edgesplit::demo::PRIMARY_ORIGIN);
    assert_eq!(
        config.distributions[0].staging.as_ref().unwrap().origins[0].authority.as_str(),
        edgesplit::demo::STAGING_ORIGIN
    );

    let mut origins = Vec::new();
    for side in ["primary", "staging"] {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        origins.push(l.local_addr().unwrap());
        tokio::spawn(edgesplit::demo::run_origin(l, side));
    }
    let bound = edgesplit::demo::Origins { primary: origins[0], staging: origins[1] };
    edgesplit::demo::use_ephemeral_ports(&mut config, bound);
    assert_eq!(config.listeners[0].addr.to_string(), "127.0.0.1:0");
    // Every pool of every distribution now points at the origins started here.
    let pools: Vec<_> = config.distributions.iter().flat_map(|d| [&d.primary, d.staging.as_ref().unwrap()]).collect();
    assert_eq!(pools.len(), 4, "demo and shop, each with a staging pool");
    for (i, pool) in pools.iter().enumerate() {
        assert_eq!(pool.origins[0].authority.as_str(), origins[i % 2].to_string());
    }
    assert_eq!(config.distributions[1].staging_dns_name.as_deref(), Some("staging.shop.example.com"));
    let handle = edgesplit::app::start(config, None, std::future::pending()).await.unwrap();

    let (status, headers, body) = support::get(&format!("http://{}/hello", handle.addr("http").unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-origin"], "primary");
    assert!(body.starts_with("served by: primary\nGET /hello HTTP/1.1\n"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{body}");
    // The declared banner feature is evaluated at the edge and echoed back.
    let banner = headers["x-evidently-banner"].to_str().unwrap();
    assert!(["classic", "bold"].contains(&banner), "{banner}");
    assert!(body.contains(&format!("x-evidently-banner: {banner}\n")), "{body}");

    // The staging origin says so too (the demo's policy sends traffic there once issue 3 lands).
    let (_, headers, body) = support::get(&format!("http://{}/", origins[1])).await;
    assert_eq!(headers["x-origin"], "staging");
    assert!(body.starts_with("served by: staging\n"));

    // The seeded policy: 10 % sticky. Every response now carries the session cookie.
    let policy = edgesplit::demo::seed_policy(&handle.plane).unwrap();
    assert_eq!(policy.config.staging_dns_names, [edgesplit::demo::STAGING_DNS_NAME]);
    let (status, headers, _) = support::get(&format!("http://{}/", handle.addr("http").unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("edgesplit-cd="))
        .expect("the session cookie");
    assert!(cookie.starts_with("edgesplit-cd=v1."), "{cookie}");
    assert!(cookie.contains("Max-Age=300; Path=/; HttpOnly; SameSite=Lax"), "{cookie}");

    let text = edgesplit::demo::instructions(
        "127.0.0.1:8080",
        "127.0.0.1:9901",
        &policy.id,
        edgesplit::demo::Origins {
            primary: edgesplit::demo::PRIMARY_ORIGIN.parse().unwrap(),
            staging: edgesplit::demo::STAGING_ORIGIN.parse().unwrap(),
        },
        "edgesplit",
    );
    assert!(text.contains("curl -si http://127.0.0.1:8080/hello"));
    assert!(text.contains("(primary origin 127.0.0.1:18081, staging origin 127.0.0.1:18082)"), "{text}");
    assert!(text.contains("\n  edgesplit install-models\n"), "{text}");
    assert!(text.contains(&format!("Id='{}'", policy.id)));
    assert!(text.contains("access key id      test\n  secret access key  test\n"), "{text}");
    assert_eq!(text.matches("aws_access_key_id='test', aws_secret_access_key='test'").count(), 2, "{text}");
}

/// The banner of a running `edgesplit demo --ephemeral-ports`: the proxy and admin addresses, and the
/// shell lines under "Try:".
struct Banner {
    proxy: String,
    admin: String,
    commands: Vec<String>,
}

async fn start_demo() -> (Proc, Banner) {
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--ephemeral-ports"]);
    let mut proc = Proc::spawn(cmd);
    proc.wait_for(&["Ctrl-C drains and stops."]).await;
    let log = proc.log();
    let field = |prefix: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|url| url.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the banner:\n{log}"))
            .to_string()
    };
    let (proxy, admin) = (field("  proxy  "), field("  admin  "));
    assert!(!proxy.ends_with(":8080") && !admin.ends_with(":9901"), "fixed ports despite --ephemeral-ports");
    let tried = log.split_once("\nTry:\n").unwrap_or_else(|| panic!("no Try: section:\n{log}")).1;
    let tried = tried.split_once("\nThe admin API").unwrap().0;
    let commands = tried.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    (proc, Banner { proxy, admin, commands })
}

/// Runs one shell line with bash (at most 60 s): its stdout, after checking it exited 0.
fn sh(line: &str) -> String {
    let out = Command::new("timeout").args(["60", "bash", "-c", line]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{line}` exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_curl_line_the_demo_prints_works_against_the_demo() {
    // A real curl, new enough for --aws-sigv4 (7.75), as the README's prerequisites say.
    let version = sh("curl --version");
    let v: Vec<u32> = version.split_whitespace().nth(1).unwrap().split('.').map(|n| n.parse().unwrap()).collect();
    assert!((v[0], v[1]) >= (7, 75), "curl 7.75 or newer is needed for --aws-sigv4: {version}");
    let (mut demo, banner) = start_demo().await;
    let Banner { proxy, admin, commands } = &banner;
    // Each line the banner prints is checked below; a new one must be added here.
    assert_eq!(commands.len(), 6, "{commands:#?}");
    let mut checked = 0;
    for line in commands {
        assert!(line.starts_with("curl ") || line.starts_with("for "), "not a shell line: {line}");
        let out = sh(line);
        let has = |s: &str| assert!(out.contains(s), "`{line}` printed no {s:?}:\n{out}");
        if line.starts_with(&format!("curl -si http://{proxy}/hello")) {
            has("HTTP/1.1 200 OK");
            has("set-cookie: edgesplit-cd=v1.");
            has("GET /hello HTTP/1.1\n");
            has("x-forwarded-for: 127.0.0.1\n");
        } else if line.starts_with("for i in $(seq 200)") {
            // 200 new sessions at 10 %: both sides show up (P(no staging) = 0.9^200, about 7e-10).
            let mut total = 0;
            for row in out.lines() {
                let (n, side) = row.trim().split_once(' ').unwrap();
                assert!(["served by: primary", "served by: staging"].contains(&side), "{out}");
                total += n.parse::<u32>().unwrap();
            }
            assert_eq!((total, out.lines().count()), (200, 2), "{out}");
        } else if line.contains("grep -i x-evidently-banner") {
            // On the response, and in the request the origin echoes: the same variation.
            let values: Vec<_> = out.lines().map(|l| l.trim().strip_prefix("x-evidently-banner: ")).collect();
            assert_eq!(values.len(), 2, "{out}");
            assert!(values[0] == values[1] && ["classic", "bold"].contains(&values[0].unwrap()), "{out}");
        } else if line.contains("--http2-prior-knowledge") {
            has("GET /over-h2 HTTP/1.1\n"); // HTTP/2 from curl, HTTP/1.1 to the origin
            has("via: 2 edgesplit\n");
        } else if line.starts_with(&format!("curl -s http://{admin}/metrics")) {
            has("edgesplit_requests_total{");
            has("edgesplit_routing_decisions_total{");
        } else if line.contains("--aws-sigv4") {
            let projects: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(projects["projects"][0]["name"], "demo", "{out}");
        } else {
            panic!("a banner line this test does not know: {line}");
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
    assert_eq!(demo.stop().await, 0, "{}", demo.log());
}
