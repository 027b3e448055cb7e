//! The server against the floor: server CPU per request and throughput of the least a mio
//! server can do (`common/floor.rs`: read, count requests, write a fixed answer), the reference
//! server without accounting (`Unaccounted`) and with it (`Guarded`), in one paired run.
//!
//! Each side has its own server thread and C keep-alive connections sending D pipelined
//! `GET /` per round: by default C = 64, 16 and 1 with D = 16, and C = 64 with D = 1 (more than
//! one connection: two client threads, so the server works while the clients do; one: the
//! server and its client take turns). The run alternates the three sides `PAIRS` times
//! (`REQGUARD_FLOOR_PAIRS`, 40 by default), rotating which goes first, each side serving the same
//! number of requests per alternation. Per side and alternation it reads the wall time and the
//! server thread's CPU time: on-CPU time (`schedstat`: nanoseconds, user and system, exact) and
//! user time (`/proc/.../stat` utime).
//!
//! **User time is a sample, not a measure.** This kernel (`CONFIG_TICK_CPU_ACCOUNTING`,
//! `HZ=250`) splits a thread's exact on-CPU time into user and system by what its 4 ms ticks
//! found it doing, and `/proc` then rounds to 10 ms; `getrusage(RUSAGE_THREAD)` prints the same
//! split in microseconds. The floor's user share is about 6 % of its on-CPU time (the kernel's
//! socket work is the rest), so its user time over a million requests rests on a few dozen
//! ticks: ±20 % per run. With `REQGUARD_FLOOR_PERF=US` (as root, or with
//! `perf_event_paranoid` <= 1) the bench also runs `perf record -e cpu-clock:u -c US000 -k
//! CLOCK_MONOTONIC -t <the three server threads>`: a timer every US microseconds of a server
//! thread's on-CPU time, kept only when it interrupts user mode, so user time = samples x US,
//! with 4000 / US times the ticks' samples (no PMU is needed: `cpu-clock` is a software timer).
//! Each sample's time stamp places it in its side's alternation. The timer's interrupts add to
//! every side's system time alike (about 3 % at 100 us); the user ratios are what the run is for.
//!
//! On a shared machine the load moves between one alternation and the next, so besides the
//! ratio of the sums the tables give, per side, the ratio to the floor **within each
//! alternation** (the two ran seconds apart at most): the first table the median, the quartiles
//! and the share of alternations at or above the throughput target; the second (`paired`) the
//! median, the minimum and the maximum (and the quartiles) of user CPU (perf, and ticks), on-CPU time and throughput
//! against the floor, and the ratio of the sums of perf samples with its ±2 sigma (a sample
//! count's sigma is its square root). Only the ratios mean something; the absolute figures move
//! with the load.
//!
//! `REQGUARD_FLOOR_ROUND_MS=MS` sizes the alternations by time instead of by
//! `REQGUARD_FLOOR_REQUESTS`: each side serves, per alternation, what the floor served in MS
//! milliseconds of the warm-up (so the slow cases do not take forever and the fast ones still
//! gather enough samples per alternation).
//!
//! Where the threads run decides what one connection measures, so the run pins them (with
//! `taskset`; `REQGUARD_FLOOR_PIN`): `split` (default) puts the servers on CPU 1 and the
//! clients (and `perf`) on CPU 0, so each exchange of a round costs a wake-up across CPUs;
//! `one` puts every thread on CPU 0, so a round costs the client's and the server's CPU time one
//! after the other; `none` leaves it to the scheduler, which moves between the two from one
//! alternation to the next (the ratios then spread from 0.3 to 1.1).
//!
//! ```text
//! cargo bench --features server --bench floor
//! REQGUARD_FLOOR_PERF=100 REQGUARD_FLOOR_ROUND_MS=400 REQGUARD_FLOOR_PAIRS=30 cargo bench --features server --bench floor   # docs/benchmarks.md 5c
//! REQGUARD_FLOOR_PIN=one REQGUARD_FLOOR_REQUESTS=3000000 cargo bench --features server --bench floor
//! REQGUARD_FLOOR_PAIRS=80 REQGUARD_FLOOR_REQUESTS=3000000 cargo bench --features server --bench floor
//! REQGUARD_FLOOR_CASES=64x16,1x1 REQGUARD_FLOOR_PIN=one cargo bench --features server --bench floor   # chosen cases
//! ```
//!
//! Targets (issue 10): guarded user CPU per request at most 1.5x the floor's at depth 16;
//! throughput at least 0.95x the floor's at depth 16.

mod common;

use std::env;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{self, Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::client::{answer_len, bench_limits, connect, Pipeline, Srv, ThreadClock};
use common::floor::Floor;
use reqguard::http::{Guarded, Unaccounted};
use reqguard::Config;
use rustix::time::{clock_gettime, ClockId};

/// How many times the three sides take turns, unless `REQGUARD_FLOOR_PAIRS` says.
const PAIRS: usize = 40;

/// The throughput target against the floor (issue 10).
const TARGET: f64 = 0.95;

/// One alternation's run of one side.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu_ns: u64,
    /// User time by the kernel's ticks (`/proc` utime, 10 ms steps).
    user_ns: u64,
    /// `CLOCK_MONOTONIC` at the start and the end, nanoseconds (perf's samples fall between).
    start: u64,
    end: u64,
    /// perf's user-mode samples of the server thread in this run.
    perf: u64,
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
}

fn monotonic_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
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
        }
    }

    /// Runs `rounds` rounds and records them as one sample.
    fn run(&mut self, rounds: u64) {
        let (user, cpu) = (self.clock.user_ns(), self.clock.cpu_ns());
        let start_ns = monotonic_ns();
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
        let end = monotonic_ns();
        self.samples.push(Sample {
            wall,
            cpu_ns: self.clock.cpu_ns() - cpu,
            user_ns: self.clock.user_ns() - user,
            start: start_ns,
            end,
            perf: 0,
        });
    }

    /// Forgets the runs so far (the warm-up).
    fn reset(&mut self) {
        self.samples.clear();
    }

    fn wall(&self) -> Duration {
        self.samples.iter().map(|s| s.wall).sum()
    }

    fn cpu_ns(&self) -> u64 {
        self.samples.iter().map(|s| s.cpu_ns).sum()
    }

    fn user_ns(&self) -> u64 {
        self.samples.iter().map(|s| s.user_ns).sum()
    }

    fn perf(&self) -> u64 {
        self.samples.iter().map(|s| s.perf).sum()
    }

    /// Counts one perf sample stamped `at` if it falls in one of this side's runs.
    fn place(&mut self, at: u64) -> bool {
        let i = self.samples.partition_point(|s| s.start <= at);
        match i.checked_sub(1).map(|i| &mut self.samples[i]) {
            Some(sample) if at <= sample.end => {
                sample.perf += 1;
                true
            }
            _ => false,
        }
    }
}

/// The median and quartiles of `values` (sorted here), nearest rank.
fn quartiles(values: &mut [f64]) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

/// The minimum, the quartiles and the maximum of `values` (sorted here; NaN if empty),
/// nearest rank.
fn spread(values: &mut [f64]) -> [f64; 5] {
    if values.is_empty() {
        return [f64::NAN; 5];
    }
    let [q1, median, q3] = quartiles(values);
    [values[0], q1, median, q3, values[values.len() - 1]]
}

/// Per alternation, `side`'s figure `f` over the floor's in the same one, where the floor's
/// is not zero.
fn paired(side: &Side, floor: &Side, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
    side.samples
        .iter()
        .zip(&floor.samples)
        .filter(|(_, fl)| f(fl) > 0.0)
        .map(|(s, fl)| f(s) / f(fl))
        .collect()
}

/// Per alternation, `side`'s throughput and on-CPU time against the floor's in the same one.
fn paired_ratios(side: &Side, floor: &Side) -> (Vec<f64>, Vec<f64>) {
    // The same requests on both sides: throughput / floor is the floor's wall time / the side's.
    let throughput = paired(floor, side, |s| s.wall.as_secs_f64());
    let cpu = paired(side, floor, |s| s.cpu_ns as f64);
    (throughput, cpu)
}

/// `perf record` of the server threads' user-mode time (`REQGUARD_FLOOR_PERF`).
struct Perf {
    child: Child,
    dir: PathBuf,
}

impl Perf {
    /// Starts `perf record` on `tids` and waits until it listens (its control FIFO answers).
    fn start(period_us: u64, tids: &[u32]) -> Result<Perf, String> {
        let dir = env::temp_dir().join(format!("reqguard-floor-perf-{}", process::id()));
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (ctl, ack) = (dir.join("ctl"), dir.join("ack"));
        for fifo in [&ctl, &ack] {
            let _ = fs::remove_file(fifo);
            let made = Command::new("mkfifo").arg(fifo).status();
            if !made.is_ok_and(|s| s.success()) {
                return Err(format!("mkfifo {}", fifo.display()));
            }
        }
        let tids: Vec<String> = tids.iter().map(u32::to_string).collect();
        let mut child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock:u", "-c"])
            .arg((period_us * 1000).to_string())
            .args(["-k", "CLOCK_MONOTONIC", "-t", &tids.join(","), "-o"])
            .arg(dir.join("perf.data"))
            .arg("--control")
            .arg(format!("fifo:{},{}", ctl.display(), ack.display()))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf: {e}"))?;
        // perf opens the FIFOs once its events are open; `enable` then answers `ack`. Every
        // wait is bounded (10 s), and a perf that exits ends it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answer = Vec::new();
        let ready = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!("perf exited: {status}"));
            }
            if Instant::now() > deadline {
                break Err("perf did not answer within 10 s".into());
            }
            // Non-blocking opens: writing fails (ENXIO) until perf holds the FIFO open.
            let opened = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&ctl)
                .and_then(|mut c| c.write_all(b"enable\n"));
            if opened.is_ok() {
                let mut a = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&ack)
                    .map_err(|e| format!("{}: {e}", ack.display()))?;
                while Instant::now() < deadline && !answer.starts_with(b"ack") {
                    let mut buf = [0u8; 16];
                    match a.read(&mut buf) {
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(format!("{}: {e}", ack.display())),
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                break if answer.starts_with(b"ack") {
                    Ok(())
                } else {
                    Err("perf did not acknowledge `enable`".into())
                };
            }
            thread::sleep(Duration::from_millis(10));
        };
        let perf = Perf { child, dir };
        match ready {
            Ok(()) => Ok(perf),
            Err(e) => {
                let _ = perf.stop();
                Err(e)
            }
        }
    }

    /// Stops perf (SIGINT: it writes its file and exits).
    fn stop(mut self) -> Result<Vec<(u32, u64)>, String> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().map_err(|e| format!("perf: {e}"))?;
        let data = self.dir.join("perf.data");
        let out = Command::new("perf")
            .args(["script", "-F", "tid,time", "--ns", "-i"])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("perf script: {e}"))?;
        let _ = fs::remove_dir_all(&self.dir);
        if !out.status.success() {
            return Err(format!("perf record {status}, perf script {}", out.status));
        }
        // Each line: `  TID  SECONDS.NANOSECONDS:`.
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let tid = words.next()?.parse().ok()?;
                let (s, ns) = words.next()?.trim_end_matches(':').split_once('.')?;
                let at = s.parse::<u64>().ok()? * 1_000_000_000 + ns.parse::<u64>().ok()?;
                Some((tid, at))
            })
            .collect())
    }
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
/// separated by commas) or, by default, 64 x 16, 16 x 16, 1 x 16 and 64 x 1.
fn cases() -> Vec<(usize, usize)> {
    let Ok(list) = env::var("REQGUARD_FLOOR_CASES") else {
        return vec![(64, 16), (16, 16), (1, 16), (64, 1)];
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
    let round_ms = env_number("REQGUARD_FLOOR_ROUND_MS", 0);
    let perf_us = env_number("REQGUARD_FLOOR_PERF", 0);
    let placement = env::var("REQGUARD_FLOOR_PIN").unwrap_or_else(|_| "split".into());
    // Threads inherit the CPUs of the thread that spawns them: pin before the servers start,
    // then (split) move this thread, which runs or spawns the clients and perf.
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
    let sizing = match round_ms {
        0 => format!("{per_side} requests per side and case at depth 16, a tenth at depth 1"),
        ms => format!("each alternation what the floor serves in {ms} ms"),
    };
    let user_by = match perf_us {
        0 => {
            "user CPU by the kernel's ticks (set REQGUARD_FLOOR_PERF=100 for perf's samples)".into()
        }
        us => format!("user CPU also by perf, a sample per {us} us of on-CPU time"),
    };
    println!("{sizing}; {user_by}");
    println!("| connections | depth | side | requests | user CPU ns/request | on-CPU ns/request | requests/s | user CPU / floor | on-CPU / floor | throughput / floor | paired throughput / floor: median [quartiles] | alternations >= {TARGET} | paired on-CPU / floor: median [quartiles] |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
    let tids = [&floor.clock, &plain.clock, &guarded.clock].map(|c| c.tid().unwrap_or(0));
    let mut second = Vec::new();
    for (conns, depth) in cases() {
        let mut sides = [
            Side::new("floor", floor.addr, floor.clock.clone(), conns, depth),
            Side::new("unaccounted", plain.addr, plain.clock.clone(), conns, depth),
            Side::new("guarded", guarded.addr, guarded.clock.clone(), conns, depth),
        ];
        // Fewer requests without pipelining: each costs a round trip.
        let requests = if depth == 1 { per_side / 10 } else { per_side };
        let mut rounds = (requests / pairs as u64 / (conns * depth) as u64).max(1);
        let warm_up = rounds / 4 + 1;
        for side in &mut sides {
            side.run(warm_up); // warm-up, not counted below
        }
        if round_ms > 0 {
            let per_round = sides[0].wall().as_secs_f64() / warm_up as f64;
            rounds = ((round_ms as f64 / 1000.0 / per_round) as u64).max(1);
        }
        for side in &mut sides {
            side.reset();
        }
        let perf = match perf_us {
            0 => None,
            us => match Perf::start(us, &tids) {
                Ok(perf) => Some(perf),
                Err(e) => {
                    println!("perf: not run ({e})");
                    None
                }
            },
        };
        for pair in 0..pairs {
            for k in 0..sides.len() {
                sides[(pair + k) % 3].run(rounds);
            }
        }
        let mut outside = 0u64;
        let perf_run = perf.map(|perf| perf.stop());
        if let Some(Ok(stamps)) = &perf_run {
            for &(tid, at) in stamps {
                let placed = tids
                    .iter()
                    .position(|&t| t == tid)
                    .is_some_and(|i| sides[i].place(at));
                outside += u64::from(!placed);
            }
        } else if let Some(Err(e)) = &perf_run {
            println!("perf: no samples ({e})");
        }
        let n = (rounds * pairs as u64 * (conns * depth) as u64) as f64;
        report(conns, depth, n, &sides);
        let period = perf_run
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|_| perf_us);
        second.extend(report_paired(conns, depth, n, &sides, period, outside));
    }
    println!();
    println!("paired: per alternation, each side against the floor in the same alternation, median [min, max] (quartiles) over {pairs} alternations; perf's sums ±2 sigma");
    println!("| connections | depth | side | user CPU ns/request, perf | user CPU / floor, perf: sums ±2σ | paired user CPU / floor, perf | paired user CPU / floor, ticks | paired on-CPU / floor | paired throughput / floor | perf samples, ticks (sums) |");
    println!("|---:|---:|---|---:|---|---|---|---|---|---|");
    for row in second {
        println!("{row}");
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
            s.user_ns() as f64 / n,
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

/// The second table's rows: per side, the paired ratios' median and range (perf's user time
/// when `period` is some, the ticks' user time, on-CPU time, throughput).
fn report_paired(
    conns: usize,
    depth: usize,
    n: f64,
    sides: &[Side; 3],
    period: Option<u64>,
    outside: u64,
) -> Vec<String> {
    let floor = &sides[0];
    let show = |mut v: Vec<f64>| {
        let [lo, q1, mid, q3, hi] = spread(&mut v);
        if v.is_empty() {
            "-".to_string()
        } else {
            format!("{mid:.3} [{lo:.3}, {hi:.3}] ({q1:.3}-{q3:.3})")
        }
    };
    let ticks = |s: &Side| s.user_ns() / 10_000_000;
    sides
        .iter()
        .map(|side| {
            let (perf_ns, sums) = match period {
                Some(us) => {
                    let (s, f) = (side.perf() as f64, floor.perf().max(1) as f64);
                    let r = s / f;
                    let sigma = r * (1.0 / s.max(1.0) + 1.0 / f).sqrt();
                    (
                        format!("{:.1}", s * us as f64 * 1000.0 / n),
                        format!("{r:.3} ± {:.3}", 2.0 * sigma),
                    )
                }
                None => ("-".into(), "-".into()),
            };
            let perf_paired = match period {
                Some(_) => show(paired(side, floor, |s| s.perf as f64)),
                None => "-".into(),
            };
            let (throughput, cpu) = paired_ratios(side, floor);
            let counts = match period {
                Some(_) if side.name == "floor" => format!(
                    "{}, {} ({outside} samples outside the alternations)",
                    side.perf(),
                    ticks(side)
                ),
                Some(_) => format!("{}, {}", side.perf(), ticks(side)),
                None => format!("-, {}", ticks(side)),
            };
            format!(
                "| {conns} | {depth} | {} | {perf_ns} | {sums} | {perf_paired} | {} | {} | {} | {counts} |",
                side.name,
                show(paired(side, floor, |s| s.user_ns as f64)),
                show(cpu),
                show(throughput),
            )
        })
        .collect()
}
