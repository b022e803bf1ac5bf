//! `parse`: Falco and Tetragon JSON into alerts, throughput in input bytes.
//!
//! Run: `cargo bench -p teflon-benches --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FALCO_SINGLE: &str =
    include_str!("../../teflon-falco/tests/fixtures/01-terminal-shell-k8s-pod-syscall.json");
const FALCO_PRETTY: &str =
    include_str!("../../teflon-falco/tests/fixtures/19-read-sensitive-file-untrusted-k8s-pod.json");
const FALCO_JSONL: &str = include_str!("../../teflon-falco/tests/fixtures/alerts.jsonl");

const TETRAGON_DOCS: &str =
    include_str!("../../teflon-tetragon/tests/fixtures/docs-examples.jsonl");
const TETRAGON_BOOK: &str =
    include_str!("../../teflon-tetragon/tests/fixtures/security-observability-book.jsonl");

/// The straightforward derive: owned strings, output fields as a map of `Value`s.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct OwnedAlert {
    output: Option<String>,
    priority: String,
    rule: String,
    time: String,
    source: Option<String>,
    tags: Option<Vec<String>>,
    hostname: Option<String>,
    output_fields: std::collections::BTreeMap<String, serde_json::Value>,
}

fn falco(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse/falco");
    for (name, input) in [
        ("single_alert", FALCO_SINGLE),
        ("single_alert_pretty", FALCO_PRETTY),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| teflon_falco::parse_alert(black_box(input.as_bytes())))
        });
    }
    g.throughput(Throughput::Bytes(FALCO_JSONL.len() as u64));
    g.bench_function("batch_20_jsonl", |b| {
        b.iter(|| teflon_falco::parse_batch(black_box(FALCO_JSONL.as_bytes())))
    });
    g.bench_function("lenient_20_jsonl", |b| {
        b.iter(|| teflon_falco::alerts_from_slice(black_box(FALCO_JSONL.as_bytes())).count())
    });
    g.finish();

    // What serde_json itself costs on the same bytes: skipping every value (a floor for any
    // parser built on it) and building a `serde_json::Value` tree (what we avoid).
    let mut g = c.benchmark_group("parse/serde_json_reference");
    g.throughput(Throughput::Bytes(FALCO_JSONL.len() as u64));
    g.bench_function("ignored_any_20_jsonl", |b| {
        b.iter(|| {
            serde_json::Deserializer::from_slice(black_box(FALCO_JSONL.as_bytes()))
                .into_iter::<serde::de::IgnoredAny>()
                .count()
        })
    });
    g.bench_function("owned_struct_20_jsonl", |b| {
        b.iter(|| {
            serde_json::Deserializer::from_slice(black_box(FALCO_JSONL.as_bytes()))
                .into_iter::<OwnedAlert>()
                .count()
        })
    });
    g.bench_function("value_20_jsonl", |b| {
        b.iter(|| {
            serde_json::Deserializer::from_slice(black_box(FALCO_JSONL.as_bytes()))
                .into_iter::<serde_json::Value>()
                .count()
        })
    });
    g.finish();
}

fn tetragon(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse/tetragon");
    let kprobe = TETRAGON_DOCS.lines().nth(4).unwrap_or_default();
    g.throughput(Throughput::Bytes(kprobe.len() as u64));
    g.bench_function("single_kprobe", |b| {
        b.iter(|| teflon_tetragon::parse_event(black_box(kprobe.as_bytes())))
    });
    for (name, input) in [
        ("batch_15_docs_jsonl", TETRAGON_DOCS),
        ("batch_8_book_jsonl", TETRAGON_BOOK),
    ] {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| teflon_tetragon::parse_batch(black_box(input.as_bytes())))
        });
    }
    g.finish();
}

criterion_group!(benches, falco, tetragon);
criterion_main!(benches);
