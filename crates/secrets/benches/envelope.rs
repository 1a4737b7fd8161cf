//! Envelope encryption cost per secret version: `MasterKey::seal` (fresh data key, two AES-256-GCM seals, base64)
//! and `MasterKey::open` (two opens), for a 1 KiB payload and for the 64 KiB maximum.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use secrets::{MasterKey, MAX_PAYLOAD};
use std::hint::black_box;

const AAD: &str = "projects/123456789012/secrets/db-password/versions/1";

fn envelope(c: &mut Criterion) {
    let key = MasterKey::generate();
    let mut group = c.benchmark_group("envelope");
    for (label, len) in [("1KiB", 1024), ("64KiB", MAX_PAYLOAD)] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = key.seal(AAD, &payload).unwrap();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("seal", label), &payload, |b, p| {
            b.iter(|| key.seal(black_box(AAD), black_box(p)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, s| {
            b.iter(|| key.open(black_box(AAD), black_box(s)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
