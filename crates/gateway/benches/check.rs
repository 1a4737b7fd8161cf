//! `invoke::check` on the hot path: a cached valid token against a service policy of 100 bindings (the caller is
//! named in the last one), plus the public and the denied paths for comparison.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gateway::invoke;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use iam::{Catalogue, ProjectRef, Snapshot};

fn big_snapshot() -> Snapshot {
    let mut s = Snapshot::new(
        Catalogue::predefined(),
        vec![ProjectRef { id: "local-project".into(), number: "123456789012".into() }],
    );
    let users: Vec<String> = (0..100).map(|i| format!("user:u{i}@example.com")).collect();
    let mut bindings: Vec<(&str, Vec<&str>)> = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let role = if i % 2 == 0 { "roles/run.invoker" } else { "roles/run.developer" };
        bindings.push((role, vec![u.as_str()]));
    }
    let rows: Vec<(&str, &[&str], Option<&str>)> = bindings.iter().map(|(r, m)| (*r, m.as_slice(), None)).collect();
    s.set_policy(SVC, &policy(&rows)).unwrap();
    s
}

fn bench(c: &mut Criterion) {
    let keys = Keys::new();
    let iam = big_snapshot();
    let route = route(false);
    let mut headers = HeaderMap::new();
    let token = keys.token("u98@example.com", URL);
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    // Warm the verified-token cache.
    assert!(invoke::check(&route, &headers, &iam, &keys.verifier, resolve, now()).is_ok());

    c.bench_function("check/cached token, 100 bindings, granted", |b| {
        b.iter(|| invoke::check(black_box(&route), black_box(&headers), &iam, &keys.verifier, resolve, now()).is_ok())
    });

    let mut stranger = HeaderMap::new();
    let t = keys.token("stranger@example.com", URL);
    stranger.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    assert!(invoke::check(&route, &stranger, &iam, &keys.verifier, resolve, now()).is_err());
    c.bench_function("check/cached token, 100 bindings, denied (with explanation)", |b| {
        b.iter(|| invoke::check(black_box(&route), black_box(&stranger), &iam, &keys.verifier, resolve, now()).is_ok())
    });

    let public = route_public();
    c.bench_function("check/invoker check disabled", |b| {
        b.iter(|| invoke::check(black_box(&public), black_box(&headers), &iam, &keys.verifier, resolve, now()).is_ok())
    });
}

fn route_public() -> gateway::Route {
    route(true)
}

criterion_group!(benches, bench);
criterion_main!(benches);
