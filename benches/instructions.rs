//! Instructions per request, guarded vs unaccounted, counted by valgrind's callgrind: a figure
//! that does not move with the load of a shared machine (criterion's times do, by 2x).
//!
//! Two measurements, each for the guarded server (every request upgraded and admitted through
//! reqguard) and the unaccounted one (`Unaccounted`, no accounting), at pipeline depth 1 and 16,
//! one keep-alive `GET /` (answered `200 hello` by the demo routes) per request:
//!
//! - `session`: the sans-IO path (`http::Session`): feed `depth` requests, check and discard the
//!   answers, N requests in all. Parse, upgrade, admit, handler, respond, release; no syscall.
//!   Instructions of the whole process.
//! - `mio`: the real server (`ServerBuilder::serve`) on its own thread, one loopback client
//!   connection on the main thread. Instructions of the server thread only (callgrind
//!   `--separate-threads=yes`): the loop, parsing, admission, and the user-space side of the
//!   syscalls (`epoll_wait`, `read`, `write`), not the kernel's. A third side, `hand`, runs
//!   the server with the PR's hand-written counters (`benches/common/hand_accounting.rs`):
//!   what the guard costs against the code it replaces, not against no accounting.
//!
//! - `floor`: the `mio` case against the floor (`benches/common/floor.rs`), a raw mio server
//!   that reads, counts the requests and writes a fixed answer of the same length: the least
//!   a mio server does per request. Instructions of its thread.
//!
//! - `group`: the `mio` case with the server run as a `LoopGroup` of two loops (guarded): the
//!   instructions of both loop threads (the client's connection lands on one of them), against
//!   the guarded `mio` figure: what the group adds per request (nothing is shared per request).
//!
//! - `admission`: the core alone, no HTTP (the figures of `docs/benchmarks.md` section 1):
//!   `guarded_request` (`core.upgrade()`, `live.admit(..)`, `RequestObject::hand_off`, the
//!   drops) against `hand_request` (the PR-style baseline, signals reused), the same two
//!   functions from `benches/common/mod.rs` that `benches/admission.rs` times, called N times
//!   in a loop on a warm core. Instructions of the whole process.
//!
//! Each case runs twice under callgrind, with N and N / 10 requests, and the figure is
//! `(I(N) - I(N / 10)) / (0.9 N)`: setup, warm-up and teardown cancel out. Callgrind serializes
//! threads and counts instructions, not time, so the figures repeat from run to run whatever
//! else the machine does (the `mio` ones to within the scheduling of two threads over a
//! socket; the `session` ones exactly).
//!
//! Under a plain `cargo bench` this prints a hint and exits 0 (it takes a few minutes under
//! valgrind). To run it:
//!
//! ```text
//! REQGUARD_CALLGRIND=1 cargo bench --features server --bench instructions
//! ```
//!
//! Knobs (environment): `REQGUARD_CALLGRIND_N` (session requests, default 100,000),
//! `REQGUARD_CALLGRIND_ADMISSION_N` (admission requests, default 100,000; `0` skips them),
//! `REQGUARD_CALLGRIND_MIO_N` (mio requests, default 20,000; `0` skips the mio cases),
//! `REQGUARD_CALLGRIND_GROUP_N` (group requests, default as mio; `0` skips the group cases),
//! `REQGUARD_CALLGRIND_CONNS` (connections of the `mio` and `floor` clients, from one thread,
//! default 1; a child run alone with 64 shows the turn's cost spread over many connections),
//! `REQGUARD_VALGRIND` (the valgrind binary, default `valgrind`). valgrind 3.19 was used.

mod common;

use std::env;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{self, Command};

use common::client::{answer_len, bench_limits, connect, Pipeline, Srv, GET};
use common::floor::Floor;
use common::hand_accounting::HandAccounting;
use common::{guarded_request, hand_request, Core, Ctx, HandServer, Req, REQ};
use reqguard::engines::Heap;
use reqguard::http::{
    demo_routes, Accounting, Guarded, Limits, LoopGroup, Router, Routes, Session, Unaccounted,
};
use reqguard::{Config, ServerCore};

/// The environment variable that carries a child's case: `"<path> <side> <depth> <n>"`.
const CHILD: &str = "REQGUARD_CALLGRIND_CHILD";

/// Requests served before the measured ones (the same in both runs of a case, so they cancel).
const WARM_UP: usize = 1_024;

fn main() {
    if let Ok(case) = env::var(CHILD) {
        child(&case);
        return;
    }
    if env::var_os("REQGUARD_CALLGRIND").is_none() {
        println!(
            "instructions: skipped (runs under valgrind, minutes); \
             REQGUARD_CALLGRIND=1 cargo bench --features server --bench instructions"
        );
        return;
    }
    parent();
}

// ---------------------------------------------------------------------------------------------
// The child: one case, run under callgrind.
// ---------------------------------------------------------------------------------------------

fn child(case: &str) {
    let parts: Vec<&str> = case.split_whitespace().collect();
    let [path, side, depth, n] = parts[..] else {
        panic!("{CHILD}: expected \"<path> <side> <depth> <n>\", got {case:?}");
    };
    let depth: usize = depth.parse().expect("depth");
    let n: usize = n.parse().expect("n");
    match (path, side) {
        ("session", "guarded") => session(Guarded::embedded("server", Config::default()), depth, n),
        ("session", "unaccounted") => session(Unaccounted::new(), depth, n),
        ("mio", "guarded") => mio(|| Guarded::embedded("server", Config::default()), depth, n),
        ("mio", "unaccounted") => mio(Unaccounted::new, depth, n),
        ("mio", "hand") => mio(HandAccounting::new, depth, n),
        ("mio", "floor") => floor(depth, n),
        ("group", "guarded") => group(depth, n),
        ("admission", "guarded") => admission(true, false, n),
        ("admission", "hand") => admission(false, false, n),
        ("admission", "guarded-ref") => admission(true, true, n),
        ("admission", "hand-ref") => admission(false, true, n),
        _ => panic!("{CHILD}: unknown case {case:?}"),
    }
}

/// `n` requests (rounded down to whole rounds) through a `Session`, `depth` per feed.
fn session<A: Accounting>(accounting: A, depth: usize, n: usize) {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, accounting, Limits::default());
    let requests = GET.repeat(depth);
    // One exchange gives the answer's length (the date is always 29 bytes).
    session.feed(GET);
    let len = session.pending_output().len();
    assert!(session.pending_output().starts_with(b"HTTP/1.1 200"));
    session.clear_output();
    session_rounds(&mut session, &requests, depth * len, WARM_UP / depth);
    session_rounds(&mut session, &requests, depth * len, n / depth);
    assert_eq!(
        session.stats().served as usize,
        1 + (WARM_UP / depth + n / depth) * depth
    );
    if let Some(ledger) = session.ledger() {
        ledger.assert_quiescent();
    }
}

#[inline(never)]
fn session_rounds<A: Accounting>(
    session: &mut Session<'_, A>,
    requests: &[u8],
    answers: usize,
    rounds: usize,
) {
    for _ in 0..rounds {
        session.feed(black_box(requests));
        let out = session.pending_output();
        assert!(out.len() == answers && out.starts_with(b"HTTP/1.1 200"));
        session.clear_output();
    }
}

/// `n` requests (whole rounds) to a server on its own thread over one loopback connection.
fn mio<A: Accounting>(accounting: impl FnOnce() -> A + Send + 'static, depth: usize, n: usize) {
    let srv = Srv::start(accounting, bench_limits());
    client_rounds(srv.addr, depth, n);
    let report = srv.finish();
    assert_eq!(report.leaked, 0);
}

/// As [`mio`], guarded, with the server a `LoopGroup` of two loops on their own threads.
fn group(depth: usize, n: usize) {
    let group = LoopGroup::new()
        .loops(2)
        .limits(bench_limits())
        .spawn(
            |_| Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .expect("spawn the group");
    let mut streams = connect(group.addr(), 1);
    let len = answer_len(&mut streams[0]);
    let mut pipeline = Pipeline::new(depth, len);
    for _ in 0..(WARM_UP / depth + n / depth) {
        pipeline.round(&mut streams).expect("round");
    }
    drop(streams);
    let report = group.stop().expect("the group stops");
    assert!(report.is_clean());
}

/// `n` requests (whole rounds) to the floor (`common/floor.rs`) on its own thread.
fn floor(depth: usize, n: usize) {
    let floor = Floor::start();
    let sent = client_rounds(floor.addr, depth, n);
    assert_eq!(floor.finish() as usize, sent);
}

/// The client of a `mio` or `floor` case: `REQGUARD_CALLGRIND_CONNS` keep-alive connections
/// (1 by default) from this thread, each sent `depth` pipelined requests per round, `WARM_UP`
/// then `n` requests in all (whole rounds; with C connections a round is C times `depth`
/// requests, so `n` and `WARM_UP` are divided among them). Returns the requests sent, each
/// connection's first exchange (which gives the answer's length) included.
fn client_rounds(addr: std::net::SocketAddr, depth: usize, n: usize) -> usize {
    let conns = env_usize("REQGUARD_CALLGRIND_CONNS", 1).max(1);
    let mut streams = connect(addr, conns);
    let len = answer_len(&mut streams[0]);
    for stream in &mut streams[1..] {
        answer_len(stream);
    }
    let mut pipeline = Pipeline::new(depth, len);
    let rounds = (WARM_UP / depth + n / depth) / conns;
    for _ in 0..rounds {
        pipeline.round(&mut streams).expect("round");
    }
    conns + rounds * conns * depth
}

/// `n` admissions (after `WARM_UP`) on a warm core (`guarded`) or the hand-written server,
/// with the bench's 48-byte request object or (`by_ref`) a pointer to it.
fn admission(guarded: bool, by_ref: bool, n: usize) {
    let heap = Heap::new();
    if guarded {
        let core: Core = ServerCore::embedded_with_context::<Ctx>(
            heap.alloc("server"),
            Config::default().with_prewarm(16),
        );
        assert_eq!(run_guarded(&core, by_ref, WARM_UP), 200 * WARM_UP as u64);
        assert_eq!(run_guarded(&core, by_ref, n), 200 * n as u64);
        core.ledger().assert_quiescent();
        assert_eq!(core.pool_metrics().in_use, 0);
    } else {
        let hand = HandServer::new(&heap, 1024, true);
        assert_eq!(run_hand(&hand, by_ref, WARM_UP), 200 * WARM_UP as u64);
        assert_eq!(run_hand(&hand, by_ref, n), 200 * n as u64);
        assert_eq!(hand.pending_requests.get(), 0);
    }
}

static REQ_STATIC: Req = REQ;

#[inline(never)]
fn run_guarded(core: &Core, by_ref: bool, n: usize) -> u64 {
    if by_ref {
        run_guarded_by_ref(core, n)
    } else {
        run_guarded_by_value(core, n)
    }
}

#[inline(never)]
fn run_guarded_by_value(core: &Core, n: usize) -> u64 {
    (0..n)
        .map(|_| u64::from(guarded_request(black_box(core), black_box(REQ))))
        .sum()
}

#[inline(never)]
fn run_guarded_by_ref(core: &Core, n: usize) -> u64 {
    (0..n)
        .map(|_| u64::from(guarded_request(black_box(core), black_box(&REQ_STATIC))))
        .sum()
}

#[inline(never)]
fn run_hand(hand: &HandServer, by_ref: bool, n: usize) -> u64 {
    if by_ref {
        run_hand_by_ref(hand, n)
    } else {
        run_hand_by_value(hand, n)
    }
}

#[inline(never)]
fn run_hand_by_value(hand: &HandServer, n: usize) -> u64 {
    (0..n)
        .map(|_| u64::from(hand_request(black_box(hand), black_box(REQ))))
        .sum()
}

#[inline(never)]
fn run_hand_by_ref(hand: &HandServer, n: usize) -> u64 {
    (0..n)
        .map(|_| u64::from(hand_request(black_box(hand), black_box(&REQ_STATIC))))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The parent: runs every case twice under callgrind and prints the table.
// ---------------------------------------------------------------------------------------------

fn env_usize(name: &str, default: usize) -> usize {
    env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
        })
        .unwrap_or(default)
}

fn parent() {
    let valgrind = env::var("REQGUARD_VALGRIND").unwrap_or_else(|_| "valgrind".into());
    let me = env::current_exe().expect("this bench's path");
    let dir = env::temp_dir().join(format!("reqguard-callgrind-{}", process::id()));
    fs::create_dir_all(&dir).expect("a scratch directory");
    let session_n = env_usize("REQGUARD_CALLGRIND_N", 100_000);
    let mio_n = env_usize("REQGUARD_CALLGRIND_MIO_N", 20_000);
    let admission_n = env_usize("REQGUARD_CALLGRIND_ADMISSION_N", 100_000);
    let group_n = env_usize("REQGUARD_CALLGRIND_GROUP_N", mio_n);
    println!("instructions per request: (Ir at N - Ir at N/10) / (the difference in requests)");
    println!(
        "session N = {session_n}, mio N = {mio_n}, admission N = {admission_n}; valgrind: {valgrind}"
    );
    let mut admission_rows = Vec::new();
    for (payload, sides) in [
        ("`Req`, 48 bytes", ["guarded", "hand"]),
        ("`&Req`, a pointer", ["guarded-ref", "hand-ref"]),
    ] {
        if admission_n == 0 {
            break;
        }
        let (big, small) = (admission_n, admission_n / 10);
        let mut per = [0f64; 2];
        for (i, side) in sides.into_iter().enumerate() {
            let ib = run(&valgrind, &me, &dir, "admission", side, 1, big);
            let is = run(&valgrind, &me, &dir, "admission", side, 1, small);
            per[i] = (ib as f64 - is as f64) / (big - small) as f64;
            println!(
                "admission {side:>11}: {ib} Ir at {big}, {is} Ir at {small}: {:.1} per request",
                per[i]
            );
        }
        admission_rows.push((payload, per[0], per[1]));
    }
    let mut rows = Vec::new();
    for (path, n) in [("session", session_n), ("mio", mio_n)] {
        if n == 0 {
            continue;
        }
        for depth in [1usize, 16] {
            // The hand-written accounting (`common/hand_accounting.rs`) runs in the server only.
            let sides: &[&str] = match path {
                "mio" => &["guarded", "unaccounted", "hand"],
                _ => &["guarded", "unaccounted"],
            };
            let mut per = [f64::NAN; 3];
            for (i, &side) in sides.iter().enumerate() {
                // Whole rounds, so the two runs differ by exactly `big - small` requests.
                let big = n / depth * depth;
                let small = n / 10 / depth * depth;
                let ib = run(&valgrind, &me, &dir, path, side, depth, big);
                let is = run(&valgrind, &me, &dir, path, side, depth, small);
                per[i] = (ib as f64 - is as f64) / (big - small) as f64;
                println!(
                    "{path:>7} {side:>11} depth {depth:>2}: {ib} Ir at {big}, {is} Ir at {small}: {:.1} per request",
                    per[i]
                );
            }
            rows.push((path, depth, per[0], per[1], per[2]));
        }
    }
    // The floor (benches/common/floor.rs): the least a mio server does per request.
    let mut floor_rows = Vec::new();
    for depth in [1usize, 16] {
        if mio_n == 0 {
            break;
        }
        let big = mio_n / depth * depth;
        let small = mio_n / 10 / depth * depth;
        let ib = run(&valgrind, &me, &dir, "mio", "floor", depth, big);
        let is = run(&valgrind, &me, &dir, "mio", "floor", depth, small);
        let per = (ib as f64 - is as f64) / (big - small) as f64;
        println!("    mio       floor depth {depth:>2}: {ib} Ir at {big}, {is} Ir at {small}: {per:.1} per request");
        floor_rows.push((depth, per));
    }
    let mut group_rows = Vec::new();
    for depth in [1usize, 16] {
        if group_n == 0 {
            break;
        }
        let mut per = [0f64; 2];
        for (i, path) in ["mio", "group"].into_iter().enumerate() {
            let big = group_n / depth * depth;
            let small = group_n / 10 / depth * depth;
            let ib = run(&valgrind, &me, &dir, path, "guarded", depth, big);
            let is = run(&valgrind, &me, &dir, path, "guarded", depth, small);
            per[i] = (ib as f64 - is as f64) / (big - small) as f64;
            println!(
                "{path:>7} guarded depth {depth:>2}: {ib} Ir at {big}, {is} Ir at {small}: {:.1} per request",
                per[i]
            );
        }
        group_rows.push((depth, per[0], per[1]));
    }
    let _ = fs::remove_dir_all(&dir);
    if !group_rows.is_empty() {
        println!();
        println!("| guarded server | depth | one server Ir/request | group of 2 loops Ir/request | ratio |");
        println!("|---|---:|---:|---:|---:|");
        for (depth, one, group) in group_rows {
            println!(
                "| mio loop | {depth} | {one:.0} | {group:.0} | {:.3} |",
                group / one
            );
        }
    }
    if !rows.is_empty() {
        println!();
        println!("| path | depth | guarded Ir/request | unaccounted Ir/request | guarded - unaccounted | ratio | implied throughput (CPU-bound) |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for &(path, depth, g, u, _) in &rows {
            println!(
                "| {path} | {depth} | {g:.0} | {u:.0} | {:.0} | {:.3} | {:.3} |",
                g - u,
                g / u,
                u / g
            );
        }
    }
    if !floor_rows.is_empty() {
        println!();
        println!("| server thread, mio | depth | floor Ir/request | unaccounted | guarded | unaccounted / floor | guarded / floor |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (depth, f) in floor_rows {
            let row = rows.iter().find(|r| r.0 == "mio" && r.1 == depth);
            if let Some(&(_, _, g, u, _)) = row {
                println!(
                    "| mio | {depth} | {f:.0} | {u:.0} | {g:.0} | {:.2} | {:.2} |",
                    u / f,
                    g / f
                );
            }
        }
    }
    let hand_rows: Vec<_> = rows.iter().filter(|r| !r.4.is_nan()).collect();
    if !hand_rows.is_empty() {
        println!();
        println!("| server thread, mio | depth | unaccounted Ir/request | hand-written counters | guarded | hand - unaccounted | guarded - unaccounted | guarded / hand-written | guarded / unaccounted |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &&(path, depth, g, u, h) in &hand_rows {
            println!(
                "| {path} | {depth} | {u:.0} | {h:.0} | {g:.0} | {:.0} | {:.0} | {:.3} | {:.3} |",
                h - u,
                g - u,
                g / h,
                g / u
            );
        }
    }
    if !admission_rows.is_empty() {
        println!();
        println!("| admission (core only): upgrade + admit + hand_off + drops | guarded Ir/request | hand-written Ir/request | guarded - hand-written | ratio |");
        println!("|---|---:|---:|---:|---:|");
        for (payload, g, h) in admission_rows {
            println!(
                "| request object {payload} | {g:.0} | {h:.0} | {:.0} | {:.3} |",
                g - h,
                g / h
            );
        }
    }
}

/// Runs one case under callgrind; the instructions it counted (the server thread's for `mio`).
fn run(
    valgrind: &str,
    me: &Path,
    dir: &Path,
    path: &str,
    side: &str,
    depth: usize,
    n: usize,
) -> u64 {
    let out = dir.join(format!("{path}-{side}-{depth}-{n}.out"));
    let mut cmd = Command::new(valgrind);
    cmd.arg("--tool=callgrind")
        .arg("-q")
        .arg(format!("--callgrind-out-file={}", out.display()));
    if path == "mio" || path == "group" {
        cmd.arg("--separate-threads=yes");
    }
    let status = cmd
        .arg(me)
        .env(CHILD, format!("{path} {side} {depth} {n}"))
        .status()
        .unwrap_or_else(|e| {
            panic!("running {valgrind}: {e} (install valgrind, or set REQGUARD_VALGRIND)")
        });
    assert!(
        status.success(),
        "{path} {side} depth {depth} n {n}: {status}"
    );
    match path {
        // One file per thread, suffixed `-01` (main: the client), `-02` (the server thread,
        // the first one the child spawns).
        "mio" => summary(&thread_file(&out, 2)),
        // The group's two loop threads, spawned first and second.
        "group" => summary(&thread_file(&out, 2)) + summary(&thread_file(&out, 3)),
        _ => summary(&out),
    }
}

/// The instructions a callgrind output file counted.
fn summary(file: &Path) -> u64 {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{}: no summary line", file.display()))
}

fn thread_file(out: &Path, thread: u32) -> PathBuf {
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let want = format!("{name}-{thread:02}");
    let dir = out.parent().unwrap();
    let file = dir.join(&want);
    assert!(
        file.exists(),
        "{}: no per-thread file (found: {:?})",
        file.display(),
        fs::read_dir(dir)
            .map(|d| d
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
            .unwrap_or_default()
    );
    file
}
