//! Loop groups over real sockets: two loops under load, stopped; the stop ladder as a client
//! sees it; a storm of connects and stops; and no connection lost between loops across the
//! stop. Every load is bounded in count and time.
#![cfg(feature = "server")]

#[cfg(unix)]
#[path = "util/child.rs"]
mod child;
mod util;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, ConnState, GroupHandle, GroupReport, Guarded, Ladder, ListenMode, LoopGroup,
    Reply, Request, Response, Router, Step,
};
use reqguard::{AbortReason, Config, GuardKind, Ledger};
use util::{get, try_get, wait_until, Client};

static_assertions::assert_impl_all!(GroupHandle: Send);
static_assertions::assert_impl_all!(reqguard::http::GroupStop: Send, Sync, Clone);

fn group(loops: usize, ladder: Ladder, mode: ListenMode) -> GroupHandle {
    LoopGroup::new()
        .loops(loops)
        .ladder(ladder)
        .listen_mode(mode)
        .spawn(
            |_| Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .expect("spawn the group")
}

/// The totals are the sum of the loops, field by field, and nothing leaked on any loop.
fn assert_sum_and_clean(report: &GroupReport) {
    let sum = |f: &dyn Fn(&reqguard::http::ServerReport) -> u64| -> u64 {
        report.loops.iter().map(f).sum()
    };
    let t = &report.totals;
    assert_eq!(t.stats.served, sum(&|r| r.stats.served));
    assert_eq!(t.stats.refused, sum(&|r| r.stats.refused));
    assert_eq!(t.stats.aborted, sum(&|r| r.stats.aborted));
    assert_eq!(t.stats.rejected, sum(&|r| r.stats.rejected));
    assert_eq!(t.stats.connections, sum(&|r| r.stats.connections));
    assert_eq!(t.force_closed, sum(&|r| r.force_closed));
    assert_eq!(t.leaked as u64, sum(&|r| r.leaked as u64));
    assert_eq!(t.outcomes.completed, sum(&|r| r.outcomes.completed));
    assert_eq!(t.outcomes.client_gone, sum(&|r| r.outcomes.client_gone));
    assert_eq!(
        t.outcomes.deadline_aborted,
        sum(&|r| r.outcomes.deadline_aborted)
    );
    assert_eq!(t.outcomes.force_closed, sum(&|r| r.outcomes.force_closed));
    assert_eq!(t.outcomes.dropped, sum(&|r| r.outcomes.dropped));
    for (i, r) in report.loops.iter().enumerate() {
        assert_eq!(r.leaked, 0, "loop {i} leaked: {}", r.leaks);
    }
    assert!(report.is_clean());
}

fn step_names(report: &reqguard::http::ServerReport) -> Vec<Step> {
    report.steps.iter().map(|s| s.step).collect()
}

#[test]
fn two_loops_under_load_stop_with_nothing_leaked_and_every_answer_delivered() {
    let ladder = Ladder::default().with_drain_timeout(Duration::from_secs(5));
    let running = group(2, ladder, ListenMode::ReusePort);
    let addr = running.addr();
    let stop_at = Instant::now() + Duration::from_millis(300);
    let ok = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let ok = Arc::clone(&ok);
            thread::spawn(move || {
                // A fresh connection per request, so the kernel spreads them over both loops.
                for n in 0..400 {
                    let path = if (n + i) % 5 == 0 {
                        "/delay?ms=15"
                    } else {
                        "/"
                    };
                    match try_get(addr, path) {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::SeqCst),
                        // Admission closed, or the group has closed its listeners after the
                        // drain: the rest of this client's requests would be refused too.
                        Ok((503, true)) => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                        // The race docs/server.md documents ("No connection lost between loops"):
                        // a connection the kernel queued after a loop's final accept is reset.
                        // It carried no answer, so `served == ok` below still holds.
                        Err(e)
                            if e.kind() == io::ErrorKind::ConnectionReset
                                && Instant::now() > stop_at =>
                        {
                            break
                        }
                        other => panic!("request {n} of client {i}: {other:?}"),
                    };
                    if Instant::now() > stop_at + Duration::from_millis(200) {
                        break;
                    }
                }
            })
        })
        .collect();
    thread::sleep(stop_at.saturating_duration_since(Instant::now()));
    let report = running.stop().unwrap();
    for client in clients {
        client.join().expect("a client failed");
    }
    assert_sum_and_clean(&report);
    // Every answer a handler computed reached its client, and each such request completed.
    assert_eq!(report.totals.stats.served, ok.load(Ordering::SeqCst) as u64);
    assert_eq!(report.totals.outcomes.completed, report.totals.stats.served);
    for (i, r) in report.loops.iter().enumerate() {
        assert!(r.stats.served > 0, "loop {i} served nothing: {report}");
        assert_eq!(step_names(r), [Step::Unready, Step::Drain, Step::Close]);
    }
}

/// Demo routes plus `GET /watch`: answers after 60 s, and records when its signal fires.
fn watched_routes(
    fired: Arc<Mutex<Vec<(AbortReason, Instant)>>>,
    admitted: Arc<AtomicUsize>,
) -> impl Fn(&mut Router<'_>) + Send + Sync + 'static {
    move |router| {
        demo_routes(router);
        let (fired, admitted) = (Arc::clone(&fired), Arc::clone(&admitted));
        router.route(
            "GET",
            "/watch",
            move |req: &Request<'_>, _: &mut Response<'_>| {
                let fired = Arc::clone(&fired);
                let signal = req.signal().expect("guarded requests have a signal");
                assert!(signal.on_abort(move |reason| {
                    fired.lock().unwrap().push((reason, Instant::now()));
                }));
                admitted.fetch_add(1, Ordering::SeqCst);
                Reply::After {
                    delay: Duration::from_secs(60),
                    token: 0,
                }
            },
        );
    }
}

/// Times of the ladder test's first round; a round the machine was too slow for (see
/// `ladder_round`) is set up again with every time three times as long, at most this often.
const LADDER_ROUNDS: u32 = 3;

#[test]
fn the_ladder_as_a_client_sees_it_unready_drain_abort_force_close() {
    for round in 0..LADDER_ROUNDS {
        let scale = 3u32.pow(round);
        if ladder_round(scale, round + 1 == LADDER_ROUNDS) {
            return;
        }
        println!(
            "ladder round {round} outrun by the machine: set up again, times x{}",
            scale * 3
        );
    }
}

/// How many fresh connections in a row must be refused before the test takes every loop for
/// draining: with `SO_REUSEPORT` the kernel spreads them over both loops by a hash of the
/// client's port, so a loop still unready is missed by all of them 1 time in 2^8 (and then
/// the late request below is served, and the round set up again).
const REFUSED_IN_A_ROW: usize = 8;

/// One round of the ladder test, every ladder time `scale` times the first round's. `false` if
/// the machine was too slow for these times (checks the unready step should have answered
/// came after its window, or the late request did not meet its loop's drain): only then, and
/// never in the `last` round, is a round given up rather than failed.
fn ladder_round(scale: u32, last: bool) -> bool {
    let ladder = Ladder::default()
        .with_unready(Duration::from_millis(1200) * scale)
        .with_drain_timeout(Duration::from_millis(400) * scale)
        .with_force_after(Duration::from_millis(300) * scale)
        .with_idle_linger(Duration::from_millis(400) * scale);
    let fired = Arc::new(Mutex::new(Vec::new()));
    let admitted = Arc::new(AtomicUsize::new(0));
    let running = LoopGroup::new()
        .loops(2)
        .ladder(ladder)
        .spawn(
            |_| Guarded::embedded("server", Config::default()),
            watched_routes(Arc::clone(&fired), Arc::clone(&admitted)),
        )
        .unwrap();
    let addr = running.addr();
    let stopper = running.stopper();
    let give_up = |running: GroupHandle| {
        assert!(
            !last,
            "the last round's times are too short for this machine"
        );
        stopper.force();
        assert_sum_and_clean(&running.wait().unwrap());
        false
    };

    // Before the stop: ready, and keep-alive on.
    let ready = get(addr, "/healthz/ready");
    assert_eq!((ready.status, ready.text()), (200, "ready"));
    let mut kept = Client::connect(addr);
    assert!(!kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").closes());
    let mut late = Client::connect(addr);
    assert!(!late.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").closes());
    let mut watched = Client::connect(addr);
    watched.send(b"GET /watch HTTP/1.1\r\nhost: x\r\n\r\n");
    wait_until("/watch to be admitted", || {
        admitted.load(Ordering::SeqCst) == 1
    });

    // Taken before the stop, so the unready window ends no sooner than `t0 + unready`.
    let t0 = Instant::now();
    stopper.stop();
    // Unready: readiness 503, liveness 200, requests still served but every answer closes,
    // and the port still accepts.
    let ready = get(addr, "/healthz/ready");
    let live = get(addr, "/healthz/live");
    let answer = kept.try_request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let fresh = get(addr, "/");
    let seen = (
        (ready.status, ready.closes()),
        live.status,
        answer.map(|a| (a.status, a.closes())).ok(),
        (fresh.status, fresh.closes()),
    );
    let unready = ((503, true), 200, Some((200, true)), (200, true));
    if seen != unready {
        // Past the window the drain may have answered some of them: the machine was slow.
        assert!(
            t0.elapsed() >= ladder.unready(),
            "the unready step: {seen:?}"
        );
        return give_up(running);
    }

    // Drain: admission closes; a late request on a kept-alive connection gets 503 close;
    // liveness holds. Each loop enters the drain on its own timer: the late request waits
    // until fresh connections on both loops are refused.
    let mut refused = 0;
    wait_until("every loop to drain", || {
        refused = if get(addr, "/").status == 503 {
            refused + 1
        } else {
            0
        };
        refused == REFUSED_IN_A_ROW
    });
    match late.try_request("GET / HTTP/1.1\r\nhost: x\r\n\r\n") {
        Ok(answer) if answer.status == 503 => assert!(answer.closes(), "{answer:?}"),
        // Its loop was still unready (a miss of the refusals above), or so slow a machine that
        // the idle linger closed the connection first.
        Ok(answer) if answer.status == 200 && answer.closes() => return give_up(running),
        Err(_) => return give_up(running),
        Ok(answer) => panic!("the late request: {answer:?}"),
    }
    assert_eq!(get(addr, "/healthz/live").status, 200);

    // Abort at the drain deadline: the handler's signal fires; force 300 ms later closes it.
    wait_until("the deadline abort", || !fired.lock().unwrap().is_empty());
    assert!(watched.answer().is_err(), "force-closed without an answer");
    let report = running.wait().unwrap();
    let fired = fired.lock().unwrap();
    assert_eq!(fired.len(), 1, "the signal fires once");
    assert_eq!(fired[0].0, AbortReason::DrainDeadline);
    assert_sum_and_clean(&report);

    let (held, other): (Vec<_>, Vec<_>) = report
        .loops
        .iter()
        .partition(|r| r.steps.iter().any(|s| s.step == Step::Abort));
    assert_eq!((held.len(), other.len()), (1, 1), "{report}");
    let held = held[0];
    assert_eq!(
        step_names(held),
        [
            Step::Unready,
            Step::Drain,
            Step::Abort,
            Step::Force,
            Step::Close
        ]
    );
    assert_eq!(
        step_names(other[0]),
        [Step::Unready, Step::Drain, Step::Close]
    );
    // The abort step names what was out: one request in its handler, its guards and sites.
    let abort = &held.steps[2];
    assert_eq!(abort.outstanding.in_flight, 1);
    let named: Vec<(&str, usize)> = abort
        .outstanding
        .in_handler
        .iter()
        .map(|r| (r.route.as_str(), r.count))
        .collect();
    assert_eq!(
        named,
        [("GET /watch", 1)],
        "the abort step names the request"
    );
    assert_eq!(abort.outstanding.in_handler_other.count, 0);
    assert_eq!(
        abort.outstanding.connections_in(ConnState::InHandler).count,
        1
    );
    let ticket = abort
        .outstanding
        .guards
        .sites()
        .iter()
        .find(|s| s.kind == GuardKind::Ticket)
        .expect("the ticket is out at the abort");
    assert_eq!(ticket.count, 1);
    // Mint sites are recorded in debug builds and with `leak-check`, not in plain release.
    assert_eq!(ticket.location.is_some(), Ledger::tracks_sites());
    let (at_drain, at_abort, at_force) = (held.steps[1].at, abort.at, held.steps[3].at);
    // The server's own clock: no step comes before its time.
    assert!(at_drain >= ladder.unready(), "{report}");
    assert!(at_abort >= at_drain + ladder.drain_timeout(), "{report}");
    assert!(at_force >= at_abort + ladder.force_after(), "{report}");
    assert_eq!(held.steps[3].outstanding.in_flight, 1);
    // The force step ends it; the deadline reached it first, so that is its outcome.
    assert_eq!(held.steps[3].ended.deadline_aborted, 1, "{report}");
    assert_eq!(held.steps[3].ended.force_closed, 0, "{report}");
    assert_eq!(held.outcomes.deadline_aborted, 1);
    assert!(held.drain_deadline_hit);
    assert_eq!(held.stats.aborted, 1);
    assert!(report.to_json().contains("\"step\":\"abort\""));
    true
}

/// An unready time no force may wait out.
const UNREADY_FOR_A_FORCE: Duration = Duration::from_secs(30);

#[test]
fn force_during_unready_skips_to_force_and_leaks_nothing() {
    let fired = Arc::new(Mutex::new(Vec::new()));
    let admitted = Arc::new(AtomicUsize::new(0));
    let running = LoopGroup::new()
        .loops(2)
        .ladder(Ladder::default().with_unready(UNREADY_FOR_A_FORCE))
        .spawn(
            |_| Guarded::embedded("server", Config::default()),
            watched_routes(Arc::clone(&fired), Arc::clone(&admitted)),
        )
        .unwrap();
    let mut watched = Client::connect(running.addr());
    watched.send(b"GET /watch HTTP/1.1\r\nhost: x\r\n\r\n");
    wait_until("/watch to be admitted", || {
        admitted.load(Ordering::SeqCst) == 1
    });
    let stopper = running.stopper();
    stopper.stop();
    assert_eq!(get(running.addr(), "/healthz/ready").status, 503);
    stopper.force();
    let report = running.wait().unwrap();
    assert!(watched.answer().is_err());
    assert_sum_and_clean(&report);
    for r in &report.loops {
        assert_eq!(
            step_names(r),
            [Step::Unready, Step::Force, Step::Close],
            "{report}"
        );
        // Force waits for nothing: by the server's clock the group closed inside the 30 s of
        // unready, not after it.
        assert!(r.steps[2].at < UNREADY_FOR_A_FORCE, "{report}");
    }
    assert_eq!(report.totals.stats.aborted, 1);
    assert_eq!(report.totals.outcomes.force_closed, 1, "{report}");
    let ended: u64 = report
        .loops
        .iter()
        .map(|r| r.steps[1].ended.force_closed)
        .sum();
    assert_eq!(
        ended, 1,
        "the force step names the request it closed: {report}"
    );
    assert_eq!(fired.lock().unwrap().len(), 1);
}

/// The flake of `server_serve::a_second_sigterm_skips_the_drain_to_force` made certain: a
/// connection answered with `connection: close` lingers (our FIN sent, its client's not yet
/// read) when the force comes. It was closed already, so the force closes only the idle one.
#[test]
fn a_connection_lingering_after_its_last_answer_is_not_counted_force_closed() {
    let running = group(
        1,
        Ladder::default().with_unready(Duration::from_secs(30)),
        ListenMode::ReusePort,
    );
    let mut idle = Client::connect(running.addr());
    assert_eq!(
        idle.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    let mut lingering = Client::connect(running.addr());
    let answer = lingering.request("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (200, true));
    // The server's FIN: it lingers now, for 500 ms, while this side stays open.
    assert!(lingering.is_closed_by_server());
    let stopper = running.stopper();
    stopper.stop();
    stopper.force();
    let report = running.wait().unwrap();
    assert_sum_and_clean(&report);
    assert_eq!(
        step_names(&report.loops[0]),
        [Step::Unready, Step::Force, Step::Close]
    );
    assert_eq!(
        report.totals.force_closed, 1,
        "only the idle connection: {report}"
    );
    assert_eq!(
        report.totals.outcomes.force_closed, 0,
        "no request was out: {report}"
    );
    assert!(idle.is_closed_by_server());
}

#[test]
fn a_storm_of_connects_and_stops_leaves_every_ledger_at_zero() {
    // Bounded for `cargo test`; `GROUP_STORM_SECONDS=600` is the long run (no round cap).
    let long = std::env::var("GROUP_STORM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let until = Instant::now() + Duration::from_secs(long.unwrap_or(12));
    let max_rounds = if long.is_some() { usize::MAX } else { 16 };
    let mut rounds = 0;
    while rounds < max_rounds && Instant::now() < until {
        let mode = if rounds % 2 == 0 {
            ListenMode::ReusePort
        } else {
            ListenMode::Shared
        };
        let running = LoopGroup::new()
            .loops(2)
            .listen_mode(mode)
            .ladder(
                Ladder::default()
                    .with_drain_timeout(Duration::from_millis(150))
                    .with_force_after(Duration::from_millis(50)),
            )
            .spawn(
                |_| Guarded::embedded("server", Config::default()),
                demo_routes,
            )
            .unwrap();
        let addr = running.addr();
        let done = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let done = Arc::clone(&done);
                thread::spawn(move || {
                    for n in 0..200usize {
                        if done.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(mut stream) = TcpStream::connect(addr) else {
                            break; // the group has closed its listeners
                        };
                        let ms = (n * 7 + i * 13) % 300; // some outlive the drain
                        let _ = stream.write_all(
                            format!("GET /delay?ms={ms} HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n")
                                .as_bytes(),
                        );
                        if n % 3 == 0 {
                            continue; // hang up at once: the client is gone mid-request
                        }
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = stream.read(&mut [0; 256]);
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis((rounds * 11 % 40) as u64));
        let report = running.stop().unwrap();
        done.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().unwrap();
        }
        assert_sum_and_clean(&report);
        rounds += 1;
    }
    println!("stop storm: {rounds} rounds, every loop's ledger at zero");
    assert!(rounds >= 4, "only {rounds} rounds ran");
}

#[test]
fn no_connection_is_lost_between_loops_across_the_stop() {
    for mode in [ListenMode::ReusePort, ListenMode::Shared] {
        let running = group(
            2,
            Ladder::default().with_drain_timeout(Duration::from_secs(5)),
            mode,
        );
        let addr = running.addr();
        // One request holds one loop's drain open for 4 s; the other loop drains at once, and
        // must keep accepting until the group closes. The storm runs until each of its threads
        // has been refused 25 times after the stop (or 2.5 s at most), so it neither depends on
        // when the stop lands nor runs into the group's close (a connection started after
        // that is refused by design; as `hyper_serve`'s twin, which once lost that race).
        let mut holder = Client::connect(addr);
        holder.send(b"GET /delay?ms=4000 HTTP/1.1\r\nhost: x\r\n\r\n");
        let started = Instant::now();
        let stop_at = started + Duration::from_millis(150);
        let storm_until = started + Duration::from_millis(2500);
        let answered = Arc::new(AtomicUsize::new(0));
        let storm: Vec<_> = (0..4)
            .map(|_| {
                let answered = Arc::clone(&answered);
                thread::spawn(move || {
                    let (mut n, mut refused) = (0, 0);
                    while Instant::now() < storm_until && refused < 25 {
                        match try_get(addr, "/") {
                            Ok((200, _)) => {}
                            Ok((503, true)) => refused += 1,
                            other => panic!("connection {n} lost: {other:?}"),
                        };
                        answered.fetch_add(1, Ordering::SeqCst);
                        n += 1;
                    }
                })
            })
            .collect();
        thread::sleep(stop_at.saturating_duration_since(Instant::now()));
        let stopper = running.stopper();
        stopper.stop();
        for thread in storm {
            thread.join().expect("a connection was lost");
        }
        assert!(holder.answer().is_ok_and(|a| a.status == 200));
        let report = running.wait().unwrap();
        assert_sum_and_clean(&report);
        assert!(
            answered.load(Ordering::SeqCst) > 100,
            "the storm was too slow to mean anything"
        );
        // Both loops were still accepting after the stop, the early-drained one included:
        // with `SO_REUSEPORT` each has its own accept queue, which the kernel fills by a hash
        // of the client's port (100 refusals all on one loop: 2^-99). A `Shared` listener is
        // one queue, and which loop takes a connection is the scheduler's choice: one loop
        // may take every refused one (seen once in 30 runs), and none is lost either way.
        let refused =
            |r: &reqguard::http::ServerReport| r.stats.refused_stopped + r.stats.refused_finalized;
        match mode {
            ListenMode::ReusePort => {
                assert!(report.loops.iter().all(|r| refused(r) > 0), "{report}")
            }
            _ => assert!(report.loops.iter().any(|r| refused(r) > 0), "{report}"),
        }
    }
}

#[test]
fn a_loop_that_panics_before_ready_fails_the_spawn_without_hanging() {
    // Without hanging: the spawn returns within [`util::WAIT_BOUND`], which a passing test
    // never waits out (a 10 s bound on its time stood here, which a loaded machine could
    // outlast).
    let (done, spawned) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let spawned = LoopGroup::new().loops(2).spawn(
            |_| Guarded::embedded("server", Config::default()),
            |router: &mut Router<'_>| {
                if std::thread::current().name() == Some("reqguard-loop-1") {
                    panic!("routes of loop 1 fail on purpose");
                }
                demo_routes(router);
            },
        );
        let _ = done.send(spawned.map(drop).map_err(|e| e.to_string()));
    });
    let spawned = spawned
        .recv_timeout(util::WAIT_BOUND)
        .expect("the spawn returned");
    let err = spawned.expect_err("a loop died before it was ready");
    assert!(err.contains("before it was ready"), "{err}");
}

/// `running.stop()`, failing the test rather than hanging it if the stop never ends (the bound
/// is [`util::WAIT_BOUND`], which a passing test never waits out: no speed is assumed).
fn stop_within_bound(running: GroupHandle) -> GroupReport {
    let (done, report) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(running.stop().unwrap());
    });
    report
        .recv_timeout(util::WAIT_BOUND)
        .expect("the group's stop ended")
}

#[test]
fn absurd_ladder_times_are_refused_at_spawn_not_panicked_on_at_stop() {
    for ladder in [
        Ladder::default().with_unready(Duration::MAX),
        Ladder::default().with_drain_timeout(Duration::MAX),
        Ladder::default().with_force_after(Duration::from_secs(u64::MAX / 2)),
        Ladder::default().with_idle_linger(Duration::MAX),
    ] {
        let err = LoopGroup::new()
            .ladder(ladder)
            .spawn(
                |_| Guarded::embedded("server", Config::default()),
                demo_routes,
            )
            .expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
    // A year is accepted; with nothing out, the stop ends at once.
    let year = Duration::from_secs(365 * 24 * 3600);
    let ladder = Ladder::default()
        .with_drain_timeout(year)
        .with_force_after(year);
    let running = group(2, ladder, ListenMode::ReusePort);
    assert!(running.stop().unwrap().is_clean());
    // An idle linger longer than the drain does not hold the group past the drain deadline:
    // the kept-alive connection gets 503 close at the close step.
    let ladder = Ladder::default()
        .with_drain_timeout(Duration::from_millis(300))
        .with_idle_linger(year);
    let running = group(2, ladder, ListenMode::ReusePort);
    let mut kept = Client::connect(running.addr());
    assert_eq!(
        kept.request("GET / HTTP/1.1\r\nhost: t\r\n\r\n").status,
        200
    );
    let report = stop_within_bound(running);
    // By the server's clock, the close came at the drain's deadline, not at the linger's end.
    for r in &report.loops {
        let close = r.steps.last().unwrap();
        assert_eq!(close.step, Step::Close, "{report}");
        assert!(close.at >= ladder.drain_timeout(), "{report}");
        assert!(close.at < ladder.idle_linger(), "{report}");
    }
    let closing = kept.answer().expect("the close step's answer");
    assert_eq!((closing.status, closing.closes()), (503, true));
    assert!(closing.header("date").is_some(), "dated like every answer");
    assert_sum_and_clean(&report);
}

#[test]
fn health_probes_answer_get_and_head_before_admission_and_count_as_no_request() {
    let running = group(1, Ladder::default(), ListenMode::ReusePort);
    let mut stream = TcpStream::connect(running.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"HEAD /healthz/ready HTTP/1.1\r\nhost: t\r\n\r\n\
              GET /healthz/ready?from=lb HTTP/1.1\r\nhost: t\r\n\r\n\
              GET /healthz/live HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
    let mut all = String::new();
    stream.read_to_string(&mut all).unwrap();
    let answers: Vec<&str> = all.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{all:?}");
    // HEAD: the GET answer's head (content-length kept), no body, so the next answer follows.
    assert!(answers[0].starts_with("200 OK\r\n"), "{all:?}");
    assert!(answers[0].contains("content-length: 5\r\n"), "{all:?}");
    assert!(answers[0].ends_with("\r\n\r\n"), "{all:?}");
    assert!(answers[1].starts_with("200 OK\r\n") && answers[1].ends_with("ready"));
    assert!(answers[2].starts_with("200 OK\r\n") && answers[2].ends_with("live"));
    // Any other path goes to the routes (none here: 404).
    assert_eq!(get(running.addr(), "/healthz/nothing").status, 404);
    let report = running.stop().unwrap();
    assert_eq!(
        report.totals.stats.served, 1,
        "only the 404 was admitted: {report}"
    );
    assert_eq!(report.totals.outcomes.completed, 1);
}

/// The baseline accounting, except that `handled` panics while `MAY_PANIC` says it cannot (the
/// server catches every accounting call's panic it is told to expect; this one it catches
/// around its turns, documented on `Accounting`).
struct PanicsOnHandled(reqguard::http::Unaccounted);

impl reqguard::http::Accounting for PanicsOnHandled {
    type Held = ();
    const MAY_PANIC: bool = false;
    fn admit(&mut self) -> Result<(), reqguard::Refusal> {
        self.0.admit()
    }
    fn handled(&mut self) {
        panic!("handled fails on purpose");
    }
    fn signal(_: &()) -> Option<&reqguard::AbortSignal> {
        None
    }
    fn stop(&mut self, deadline: Instant) {
        self.0.stop(deadline);
    }
    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> reqguard::http::StopStatus {
        self.0.poll_stop(now, in_flight)
    }
    fn ledger(&self) -> Option<&reqguard::Ledger> {
        None
    }
    fn report(&self) -> reqguard::http::AccountingReport {
        self.0.report()
    }
}

/// A loop whose accounting panics where it said it cannot survives it, and so does the group:
/// `wait` has every loop's report, each panic counted. Until probe_embed::v10's round the loop
/// died of it, and the group stopped with it (`wait` returned the loop's error): that path
/// stays for a loop thread that panics otherwise.
#[test]
fn a_loop_whose_accounting_panics_mid_run_survives_and_the_group_reports_it() {
    let running = LoopGroup::new()
        .loops(2)
        .spawn(
            |_| PanicsOnHandled(reqguard::http::Unaccounted::new()),
            demo_routes,
        )
        .unwrap();
    let addr = running.addr();
    // Each request's `handled` panics in the loop that admits it: its connection closes.
    for _ in 0..4 {
        let _ = try_get(addr, "/");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(running.stop().map_err(|e| e.to_string()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the group stops");
    let report = result.expect("every loop survived: the group's report");
    assert_eq!(report.totals.stats.panics, 4, "{report}");
}

/// Out of file descriptors, a loop with no connection of its own to evict gets room from the
/// others: descriptors are the process's, and with `SO_REUSEPORT` the kernel chose the loop a
/// newcomer waits on. Here loop 1 holds only admitted requests (not evictable) and loop 0 only
/// idle connections; past the descriptor budget, a newcomer on loop 1 is served once loop 0
/// evicts an idle one. Before, loop 1 only paused and retried, and the newcomer waited until
/// the held requests ended (a minute here). Runs in a child process: it lowers the process's
/// open-file limit.
#[cfg(unix)]
#[test]
fn out_of_descriptors_a_loop_with_none_to_evict_gets_room_from_another() {
    const CHILD: &str = "REQGUARD_GROUP_DESCRIPTORS_CHILD";
    if !child::is_child(CHILD) {
        return child::assert_passes_in_child(
            CHILD,
            "out_of_descriptors_a_loop_with_none_to_evict_gets_room_from_another",
        );
    }
    let spawn = || {
        LoopGroup::new()
            .loops(2)
            .ladder(Ladder::default().with_drain_timeout(Duration::from_millis(200)))
            .listen_mode(ListenMode::ReusePort)
            .spawn(
                |_| Guarded::embedded("server", Config::default()),
                |router| {
                    router.route(
                        "GET",
                        "/which",
                        |_: &Request<'_>, res: &mut Response<'_>| {
                            res.write(thread::current().name().unwrap_or("").as_bytes());
                            Reply::Now
                        },
                    );
                    router.route("GET", "/hold", |_: &Request<'_>, _: &mut Response<'_>| {
                        Reply::After {
                            delay: Duration::from_secs(60),
                            token: 0,
                        }
                    });
                },
            )
            .expect("spawn the group")
    };
    let discard = |group: GroupHandle| assert_eq!(group.stop().unwrap().totals.leaked, 0);
    let (group, clients) =
        descriptors::on_a_group_spread_well(spawn, GroupHandle::addr, discard, "reqguard-loop-1");
    let report = group.stop().expect("the group's report");
    let (loop_0, loop_1) = (&report.loops[0].stats, &report.loops[1].stats);
    assert!(loop_0.connections_evicted >= 2, "{report:?}");
    assert!(loop_1.accept_backoffs >= 2, "{report:?}");
    assert_eq!(report.totals.leaked, 0);
    drop(clients);
}

/// The same on the hyper stack's loop group (`reqguard::tokio_hyper::HyperGroup`).
#[cfg(all(unix, feature = "hyper"))]
#[test]
fn out_of_descriptors_a_hyper_loop_with_none_to_evict_gets_room_from_another() {
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperGroup, HyperGroupHandle, HyperServer};
    use reqguard::ServerCore;

    const CHILD: &str = "REQGUARD_HYPER_GROUP_DESCRIPTORS_CHILD";
    if !child::is_child(CHILD) {
        return child::assert_passes_in_child(
            CHILD,
            "out_of_descriptors_a_hyper_loop_with_none_to_evict_gets_room_from_another",
        );
    }
    let spawn = || {
        HyperGroup::new()
            .loops(2)
            .listen_mode(ListenMode::ReusePort)
            .spawn(|_| {
                let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
                HyperServer::new(core, |_this, request: hyper::Request<_>, bundle: Bundle| {
                    let hold = request.uri().path() == "/hold";
                    async move {
                        if hold {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        let name = thread::current().name().unwrap_or("").to_owned();
                        let body = Full::new(Bytes::from(name));
                        Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
                    }
                })
            })
            .expect("spawn the group")
    };
    let discard = |group: HyperGroupHandle| {
        group.stopper().force();
        assert_eq!(group.wait().unwrap().totals.leaked, 0);
    };
    let (group, clients) = descriptors::on_a_group_spread_well(
        spawn,
        HyperGroupHandle::addr,
        discard,
        "reqguard-hyper-1",
    );
    group.stopper().force();
    let report = group.wait().expect("the group's report");
    let (loop_0, loop_1) = (&report.loops[0].stats, &report.loops[1].stats);
    assert!(loop_0.connections_evicted >= 2, "{report:?}");
    assert!(loop_1.accept_backoffs >= 2, "{report:?}");
    assert_eq!(report.totals.leaked, 0);
    drop(clients);
}

/// A process out of file descriptors, as the tests above need it: client sockets made first,
/// with descriptors above the limit, then the limit lowered so that the server has a budget.
#[cfg(unix)]
mod descriptors {
    use super::*;
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    use socket2::{Domain, Socket, Type};
    use std::net::SocketAddr;

    /// Connections the server may hold before it runs out of descriptors.
    const BUDGET: usize = 12;
    /// Client sockets, made before the limit is lowered, with descriptors above it.
    const CLIENTS: usize = 3 * BUDGET;
    /// Idle connections the other loop must hold at the budget: one for each of the two
    /// newcomers on the full loop, and one for a descriptor the process may take meanwhile.
    const ROOM_ELSEWHERE: usize = 3;

    /// Fresh groups a test may spawn before it gives up on the kernel's choices.
    const ATTEMPTS: usize = 4;

    /// [`newcomers_on_a_full_loop_are_served`] on a group from `spawn`, again on a fresh one
    /// (`discard` stops the old one) while the kernel gave the other loop too few of the first
    /// [`BUDGET`] clients: with none left to evict there, a second newcomer on `full` could
    /// not be served, and that would be the kernel's dice, not the server's fault (with two
    /// loops, 11 or 12 of 12 land on one about 1 run in 300). Returns the group and its clients.
    pub(super) fn on_a_group_spread_well<G>(
        spawn: impl Fn() -> G,
        addr: impl Fn(&G) -> SocketAddr,
        discard: impl Fn(G),
        full: &str,
    ) -> (G, Vec<Client>) {
        let limit = getrlimit(Resource::Nofile);
        for _ in 0..ATTEMPTS {
            let group = spawn();
            if let Some(clients) = newcomers_on_a_full_loop_are_served(addr(&group), full) {
                return (group, clients);
            }
            let (current, maximum) = (limit.current, limit.maximum);
            setrlimit(Resource::Nofile, Rlimit { current, maximum }).unwrap();
            discard(group);
        }
        panic!("{ATTEMPTS} groups in a row with too few clients on the other loop than {full}");
    }

    /// Connects clients one at a time to `addr` and asks each which loop serves it: those on
    /// the loop named `full` are given a request that stays in its handler (not evictable),
    /// the others stay idle (evictable). Past the budget, every newcomer must be served, until
    /// two on `full` were. Returns the clients (the caller stops the server first), or `None`
    /// if fewer than [`ROOM_ELSEWHERE`] of the first [`BUDGET`] are idle on the other loop.
    fn newcomers_on_a_full_loop_are_served(addr: SocketAddr, full: &str) -> Option<Vec<Client>> {
        let mut sockets = high_sockets();
        lower_limit_to_budget();
        let mut clients = Vec::new();
        let (mut idle_elsewhere, mut served_past_budget_on_full) = (0, 0);
        for n in 0..CLIENTS {
            if n == BUDGET && idle_elsewhere < ROOM_ELSEWHERE {
                return None;
            }
            let mut client = connect(sockets.pop().unwrap(), addr);
            let which = client.request("GET /which HTTP/1.1\r\nhost: x\r\n\r\n");
            if which.text() == full {
                client.send(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n");
                served_past_budget_on_full += usize::from(n >= BUDGET);
            } else {
                idle_elsewhere += usize::from(n < BUDGET);
            }
            clients.push(client);
            if served_past_budget_on_full == 2 {
                return Some(clients);
            }
            // Older than the 100 ms a connection must have held its slot to be evicted.
            thread::sleep(Duration::from_millis(120));
        }
        panic!("too few newcomers on {full}");
    }

    /// Client sockets whose descriptors are above the limit this test sets, so that making and
    /// connecting them takes none of the server's budget.
    fn high_sockets() -> Vec<Socket> {
        let min = getrlimit(Resource::Nofile).current.expect("a finite limit") as i32 - 64;
        assert!(min > 256, "the open-file limit is too low for this test");
        (0..CLIENTS)
            .map(|_| {
                let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
                Socket::from(rustix::io::fcntl_dupfd_cloexec(&socket, min).unwrap())
            })
            .collect()
    }

    /// Lowers the open-file limit so that exactly [`BUDGET`] descriptors are free below it.
    fn lower_limit_to_budget() {
        let mut open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        // The listing's own descriptor was the lowest free one, and is free again.
        let listing = std::fs::File::open("/dev/null").unwrap();
        open.retain(|&fd| fd != std::os::fd::AsRawFd::as_raw_fd(&listing));
        drop(listing);
        let (mut free, mut limit) = (0, 0);
        while free < BUDGET {
            free += usize::from(!open.contains(&limit));
            limit += 1;
        }
        let hard = getrlimit(Resource::Nofile).maximum;
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(limit as u64),
                maximum: hard,
            },
        )
        .unwrap();
    }

    fn connect(socket: Socket, addr: SocketAddr) -> Client {
        socket.connect(&addr.into()).expect("the backlog takes it");
        Client::from_stream(socket.into(), Duration::from_secs(3))
    }
}

/// A connection idle at the ladder's close step gets its `503` and a fresh reading state; it
/// kept no count of the answers it had already made, which may still be in its socket. When
/// the client then reset the connection, the kernel dropped them, yet they stayed `served`
/// (the close counted nothing undelivered: the new state had served none). Here a client
/// with a 4 KiB receive buffer reads one 256 KiB echo, then pipelines four more and reads
/// nothing: their answers wait in the sockets (the state is read from `/proc/net/tcp`, not
/// timed), the connection idle. Stop; once the close step has closed the listener, the client
/// resets. The four answers it never read are not `served`.
#[cfg(target_os = "linux")]
#[test]
fn answers_a_reset_drops_after_the_close_step_are_undelivered_not_served() {
    const BODY: usize = 256 * 1024;
    let running = group(
        1,
        Ladder::default()
            .with_idle_linger(Duration::from_secs(30))
            .with_drain_timeout(Duration::from_millis(300)),
        ListenMode::ReusePort,
    );
    let addr = running.addr();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut client: TcpStream = socket.into();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = [
        format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {BODY}\r\n\r\n").into_bytes(),
        vec![b'e'; BODY],
    ]
    .concat();
    // The first answer read whole: its length is each answer's.
    client.write_all(&request).unwrap();
    let mut first = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let answer_len = loop {
        if let Some((head, body)) = util::answer_at(&first, 0) {
            assert!(head.starts_with("http/1.1 200"), "{head}");
            if first.len() >= body.end {
                assert_eq!(first.len(), body.end);
                break body.end as u64;
            }
        }
        let n = client.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} bytes", first.len());
        first.extend_from_slice(&chunk[..n]);
    };
    let mut sending = client.try_clone().unwrap();
    let pipelined = request.repeat(4);
    let sender = thread::spawn(move || sending.write_all(&pipelined).unwrap());
    let (server_port, client_port) = (addr.port(), client.local_addr().unwrap().port());
    // Every upload read and every answer in the sockets: the connection is idle.
    util::wait_until("four answers in the sockets", || {
        let server = util::tcp_socket(server_port, client_port);
        let client = util::tcp_socket(client_port, server_port);
        matches!((server, client), (Some((_, sent, 0)), Some((_, _, got))) if sent + got == 4 * answer_len)
    });
    sender.join().unwrap();
    running.stopper().stop();
    util::wait_until("the close step (the listener closed)", || {
        util::tcp_socket(server_port, 0).is_none()
    });
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let report = running.wait().unwrap();
    assert_sum_and_clean(&report);
    let stats = &report.totals.stats;
    assert!(
        stats.served <= 1 && stats.undelivered >= 4,
        "the four answers never read are undelivered (the first one too if the client's TCP had \
         not acknowledged it at the reset: conservative): {report}"
    );
    assert_eq!(stats.served + stats.undelivered, 5, "{report}");
    assert_eq!(report.totals.outcomes.completed, 5, "{report}");
}
