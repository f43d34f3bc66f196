//! Guards the per-request work that does not touch a socket: finding the distribution for a Host, and
//! the header pass that strips hop-by-hop headers (the common case, nothing to strip, must stay a scan).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use edgesplit::metrics::Metrics;
use edgesplit::proxy::headers::strip_hop_by_hop;
use edgesplit::routing::Snapshot;
use http::{HeaderMap, HeaderName, HeaderValue};

fn snapshot() -> Snapshot {
    let mut text = String::from("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..50 {
        text.push_str(&format!(
            "[[distribution]]\nid = \"d{i}\"\ndomains = [\"shop{i}.example.com\", \"*.api{i}.example.com\"]\n\
             [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n"
        ));
    }
    text.push_str("[[distribution]]\nid = \"default\"\ndomains = [\"*\"]\n[distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n");
    let config = edgesplit::config::parse(&text, "bench", Path::new(".")).unwrap();
    Snapshot::compile(&config, &Metrics::default())
}

fn browser_headers(extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "shop7.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
        ),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=abc; edgesplit-cd=v1.p.1.2.3.mac"),
    ]
    .iter()
    .chain(extra)
    {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn bench(c: &mut Criterion) {
    let s = snapshot();
    c.bench_function("find distribution: exact host", |b| {
        b.iter(|| s.find_index(std::hint::black_box("shop7.example.com:443")))
    });
    c.bench_function("find distribution: wildcard", |b| {
        b.iter(|| s.find_index(std::hint::black_box("v2.api7.example.com")))
    });
    c.bench_function("find distribution: default", |b| {
        b.iter(|| s.find_index(std::hint::black_box("unknown.test")))
    });

    let clean = browser_headers(&[]);
    c.bench_function("strip hop-by-hop: nothing to strip", |b| {
        b.iter_batched_ref(
            || clean.clone(),
            |h| strip_hop_by_hop(h, false),
            criterion::BatchSize::SmallInput,
        )
    });
    let dirty = browser_headers(&[("connection", "keep-alive"), ("keep-alive", "timeout=5")]);
    c.bench_function("strip hop-by-hop: connection + keep-alive", |b| {
        b.iter_batched_ref(
            || dirty.clone(),
            |h| strip_hop_by_hop(h, false),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
