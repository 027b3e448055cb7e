//! The PR's scenario against V8's real collector (feature `v8-live-tests`).
//!
//! These tests need a linked V8, which the development machine and CI do not have (the `v8`
//! crate downloads a prebuilt archive). CI type-checks this file with
//! `DOCS_RS=1 cargo clippy --features v8-live-tests --test engine_v8 -- -D warnings`; run it
//! with `cargo test --features v8-live-tests --test engine_v8` where V8 links.
//!
//! Collection: `low_memory_notification()` is a full, non-incremental GC. Guaranteed
//! finalizers run as second-pass callbacks, which V8 may post to the platform, so the tests pump
//! the platform's message loop before looking. The core is dropped before its isolate.
#![cfg(feature = "v8-live-tests")]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::OnceLock;

use reqguard::engines::v8::on_finalize;
use reqguard::engines::V8;
use reqguard::{Config, DowngradePolicy, GuardKind, Refusal, ServerCore};

fn platform() -> &'static v8::SharedRef<v8::Platform> {
    static PLATFORM: OnceLock<v8::SharedRef<v8::Platform>> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let platform = v8::new_default_platform(0, false).make_shared();
        v8::V8::initialize_platform(platform.clone());
        v8::V8::initialize();
        platform
    })
}

/// A full GC, then the finalizers V8 posted to the platform.
fn collect(isolate: &mut v8::Isolate) {
    isolate.low_memory_notification();
    while v8::Platform::pump_message_loop(platform(), isolate, false) {}
}

/// An isolate, a context kept as a `Global`, and a server core whose wrapper is an object with a
/// `served` counter. The object's only strong reference is the core's `Global`.
fn server(
    isolate: &mut v8::Isolate,
    policy: DowngradePolicy,
) -> (ServerCore<V8>, v8::Global<v8::Context>) {
    v8::scope!(let handle_scope, isolate);
    let context = v8::Context::new(handle_scope, Default::default());
    let scope = &mut v8::ContextScope::new(handle_scope, context);
    let server = v8::Object::new(scope);
    let key = v8::String::new(scope, "served").unwrap();
    let zero = v8::Integer::new(scope, 0);
    server.set(scope, key.into(), zero.into()).unwrap();
    let wrapper = v8::Global::new(scope, server);
    let core = ServerCore::<V8>::new(scope, wrapper, Config::default().with_downgrade(policy));
    (core, v8::Global::new(scope, context))
}

/// One request: upgrade first (503 if that fails), admit, then touch the wrapper through its
/// `Local`. Returns the request's guards, which stay out while the request is in flight.
fn on_request(
    scope: &mut v8::PinScope<'_, '_>,
    core: &ServerCore<V8>,
) -> Result<reqguard::Admitted<(), ()>, Refusal> {
    let live = core.upgrade_in(scope).ok_or(Refusal::WRAPPER_FINALIZED)?;
    let bundle = live.admit(|_| Ok(()))?;
    let this = live.local(scope);
    let key = v8::String::new(scope, "served").unwrap();
    let served = this
        .get(scope, key.into())
        .unwrap()
        .int32_value(scope)
        .unwrap();
    let next = v8::Integer::new(scope, served + 1);
    this.set(scope, key.into(), next.into()).unwrap();
    Ok(bundle)
}

fn alive(core: &ServerCore<V8>, isolate: &mut v8::Isolate) -> bool {
    core.upgrade_in(isolate).is_some()
}

#[test]
fn regression_stop_collect_then_a_kept_alive_request_gets_503() {
    platform();
    let isolate = &mut v8::Isolate::new(v8::CreateParams::default());
    let (core, context) = server(isolate, DowngradePolicy::OnStop);
    let freed = Rc::new(Cell::new(false));
    let flag = Rc::clone(&freed);
    let finalizer = on_finalize(core.wrapper().weak(), move || flag.set(true));

    let in_flight = {
        v8::scope_with_context!(let scope, isolate, &context);
        drop(on_request(scope, &core).unwrap());
        on_request(scope, &core).unwrap()
    };
    let drain = core.stop();
    assert!(!core.wrapper().is_strong());
    collect(isolate);
    assert!(finalizer.is_collected());
    assert!(freed.get(), "the guaranteed finalizer ran after collection");

    let minted: Vec<u64> = GuardKind::ALL
        .iter()
        .map(|k| core.ledger().minted(*k))
        .collect();
    let late = {
        v8::scope_with_context!(let scope, isolate, &context);
        on_request(scope, &core).map(drop)
    };
    assert_eq!(late, Err(Refusal::WRAPPER_FINALIZED));
    assert_eq!(late.unwrap_err().status(), 503);
    let after: Vec<u64> = GuardKind::ALL
        .iter()
        .map(|k| core.ledger().minted(*k))
        .collect();
    assert_eq!(minted, after, "the refusal minted nothing");

    assert!(!drain.is_complete());
    drop(in_flight);
    assert!(drain.is_complete());
    core.ledger().assert_quiescent();
    drop(finalizer);
    drop(core);
}

#[test]
fn on_drain_keeps_the_wrapper_through_gc_until_the_drain() {
    platform();
    let isolate = &mut v8::Isolate::new(v8::CreateParams::default());
    let (core, context) = server(isolate, DowngradePolicy::OnDrain);
    let bundle = {
        v8::scope_with_context!(let scope, isolate, &context);
        on_request(scope, &core).unwrap()
    };
    let drain = core.stop();
    collect(isolate);
    assert!(core.wrapper().is_strong());
    assert!(alive(&core, isolate));
    drop(bundle);
    assert!(drain.is_complete());
    assert!(!core.wrapper().is_strong());
    collect(isolate);
    assert!(!alive(&core, isolate));
    core.ledger().assert_quiescent();
    drop(core);
}

#[test]
fn an_upgraded_global_keeps_the_wrapper_alive_across_gc() {
    platform();
    let isolate = &mut v8::Isolate::new(v8::CreateParams::default());
    let (core, _context) = server(isolate, DowngradePolicy::OnStop);
    let _drain = core.stop();
    let live = core.upgrade_in(isolate).expect("not collected yet");
    collect(isolate);
    drop(live);
    assert!(
        alive(&core, isolate),
        "the proof's Global rooted it through the GC"
    );
    collect(isolate);
    assert!(!alive(&core, isolate));
    drop(core);
}

/// QA embed30-2: a finalizer that panics, and another whose captures panic in `Drop` when it is
/// cancelled unrun. V8 runs a guaranteed finalizer from a weak callback, an `extern "C"`
/// function: before round 30 the panic aborted the process (the test binary died); now each is
/// caught, the collection and the server go on. Never run here (no V8 links on this machine).
#[test]
fn a_panicking_finalizer_is_caught_not_an_abort() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("a cancelled finalizer's capture panics in drop (expected)");
            }
        }
    }
    platform();
    let isolate = &mut v8::Isolate::new(v8::CreateParams::default());
    let (core, _context) = server(isolate, DowngradePolicy::OnStop);
    let ran = Rc::new(Cell::new(false));
    let flag = Rc::clone(&ran);
    let finalizer = on_finalize(core.wrapper().weak(), move || {
        flag.set(true);
        panic!("the finalizer panics (expected)");
    });
    let capture = PanicsOnDrop;
    let cancelled = on_finalize(core.wrapper().weak(), move || drop(capture));
    drop(cancelled); // dropped unrun: its capture's panic is caught
    let _drain = core.stop();
    collect(isolate);
    assert!(finalizer.is_collected());
    assert!(
        ran.get(),
        "the finalizer ran, and its panic went no further"
    );
    assert!(core.upgrade_in(isolate).is_none());
    core.ledger().assert_quiescent();
    drop(finalizer);
    drop(core);
}
