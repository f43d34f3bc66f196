//! Guards segment matching on the request path (a launch's segment overrides and an experiment's segment
//! run `Pattern::matches` per evaluation, inside D6's evaluation budget): a three-field pattern and a
//! bigger one with `$or`, `exists`, `anything-but`, `suffix`, a nested object and a dotted key, each
//! against a context that matches, one that misses on the first field checked and one that misses as
//! late as possible. Also, for reference, what compiling a pattern costs (control plane). Runs on
//! mimalloc, as the binary does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use edgesplit::evidently::pattern::Pattern;
use serde_json::{Value, json};

#[global_allocator]
static ALLOC: alloc_ctl::MiMalloc = alloc_ctl::MiMalloc;

/// Fields are checked in key order (`Browser`, `Country`, `Price`).
const SMALL: &str =
    r#"{"Price":[{"numeric":[">",10,"<=",20]}],"Browser":["Chrome","Firefox"],"Country":[{"prefix":"US"}]}"#;

/// Fields are checked in key order (`Country`, `Device`, `Email`, `Plan`, `Price`, `Referrer`,
/// `user.tier`), then the `$or` entries in order.
const BIG: &str = r#"{
  "$or": [
    {"Browser": [{"prefix": "Chrome/"}], "Version": [{"numeric": [">=", 120]}]},
    {"Browser": [{"prefix": "Firefox/"}], "Version": [{"numeric": [">=", 128]}]},
    {"Beta": [true]}
  ],
  "Country": [{"anything-but": ["CN", "RU", "KP", "IR", "SY", "CU"]}],
  "Device": {"os": [{"prefix": "iOS"}, {"prefix": "Android"}], "tablet": [false, {"exists": false}]},
  "Email": [{"suffix": "@example.com"}, {"suffix": "@example.org"}],
  "Plan": ["pro", "enterprise", "team"],
  "Price": [{"numeric": [">", 10, "<=", 200]}],
  "Referrer": [{"exists": false}],
  "user.tier": [{"numeric": [">=", 3]}]
}"#;

fn small_contexts() -> [(&'static str, Value); 3] {
    [
        ("match", json!({ "Browser": "Firefox", "Country": "US-CA", "Price": 15, "Plan": "free", "Age": 37 })),
        // `Browser`, the first field checked, fails.
        ("early miss", json!({ "Browser": "Safari", "Country": "US-CA", "Price": 15, "Plan": "free", "Age": 37 })),
        // `Browser` and `Country` hold, `Price`, the last field, is out of range.
        ("late miss", json!({ "Browser": "Firefox", "Country": "US-CA", "Price": 25, "Plan": "free", "Age": 37 })),
    ]
}

fn big_context(browser: &str, country: &str) -> Value {
    json!({
        "Browser": browser,
        "Version": 133,
        "Country": country,
        "Device": { "os": "Android 15", "tablet": false, "model": "Pixel 9" },
        "Email": "ana@example.com",
        "Plan": "pro",
        "Price": 42.5,
        "user": { "tier": 4, "id": "u-42" },
        "Locale": "fr-FR",
        "Path": "/checkout",
    })
}

fn big_contexts() -> [(&'static str, Value); 3] {
    [
        // Every field holds; the second `$or` entry matches.
        ("match", big_context("Firefox/133.0", "FR")),
        // `Country`, the first field checked, is excluded.
        ("early miss", big_context("Firefox/133.0", "CN")),
        // Every field holds, then all three `$or` entries fail.
        ("late miss", big_context("Safari/17.6", "FR")),
    ]
}

fn matching(c: &mut Criterion) {
    for (name, text, contexts) in [("small", SMALL, small_contexts()), ("big", BIG, big_contexts())] {
        let pattern = Pattern::parse(text).unwrap();
        let mut group = c.benchmark_group(format!("segment {name}: matches"));
        for (case, context) in &contexts {
            let expected = *case == "match";
            assert_eq!(pattern.matches(context), expected, "{name} {case}");
            group.bench_function(*case, |b| b.iter(|| pattern.matches(black_box(context))));
        }
        group.finish();
    }
}

fn compiling(c: &mut Criterion) {
    for (name, text) in [("small", SMALL), ("big", BIG)] {
        let value: Value = serde_json::from_str(text).unwrap();
        let mut group = c.benchmark_group(format!("segment {name}: compile"));
        group.bench_function("parse (JSON text + compile)", |b| b.iter(|| Pattern::parse(black_box(text)).unwrap()));
        group.bench_function("from_value (compile only)", |b| {
            b.iter(|| Pattern::from_value(black_box(&value)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, matching, compiling);
criterion_main!(benches);
