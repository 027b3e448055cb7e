//! The server against the floor: server CPU per request and throughput of the least a mio
//! server can do (`common/floor.rs`: read, count requests, write a fixed answer), the reference
//! server without accounting (`Unaccounted`) and with it (`Guarded`), in one paired run.
//!
//! Each side has its own server thread and C keep-alive connections sending D pipelined
//! `GET /` per round: C = 1 and D = 16 (the server and its client take turns), C = 64 and
//! D = 16 on two client threads (the server works while the clients do), and C = 1, D = 1. The run alternates the three sides, `ROUNDS` rounds each,
//! `PAIRS` times, rotating which goes first, and sums per side the wall time and the server
//! thread's CPU time: user time (`/proc/.../stat` utime, 10 ms ticks, what the target is about)
//! and on-CPU time (`schedstat`, nanoseconds, user and system). Only the ratios mean something
//! on a shared machine; the absolute figures move with its load.
//!
//! ```text
//! cargo bench --features server --bench floor
//! REQGUARD_FLOOR_REQUESTS=2000000 cargo bench --features server --bench floor   # per side and depth
//! ```
//!
//! Targets (issue 10): guarded user CPU per request at most 1.5x the floor's at depth 16;
//! throughput at least 0.95x the floor's at depth 16.

mod common;

use std::env;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::client::{answer_len, bench_limits, connect, Pipeline, Srv, ThreadClock};
use common::floor::Floor;
use reqguard::http::{Guarded, Unaccounted};
use reqguard::Config;

/// How many times the three sides take turns.
const PAIRS: u64 = 10;

/// One side: its server's address and clock, a connection and its buffers, and the sums.
struct Side {
    name: &'static str,
    clock: ThreadClock,
    streams: Vec<TcpStream>,
    /// One per client thread: one thread for one connection, two for more.
    pipelines: Vec<Pipeline>,
    wall: Duration,
    user_ns: u64,
    cpu_ns: u64,
}

impl Side {
    fn new(
        name: &'static str,
        addr: SocketAddr,
        clock: ThreadClock,
        conns: usize,
        depth: usize,
    ) -> Side {
        let mut streams = connect(addr, conns);
        let len = answer_len(&mut streams[0]);
        for stream in &mut streams[1..] {
            answer_len(stream);
        }
        let threads = if conns > 1 { 2 } else { 1 };
        Side {
            name,
            clock,
            streams,
            pipelines: (0..threads).map(|_| Pipeline::new(depth, len)).collect(),
            wall: Duration::ZERO,
            user_ns: 0,
            cpu_ns: 0,
        }
    }

    fn run(&mut self, rounds: u64) {
        let (user, cpu) = (self.clock.user_ns(), self.clock.cpu_ns());
        let start = Instant::now();
        if let [pipeline] = &mut self.pipelines[..] {
            for _ in 0..rounds {
                pipeline.round(&mut self.streams).expect("round");
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
        self.wall += start.elapsed();
        self.user_ns += self.clock.user_ns() - user;
        self.cpu_ns += self.clock.cpu_ns() - cpu;
    }
}

fn main() {
    // Under `cargo test --benches` (or a filter), do nothing.
    if env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let per_side: u64 = env::var("REQGUARD_FLOOR_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("REQGUARD_FLOOR_REQUESTS: a number"))
        .unwrap_or(1_000_000);
    let floor = Floor::start();
    let plain = Srv::start(Unaccounted::new, bench_limits());
    let guarded = Srv::start(
        || Guarded::embedded("server", Config::default()),
        bench_limits(),
    );
    println!("floor: server CPU per request, floor vs reference server, {PAIRS} alternations");
    println!("| connections | depth | side | requests | user CPU ns/request | on-CPU ns/request | requests/s | user CPU / floor | on-CPU / floor | throughput / floor |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for (conns, depth) in [(1usize, 16usize), (64, 16), (1, 1)] {
        let mut sides = [
            Side::new("floor", floor.addr, floor.clock.clone(), conns, depth),
            Side::new("unaccounted", plain.addr, plain.clock.clone(), conns, depth),
            Side::new("guarded", guarded.addr, guarded.clock.clone(), conns, depth),
        ];
        // Fewer requests without pipelining: each costs a round trip.
        let requests = if depth == 1 { per_side / 10 } else { per_side };
        let rounds = (requests / PAIRS / (conns * depth) as u64).max(1);
        for side in &mut sides {
            side.run(rounds / 10 + 1); // warm-up, not counted below
            side.wall = Duration::ZERO;
            side.user_ns = 0;
            side.cpu_ns = 0;
        }
        for pair in 0..PAIRS as usize {
            for k in 0..sides.len() {
                sides[(pair + k) % 3].run(rounds);
            }
        }
        let n = (rounds * PAIRS * (conns * depth) as u64) as f64;
        let per = |s: &Side| {
            (
                s.user_ns as f64 / n,
                s.cpu_ns as f64 / n,
                n / s.wall.as_secs_f64(),
            )
        };
        let (fu, fc, ft) = per(&sides[0]);
        for side in &sides {
            let (u, c, t) = per(side);
            println!(
                "| {conns} | {depth} | {} | {n:.0} | {u:.0} | {c:.0} | {t:.0} | {:.2} | {:.2} | {:.3} |",
                side.name,
                u / fu,
                c / fc,
                t / ft
            );
        }
    }
    let answered = floor.finish();
    let g = guarded.finish();
    let p = plain.finish();
    println!(
        "floor answered {answered}; unaccounted served {}; guarded served {}, leaked {}",
        p.served(),
        g.served(),
        g.leaked
    );
    assert_eq!(g.leaked, 0);
}
