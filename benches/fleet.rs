//! Fleet scaling (issue 16): 1, 3 and 6 edgesplit processes on one throwaway PostgreSQL cluster on this
//! machine, measuring how long a policy written on one instance takes to route through every other
//! (propagation) and how many admin writes per second the fleet commits with one writer per instance.
//! `cargo bench --bench fleet` prints the table the README shows. Everything is on 127.0.0.1; client,
//! database and instances share this machine's cores, so the figures are this machine's, not a bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool: failing loudly is the point

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::cloudfront::{CF, api, create_policy, header_policy};
use support::postgres::Postgres;
use support::process::Proc;
use support::{Origin, get_with, simple_config};

const STAGING: &str = "staging.web.test";
const WRITE_FOR: Duration = Duration::from_secs(3);
const CHANGES: usize = 20;

struct Figures {
    instances: usize,
    /// Median and worst, over `CHANGES` policy updates, of the time until every other instance routes
    /// by it (`None` with one instance).
    propagation: Option<(Duration, Duration)>,
    writes_per_second: f64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rows: Vec<Figures> = [1, 3, 6].into_iter().map(|n| rt.block_on(measure(n))).collect();
    println!("| instances | propagation, median | propagation, worst | admin writes/s (one writer per instance) |");
    println!("|--:|--:|--:|--:|");
    for f in rows {
        let (median, worst) = match f.propagation {
            Some((m, w)) => (format!("{:.1} ms", m.as_secs_f64() * 1e3), format!("{:.1} ms", w.as_secs_f64() * 1e3)),
            None => ("–".into(), "–".into()),
        };
        println!("| {} | {median} | {worst} | {:.0} |", f.instances, f.writes_per_second);
    }
}

async fn measure(n: usize) -> Figures {
    let db = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (primary, staging) = (Origin::echo("primary").await, Origin::echo("staging").await);
    let store =
        format!("[store]\nbackend = \"postgres\"\nurl = \"{}\"\n[evidently]\nmax_segments = 1000000\n", db.url());
    let config = simple_config(&primary.url(), Some(&staging.url()), &store)
        .replace("level = \"warn\"", "level = \"info\"")
        .replace("domains = [\"*\"]\n", &format!("domains = [\"*\"]\nstaging_dns_name = \"{STAGING}\"\n"));
    let path = dir.path().join("edgesplit.toml");
    std::fs::write(&path, config).unwrap();
    let mut procs: Vec<Proc> = (0..n).map(|_| Proc::start(&path)).collect();
    let mut fleet: Vec<(SocketAddr, SocketAddr)> = Vec::new();
    for p in &mut procs {
        fleet.push((p.addr("http").await, p.admin().await));
    }
    // Propagation: update one policy on the first instance; time until the others route by it.
    let (id, mut etag) = create_policy(fleet[0].1, &header_policy(STAGING, "v0")).await;
    let mut times = Vec::new();
    if n > 1 {
        for k in 1..=CHANGES {
            let value = format!("v{k}");
            let written = Instant::now();
            let path = format!("{CF}/{id}");
            let (status, headers, body) =
                api(fleet[0].1, "PUT", &path, &header_policy(STAGING, &value), &[("if-match", &etag)]).await;
            assert_eq!(status, 200, "{body}");
            etag = headers["etag"].to_str().unwrap().to_string();
            for (proxy, _) in &fleet[1..] {
                while !get_with(&format!("http://{proxy}/"), &[("aws-cf-cd-test", &value)]).await.2.contains("staging")
                {
                    assert!(written.elapsed() < Duration::from_secs(5), "not propagated within 5 s");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            times.push(written.elapsed());
        }
        times.sort();
    }
    // Write throughput: one writer per instance, creating segments, for WRITE_FOR.
    let started = Instant::now();
    let writers: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(i, (_, admin))| {
            let admin = *admin;
            tokio::spawn(async move {
                let mut done = 0u64;
                while started.elapsed() < WRITE_FOR {
                    let body =
                        serde_json::json!({ "name": format!("s{i}-{done}"), "pattern": "{\"a\":[1]}" }).to_string();
                    let (status, _, text) = api(admin, "POST", "/segments", &body, &[]).await;
                    assert_eq!(status, 200, "{text}");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for w in writers {
        total += w.await.unwrap();
    }
    let writes_per_second = total as f64 / started.elapsed().as_secs_f64();
    for p in &mut procs {
        p.stop().await;
    }
    Figures {
        instances: n,
        propagation: (n > 1).then(|| (times[times.len() / 2], times[times.len() - 1])),
        writes_per_second,
    }
}
