//! QA probes, round 30, of the public API as a hostile embedder (a JS runtime author) uses it.
//! Public API only. Each module's doc says whether it found a bug (and how it failed on `main`
//! before its fix) or pins a documented behaviour.

/// QA embed30-1 (found and fixed round 30): a server given a QuickJS context of another
/// runtime than its wrapper's as its scope was made without a word, served while the wrapper
/// was strong (an upgrade then only clones the strong handle, the scope unused), and answered
/// `500` to every request once the wrapper was downgraded (the upgrade panics on a handle of
/// another runtime: the embedder's bug by the `Engine` contract, but told at the first request
/// after the stop, not at setup).
///
/// Now `Guarded::quickjs` and `HyperServer::quickjs` refuse it at setup with
/// `SetupError::OtherRuntime` (`ServerCore::check_scope` answers the same question), and any
/// context of the wrapper's runtime is accepted. On main's src (5ede861) none of the three
/// exists: this module does not compile there (the two pins at its end, on `Guarded::new`,
/// pass there).
#[cfg(all(feature = "quickjs", feature = "server"))]
mod quickjs_scope_of_another_runtime {
    use std::time::Instant;

    use reqguard::engines::quickjs::{prepare, SetupError};
    use reqguard::engines::QuickJs;
    use reqguard::http::{Accounting, Guarded};
    use reqguard::{Config, DowngradePolicy, ServerCore};
    use rquickjs::{Context, Object, Runtime};

    fn runtime() -> Runtime {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        rt
    }

    /// A core whose wrapper (acyclic: freed by reference count at the downgrade) is a value
    /// of `context`.
    fn core_in(context: &Context) -> ServerCore<QuickJs> {
        let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({ port: 1 })").expect("server");
            ServerCore::quickjs(context, server, config).expect("core")
        })
    }

    #[test]
    fn a_context_of_another_runtime_is_refused_at_setup() {
        let rt = runtime();
        let context = Context::full(&rt).expect("context");
        let other_rt = runtime();
        let elsewhere = Context::full(&other_rt).expect("context");
        let core = core_in(&context);
        assert!(matches!(
            core.check_scope(&elsewhere),
            Err(SetupError::OtherRuntime)
        ));
        let refused = Guarded::quickjs(core, elsewhere.clone());
        let error = refused.expect_err("refused at setup");
        assert!(matches!(error, SetupError::OtherRuntime));
        assert!(
            error.to_string().contains("another QuickJS runtime"),
            "{error}"
        );
        // The core went with the refusal: the runtime it kept is not kept for good.
        drop((context, elsewhere));
        let freed = rt.weak();
        drop(rt);
        assert!(
            freed.try_ref().is_none(),
            "the refused core kept its runtime"
        );
    }

    /// A base context (no `WeakRef`, no globals a script set) of another runtime is refused
    /// too: the check is on the runtime, not on anything the context's realm holds.
    #[test]
    fn a_base_context_of_another_runtime_is_refused_too() {
        let rt = runtime();
        let context = Context::full(&rt).expect("context");
        let unprepared = Runtime::new().expect("runtime"); // not even prepared
        let elsewhere = Context::base(&unprepared).expect("context");
        let refused = Guarded::quickjs(core_in(&context), elsewhere);
        assert!(matches!(refused, Err(SetupError::OtherRuntime)));
    }

    /// Any context of the wrapper's runtime is a scope: another one than the core was made
    /// in (a base one, even) serves, and refuses `503` once the wrapper is freed.
    #[test]
    fn another_context_of_the_same_runtime_serves_and_refuses_once_freed() {
        let rt = runtime();
        let context = Context::full(&rt).expect("context");
        let core = core_in(&context);
        let sibling = Context::base(&rt).expect("context");
        core.check_scope(&sibling)
            .expect("a context of the runtime");
        let mut guarded = Guarded::quickjs(core, sibling).expect("accepted");
        let held = guarded.admit().expect("admitted while strong");
        drop(held);
        guarded.stop(Instant::now()); // OnStop: the last reference goes, freed now
        let refusal = guarded.admit().expect_err("finalized");
        assert_eq!(refusal.status(), 503);
        assert_eq!(guarded.report().leaked, 0);
    }

    /// Pin (documented on `Guarded::quickjs`): `Guarded::new` takes any scope provider and
    /// cannot tell; with a context of another runtime it serves while the wrapper is strong
    /// and every admission after the downgrade panics (the server answers it `500`), taking
    /// nothing.
    #[test]
    fn guarded_new_with_another_runtime_serves_until_the_downgrade_then_panics() {
        let rt = runtime();
        let context = Context::full(&rt).expect("context");
        let other_rt = runtime();
        let elsewhere = Context::full(&other_rt).expect("context");
        let mut guarded = Guarded::new(core_in(&context), elsewhere);
        drop(guarded.admit().expect("served while strong"));
        guarded.stop(Instant::now());
        let admitted =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| guarded.admit().map(drop)));
        let payload = admitted.expect_err("the upgrade in another runtime panics");
        let message = payload
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(message.contains("another runtime"), "{message}");
        assert_eq!(guarded.report().leaked, 0);
    }
}

/// QA embed30-1, the hyper adapter's side: `HyperServer::quickjs` refuses a context of another
/// runtime at setup, and takes one of the wrapper's. Does not compile on main's src (no
/// `HyperServer::quickjs`).
#[cfg(all(feature = "quickjs", feature = "hyper"))]
mod quickjs_hyper_scope_of_another_runtime {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use reqguard::engines::quickjs::{prepare, JsStrong, SetupError};
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
    use reqguard::{Config, ServerCore};
    use rquickjs::{Context, Object, Runtime};

    async fn answer(bundle: Bundle) -> Result<Reply<Full<Bytes>>, HandlerError> {
        Ok(bundle.respond(Response::new(Full::new(Bytes::from_static(b"hi")))))
    }

    fn handler(
        _: JsStrong,
        _: Request<Incoming>,
        bundle: Bundle,
    ) -> impl std::future::Future<Output = Result<Reply<Full<Bytes>>, HandlerError>> {
        answer(bundle)
    }

    #[test]
    fn a_context_of_another_runtime_is_refused_at_setup() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        let context = Context::full(&rt).expect("context");
        let make_core = || {
            context.with(|ctx| {
                let server: Object<'_> = ctx.eval("({})").expect("server");
                ServerCore::quickjs(&context, server, Config::default()).expect("core")
            })
        };
        let elsewhere = Context::full(&Runtime::new().expect("runtime")).expect("context");
        let refused = HyperServer::quickjs(make_core(), handler, elsewhere);
        assert!(matches!(refused.err(), Some(SetupError::OtherRuntime)));
        let sibling = Context::full(&rt).expect("context");
        assert!(HyperServer::quickjs(make_core(), handler, sibling).is_ok());
    }
}

/// Pin (round 30's lead 2, docs/engines.md "Rust values QuickJS frees"): rquickjs drops a Rust
/// value it holds for a script (the closure of a `Function::new`, a class instance) inside
/// QuickJS's finalizer, an `extern "C"` callback, where a panic aborts the process. So every
/// `Drop` of reqguard's that a finalizer can reach must not unwind, whatever the embedder's
/// callbacks it runs do. A JS function captures an admitted bundle, an activity ref, a
/// standalone ticket and a drain handle of a core already dropped (`OnDrain`: the wrapper,
/// in the same runtime, is kept strong until the drain completes), and every user callback
/// their release runs panics: an abort listener, `Recycle::recycle`, the context's and the
/// payload's `Drop`, a drain hook, a listener's captures' `Drop`. QuickJS frees the function
/// by reference count: the release runs inside the finalizer, completes the drain, and lets
/// the wrapper go from inside it. Run in a child process, since the failure is an abort. Passes
/// on main's src (5ede861): no class of reqguard's panics in `Drop` (reqguard has no classes;
/// its guards catch every callback).
#[cfg(feature = "quickjs")]
mod guards_released_inside_a_quickjs_finalizer {
    use std::cell::Cell;
    use std::rc::Rc;

    use reqguard::engines::quickjs::prepare;
    use reqguard::{Config, DowngradePolicy, Recycle, ServerCore};
    use rquickjs::{Context, Function, Object, Runtime};

    use crate::child::{assert_passes_in_child, is_child};

    const CHILD: &str = "REQGUARD_QA_EMBED30_FINALIZER_CHILD";

    /// A context whose `recycle` and `Drop` panic.
    #[derive(Default)]
    struct Hostile;

    impl Recycle for Hostile {
        fn recycle(&mut self) {
            panic!("recycle panics (expected)");
        }
    }

    impl Drop for Hostile {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("the context's drop panics (expected)");
            }
        }
    }

    /// A payload (and a listener's capture) whose `Drop` panics.
    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("a drop panics (expected)");
            }
        }
    }

    fn scenario() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        let context = Context::full(&rt).expect("context");
        let drained = Rc::new(Cell::new(false));
        let freed_wrapper = context.with(|ctx| {
            let server: Object<'_> = ctx
                .eval("globalThis.kept = 1; ({ port: 1 })")
                .expect("server");
            let config = Config::default()
                .with_downgrade(DowngradePolicy::OnDrain)
                .with_pool_capacity(1)
                .expect("capacity");
            let core = ServerCore::quickjs_with_context::<Hostile>(&context, server, config)
                .expect("core");
            let live = core.upgrade_in(&mut ctx.clone()).expect("live");
            let bundle = live.admit(|_| Ok(PanicsOnDrop)).expect("admitted");
            let capture = PanicsOnDrop;
            bundle.signal().on_abort(move |_| {
                let _keep = &capture;
                panic!("the abort listener panics (expected)");
            });
            let activity = bundle.activity_ref();
            let ticket = live.ticket().expect("ticket");
            drop(live);
            let drain = core.stop();
            let seen = Rc::clone(&drained);
            drain.on_complete(move || {
                seen.set(true);
                panic!("the drain hook panics (expected)");
            });
            let weak = core.wrapper().weak().clone();
            drop(core); // OnDrain: the wrapper stays strong, held by the drain
            let held = (bundle, activity, ticket, drain);
            let function = Function::new(ctx.clone(), move || {
                let _keep = &held;
            })
            .expect("function");
            ctx.globals().set("holder", function).expect("set");
            let _: () = ctx.eval("globalThis.holder = undefined").expect("freed");
            weak
        });
        assert!(drained.get(), "the drain completed inside the finalizer");
        context.with(|ctx| {
            assert!(
                freed_wrapper.upgrade(&ctx).expect("upgrade").is_none(),
                "the drain let the wrapper go and QuickJS freed it"
            );
        });
    }

    #[test]
    fn every_release_inside_the_finalizer_catches_its_callbacks() {
        if is_child(CHILD) {
            scenario();
            return;
        }
        assert_passes_in_child(
            CHILD,
            "v30::guards_released_inside_a_quickjs_finalizer::every_release_inside_the_finalizer_catches_its_callbacks",
        );
    }
}

/// Pin (threads, G1): the public types that reach a server's loop-thread state and that no
/// earlier assertion covers (`src/lib.rs`'s `mod assertions`, `tests/probe_auto_traits.rs`)
/// stay on its thread: none is `Send` or `Sync`. The engines' handles too (a QuickJS handle
/// dropped on another thread would free its value without the runtime's lock). Compile-time:
/// the test binary does not build if one is. Passes on main's src.
mod loop_thread_types {
    use reqguard::engines::{Embedded, Handle, Heap, WeakHandle};
    use reqguard::{Ledger, WrapperCell};
    use static_assertions::assert_not_impl_any;

    assert_not_impl_any!(WrapperCell<Embedded<()>>: Send, Sync);
    assert_not_impl_any!(Heap: Send, Sync);
    assert_not_impl_any!(Handle<()>: Send, Sync);
    assert_not_impl_any!(WeakHandle<()>: Send, Sync);
    assert_not_impl_any!(Ledger: Sync);

    #[cfg(feature = "quickjs")]
    mod quickjs {
        use reqguard::engines::quickjs::{JsStrong, JsWeakRef};
        use reqguard::engines::QuickJs;
        use reqguard::{ServerCore, WrapperCell};
        use static_assertions::assert_not_impl_any;

        assert_not_impl_any!(JsStrong: Send, Sync);
        assert_not_impl_any!(JsWeakRef: Send, Sync);
        assert_not_impl_any!(WrapperCell<QuickJs>: Send, Sync);
        assert_not_impl_any!(ServerCore<QuickJs>: Send, Sync);
    }

    #[cfg(feature = "server")]
    mod server {
        use reqguard::engines::Embedded;
        use reqguard::http::{Guarded, GuardedHeld, NoScope, Session};
        use static_assertions::assert_not_impl_any;

        assert_not_impl_any!(Guarded<Embedded<()>, NoScope>: Send, Sync);
        assert_not_impl_any!(GuardedHeld<()>: Send, Sync, Clone);
        assert_not_impl_any!(Session<'static, Guarded<Embedded<()>, NoScope>>: Send, Sync);
    }

    #[cfg(feature = "hyper")]
    mod hyper {
        use reqguard::engines::Embedded;
        use reqguard::tokio_hyper::{Bundle, GuardedBody, HyperServer, NoScope};
        use static_assertions::assert_not_impl_any;

        type Server = HyperServer<Embedded<()>, (), fn(), NoScope>;
        assert_not_impl_any!(Bundle: Send, Sync);
        assert_not_impl_any!(GuardedBody<http_body_util::Empty<bytes::Bytes>>: Send, Sync);
        assert_not_impl_any!(Server: Send, Sync);
    }
}

/// Pin (re-entrancy through the engine, G5/G8): the wrapper itself owns the last request out
/// (a JS property holding a Rust closure that holds the admitted bundle: a runtime whose
/// server object keeps its in-flight requests). Under `OnStop`, `stop()` lets the wrapper go,
/// QuickJS frees it at once (acyclic), and with it the closure and the bundle: the request is
/// released from inside the stop's own downgrade, inside QuickJS's finalizer. It ends once
/// (`Dropped`, its listener fired once), the drain completes inside that `stop()`, and the
/// handle it returns says so. Passes on main's src (nothing changed there for it).
#[cfg(feature = "quickjs")]
mod wrapper_owning_its_last_request {
    use std::cell::Cell;
    use std::rc::Rc;

    use reqguard::engines::quickjs::prepare;
    use reqguard::{AbortReason, Config, DowngradePolicy, ServerCore};
    use rquickjs::{Context, Function, Object, Runtime};

    #[test]
    fn stop_releases_it_from_inside_the_downgrade() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        let context = Context::full(&rt).expect("context");
        let fired = Rc::new(Cell::new(Vec::<AbortReason>::new()));
        let (core, weak) = context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").expect("server");
            let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
            let core = ServerCore::quickjs(&context, server, config).expect("core");
            let live = core.upgrade_in(&mut ctx.clone()).expect("live");
            let bundle = live.admit(|_| Ok(())).expect("admitted");
            let seen = Rc::clone(&fired);
            bundle.signal().on_abort(move |reason| {
                let mut all = seen.take();
                all.push(reason);
                seen.set(all);
            });
            let holder = Function::new(ctx.clone(), move || {
                let _request = &bundle;
            })
            .expect("function");
            live.object(&ctx)
                .expect("this")
                .set("inFlight", holder)
                .expect("set");
            drop(live); // the proof's strong handle goes: the core's is the wrapper's last root
            let weak = core.wrapper().weak().clone();
            (core, weak)
        });
        assert_eq!(
            core.ledger().total_outstanding(),
            4,
            "ticket, context, activity ref, request object"
        );
        let drain = core.stop();
        assert!(drain.is_complete(), "released inside stop's downgrade");
        assert_eq!(fired.take(), vec![AbortReason::Dropped]);
        let outcomes = core.ledger().outcomes();
        assert_eq!((outcomes.dropped, outcomes.completed), (1, 0));
        assert_eq!(drain.report().panicked_hooks, 0);
        core.ledger().assert_quiescent();
        context.with(|ctx| {
            assert!(weak.upgrade(&ctx).expect("upgrade").is_none(), "freed");
        });
    }
}
