//! qa-client19, round 19: the stack differences round 18 left (docs/server.md "Not done"), as
//! a hostile client sees them through `reqguard-demo serve` (the process a user runs). Answers
//! are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::{Duration, Instant};

use util::serve::{close_steps_answered, field, send_signal, Serve};
use util::strict::{expect_clean_eof, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// How long a test waits to see that nothing more comes on a connection.
const QUIET: Duration = Duration::from_millis(200);

/// At `--max-connections 1`, connects newcomers (each `GET /` with `connection: close`) until
/// one is served: a head is evictable once silent for 100 ms as the server saw it, and a
/// newcomer before that (a slow machine, valgrind) is refused `503` + close. Returns how many
/// were refused.
fn evict_with_a_newcomer(serve: &Serve, stack: &str) -> u32 {
    std::thread::sleep(Duration::from_millis(100));
    let by = Instant::now() + util::READ_TIMEOUT;
    let mut refused = 0;
    loop {
        let mut newcomer = StrictClient::connect(serve.addr);
        newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let answer = newcomer.answer("GET");
        if answer.status == 200 {
            assert_eq!(answer.text(), "hello", "{stack}");
            return refused;
        }
        assert_eq!(
            (answer.status, answer.closes()),
            (503, true),
            "{stack}: {answer:?}"
        );
        refused += 1;
        assert!(Instant::now() < by, "{stack}: no newcomer served");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// QA client19-1. A connection evicted at the connection limit with a head in progress gets
/// the answer the mio loops give that head: `408` + close, and to a `HEAD` request the
/// explanation's length alone, no body (RFC 9110 §9.3.2: a strict client reads the body as the
/// start of the next answer); a head begun after an earlier answer gets its `408` too. Before,
/// the hyper adapter answered the eviction from the socket, blind to hyper's read buffer: its
/// `408` carried `Request Timeout` to a `HEAD`, and a head begun after an answer got an EOF.
/// Counted `rejected` once each, on both stacks.
#[test]
fn an_evicted_head_is_answered_as_mio_answers_it_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --max-connections 1"));
        let mut head = StrictClient::connect(serve.addr);
        head.send(b"HEAD / HTTP/1.1\r\nhost: x\r\n");
        let mut refused = evict_with_a_newcomer(&serve, stack);
        let evicted = head.answer("HEAD");
        let shown = format!("{stack}: {evicted:?}");
        assert_eq!((evicted.status, evicted.closes()), (408, true), "{shown}");
        assert_eq!(evicted.field("content-length"), Some("15"), "{shown}");
        assert_eq!(evicted.text(), "", "{shown}");
        head.expect_nothing_more(true, QUIET);

        let mut kept = StrictClient::connect(serve.addr);
        kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let first = kept.answer("GET");
        assert_eq!((first.status, first.closes()), (200, false), "{stack}");
        kept.send(b"GET /del");
        refused += evict_with_a_newcomer(&serve, stack);
        let evicted = kept.answer("GET");
        assert_eq!(
            (evicted.status, evicted.text(), evicted.closes()),
            (408, "Request Timeout", true),
            "{stack}: {evicted:?}"
        );
        kept.expect_nothing_more(true, QUIET);

        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 2.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 3.0, "{stack}: {json}");
        assert_eq!(
            field(&json, "connections_refused"),
            f64::from(refused),
            "{stack}: {json}"
        );
    }
}

/// QA client19-3. A request head in progress when the stop turns keep-alive off is kept, as
/// the mio loops keep it: finished, it is refused `503` + close (admission is closed); left
/// unfinished, it gets `408` + close at its timeout (mio's request timeout, hyper's header
/// timeout); an idle connection is closed. Before, hyper's graceful shutdown took a connection
/// with a head in progress after an answer for an idle one and closed it unanswered (an EOF,
/// counted nowhere; docs/hyper.md, review18).
#[test]
fn a_head_in_progress_at_the_stop_is_answered_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!(
                "{stack} --idle-linger-ms 100 --request-timeout-ms 2500 --idle-timeout-ms 2500 \
                 --drain-timeout-ms 20000"
            ),
        );
        let mut clients: Vec<StrictClient> = (0..3)
            .map(|_| {
                let mut client = StrictClient::connect(serve.addr);
                client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                let answer = client.answer("GET");
                assert_eq!((answer.status, answer.closes()), (200, false), "{stack}");
                client
            })
            .collect();
        let mut idle = clients.pop().unwrap();
        let mut unfinished = clients.pop().unwrap();
        let mut finished = clients.pop().unwrap();
        finished.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
        unfinished.send(b"GET / HTTP/1.1\r\n");
        // Both heads begun as the server sees them (another process): a connection whose bytes
        // are still unread at the stop is idle to the server, closed at its keep-alive step.
        util::reads::wait_each_read(&[
            finished.reader_mut().get_ref(),
            unfinished.reader_mut().get_ref(),
        ]);
        send_signal(serve.child.id(), "TERM");
        // The stop's keep-alive step has reached the connections once the idle one is closed.
        expect_clean_eof(idle.reader_mut()).unwrap_or_else(|e| panic!("{stack}, idle: {e}"));
        finished.send(b"\r\n");
        let refused = finished.answer("GET");
        assert_eq!(
            (refused.status, refused.closes()),
            (503, true),
            "{stack}: {refused:?}"
        );
        finished.expect_nothing_more(true, QUIET);
        let late = unfinished.answer("GET");
        assert_eq!(
            (late.status, late.text(), late.closes()),
            (408, "Request Timeout", true),
            "{stack}: {late:?}"
        );
        unfinished.expect_nothing_more(true, QUIET);
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 3.0, "{stack}: {json}");
        assert_eq!(field(&json, "refused"), 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 1.0, "{stack}: {json}");
    }
}

/// QA client19-3, at the drain deadline: a head in progress the stop kept and still unfinished
/// when the drain deadline comes, after an answer or on a fresh connection, and a connection
/// that never sent a byte, are answered `503` + close, as the mio loops' close step answers
/// them (counted in no total, on both stacks). Before, hyper closed the first at the stop and
/// the others a second after the close step, each without an answer; with the stop's
/// keep-alive step fixed alone, the first would have been closed at the force step
/// (`--force-after-ms` after the deadline), still unanswered.
#[test]
fn a_head_still_in_progress_at_the_drain_deadline_gets_503_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!(
                "{stack} --idle-linger-ms 100 --request-timeout-ms 30000 --idle-timeout-ms 30000 \
                 --drain-timeout-ms 1000 --force-after-ms 20000"
            ),
        );
        let mut kept = StrictClient::connect(serve.addr);
        kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(kept.answer("GET").status, 200, "{stack}");
        kept.send(b"HEAD / HTTP/1.1\r\nhost: x\r\n");
        let mut fresh = StrictClient::connect(serve.addr);
        fresh.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
        let mut silent = StrictClient::connect(serve.addr);
        let mut idle = StrictClient::connect(serve.addr);
        idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(idle.answer("GET").status, 200, "{stack}");
        // Each head in progress read before the stop (another process; `idle`'s answer says
        // nothing of the other connections' reads, on hyper each its own task): `kept` unread
        // at the stop is an idle connection to the server, closed at the keep-alive step.
        // `silent` is accepted by then (one listener, accepted in order before `idle`).
        util::reads::wait_each_read(&[kept.reader_mut().get_ref(), fresh.reader_mut().get_ref()]);
        util::wait_accepted(silent.reader_mut().get_ref());
        send_signal(serve.child.id(), "TERM");
        expect_clean_eof(idle.reader_mut()).unwrap_or_else(|e| panic!("{stack}, idle: {e}"));
        let late = [
            ("kept", kept, "HEAD"),
            ("fresh", fresh, "GET"),
            ("silent", silent, "GET"),
        ];
        for (name, mut client, method) in late {
            let answer = client.answer(method);
            assert_eq!(
                (answer.status, answer.closes()),
                (503, true),
                "{stack}, {name}: {answer:?}"
            );
            client.expect_nothing_more(true, QUIET);
        }
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        // Events, not a bound on the test's time (15 s against the deadline's 1 s and the force's
        // 21 s): the deadline's close step answered the three, and the force step closed none.
        assert_eq!(
            (close_steps_answered(&json), field(&json, "force_closed")),
            (3.0, 0.0),
            "{stack}: answered at the deadline, not the force step: {json}"
        );
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 2.0, "{stack}: {json}");
        assert_eq!(field(&json, "refused"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
    }
}

/// QA client19-3, the close step's wait: a connection silent since its accept that sends its
/// request once the stop has begun is refused `503` + close and counted `refused`, on both
/// stacks: the close step (hyper: once the drain is over; mio: at the drain deadline) waits
/// for such requests before it answers what is still silent. (With the close step's `503`
/// given at once, hyper answered it before its request came, counted nowhere.)
#[test]
fn a_request_sent_after_the_stop_on_a_silent_connection_is_refused_and_counted_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --idle-linger-ms 100"));
        let mut idle = StrictClient::connect(serve.addr);
        idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(idle.answer("GET").status, 200, "{stack}");
        let mut silent = StrictClient::connect(serve.addr);
        // Silent since its accept, which comes before the stop (another process).
        util::wait_accepted(silent.reader_mut().get_ref());
        send_signal(serve.child.id(), "TERM");
        // The stop's keep-alive step has come once the idle connection is closed.
        expect_clean_eof(idle.reader_mut()).unwrap_or_else(|e| panic!("{stack}, idle: {e}"));
        silent.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let refused = silent.answer("GET");
        assert_eq!(
            (refused.status, refused.closes()),
            (503, true),
            "{stack}: {refused:?}"
        );
        silent.expect_nothing_more(true, QUIET);
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "refused"), 1.0, "{stack}: {json}");
    }
}
