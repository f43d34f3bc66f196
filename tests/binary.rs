//! The real `edgesplit` binary: `check` output, graceful drain on SIGTERM, reload on SIGHUP and on file
//! change, with a bad file rejected and the running config kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::process::Command;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use support::process::{BIN, Proc};
use support::*;

#[test]
fn check_reports_every_problem_with_line_and_column_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[listener]]\nlisten = \"127.0.0.1:99999\"\n\n[timeouts]\nclient_idle = \"soon\"\n\n[[distribution]]\nid = \"web\"\ndomains = [\"*\"]\nflavour = 1\n[distribution.primary]\norigins = [\"http://a\"]\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let name = bad.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(lines[0].starts_with(&format!("{name}:2:10: `127.0.0.1:99999` is not an address")), "{stderr}");
    assert!(lines[1].starts_with(&format!("{name}:5:15: `soon` is not a duration")), "{stderr}");
    assert!(lines[2].starts_with(&format!("{name}:10:1: unknown field `flavour`")), "{stderr}");
    // SigV4 is the default and the file names no key: the admin table is where to add one.
    assert!(
        lines[3].starts_with(&format!("{name}:14:2: the admin API checks AWS SigV4 signatures but has no key")),
        "{stderr}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, simple_config("http://127.0.0.1:1", None, "")).unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // `run` refuses the bad file the same way.
    let out = Command::new(BIN).args(["run", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains(":5:15: `soon` is not a duration"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_slow_in_flight_request_then_exits_0() {
    let origin = Origin::start(|_req: Request<Incoming>| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Response::new(full("finished"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgesplit.toml");
    std::fs::write(
        &path,
        simple_config(&origin.url(), None, "[timeouts]\nshutdown_grace = \"10s\"\n")
            .replace("level = \"warn\"", "level = \"info\""),
    )
    .unwrap();
    let mut proc = Proc::start(&path);
    let addr = proc.addr("http").await;
    let admin = proc.admin().await;

    let in_flight = tokio::spawn(async move { get(&format!("http://{addr}/slow")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    proc.signal("-TERM");
    proc.wait_for(&["Shutting down"]).await;

    // Draining: not ready, and no new connections.
    let (status, _, _) = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after SIGTERM");

    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "finished"));
    assert_eq!(proc.wait_exit(Duration::from_secs(5)).await, 0);
    proc.wait_for(&["msg=Drained"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_file_changes_reload_and_a_bad_file_keeps_the_running_config() {
    let a = Origin::echo("a").await;
    let b = Origin::echo("b").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgesplit.toml");
    let config = |origin: &str, extra: &str| {
        simple_config(origin, None, &format!("[timeouts]\nconfig_poll = \"200ms\"\n{extra}"))
            .replace("level = \"warn\"", "level = \"info\"")
    };
    std::fs::write(&path, config(&a.url(), "")).unwrap();
    let mut proc = Proc::start(&path);
    let url = format!("http://{}/", proc.addr("http").await);
    let served_by = || async { get(&url).await.1["x-origin"].to_str().unwrap().to_string() };
    assert_eq!(served_by().await, "a");
    let access = proc.wait_for(&["msg=access"]).await;
    for field in [
        "logger=edgesplit::access",
        "method=GET",
        "path=/",
        "status=200",
        "distribution=web",
        "target=primary",
        "reason=no-policy",
        &format!("upstream={}", a.url()),
    ] {
        assert!(access.contains(field), "{field} missing from {access}");
    }

    // A good file and SIGHUP: the next requests go to b, on the same listener.
    std::fs::write(&path, config(&b.url(), "")).unwrap();
    proc.signal("-HUP");
    proc.wait_for(&["Config reloaded"]).await;
    assert_eq!(served_by().await, "b");

    // A bad file: rejected with its position, b keeps serving.
    std::fs::write(&path, config(&b.url(), "").replace("[log]", "[log]\nformat = \"xml\"")).unwrap();
    proc.signal("-HUP");
    let line = proc.wait_for(&["Config rejected"]).await;
    assert!(line.contains(&format!("{}:", path.display())) && line.contains("unknown log format"), "{line}");
    proc.wait_for(&["Reload failed"]).await;
    assert_eq!(served_by().await, "b");

    // A file change alone reloads too (polling), and a new listener is bound without touching the old one.
    let second = "[[listener]]\nname = \"second\"\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&path, format!("{second}{}", config(&a.url(), ""))).unwrap();
    let second_addr = proc.addr("second").await;
    assert_eq!(served_by().await, "a");
    assert_eq!(get(&format!("http://{second_addr}/")).await.1["x-origin"], "a");
}

const PROJECT_AND_FEATURE: &str = r#"
[[evidently.projects]]
name = "shop"

[[evidently.features]]
project = "shop"
name = "checkout"
variations = [{ name = "old", value = { stringValue = "v1" } }, { name = "new", value = { stringValue = "v2" } }]
defaultVariation = "old"
"#;

fn running_launch(name: &str) -> String {
    format!(
        "\n[[evidently.launches]]\nproject = \"shop\"\nname = \"{name}\"\nstatus = \"RUNNING\"\n\
         groups = [{{ name = \"a\", feature = \"checkout\", variation = \"old\" }}, {{ name = \"b\", feature = \"checkout\", variation = \"new\" }}]\n\
         [[evidently.launches.scheduledSplitsConfig.steps]]\nstartTime = 0\ngroupWeights = {{ a = 50000, b = 50000 }}\n"
    )
}

#[test]
fn run_exits_2_like_check_when_the_evidently_declarations_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let path = dir.path().join("edgesplit.toml");
    let with = |declarations: &str| {
        let store = format!("[store]\npath = \"{}\"\n{declarations}", store.display());
        simple_config("http://127.0.0.1:1", None, &store)
    };

    // Invalid on their own (a default variation the feature does not have): `check` and `run` both say so
    // at the declaration and exit 2, and `run` touches no store.
    let bad = with(PROJECT_AND_FEATURE).replace("defaultVariation = \"old\"", "defaultVariation = \"missing\"");
    std::fs::write(&path, &bad).unwrap();
    let at = bad.lines().position(|l| l.starts_with("project = \"shop\"")).unwrap();
    for command in ["check", "run"] {
        let out = Command::new(BIN).args([command, "--config"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.starts_with(&format!("{}:{at}:", path.display())), "{command}: {stderr}");
        assert!(stderr.contains("ValidationException: defaultVariation"), "{command}: {stderr}");
    }
    assert!(!store.exists(), "`run` opened the store of a file it refused");

    // Valid on their own but not against what the store holds (a launch already running on the feature
    // when the file starts a second one): `check` rehearses against an empty store and passes; `run`
    // refuses the file with the declaration's position and exits 2 as well.
    let first = edgesplit::config::parse_to_run(
        &with(&format!("{PROJECT_AND_FEATURE}{}", running_launch("ramp"))),
        "first.toml",
        dir.path(),
    )
    .unwrap();
    drop(edgesplit::plane::Plane::new(first).unwrap());
    std::fs::write(&path, with(&format!("{PROJECT_AND_FEATURE}{}", running_launch("ramp-2")))).unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN).args(["run", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with(&format!("{}:", path.display())), "{stderr}");
    assert!(stderr.contains("ConflictException"), "{stderr}");
    // And nothing the refused file declared reached the store: not even the launch it could create
    // before the conflict (the declarations are rehearsed on a copy first).
    let keys: Vec<String> =
        edgesplit::store::Store::open(&store).unwrap().evidently().unwrap().into_iter().map(|(k, _)| k).collect();
    assert!(keys.iter().any(|k| k.contains("ramp")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("ramp-2")), "a refused file left {keys:?} in the store");
}
