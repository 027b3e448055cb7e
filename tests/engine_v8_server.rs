//! The PR's regression through the reference server with the wrapper in a live V8 isolate
//! (features `v8-live-tests` and `server`). Type-checked in CI, never run there: V8 cannot be
//! linked (see `docs/engines.md`). Run with
//! `cargo test --features v8-live-tests,server --test engine_v8_server` where rusty_v8 links.
//!
//! The isolate lives on the server thread. The stop hook must collect, so the isolate is shared
//! between the scope provider and the hook through an `Rc<RefCell<..>>` (the hook gets no
//! arguments; `v8::OwnedIsolate`'s own `ScopeProvider` impl suits servers that need no hook).
//! `Guarded` drops its core before its provider and hooks, so the core's handles go before the
//! isolate.
#![cfg(all(feature = "v8-live-tests", feature = "server"))]

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use reqguard::engines::V8;
use reqguard::http::{demo_routes, Guarded, Limits, ScopeProvider, ServerBuilder};
use reqguard::{Config, DowngradePolicy, ServerCore};
use util::Client;

fn platform() -> &'static v8::SharedRef<v8::Platform> {
    static PLATFORM: OnceLock<v8::SharedRef<v8::Platform>> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let platform = v8::new_default_platform(0, false).make_shared();
        v8::V8::initialize_platform(platform.clone());
        v8::V8::initialize();
        platform
    })
}

/// The isolate, shared by the scope provider and the stop hook.
struct SharedIsolate(Rc<RefCell<v8::OwnedIsolate>>);

impl ScopeProvider<V8> for SharedIsolate {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut v8::Isolate) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

#[test]
fn kept_alive_request_after_stop_and_gc_gets_503() {
    let accounting = || {
        platform();
        let isolate = Rc::new(RefCell::new(v8::Isolate::new(v8::CreateParams::default())));
        let core = {
            let mut guard = isolate.borrow_mut();
            let isolate: &mut v8::Isolate = &mut guard;
            v8::scope!(let handle_scope, isolate);
            let context = v8::Context::new(handle_scope, Default::default());
            let scope = &mut v8::ContextScope::new(handle_scope, context);
            let server = v8::Object::new(scope);
            let wrapper = v8::Global::new(scope, server);
            let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
            ServerCore::<V8>::new(scope, wrapper, config)
        };
        let for_gc = Rc::clone(&isolate);
        Guarded::new(core, SharedIsolate(isolate)).after_stop(move || {
            let mut isolate = for_gc.borrow_mut();
            isolate.low_memory_notification();
            while v8::Platform::pump_message_loop(platform(), &isolate, false) {}
        })
    };
    let limits = Limits::default()
        .with_stop_linger(Duration::from_secs(20))
        .with_drain_timeout(Duration::from_secs(20));
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(accounting, demo_routes)
        .unwrap();

    let mut kept = Client::connect(running.addr());
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.text()), (200, "hello"));
    assert!(running.stop_handle().stop_and_wait(Duration::from_secs(10)));

    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (503, true));
    drop(kept);
    let report = running.join().unwrap();
    assert_eq!(report.stats.refused_finalized, 1, "{report}");
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    assert!(report.drain_time.is_some());
}
