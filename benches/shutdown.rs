//! Shutdown under load: 64 keep-alive connections pipelining 16 requests each, as fast as two
//! client threads can, then `stop()` from another thread. Criterion measures the drain (from
//! `stop()` to the last admitted request ending, the server's `drain_time`); the run prints the
//! time until the server thread exits and what became of the requests that arrived after the
//! stop: answered (200), refused (503 and `Connection: close`), or never answered (pipelined
//! behind a 503 on a connection the server closed).
//!
//! - `shutdown/fast`: `GET /` only;
//! - `shutdown/slow_in_flight`: one request in 16 is `GET /delay?ms=50` (a deferred response),
//!   so requests are in flight at the stop and the drain waits for them.
//!
//! ```text
//! cargo bench --features server --bench shutdown
//! ```

// `criterion_group!` makes an undocumented `pub fn`.
#![allow(missing_docs)]

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::client::{bench_limits, connect, Srv, GET};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use reqguard::http::Guarded;
use reqguard::Config;

const CONNECTIONS: usize = 64;
const DEPTH: usize = 16;
const LOAD: Duration = Duration::from_millis(300);
const SCENARIO_LIMIT: Duration = Duration::from_secs(8);

#[derive(Default, Clone, Copy)]
struct Counts {
    before_stop: u64,
    answered: u64,
    refused: u64,
    unanswered: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.before_stop += o.before_stop;
        self.answered += o.answered;
        self.refused += o.refused;
        self.unanswered += o.unanswered;
    }
}

/// Reads one answer: `None` at end of stream, else (status, `Connection: close`).
fn read_answer(r: &mut BufReader<TcpStream>, line: &mut String) -> io::Result<Option<(u16, bool)>> {
    line.clear();
    if r.read_line(line)? == 0 {
        return Ok(None);
    }
    let status = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut len, mut close) = (0u64, false);
    loop {
        line.clear();
        if r.read_line(line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("connection: close") {
            close = true;
        }
    }
    io::copy(&mut r.by_ref().take(len), &mut io::sink())?;
    Ok(Some((status, close)))
}

/// Drives `streams` until each is closed by the server or the scenario limit passes.
fn client(
    streams: Vec<TcpStream>,
    requests: &[u8],
    stopped: &AtomicBool,
    until: Instant,
) -> Counts {
    let mut conns: Vec<_> = streams
        .into_iter()
        .map(|s| Some(BufReader::new(s)))
        .collect();
    let mut counts = Counts::default();
    let mut line = String::new();
    while Instant::now() < until && conns.iter().any(Option::is_some) {
        for slot in conns.iter_mut() {
            if let Some(conn) = slot {
                if conn.get_mut().write_all(requests).is_err() {
                    *slot = None;
                }
            }
        }
        for slot in conns.iter_mut() {
            let Some(conn) = slot else { continue };
            for got in 0..DEPTH {
                match read_answer(conn, &mut line) {
                    Ok(Some((status, close))) => {
                        let after = stopped.load(Ordering::Acquire);
                        match (after, status) {
                            (false, _) => counts.before_stop += 1,
                            (true, 200) => counts.answered += 1,
                            (true, _) => counts.refused += 1,
                        }
                        if close {
                            counts.unanswered += (DEPTH - got - 1) as u64;
                            *slot = None;
                            break;
                        }
                    }
                    Ok(None) | Err(_) => {
                        counts.unanswered += (DEPTH - got) as u64;
                        *slot = None;
                        break;
                    }
                }
            }
        }
    }
    counts
}

/// One scenario: load, stop, drain. Returns the drain time, the time to the server's exit,
/// and the counts.
fn scenario(slow: bool) -> (Duration, Duration, Counts, u64) {
    let srv = Srv::start(
        || Guarded::embedded("server", Config::default()),
        bench_limits(),
    );
    let mut requests = GET.repeat(DEPTH);
    if slow {
        requests.truncate(GET.len() * (DEPTH - 1));
        requests.extend_from_slice(b"GET /delay?ms=50 HTTP/1.1\r\nHost: bench\r\n\r\n");
    }
    let mut streams = connect(srv.addr, CONNECTIONS);
    let second = streams.split_off(CONNECTIONS / 2);
    let stopped = AtomicBool::new(false);
    let until = Instant::now() + SCENARIO_LIMIT;
    let (counts, exit) = thread::scope(|s| {
        let a = s.spawn(|| client(streams, &requests, &stopped, until));
        let b = s.spawn(|| client(second, &requests, &stopped, until));
        thread::sleep(LOAD);
        stopped.store(true, Ordering::Release);
        let t0 = Instant::now();
        srv.stop.stop();
        let report = srv.join();
        let exit = t0.elapsed();
        let mut counts = a.join().expect("client");
        counts.add(b.join().expect("client"));
        (counts, (exit, report))
    });
    let (exit, report) = exit;
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    let drain = report.drain_time.expect("the drain completed");
    (drain, exit, counts, report.stats.served)
}

fn bench_shutdown(c: &mut Criterion) {
    let mut group = c.benchmark_group("shutdown");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(1));
    for (name, slow) in [("fast", false), ("slow_in_flight", true)] {
        let mut total = Counts::default();
        let (mut runs, mut exit_sum, mut served) = (0u32, Duration::ZERO, 0u64);
        group.bench_function(BenchmarkId::new(name, CONNECTIONS), |b| {
            b.iter_custom(|iters| {
                let mut drains = Duration::ZERO;
                for _ in 0..iters {
                    let (drain, exit, counts, s) = scenario(slow);
                    drains += drain;
                    exit_sum += exit;
                    served += s;
                    total.add(counts);
                    runs += 1;
                }
                drains
            })
        });
        let after = (total.answered + total.refused + total.unanswered) as f64;
        println!(
            "shutdown/{name}: {runs} runs; stop to server exit {:.1} ms on average; {} requests \
             served before the stop on average; of the {} requests in flight or arriving after \
             the stop: {:.1}% answered 200, {:.1}% refused 503, {:.1}% never answered \
             (pipelined behind a 503 on a connection the server closed); the server served {} \
             per run",
            exit_sum.as_secs_f64() * 1e3 / f64::from(runs),
            total.before_stop / u64::from(runs),
            after as u64 / u64::from(runs),
            100.0 * total.answered as f64 / after,
            100.0 * total.refused as f64 / after,
            100.0 * total.unanswered as f64 / after,
            served / u64::from(runs),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_shutdown);
criterion_main!(benches);
