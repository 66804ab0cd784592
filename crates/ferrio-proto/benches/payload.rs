//! Payload encode/decode throughput: the per-poll cost of the long-polling transport.
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrio_proto::engine::{Frame, PayloadEncoder, decode_payload};
use std::hint::black_box;

fn frames() -> Vec<Frame> {
    let mut v = Vec::new();
    for i in 0..64 {
        if i % 8 == 0 {
            v.push(Frame::binary(vec![i as u8; 256]));
        } else {
            v.push(Frame::message(&format!(
                "42[\"chat\",{{\"text\":\"message number {i}\"}}]"
            )));
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut enc = PayloadEncoder::new(usize::MAX);
    for f in &frames {
        enc.push(f);
    }
    let body = enc.finish();
    let mut g = c.benchmark_group("payload");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("encode_64", |b| {
        b.iter(|| {
            let mut enc = PayloadEncoder::new(1_000_000);
            for f in &frames {
                enc.push(black_box(f));
            }
            enc.finish()
        })
    });
    g.bench_function("decode_64", |b| {
        b.iter(|| {
            let d = decode_payload(Bytes::clone(black_box(&body))).unwrap();
            d.filter(|p| p.is_ok()).count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
