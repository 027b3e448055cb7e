//! Chunked body decoding cost per decoded byte (issue 10, row 2): bodies of 64 KiB, 256 KiB and
//! 1 MiB, in 1-byte and 64-byte chunks, fed to `ChunkedDecoder` in 1,460-byte pieces (one TCP
//! segment each) as a connection would. The decoder keeps its state across pieces, so the cost
//! per byte is flat in the body size; it used to re-decode the whole body on every read.
//!
//! ```text
//! cargo bench --bench chunked                    # a short run, ~15 s
//! CHUNKED_BENCH_SECS=5 cargo bench --bench chunked
//! ```

// `criterion_group!` makes an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reqguard::http::{ChunkedDecoder, Limits};

const SIZES: [usize; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];
const CHUNKS: [usize; 2] = [1, 64];
/// What one read from the socket brings.
const SEGMENT: usize = 1460;

fn encode(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() * 6);
    for piece in body.chunks(chunk) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

fn decode(wire: &[u8], limits: &Limits, body: &mut Vec<u8>) -> usize {
    body.clear();
    let mut decoder = ChunkedDecoder::new(limits);
    let mut used = 0;
    for segment in wire.chunks(SEGMENT) {
        used += decoder.decode(segment, body).expect("a valid body");
    }
    assert!(decoder.is_done());
    used
}

fn bench_chunked(c: &mut Criterion) {
    let secs = std::env::var("CHUNKED_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut group = c.benchmark_group("chunked_decode");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(secs));
    // 1-byte chunks of a 1 MiB body carry 5 MiB of framing: allow it here.
    let limits = Limits::default().with_max_chunk_overhead(8 << 20);
    let mut body = Vec::with_capacity(1 << 20);
    for chunk in CHUNKS {
        for size in SIZES {
            let data: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            let wire = encode(&data, chunk);
            group.throughput(Throughput::Bytes(size as u64));
            let id = BenchmarkId::new(format!("{chunk}-byte chunks"), size / 1024);
            group.bench_function(id, |b| {
                b.iter(|| black_box(decode(black_box(&wire), &limits, &mut body)));
            });
            assert_eq!(body, data);
        }
    }
    group.finish();
}

criterion_group!(benches, bench_chunked);
criterion_main!(benches);
