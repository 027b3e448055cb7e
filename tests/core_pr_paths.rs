//! Every call site and review finding of Bun PR 28246, reproduced against the API through a
//! fake runtime (`tests/util/runtime.rs`), in each state of the wrapper: alive; stopped and
//! collected (`DowngradePolicy::OnStop`, the PR's behaviour); stopped while requests are out
//! (`DowngradePolicy::OnDrain`, Bun's behaviour now). Plus a panic in a handler, a thrown
//! error, a client abort, pool exhaustion (spill and refuse), a body too large and an engine
//! error while admitting. Each test ends with the ledger at zero and the drain complete.

#[path = "util/runtime.rs"]
mod runtime;

use std::panic::{catch_unwind, AssertUnwindSafe};

use reqguard::{
    AbortReason, Config, DowngradePolicy, Exhaustion, GuardKind, LedgerEvent, RefusalReason,
};
use runtime::{Behavior, FakeServer, JsRequest, Req, Response, SavedRequest};

/// The runtime's entry points, one per call site of the PR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    OnRequest,
    OnUserRouteRequest,
    OnSavedRequest,
    Fetch,
    OnWebSocketUpgrade,
    OnNodeHttpRequestWithUpgradeCtx,
}

const ALL: [Path; 6] = [
    Path::OnRequest,
    Path::OnUserRouteRequest,
    Path::OnSavedRequest,
    Path::Fetch,
    Path::OnWebSocketUpgrade,
    Path::OnNodeHttpRequestWithUpgradeCtx,
];

/// The status each path answers with when the handler responds 200.
fn ok_status(path: Path) -> u16 {
    match path {
        Path::OnUserRouteRequest => 201,
        Path::OnWebSocketUpgrade => 101,
        _ => 200,
    }
}

/// Sends one request down `path`. `saved` is the saved request for `OnSavedRequest` (saved
/// earlier, while the server admitted requests); other paths ignore it.
fn call(server: &FakeServer, path: Path, saved: Option<SavedRequest>) -> Response {
    match path {
        Path::OnRequest => server.on_request(Req::get("/")),
        Path::OnUserRouteRequest => server.on_user_route_request(0, Req::get("/api")),
        Path::OnSavedRequest => server.on_saved_request(saved.expect("a saved request")),
        Path::Fetch => {
            let existing = JsRequest {
                method: "GET",
                url: "/fetched".into(),
            };
            match server.fetch(&existing) {
                Ok(js_request) => {
                    assert_eq!(js_request.url, "/fetched");
                    Response {
                        status: 200,
                        close: false,
                        refused: None,
                        this: Some("server"),
                        deferred: None,
                    }
                }
                Err(refusal) => Response {
                    status: refusal.status(),
                    close: refusal.closes_connection(),
                    refused: Some(refusal.reason()),
                    this: None,
                    deferred: None,
                },
            }
        }
        Path::OnWebSocketUpgrade => server.on_websocket_upgrade(Req::get("/ws")),
        Path::OnNodeHttpRequestWithUpgradeCtx => {
            server.on_node_http_request_with_upgrade_ctx(Req::get("/node"), true)
        }
    }
}

fn save_if_needed(server: &FakeServer, path: Path) -> Option<SavedRequest> {
    (path == Path::OnSavedRequest).then(|| server.save_request(Req::get("/saved")).unwrap())
}

fn on_stop() -> Config {
    Config::default()
        .with_pool_capacity(4)
        .unwrap()
        .with_downgrade(DowngradePolicy::OnStop)
}

fn on_drain() -> Config {
    Config::default()
        .with_pool_capacity(4)
        .unwrap()
        .with_downgrade(DowngradePolicy::OnDrain)
}

/// Stops the server (if not yet), checks the drain completed and nothing is outstanding.
#[track_caller]
fn assert_clean_shutdown(server: &FakeServer) {
    assert_eq!(server.in_flight(), 0);
    let drain = server.core.stop();
    assert!(
        drain.is_complete(),
        "drain not complete: {}",
        drain.report()
    );
    server.core.ledger().assert_quiescent();
    assert_eq!(server.core.pool_metrics().in_use, 0);
}

fn assert_refused(response: &Response, reason: RefusalReason) {
    assert_eq!(response.status, 503, "{response:?}");
    assert!(response.close, "a 503 closes the connection: {response:?}");
    assert_eq!(response.refused, Some(reason));
    assert_eq!(response.this, None, "the handler must not run");
}

#[test]
fn every_path_serves_while_the_wrapper_is_alive_and_leaves_nothing() {
    for config in [on_stop(), on_drain()] {
        for path in ALL {
            let server = FakeServer::new(config);
            let saved = save_if_needed(&server, path);
            let response = call(&server, path, saved);
            assert_eq!(response.status, ok_status(path), "{path:?}");
            assert_eq!(
                response.this,
                Some("server"),
                "{path:?}: `this` is the wrapper"
            );
            assert_eq!(server.handler_runs.get(), 1, "{path:?}");
            let minted = server.core.ledger().minted(GuardKind::Request);
            assert_eq!(minted, 1, "{path:?}: one request object, handed off");
            assert_clean_shutdown(&server);
        }
    }
}

/// The PR's crash: after `stop()` the wrapper is weak and the collector finalizes it; a request
/// on a kept-alive connection must get 503 and take nothing. For `onSavedRequest` (the PR's
/// order bug) the saved request's ticket is given back, so the drain completes.
#[test]
fn every_path_after_stop_and_collect_answers_503_and_takes_nothing() {
    for path in ALL {
        let server = FakeServer::new(on_stop());
        let saved = save_if_needed(&server, path);
        let drain = server.core.stop();
        assert_eq!(drain.is_complete(), saved.is_none(), "{path:?}");
        assert_eq!(
            server.heap.collect(),
            1,
            "{path:?}: the wrapper is finalized"
        );
        assert!(server.core.wrapper().weak().is_finalized());
        assert!(server.core.upgrade().is_none());

        let minted_before: Vec<u64> = GuardKind::ALL
            .iter()
            .map(|&k| server.core.ledger().minted(k))
            .collect();
        let response = call(&server, path, saved);
        assert_refused(&response, RefusalReason::WrapperFinalized);
        assert_eq!(server.handler_runs.get(), 0, "{path:?}");
        let minted_after: Vec<u64> = GuardKind::ALL
            .iter()
            .map(|&k| server.core.ledger().minted(k))
            .collect();
        assert_eq!(
            minted_before, minted_after,
            "{path:?}: the 503 path mints nothing"
        );
        assert!(drain.is_complete(), "{path:?}: {}", drain.report());
        assert_clean_shutdown(&server);
    }
}

/// The race the PR is about: a request is in flight when the server stops and its wrapper is
/// collected. The in-flight request finishes normally; a late request gets 503.
#[test]
fn in_flight_request_outlives_its_wrapper_being_collected() {
    let server = FakeServer::new(on_stop());
    server.behavior.set(Behavior::Defer);
    let first = server.on_request(Req::get("/long-poll"));
    let id = first.deferred.expect("deferred");
    let drain = server.core.stop();
    assert!(!drain.is_complete());
    assert_eq!(
        server.heap.collect(),
        1,
        "OnStop: the wrapper goes while a request is out"
    );

    for path in ALL {
        if path == Path::OnSavedRequest {
            continue; // nothing can be saved now: see the test below
        }
        assert_refused(&call(&server, path, None), RefusalReason::WrapperFinalized);
    }
    assert_eq!(drain.outstanding(), 1);
    assert!(server.finish(id));
    assert!(drain.is_complete());
    assert_clean_shutdown(&server);
}

/// `DowngradePolicy::OnDrain`: the wrapper stays strong while a request is out, so new requests
/// are refused as `Stopped` (not finalized), a request saved before `stop()` is still served,
/// and only after the drain does the collector take the wrapper.
#[test]
fn every_path_with_on_drain_policy() {
    for path in ALL {
        let server = FakeServer::new(on_drain());
        server.behavior.set(Behavior::Defer);
        let id = server.on_request(Req::get("/long-poll")).deferred.unwrap();
        let saved = save_if_needed(&server, path);
        server.behavior.set(Behavior::Respond(200));

        let drain = server.core.stop();
        assert_eq!(
            server.heap.collect(),
            0,
            "{path:?}: the wrapper survives while tickets are out"
        );
        assert!(server.core.wrapper().is_strong());

        let response = call(&server, path, saved);
        if path == Path::OnSavedRequest {
            // It was admitted before stop() and owns its ticket: it is served.
            assert_eq!(response.status, 200);
        } else {
            // server.fetch() too: a stopped server mints no new request object (issue 9).
            assert_refused(&response, RefusalReason::Stopped);
        }
        assert!(!drain.is_complete());
        assert!(server.finish(id));
        assert!(drain.is_complete(), "{path:?}: {}", drain.report());
        assert!(
            !server.core.wrapper().is_strong(),
            "downgraded when the drain completed"
        );
        server.heap.collect();
        assert!(
            server.core.wrapper().weak().is_finalized(),
            "{path:?}: collectable after the drain"
        );

        if path != Path::OnSavedRequest {
            let late = call(&server, path, None);
            assert_refused(&late, RefusalReason::WrapperFinalized);
        }
        assert_clean_shutdown(&server);
    }
}

/// The bake DevServer case: a request saved while the server was alive owns its ticket; the
/// server stops and is collected before the request comes back. The PR's fix checked after
/// `prepareJsRequestContext` and leaked; here the ticket goes back through `Refusal::consume`.
#[test]
fn saved_request_after_finalization_gives_its_ticket_back() {
    let server = FakeServer::new(on_stop());
    let saved = server.save_request(Req::get("/saved")).unwrap();
    let drain = server.core.stop();
    assert_eq!(drain.outstanding(), 1);
    server.heap.collect();
    let response = server.on_saved_request(saved);
    assert_refused(&response, RefusalReason::WrapperFinalized);
    assert!(drain.is_complete());
    assert_clean_shutdown(&server);
}

#[test]
fn panic_in_a_handler_releases_every_guard_by_unwinding() {
    for path in ALL {
        if path == Path::Fetch {
            continue; // fetch() runs no native handler
        }
        let mut server = FakeServer::new(on_stop());
        server.routes[0].1 = Behavior::Panic;
        let saved = save_if_needed(&server, path);
        server.behavior.set(Behavior::Panic);
        let caught = catch_unwind(AssertUnwindSafe(|| call(&server, path, saved)));
        assert!(caught.is_err(), "{path:?}: the handler panicked");
        server.core.ledger().assert_quiescent();
        let signal = server.last_signal.borrow_mut().take().expect("dispatched");
        // The unwinding dropped the bundle without completing it: its signal names that.
        assert_eq!(signal.reason(), Some(AbortReason::Dropped), "{path:?}");
        assert_eq!(server.core.ledger().outcomes().dropped, 1, "{path:?}");
        assert!(!signal.has_pending_activity());
        drop(signal);
        // The server keeps working after the panic.
        server.behavior.set(Behavior::Respond(200));
        assert_eq!(server.on_request(Req::get("/")).status, 200);
        assert_clean_shutdown(&server);
    }
}

#[test]
fn thrown_error_answers_500_and_releases() {
    let server = FakeServer::new(on_stop());
    server.behavior.set(Behavior::Throw);
    let response = server.on_request(Req::get("/"));
    assert_eq!((response.status, response.close), (500, false));
    let signal = server.last_signal.borrow_mut().take().unwrap();
    assert_eq!(signal.reason(), Some(AbortReason::Dropped));
    assert_eq!(server.core.ledger().outcomes().dropped, 1);
    drop(signal);
    // fetch(): the request object is freed without a hand-off, and counted back.
    let err = server
        .fetch(&JsRequest {
            method: "GET",
            url: "/".into(),
        })
        .unwrap_err();
    assert_eq!(err.status(), 500);
    assert_eq!(server.core.ledger().minted(GuardKind::Request), 2);
    assert_clean_shutdown(&server);
}

#[test]
fn client_abort_fires_listeners_once_and_releases() {
    let server = FakeServer::new(on_stop());
    server.behavior.set(Behavior::Defer);
    let a = server.on_request(Req::get("/a")).deferred.unwrap();
    let b = server.on_request(Req::get("/b")).deferred.unwrap();
    assert_eq!(server.core.ledger().outstanding(GuardKind::Ticket), 2);

    assert!(server.on_client_abort(a)); // aborts twice: close and error callbacks
    assert_eq!(
        server.abort_listener_runs.get(),
        1,
        "listeners fire at most once"
    );
    assert_eq!(server.core.ledger().outstanding(GuardKind::Ticket), 1);
    assert!(!server.on_client_abort(a), "already gone");

    // The other request is aborted by the drain deadline, then by its client: still once.
    let drain = server.core.stop();
    let report = drain.escalate();
    assert_eq!(report.aborted_signals, 1);
    assert_eq!(server.abort_listener_runs.get(), 2);
    assert!(server.on_client_abort(b));
    assert_eq!(server.abort_listener_runs.get(), 2);
    assert!(drain.is_complete());
    assert_clean_shutdown(&server);
}

#[test]
fn pool_exhaustion_spills_to_the_heap() {
    let server = FakeServer::new(
        on_stop()
            .with_pool_capacity(2)
            .unwrap()
            .with_exhaustion(Exhaustion::Spill),
    );
    server.behavior.set(Behavior::Defer);
    for _ in 0..3 {
        assert_eq!(server.on_request(Req::get("/")).status, 0);
    }
    let spilled: Vec<bool> = server
        .in_flight
        .borrow()
        .iter()
        .map(|r| r.bundle.is_spilled())
        .collect();
    assert_eq!(spilled, [false, false, true]);
    let m = server.core.pool_metrics();
    assert_eq!(
        (m.in_use, m.high_water, m.allocated, m.spills),
        (3, 3, 2, 1)
    );
    server.finish_all();
    let m = server.core.pool_metrics();
    assert_eq!((m.in_use, m.allocated, m.refusals), (0, 2, 0));
    assert_clean_shutdown(&server);
}

#[test]
fn pool_exhaustion_refuses_with_503_and_holds_nothing() {
    let server = FakeServer::new(
        on_stop()
            .with_pool_capacity(2)
            .unwrap()
            .with_exhaustion(Exhaustion::Refuse),
    );
    server.behavior.set(Behavior::Defer);
    server.on_request(Req::get("/1"));
    server.on_request(Req::get("/2"));
    let refused = server.on_request(Req::get("/3"));
    assert_refused(&refused, RefusalReason::PoolExhausted);
    let ledger = server.core.ledger();
    assert_eq!(
        ledger.minted(GuardKind::Ticket),
        2,
        "the pool is asked first: the third request took nothing..."
    );
    assert_eq!(
        ledger.outstanding(GuardKind::Ticket),
        2,
        "...and holds nothing"
    );
    assert_eq!(server.core.pool_metrics().refusals, 1);

    // A saved request refused by the pool gives its own ticket back too.
    server.behavior.set(Behavior::Respond(200));
    let saved = server.save_request(Req::get("/saved")).unwrap();
    assert_refused(
        &server.on_saved_request(saved),
        RefusalReason::PoolExhausted,
    );
    assert_eq!(ledger.outstanding(GuardKind::Ticket), 2);

    server.finish_all();
    assert_clean_shutdown(&server);
}

#[test]
fn body_too_large_answers_413_and_holds_nothing() {
    let server = FakeServer::new(on_stop());
    let response = server.on_request(Req::post("/upload", 2048));
    assert_eq!((response.status, response.close), (413, true));
    assert_eq!(
        response.refused,
        Some(RefusalReason::PayloadTooLarge { limit: 1024 })
    );
    assert_eq!(server.handler_runs.get(), 0);
    server.core.ledger().assert_quiescent();
    assert_eq!(server.core.pool_metrics().in_use, 0);

    // Bun's 413 path for a saved request that already owns a ref.
    let saved = server.save_request(Req::post("/upload", 4096)).unwrap();
    let response = server.on_saved_request(saved);
    assert_eq!(response.status, 413);
    assert_clean_shutdown(&server);
}

#[test]
fn engine_error_while_admitting_answers_500_and_holds_nothing() {
    let server = FakeServer::new(on_stop());
    let response = server.on_request(Req::get("/engine-error"));
    assert_eq!((response.status, response.close), (500, false));
    assert_eq!(
        response.refused,
        Some(RefusalReason::Engine("Request.new threw"))
    );
    // The error came after the pool slot was committed: it went back all the same.
    assert_eq!(server.core.pool_metrics().high_water, 1);
    assert_eq!(server.core.pool_metrics().in_use, 0);
    assert_clean_shutdown(&server);
}

use LedgerEvent::{Minted, Released};

#[test]
fn failed_admit_releases_in_reverse_order() {
    let server = FakeServer::new(on_stop());
    let ledger = server.core.ledger();

    ledger.start_trace();
    server.on_request(Req::post("/upload", 4096)); // 413 from inside admit
    assert_eq!(
        ledger.take_trace(),
        [
            Minted(GuardKind::Ticket),
            Minted(GuardKind::Context),
            Minted(GuardKind::ActivityRef),
            Released(GuardKind::ActivityRef),
            Released(GuardKind::Context),
            Released(GuardKind::Ticket),
        ]
    );

    ledger.start_trace();
    server.on_request(Req::get("/engine-error"));
    assert_eq!(ledger.take_trace().len(), 6);
    assert_clean_shutdown(&server);
}

#[test]
fn refused_pool_checkout_mints_nothing() {
    let server = FakeServer::new(
        on_stop()
            .with_pool_capacity(1)
            .unwrap()
            .with_exhaustion(Exhaustion::Refuse),
    );
    server.behavior.set(Behavior::Defer);
    server.on_request(Req::get("/hold"));
    let ledger = server.core.ledger();
    ledger.start_trace();
    server.on_request(Req::get("/refused"));
    // Core v2 asks the pool before minting the bundle's ticket: nothing to give back.
    assert_eq!(ledger.take_trace(), []);
    server.finish_all();
    assert_clean_shutdown(&server);
}

#[test]
fn refusals_before_the_bundle_mint_nothing() {
    let server = FakeServer::new(on_stop());
    let ledger = server.core.ledger();
    let drain = server.core.stop();
    ledger.start_trace();
    assert_refused(&server.on_request(Req::get("/")), RefusalReason::Stopped);
    server.heap.collect();
    assert_refused(
        &server.on_request(Req::get("/")),
        RefusalReason::WrapperFinalized,
    );
    assert_eq!(ledger.take_trace(), []);
    assert!(drain.is_complete());
    assert_clean_shutdown(&server);
}

#[test]
fn admitted_bundle_drops_in_reverse_order_of_acquisition() {
    let server = FakeServer::new(on_stop());
    let live = server.core.upgrade().unwrap();
    let ledger = server.core.ledger();
    ledger.start_trace();
    let bundle = live.admit(|_ctx| Ok(())).unwrap();
    drop(bundle);
    assert_eq!(
        ledger.take_trace(),
        [
            Minted(GuardKind::Ticket),
            Minted(GuardKind::Context),
            Minted(GuardKind::ActivityRef),
            Minted(GuardKind::Request),
            Released(GuardKind::Request),
            Released(GuardKind::ActivityRef),
            Released(GuardKind::Context),
            Released(GuardKind::Ticket),
        ]
    );
    drop(live);
    assert_clean_shutdown(&server);
}

/// The PR's own regression test never reached the finalized path: it kept a strong reference
/// to the server, so the collector had nothing to finalize and the test passed either way.
/// Here a strong handle held anywhere (a stored `this`, a live proof) visibly keeps the
/// wrapper, and the tests above assert `is_finalized()` before they expect a 503.
#[test]
fn a_test_holding_a_strong_reference_never_reaches_the_finalized_path() {
    let server = FakeServer::new(on_stop());
    let this = server.core.upgrade().unwrap().wrapper().clone(); // the test's `server` variable
    let drain = server.core.stop();
    assert!(drain.is_complete());
    assert_eq!(server.heap.collect(), 0, "still rooted by the test itself");
    assert!(!server.core.wrapper().weak().is_finalized());
    assert!(
        server.core.upgrade().is_some(),
        "the 503 path is not exercised"
    );
    assert_refused(&server.on_request(Req::get("/")), RefusalReason::Stopped);

    drop(this);
    assert_eq!(server.heap.collect(), 1);
    assert!(server.core.wrapper().weak().is_finalized());
    assert_refused(
        &server.on_request(Req::get("/")),
        RefusalReason::WrapperFinalized,
    );
    assert_clean_shutdown(&server);
}

/// A panic inside `admit`'s build step (the engine throws while making the `Request`, after the
/// pool slot is committed): the ticket, context and activity ref unwind in reverse order.
#[test]
fn panic_while_admitting_unwinds_what_was_taken() {
    let server = FakeServer::new(on_stop());
    let ledger = server.core.ledger();
    ledger.start_trace();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let live = server.core.upgrade().unwrap();
        let _bundle = live.admit(|ctx| -> Result<(), reqguard::Refusal> {
            ctx.url.push_str("/half-built");
            panic!("Request.new threw a native panic");
        });
    }));
    assert!(caught.is_err());
    assert_eq!(
        ledger.take_trace(),
        [
            Minted(GuardKind::Ticket),
            Minted(GuardKind::Context),
            Minted(GuardKind::ActivityRef),
            Released(GuardKind::ActivityRef),
            Released(GuardKind::Context),
            Released(GuardKind::Ticket),
        ]
    );
    // The half-built context went back to the pool recycled.
    let live = server.core.upgrade().unwrap();
    let context = live.context(live.ticket().unwrap()).unwrap();
    assert!(context.url.is_empty());
    drop((context, live));
    assert_clean_shutdown(&server);
}
