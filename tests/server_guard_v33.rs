//! Round 33 of the cost work (docs/benchmarks-history.md, "Round 33 (the guard)"): in the mio
//! server (and a `Session`), `Guarded` counts a pipeline's renewals beside its keeper's flags
//! and puts them in the ledger wherever the ledger can be read (`Guarded::core`, `ledger`,
//! `report`, `stop`); a handler that panics while its bundle is kept marks that bundle, which
//! ends *dropped* (its signal aborted) before the next request's admission or at the pass's
//! end, where its abort fired on the panic's path. Neither may show: every way to the ledger
//! sees every renewal made before it, and a panicking handler's listeners hear the abort once,
//! before any other handler runs.
#![cfg(feature = "server")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use reqguard::engines::Embedded;
use reqguard::http::{
    demo_routes, Accounting, Guarded, Limits, NoScope, Reply, Request, Response, Router, Routes,
    Session,
};
use reqguard::{AbortReason, Config, GuardKind};

type Demo<'r> = Session<'r, Guarded<Embedded<&'static str>, NoScope>>;

/// What the test routes saw.
#[derive(Default)]
struct Seen {
    /// What the listener `/listen-panic` added before its handler panicked heard.
    heard: Rc<RefCell<Vec<AbortReason>>>,
    /// What `/after` found the earlier listener had heard when its handler ran.
    heard_before_after: RefCell<Vec<Vec<AbortReason>>>,
    /// Handlers run.
    calls: Cell<u32>,
}

fn routes<'r>(router: &mut Router<'r>, seen: &Rc<Seen>) {
    demo_routes(router);
    let listen = Rc::clone(seen);
    router.route(
        "GET",
        "/listen-panic",
        move |req: &Request<'_>, _: &mut Response<'_>| -> Reply {
            listen.calls.set(listen.calls.get() + 1);
            let heard = Rc::clone(&listen.heard);
            assert!(req
                .signal()
                .unwrap()
                .on_abort(move |reason| heard.borrow_mut().push(reason)));
            panic!("the handler panics");
        },
    );
    let after = Rc::clone(seen);
    router.route(
        "GET",
        "/after",
        move |_: &Request<'_>, res: &mut Response<'_>| {
            after.calls.set(after.calls.get() + 1);
            let heard = after.heard.borrow().clone();
            after.heard_before_after.borrow_mut().push(heard);
            res.write(b"after");
            Reply::Now
        },
    );
}

/// Silences the handlers' deliberate panics (messages ending in "panics") and keeps the rest.
fn quiet_deliberate_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if !message.ends_with("panics") {
            eprintln!("{info}");
        }
    }));
}

/// Runs `test` on a session over [`routes`]; then the client goes and the ledger must be
/// empty.
fn with_session(test: impl FnOnce(&mut Demo<'_>, &Seen)) {
    quiet_deliberate_panics();
    let seen = Rc::new(Seen::default());
    let store = Routes::new();
    let mut router = Router::new(&store);
    routes(&mut router, &seen);
    let guarded = Guarded::embedded("server", Config::default());
    let mut session = Session::new(&router, guarded, Limits::default());
    test(&mut session, &seen);
    session.disconnect();
    session.ledger().unwrap().assert_quiescent();
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()
}

/// One read bringing these requests, pipelined.
fn pipeline(paths: &[&str]) -> Vec<u8> {
    paths.iter().flat_map(|path| get(path)).collect()
}

fn statuses(output: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(output)
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| {
            let text = String::from_utf8_lossy(&output[at + 9..at + 12]).into_owned();
            text.parse().unwrap()
        })
        .collect()
}

/// A handler that listens on its signal and panics mid-read: its listener hears *dropped*
/// once, before the next handler of the same read runs; its request ends *dropped*, the
/// others *completed*, and a renewal never counts the panicked one completed.
#[test]
fn a_panicking_handlers_abort_is_heard_before_the_next_handler_runs() {
    with_session(|s, seen| {
        s.feed(&pipeline(&[
            "/",
            "/",
            "/listen-panic",
            "/after",
            "/",
            "/after",
        ]));
        assert_eq!(statuses(&s.take_output()), [200, 200, 500, 200, 200, 200]);
        assert_eq!(*seen.heard.borrow(), [AbortReason::Dropped]);
        assert_eq!(
            *seen.heard_before_after.borrow(),
            [vec![AbortReason::Dropped], vec![AbortReason::Dropped]],
            "the listener had heard the abort when the next handlers ran"
        );
        let outcomes = s.ledger().unwrap().outcomes();
        assert_eq!(
            (outcomes.completed, outcomes.dropped),
            (5, 1),
            "{outcomes:?}"
        );
    });
}

/// The last request of a read panics, its signal never asked for (`/panic`) or listened to:
/// it ends *dropped* at the read's end, not *completed*, before anything can read the ledger.
#[test]
fn a_panic_at_a_reads_end_ends_its_request_dropped() {
    with_session(|s, seen| {
        for (paths, outcomes_after) in [
            (&["/", "/", "/panic"][..], (2, 1)),
            (&["/panic"][..], (2, 2)),
            (&["/", "/listen-panic"][..], (3, 3)),
            (&["/", "/"][..], (5, 3)),
        ] {
            s.feed(&pipeline(paths));
            let answered = statuses(&s.take_output());
            assert_eq!(answered.len(), paths.len(), "{paths:?}");
            let outcomes = s.ledger().unwrap().outcomes();
            assert_eq!(
                (outcomes.completed, outcomes.dropped),
                outcomes_after,
                "{paths:?}: {outcomes:?}"
            );
            let ledger = s.ledger().unwrap();
            assert_eq!(ledger.total_outstanding(), 0, "{paths:?}");
        }
        assert_eq!(*seen.heard.borrow(), [AbortReason::Dropped]);
    });
}

/// A pipeline's renewals are in the ledger whichever way it is read: the session's
/// (`Accounting::ledger`), the core's (`Guarded::core`), the accounting's report, and a
/// drain's after a stop through the core.
#[test]
fn every_way_to_the_ledger_sees_every_renewal() {
    with_session(|s, _| {
        s.feed(&pipeline(&["/"; 16]));
        assert_eq!(statuses(&s.take_output()), [200; 16]);
        let core_ledger = s.dispatcher().accounting().core().ledger();
        assert_eq!(core_ledger.minted(GuardKind::Ticket), 16);
        assert_eq!(core_ledger.minted(GuardKind::Request), 16);
        assert_eq!(core_ledger.outcomes().completed, 16);
        s.feed(&pipeline(&["/"; 5]));
        assert_eq!(statuses(&s.take_output()), [200; 5]);
        assert_eq!(s.ledger().unwrap().minted(GuardKind::Ticket), 21);
        assert_eq!(s.ledger().unwrap().outcomes().completed, 21);
        s.feed(&pipeline(&["/"; 3]));
        s.take_output();
        let report = s.dispatcher().accounting().report();
        assert_eq!((report.outcomes.completed, report.leaked), (24, 0));
        s.feed(&pipeline(&["/"; 4]));
        s.take_output();
        let drain = s.dispatcher().accounting().core().stop();
        assert_eq!(drain.ledger().outcomes().completed, 28);
        assert_eq!(drain.ledger().minted(GuardKind::Context), 28);
        assert_eq!(drain.ledger().total_outstanding(), 0);
    });
}
