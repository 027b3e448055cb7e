//! Target `http_script`: up to four connections on one dispatcher, driven by a byte script
//! that interleaves raw input, well-formed requests, the clock, stop, collect, half-close,
//! disconnect, partial writes and the loop's drain check.
//!
//! Format: byte 0 is the configuration; then each op is a tag byte (`conn = tag >> 4 & 3`,
//! `kind = tag & 15`) and its arguments. See [`run`].

use std::time::{Duration, Instant};

use reqguard::engines::Heap;
use reqguard::http::{
    demo_routes, Accounting, Connection, Dispatcher, Guarded, Limits, NoScope, Router, Routes,
    StopStatus,
};
use reqguard::{AbortReason, Config, DowngradePolicy, Exhaustion, GuardKind, ServerCore};

use super::check_responses;

const CONNECTIONS: usize = 4;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// A well-formed request from two argument bytes, so the fuzzer reaches deep states quickly.
fn request(route: u8, arg: u8) -> Vec<u8> {
    let target = match route & 7 {
        0 | 1 => "/".to_string(),
        2 => format!("/delay?ms={}", u32::from(arg) * 8),
        3 => "/echo".to_string(),
        4 => "/panic".to_string(),
        5 => "/missing".to_string(),
        6 => format!("/delay?ms={arg}x"),
        _ => "/echo".to_string(),
    };
    let method = if route & 7 == 3 || route & 7 == 7 {
        "POST"
    } else {
        "GET"
    };
    let version = if route & 0x08 != 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut out = format!("{method} {target} {version}\r\nhost: fuzz\r\n");
    if route & 0x10 != 0 {
        out.push_str("connection: close\r\n");
    }
    if route & 0x20 != 0 {
        out.push_str("connection: keep-alive\r\n");
    }
    let body = vec![b'x'; usize::from(arg)];
    if method == "POST" {
        if route & 0x40 != 0 {
            out.push_str("expect: 100-continue\r\n");
        }
        if route & 0x80 != 0 {
            out.push_str("transfer-encoding: chunked\r\n\r\n");
            let mut out = out.into_bytes();
            for chunk in body.chunks(7) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            return out;
        }
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if method == "POST" {
        out.extend_from_slice(&body);
    }
    out
}

struct Client<'r, H> {
    conn: Connection<'r, H>,
    transcript: Vec<u8>,
}

impl<'r, H> Client<'r, H> {
    fn new(now: Instant) -> Self {
        Client {
            conn: Connection::new(now),
            transcript: Vec::new(),
        }
    }

    /// Writes up to `n` bytes of pending output "to the socket".
    fn write(&mut self, n: usize) {
        let out = self.conn.pending_output();
        let n = n.min(out.len());
        self.transcript.extend_from_slice(&out[..n]);
        self.conn.consume_output(n);
    }

    /// Ends this client: everything written so far must be well-formed answers.
    fn finish(&mut self) {
        self.write(usize::MAX);
        check_responses(&self.transcript);
        self.transcript.clear();
    }
}

/// Runs one script. See the module docs for the format.
pub fn run(data: &[u8]) {
    super::quiet_deliberate_panics();
    let mut r = Reader(data);
    let Some(setup) = r.byte() else {
        return;
    };
    let config = Config::default()
        .with_downgrade(if setup & 1 == 0 {
            DowngradePolicy::OnStop
        } else {
            DowngradePolicy::OnDrain
        })
        .with_exhaustion(if setup & 2 == 0 {
            Exhaustion::Spill
        } else {
            Exhaustion::Refuse
        })
        .with_pool_capacity(usize::from(setup >> 2 & 3))
        .unwrap();
    let limits = match setup >> 4 & 3 {
        0 => Limits::default()
            .with_max_head(256)
            .with_max_body(64)
            .with_max_pipeline(2)
            .with_max_output(128),
        1 => Limits::default()
            .with_max_head(1024)
            .with_max_body(1024)
            .with_max_pipeline(4),
        _ => Limits::default(),
    };
    let heap = Heap::new();
    let auto_collect = setup & 0x40 != 0;
    let accounting = if auto_collect {
        // Collects right after stop (OnStop) and after the drain, as the demo does.
        Guarded::embedded_on(&heap, "fuzz", config)
    } else {
        // Collects only when the script says so.
        Guarded::new(ServerCore::embedded(heap.alloc("fuzz"), config), NoScope)
    };

    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut d = Dispatcher::new(&router, accounting, limits);
    let mut now = Instant::now();
    let mut clients: Vec<Client<'_, _>> = (0..CONNECTIONS).map(|_| Client::new(now)).collect();
    let mut minted_at_finalize: Option<[u64; 4]> = None;

    while let Some(tag) = r.byte() {
        let c = usize::from(tag >> 4 & 3);
        match tag & 15 {
            // Raw bytes from the client (when the loop would read).
            0..=2 | 13..=15 => {
                let n = usize::from(r.byte().unwrap_or(0));
                let bytes = r.bytes(n);
                if clients[c].conn.wants_read(&d) {
                    clients[c].conn.receive(&mut d, bytes, now);
                }
            }
            // A well-formed request.
            3 | 4 => {
                let (route, arg) = (r.byte().unwrap_or(0), r.byte().unwrap_or(0));
                if clients[c].conn.wants_read(&d) {
                    clients[c].conn.receive(&mut d, &request(route, arg), now);
                }
            }
            // The clock moves; every connection's timers run.
            5 | 6 => {
                let unit = if tag & 15 == 5 { 10 } else { 500 };
                now += Duration::from_millis(u64::from(r.byte().unwrap_or(0)) * unit);
                for client in &mut clients {
                    client.conn.on_timer(&mut d, now);
                }
            }
            // server.stop().
            7 => d.begin_stop(now),
            // The engine collects garbage.
            8 => {
                heap.collect();
            }
            // The client half-closes (read end done).
            9 => clients[c].conn.peer_closed(&mut d),
            // The client disconnects; a new client takes its place.
            10 => {
                clients[c]
                    .conn
                    .abort(&mut d, AbortReason::ClientDisconnected);
                clients[c].finish();
                clients[c] = Client::new(now);
            }
            // The loop checks the drain; past the deadline it force-closes everything.
            11 => {
                let in_flight = d.in_flight();
                if let StopStatus::Expired { .. } = d.accounting_mut().poll_stop(now, in_flight) {
                    for client in &mut clients {
                        client.conn.abort(&mut d, AbortReason::DrainDeadline);
                    }
                }
            }
            // A partial write to the socket; then, as the loop does, parsing resumes if
            // back-pressure had paused it.
            _ => {
                let n = usize::from(r.byte().unwrap_or(0));
                clients[c].write(n);
                clients[c].conn.resume(&mut d, now);
            }
        }
        // A finished connection is closed by the loop, and a new client connects.
        for client in &mut clients {
            if client.conn.is_done() {
                client.conn.abort(&mut d, AbortReason::ClientDisconnected);
                client.finish();
                *client = Client::new(now);
            }
        }
        check(&d, &clients, &mut minted_at_finalize);
    }

    // Shutdown: stop, let every deferred answer come due, then drain and close.
    d.begin_stop(now);
    now += Duration::from_secs(61);
    for client in &mut clients {
        client.conn.on_timer(&mut d, now);
    }
    check(&d, &clients, &mut minted_at_finalize);
    for client in &mut clients {
        client.conn.abort(&mut d, AbortReason::ClientDisconnected);
        client.finish();
    }
    assert_eq!(d.in_flight(), 0);
    let in_flight = d.in_flight();
    let status = d.accounting_mut().poll_stop(now, in_flight);
    assert_eq!(status, StopStatus::Complete);
    let core = d.accounting().core();
    core.ledger().assert_quiescent();
    assert!(core.drain().expect("stopped").is_complete());
    assert_eq!(core.pool_metrics().in_use, 0);
    heap.collect();
    assert!(core.upgrade().is_none(), "the wrapper outlived the drain");
}

type Acct = Guarded<reqguard::engines::Embedded<&'static str>, NoScope>;
type Held = <Acct as Accounting>::Held;

fn check(
    d: &Dispatcher<'_, Acct>,
    clients: &[Client<'_, Held>],
    minted_at_finalize: &mut Option<[u64; 4]>,
) {
    let core = d.accounting().core();
    let ledger = core.ledger();
    let in_flight = d.in_flight();
    // Each admitted request holds one of each guard until its answer is written.
    for kind in GuardKind::ALL {
        assert_eq!(ledger.outstanding(kind), in_flight, "{kind}: {ledger:?}");
    }
    let waiting: usize = clients.iter().map(|c| c.conn.waiting()).sum();
    assert_eq!(waiting, in_flight);
    assert_eq!(core.pool_metrics().in_use, in_flight);
    // Nothing is minted once the wrapper is finalized.
    let minted = GuardKind::ALL.map(|k| ledger.minted(k));
    match minted_at_finalize {
        Some(at) => assert_eq!(*at, minted, "minted after the wrapper was finalized"),
        None if core.wrapper().weak().is_finalized() => *minted_at_finalize = Some(minted),
        None => {}
    }
    // The drain is complete exactly when nothing is in flight after stop.
    if let Some(drain) = core.drain() {
        assert_eq!(drain.is_complete(), in_flight == 0);
    }
}
