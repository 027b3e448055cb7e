//! Request throughput on the mio loop: an in-process server and client threads over loopback,
//! the guarded server (every request through reqguard) against the same server with accounting
//! switched off (`Unaccounted`), in the same run.
//!
//! - `throughput/<C>conn_depth<D>`: C keep-alive connections (1, 64, 1,024), D requests
//!   pipelined per connection per round (1 and 16). Criterion's `thrpt` is requests per second.
//!   After each pair, a paired run alternates the two servers round by round (the machine is
//!   shared and noisy: only side-by-side ratios mean something) and prints the throughput ratio
//!   and the server thread's CPU time per request (`/proc/<pid>/task/<tid>/schedstat`).
//! - `connections/<N>`: N - 1 idle keep-alive connections open and one busy one (depth 16):
//!   the cost per request must not grow with N. N goes to 10,000 or to what the open-file limit
//!   allows with both ends in this process (`ulimit -n`; the figure used is printed).
//!
//! ```text
//! cargo bench --features server --bench throughput
//! ```

// `criterion_group!` makes an undocumented `pub fn`.
#![allow(missing_docs)]

mod common;

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::client::{answer_len, bench_limits, connect, fd_budget, Pipeline, Srv};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reqguard::http::{Guarded, Unaccounted};
use reqguard::Config;

const CONNECTIONS: [usize; 3] = [1, 64, 1024];
const DEPTHS: [usize; 2] = [1, 16];

/// A client side: its connections split over one or two threads, each with its buffers.
struct Clients {
    streams: Vec<TcpStream>,
    pipelines: Vec<Pipeline>,
    per_round: u64,
}

impl Clients {
    fn open(srv: &Srv, conns: usize, depth: usize) -> Clients {
        let mut streams = connect(srv.addr, conns);
        let len = answer_len(&mut streams[0]);
        let threads = if conns >= 2 { 2 } else { 1 };
        Clients {
            streams,
            pipelines: (0..threads).map(|_| Pipeline::new(depth, len)).collect(),
            per_round: (conns * depth) as u64,
        }
    }

    /// `rounds` rounds on every connection; the wall time.
    fn run(&mut self, rounds: u64) -> Duration {
        let start = Instant::now();
        if self.pipelines.len() == 1 {
            for _ in 0..rounds {
                self.pipelines[0].round(&mut self.streams).expect("round");
            }
        } else {
            let half = self.streams.len() / 2;
            let (a, b) = self.streams.split_at_mut(half);
            let (pa, pb) = self.pipelines.split_at_mut(1);
            thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..rounds {
                        pa[0].round(a).expect("round");
                    }
                });
                for _ in 0..rounds {
                    pb[0].round(b).expect("round");
                }
            });
        }
        start.elapsed()
    }
}

/// Alternates the two servers `pairs` times, `rounds` rounds each; returns
/// (guarded/unaccounted throughput, guarded CPU ns/request, unaccounted CPU ns/request).
fn paired(
    guarded: (&Srv, &mut Clients),
    plain: (&Srv, &mut Clients),
    rounds: u64,
    pairs: usize,
) -> (f64, f64, f64) {
    let (gs, gc) = guarded;
    let (ps, pc) = plain;
    let (mut gt, mut pt, mut gcpu, mut pcpu) = (Duration::ZERO, Duration::ZERO, 0u64, 0u64);
    for i in 0..pairs {
        // Alternate which goes first, so neither always follows the other.
        for side in [i % 2, 1 - i % 2] {
            if side == 0 {
                let c0 = gs.cpu_ns();
                gt += gc.run(rounds);
                gcpu += gs.cpu_ns() - c0;
            } else {
                let c0 = ps.cpu_ns();
                pt += pc.run(rounds);
                pcpu += ps.cpu_ns() - c0;
            }
        }
    }
    let requests = (rounds * pairs as u64 * gc.per_round) as f64;
    (
        pt.as_secs_f64() / gt.as_secs_f64(),
        gcpu as f64 / requests,
        pcpu as f64 / requests,
    )
}

fn bench_throughput(c: &mut Criterion) {
    let guarded = Srv::start(
        || Guarded::embedded("server", Config::default()),
        bench_limits(),
    );
    let plain = Srv::start(Unaccounted::new, bench_limits());
    let mut table = Vec::new();
    for conns in CONNECTIONS {
        for depth in DEPTHS {
            let mut gc = Clients::open(&guarded, conns, depth);
            let mut pc = Clients::open(&plain, conns, depth);
            let mut group = c.benchmark_group(format!("throughput/{conns}conn_depth{depth}"));
            group.throughput(Throughput::Elements(gc.per_round));
            group.bench_function(BenchmarkId::new("guarded", conns * depth), |b| {
                b.iter_custom(|rounds| gc.run(rounds))
            });
            group.bench_function(BenchmarkId::new("unaccounted", conns * depth), |b| {
                b.iter_custom(|rounds| pc.run(rounds))
            });
            group.finish();
            // 5,000 requests per side per pair: 0.05 to 0.3 s at loopback speeds.
            let rounds = (5_000 / gc.per_round).max(2);
            let (ratio, gcpu, pcpu) = paired((&guarded, &mut gc), (&plain, &mut pc), rounds, 10);
            println!(
                "paired {conns:>4} conn depth {depth:>2}: guarded/unaccounted throughput {ratio:.3}; \
                 server CPU per request guarded {gcpu:.0} ns, unaccounted {pcpu:.0} ns ({:.3})",
                gcpu / pcpu
            );
            table.push((conns, depth, ratio, gcpu, pcpu));
        }
    }
    let g = guarded.finish();
    let p = plain.finish();
    println!(
        "guarded server: {} served, {} leaked; unaccounted: {} served",
        g.served(),
        g.leaked,
        p.served()
    );
    assert_eq!(g.leaked, 0);
    println!("| connections | depth | throughput guarded/unaccounted | server CPU ns/request guarded | unaccounted | CPU ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (conns, depth, ratio, gcpu, pcpu) in table {
        println!(
            "| {conns} | {depth} | {ratio:.3} | {gcpu:.0} | {pcpu:.0} | {:.3} |",
            gcpu / pcpu
        );
    }
}

fn bench_connections(c: &mut Criterion) {
    let budget = fd_budget();
    let max = budget.min(10_000);
    println!("connections: up to {max} (open-file budget {budget} with both ends in this process)");
    let srv = Srv::start(
        || Guarded::embedded("server", Config::default()),
        bench_limits(),
    );
    let mut group = c.benchmark_group("connections");
    group.throughput(Throughput::Elements(16));
    let mut idle: Vec<TcpStream> = Vec::new();
    let mut busy = Clients::open(&srv, 1, 16);
    for n in [1, 10, 100, 1_000, max] {
        // One busy connection and n - 1 idle ones, kept alive by one request each.
        let more = n - 1 - idle.len().min(n - 1);
        let mut fresh = connect(srv.addr, more);
        for s in &mut fresh {
            answer_len(s);
        }
        idle.append(&mut fresh);
        let c0 = srv.cpu_ns();
        let mut requests = 0u64;
        group.bench_function(BenchmarkId::new("guarded", n), |b| {
            b.iter_custom(|rounds| {
                requests += rounds * 16;
                busy.run(rounds)
            })
        });
        println!(
            "connections {n:>5}: server CPU per request {:.0} ns",
            (srv.cpu_ns() - c0) as f64 / requests as f64
        );
    }
    group.finish();
    drop(idle);
    let report = srv.finish();
    assert_eq!(report.leaked, 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = bench_throughput, bench_connections
}
criterion_main!(benches);
