//! Guards the cost of an unguessable id on the request path (`random`): a client with no entity cookie
//! gets a new entity id minted from the OS generator. `random::id128` takes 16 bytes from a per-thread
//! buffer that one `getrandom` call refills every 32 ids; compared here with a `getrandom` call per id
//! (what the buffer saves) and with `fastrand` (what edgesplit used before, not a cryptographic
//! generator).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    c.bench_function("id: random::id128 (buffered OS generator)", |b| b.iter(|| black_box(edgesplit::random::id128())));
    c.bench_function("id: getrandom call per id (16 bytes)", |b| {
        b.iter(|| {
            let mut buf = [0u8; 16];
            let ok = edgesplit::random::fill(&mut buf).is_ok();
            black_box((buf, ok))
        })
    });
    c.bench_function("id: fastrand::u128 (before; not cryptographic)", |b| b.iter(|| black_box(fastrand::u128(..))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
