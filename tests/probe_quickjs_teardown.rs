//! Hostile-embedder probes of hole 2 with an engine whose handles must not outlive their
//! runtime (QuickJS: a `Persistent` alive at `JS_FreeRuntime` aborts the process). Issue 9:
//! "make the safe order the only one, or refuse clearly, never finalize mid-request".
//!
//! Each scenario runs in a child process (this test binary, re-run with one scenario named in
//! `PROBE_QJS_CHILD`), because the failure mode is a process abort.
#![cfg(feature = "quickjs")]

use std::process::Command;

use reqguard::engines::QuickJs;
use reqguard::{Admitted, Config, ServerCore};
use rquickjs::{Context, Object, Runtime};

const CHILD: &str = "PROBE_QJS_CHILD";

fn runtime() -> (Runtime, Context) {
    let rt = Runtime::new().expect("runtime");
    let context = Context::full(&rt).expect("context");
    (rt, context)
}

fn core_and_bundle(context: &Context) -> (ServerCore<QuickJs>, Admitted<(), ()>) {
    context.with(|ctx| {
        let server: Object<'_> = ctx.eval("({ served: 0 })").expect("object");
        let core = ServerCore::quickjs(&ctx, server, Config::default());
        let bundle = core
            .upgrade_in(&mut ctx.clone())
            .expect("strong")
            .admit(|_| Ok(()))
            .expect("admitted");
        (core, bundle)
    })
}

/// The scenarios, each ending with the runtime dropped; the child prints "done" if it lives.
fn run_child(name: &str) {
    match name {
        // The documented order: the core and every guard, then the context, then the runtime.
        "documented order" => {
            let (rt, context) = runtime();
            let (core, bundle) = core_and_bundle(&context);
            let drain = core.stop();
            drop(core);
            bundle.complete();
            assert!(drain.is_complete());
            drop(drain);
            drop(context);
            drop(rt);
        }
        // A leak the ledger is documented to catch (mem::forget of a bundle), then the
        // documented teardown of everything the embedder still owns.
        "forgotten bundle" => {
            let (rt, context) = runtime();
            let (core, bundle) = core_and_bundle(&context);
            Admitted::forget(bundle);
            let drain = core.stop();
            assert!(!drain.is_complete());
            assert_eq!(core.ledger().outcomes().total(), 0);
            drop(drain);
            drop(core);
            drop(context);
            drop(rt);
        }
        // The workaround docs/engines.md gives until E is fixed: check the drain before tearing
        // the runtime down, and leak the runtime (no JS_FreeRuntime) when a request never ended.
        "forgotten bundle, runtime leaked" => {
            let (rt, context) = runtime();
            let (core, bundle) = core_and_bundle(&context);
            Admitted::forget(bundle);
            let drain = core.stop();
            let drained = drain.is_complete();
            drop(drain);
            drop(core);
            drop(context);
            if drained {
                drop(rt);
            } else {
                std::mem::forget(rt);
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("done");
}

/// Runs `name` in a child process; its exit status and output.
fn in_child(name: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .expect("child runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// The child entry point: does nothing unless a parent named a scenario.
#[test]
fn child() {
    if let Ok(name) = std::env::var(CHILD) {
        run_child(&name);
    }
}

#[test]
fn the_documented_teardown_order_is_clean() {
    let (code, out) = in_child("documented order");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("done"), "{out}");
}

#[test]
fn the_documented_workaround_for_a_request_that_never_ends() {
    let (code, out) = in_child("forgotten bundle, runtime leaked");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("done"), "{out}");
}

/// A forgotten guard is documented as a leak the ledger reports. With `OnDrain` (the default)
/// the never-completing drain keeps the wrapper's strong `Persistent`, so tearing the runtime
/// down afterwards aborts the process instead of leaking quietly.
#[test]
#[ignore = "bug: with QuickJs and OnDrain, a forgotten bundle (mem::forget, documented as a leak the ledger reports) keeps the drain's strong Persistent alive, so dropping the Runtime afterwards aborts the process (JS_FreeRuntime assertion)"]
fn a_forgotten_bundle_does_not_abort_the_runtime_teardown() {
    let (code, out) = in_child("forgotten bundle");
    assert_eq!(code, Some(0), "the child died: {out}");
    assert!(out.contains("done"), "{out}");
}
