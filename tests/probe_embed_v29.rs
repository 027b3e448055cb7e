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
/// On main's src (2026-12-03, 05edc2f) these fail: `make_core` is the only difference (main has
/// no `prepare` and an infallible `ServerCore::quickjs`; with those two lines adapted, every
/// scenario but the untouched control failed there: the decoy was returned after the free, the
/// construction panicked, or the script's trap ran).
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
}
