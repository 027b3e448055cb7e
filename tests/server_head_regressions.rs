//! Request heads that arrive in unusual ways, found by QA against `reqguard-demo serve` (mio).
#![cfg(feature = "server")]

use std::time::Duration;

use reqguard::http::{demo_routes, Limits, Router, Routes, Session, Unaccounted};

/// A client that sends nothing but empty lines (`CRLF`, every half second) sent the first byte
/// of a request (RFC 9112 §2.2: a server ignores at least one empty line before the request
/// line; it need not wait forever for the rest): the whole-request timeout still applies, as
/// it did before empty lines were dropped as they arrive. Without it such a client holds a
/// connection forever (the idle timeout never fires either: it keeps sending).
#[test]
fn empty_lines_alone_do_not_hold_a_connection_past_the_request_timeout() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let limits = Limits::default();
    let timeout = limits.request_timeout();
    let mut session = Session::new(&router, Unaccounted::new(), limits);
    let step = Duration::from_millis(500);
    let mut elapsed = Duration::ZERO;
    let mut out = Vec::new();
    while elapsed <= 3 * timeout && !session.is_closed() {
        session.feed(b"\r\n");
        session.advance(step);
        elapsed += step;
        out.extend_from_slice(&session.take_output());
    }
    assert!(
        session.is_closed() && elapsed <= timeout + step,
        "still open after {elapsed:?} of empty lines (request timeout {timeout:?}), answered {:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        out.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}
