//! The server against the floor: server CPU per request and throughput of the least a mio
//! server can do (`common/floor.rs`: read, count requests, write a fixed answer), the reference
//! server without accounting (`Unaccounted`) and with it (`Guarded`), in one paired run.
//!
//! Each side has its own server thread and C keep-alive connections sending D pipelined
//! `GET /` per round: C = 1 and D = 16 (the server and its client take turns), C = 64 and
//! D = 16 on two client threads (the server works while the clients do), and C = 1, D = 1.
//! The run alternates the three sides `PAIRS` times (`REQGUARD_FLOOR_PAIRS`, 40 by default),
//! rotating which goes first, each side serving the same number of requests per alternation.
//! Per side it sums the wall time and the server thread's CPU time: user time
//! (`/proc/.../stat` utime, 10 ms ticks, what the target is about) and on-CPU time
//! (`schedstat`, nanoseconds, user and system).
//!
//! On a shared machine the load moves between one alternation and the next, so besides the
//! ratio of the sums the table gives, per side, the ratio to the floor **within each
//! alternation** (the two ran seconds apart at most) and of those ratios the median, the
//! quartiles and the share of alternations at or above the throughput target. Only the ratios
//! mean something; the absolute figures move with the load.
//!
//! Where the threads run decides what one connection measures, so the run pins them (with
//! `taskset`; `REQGUARD_FLOOR_PIN`): `split` (default) puts the servers on CPU 1 and the
//! clients on CPU 0, so each exchange of a round costs a wake-up across CPUs; `one` puts
//! every thread on CPU 0, so a round costs the client's and the server's CPU time one after
//! the other; `none` leaves it to the scheduler, which moves between the two from one
//! alternation to the next (the ratios then spread from 0.3 to 1.1).
//!
//! ```text
//! cargo bench --features server --bench floor
//! REQGUARD_FLOOR_PIN=one REQGUARD_FLOOR_REQUESTS=3000000 cargo bench --features server --bench floor
//! REQGUARD_FLOOR_REQUESTS=3000000 cargo bench --features server --bench floor   # per side and depth
//! REQGUARD_FLOOR_PAIRS=80 REQGUARD_FLOOR_REQUESTS=3000000 cargo bench --features server --bench floor
//! REQGUARD_FLOOR_CASES=64x16 REQGUARD_FLOOR_PIN=one cargo bench --features server --bench floor   # one case
//! ```
//!
//! Targets (issue 10): guarded user CPU per request at most 1.5x the floor's at depth 16;
//! throughput at least 0.95x the floor's at depth 16.

mod common;

use std::env;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::client::{answer_len, bench_limits, connect, Pipeline, Srv, ThreadClock};
use common::floor::Floor;
use reqguard::http::{Guarded, Unaccounted};
use reqguard::Config;

/// How many times the three sides take turns, unless `REQGUARD_FLOOR_PAIRS` says.
const PAIRS: usize = 40;

/// The throughput target against the floor (issue 10).
const TARGET: f64 = 0.95;

/// One alternation's run of one side.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu_ns: u64,
}

/// One side: its server's address and clock, a connection and its buffers, and its runs.
struct Side {
    name: &'static str,
    clock: ThreadClock,
    streams: Vec<TcpStream>,
    /// One per client thread: one thread for one connection, two for more.
    pipelines: Vec<Pipeline>,
    /// One per counted alternation, in order.
    samples: Vec<Sample>,
    user_ns: u64,
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
            samples: Vec::new(),
            user_ns: 0,
        }
    }

    /// Runs `rounds` rounds and records them as one sample.
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
        let wall = start.elapsed();
        self.user_ns += self.clock.user_ns() - user;
        let cpu_ns = self.clock.cpu_ns() - cpu;
        self.samples.push(Sample { wall, cpu_ns });
    }

    /// Forgets the runs so far (the warm-up).
    fn reset(&mut self) {
        self.samples.clear();
        self.user_ns = 0;
    }

    fn wall(&self) -> Duration {
        self.samples.iter().map(|s| s.wall).sum()
    }

    fn cpu_ns(&self) -> u64 {
        self.samples.iter().map(|s| s.cpu_ns).sum()
    }
}

/// The median and quartiles of `values` (sorted here), nearest rank.
fn quartiles(values: &mut [f64]) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

/// Per alternation, `side`'s throughput and on-CPU time against the floor's in the same one.
fn paired_ratios(side: &Side, floor: &Side) -> (Vec<f64>, Vec<f64>) {
    let pairs = side.samples.iter().zip(&floor.samples);
    // The same requests on both sides: throughput / floor is the floor's wall time / the side's.
    let throughput = pairs
        .clone()
        .map(|(s, f)| f.wall.as_secs_f64() / s.wall.as_secs_f64())
        .collect();
    let cpu = pairs
        .map(|(s, f)| s.cpu_ns as f64 / f.cpu_ns.max(1) as f64)
        .collect();
    (throughput, cpu)
}

/// Pins the calling thread to `cpu` with `taskset` (the crate forbids `unsafe`, so no
/// `sched_setaffinity` here); threads it spawns afterwards inherit the mask. False if the
/// machine has fewer CPUs or `taskset` failed.
fn pin_current_thread(cpu: usize) -> bool {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str().map(str::to_owned))
    else {
        return false;
    };
    cpu < cpus
        && Command::new("taskset")
            .args(["-pc", &cpu.to_string(), &tid])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The cases to run, as `connections x depth`: `REQGUARD_FLOOR_CASES` (`64x16`, or several
/// separated by commas) or, by default, 1 x 16, 64 x 16 and 1 x 1.
fn cases() -> Vec<(usize, usize)> {
    let Ok(list) = env::var("REQGUARD_FLOOR_CASES") else {
        return vec![(1, 16), (64, 16), (1, 1)];
    };
    list.split(',')
        .map(|case| {
            case.trim()
                .split_once('x')
                .and_then(|(c, d)| Some((c.parse().ok()?, d.parse().ok()?)))
                .filter(|&(c, d): &(usize, usize)| c > 0 && d > 0)
                .unwrap_or_else(|| {
                    panic!("REQGUARD_FLOOR_CASES: `64x16` and the like, not {case:?}")
                })
        })
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

fn main() {
    // Under `cargo test --benches` (or a filter), do nothing.
    if env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let per_side = env_number("REQGUARD_FLOOR_REQUESTS", 1_000_000);
    let pairs = env_number("REQGUARD_FLOOR_PAIRS", PAIRS as u64).max(1) as usize;
    let placement = env::var("REQGUARD_FLOOR_PIN").unwrap_or_else(|_| "split".into());
    // Threads inherit the CPUs of the thread that spawns them: pin before the servers start,
    // then (split) move this thread, which runs or spawns the clients.
    let server_cpu = match placement.as_str() {
        "split" => pin_current_thread(1),
        "one" => pin_current_thread(0),
        "none" => false,
        other => panic!("REQGUARD_FLOOR_PIN: split, one or none, not {other:?}"),
    };
    let floor = Floor::start();
    let plain = Srv::start(Unaccounted::new, bench_limits());
    let guarded = Srv::start(
        || Guarded::embedded("server", Config::default()),
        bench_limits(),
    );
    let placement = match placement.as_str() {
        "split" if server_cpu && pin_current_thread(0) => "servers on CPU 1, clients on CPU 0",
        "split" if server_cpu => "servers and clients on CPU 1 (the clients could not be moved)",
        "one" if server_cpu => "servers and clients on CPU 0",
        _ => "not pinned",
    };
    println!("floor: server CPU per request, floor vs reference server, {pairs} alternations, {placement}");
    println!("| connections | depth | side | requests | user CPU ns/request | on-CPU ns/request | requests/s | user CPU / floor | on-CPU / floor | throughput / floor | paired throughput / floor: median [quartiles] | alternations >= {TARGET} | paired on-CPU / floor: median [quartiles] |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
    for (conns, depth) in cases() {
        let mut sides = [
            Side::new("floor", floor.addr, floor.clock.clone(), conns, depth),
            Side::new("unaccounted", plain.addr, plain.clock.clone(), conns, depth),
            Side::new("guarded", guarded.addr, guarded.clock.clone(), conns, depth),
        ];
        // Fewer requests without pipelining: each costs a round trip.
        let requests = if depth == 1 { per_side / 10 } else { per_side };
        let rounds = (requests / pairs as u64 / (conns * depth) as u64).max(1);
        for side in &mut sides {
            side.run(rounds / 4 + 1); // warm-up, not counted below
            side.reset();
        }
        for pair in 0..pairs {
            for k in 0..sides.len() {
                sides[(pair + k) % 3].run(rounds);
            }
        }
        let n = (rounds * pairs as u64 * (conns * depth) as u64) as f64;
        report(conns, depth, n, &sides);
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

/// One row per side: the sums' figures and ratios, then the paired ratios' spread.
fn report(conns: usize, depth: usize, n: f64, sides: &[Side; 3]) {
    let per = |s: &Side| {
        (
            s.user_ns as f64 / n,
            s.cpu_ns() as f64 / n,
            n / s.wall().as_secs_f64(),
        )
    };
    let (fu, fc, ft) = per(&sides[0]);
    for side in sides {
        let (u, c, t) = per(side);
        let (mut throughput, mut cpu) = paired_ratios(side, &sides[0]);
        let met = throughput.iter().filter(|&&r| r >= TARGET).count();
        let alternations = throughput.len();
        let [t1, tm, t3] = quartiles(&mut throughput);
        let [c1, cm, c3] = quartiles(&mut cpu);
        println!(
            "| {conns} | {depth} | {} | {n:.0} | {u:.0} | {c:.0} | {t:.0} | {:.2} | {:.2} | {:.3} | {tm:.3} [{t1:.3}, {t3:.3}] | {met}/{alternations} | {cm:.3} [{c1:.3}, {c3:.3}] |",
            side.name,
            u / fu,
            c / fc,
            t / ft
        );
    }
}
