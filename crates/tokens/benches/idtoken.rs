//! Wall-clock costs of the issuer and the gateway's verifier.
//! Targets: `verify_uncached` ≥ 30,000 tokens/s on one core (≤ 33 µs), `verify_cache_hit` ≤ 2 µs, `mint_uncached` ≤ 1 ms.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use tokens::{CachingVerifier, IdClaims, KeyRing};

const ISSUER: &str = "https://accounts.google.com";
const AUD: &str = "https://hello-abc123-uc.a.run.app";
const UNIQUE_ID: &str = "110481570481807168043";
const EMAIL: &str = "hello@local-project.iam.gserviceaccount.com";

fn benches(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let ring = KeyRing::generate(now).unwrap();
    let token = ring.sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), now)).unwrap();
    let verifier = ring.verifier(ISSUER);
    let caching = CachingVerifier::new(ring.verifier(ISSUER), 10_000);
    caching.verify(&token, |a| a == AUD, now).unwrap();

    c.bench_function("verify_uncached", |b| b.iter(|| verifier.verify(black_box(&token), |a| a == AUD, now).unwrap()));
    c.bench_function("verify_cache_hit", |b| b.iter(|| caching.verify(black_box(&token), |a| a == AUD, now).unwrap()));
    c.bench_function("mint_uncached", |b| {
        b.iter(|| ring.sign(&IdClaims::for_account(ISSUER, black_box(AUD), UNIQUE_ID, Some(EMAIL), now)).unwrap())
    });
}

criterion_group!(idtoken, benches);
criterion_main!(idtoken);
