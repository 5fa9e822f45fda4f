//! Path normalization: `path::normalize`, which every proxied request calls once before routing.
//!
//! - `normal`: a typical API path that needs no change (the scan only; nothing is allocated).
//! - `normal_long`: a 200-byte path with an encoded `/`, still normal.
//! - `dots`: a path with dot segments and encoded dots, which is rewritten (the copy path).
//!
//! Run with `cargo bench -p gatehouse-core --bench path`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::path::normalize;

fn bench(c: &mut Criterion) {
    let long = format!("/api/v1/{}items%2F42/{}", "segment/".repeat(20), "x".repeat(20));
    let cases = [
        ("normal", "/api/v1/users/12345/orders"),
        ("normal_long", long.as_str()),
        ("dots", "/public/./x/../%2e%2E/private/%7Euser//orders"),
    ];
    let mut group = c.benchmark_group("path/normalize");
    for (name, path) in cases {
        group.bench_function(name, |b| b.iter(|| normalize(black_box(path)).map(|p| p.len())));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
