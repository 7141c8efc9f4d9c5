//! `cargo bench`: JSONL encoding of a 65,536-row, 15-column batch shaped like
//! viewer sessions (ids, ints, floats, short strings, timestamps, a date).

use std::hint::black_box;
use std::sync::Arc;

use _native::{FieldSpec, JsonlEncoder};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{Field, Schema};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: usize = 65_536;

/// xorshift64: deterministic data without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn viewer_sessions() -> (Vec<FieldSpec>, RecordBatch) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
        "Roku/DVP-12.5",
        "AppleCoreMedia/1.0.0.21A329 (iPhone; U; CPU OS 17_0 like Mac OS X)",
        "VLC/3.0.18 LibVLC/3.0.18",
    ];
    let countries = ["US", "FR", "DE", "BR", "JP", "GB"];
    let start: i64 = 1_767_323_045_000_000;
    let mut connected: Vec<i64> = (0..ROWS)
        .map(|_| start + rng.below(3 * 86_400_000_000) as i64)
        .collect();
    connected.sort_unstable();
    let durations: Vec<i32> = (0..ROWS).map(|_| rng.below(20_000) as i32).collect();
    let disconnected: Vec<Option<i64>> = connected
        .iter()
        .zip(&durations)
        .map(|(c, d)| (rng.below(10) != 0).then_some(c + i64::from(*d) * 1_000_000))
        .collect();
    let uuids: Vec<String> = (0..ROWS)
        .map(|_| {
            let (a, b) = (rng.next(), rng.next());
            format!(
                "{:08x}-{:04x}-4{:03x}-9{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 52,
                b & 0xffff_ffff_ffff
            )
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..ROWS as i64).map(|i| 10_000_000 + i),
        )),
        Arc::new(StringArray::from_iter_values(&uuids)),
        Arc::new(Int64Array::from_iter_values(
            (0..ROWS).map(|_| rng.below(5_000_000) as i64),
        )),
        Arc::new(Int32Array::from(durations)),
        Arc::new(Int64Array::from_iter_values(
            (0..ROWS).map(|_| rng.below(10_000_000_000) as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..ROWS).map(|_| rng.unit() * 180.0 - 90.0),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..ROWS).map(|_| rng.unit() * 360.0 - 180.0),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..ROWS).map(|_| (rng.unit() * 89_000.0 + 1_000.0).round() / 10.0),
        )),
        Arc::new(BooleanArray::from_iter(
            (0..ROWS).map(|_| Some(rng.below(2) == 0)),
        )),
        Arc::new(TimestampMicrosecondArray::from(connected.clone()).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(disconnected).with_timezone("UTC")),
        Arc::new(Date32Array::from_iter_values(
            connected
                .iter()
                .map(|c| c.div_euclid(86_400_000_000) as i32),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..ROWS).map(|_| countries[rng.below(6) as usize]),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..ROWS).map(|_| agents[rng.below(4) as usize]),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..ROWS).map(|_| 1 + rng.below(100_000) as i64),
        )),
    ];
    let specs = [
        ("id", "global_id", Some("ViewerSession")),
        ("sessionId", "string", None),
        ("viewerId", "int", None),
        ("durationSeconds", "int", None),
        ("bytesSent", "int", None),
        ("latitude", "float", None),
        ("longitude", "float", None),
        ("bitrateKbps", "float", None),
        ("record", "bool", None),
        ("connectedAt", "time", None),
        ("disconnectedAt", "time", None),
        ("day", "date", None),
        ("country", "string", None),
        ("userAgent", "string", None),
        ("__parentId", "global_id", Some("Stream")),
    ]
    .map(|(name, kind, extra)| FieldSpec::parse(name, kind, extra).expect("valid spec"));
    let fields: Vec<Field> = specs
        .iter()
        .zip(&columns)
        .map(|(s, c)| Field::new(s.name.clone(), c.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("valid batch");
    (specs.to_vec(), batch)
}

fn bench_encode(c: &mut Criterion) {
    let (specs, batch) = viewer_sessions();
    let encoder = JsonlEncoder::new(specs);
    let bytes = encoder.encode(&batch).expect("encodes").len();
    let mut group = c.benchmark_group("jsonl");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("viewer_sessions_65536", |b| {
        b.iter(|| encoder.encode(black_box(&batch)).expect("encodes"))
    });
    let mut out = Vec::new();
    group.bench_function("viewer_sessions_65536_reused_buffer", |b| {
        b.iter(|| {
            out.clear();
            encoder
                .encode_into(black_box(&batch), &mut out)
                .expect("encodes");
        })
    });
    group.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
