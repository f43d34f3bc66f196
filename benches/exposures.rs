//! Guards the exposure log (`evidently::exposure`): every evaluation served by an experiment, or by a
//! launch with metric monitors, is handed to the drain task, which inserts it into the last hour's
//! memory and evicts the oldest. Off the request path, but on the same cores: measured at about 1 µs of
//! CPU per request in the load bench when it ran for every request. Both cases build the exposure as the
//! edge does (a new entity string) and insert it into a full log of 100,000, so each also evicts the
//! oldest entry: a new entity (the load bench's clients send no cookies, so every request is one), and
//! a returning entity (its assignment updated in place). Runs on mimalloc, as the binary does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use edgesplit::evidently::exposure::{Exposure, ExposureLog, RuleKind};

#[global_allocator]
static ALLOC: alloc_ctl::MiMalloc = alloc_ctl::MiMalloc;

/// `[evidently] max_exposures`' default.
const CAPACITY: usize = 100_000;

fn bench(c: &mut Criterion) {
    let project: Arc<str> = "shop".into();
    let rule: Arc<str> = "banner-rollout".into();
    let arms: [Arc<str>; 2] = ["classic".into(), "bold".into()];
    let exposure = |i: u64, at_ms: i64| Exposure {
        project: project.clone(),
        kind: RuleKind::Launch,
        rule: rule.clone(),
        arm: arms[(i % 2) as usize].clone(),
        // As the edge issues them: 32 hex digits.
        entity: format!("{i:032x}").into(),
        at_ms,
    };
    let log = ExposureLog::new(3_600_000, CAPACITY);
    for i in 0..CAPACITY as u64 {
        log.insert(exposure(i, 1_000));
    }
    assert_eq!(log.len(), CAPACITY);

    let mut next = CAPACITY as u64;
    c.bench_function("exposure: new entity into a full log (insert + evict)", |b| {
        b.iter(|| {
            next += 1;
            log.insert(black_box(exposure(next, 2_000)));
        })
    });
    assert_eq!(log.len(), CAPACITY);

    let mut k = 0u64;
    c.bench_function("exposure: returning entity into a full log (update + evict)", |b| {
        b.iter(|| {
            k = (k + 7919) % 1000;
            log.insert(black_box(exposure(next - k, 3_000)));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
