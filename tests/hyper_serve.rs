//! `reqguard-demo serve --stack hyper` as a user runs it: a separate process driven by `curl`
//! (skipped with a message when curl is missing; `.ci/run` installs it), stopped by
//! SIGINT/SIGTERM, printing the mio stack's JSON line. Also `EMFILE` on accept.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::serve::{curl, field, have_curl, loop_objects, per_loop, send_signal, Serve, BIN};
use util::{get, try_get, wait_until, Client};

/// `reqguard-demo serve --stack hyper ARGS` after `prefix` in the shell.
fn start_hyper(prefix: &str, args: &str) -> Serve {
    Serve::start(prefix, &format!("--stack hyper {args}"))
}

#[test]
fn serve_stack_hyper_under_curl_then_sigint_prints_json_and_exits_0() {
    if !have_curl() {
        return;
    }
    let serve = start_hyper("", "");
    let head = curl(&["-i", &serve.url("/")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\nhello"), "{head}");
    // Keep-alive: one connection made for the first transfer, none for the second.
    let pair = curl(&["-w", " %{num_connects}\n", &serve.url("/"), &serve.url("/")]);
    assert_eq!(pair, "hello 1\nhello 0\n");
    assert_eq!(
        curl(&["--data-binary", "ping", &serve.url("/echo")]),
        "ping"
    );
    assert_eq!(curl(&[&serve.url("/delay?ms=20")]), "delayed 20 ms");
    let panic = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &serve.url("/panic"),
    ]);
    assert_eq!(panic, "500");
    assert_eq!(curl(&[&serve.url("/")]), "hello");

    let (json, ok) = serve.signal_and_wait("INT");
    assert!(ok, "exit status 0 when nothing leaked: {json}");
    assert_eq!(field(&json, "served"), 7.0, "{json}");
    assert_eq!(
        (field(&json, "leaked"), field(&json, "refused")),
        (0.0, 0.0),
        "{json}"
    );
    assert_eq!(
        (field(&json, "aborted"), field(&json, "panics")),
        (0.0, 1.0),
        "{json}"
    );
    assert!(field(&json, "drain_ms") >= 0.0);
    // One outcome per admitted request: six completed, the panic dropped.
    assert_eq!(
        (field(&json, "completed"), field(&json, "dropped")),
        (6.0, 1.0),
        "{json}"
    );
    assert!(json.contains("\"stack\":\"hyper\""), "{json}");
}

#[test]
fn collect_on_stop_answers_kept_alive_connections_503_after_sigterm() {
    // Idle connections may linger 20 s into the drain, long enough for the late request on a
    // loaded machine (2 s before: the readiness probes and the request had to fit in them);
    // the drain does not wait it out, `kept` is closed by its `503`.
    let serve = start_hyper("", "--collect-on-stop --idle-linger-ms 20000");
    let mut kept = Client::connect(serve.addr);
    assert_eq!(
        kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    let addr = serve.addr;
    assert_eq!(get(addr, "/healthz/ready").status, 200);
    send_signal(serve.child.id(), "TERM");
    // As on mio: readiness turns 503 and the port keeps accepting during the drain.
    wait_until("readiness to turn 503", || {
        get(addr, "/healthz/ready").status == 503
    });
    assert_eq!(get(addr, "/healthz/live").status, 200);
    let fresh = get(addr, "/");
    assert_eq!(
        (fresh.status, fresh.closes()),
        (503, true),
        "a new connection is refused"
    );
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (503, true));
    drop(kept);
    let mut serve = serve;
    let (json, ok) = serve.json_and_status();
    assert!(ok, "{json}");
    assert_eq!(field(&json, "refused_finalized"), 2.0, "{json}");
    assert_eq!(field(&json, "leaked"), 0.0);
}

#[test]
fn a_second_sigterm_skips_the_drain_to_force_on_every_loop() {
    for loops in [1, 2] {
        let serve = start_hyper("", &format!("--loops {loops} --drain-timeout-ms 30000"));
        let mut delayed = Client::connect(serve.addr);
        delayed.send(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n");
        util::wait_read_by_server(delayed.stream()); // another process: read is admitted
        send_signal(serve.child.id(), "TERM");
        wait_until("readiness to turn 503", || {
            get(serve.addr, "/healthz/ready").status == 503
        });
        assert_eq!(get(serve.addr, "/healthz/live").status, 200);
        // The drain waits for the delayed request (30 s); a second signal forces every loop.
        let (json, ok) = serve.signal_and_wait("TERM");
        // Had the drain waited out its 30 s, the delayed request would have been served.
        assert_eq!(
            field(&json, "served"),
            0.0,
            "the drain waited out its 30 s: {json}"
        );
        assert!(ok, "{json}");
        assert!(delayed.answer().is_err(), "force-closed without an answer");
        assert_eq!(field(&json, "force_closed"), 1.0, "{json}");
        assert_eq!(field(&json, "aborted"), 1.0, "{json}");
        // As on mio: the second signal closes the socket first, so the request ends force
        // closed (its signal fired as it closed: `aborted` 1), and one force step ended it.
        let force_closed_one =
            "{\"completed\":0,\"client_gone\":0,\"deadline_aborted\":0,\"force_closed\":1,";
        assert!(
            json.contains(&format!("\"outcomes\":{force_closed_one}")),
            "{json}"
        );
        assert_eq!(
            json.matches(&format!("\"ended\":{force_closed_one}"))
                .count(),
            1,
            "{json}"
        );
        assert!(
            json.contains("\"drain_deadline_hit\":false"),
            "forced, not expired: {json}"
        );
        let leaked: Vec<f64> = loop_objects(&json)
            .iter()
            .map(|o| field(o, "leaked"))
            .collect();
        assert_eq!(leaked, vec![0.0; loops], "{json}");
        // Every loop records the force step, the one that had drained already too; the
        // deadline was never reached.
        assert_eq!(json.matches("\"step\":\"force\"").count(), loops, "{json}");
        assert!(!json.contains("\"step\":\"abort\""), "{json}");
    }
}

#[test]
fn request_timeout_and_max_body_flags_bound_the_echo_body() {
    let serve = start_hyper(
        "",
        "--request-timeout-ms 200 --idle-timeout-ms 9000 --max-body 4096",
    );
    // A request answered after 9 s: the server's own clock the slow body's `408` is read
    // against, not the test's (hyper has one timer for an idle connection and a slow head,
    // which the flag sets too: an idle connection is no clock here).
    let mut delayed = Client::connect(serve.addr);
    delayed.send(b"GET /delay?ms=9000 HTTP/1.1\r\nhost: t\r\n\r\n");
    util::wait_read_by_server(delayed.stream()); // another process: read is admitted
    let mut slow = Client::connect(serve.addr);
    slow.send(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nab");
    let answer = slow.answer().unwrap();
    assert_eq!((answer.status, answer.closes()), (408, true));
    // The flag's timer (200 ms), not the default's (10 s): the `408` came before the delayed
    // request, admitted first, was answered at 9 s; the default's would come after.
    assert!(
        util::open_and_silent(delayed.stream()),
        "the delayed request was answered first: the default's 10 s"
    );
    drop(delayed); // its client gone: no answer, not served
    let mut big = Client::connect(serve.addr);
    big.send(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4097\r\n\r\n");
    assert_eq!(
        big.answer().unwrap().status,
        413,
        "refused before the body is read"
    );
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    assert_eq!(field(&json, "rejected"), 2.0, "{json}");
    assert_eq!(field(&json, "served"), 0.0, "{json}");
    assert_eq!(field(&json, "aborted"), 1.0, "the delayed request: {json}");
}

#[test]
fn emfile_on_accept_pauses_instead_of_spinning_and_recovers() {
    let serve = start_hyper("ulimit -n 32 &&", "--max-connections 1000");
    util::serve::out_of_descriptors_pauses_then_recovers(serve);
}

#[test]
fn the_drain_deadline_aborts_a_delay_request_then_force_closes_it_without_an_answer() {
    let serve = start_hyper("", "--loops 2 --drain-timeout-ms 300 --force-after-ms 200");
    let mut delayed = Client::connect(serve.addr);
    delayed.send(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: t\r\n\r\n");
    util::wait_read_by_server(delayed.stream()); // another process: read is admitted
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    // Drain 300 ms, abort, force 200 ms later: the request's 30 s not waited out (it would
    // have been served).
    assert_eq!(
        field(&json, "served"),
        0.0,
        "the stop waited for the request's 30 s: {json}"
    );
    assert!(delayed.answer().is_err(), "force-closed without an answer");
    assert_eq!(field(&json, "aborted"), 1.0, "{json}");
    assert_eq!(field(&json, "force_closed"), 1.0, "{json}");
    assert!(json.contains("\"drain_deadline_hit\":true"), "{json}");
    assert_eq!(
        field(&json, "deadline_aborted"),
        1.0,
        "the first cause: {json}"
    );
    assert_eq!(field(&json, "leaked"), 0.0, "{json}");
    // The loop that held it recorded drain, abort, force, close, as a mio loop does; the abort
    // step names what was out.
    let abort = &json[json.find("\"step\":\"abort\"").expect("an abort step")..];
    let abort = &abort[..abort.find("\"step\":\"force\"").expect("then a force step")];
    assert!(abort.contains("\"in_flight\":1"), "{abort}");
    assert!(
        abort.contains("\"kind\":\"pending-request ticket\""),
        "{abort}"
    );
    assert!(abort.contains("\"in_handler\":{\"count\":1"), "{abort}");
    // ... and, as on mio, its route (one request on it), and its age: it had waited since its
    // admission (about 300 ms before the stop, plus the 300 ms drain).
    assert!(
        abort.contains("\"route\":\"GET /delay\",\"count\":1,"),
        "{abort}"
    );
    let age = abort.split("\"oldest_ms\":").nth(1).expect("an age");
    let age: f64 = age[..age.find('}').unwrap()].parse().unwrap();
    assert!(age >= 300.0, "{abort}");
    let ended_by_force = "\"ended\":{\"completed\":0,\"client_gone\":0,\"deadline_aborted\":1";
    assert_eq!(json.matches(ended_by_force).count(), 1, "{json}");
    for step in ["drain", "close"] {
        let count = json.matches(&format!("\"step\":\"{step}\"")).count();
        assert_eq!(count, 2, "a {step} step on each loop: {json}");
    }
}

#[test]
fn serve_stack_hyper_refuses_invalid_limits_at_start() {
    for (flag, value) in [("--max-connections", "0"), ("--idle-timeout-ms", "0")] {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--stack",
                "hyper",
                "--addr",
                "127.0.0.1:0",
                flag,
                value,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The adapter's own check's words (the demo's copy said `invalid Limits`).
        assert!(stderr.contains("invalid Options: "), "{stderr}");
    }
}

#[test]
fn two_loops_under_load_stop_with_nothing_leaked_and_totals_the_sum_of_loops() {
    let serve = start_hyper("", "--loops 2");
    let addr = serve.addr;
    // Bounded load: 4 threads, 40 fresh connections each (the kernel spreads them over the
    // two SO_REUSEPORT listeners) and 40 requests on one kept-alive connection each.
    let load: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..40 {
                    assert_eq!(get(addr, "/").status, 200);
                }
                let mut kept = Client::connect(addr);
                for _ in 0..40 {
                    let answer = kept
                        .request("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi");
                    assert_eq!((answer.status, answer.text()), (200, "hi"));
                }
            })
        })
        .collect();
    for thread in load {
        thread.join().expect("every request answered 200");
    }
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "exit 0: nothing leaked on any loop: {json}");
    let served = per_loop(&json, "served");
    assert_eq!(served.len(), 2, "one object per loop: {json}");
    assert!(served.iter().all(|&n| n > 0.0), "both loops served: {json}");
    assert_eq!(field(&json, "served"), 320.0, "{json}");
    for key in ["served", "connections", "completed", "refused", "leaked"] {
        let sum: f64 = loop_objects(&json).iter().map(|o| field(o, key)).sum();
        assert_eq!(
            field(&json, key),
            sum,
            "totals.{key} is the sum of the loops: {json}"
        );
    }
    for one in loop_objects(&json) {
        assert_eq!(field(one, "leaked"), 0.0, "{json}");
        assert_eq!(
            field(one, "served"),
            field(one, "completed"),
            "one outcome each: {json}"
        );
    }
    for step in ["drain", "close"] {
        let count = json.matches(&format!("\"step\":\"{step}\"")).count();
        assert_eq!(count, 2, "a {step} step on each loop: {json}");
    }
}

#[test]
fn no_connection_is_lost_between_loops_across_sigterm() {
    for mode in ["reuseport", "shared"] {
        let serve = start_hyper("", &format!("--loops 2 --listen {mode}"));
        let addr = serve.addr;
        // One request holds one loop's drain open for 6 s; the other loop drains at once and
        // must keep accepting (503 + close) until the whole group closes (pingora#427). The
        // storm runs until each of its threads has been refused 25 times after the stop (or
        // 2.5 s at most): it does not depend on when the signal is handled (on a loaded machine
        // `kill` and the signal's handling took over a second once, after a storm of fixed
        // length had ended), and it ends well before the group closes (a connection started
        // after that is refused by design).
        let mut holder = Client::connect(addr);
        holder.send(b"GET /delay?ms=6000 HTTP/1.1\r\nhost: x\r\n\r\n");
        // Read, so admitted, before the stop (another process; the storm's answers may all
        // come from the other loop): unread then, it was refused `503`. Its 6 s run from
        // here, past the storm's 2.5 s and a slow signal.
        util::wait_read_by_server(holder.stream());
        let storm_until = Instant::now() + Duration::from_millis(2500);
        let storming = Arc::new(AtomicUsize::new(0));
        let storm: Vec<_> = (0..4)
            .map(|_| {
                let storming = storming.clone();
                std::thread::spawn(move || {
                    let (mut answered, mut refused) = (0, 0);
                    while Instant::now() < storm_until && refused < 25 {
                        match try_get(addr, "/") {
                            Ok((200, _)) => answered += 1,
                            Ok((503, true)) => {
                                answered += 1;
                                refused += 1;
                            }
                            other => panic!("connection {answered} lost: {other:?}"),
                        }
                        storming.fetch_add(1, Ordering::Relaxed);
                    }
                    answered
                })
            })
            .collect();
        // The signal comes once the storm has had the answers it needs to mean something (an
        // event; a 300 ms sleep before, which a loaded machine could spend on a few answers), or
        // when the storm ends without them (the assertion below then says so).
        wait_until("the storm's answers", || {
            storming.load(Ordering::Relaxed) > 100 || Instant::now() >= storm_until
        });
        send_signal(serve.child.id(), "TERM");
        let answered: usize = storm
            .into_iter()
            .map(|t| t.join().expect("a connection was lost"))
            .sum();
        let held = holder.answer().expect("the held request is answered");
        assert_eq!(held.status, 200, "{mode}");
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{mode}: {json}");
        assert!(
            answered > 100,
            "{mode}: the storm was too slow to mean anything"
        );
        // Both loops were still accepting after the stop, the early-drained one included:
        // each has its own accept queue with `reuseport`. With `shared` (one queue) which loop
        // takes a connection is the scheduler's choice, and one may take every refused one.
        let loops = loop_objects(&json);
        let refusing = loops
            .iter()
            .filter(|one| field(one, "refused_stopped") > 0.0)
            .count();
        let want = if mode == "reuseport" { loops.len() } else { 1 };
        assert!(refusing >= want, "{mode}: {json}");
        for one in loops {
            assert_eq!(field(one, "leaked"), 0.0, "{mode}: {json}");
        }
    }
}

#[test]
fn serve_stack_hyper_refuses_bad_loops_and_listen_values() {
    for args in ["--loops 0", "--loops 1025", "--listen sideways"] {
        let out = Command::new(BIN)
            .args(["serve", "--stack", "hyper", "--addr", "127.0.0.1:0"])
            .args(args.split(' '))
            .output()
            .expect("run reqguard-demo");
        assert_eq!(out.status.code(), Some(2), "{args}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(args.split(' ').next().unwrap()),
            "{args}: {err}"
        );
    }
}

/// A connection the kernel completed but the loop had not accepted yet when the listener
/// closes is reset by the close (its request lost). The loop takes its accept queue first, as
/// the mio loops do at their close step: each such connection gets its `503` + close. Found by
/// a load run: a client reconnecting through a SIGTERM saw 23 to 31 resets on 2 runs in 3.
#[test]
fn connections_queued_when_the_listener_closes_are_answered_not_reset() {
    for round in 0..3 {
        let mut serve = start_hyper("", "--loops 1");
        let addr = serve.addr;
        let until = Instant::now() + Duration::from_secs(5);
        let storming = Arc::new(AtomicUsize::new(0));
        let storm: Vec<_> = (0..6)
            .map(|_| {
                let storming = storming.clone();
                std::thread::spawn(move || {
                    let (mut answered, mut lost) = (0, Vec::new());
                    while Instant::now() < until && answered < 20_000 {
                        match try_get(addr, "/") {
                            Ok((200, _)) | Ok((503, true)) => {
                                answered += 1;
                                storming.fetch_add(1, Ordering::Relaxed);
                            }
                            // The listener has closed: the stop is over.
                            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                                break
                            }
                            other => lost.push(format!("{other:?}")),
                        }
                    }
                    (answered, lost)
                })
            })
            .collect();
        // The signal comes once the storm has had the answers it needs to mean something (an
        // event; a 200 ms sleep before, which a loaded machine could spend on a few answers), or
        // when the storm ends without them (the assertion below then says so).
        wait_until("the storm's answers", || {
            storming.load(Ordering::Relaxed) > 100 || Instant::now() >= until
        });
        send_signal(serve.child.id(), "TERM");
        let (mut answered, mut lost) = (0, Vec::new());
        for thread in storm {
            let (answered_here, lost_here) = thread.join().expect("a storm thread");
            answered += answered_here;
            lost.extend(lost_here);
        }
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{json}");
        assert!(
            answered > 100,
            "round {round}: the storm was too slow to mean anything"
        );
        // What stays is the kernel's window between the loop's last `accept` and its `close`
        // (docs/server.md): at most one of the storm's connections, rarely (1 round in 135
        // with the queue taken; every round lost all six without it).
        assert!(
            lost.len() <= 1,
            "round {round}: {} lost: {lost:?}",
            lost.len()
        );
    }
}

/// A `413` answered before the body is read (its `content-length` is over `--max-body`), then
/// the body: the server reads and drops it for a while after its answer (RFC 9112 §9.6, as the
/// mio server does), so a client still uploading gets no reset. Closing on unread input reset
/// the connection: the upload failed with a broken pipe, and curl, which reads the answer after
/// sending, never read the status ("Send failure: Broken pipe", code 100). Found by load runs.
#[test]
fn an_upload_refused_413_before_its_body_is_read_ends_cleanly_not_reset() {
    use std::io::{Read, Write};
    let serve = start_hyper("", "--max-body 4096");
    let mut stream = TcpStream::connect(serve.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body_len = 512 * 1024;
    let head = format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {body_len}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The answer comes before the body (the length alone is too large), then the server's FIN.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    assert!(answer.contains("connection: close"), "{answer:?}");
    // A client that sends its body anyway (curl reads the answer only after sending).
    std::thread::sleep(Duration::from_millis(20));
    let chunk = vec![b'x'; 64 * 1024];
    for sent in (0..body_len).step_by(chunk.len()) {
        if let Err(err) = stream.write_all(&chunk) {
            panic!("the upload was reset after {sent} bytes: {err}");
        }
    }
}

/// A connection accepted during the drain (the listener stays open) answers `503` and closes by
/// itself: it must not hold the drain, or clients that reconnect as they are refused hold it to
/// the deadline (wrk -c1000 through a SIGTERM: 6.1 s, the deadline hit with nothing in flight,
/// 872 connections force-closed; mio: 0.3 s). One silent connection accepted during the drain
/// shows it: the drain ends with the last request, as on the mio loops.
#[test]
fn a_connection_accepted_during_the_drain_does_not_hold_it() {
    let mut serve = start_hyper("", "--loops 1 --drain-timeout-ms 4000");
    let mut held = Client::connect(serve.addr);
    // Long enough for the steps below on a loaded machine, well inside the 4 s deadline.
    held.send(b"GET /delay?ms=2000 HTTP/1.1\r\nhost: x\r\n\r\n");
    util::wait_read_by_server(held.stream()); // another process: read is admitted
    send_signal(serve.child.id(), "TERM");
    wait_until("the drain to begin", || {
        get(serve.addr, "/healthz/ready").status == 503
    });
    let _silent = TcpStream::connect(serve.addr).expect("the listener stays open");
    assert_eq!(held.answer().expect("the held request").status, 200);
    let (json, ok) = serve.json_and_status();
    assert!(ok, "{json}");
    // The drain ended with the held request, not at its deadline (4 s): nothing was left for
    // the deadline to abort or the force to close, the silent connection included.
    assert!(json.contains("\"drain_deadline_hit\":false"), "{json}");
    assert_eq!(field(&json, "force_closed"), 0.0, "{json}");
    assert_eq!(field(&json, "aborted"), 0.0, "{json}");
}

/// The exit JSON's `aborted` means the same on both stacks: admitted requests that ended
/// without their answer (client gone, deadline aborted, force closed). Before, hyper's counted
/// only what the drain deadline aborted, so a client gone mid-request was `aborted: 1` on mio
/// and `aborted: 0` on hyper (qa-embed9).
#[test]
fn aborted_counts_a_client_gone_mid_request_on_both_stacks() {
    for stack in ["--stack mio", "--stack hyper"] {
        let serve = Serve::start("", stack);
        let mut gone = Client::connect(serve.addr);
        gone.send(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n");
        // Another process: admitted in the turn that reads it.
        util::wait_read_by_server(gone.stream());
        drop(gone);
        assert_eq!(get(serve.addr, "/").status, 200);
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "client_gone"), 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "aborted"), 1.0, "{stack}: {json}");
    }
}
