//! The figures behind two crates the design named and edgesplit does not use on the request path
//! (README, Architecture): the `cookie` crate against edgesplit's byte-level `find` and `strip` of its
//! stickiness cookie, and `dashmap` against the routing table read from one `ArcSwap` snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use edgesplit::cd::cookie::{find, strip};
use http::{HeaderMap, HeaderValue};

/// A browser's Cookie line: analytics cookies, a session, and ours.
const LINE: &str = "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; session=3f2a9c1e7b; \
                    theme=dark; edgesplit-cd=v1.s.1700000000.1700000100.3.AbCdEfGhIjKlMnOpQrStUv; lang=en-GB";
const NAME: &str = "edgesplit-cd";

fn cookies(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, HeaderValue::from_static(LINE));
    let mut g = c.benchmark_group("stickiness cookie");
    g.bench_function("find: edgesplit (bytes, no allocation)", |b| b.iter(|| find(black_box(&headers), NAME)));
    g.bench_function("find: cookie crate (split_parse)", |b| {
        b.iter(|| {
            let line = black_box(&headers).get(http::header::COOKIE).unwrap().to_str().unwrap();
            cookie::Cookie::split_parse(line).filter_map(Result::ok).find(|c| c.name() == NAME).map(|c| c.value().len())
        })
    });
    g.bench_function("strip: edgesplit", |b| {
        b.iter_batched(|| headers.clone(), |mut h| strip(&mut h, NAME), criterion::BatchSize::SmallInput)
    });
    g.bench_function("strip: cookie crate (parse, filter, re-encode)", |b| {
        b.iter_batched(
            || headers.clone(),
            |mut h| {
                let line = h.get(http::header::COOKIE).unwrap().to_str().unwrap();
                let kept: Vec<String> = cookie::Cookie::split_parse(line)
                    .filter_map(Result::ok)
                    .filter(|c| c.name() != NAME)
                    .map(|c| c.stripped().to_string())
                    .collect();
                h.insert(http::header::COOKIE, HeaderValue::from_str(&kept.join("; ")).unwrap());
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let mut text = String::from("[[listener]]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..50 {
        text.push_str(&format!(
            "[[distribution]]\nid = \"d{i}\"\ndomains = [\"shop{i}.example.com\"]\n\
             [distribution.primary]\norigins = [\"http://127.0.0.1:1\"]\n"
        ));
    }
    let config = edgesplit::config::parse(&text, "bench", Path::new(".")).unwrap();
    let (metrics, health) = (edgesplit::metrics::Metrics::default(), edgesplit::routing::HealthRegistry::default());
    let (policies, epochs) = (Default::default(), Default::default());
    let evidently = edgesplit::evidently::compile::EvSnapshot::default();
    let cd = edgesplit::cd::CdSettings {
        key: edgesplit::cd::cookie::CookieKey::new(&[7u8; 32]),
        cookie_name: NAME.into(),
        cache_control_private: false,
        refresh: 10,
    };
    let input = edgesplit::routing::CompileInput {
        metrics: &metrics,
        health: &health,
        policies: &policies,
        inline_epochs: &epochs,
        cd,
        evidently: &evidently,
    };
    let snapshot = ArcSwap::from_pointee(edgesplit::routing::Routes::compile(&config, input));
    let map: dashmap::DashMap<Box<str>, usize> = dashmap::DashMap::new();
    for i in 0..50 {
        map.insert(format!("shop{i}.example.com").into(), i);
    }
    let map = Arc::new(map);
    let mut g = c.benchmark_group("host lookup, 50 distributions");
    g.bench_function("ArcSwap snapshot: load + find", |b| {
        b.iter(|| snapshot.load().find_index(black_box("shop37.example.com")))
    });
    g.bench_function("DashMap: get", |b| b.iter(|| map.get(black_box("shop37.example.com")).map(|v| *v)));
    g.finish();
}

criterion_group!(benches, cookies, routing);
criterion_main!(benches);
