//! The policy engine's cost per decision, with the default policy.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use herald::domain::{OutboundMessage, Role, SendKind};
use herald::policy::{evaluate, Facts, PolicySet};
use serde_json::json;

/// jemalloc, as the `herald` binary has: the figures in BENCHMARKS.md (end of session 2) were
/// measured with it as the library's allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn policy() -> PolicySet {
    PolicySet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("policy")
}

fn message(body: serde_json::Value, kind: SendKind) -> OutboundMessage {
    OutboundMessage::parse(&body, kind).expect("valid")
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    let now = Utc::now();
    let mut inside = Facts::unknown(now, Role::Backend);
    inside.transactional_consent = true;
    inside.last_user_interaction_at = Some(now - Duration::hours(2));
    let mut outside = inside.clone();
    outside.last_user_interaction_at = None;
    let no_consent = Facts::unknown(now, Role::Backend);

    let response = message(
        json!({"recipient": {"psid": "1"}, "category": "response", "message": {"text": "On its way!"}}),
        SendKind::Message,
    );
    let receipt = message(
        json!({"recipient": {"psid": "1"}, "order": {"order_number": "A-1", "currency": "EUR",
               "payment_method": "Visa", "recipient_name": "Ada", "summary": {"total_cost": 44.5},
               "elements": [{"title": "Teapot", "price": 40}]}}),
        SendKind::Receipt,
    );

    let mut g = c.benchmark_group("evaluate");
    g.bench_function("allow response inside the window", |b| {
        b.iter(|| evaluate(black_box(&policy), black_box(&response), black_box(&inside)))
    });
    g.bench_function(
        "allow receipt outside the window (UTILITY, filled template)",
        |b| b.iter(|| evaluate(black_box(&policy), black_box(&receipt), black_box(&outside))),
    );
    g.bench_function("deny no_consent", |b| {
        b.iter(|| {
            evaluate(
                black_box(&policy),
                black_box(&receipt),
                black_box(&no_consent),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
