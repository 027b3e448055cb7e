//! QA probes, round 29, of the public API as a hostile embedder (and a hostile script) uses it.
//! Public API only. Each module's doc says whether it found a bug (and how it failed on `main`
//! before its fix) or pins a documented behaviour.

/// QA embed28-2 (found round 28, fixed round 29): the QuickJS adapter took `WeakRef` from the
/// scripts' globals when the core was made. A script that ran before `ServerCore::quickjs`
/// could hand it a decoy: an upgrade after the wrapper was freed succeeded, with the decoy as
/// `this` (G1: a proof minted for a finalized server), or make the core's construction panic.
///
/// Now the adapter uses the engine's own `WeakRef` and `deref`, kept by
/// `engines::quickjs::prepare` from a context of its own that no script sees. Each scenario
/// runs its script before the runtime is prepared and before the core is made (the worst
/// order), then asks: is the core made (never a panic), is the live wrapper the wrapper, does
/// an upgrade fail once the wrapper is freed, and did none of the script's code run while the
/// core was made or upgraded.
///
/// On main's src (05edc2f) with `make_core` and `prepare` adapted to its API (no `prepare`, an
/// infallible `ServerCore::quickjs` caught for its panic) and the two assertions on the new
/// error type turned into "is an error", 21 of these 24 tests fail: the decoy after the free, a
/// panic in the construction, the script's trap run, or the wrapper kept alive by the core's
/// own weak handle (QA embed29-1). The untouched control, the poisoned prototype chain and
/// `preparing_keeps_no_runtime_alive` pass there too (pins).
#[cfg(feature = "quickjs")]
mod quickjs_intrinsic_weak_ref {
    use reqguard::engines::quickjs::{prepare, SetupError};
    use reqguard::engines::QuickJs;
    use reqguard::{Config, DowngradePolicy, ServerCore};
    use rquickjs::{Context, Ctx, Object, Runtime};

    /// What the scripts below share: a decoy to hand out, and a flag their traps set.
    const PRELUDE: &str = "globalThis.decoy = { decoy: true }; globalThis.touched = 0;";

    /// The only line that differs on main's src (see the module doc).
    fn make_core(
        context: &Context,
        server: Object<'_>,
        policy: DowngradePolicy,
    ) -> Result<ServerCore<QuickJs>, SetupError> {
        ServerCore::quickjs(context, server, Config::default().with_downgrade(policy))
    }

    /// A runtime whose context ran `script` first, prepared only after it.
    fn hostile(script: &str) -> (Runtime, Context) {
        let rt = Runtime::new().expect("runtime");
        let context = Context::full(&rt).expect("context");
        context.with(|ctx| {
            let _: () = ctx.eval(PRELUDE).expect("prelude");
            let _: () = ctx.eval(script).expect("the hostile script runs");
        });
        prepare(&rt).expect("prepared");
        (rt, context)
    }

    fn touched(ctx: &Ctx<'_>) -> i32 {
        ctx.globals().get("touched").expect("touched")
    }

    /// Whether the wrapper `core` upgrades to is the object with `marker` set.
    fn upgrades_to_the_wrapper(ctx: &Ctx<'_>, core: &ServerCore<QuickJs>) -> bool {
        let live = core
            .upgrade_in(&mut ctx.clone())
            .expect("a served wrapper upgrades");
        let this = live.object(ctx).expect("restored");
        this.get::<_, Option<String>>("marker").expect("read") == Some("the wrapper".into())
    }

    /// The scenario: core made after `script`, used, stopped under `policy` with a request
    /// out, the request ends, the wrapper is freed (acyclic: at once, by reference count), and
    /// the upgrade must fail. No script code runs from the core's construction on.
    fn freed_wrapper_never_upgrades(script: &str, policy: DowngradePolicy) {
        let (_rt, context) = hostile(script);
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({ marker: 'the wrapper' })").expect("server");
            let core = make_core(&context, server, policy)
                .unwrap_or_else(|error| panic!("no core after {script:?}: {error}"));
            assert!(upgrades_to_the_wrapper(&ctx, &core), "{script}");
            let request = core
                .upgrade_in(&mut ctx.clone())
                .expect("live")
                .admit(|_| Ok(()))
                .expect("admitted");
            let drain = core.stop();
            request.complete();
            assert!(drain.is_complete());
            assert!(!core.wrapper().is_strong(), "{policy:?}: downgraded");
            // The wrapper's last reference is gone: QuickJS freed it.
            let upgraded = core.upgrade_in(&mut ctx.clone()).map(|live| {
                let this = live.object(&ctx).expect("restored");
                this.get::<_, bool>("decoy").unwrap_or(false)
            });
            assert_eq!(
                upgraded, None,
                "{script}: an upgrade after the free (Some(true): the decoy)"
            );
            assert_eq!(touched(&ctx), 0, "{script}: the script's code ran");
            core.ledger().assert_quiescent();
        });
    }

    fn every_policy(script: &str) {
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            freed_wrapper_never_upgrades(script, policy);
        }
    }

    /// The control: an untouched `WeakRef` (passes on main's src too).
    #[test]
    fn untouched_weak_ref() {
        every_policy("");
    }

    /// The round 28 reproduction: a subclass whose `deref` returns a decoy.
    #[test]
    fn a_subclass_whose_deref_returns_a_decoy() {
        every_policy(
            "globalThis.WeakRef = class extends WeakRef { \
                 deref() { touched++; return decoy; } }",
        );
    }

    /// No `WeakRef` at all: main's `ServerCore::quickjs` panicked.
    #[test]
    fn a_deleted_global_weak_ref() {
        every_policy("delete globalThis.WeakRef");
    }

    /// The intrinsic prototype's `deref` replaced (main captured the replacement).
    #[test]
    fn a_replaced_prototype_deref() {
        every_policy("WeakRef.prototype.deref = function () { touched++; return decoy; }");
    }

    /// `deref` deleted from the prototype: main read `undefined` and panicked.
    #[test]
    fn a_deleted_prototype_deref() {
        every_policy("delete WeakRef.prototype.deref");
    }

    /// An accessor in place of `deref`: main ran it (and kept what it returned).
    #[test]
    fn an_accessor_for_prototype_deref() {
        every_policy(
            "Object.defineProperty(WeakRef.prototype, 'deref', { \
                 get() { touched++; return () => decoy; } })",
        );
    }

    /// A getter on `globalThis.WeakRef`: main ran it while making the core.
    #[test]
    fn a_getter_on_the_global() {
        every_policy(
            "const Real = WeakRef; Object.defineProperty(globalThis, 'WeakRef', { \
                 get() { touched++; return Real; } })",
        );
    }

    /// A getter that throws: main's construction panicked.
    #[test]
    fn a_throwing_getter_on_the_global() {
        every_policy(
            "Object.defineProperty(globalThis, 'WeakRef', { \
                 get() { touched++; throw new Error('no WeakRef for you'); } })",
        );
    }

    /// A `Proxy` whose `construct` trap makes a real `WeakRef` of the decoy instead.
    #[test]
    fn a_proxy_constructing_a_weak_ref_to_the_decoy() {
        every_policy(
            "globalThis.WeakRef = new Proxy(WeakRef, { \
                 construct(target) { touched++; return new target(decoy); } })",
        );
    }

    /// A `Proxy` that keeps every target it is given: the script would hold the wrapper (and
    /// keep it alive past the stop, so it is never freed).
    #[test]
    fn a_proxy_keeping_the_target() {
        every_policy(
            "globalThis.kept = []; globalThis.WeakRef = new Proxy(WeakRef, { \
                 construct(target, args) { touched++; kept.push(args[0]); \
                     return Reflect.construct(target, args); } })",
        );
    }

    /// A constructor that is a plain function returning a fake `WeakRef` object.
    #[test]
    fn a_plain_function_returning_a_fake() {
        every_policy(
            "globalThis.WeakRef = function () { touched++; \
                 return { deref() { return decoy; } }; }",
        );
    }

    /// A non-constructor in its place (main panicked: "not a constructor").
    #[test]
    fn a_non_constructor_global() {
        every_policy("globalThis.WeakRef = 42");
    }

    /// The prototype chain under `WeakRef.prototype` swapped, `Symbol.toStringTag` and
    /// `constructor` poisoned: nothing of it is read.
    #[test]
    fn a_poisoned_prototype() {
        every_policy(
            "Object.setPrototypeOf(WeakRef.prototype, new Proxy({}, { \
                 get() { touched++; return () => decoy; } })); \
             Object.defineProperty(WeakRef.prototype, 'constructor', { \
                 get() { touched++; return Object; } })",
        );
    }

    /// A context with no `WeakRef` intrinsic at all (`Context::base`) can hold a wrapper once
    /// the runtime is prepared (main: panicked), and the same script in a second context of
    /// the runtime changes nothing either.
    #[test]
    fn a_context_without_the_intrinsic_and_a_second_hostile_context() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        let base = Context::base(&rt).expect("base context");
        let other = Context::full(&rt).expect("a second context");
        other.with(|ctx| {
            let _: () = ctx
                .eval("globalThis.WeakRef = class extends WeakRef { deref() { return {} } }")
                .expect("script");
        });
        base.with(|ctx| {
            let server = Object::new(ctx.clone()).expect("server");
            server.set("marker", "the wrapper").expect("marker");
            let core = make_core(&base, server, DowngradePolicy::OnStop).expect("core");
            assert!(upgrades_to_the_wrapper(&ctx, &core));
            drop(core.stop());
            assert!(core.upgrade_in(&mut ctx.clone()).is_none());
        });
        other.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").expect("server");
            let core = make_core(&other, server, DowngradePolicy::OnStop).expect("core");
            drop(core.stop());
            assert!(core.upgrade_in(&mut ctx.clone()).is_none());
        });
    }

    /// A runtime that was never prepared is refused with an error naming the fix, whatever
    /// its scripts did; nothing panics, and the wrapper is left alone (no reference kept).
    #[test]
    fn an_unprepared_runtime_is_refused_with_an_error_naming_prepare() {
        let rt = Runtime::new().expect("runtime");
        let context = Context::full(&rt).expect("context");
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("globalThis.server = {}").expect("server");
            let refused = ServerCore::quickjs(&context, server, Config::default());
            let error = refused.expect_err("an unprepared runtime");
            assert!(matches!(error, SetupError::Unprepared), "{error:?}");
            assert!(error.to_string().contains("prepare(&runtime)"), "{error}");
        });
        // Preparing later is enough: the same wrapper then gets its core.
        prepare(&rt).expect("prepared");
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("globalThis.server").expect("server");
            make_core(&context, server, DowngradePolicy::OnDrain).expect("core");
        });
    }

    /// What `prepare` keeps does not keep the runtime alive: the runtime is freed with the
    /// embedder's last handle, prepared or not, with a core made and dropped in between.
    #[test]
    fn preparing_keeps_no_runtime_alive() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        prepare(&rt).expect("prepared twice");
        let freed = rt.weak();
        let context = Context::full(&rt).expect("context");
        let core = context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").expect("server");
            make_core(&context, server, DowngradePolicy::OnDrain).expect("core")
        });
        drop((rt, context, core));
        assert!(
            freed.try_ref().is_none(),
            "the runtime outlived every handle"
        );
    }

    /// The decoy subclass of round 28, for the scenarios below.
    const DECOY_SUBCLASS: &str =
        "globalThis.WeakRef = class extends WeakRef { deref() { touched++; return decoy; } }";

    /// The generic constructor (`ServerCore::new` with a `JsStrong`, what an embedder with its
    /// own engine plumbing calls) makes its weak handle through `QuickJs::downgrade`: the
    /// engine's own `WeakRef` too.
    #[test]
    fn the_generic_constructor_uses_the_engines_own_weak_ref() {
        use reqguard::engines::quickjs::JsStrong;
        let (_rt, context) = hostile(DECOY_SUBCLASS);
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({ marker: 'the wrapper' })").expect("server");
            let strong = JsStrong::new(&context, server).expect("strong");
            let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
            let core = ServerCore::<QuickJs>::new(&mut ctx.clone(), strong, config);
            assert!(upgrades_to_the_wrapper(&ctx, &core));
            drop(core.stop());
            assert!(core.upgrade_in(&mut ctx.clone()).is_none(), "the decoy");
            assert_eq!(touched(&ctx), 0);
        });
    }

    /// The generic constructor in a runtime not prepared cannot return an error (the
    /// `Engine` trait's downgrade is infallible): it panics, naming `prepare`, and never takes
    /// the scripts' `WeakRef`. `ServerCore::quickjs` is the constructor that refuses.
    #[test]
    #[should_panic(expected = "prepare(&runtime)")]
    fn the_generic_constructor_in_an_unprepared_runtime_panics_naming_prepare() {
        use reqguard::engines::quickjs::JsStrong;
        let rt = Runtime::new().expect("runtime");
        let context = Context::full(&rt).expect("context");
        context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").expect("server");
            let strong = JsStrong::new(&context, server).expect("strong");
            ServerCore::<QuickJs>::new(&mut ctx.clone(), strong, Config::default())
        });
    }

    /// `JsWeakRef::new`, the public weak handle on its own, after the decoy subclass.
    #[test]
    fn a_weak_ref_made_directly_is_the_engines_own() {
        use reqguard::engines::quickjs::JsWeakRef;
        let (_rt, context) = hostile(DECOY_SUBCLASS);
        context.with(|ctx| {
            let target: Object<'_> = ctx.eval("({})").expect("target");
            let weak = JsWeakRef::new(&context, &target).expect("weak");
            assert!(weak.upgrade(&ctx).expect("upgrade").is_some());
            drop(target);
            assert!(weak.upgrade(&ctx).expect("upgrade").is_none(), "the decoy");
            assert_eq!(touched(&ctx), 0);
        });
    }

    /// The reference server's accounting (`Guarded`, entering the context for each admission)
    /// refuses a late request `503` once the wrapper is freed, whatever the script did.
    #[cfg(feature = "server")]
    #[test]
    fn the_reference_servers_accounting_refuses_once_the_wrapper_is_freed() {
        use reqguard::http::{Accounting, Guarded};
        use reqguard::Refusal;
        let (_rt, context) = hostile(DECOY_SUBCLASS);
        let core = context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").expect("server");
            make_core(&context, server, DowngradePolicy::OnStop).expect("core")
        });
        let mut guarded = Guarded::new(core, context.clone());
        drop(guarded.admit().expect("served"));
        guarded.stop(std::time::Instant::now()); // the last reference: QuickJS frees it
        assert_eq!(
            guarded.admit().map(drop).unwrap_err(),
            Refusal::WRAPPER_FINALIZED,
            "admitted with the decoy as the wrapper"
        );
        assert_eq!(guarded.report().leaked, 0);
        context.with(|ctx| assert_eq!(touched(&ctx), 0));
    }

    /// QA embed29-1 (found and fixed with QA embed28-2): the core's weak handle kept alive the
    /// context it was made in. On main's src the `WeakRef` was an instance of that context's
    /// `WeakRef` and `deref` one of its functions: both hold their realm, and the realm its
    /// global object and everything the globals reach. A wrapper a script kept in a global
    /// (`globalThis.server = ..`), or the global object itself, was never freed once the
    /// embedder dropped that `Context` and stopped the server: the upgrade still succeeded
    /// after the stop and a collection (main's src: "assertion failed: core.upgrade_in(..)
    /// .is_none()"), and the realm lived as long as the core. Now the `WeakRef` and `deref`
    /// are the adapter's own context's (a realm of base objects and `WeakRef` only).
    ///
    /// The context's global object as the wrapper, its `Context` handle dropped before the
    /// core (the core keeps the runtime), upgraded and read from a second context, stopped and
    /// collected: the upgrade fails, nothing crashes (valgrind: clean), and the runtime goes
    /// with the last handle.
    #[test]
    fn a_global_object_wrapper_outliving_its_context_handle() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        let freed = rt.weak();
        let first = Context::full(&rt).expect("context");
        let core = first.with(|ctx| {
            let _: () = ctx
                .eval("globalThis.marker = 'the wrapper'")
                .expect("marker");
            make_core(&first, ctx.globals(), DowngradePolicy::OnStop).expect("core")
        });
        drop(first);
        let second = Context::full(&rt).expect("second context");
        second.with(|ctx| assert!(upgrades_to_the_wrapper(&ctx, &core)));
        drop(core.stop());
        rt.run_gc();
        second.with(|ctx| assert!(core.upgrade_in(&mut ctx.clone()).is_none()));
        core.ledger().assert_quiescent();
        drop((rt, second, core));
        assert!(
            freed.try_ref().is_none(),
            "the runtime outlived every handle"
        );
    }

    /// Pinned: a `Proxy` as the wrapper (its traps are the script's code: none runs while the
    /// core is made, upgraded or downgraded), and a revoked one: both are objects, both are
    /// held and let go like any other.
    #[test]
    fn a_proxy_wrapper_and_a_revoked_one() {
        let (_rt, context) = hostile(DECOY_SUBCLASS);
        for revoke in [false, true] {
            context.with(|ctx| {
                let script = "(() => { const { proxy, revoke } = Proxy.revocable( \
                     { marker: 'the wrapper' }, \
                     new Proxy({}, { get(t, key) { touched++; return Reflect.get(t, key); } })); \
                     globalThis.revoke = revoke; return proxy; })()";
                let server: Object<'_> = ctx.eval(script).expect("proxy");
                let before = touched(&ctx);
                let core = make_core(&context, server, DowngradePolicy::OnStop).expect("core");
                let live = core.upgrade_in(&mut ctx.clone()).expect("live");
                drop(live);
                if revoke {
                    let _: () = ctx
                        .eval("revoke(); delete globalThis.revoke")
                        .expect("revoke");
                } else {
                    let _: () = ctx.eval("delete globalThis.revoke").expect("drop revoke");
                }
                drop(core.stop());
                assert!(
                    core.upgrade_in(&mut ctx.clone()).is_none(),
                    "revoked {revoke}"
                );
                assert_eq!(touched(&ctx), before, "a trap ran (revoked {revoke})");
            });
        }
    }

    /// Out of memory while the core makes its `WeakRef` (the runtime's memory limit reached):
    /// an error, not a panic (main's src: "the context has the WeakRef intrinsic"), with no
    /// exception left pending; once memory is back, the same wrapper gets its core.
    #[test]
    fn out_of_memory_making_the_weak_ref_is_an_error_not_a_panic() {
        let rt = Runtime::new().expect("runtime");
        prepare(&rt).expect("prepared");
        rt.set_gc_threshold(usize::MAX);
        let context = Context::full(&rt).expect("context");
        context.with(|ctx| {
            let _: () = ctx
                .eval("globalThis.server = { marker: 'the wrapper' }")
                .expect("server");
        });
        let used = usize::try_from(rt.memory_usage().malloc_size).expect("size");
        rt.set_memory_limit(used); // not one byte more: the `WeakRef` cannot be allocated
        let refused = context.with(|ctx| {
            let server: Object<'_> = ctx.globals().get("server").expect("server");
            let refused = make_core(&context, server, DowngradePolicy::OnDrain).map(drop);
            (refused, ctx.has_exception())
        });
        rt.set_memory_limit(usize::MAX);
        assert!(
            matches!(refused.0, Err(SetupError::Engine(_))),
            "{:?}",
            refused.0
        );
        assert!(!refused.1, "an exception left pending");
        context.with(|ctx| {
            let server: Object<'_> = ctx.globals().get("server").expect("server");
            let core = make_core(&context, server, DowngradePolicy::OnDrain).expect("core");
            assert!(upgrades_to_the_wrapper(&ctx, &core));
        });
    }

    /// QA embed29-1, the common shape: a script keeps its server in a global of its context
    /// (`globalThis.server`); at shutdown the embedder drops that context and stops the
    /// server: once collected, the wrapper is gone (main's src: it was kept alive by the core's
    /// own weak handle, through the realm).
    #[test]
    fn a_wrapper_kept_in_its_contexts_globals_goes_with_that_context() {
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            let rt = Runtime::new().expect("runtime");
            prepare(&rt).expect("prepared");
            let script = Context::full(&rt).expect("the script's context");
            let core = script.with(|ctx| {
                let server: Object<'_> = ctx
                    .eval("globalThis.server = { marker: 'the wrapper' }")
                    .expect("server");
                make_core(&script, server, policy).expect("core")
            });
            drop(script); // the embedder is done with the script's context
            let drain = core.stop();
            assert!(drain.is_complete());
            rt.run_gc(); // the realm is a cycle (its global, its functions)
            let other = Context::full(&rt).expect("another context");
            other.with(|ctx| {
                assert!(
                    core.upgrade_in(&mut ctx.clone()).is_none(),
                    "{policy:?}: the wrapper outlived its context"
                );
            });
            core.ledger().assert_quiescent();
        }
    }
}
