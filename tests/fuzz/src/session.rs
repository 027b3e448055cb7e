//! Target `http_session`: raw bytes on one connection, through parse, admit, dispatch and
//! respond, then stop, drain and disconnect.

use std::time::Duration;

use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
use reqguard::{Config, DowngradePolicy, Exhaustion};

use super::{check_responses, same_or_closed_early, without_interim};

fn limits() -> Limits {
    Limits::default()
        .with_max_head(1024)
        .with_max_body(4096)
        .with_max_pipeline(8)
}

/// Feeds `data` in pieces of the given sizes (cycled) and returns everything answered.
fn answer(data: &[u8], pieces: &[usize], stop_first: bool) -> Vec<u8> {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let config = Config::default()
        .with_pool_capacity(2)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse)
        .with_downgrade(DowngradePolicy::OnStop);
    let mut session = Session::new(&router, Guarded::embedded("fuzz", config), limits());
    if stop_first {
        // The PR's scenario: the server is stopped and its wrapper collected, and a kept-alive
        // connection still delivers requests.
        session.stop();
    }
    let mut rest = data;
    for &size in pieces.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(size.clamp(1, rest.len()));
        session.feed(now);
        rest = later;
    }
    let mut out = session.take_output();
    check_ledger(&mut session);

    // Deferred answers come due (the longest delay is 60 s); the connection may time out.
    session.advance(Duration::from_secs(61));
    out.extend(session.take_output());
    check_ledger(&mut session);

    // Stop and drain, then the client goes away.
    session.stop();
    session.advance(Duration::from_secs(6));
    out.extend(session.take_output());
    session.disconnect();
    let ledger = session.ledger().expect("guarded");
    ledger.assert_quiescent();
    assert_eq!(session.dispatcher().in_flight(), 0);
    let core = session.dispatcher().accounting().core();
    let drain = core.drain().expect("stopped");
    assert!(
        drain.is_complete(),
        "drain incomplete: {:?}",
        drain.report()
    );
    assert_eq!(core.pool_metrics().in_use, 0);
    out
}

/// Every admitted request holds exactly four guards while it is in flight.
fn check_ledger<A: reqguard::http::Accounting>(session: &mut Session<'_, A>) {
    let in_flight = session.dispatcher().in_flight();
    let ledger = session.ledger().expect("guarded");
    assert_eq!(ledger.total_outstanding(), 4 * in_flight, "{ledger:?}");
}

/// Runs one input: whole, then split into small reads; both must give the same answers.
pub fn run(data: &[u8]) {
    super::quiet_deliberate_panics();
    let whole = answer(data, &[usize::MAX], false);
    check_responses(&whole);
    // The same bytes in reads of 1 to 7 bytes: the answers must not depend on the split.
    let seed = data
        .iter()
        .fold(7usize, |h, &b| h.wrapping_mul(31) ^ usize::from(b));
    let pieces = [1 + seed % 7, 1 + seed / 7 % 7, 1 + seed / 49 % 7];
    let split = answer(data, &pieces, false);
    // Only `100 Continue` may differ: it is sent when a head arrives before its body (and then
    // a request no handler takes is answered at once, with close: `same_or_closed_early`).
    // (The first run found 400 whole vs 431 split for a long head with a late bad byte; the
    // server now parses only the first `max_head` bytes, so that input is a seed.)
    let (whole, split) = (without_interim(&whole), without_interim(&split));
    assert!(
        same_or_closed_early(&whole, &split),
        "answers depend on how the bytes are split:\n{:?}\n{:?}",
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(&split)
    );
    // After stop, every answer is a refusal or a rejection, and nothing leaks.
    let stopped = answer(data, &[usize::MAX], true);
    for a in check_responses(&stopped) {
        assert!(a.status == 100 || a.status >= 400, "{a:?} after stop");
    }
}
