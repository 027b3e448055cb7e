//! Shutdown-race stress on the real server: many client threads on keep-alive connections to
//! the in-process mio server on 127.0.0.1, with stop and collect at random points.
//!
//! Each round starts a server with a random configuration (downgrade on stop or on drain;
//! the wrapper collected right after stop, or only by a deferred handler at a random point of
//! the drain; a drain deadline long enough for every request, or short enough to expire and
//! force-close), runs client threads that send a random mix of requests on kept-alive
//! connections (plain, deferred, echo with a body, pipelined pairs, handler panics, deferred
//! collections), and stops the server after a random delay, from another thread or from a
//! handler. Every round must end with:
//! - no crash (the server thread returns its report; no client sees a malformed answer);
//! - every answer a well-formed `200` (with the right body), `503`, `500` for `/panic`, or a
//!   clean close (EOF or reset before any byte of an answer);
//! - the ledger at zero (`report.leaked == 0`) and the drain complete (`drain_time` set).
//!
//! Bounded: `STRESS_ROUNDS` rounds (default 6) of `STRESS_CLIENTS` client threads (default 6),
//! each sending at most `STRESS_REQUESTS` requests (default 150) before it waits for the stop,
//! and no new round after `STRESS_SECONDS` (default 20); every read times out after 10 s. The long run is
//! `STRESS_ROUNDS=400 STRESS_SECONDS=600 cargo test --release --features server --test stress_shutdown -- --nocapture`
//! (`.ci/stress-long`). `STRESS_SEED` replays a run; the seed is printed.
#![cfg(feature = "server")]

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use reqguard::engines::Heap;
use reqguard::http::{
    demo_routes, Guarded, Handler, Limits, NoScope, Reply, Request, Response, Router,
    ServerBuilder, ServerReport,
};
use reqguard::{Config, DowngradePolicy, Exhaustion, ServerCore};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, seedable, good enough to pick interleavings.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------------------------
// The server side
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// The server thread's heap, so a handler can collect at a random point.
    static HEAP: RefCell<Option<Heap>> = const { RefCell::new(None) };
}

/// `GET /gc-later?ms=N`: a deferred answer whose completion collects the heap, at a random
/// point of the run (often during the drain, while other requests are in flight).
struct CollectLater;

impl Handler for CollectLater {
    fn handle(&self, req: &Request<'_>, _: &mut Response<'_>) -> Reply {
        let ms = req
            .query_param("ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Reply::After {
            delay: Duration::from_millis(ms),
            token: ms,
        }
    }

    fn resume(&self, _: u64, res: &mut Response<'_>) {
        let n = HEAP.with(|h| h.borrow().as_ref().map_or(0, Heap::collect));
        res.write(format!("collected {n}").as_bytes());
    }
}

fn routes(router: &mut Router<'_>) {
    demo_routes(router);
    router.route("GET", "/gc-later", CollectLater);
    router.route("GET", "/stop", |_: &Request<'_>, res: &mut Response<'_>| {
        res.stop_server();
        res.write(b"stopping");
        Reply::Now
    });
}

#[derive(Clone, Copy, Debug)]
enum Collect {
    /// `Guarded::embedded_on`: collected right after stop (on-stop downgrade) and after drain.
    AtStop,
    /// Only by `/gc-later` and after the drain.
    Late,
}

#[derive(Clone, Copy, Debug)]
struct RoundConfig {
    downgrade: DowngradePolicy,
    exhaustion: Exhaustion,
    capacity: usize,
    collect: Collect,
    drain_timeout: Duration,
    max_delay_ms: u64,
    stop_after: Duration,
    stop_from_handler: bool,
}

impl RoundConfig {
    fn random(rng: &mut Rng) -> Self {
        let short_deadline = rng.chance(30);
        RoundConfig {
            downgrade: if rng.chance(50) {
                DowngradePolicy::OnStop
            } else {
                DowngradePolicy::OnDrain
            },
            exhaustion: if rng.chance(50) {
                Exhaustion::Spill
            } else {
                Exhaustion::Refuse
            },
            capacity: rng.below(6) as usize,
            collect: if rng.chance(50) {
                Collect::AtStop
            } else {
                Collect::Late
            },
            // Short: in-flight deferred answers outlive the deadline and are aborted.
            drain_timeout: Duration::from_millis(if short_deadline { 20 } else { 3_000 }),
            max_delay_ms: if short_deadline { 150 } else { 25 },
            stop_after: Duration::from_millis(5 + rng.below(250)),
            stop_from_handler: rng.chance(30),
        }
    }
}

fn accounting(config: RoundConfig) -> Guarded<reqguard::engines::Embedded<&'static str>, NoScope> {
    let heap = Heap::new();
    HEAP.with(|h| *h.borrow_mut() = Some(heap.clone()));
    let core_config = Config::default()
        .with_downgrade(config.downgrade)
        .with_exhaustion(config.exhaustion)
        .with_pool_capacity(config.capacity)
        .unwrap();
    match config.collect {
        Collect::AtStop => Guarded::embedded_on(&heap, "stress", core_config),
        Collect::Late => {
            let core = ServerCore::embedded(heap.alloc("stress"), core_config);
            Guarded::new(core, NoScope).after_drain(move || {
                heap.collect();
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable: AtomicU64,
    panics: AtomicU64,
    clean_eof: AtomicU64,
    resets: AtomicU64,
    refused_connects: AtomicU64,
    requests: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a request must get back when it is served.
#[derive(Clone, Debug)]
enum Expect {
    Body(Vec<u8>),
    Prefix(&'static [u8]),
    Panic,
}

fn pick_request(rng: &mut Rng, max_delay_ms: u64) -> Vec<(Vec<u8>, Expect)> {
    let one = |rng: &mut Rng| -> (Vec<u8>, Expect) {
        match rng.below(100) {
            0..=39 => (
                b"GET / HTTP/1.1\r\nhost: s\r\n\r\n".to_vec(),
                Expect::Body(b"hello".to_vec()),
            ),
            40..=64 => {
                let ms = rng.below(max_delay_ms + 1);
                (
                    format!("GET /delay?ms={ms} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes(),
                    Expect::Body(format!("delayed {ms} ms").into_bytes()),
                )
            }
            65..=84 => {
                let body: Vec<u8> = (0..rng.below(300)).map(|i| b'a' + (i % 26) as u8).collect();
                let mut req = format!(
                    "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(&body);
                (req, Expect::Body(body))
            }
            85..=94 => {
                let ms = rng.below(max_delay_ms + 1);
                (
                    format!("GET /gc-later?ms={ms} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes(),
                    Expect::Prefix(b"collected "),
                )
            }
            _ => (
                b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
                Expect::Panic,
            ),
        }
    };
    let mut batch = vec![one(rng)];
    if rng.chance(15) {
        batch.push(one(rng)); // pipelined: both written at once
    }
    batch
}

/// How reading one answer ended.
enum Read1 {
    Answer {
        status: u16,
        close: bool,
        body: Vec<u8>,
    },
    /// EOF or reset before any byte of the answer: a clean close.
    Closed { reset: bool },
}

/// Reads one answer from `stream`, keeping leftover bytes in `buf`.
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Read1, String> {
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(buf) {
                Ok(httparse::Status::Complete(head)) => {
                    let status = response.code.unwrap();
                    let header = |name: &str| {
                        response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let length: usize = header("content-length")
                        .ok_or("answer without content-length")?
                        .parse()
                        .map_err(|_| "bad content-length")?;
                    let close = header("connection").is_some_and(|v| v == "close");
                    if buf.len() >= head + length {
                        let body = buf[head..head + length].to_vec();
                        buf.drain(..head + length);
                        return Ok(Read1::Answer {
                            status,
                            close,
                            body,
                        });
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(format!(
                        "malformed answer ({e}): {:?}",
                        String::from_utf8_lossy(buf)
                    ))
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(Read1::Closed { reset: false }),
            Ok(0) => {
                return Err(format!(
                    "EOF inside an answer: {:?}",
                    String::from_utf8_lossy(buf)
                ))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_reset(&e) && buf.is_empty() => return Ok(Read1::Closed { reset: true }),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("no answer within 10 s: the server hung".into())
            }
            Err(e) => return Err(format!("read failed inside an answer: {e}")),
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// One client thread: keep-alive connections, reconnecting after each close. After
/// `max_requests` it waits for the stop and makes one last attempt; it ends when the listener
/// is gone. Returns a description of the first violation, if any.
fn client(
    addr: SocketAddr,
    mut rng: Rng,
    max_delay_ms: u64,
    max_requests: u64,
    stopping: &AtomicBool,
    tally: &Tally,
) -> Result<(), String> {
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    'connect: while Instant::now() < give_up {
        if sent >= max_requests {
            // Enough load: wait for the stop, then see how the server answers a late request.
            while !stopping.load(Ordering::Acquire) && Instant::now() < give_up {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            // Refused, or reset from the backlog as the listener closes.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused || is_reset(&e) => {
                if stopping.load(Ordering::Acquire) {
                    Tally::add(&tally.refused_connects);
                    return Ok(()); // The listener is closed: the server has stopped.
                }
                return Err(format!("connect before the stop: {e}"));
            }
            // Out of ephemeral ports for a moment (many short connections): back off.
            Err(e) if e.kind() == ErrorKind::AddrNotAvailable => {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(format!("connect: {e}")),
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut buf = Vec::new();
        loop {
            let batch = pick_request(&mut rng, max_delay_ms);
            let bytes: Vec<u8> = batch.iter().flat_map(|(r, _)| r.clone()).collect();
            Tally::add(&tally.requests);
            sent += 1;
            if let Err(e) = stream.write_all(&bytes) {
                if is_reset(&e) {
                    Tally::add(&tally.resets);
                    continue 'connect;
                }
                return Err(format!("write: {e}"));
            }
            for (_, expect) in &batch {
                let closed = match read_answer(&mut stream, &mut buf)? {
                    Read1::Closed { reset } => Some(reset),
                    Read1::Answer {
                        status,
                        close,
                        body,
                    } => {
                        match (status, expect) {
                            (200, Expect::Body(want)) if &body == want => Tally::add(&tally.ok),
                            (200, Expect::Prefix(p)) if body.starts_with(p) => {
                                Tally::add(&tally.ok)
                            }
                            (500, Expect::Panic) => Tally::add(&tally.panics),
                            (503, _) => Tally::add(&tally.unavailable),
                            _ => {
                                return Err(format!(
                                    "unexpected answer {status} {:?} for {expect:?}",
                                    String::from_utf8_lossy(&body)
                                ))
                            }
                        }
                        if !close {
                            continue;
                        }
                        // Nothing may follow `connection: close` but the close itself.
                        match read_answer(&mut stream, &mut buf)? {
                            Read1::Closed { reset } => Some(reset),
                            Read1::Answer { status, .. } => {
                                return Err(format!("answer {status} after connection: close"))
                            }
                        }
                    }
                };
                if let Some(reset) = closed {
                    Tally::add(if reset {
                        &tally.resets
                    } else {
                        &tally.clean_eof
                    });
                    if !stopping.load(Ordering::Acquire) {
                        // Refused before the stop (an exhausted pool): do not spin on reconnects.
                        thread::sleep(Duration::from_millis(2));
                    }
                    continue 'connect;
                }
            }
            if sent >= max_requests {
                continue 'connect;
            }
        }
    }
    Err("client still running after 30 s".into())
}

// ---------------------------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------------------------

/// Asks a handler to stop the server (`Response::stop_server`); whether it was served.
fn stop_from_handler(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(b"GET /stop HTTP/1.1\r\nhost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    matches!(
        read_answer(&mut s, &mut Vec::new()),
        Ok(Read1::Answer { status: 200, .. })
    )
}

fn round(rng: &mut Rng, clients: u64) -> (RoundConfig, ServerReport, Arc<Tally>) {
    let config = RoundConfig::random(rng);
    let limits = Limits::default()
        .with_drain_timeout(config.drain_timeout)
        .with_stop_linger(Duration::from_millis(50))
        .with_max_connections(256);
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(move || accounting(config), routes)
        .expect("the server starts");
    let addr = running.addr();
    let tally = Arc::new(Tally::default());
    let stopping = Arc::new(AtomicBool::new(false));
    let max_requests = env("STRESS_REQUESTS", 150);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (tally, stopping, seed) =
                (Arc::clone(&tally), Arc::clone(&stopping), rng.next() | 1);
            thread::Builder::new()
                .name(format!("stress-client-{i}"))
                .spawn(move || {
                    client(
                        addr,
                        Rng(seed),
                        config.max_delay_ms,
                        max_requests,
                        &stopping,
                        &tally,
                    )
                })
                .unwrap()
        })
        .collect();

    thread::sleep(config.stop_after);
    stopping.store(true, Ordering::Release);
    if !(config.stop_from_handler && stop_from_handler(addr)) {
        // From another thread, through the `Send` stop handle (also the fallback when the
        // `/stop` request was refused: an exhausted pool refuses it like any other).
        running.stop_handle().stop();
    }
    let report = running.join().expect("the server loop ends without error");
    for handle in handles {
        let result = handle.join().expect("a client thread panicked");
        if let Err(why) = result {
            panic!("{config:?}: {why}\nserver report:\n{report}");
        }
    }
    (config, report, tally)
}

/// The demo's `GET /panic` handler panics on purpose (the server answers 500): keep those out
/// of the output.
fn quiet_deliberate_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        if !message.contains("panics on purpose") {
            default(info);
        }
    }));
}

#[test]
fn shutdown_races_leave_nothing_behind() {
    let rounds = env("STRESS_ROUNDS", 6);
    let clients = env("STRESS_CLIENTS", 6);
    let budget = Duration::from_secs(env("STRESS_SECONDS", 20));
    let seed = env(
        "STRESS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    ) | 1;
    eprintln!("stress_shutdown: STRESS_SEED={seed}");
    quiet_deliberate_panics();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut done, mut served, mut answers, mut deadline_hits, mut finalized_refusals) =
        (0, 0, 0, 0, 0);
    let (mut aborted, mut closes, mut resets, mut unavailable) = (0, 0, 0, 0);
    while done < rounds && started.elapsed() < budget {
        let (config, report, tally) = round(&mut rng, clients);
        // The ledger ends at zero and the drain completes, every round.
        assert_eq!(report.leaked, 0, "{config:?}: leaked\n{report}");
        assert!(report.leaks.is_empty(), "{config:?}\n{report}");
        assert!(
            report.drain_time.is_some(),
            "{config:?}: the drain never completed\n{report}"
        );
        let ok = tally.ok.load(Ordering::Relaxed);
        assert!(
            ok <= report.stats.served,
            "{config:?}: clients got {ok} answers from {} served",
            report.stats.served
        );
        let pool = report.pool.expect("guarded accounting has a pool");
        assert_eq!(pool.in_use, 0, "{config:?}: {pool:?}");
        done += 1;
        served += report.stats.served;
        aborted += report.stats.aborted;
        finalized_refusals += report.stats.refused_finalized;
        deadline_hits += u64::from(report.drain_deadline_hit);
        closes += tally.clean_eof.load(Ordering::Relaxed);
        resets += tally.resets.load(Ordering::Relaxed);
        unavailable += tally.unavailable.load(Ordering::Relaxed);
        answers +=
            ok + tally.unavailable.load(Ordering::Relaxed) + tally.panics.load(Ordering::Relaxed);
    }
    eprintln!(
        "stress_shutdown: {done} rounds in {:.1} s, {served} served, {answers} answers checked \
         ({unavailable} of them 503), {closes} clean closes and {resets} resets between answers, \
         {finalized_refusals} refused after finalization, {aborted} aborted in flight, \
         {deadline_hits} drain deadlines hit; ledger zero and drain complete every round",
        started.elapsed().as_secs_f64()
    );
    assert!(done > 0, "no round ran");
}
