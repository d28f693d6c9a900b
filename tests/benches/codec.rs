//! The codec of one workflow state against serde_json in the same run:
//! decoding with Go's rules vs parsing the same bytes into a
//! `serde_json::Value`, and encoding vs `serde_json::to_vec` of that value.
//! Replay and every cold read pay the decode; every save pays the encode.
//!
//! `cargo bench -p wf-tests --bench codec`; the ratios are printed at the end
//! and recorded in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wf_host::model;
use wf_tests::bench::{median, timed, typical_state};

fn codec(c: &mut Criterion) {
    let state = typical_state("wf-000042", 42);
    let bytes = model::encode_state(&state).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut group = c.benchmark_group("codec");
    group.bench_function("decode_state", |b| {
        b.iter_custom(|n| {
            timed("decode", n, || {
                for _ in 0..n {
                    black_box(model::decode_state(black_box(&bytes)).unwrap());
                }
            })
        })
    });
    group.bench_function("serde_json_value_parse", |b| {
        b.iter_custom(|n| {
            timed("value_parse", n, || {
                for _ in 0..n {
                    black_box(
                        serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap(),
                    );
                }
            })
        })
    });
    group.bench_function("encode_state", |b| {
        b.iter_custom(|n| {
            timed("encode", n, || {
                for _ in 0..n {
                    black_box(model::encode_state(black_box(&state)).unwrap());
                }
            })
        })
    });
    group.bench_function("serde_json_value_write", |b| {
        b.iter_custom(|n| {
            timed("value_write", n, || {
                for _ in 0..n {
                    black_box(serde_json::to_vec(black_box(&value)).unwrap());
                }
            })
        })
    });
    group.finish();
    let us = |name| median(name).unwrap().as_secs_f64() * 1e6;
    let (decode, parse, encode, write) = (
        us("decode"),
        us("value_parse"),
        us("encode"),
        us("value_write"),
    );
    println!("\n== codec, one state of {} bytes ==", bytes.len());
    println!(
        "decode_state            {decode:.2} µs  ({:.2}x serde_json::Value parse, {parse:.2} µs)",
        decode / parse
    );
    println!(
        "encode_state            {encode:.2} µs  ({:.2}x serde_json::Value write, {write:.2} µs)",
        encode / write
    );
    println!("decode / encode         {:.2}x", decode / encode);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = codec
}
criterion_main!(benches);
