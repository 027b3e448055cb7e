//! The PR's scenario against QuickJS's real collector (feature `quickjs`).
//!
//! The server's wrapper is a JS object in an rquickjs runtime; the core holds it through
//! `engines::QuickJs` (a `Persistent` strong handle and a JS `WeakRef`, each keeping the runtime
//! alive). Nothing here is simulated: QuickJS frees acyclic objects by reference count and
//! cycles in `run_gc`.
//!
//! Drop order: the core's handles keep the runtime alive, so they may drop in any order; the
//! test's own bare `Persistent`s (a `FinalizationRegistry`) do not, so the `Runtime` is the first
//! local and drops last (a `Persistent` alive at `JS_FreeRuntime` aborts the process). Automatic cycle collection is turned off (`set_gc_threshold(usize::MAX)`)
//! so a cycle dies exactly at the `run_gc` the test names.
#![cfg(feature = "quickjs")]

use std::cell::RefCell;
use std::rc::Rc;

use reqguard::engines::QuickJs;
use reqguard::{Admitted, Config, DowngradePolicy, GuardKind, Refusal, ServerCore};
use rquickjs::function::{Constructor, This};
use rquickjs::{Context, Ctx, Function, Object, Persistent, Runtime};

/// A runtime whose cycle collector runs only when asked.
fn runtime() -> (Runtime, Context) {
    let rt = Runtime::new().expect("runtime");
    rt.set_gc_threshold(usize::MAX);
    reqguard::engines::quickjs::prepare(&rt).expect("prepared");
    let context = Context::full(&rt).expect("context");
    (rt, context)
}

/// The server's wrapper: an object with a `fetch` handler, in a cycle (`server.self = server`)
/// when `cyclic`, so only the collector can free it.
fn server_object<'js>(ctx: &Ctx<'js>, cyclic: bool) -> Object<'js> {
    let server: Object<'js> = ctx
        .eval("({ served: 0, fetch(path) { this.served += 1; return 'hello ' + path; } })")
        .expect("server object");
    if cyclic {
        server.set("self", server.clone()).expect("cycle");
    }
    server
}

fn core_in(context: &Context, cyclic: bool, policy: DowngradePolicy) -> ServerCore<QuickJs> {
    context.with(|ctx| {
        ServerCore::quickjs(
            context,
            server_object(&ctx, cyclic),
            Config::default().with_downgrade(policy),
        )
        .expect("core")
    })
}

/// One request, in the order the PR got wrong: upgrade first, 503 if that fails, only then
/// admit, then call the JS handler with the wrapper as `this`. Returns the body and the
/// request's guards, which the caller keeps while the request is in flight.
fn on_request(
    core: &ServerCore<QuickJs>,
    ctx: &Ctx<'_>,
    path: &str,
) -> Result<(String, Admitted<(), String>), Refusal> {
    let live = core
        .upgrade_in(&mut ctx.clone())
        .ok_or(Refusal::WRAPPER_FINALIZED)?;
    let bundle = live.admit(|_| Ok(path.to_owned()))?;
    let this = live.object(ctx).expect("same runtime");
    let fetch: Function<'_> = this.get("fetch").expect("fetch");
    let body: String = fetch
        .call((
            This(this),
            bundle.request().expect("not handed off").as_str(),
        ))
        .expect("handler");
    Ok((body, bundle))
}

/// Whether the wrapper can still be upgraded (the upgraded handle is dropped at once).
fn alive(core: &ServerCore<QuickJs>, context: &Context) -> bool {
    context.with(|ctx| core.upgrade_in(&mut ctx.clone()).is_some())
}

/// A `FinalizationRegistry` watching `target`; the callback pushes the held value to `log`.
fn watch<'js>(
    ctx: &Ctx<'js>,
    target: &Object<'js>,
    held: &str,
    log: &Rc<RefCell<Vec<String>>>,
) -> Persistent<Object<'static>> {
    let log = Rc::clone(log);
    let callback = Function::new(ctx.clone(), move |held: String| log.borrow_mut().push(held))
        .expect("callback");
    let ctor: Constructor<'js> = ctx.globals().get("FinalizationRegistry").expect("ctor");
    let registry: Object<'js> = ctor.construct((callback,)).expect("registry");
    let register: Function<'js> = registry.get("register").expect("register");
    register
        .call::<_, ()>((This(registry.clone()), target.clone(), held))
        .expect("register call");
    Persistent::save(ctx, registry) // the registry must outlive the target, or no callback
}

fn pump_jobs(rt: &Runtime) -> usize {
    let mut ran = 0;
    while rt.execute_pending_job().expect("a job threw") {
        ran += 1;
    }
    ran
}

#[test]
fn acyclic_wrapper_is_freed_by_refcount_at_the_downgrade() {
    let (_rt, context) = runtime();
    let core = core_in(&context, false, DowngradePolicy::OnStop);
    assert!(alive(&core, &context));
    let drain = core.stop(); // drops the last strong reference, outside any `with`
    assert!(!core.wrapper().is_strong());
    assert!(!alive(&core, &context), "freed at once, no GC needed");
    assert!(drain.is_complete());
    core.ledger().assert_quiescent();
}

#[test]
fn cyclic_wrapper_is_freed_only_by_run_gc() {
    let (rt, context) = runtime();
    let core = core_in(&context, true, DowngradePolicy::OnStop);
    let _drain = core.stop();
    assert!(!core.wrapper().is_strong());
    assert!(
        alive(&core, &context),
        "the cycle keeps it alive until the collector runs"
    );
    assert!(
        alive(&core, &context),
        "and an upgrade that was dropped did not root it"
    );
    rt.run_gc();
    assert!(!alive(&core, &context));
}

#[test]
fn an_upgraded_proof_keeps_the_wrapper_alive_across_run_gc() {
    let (rt, context) = runtime();
    let core = core_in(&context, true, DowngradePolicy::OnStop);
    let _drain = core.stop();
    context.with(|ctx| {
        let live = core
            .upgrade_in(&mut ctx.clone())
            .expect("not collected yet");
        ctx.run_gc(); // inside `with`: the Ctx variant (Runtime::run_gc would panic here)
        let this = live.object(&ctx).unwrap();
        assert_eq!(
            this.get::<_, i32>("served").unwrap(),
            0,
            "still a live object"
        );
        drop(this);
        drop(live);
        ctx.run_gc();
    });
    assert!(!alive(&core, &context));
    assert!(!rt.is_job_pending());
}

/// The PR's regression: requests in flight and a kept-alive connection; `stop()` downgrades the
/// wrapper, the collector frees it, and the next request on the kept-alive connection must get
/// a 503 that takes nothing, while the in-flight requests finish and the drain completes.
#[test]
fn regression_stop_collect_then_a_kept_alive_request_gets_503() {
    let (rt, context) = runtime();
    let core = core_in(&context, true, DowngradePolicy::OnStop);
    let finalized = Rc::new(RefCell::new(Vec::new()));
    let registry = context.with(|ctx| {
        let live = core.upgrade_in(&mut ctx.clone()).unwrap();
        watch(&ctx, &live.object(&ctx).unwrap(), "server-1", &finalized)
    });

    // Serve: three requests, two still in flight.
    let in_flight = context.with(|ctx| {
        let (body, done) = on_request(&core, &ctx, "/a").unwrap();
        assert_eq!(body, "hello /a");
        drop(done);
        let a = on_request(&core, &ctx, "/b").unwrap();
        let b = on_request(&core, &ctx, "/c").unwrap();
        assert_eq!((a.0.as_str(), b.0.as_str()), ("hello /b", "hello /c"));
        vec![a.1, b.1]
    });
    assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 2);

    // Stop: the wrapper is downgraded now; the collector frees it.
    let drain = core.stop();
    assert!(!drain.is_complete());
    assert_eq!(drain.outstanding(), 2);
    rt.run_gc();
    assert!(
        finalized.borrow().is_empty(),
        "FinalizationRegistry callbacks are jobs"
    );
    assert!(rt.is_job_pending());
    assert_eq!(pump_jobs(&rt), 1);
    assert_eq!(*finalized.borrow(), ["server-1"]);

    // The kept-alive connection's next request: 503, and nothing was taken.
    let minted_before: Vec<u64> = GuardKind::ALL
        .iter()
        .map(|k| core.ledger().minted(*k))
        .collect();
    let refused = context.with(|ctx| on_request(&core, &ctx, "/late").map(|(body, _)| body));
    let refusal = refused.unwrap_err();
    assert_eq!(refusal, Refusal::WRAPPER_FINALIZED);
    assert_eq!(refusal.status(), 503);
    let minted_after: Vec<u64> = GuardKind::ALL
        .iter()
        .map(|k| core.ledger().minted(*k))
        .collect();
    assert_eq!(minted_before, minted_after, "the refusal minted nothing");
    assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 2);

    // The in-flight requests finish; the drain completes and nothing leaks.
    drop(in_flight);
    assert!(drain.is_complete());
    assert_eq!(drain.outstanding(), 0);
    core.ledger().assert_quiescent();
    drop(registry);
}

/// With `OnDrain` the wrapper stays strong while a ticket is out, so the collector cannot free
/// it; once the drain completes it is downgraded and collectable.
#[test]
fn on_drain_policy_keeps_the_wrapper_through_run_gc_until_the_drain() {
    let (rt, context) = runtime();
    let core = core_in(&context, true, DowngradePolicy::OnDrain);
    let finalized = Rc::new(RefCell::new(Vec::new()));
    let registry = context.with(|ctx| {
        let live = core.upgrade_in(&mut ctx.clone()).unwrap();
        watch(&ctx, &live.object(&ctx).unwrap(), "server-2", &finalized)
    });
    let (_, bundle) = context
        .with(|ctx| on_request(&core, &ctx, "/slow"))
        .unwrap();

    let drain = core.stop();
    rt.run_gc();
    assert_eq!(pump_jobs(&rt), 0);
    assert!(core.wrapper().is_strong(), "a ticket is out: still strong");
    assert!(alive(&core, &context), "run_gc could not free it");
    assert!(finalized.borrow().is_empty());
    // Admission is closed even though the wrapper upgrades.
    let refusal = context
        .with(|ctx| on_request(&core, &ctx, "/new").map(|_| ()))
        .unwrap_err();
    assert_eq!(refusal.status(), 503);

    drop(bundle); // the last ticket: the drain completes and downgrades the wrapper
    assert!(drain.is_complete());
    assert!(!core.wrapper().is_strong());
    assert!(
        alive(&core, &context),
        "a cycle: downgraded but not yet collected"
    );
    rt.run_gc();
    assert!(!alive(&core, &context));
    assert_eq!(pump_jobs(&rt), 1);
    assert_eq!(*finalized.borrow(), ["server-2"]);
    core.ledger().assert_quiescent();
    drop(registry);
}

/// The acyclic path of the registry: freed by refcount at the downgrade, callback queued as a
/// job with no collection at all.
#[test]
fn finalization_registry_fires_after_refcount_free_without_gc() {
    let (rt, context) = runtime();
    let core = core_in(&context, false, DowngradePolicy::OnStop);
    let finalized = Rc::new(RefCell::new(Vec::new()));
    let registry = context.with(|ctx| {
        let live = core.upgrade_in(&mut ctx.clone()).unwrap();
        watch(&ctx, &live.object(&ctx).unwrap(), "server-3", &finalized)
    });
    let _drain = core.stop();
    assert!(finalized.borrow().is_empty());
    assert!(rt.is_job_pending(), "queued by the refcount free");
    context.with(|ctx| while ctx.execute_pending_job() {}); // the Ctx variant inside `with`
    assert_eq!(*finalized.borrow(), ["server-3"]);
    assert!(!alive(&core, &context));
    drop(registry);
}

/// The downgrade may run inside `with` (a guard dropped in a JS callback completes the drain):
/// dropping the strong `Persistent` there is fine too.
#[test]
fn downgrade_inside_with_during_a_drain() {
    let (rt, context) = runtime();
    let core = core_in(&context, true, DowngradePolicy::OnDrain);
    let (_, bundle) = context.with(|ctx| on_request(&core, &ctx, "/x")).unwrap();
    let drain = core.stop();
    context.with(|ctx| {
        drop(bundle); // completes the drain, drops the strong handle inside `with`
        assert!(drain.is_complete());
        ctx.run_gc();
        assert!(core.upgrade_in(&mut ctx.clone()).is_none());
    });
    assert!(!rt.is_job_pending());
    core.ledger().assert_quiescent();
}

/// A wrapper the script still references is not collected: stop + run_gc does not break a
/// server whose object JS keeps alive (the weak handle just keeps upgrading).
#[test]
fn a_wrapper_js_still_references_survives_run_gc() {
    let (rt, context) = runtime();
    let core = context.with(|ctx| {
        let server = server_object(&ctx, true);
        ctx.globals().set("server", server.clone()).unwrap();
        ServerCore::<QuickJs>::quickjs(
            &context,
            server,
            Config::default().with_downgrade(DowngradePolicy::OnStop),
        )
        .expect("core")
    });
    let _drain = core.stop();
    rt.run_gc();
    assert!(alive(&core, &context));
    context.with(|ctx| ctx.globals().remove("server").unwrap());
    rt.run_gc();
    assert!(!alive(&core, &context));
}
