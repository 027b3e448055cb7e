//! QA probes, round 32, of the public API as a hostile embedder (a JS runtime author) uses it.
//! Public API only. Each module's doc says whether it found a bug (and how it failed on `main`
//! before its fix) or pins a documented behaviour.

/// QA embed32-1 (G5; found and fixed round 32). Each stack's `after_drain` hooks run "once the
/// drain has completed" (a runtime resolves `server.stop()`'s promise there;
/// `Guarded::embedded` collects the heap there). A request admitted out of every connection
/// (through the server's core: a runtime's `server.fetch()`, a saved request) and still out at
/// the drain deadline had its signal aborted, and the server returned (mio, hyper) or the
/// session ended its stop (`Session`); the drain completed once the embedder let that request
/// go, but nothing polled it any more: the hooks were dropped unrun (the mio loop dropped the
/// accounting, hyper's `serve` dropped them "as leaked", a session never polled again). On
/// main 734d0df each test below counts 0 runs where it asserts 1.
///
/// Now each stack hands the hooks it has not run to the drain (`Drain::on_complete`: they
/// run when it completes, caught), and a session polls the drain at each call until it
/// completes.
mod after_drain_with_a_request_out_of_every_connection {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use reqguard::engines::Heap;
    use reqguard::{AbortReason, Config, ServerCore};

    /// An `after_drain` hook of the embedder's that counts its runs.
    fn counter() -> (Rc<Cell<u32>>, impl FnMut() + 'static) {
        let ran = Rc::new(Cell::new(0));
        let counted = Rc::clone(&ran);
        (ran, move || counted.set(counted.get() + 1))
    }

    #[cfg(feature = "server")]
    #[test]
    fn on_a_mio_server() {
        use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Server};
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let (ran, hook) = counter();
        let accounting = Guarded::embedded("server", Config::default()).after_drain(hook);
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(50));
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, limits).expect("bound");
        // `server.fetch()`: a request no connection holds, admitted through the core.
        let core = server.dispatcher().accounting().core();
        let fetch = core.upgrade().unwrap().admit(|_| Ok(())).expect("admitted");
        server.stop(Instant::now());
        let report = server.run().expect("served");
        assert!(report.drain_deadline_hit);
        assert_eq!(fetch.signal().reason(), Some(AbortReason::DrainDeadline));
        assert_eq!(
            ran.get(),
            0,
            "the drain has not completed: the request is out"
        );
        drop(fetch); // the runtime lets its request go
        assert_eq!(ran.get(), 1, "the drain completed: its hook runs");
    }

    #[cfg(feature = "server")]
    #[test]
    fn on_a_session() {
        use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let (ran, hook) = counter();
        let accounting = Guarded::embedded("server", Config::default()).after_drain(hook);
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(100));
        let mut session = Session::new(&router, accounting, limits);
        let core = session.dispatcher().accounting().core();
        let fetch = core.upgrade().unwrap().admit(|_| Ok(())).expect("admitted");
        session.feed(b"GET /delay?ms=500 HTTP/1.1\r\nhost: x\r\n\r\n");
        session.stop();
        session.advance(Duration::from_millis(200)); // past the deadline
        assert_eq!(fetch.signal().reason(), Some(AbortReason::DrainDeadline));
        assert_eq!(session.stats().aborted, 1, "the deferred request");
        assert_eq!(
            ran.get(),
            0,
            "the drain has not completed: the fetch is out"
        );
        drop(fetch);
        session.advance(Duration::ZERO); // the next call polls the drain
        assert_eq!(ran.get(), 1);
        drop(session);
        assert_eq!(ran.get(), 1, "once");

        // Dropped before its next call: the hooks run with the accounting's drop.
        let (ran, hook) = counter();
        let accounting = Guarded::embedded("server", Config::default()).after_drain(hook);
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(100));
        let mut session = Session::new(&router, accounting, limits);
        let core = session.dispatcher().accounting().core();
        let fetch = core.upgrade().unwrap().admit(|_| Ok(())).expect("admitted");
        session.stop();
        session.advance(Duration::from_millis(200));
        drop(session);
        assert_eq!(ran.get(), 0);
        drop(fetch);
        assert_eq!(ran.get(), 1);
    }

    #[cfg(feature = "hyper")]
    #[test]
    fn on_a_hyper_server() {
        use reqguard::tokio_hyper::{demo_routes, HyperServer, Options};
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let (ran, hook) = counter();
        let options = Options::default()
            .with_drain_timeout(Duration::from_millis(50))
            .with_force_after(Duration::from_millis(10));
        let server = HyperServer::new(core, demo_routes())
            .options(options)
            .after_drain(hook);
        let fetch = server.core().upgrade().unwrap().admit(|_| Ok(())).unwrap();
        let report = crate::local_set::block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            Box::new(server.serve(listener, std::future::ready(())).await)
        });
        assert!(report.drain_deadline_hit);
        assert_eq!(fetch.signal().reason(), Some(AbortReason::DrainDeadline));
        assert_eq!(
            ran.get(),
            0,
            "the drain has not completed: the request is out"
        );
        drop(fetch);
        assert_eq!(ran.get(), 1, "the drain completed: its hook runs");
    }
}
