//! The sans-IO session: parse, admit, respond with no socket and a virtual clock. Arbitrary
//! bytes (the fuzz target's job, here as a bounded property test) never leak a guard.
#![cfg(feature = "server")]

use std::time::Duration;

use proptest::prelude::*;
use reqguard::engines::Embedded;
use reqguard::http::{demo_routes, Guarded, Limits, NoScope, Router, Routes, Session};
use reqguard::{Config, DowngradePolicy, GuardKind};

type Demo<'r> = Session<'r, Guarded<Embedded<&'static str>, NoScope>>;

/// Runs `test` on a fresh session over the demo routes; then the client disconnects and the
/// ledger must be empty.
fn with_session(limits: Limits, config: Config, test: impl FnOnce(&mut Demo<'_>)) {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, Guarded::embedded("server", config), limits);
    test(&mut session);
    session.disconnect();
    session.ledger().unwrap().assert_quiescent();
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

#[test]
fn byte_at_a_time_input_is_answered_once_complete() {
    with_session(Limits::default(), Config::default(), |s| {
        let request =
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        for (i, byte) in request.iter().enumerate() {
            s.feed(&[*byte]);
            let out = s.take_output();
            if i + 1 < request.len() {
                assert!(out.is_empty(), "answered early at byte {i}");
            } else {
                assert!(text(out).ends_with("\r\n\r\nhi"));
            }
        }
    });
}

#[test]
fn deferred_answers_hold_their_guards_until_due() {
    with_session(Limits::default(), Config::default(), |s| {
        s.feed(b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(s.ledger().unwrap().outstanding(GuardKind::Ticket), 1);
        s.advance(Duration::from_millis(99));
        assert!(s.take_output().is_empty());
        s.advance(Duration::from_millis(1));
        assert!(text(s.take_output()).ends_with("delayed 100 ms"));
        assert_eq!(s.ledger().unwrap().outstanding(GuardKind::Ticket), 0);
    });
}

#[test]
fn disconnect_aborts_deferred_requests() {
    with_session(Limits::default(), Config::default(), |s| {
        s.feed(b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\nGET /delay?ms=5 HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(s.ledger().unwrap().outstanding(GuardKind::Ticket), 2);
        s.disconnect();
        assert_eq!(s.stats().aborted, 2);
        assert_eq!(s.ledger().unwrap().total_outstanding(), 0);
    });
}

/// Answers the client never took when it disconnects are `undelivered`, not `served`, as a
/// socket's server counts those a close drops; their requests stay *completed* (their answers
/// were made), and a second `disconnect` moves nothing. Before, all three stayed `served`.
#[test]
fn answers_not_taken_at_disconnect_are_undelivered() {
    with_session(Limits::default(), Config::default(), |s| {
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(text(s.take_output()).ends_with("hello"));
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
        s.clear_output(); // read and thrown away: delivered
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /delay?ms=5 HTTP/1.1\r\nhost: x\r\n\r\n");
        s.advance(Duration::from_millis(5));
        assert!(!s.pending_output().is_empty());
        assert_eq!((s.stats().served, s.stats().undelivered), (5, 0));
        s.disconnect();
        let stats = s.stats();
        assert_eq!((stats.served, stats.undelivered, stats.aborted), (3, 2, 0));
        s.disconnect();
        assert_eq!((s.stats().served, s.stats().undelivered), (3, 2));
        let outcomes = s.ledger().unwrap().outcomes();
        assert_eq!((outcomes.completed, outcomes.total()), (5, 5));
    });
}

/// At the drain deadline a session's connection closes as a server's force-close does: the
/// answers its client had not taken are lost, so they are counted `undelivered` and
/// `take_output` has nothing more to give (QA embed15's open item: they stayed `served` and
/// could still be taken, where `disconnect` already dropped them).
#[test]
fn answers_not_taken_at_the_drain_deadline_are_undelivered() {
    let limits = Limits::default().with_drain_timeout(Duration::from_millis(10));
    with_session(limits, Config::default(), |s| {
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(text(s.take_output()).ends_with("hello"));
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /delay?ms=1000 HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(!s.pending_output().is_empty());
        s.stop();
        assert_eq!((s.stats().served, s.stats().undelivered), (2, 0));
        s.advance(Duration::from_millis(10));
        let stats = s.stats();
        assert_eq!((stats.served, stats.undelivered, stats.aborted), (1, 1, 1));
        assert!(s.take_output().is_empty(), "dropped with the connection");
        assert!(s.is_closed());
        let outcomes = s.ledger().unwrap().outcomes();
        let ended = (
            outcomes.completed,
            outcomes.deadline_aborted,
            outcomes.total(),
        );
        assert_eq!(ended, (2, 1, 3));
    });
}

#[test]
fn a_slow_request_gets_408_and_an_idle_one_is_closed() {
    let limits = Limits::default()
        .with_request_timeout(Duration::from_secs(1))
        .with_idle_timeout(Duration::from_secs(2));
    with_session(limits, Config::default(), |s| {
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HT");
        assert!(text(s.take_output()).ends_with("hello"));
        s.advance(Duration::from_secs(1));
        let out = text(s.take_output());
        assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
        assert!(out.contains("connection: close\r\n"));
        assert!(s.is_closed());
    });
    with_session(limits, Config::default(), |s| {
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        s.take_output();
        s.advance(Duration::from_millis(1999));
        assert!(!s.is_closed());
        s.advance(Duration::from_millis(1));
        assert!(s.is_closed());
    });
}

#[test]
fn after_stop_and_collect_every_request_is_a_503_that_takes_nothing() {
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    with_session(Limits::default(), config, |s| {
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        s.take_output();
        let minted = s.ledger().unwrap().minted(GuardKind::Ticket);
        s.stop();
        s.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let out = text(s.take_output());
        assert_eq!(
            out.matches("503 Service Unavailable").count(),
            1,
            "then the connection closes"
        );
        assert_eq!(
            s.ledger().unwrap().minted(GuardKind::Ticket),
            minted,
            "nothing was taken"
        );
        assert_eq!(s.stats().refused_finalized, 1);
        assert!(s.is_closed());
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, split anywhere, with time passing: never a panic, never a leak, and
    /// every answer is a well-formed status line.
    #[test]
    fn arbitrary_input_never_leaks(
        chunks in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                Just(b"GET /delay?ms=3 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
                Just(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\n".to_vec()),
                Just(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()),
                Just(b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
                Just(b"\r\n".to_vec()),
            ],
            0..12,
        ),
        stop_at in 0usize..14,
    ) {
        let limits = Limits::default().with_max_head(256).with_max_body(64);
        with_session(limits, Config::default().with_downgrade(DowngradePolicy::OnStop), |s| {
            for (i, chunk) in chunks.iter().enumerate() {
                if i == stop_at {
                    s.stop();
                }
                s.feed(chunk);
                s.advance(Duration::from_millis(2));
                let out = s.take_output();
                if !out.is_empty() {
                    assert!(out.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&out));
                }
            }
        });
    }
}

/// Everything answered for `data` fed in reads of `piece` bytes, then after deferred answers
/// come due; `100 Continue` interim answers removed (they depend on when a head arrives) and
/// dates blanked.
fn answers_split(data: &[u8], piece: usize) -> String {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let limits = Limits::default()
        .with_max_head(256)
        .with_max_body(64)
        .with_max_pipeline(4);
    let mut session = Session::new(&router, Guarded::embedded("s", Config::default()), limits);
    for chunk in data.chunks(piece.max(1)) {
        session.feed(chunk);
    }
    session.advance(Duration::from_secs(61));
    let out = text_lossy(session.take_output());
    session.disconnect();
    session.ledger().unwrap().assert_quiescent();
    undated(&out.replace("HTTP/1.1 100 Continue\r\n\r\n", ""))
}

/// `text` with each `date` header's value blanked: the clock may tick between two sessions.
fn undated(text: &str) -> String {
    text.split("\r\n")
        .map(|line| match line.get(..5) {
            Some(name) if name.eq_ignore_ascii_case("date:") => "date: -",
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn text_lossy(out: Vec<u8>) -> String {
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_head_error_past_the_limit_is_431_however_the_bytes_arrive() {
    // Found by the `http_session` fuzz target: in one read the error was found (400), in many
    // the limit was reached first (431).
    let mut data = b"GET / HTTP/1.1\r\nhost: x\r\nx: ".to_vec();
    data.extend_from_slice(&[b'a'; 300]);
    data.extend_from_slice(b"\x00\r\n\r\n");
    let whole = answers_split(&data, usize::MAX);
    assert!(whole.starts_with("HTTP/1.1 431 "), "{whole}");
    assert_eq!(answers_split(&data, 1), whole);
    assert_eq!(answers_split(&data, 7), whole);
}

/// Found by `answers_do_not_depend_on_the_split` in CI: a request with `Expect: 100-continue`
/// that no handler takes (here `501`, an unknown method) was answered with `connection: close`
/// when its body came after its head, and kept its connection when the body came with it.
/// Now it closes either way, and what follows it is never read as a request.
#[test]
fn an_expect_continue_request_no_handler_takes_closes_however_its_body_arrives() {
    let data = b"GET /delay?ms=3 HTTP/1.1\r\nhost: x\r\n\r\n\
        APOST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\nabcd\
        GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let whole = answers_split(data, usize::MAX);
    assert!(
        whole.ends_with("connection: close\r\n\r\nNot Implemented"),
        "{whole}"
    );
    assert_eq!(whole.matches("HTTP/1.1 ").count(), 2, "{whole}");
    for piece in 1..9 {
        assert_eq!(answers_split(data, piece), whole, "reads of {piece} bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The answers never depend on how the bytes were split into reads.
    #[test]
    fn answers_do_not_depend_on_the_split(
        parts in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..48),
                Just(b"GET /delay?ms=3 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
                Just(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\nabcd".to_vec()),
                Just(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".to_vec()),
                Just(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n".to_vec()),
                Just(b"GET / HTTP/1.1\r\nhost: x\r\nx: ".to_vec()),
                Just(vec![b'a'; 200]),
            ],
            0..8,
        ),
        piece in 1usize..9,
    ) {
        let data = parts.concat();
        prop_assert_eq!(answers_split(&data, usize::MAX), answers_split(&data, piece));
    }
}

/// A head sent a byte at a time is searched once per byte and parsed again only when its end
/// may have arrived (G9: linear work): parsing its 60 KiB on every read would hand the parser
/// about 1.8 GB; here it is a few times the head. The answer is the one the head gets in one
/// piece.
#[test]
fn a_head_that_trickles_in_is_parsed_a_bounded_number_of_times() {
    let limits = Limits::default().with_max_head(64 * 1024);
    // Empty lines first (a client may send them; httparse skips them): none is taken for the
    // end of the head, however they are split.
    let mut head = b"\r\n\n".repeat(2000);
    head.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n");
    for _ in 0..45 {
        head.extend_from_slice(b"x-padding: ");
        head.extend_from_slice(&[b'a'; 1200]);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let whole = answer_in(limits, &[&head]);
    assert!(whole.starts_with("HTTP/1.1 200"), "{whole}");
    let pieces: Vec<&[u8]> = head.chunks(1).collect();
    with_session(limits, Config::default(), |s| {
        for piece in &pieces {
            s.feed(piece);
        }
        let out = s.take_output();
        assert_eq!(without_date(&text(out)), without_date(&whole));
        let parsed = s.stats().head_bytes_parsed;
        assert!(
            parsed <= 3 * head.len() as u64,
            "{parsed} bytes parsed for a {}-byte head",
            head.len()
        );
    });
    // A bad head is refused the same way in one piece, byte by byte, or at the timeout.
    let bad = b"GET / HTTP/1.1\r\nhost: x\r\nbad\x01name: 1\r\n";
    let at_once = answer_in(limits, &[bad]);
    assert!(at_once.starts_with("HTTP/1.1 400"), "{at_once}");
    with_session(limits, Config::default(), |s| {
        for byte in bad.chunks(1) {
            s.feed(byte);
        }
        s.advance(Duration::from_secs(11));
        assert_eq!(without_date(&text(s.take_output())), without_date(&at_once));
    });
}

/// `head_bytes_parsed` counts, for every parse, the input it is handed up to the head limit:
/// each request of a pipelined read is parsed from its own start to the read's end. Pinned
/// exactly (round 30 moved the count into the parse): fails if the count is dropped, or taken
/// past the limit, or from the head alone.
#[test]
fn each_parse_counts_the_input_it_reads_up_to_the_head_limit() {
    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nx-pad: aaaaaaaaaaaaaa\r\n\r\n";
    assert_eq!(GET.len(), 50);
    let parsed_after = |limits: Limits, reads: &[&[u8]]| {
        let mut parsed = 0;
        with_session(limits, Config::default(), |s| {
            for read in reads {
                s.feed(read);
            }
            let answers = text(s.take_output()).matches("HTTP/1.1 200 OK\r\n").count();
            assert_eq!(answers, reads.concat().len() / GET.len());
            parsed = s.stats().head_bytes_parsed;
        });
        parsed
    };
    let three = GET.repeat(3);
    assert_eq!(parsed_after(Limits::default(), &[GET]), 50);
    assert_eq!(parsed_after(Limits::default(), &[GET, GET]), 50 + 50);
    assert_eq!(parsed_after(Limits::default(), &[&three]), 150 + 100 + 50);
    // The smallest head limit (64): each of the first two parses reads 64 bytes.
    let limited = Limits::default().with_max_head(64);
    assert_eq!(parsed_after(limited, &[&three]), 64 + 64 + 50);
}

/// What a fresh session answers to `pieces`, fed in order (then 11 s pass).
fn answer_in(limits: Limits, pieces: &[&[u8]]) -> String {
    let mut answer = String::new();
    with_session(limits, Config::default(), |s| {
        for piece in pieces {
            s.feed(piece);
        }
        s.advance(Duration::from_secs(11));
        answer = text(s.take_output());
    });
    answer
}

/// `answer` without its `date` lines (two sessions may answer in different seconds).
fn without_date(answer: &str) -> String {
    answer
        .split_inclusive("\r\n")
        .filter(|line| !line.starts_with("date: "))
        .collect()
}
