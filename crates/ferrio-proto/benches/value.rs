//! Event-argument codec cost: parse and write of a typical chat event, the per-event hot path.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrio_proto::Bytes;
use ferrio_proto::value::Value;
use std::hint::black_box;

const CHAT: &str = r#"["chat",{"room":"r1","text":"hello world","ts":1700000000000}]"#;
/// The same with a quote and a newline in the text: escapes in a string.
const CHAT_ESCAPED: &str =
    r#"["chat",{"room":"r1","text":"she said \"hello\"\nworld","ts":1700000000000}]"#;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("value");
    g.throughput(Throughput::Bytes(CHAT.len() as u64));
    g.bench_function("from_json_chat", |b| {
        b.iter(|| Value::from_json(black_box(CHAT)).unwrap())
    });
    g.bench_function("from_json_chat_escaped", |b| {
        b.iter(|| Value::from_json(black_box(CHAT_ESCAPED)).unwrap())
    });
    let v = Value::from_json(CHAT).unwrap();
    g.bench_function("write_json_chat", |b| {
        let mut out = String::with_capacity(128);
        let mut atts: Vec<Bytes> = Vec::new();
        b.iter(|| {
            out.clear();
            black_box(&v).write_json(&mut out, &mut atts);
            black_box(out.len())
        })
    });
    g.bench_function("round_trip_chat", |b| {
        b.iter(|| {
            let v = Value::from_json(black_box(CHAT)).unwrap();
            let mut out = String::new();
            let mut atts = Vec::new();
            v.write_json(&mut out, &mut atts);
            out
        })
    });
    // Reference point: the same work through serde_json::Value.
    g.bench_function("serde_json_value_from_str_chat", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(CHAT)).unwrap())
    });
    g.bench_function("serde_json_value_round_trip_chat", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(CHAT)).unwrap();
            serde_json::to_string(&v).unwrap()
        })
    });
    let bin = Value::Array(vec![
        Value::from("upload"),
        Value::from_json(r#"{"name":"a.png"}"#).unwrap(),
        Value::Binary(Bytes::from(vec![7u8; 1024])),
    ]);
    let (text, atts) = bin.to_json();
    g.bench_function("resolve_placeholders_upload", |b| {
        b.iter(|| {
            Value::from_json(black_box(&text))
                .unwrap()
                .resolve_placeholders(black_box(&atts))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
