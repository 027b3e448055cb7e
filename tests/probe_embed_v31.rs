//! QA probes, round 31, of the public API as a hostile embedder (a JS runtime author) uses it.
//! Public API only. Each module's doc says whether it found a bug (and how it failed on `main`
//! before its fix) or pins a documented behaviour.

#[path = "util/child.rs"]
mod child;

/// Re-entrancy into a drain from its own callbacks: an escalation run again from a listener
/// of the escalation, a report read from every callback of a release. Held on main.
mod core_reentrant_escalation {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use reqguard::engines::Heap;
    use reqguard::{AbortReason, Config, Drain, Recycle, ServerCore};

    /// A context whose `recycle` reads the server's figures through a drain handle.
    #[derive(Default)]
    struct Reading(Rc<RefCell<Option<Drain>>>);

    impl Recycle for Reading {
        fn recycle(&mut self) {
            if let Some(drain) = self.0.borrow().as_ref() {
                let report = drain.report();
                assert_eq!(
                    report.outstanding.total(),
                    drain.ledger().total_outstanding()
                );
            }
        }
    }

    /// Every listener of the first signal escalates again: the inner escalation aborts the
    /// others, the outer one skips them. Each request is aborted once, every outcome is
    /// *deadline aborted*, and the aborted signals of the two reports add up to the requests.
    #[test]
    fn an_escalation_run_again_from_a_listener_aborts_each_request_once() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let live = core.upgrade().unwrap();
        let bundles: Vec<_> = (0..5).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
        drop(live);
        let drain = core.stop();
        let fired = Rc::new(Cell::new(0u32));
        let inner = Rc::new(Cell::new(0usize));
        for (i, bundle) in bundles.iter().enumerate() {
            let (fired, inner, drain) = (Rc::clone(&fired), Rc::clone(&inner), drain.clone());
            assert!(bundle.signal().on_abort(move |reason| {
                assert_eq!(reason, AbortReason::DrainDeadline);
                fired.set(fired.get() + 1);
                // Every listener escalates again (nested as deep as the requests go).
                let aborted = drain.escalate().aborted_signals;
                inner.set(inner.get() + aborted);
                let _ = i;
            }));
        }
        let outer = drain.escalate();
        assert_eq!(fired.get(), 5, "each listener once");
        assert_eq!(outer.aborted_signals + inner.get(), 5);
        drop(bundles);
        assert!(drain.is_complete());
        assert_eq!(core.ledger().outcomes().deadline_aborted, 5);
        core.ledger().assert_quiescent();
    }

    /// The figures read from inside a release (the context's `recycle`, an abort listener, a
    /// drain hook) agree with the ledger: the report's total is the ledger's.
    #[test]
    fn figures_read_inside_every_callback_of_a_release_agree() {
        let heap = Heap::new();
        let shared_drain: Rc<RefCell<Option<Drain>>> = Rc::default();
        let config = Config::default().with_pool_capacity(2).unwrap();
        let core: ServerCore<_, Reading> =
            ServerCore::embedded_with_context(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let hold = Rc::clone(&shared_drain);
        let a = live
            .admit(move |ctx| {
                ctx.0 = hold;
                Ok(())
            })
            .unwrap();
        let hold = Rc::clone(&shared_drain);
        let b = live
            .admit(move |ctx| {
                ctx.0 = hold;
                Ok(())
            })
            .unwrap();
        drop(live);
        let drain = core.stop();
        *shared_drain.borrow_mut() = Some(drain.clone());
        let seen = drain.clone();
        a.signal().on_abort(move |_| {
            let report = seen.report();
            assert_eq!(
                report.outstanding.total(),
                seen.ledger().total_outstanding()
            );
        });
        let seen = drain.clone();
        drain.on_complete(move || {
            let report = seen.report();
            assert!(report.complete && report.drain_time.is_some());
            assert_eq!(report.outstanding.total(), 0);
        });
        drop(a);
        b.complete();
        assert!(drain.is_complete());
        assert_eq!(drain.report().panicked_hooks, 0);
        assert_eq!(drain.report().panicked_listeners, 0);
        shared_drain.borrow_mut().take();
        core.ledger().assert_quiescent();
    }
}

/// Bun's layout: the server's JS object owns the native server (here a native `stop` function
/// on the wrapper captures the core), so the core lives in the engine's heap. Held on main.
#[cfg(feature = "quickjs")]
mod quickjs_core_owned_by_its_wrapper {
    use std::rc::Rc;

    use super::child;
    use reqguard::engines::QuickJs;
    use reqguard::{Config, DowngradePolicy, ServerCore};
    use rquickjs::{Context, Function, Object, Runtime};

    const CHILD: &str = "PROBE_V31_QJS_OWNED";

    /// Never stopped: the embedder drops its runtime and context with the server listening.
    fn unstopped() {
        let rt = Runtime::new().expect("runtime");
        reqguard::engines::quickjs::prepare(&rt).expect("prepared");
        let freed = rt.weak();
        let context = Context::full(&rt).expect("context");
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("globalThis.server = { port: 1 }; server").unwrap();
            let core: Rc<ServerCore<QuickJs>> = Rc::new(
                ServerCore::quickjs(&context, server.clone(), Config::default()).expect("core"),
            );
            let owned = Rc::clone(&core);
            let stop = Function::new(ctx.clone(), move || {
                drop(owned.stop());
            })
            .expect("function");
            server.set("stop", stop).expect("set");
        });
        context.with(|ctx| {
            let _: () = ctx.eval("globalThis.server = undefined;").unwrap();
        });
        drop(context);
        drop(rt);
        println!("freed: {}", freed.try_ref().is_none());
        println!("done");
    }

    fn scenario(policy: DowngradePolicy, cycle: bool) {
        let rt = Runtime::new().expect("runtime");
        reqguard::engines::quickjs::prepare(&rt).expect("prepared");
        let freed = rt.weak();
        let context = Context::full(&rt).expect("context");
        let bundle = context.with(|ctx| {
            let server: Object<'_> = ctx
                .eval(if cycle {
                    "globalThis.server = { port: 1 }; server.self = server; server"
                } else {
                    "globalThis.server = { port: 1 }; server"
                })
                .expect("server");
            let config = Config::default().with_downgrade(policy);
            let core: Rc<ServerCore<QuickJs>> =
                Rc::new(ServerCore::quickjs(&context, server.clone(), config).expect("core"));
            let bundle = core
                .upgrade_in(&mut ctx.clone())
                .expect("strong")
                .admit(|_| Ok(()))
                .expect("admitted");
            let owned = Rc::clone(&core);
            let stop = Function::new(ctx.clone(), move || {
                drop(owned.stop());
            })
            .expect("function");
            server.set("stop", stop).expect("set");
            drop(core);
            bundle
        });
        // The script stops its server and lets go of it, a request still out.
        context.with(|ctx| {
            let _: () = ctx
                .eval("server.stop(); globalThis.server = undefined;")
                .expect("stop");
            ctx.run_gc();
        });
        // The request ends inside the engine (a handler's promise resolved in a job).
        context.with(|ctx| {
            bundle.complete();
            ctx.run_gc();
        });
        rt.run_gc();
        drop(context);
        drop(rt);
        assert!(freed.try_ref().is_none(), "the runtime was not freed");
        println!("done");
    }

    #[test]
    fn child() {
        match std::env::var(CHILD).as_deref() {
            Ok("on stop") => scenario(DowngradePolicy::OnStop, false),
            Ok("on stop, cycle") => scenario(DowngradePolicy::OnStop, true),
            Ok("on drain") => scenario(DowngradePolicy::OnDrain, false),
            Ok("on drain, cycle") => scenario(DowngradePolicy::OnDrain, true),
            Ok("unstopped") => unstopped(),
            _ => {}
        }
    }

    #[test]
    fn a_core_kept_by_a_function_of_its_wrapper_is_freed_with_its_runtime() {
        for name in ["on stop", "on stop, cycle", "on drain", "on drain, cycle"] {
            let (code, out) =
                child::output_in_child(CHILD, name, "quickjs_core_owned_by_its_wrapper::child");
            assert!(
                code == Some(0) && out.contains("done"),
                "{name}: {code:?}\n{out}"
            );
        }
    }

    /// A server never stopped whose core its wrapper owns keeps the runtime for good: the
    /// wrapper is held strongly while the server listens (the core's `JsStrong`, which holds
    /// the runtime), and nothing drops the core, which the wrapper holds. The cycle goes
    /// through native handles the collector cannot see; holding the runtime makes it a leak,
    /// not an abort at `JS_FreeRuntime`. Documented (docs/engines.md): stop a server before
    /// tearing its runtime down.
    #[test]
    fn an_unstopped_core_kept_by_its_wrapper_keeps_the_runtime() {
        let (code, out) = child::output_in_child(
            CHILD,
            "unstopped",
            "quickjs_core_owned_by_its_wrapper::child",
        );
        assert!(
            code == Some(0) && out.contains("freed: false\n"),
            "{code:?}\n{out}"
        );
    }
}

/// Counts the bytes allocated, for the router's build below (a child process runs that test
/// alone, so no other test's allocations are counted).
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// QA embed31-1 (G9, found and fixed round 31): building a `Router` was quadratic in its
/// routes. Each `Router::route` recomputed the `allow` value of `*` from every route added so
/// far (a new `String` and `Vec` of all their methods) and its own path's from every route
/// (comparing each path), and found the path's entry by a linear search: 2,000 routes of
/// distinct paths took 1.4 s in a debug build, 16,000 took 60 s (a runtime serving a static
/// site as routes, `Bun.serve({ routes })`). A request with a method the server does not
/// know (`501`) also compared it with every route's.
///
/// Now each route adds its methods to its path's value and to `*`'s, found in hash maps, in
/// time independent of the routes before it. The test counts what the build allocates, the one
/// measure of its work a test can take without a clock: with a method per route (each new to
/// `*`), `*`'s value was made again from all the methods at each route. On main's src (a4dd1ad)
/// the build of 1,000 such routes allocated 13.9 MB (and took 5.7 s: each method was also
/// looked for among all the others, cubic); now 0.7 MB.
#[cfg(feature = "server")]
mod router_build_is_linear {
    use super::{child, GLOBAL};
    use reqguard::http::{Limits, Reply, Request, Response, Router, Routes, Session, Unaccounted};

    const CHILD: &str = "PROBE_V31_ROUTER";
    const ROUTES: usize = 1_000;

    fn ok(_: &Request<'_>, _: &mut Response<'_>) -> Reply {
        Reply::Now
    }

    /// The bytes allocated building a router of `ROUTES` routes, each of its own path and of
    /// its own method, and the router's answers afterwards.
    fn build() {
        let methods: Vec<&'static str> = (0..ROUTES)
            .map(|i| &*Box::leak(format!("M{i}").into_boxed_str()))
            .collect();
        let paths: Vec<String> = (0..ROUTES).map(|i| format!("/static/{i}.js")).collect();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        let region = stats_alloc::Region::new(GLOBAL);
        for (method, path) in methods.iter().zip(&paths) {
            router.route(method, path, ok);
        }
        let allocated = region.change().bytes_allocated;
        // The same answers as before: each path's own method, `*` every method in order.
        assert_eq!(router.allow("/static/7.js"), Some("M7"));
        let all = router.allow("*").unwrap();
        assert!(all.starts_with("M0, M1, M2") && all.ends_with("M998, M999"));
        assert!(router.knows("M999") && !router.knows("M1000"));
        router.route("GET", "/static/7.js", ok);
        router.route("NOT A TOKEN", "/static/7.js", ok);
        assert_eq!(router.allow("/static/7.js"), Some("M7, GET, HEAD"));
        let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
        session.feed(b"DELETE /static/7.js HTTP/1.1\r\nhost: x\r\n\r\n");
        let out = String::from_utf8(session.take_output()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 405") && out.contains("allow: M7, GET, HEAD\r\n"),
            "{out}"
        );
        session.feed(b"M1000 / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(session.take_output().starts_with(b"HTTP/1.1 501"));
        println!("allocated {allocated}");
    }

    #[test]
    fn child() {
        if child::is_child(CHILD) {
            build();
        }
    }

    #[test]
    fn a_router_of_many_routes_is_built_in_linear_work() {
        let (code, out) = child::output_in_child(CHILD, "1", "router_build_is_linear::child");
        assert_eq!(code, Some(0), "{out}");
        let allocated: usize = out
            .split("allocated ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure: {out}"));
        // Linear: under a kilobyte per route (0.7 MB). Main: 13.9 MB.
        assert!(allocated < 4 << 20, "{allocated} bytes for {ROUTES} routes");
    }
}

/// A context whose `Default` panics, with the pool prewarmed: the constructor's panic is the
/// caller's (documented under `ServerCore::new`'s `# Panics`), and nothing it took is kept:
/// the wrapper handle it was given goes with the unwinding (collectable), no slot or signal
/// stays counted anywhere. Held on main (the `# Panics` is new).
mod a_panicking_default_while_prewarming {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use reqguard::engines::Heap;
    use reqguard::{Config, Recycle, ServerCore};

    struct Bad;

    impl Default for Bad {
        fn default() -> Self {
            panic!("no context today");
        }
    }

    impl Recycle for Bad {
        fn recycle(&mut self) {}
    }

    #[test]
    fn the_constructor_panics_and_keeps_nothing() {
        let heap = Heap::new();
        let wrapper = heap.alloc("server");
        let weak = wrapper.downgrade();
        let config = Config::default().with_prewarm(2);
        let made = catch_unwind(AssertUnwindSafe(|| {
            ServerCore::embedded_with_context::<Bad>(wrapper, config)
        }));
        assert!(made.is_err(), "the Default's panic reaches the caller");
        assert_eq!(heap.collect(), 1, "the wrapper was let go");
        assert!(weak.is_finalized());
    }
}
