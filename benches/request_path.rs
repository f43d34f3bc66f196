//! Guards the per-request work that does not touch a socket: finding the distribution for a Host, the
//! header pass that strips hop-by-hop headers (the common case, nothing to strip, must stay a scan), and
//! the continuous deployment decision (header match, weight draw, sticky cookie verify + re-issue, and the
//! verify alone within the refresh granularity).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::{BTreeMap, HashMap};

use edgesplit::cd::cookie::{CookieKey, Session};
use edgesplit::cd::model::{PolicyConfig, SingleHeader, SingleWeight, Stickiness, TrafficConfig, TrafficType};
use edgesplit::cd::{CdSettings, Rule};
use edgesplit::domain::Target;
use edgesplit::metrics::Metrics;
use edgesplit::proxy::headers::strip_hop_by_hop;
use edgesplit::routing::{CompileInput, HealthRegistry, Routes};
use http::{HeaderMap, HeaderName, HeaderValue};

fn snapshot() -> Routes {
    let mut text = String::from("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..50 {
        text.push_str(&format!(
            "[[distribution]]\nid = \"d{i}\"\ndomains = [\"shop{i}.example.com\", \"*.api{i}.example.com\"]\n\
             [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n"
        ));
    }
    text.push_str("[[distribution]]\nid = \"default\"\ndomains = [\"*\"]\n[distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n");
    let config = edgesplit::config::parse(&text, "bench", Path::new(".")).unwrap();
    let (metrics, health, policies, epochs) =
        (Metrics::default(), HealthRegistry::default(), BTreeMap::new(), HashMap::new());
    let evidently = edgesplit::evidently::compile::EvSnapshot::default();
    let input = CompileInput {
        metrics: &metrics,
        health: &health,
        policies: &policies,
        inline_epochs: &epochs,
        cd: settings(),
        evidently: &evidently,
    };
    Routes::compile(&config, input)
}

fn settings() -> CdSettings {
    CdSettings {
        key: CookieKey::new(&[7u8; 32]),
        cookie_name: "edgesplit-cd".into(),
        cache_control_private: false,
        refresh: 10,
    }
}

fn policy(traffic: TrafficConfig) -> PolicyConfig {
    PolicyConfig { staging_dns_names: vec!["staging.test".into()], enabled: true, traffic: Some(traffic) }
}

fn browser_headers(extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "shop7.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=abc; edgesplit-cd=v1.p.1.2.3.mac"),
    ]
    .iter()
    .chain(extra)
    {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
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
    c.bench_function("find distribution: default", |b| b.iter(|| s.find_index(std::hint::black_box("unknown.test"))));
    // What every answer costs in counters: its status class, the latency histogram, and (issue 18) the
    // rollout guards' latency bucket.
    let answers = edgesplit::metrics::TargetMetrics::default();
    c.bench_function("count an answer", |b| {
        b.iter(|| {
            answers.record(std::hint::black_box(200), std::hint::black_box(std::time::Duration::from_micros(1500)))
        })
    });

    let clean = browser_headers(&[]);
    c.bench_function("strip hop-by-hop: nothing to strip", |b| {
        b.iter_batched_ref(|| clean.clone(), |h| strip_hop_by_hop(h, false), criterion::BatchSize::SmallInput)
    });
    let dirty = browser_headers(&[("connection", "keep-alive"), ("keep-alive", "timeout=5")]);
    c.bench_function("strip hop-by-hop: connection + keep-alive", |b| {
        b.iter_batched_ref(|| dirty.clone(), |h| strip_hop_by_hop(h, false), criterion::BatchSize::SmallInput)
    });
}

fn decisions(c: &mut Criterion) {
    let s = settings();
    let header = Rule::compile(
        &policy(TrafficConfig {
            kind: TrafficType::SingleHeader,
            single_weight: None,
            single_header: Some(SingleHeader { header: "aws-cf-cd-test".into(), value: "blue".into() }),
        }),
        "h",
        0,
    );
    let weight = |sticky| {
        Rule::compile(
            &policy(TrafficConfig {
                kind: TrafficType::SingleWeight,
                single_weight: Some(SingleWeight { weight: 0.1, stickiness: sticky }),
                single_header: None,
            }),
            "cdp-1",
            0,
        )
    };
    let plain = weight(None);
    let sticky = weight(Some(Stickiness { idle_ttl: 300, maximum_ttl: 600 }));
    let mut with_header = browser_headers(&[("aws-cf-cd-test", "blue")]);
    let no_cookie = browser_headers(&[]);
    let session = Session { target: Target::Staging, issued: 1_000, last: 1_000, epoch: 0 };
    let cookie = format!("a=1; edgesplit-cd={}", s.key.encode("cdp-1", &session));
    with_header.remove("cookie");
    let with_cookie = {
        let mut h = browser_headers(&[]);
        h.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
        h
    };
    c.bench_function("decide: header match", |b| b.iter(|| header.decide(&with_header, &s, 0, 0)));
    c.bench_function("decide: weight draw", |b| b.iter(|| plain.decide(&no_cookie, &s, 0, fastrand::u32(..))));
    c.bench_function("decide: sticky cookie verify + re-issue", |b| {
        b.iter(|| {
            let o = sticky.decide(&with_cookie, &s, 1_100, 0);
            sticky.set_cookie(&s, &o.session.unwrap(), 1_100, true)
        })
    });
    // A returning viewer within the refresh granularity (D3): the verify only, no Set-Cookie.
    c.bench_function("decide: sticky cookie verify, within the refresh", |b| {
        b.iter(|| {
            let o = sticky.decide(&with_cookie, &s, 1_005, 0);
            assert!(o.session.is_none());
            o
        })
    });
}

/// The origin client's codec, on what the load harness sends and nginx answers.
fn origin_codec(c: &mut Criterion) {
    use edgesplit::proxy::origin::{encode_head, parse_head};
    let mut headers = browser_headers(&[("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http")]);
    headers.remove("cookie");
    let mut out = Vec::new();
    c.bench_function("origin: write a request head (8 fields)", |b| {
        b.iter(|| {
            out.clear();
            encode_head(&mut out, &http::Method::GET, "/index.html?q=1", std::hint::black_box(&headers));
            out.len()
        })
    });
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 21:00:00 GMT\r\n\
        Content-Type: text/plain\r\nContent-Length: 8\r\nConnection: keep-alive\r\n\r\nprimary\n";
    let mut buf = bytes::BytesMut::with_capacity(8192);
    c.bench_function("origin: parse nginx's response head (5 fields)", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(response);
            parse_head(&mut buf, false).unwrap().unwrap()
        })
    });
}

criterion_group!(benches, bench, decisions, origin_codec);
criterion_main!(benches);
