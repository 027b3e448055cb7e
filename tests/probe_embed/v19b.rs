//! QA probes, round 19 (qa-embed19b), of the public API as a hostile or careless embedder uses
//! it: `Server::dispatcher` before `run`, which hands out the server's dispatcher mutably (the
//! hole QA embed19-2 closed for `Session`), and a `Drain` polled with a waker whose `clone`
//! reaches the drain again (QA embed19b-2). Public API only. Each test that found a bug failed
//! on `main` before its fix (the test's doc says so).
#![cfg(feature = "server")]

mod server_dispatcher {
    use reqguard::http::Unaccounted;
    use reqguard::http::{demo_routes, Connection, Dispatcher, Limits, Router, Routes, Server};
    use std::io;
    use std::time::{Duration, Instant};

    /// A request the server's sockets never saw: a deferred answer (a minute) on a connection
    /// driven by hand, counted in flight by `d`.
    fn one_out<'r>(d: &mut Dispatcher<'r, Unaccounted>) -> Connection<'r, ()> {
        let mut conn = Connection::new(Instant::now());
        conn.receive(
            d,
            b"GET /delay?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n",
            Instant::now(),
        );
        assert_eq!(d.in_flight(), 1);
        conn
    }

    /// QA embed19b-1. A dispatcher swapped in before `run` (another's, counting a request a
    /// hand-driven connection holds; its limits never validated) was served with: the loop's
    /// drain waited for that request, which no socket of the server holds, until its deadline,
    /// and the report gave the other dispatcher's figures as the server's. `run` now refuses a
    /// dispatcher that is not the server's own, `InvalidInput`, at once. On `main` `run`
    /// returned `Ok` after the drain deadline (2 s here).
    #[test]
    fn a_server_whose_dispatcher_was_replaced_refuses_to_run() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let limits = Limits::default().with_drain_timeout(Duration::from_secs(2));
        let mut server = Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            &router,
            Unaccounted::default(),
            limits,
        )
        .unwrap();
        let mut other = Dispatcher::new(&router, Unaccounted::default(), limits);
        let conn = one_out(&mut other);
        std::mem::swap(server.dispatcher(), &mut other);
        server.stop(Instant::now());
        let err = server.run().expect_err("a replaced dispatcher is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        drop(conn);
    }

    /// QA embed19b-1, the server's own dispatcher taken out, used by a hand-driven connection
    /// and put back: the request it counts is on no socket of the server, and `run` refuses
    /// it as above. On `main` `run` returned `Ok` after the drain deadline.
    #[test]
    fn a_server_whose_own_dispatcher_counts_a_request_of_a_hand_driven_connection_refuses_to_run() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let limits = Limits::default().with_drain_timeout(Duration::from_secs(2));
        let mut server = Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            &router,
            Unaccounted::default(),
            limits,
        )
        .unwrap();
        let conn = one_out(server.dispatcher());
        server.stop(Instant::now());
        let err = server
            .run()
            .expect_err("requests no socket holds are refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        drop(conn);
    }

    /// Pin: a stop begun through the dispatcher before `run` is still the server's (as
    /// documented), and a server whose dispatcher was only read or adjusted runs.
    #[test]
    fn a_server_whose_dispatcher_was_used_in_place_runs() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut server = Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            &router,
            Unaccounted::default(),
            Limits::default(),
        )
        .unwrap();
        assert_eq!(server.dispatcher().in_flight(), 0);
        server.dispatcher().begin_stop(Instant::now());
        let report = server.run().expect("runs and drains at once");
        assert_eq!(report.leaked, 0);
    }
}

/// QA embed19b-2 (core): a drain handle polled with a waker whose `clone` (the executor's
/// code, as its `wake` and `drop` are) polls another handle of the same drain. The drain
/// cloned the waker while its waiter list was borrowed, so the inner poll panicked "already
/// borrowed" out of `Drain::poll`. The clone now runs with nothing borrowed: both handles wait,
/// and the drain completes when the last ticket goes.
mod drain_waker_clone {
    use std::cell::RefCell;
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::pin::Pin;
    use std::task::{Context, RawWaker, RawWakerVTable, Waker};

    use reqguard::engines::{Embedded, Heap};
    use reqguard::{Config, Drain, ServerCore};

    thread_local! {
        /// The other handle the waker's clone polls.
        static OTHER: RefCell<Option<Drain>> = const { RefCell::new(None) };
    }

    fn clone_polling_the_other(_: *const ()) -> RawWaker {
        OTHER.with(|other| {
            if let Some(drain) = other.borrow_mut().as_mut() {
                let _ = Pin::new(drain).poll(&mut Context::from_waker(Waker::noop()));
            }
        });
        RawWaker::new(std::ptr::null(), &VTABLE)
    }

    fn nothing(_: *const ()) {}

    static VTABLE: RawWakerVTable =
        RawWakerVTable::new(clone_polling_the_other, nothing, nothing, nothing);

    #[test]
    fn a_waker_whose_clone_polls_another_handle_of_the_drain_finds_it_free() {
        let heap = Heap::new();
        let core: ServerCore<Embedded<&'static str>> =
            ServerCore::embedded(heap.alloc("server"), Config::default());
        let ticket = core.upgrade().unwrap().ticket().unwrap();
        let drain = core.stop();
        OTHER.with(|other| *other.borrow_mut() = Some(drain.clone()));
        // A waker with no data and functions that touch none: the vtable's contract holds.
        #[allow(unsafe_code)]
        let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
        let mut waiting = drain.clone();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            Pin::new(&mut waiting)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        }));
        assert!(
            matches!(polled, Ok(true)),
            "the poll panicked (the waker's clone met the borrowed waiter list)"
        );
        assert_eq!(drain.waiters(), 2, "both handles wait");
        drop(ticket);
        assert!(drain.is_complete());
        assert_eq!(drain.waiters(), 0);
        assert!(Pin::new(&mut waiting)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready());
        OTHER.with(|other| other.borrow_mut().take());
        core.ledger().assert_quiescent();
    }
}
