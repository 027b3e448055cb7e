//! Hostile-embedder probes of hole 2 with an engine whose handles must not outlive their
//! runtime (QuickJS: a `Persistent` alive at `JS_FreeRuntime` aborts the process). Issue 9:
//! "make the safe order the only one, or refuse clearly, never finalize mid-request".
//!
//! The rule that answers it: every handle the core holds keeps the runtime alive
//! (`engines::quickjs::JsStrong`, `JsWeakRef`), so every drop order is safe and a leaked guard
//! leaks the runtime (the ledger reports the guard) instead of aborting.
//!
//! Each scenario runs in a child process (this test binary, re-run with one scenario named in
//! `PROBE_QJS_CHILD`), because the failure mode is a process abort.
#![cfg(feature = "quickjs")]

#[path = "util/child.rs"]
mod child;

use reqguard::engines::QuickJs;
use reqguard::{Admitted, Config, GuardKind, ServerCore};
use rquickjs::{Context, Object, Runtime};

const CHILD: &str = "PROBE_QJS_CHILD";

fn runtime() -> (Runtime, Context) {
    let rt = Runtime::new().expect("runtime");
    reqguard::engines::quickjs::prepare(&rt).expect("prepared");
    let context = Context::full(&rt).expect("context");
    (rt, context)
}

fn core_and_bundle(context: &Context) -> (ServerCore<QuickJs>, Admitted<(), ()>) {
    context.with(|ctx| {
        let server: Object<'_> = ctx.eval("({ served: 0 })").expect("object");
        let core = ServerCore::quickjs(context, server, Config::default()).expect("core");
        let bundle = core
            .upgrade_in(&mut ctx.clone())
            .expect("strong")
            .admit(|_| Ok(()))
            .expect("admitted");
        (core, bundle)
    })
}

/// The scenarios, each ending with the embedder's runtime dropped; the child prints "done" if
/// it lives.
fn run_child(name: &str) {
    match name {
        // The order the docs used to require: the core and every guard, then the context, then
        // the runtime. The runtime is freed at its drop.
        "core first" => {
            let (rt, context) = runtime();
            let freed = rt.weak();
            let (core, bundle) = core_and_bundle(&context);
            let drain = core.stop();
            drop(core);
            bundle.complete();
            assert!(drain.is_complete());
            drop(drain);
            drop(context);
            drop(rt);
            assert!(freed.try_ref().is_none(), "the runtime was freed");
        }
        // The reverse: the embedder's runtime and context go while a request is still out
        // (OnDrain keeps the wrapper strong); the core keeps the runtime until it is dropped.
        "runtime first" => {
            let (rt, context) = runtime();
            let freed = rt.weak();
            let (core, bundle) = core_and_bundle(&context);
            let drain = core.stop();
            drop(rt);
            drop(context);
            assert!(freed.try_ref().is_some(), "the core keeps the runtime");
            bundle.complete(); // the drain completes: the wrapper is downgraded here
            assert!(drain.is_complete());
            core.ledger().assert_quiescent();
            drop(core);
            assert!(
                freed.try_ref().is_none(),
                "freed with the core, the last handle"
            );
            drop(drain);
        }
        // A leak the ledger is documented to catch (mem::forget of a bundle), then the
        // teardown of everything the embedder still owns, in the usual order.
        "forgotten bundle" => {
            let (rt, context) = runtime();
            let freed = rt.weak();
            let (core, bundle) = core_and_bundle(&context);
            Admitted::forget(bundle);
            let drain = core.stop();
            assert!(!drain.is_complete());
            assert_eq!(core.ledger().outcomes().total(), 0);
            assert_eq!(
                core.ledger().outstanding(GuardKind::Ticket),
                1,
                "the leak is reported"
            );
            assert!(!core.ledger().is_quiescent());
            drop(drain);
            drop(core);
            drop(context);
            drop(rt);
            assert!(
                freed.try_ref().is_some(),
                "the leaked guard leaks the runtime"
            );
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("done");
}

/// Runs `name` in a child process; its exit status and output.
fn in_child(name: &str) -> (Option<i32>, String) {
    child::output_in_child(CHILD, name, "child")
}

/// The child entry point: does nothing unless a parent named a scenario.
#[test]
fn child() {
    if let Ok(name) = std::env::var(CHILD) {
        run_child(&name);
    }
}

#[test]
fn the_core_first_teardown_is_clean_and_frees_the_runtime() {
    let (code, out) = in_child("core first");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("done"), "{out}");
}

/// Before the fix this dropped the core's `Persistent`s after `JS_FreeRuntime` (a use after
/// free, or an abort when the drain still held the strong wrapper).
#[test]
fn the_runtime_may_be_dropped_before_the_core_and_its_requests() {
    let (code, out) = in_child("runtime first");
    assert_eq!(code, Some(0), "the child died: {out}");
    assert!(out.contains("done"), "{out}");
}

/// A forgotten guard is documented as a leak the ledger reports. With `OnDrain` (the default)
/// the never-completing drain keeps the wrapper's strong handle, and so the runtime: tearing
/// down afterwards leaks the runtime (reported by the ledger) instead of aborting the process.
#[test]
fn a_forgotten_bundle_does_not_abort_the_runtime_teardown() {
    let (code, out) = in_child("forgotten bundle");
    assert_eq!(code, Some(0), "the child died: {out}");
    assert!(out.contains("done"), "{out}");
}
