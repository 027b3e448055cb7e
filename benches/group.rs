//! One loop against two, paired in one run: a guarded `LoopGroup` of 1 loop and one of 2 loops,
//! both listening, loaded in turn round by round by the same in-process clients over loopback.
//!
//! On this machine the load generator shares the two cores with the server, so requests per
//! second alone says little: the table gives, beside it, the server's CPU time per request (the
//! loop threads' own time from `/proc/self/task/<tid>/schedstat`) and how the requests spread
//! over the loops.
//!
//! ```text
//! cargo bench --features server --bench group
//! ```
//!
//! Knobs (environment): `REQGUARD_GROUP_PAIRS` (alternations, default 8),
//! `REQGUARD_GROUP_REQUESTS` (requests per side per pair, default 40,000),
//! `REQGUARD_GROUP_DEPTH` (pipelined requests per connection per round, default 8).

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::client::{answer_len, bench_limits, connect, Pipeline};
use reqguard::http::{demo_routes, GroupHandle, GroupReport, Guarded, LoopGroup};
use reqguard::Config;

/// Client threads, and keep-alive connections per thread (16 in all, so `SO_REUSEPORT`'s hash
/// has something to spread).
const CLIENT_THREADS: usize = 4;
const CONNS_PER_THREAD: usize = 4;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
        })
        .unwrap_or(default)
}

/// The ids of this process's threads.
fn tasks() -> HashSet<u64> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A group under test: its handle, its loop threads, and its clients' connections.
struct Side {
    name: &'static str,
    group: GroupHandle,
    loop_tids: Vec<u64>,
    clients: Vec<(Vec<TcpStream>, Pipeline)>,
    per_round: u64,
    time: Duration,
    cpu_ns: u64,
    requests: u64,
}

impl Side {
    fn start(name: &'static str, loops: usize, depth: usize) -> Side {
        let before = tasks();
        let group = LoopGroup::new()
            .loops(loops)
            .limits(bench_limits())
            .spawn(
                |_| Guarded::embedded("server", Config::default()),
                demo_routes,
            )
            .expect("spawn the group");
        let loop_tids: Vec<u64> = tasks().difference(&before).copied().collect();
        assert_eq!(loop_tids.len(), loops, "one thread per loop");
        let clients = (0..CLIENT_THREADS)
            .map(|_| {
                let mut streams = connect(group.addr(), CONNS_PER_THREAD);
                let len = answer_len(&mut streams[0]);
                for s in &mut streams[1..] {
                    answer_len(s);
                }
                (streams, Pipeline::new(depth, len))
            })
            .collect();
        Side {
            name,
            group,
            loop_tids,
            clients,
            per_round: (CLIENT_THREADS * CONNS_PER_THREAD * depth) as u64,
            time: Duration::ZERO,
            cpu_ns: 0,
            requests: 0,
        }
    }

    /// CPU time of the loop threads so far, in nanoseconds.
    fn loop_cpu_ns(&self) -> u64 {
        self.loop_tids
            .iter()
            .filter_map(|tid| {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()
            })
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// `rounds` rounds on every connection, one client thread per connection set.
    fn run(&mut self, rounds: u64) {
        let cpu = self.loop_cpu_ns();
        let start = Instant::now();
        thread::scope(|s| {
            for (streams, pipeline) in &mut self.clients {
                s.spawn(move || {
                    for _ in 0..rounds {
                        pipeline.round(streams).expect("round");
                    }
                });
            }
        });
        self.time += start.elapsed();
        self.cpu_ns += self.loop_cpu_ns() - cpu;
        self.requests += rounds * self.per_round;
    }

    fn finish(self) -> (Measured, GroupReport) {
        let summary = Measured {
            name: self.name,
            rate: self.requests as f64 / self.time.as_secs_f64(),
            cpu_per_request: self.cpu_ns as f64 / self.requests as f64,
            requests: self.requests,
        };
        drop(self.clients);
        let report = self.group.stop().expect("the group stops");
        (summary, report)
    }
}

/// What one side measured.
struct Measured {
    name: &'static str,
    rate: f64,
    cpu_per_request: f64,
    requests: u64,
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours skips this file.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"group".contains(a.as_str()))
    {
        return;
    }
    let pairs = env_usize("REQGUARD_GROUP_PAIRS", 8);
    let per_side = env_usize("REQGUARD_GROUP_REQUESTS", 40_000) as u64;
    let depth = env_usize("REQGUARD_GROUP_DEPTH", 8);
    let mut one = Side::start("1 loop", 1, depth);
    let mut two = Side::start("2 loops", 2, depth);
    let rounds = (per_side / one.per_round).max(1);
    // Warm both (pools, buffers, caches), then alternate which goes first.
    one.run(rounds / 4 + 1);
    two.run(rounds / 4 + 1);
    (one.time, one.cpu_ns, one.requests) = (Duration::ZERO, 0, 0);
    (two.time, two.cpu_ns, two.requests) = (Duration::ZERO, 0, 0);
    for i in 0..pairs {
        if i % 2 == 0 {
            one.run(rounds);
            two.run(rounds);
        } else {
            two.run(rounds);
            one.run(rounds);
        }
    }
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "group: {pairs} pairs x {} requests per side, {CLIENT_THREADS} client threads x \
         {CONNS_PER_THREAD} keep-alive connections, depth {depth}, {cpus} CPUs shared with the clients",
        rounds * one.per_round
    );
    let (a, ra) = one.finish();
    let (b, rb) = two.finish();
    println!("| server | req/s | server CPU µs/request | requests per loop | leaked |");
    println!("|---|---:|---:|---|---:|");
    for (side, report) in [(&a, &ra), (&b, &rb)] {
        let spread: Vec<String> = report
            .loops
            .iter()
            .map(|r| r.stats.served.to_string())
            .collect();
        println!(
            "| {} | {:.0} | {:.2} | {} | {} |",
            side.name,
            side.rate,
            side.cpu_per_request / 1e3,
            spread.join(" / "),
            report.totals.leaked
        );
        assert!(report.is_clean(), "{report}");
        assert!(report.totals.stats.served >= side.requests);
    }
    println!(
        "2 loops / 1 loop: throughput {:.3}, server CPU per request {:.3}",
        b.rate / a.rate,
        b.cpu_per_request / a.cpu_per_request
    );
}
