//! The v8 adapter (feature `v8`): the wrapper is a `v8::Object` in a rusty_v8 (152.x) isolate.
//!
//! - `Strong` = [`v8::Global<v8::Object>`](v8::Global): keeps the wrapper alive; dropping it
//!   needs no scope (it knows its isolate), which is what the core's downgrade relies on.
//! - `Weak` = [`v8::Weak<v8::Object>`](v8::Weak): upgraded with [`v8::Weak::to_global`].
//! - `Scope<'s>` = [`v8::Isolate`]: every rusty_v8 scope (`v8::scope!`'s `PinScope`, a
//!   `ContextScope`, an `OwnedIsolate`) derefs to it, so `core.upgrade_in(scope)` works with
//!   whatever scope the callback has.
//!
//! # Threads
//!
//! **A `v8::Weak` is not `Send`** (nor `Sync`): a server core backed by v8 stays on its
//! isolate's thread, as every reqguard guard does anyway. A `v8::Global` is `Send` and `Sync`,
//! but cloning it off the isolate's home thread panics and dropping it there is deferred to the
//! next lock or teardown. Weak handles (and so this adapter) panic on shared (`Locker`)
//! isolates: rusty_v8 does not support weak handles there.
//!
//! # Finalizers
//!
//! V8 gives no promise about *when* it collects an unreachable wrapper. [`on_finalize`] installs
//! a *guaranteed* finalizer (`v8::Weak::clone_with_guaranteed_finalizer`): it runs after the
//! wrapper is collected, or when the isolate is disposed at the latest, and not at all if the
//! returned [`Finalizer`] is dropped first. It cannot see the object (already gone) or the
//! isolate (it may be being torn down). The request path does not need it: a failed
//! [`upgrade`](crate::Engine::upgrade) is the signal to answer 503.
//!
//! # What was run
//!
//! V8 cannot be linked on the machine reqguard is developed on (the `v8` crate downloads a
//! prebuilt archive). This module and `tests/engine_v8.rs` are **type-checked** with
//! `DOCS_RS=1 cargo check` / `cargo clippy` (the crate's build script skips the download under
//! `DOCS_RS`). The examples here are `no_run`: `DOCS_RS=1 cargo test --doc --features v8
//! engines::v8` compiles them (rustdoc only type-checks `no_run` doctests, so nothing links)
//! and runs none. The live tests run only with the `v8-live-tests` feature, on a machine that
//! can link V8. See `docs/engines.md`.
//!
//! # Examples
//!
//! A rusty_v8 152 runtime wiring its server object (not run: see above):
//!
//! ```no_run
//! use reqguard::{Config, DowngradePolicy, Refusal, ServerCore, engines::V8};
//!
//! /// The event loop's request callback: upgrade first, 503 if the wrapper is gone.
//! fn on_request(scope: &mut v8::PinScope<'_, '_>, core: &ServerCore<V8>) -> Result<u16, Refusal> {
//!     let live = core.upgrade_in(scope).ok_or(Refusal::WRAPPER_FINALIZED)?;
//!     let bundle = live.admit(|_ctx| Ok(()))?;
//!     let this = live.local(scope); // the wrapper as a Local, to call the handler with
//!     let fetch = v8::String::new(scope, "fetch").unwrap();
//!     if let Some(handler) = this.get(scope, fetch.into()) {
//!         let handler = v8::Local::<v8::Function>::try_from(handler).unwrap();
//!         handler.call(scope, this.into(), &[]);
//!     }
//!     bundle.complete();
//!     Ok(200)
//! }
//!
//! let platform = v8::new_default_platform(0, false).make_shared();
//! v8::V8::initialize_platform(platform);
//! v8::V8::initialize();
//! let isolate = &mut v8::Isolate::new(v8::CreateParams::default());
//!
//! let (core, context) = {
//!     v8::scope!(let handle_scope, isolate);
//!     let context = v8::Context::new(handle_scope, Default::default());
//!     let scope = &mut v8::ContextScope::new(handle_scope, context);
//!     // The runtime's server object, as `serve()` returns it to JS.
//!     let server = v8::Object::new(scope);
//!     let wrapper = v8::Global::new(scope, server);
//!     let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
//!     // Name the engine: the scope coerces to `&mut v8::Isolate` only once `E` is known.
//!     let core = ServerCore::<V8>::new(scope, wrapper, config);
//!     (core, v8::Global::new(scope, context))
//! };
//!
//! // Later, each request from the event loop:
//! {
//!     v8::scope_with_context!(let scope, isolate, &context);
//!     assert_eq!(on_request(scope, &core), Ok(200));
//! }
//!
//! let _drain = core.stop(); // OnStop: drops the Global; V8 may now collect the wrapper
//! isolate.low_memory_notification(); // a full GC
//! assert!(core.upgrade_in(isolate).is_none()); // a late request gets a 503
//! drop(core); // before the isolate
//! ```

use std::fmt;

use crate::callback::call_caught;
use crate::pool::Recycle;
use crate::wrapper::{Engine, Live};

static_assertions::assert_not_impl_any!(v8::Weak<v8::Object>: Send, Sync);
static_assertions::assert_impl_all!(v8::Global<v8::Object>: Send, Sync, Clone);

/// The v8 engine (marker type): the wrapper is a `v8::Object` held by `v8::Global` /
/// `v8::Weak`. See the [module docs](self).
pub struct V8(());

impl fmt::Debug for V8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("V8")
    }
}

impl Engine for V8 {
    type Strong = v8::Global<v8::Object>;
    type Weak = v8::Weak<v8::Object>;
    type Scope<'s> = v8::Isolate;

    /// A clone is a new V8 global handle: no code of the embedder's runs.
    const STRONG_CLONE_MAY_REENTER: bool = false;

    /// `v8::Weak::new`, with no finalizer (see [`on_finalize`] for one).
    ///
    /// # Panics
    ///
    /// On a shared isolate (rusty_v8 does not support weak handles there).
    fn downgrade(isolate: &mut v8::Isolate, strong: &Self::Strong) -> Self::Weak {
        v8::Weak::new(isolate, strong)
    }

    /// `v8::Weak::to_global`: `None` once V8 has collected the wrapper; the `Global` it
    /// returns keeps the wrapper alive until dropped.
    ///
    /// # Panics
    ///
    /// If `isolate` is not the wrapper's isolate (rusty_v8 asserts it): a bug in the embedder,
    /// as with QuickJS.
    fn upgrade(isolate: &mut v8::Isolate, weak: &Self::Weak) -> Option<Self::Strong> {
        weak.to_global(isolate)
    }
}

impl<C: Recycle> Live<'_, V8, C> {
    /// The wrapper as a `Local` in `scope`: the `this` to call the JS handler with.
    ///
    /// Takes any pinned scope (`&PinScope<'s, '_>` derefs to the context-free form).
    ///
    /// # Panics
    ///
    /// If `scope` belongs to another isolate than the wrapper (rusty_v8 asserts it).
    pub fn local<'s>(&self, scope: &v8::PinScope<'s, '_, ()>) -> v8::Local<'s, v8::Object> {
        v8::Local::new(scope, self.wrapper())
    }
}

/// A guaranteed finalizer on the wrapper; dropping it cancels the finalizer.
///
/// Made by [`on_finalize`]. Like every `v8::Weak`, it is `!Send`.
#[must_use = "dropping a Finalizer cancels it"]
#[clippy::has_significant_drop]
pub struct Finalizer {
    weak: v8::Weak<v8::Object>,
}

impl Finalizer {
    /// Whether the wrapper has been collected (the finalizer has then run or is about to).
    pub fn is_collected(&self) -> bool {
        self.weak.is_empty()
    }
}

impl fmt::Debug for Finalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finalizer")
            .field("collected", &self.is_collected())
            .finish()
    }
}

/// Runs `finalizer` once V8 has collected the object `weak` points at, or when the isolate is
/// disposed at the latest (`v8::Weak::clone_with_guaranteed_finalizer`).
///
/// Keep the returned [`Finalizer`]: dropping it cancels the callback. If the object is already
/// collected, the callback never runs. Pass the core's weak handle,
/// `core.wrapper().weak()`; no scope is needed.
///
/// V8 runs the callback from a weak callback, an `extern "C"` function that a panic cannot
/// unwind through (the process would abort), so it runs caught: a panic in it (or in its
/// captures' `Drop`, when it is dropped unrun) is reported by the panic hook and goes no
/// further, as a panicking finalizer of the embedded heap's does
/// ([`Handle::on_finalize`](crate::engines::Handle::on_finalize)). Until round 30 it aborted
/// the process. As there, a finalizer that panics while it owns a capture whose `Drop` panics
/// too still aborts (a panic while unwinding): no catch reaches it.
///
/// # Examples
///
/// ```no_run
/// use std::{cell::Cell, rc::Rc};
/// use reqguard::{Config, DowngradePolicy, ServerCore, engines::{V8, v8::on_finalize}};
///
/// # let platform = v8::new_default_platform(0, false).make_shared();
/// # v8::V8::initialize_platform(platform.clone());
/// # v8::V8::initialize();
/// let isolate = &mut v8::Isolate::new(v8::CreateParams::default());
/// let core = {
///     v8::scope!(let handle_scope, isolate);
///     let context = v8::Context::new(handle_scope, Default::default());
///     let scope = &mut v8::ContextScope::new(handle_scope, context);
///     let server = v8::Object::new(scope);
///     let wrapper = v8::Global::new(scope, server);
///     let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
///     ServerCore::<V8>::new(scope, wrapper, config)
/// };
/// let freed = Rc::new(Cell::new(false));
/// let flag = Rc::clone(&freed);
/// let finalizer = on_finalize(core.wrapper().weak(), move || flag.set(true));
///
/// let _drain = core.stop();
/// isolate.low_memory_notification();
/// while v8::Platform::pump_message_loop(&platform, isolate, false) {} // second-pass callbacks
/// assert!(finalizer.is_collected());
/// assert!(freed.get());
/// drop(finalizer);
/// drop(core); // before the isolate
/// ```
pub fn on_finalize(weak: &v8::Weak<v8::Object>, finalizer: impl FnOnce() + 'static) -> Finalizer {
    let mut caught = CaughtFinalizer(Some(finalizer));
    Finalizer {
        weak: weak.clone_with_guaranteed_finalizer(Box::new(move || caught.run())),
    }
}

/// The embedder's finalizer, run and dropped caught: V8 calls it from a weak callback, an
/// `extern "C"` function a panic cannot unwind through (the process would abort), and drops it
/// unrun when its [`Finalizer`] is dropped first or the isolate goes.
struct CaughtFinalizer<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> CaughtFinalizer<F> {
    fn run(&mut self) {
        if let Some(finalizer) = self.0.take() {
            call_caught(finalizer);
        }
    }
}

impl<F: FnOnce()> Drop for CaughtFinalizer<F> {
    fn drop(&mut self) {
        if let Some(unrun) = self.0.take() {
            call_caught(move || drop(unrun));
        }
    }
}

/// The reference server's scope provider for a v8-backed wrapper (features `v8` and `server`):
/// a [`Guarded`](crate::http::Guarded) that owns the isolate upgrades in it directly.
///
/// `Guarded` drops its server core before its scope provider, so the core's `Global` and
/// `Weak` go before the isolate. A runtime that keeps its isolate elsewhere implements
/// [`ScopeProvider`](crate::http::ScopeProvider) on its own type instead. Type-checked only
/// (`DOCS_RS=1 cargo check --features v8,server`): V8 cannot be linked where reqguard is built.
#[cfg(feature = "server")]
impl crate::http::ScopeProvider<V8> for v8::OwnedIsolate {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut v8::Isolate) -> R) -> R {
        f(self)
    }
}
