//! The QuickJS adapter (feature `quickjs`): the wrapper lives in a QuickJS runtime (rquickjs).
//!
//! rquickjs gives Rust no native weak reference, so the adapter holds a JS `WeakRef` to the
//! wrapper in a [`Persistent`], and upgrades by calling the intrinsic `WeakRef.prototype.deref`.
//!
//! # Lifetimes
//!
//! QuickJS frees an object the moment its reference count reaches zero; objects in a cycle wait
//! for the cycle collector ([`Runtime::run_gc`](rquickjs::Runtime::run_gc), or on its own when
//! allocation passes the GC threshold). Either way, a `WeakRef` to it answers `undefined` from
//! then on, and [`QuickJs::upgrade`](crate::Engine::upgrade) returns `None`.
//!
//! **Every handle keeps its runtime alive.** A `Persistent` alive at `JS_FreeRuntime` aborts
//! the process (an assertion in QuickJS), and one dropped after it is a use after free. So the
//! adapter never holds a bare `Persistent`: [`JsStrong`] and [`JsWeakRef`] each hold a clone of
//! the [`Runtime`] (a reference-counted handle) next to their `Persistent`s, and drop the
//! `Persistent`s first. The runtime is freed when the embedder's `Runtime`, every `Context` and
//! every server core, proof and guard are gone, in whatever order they are dropped. That is why
//! [`ServerCore::quickjs`] takes the [`Context`] (its runtime is the one kept alive).
//!
//! Two consequences:
//!
//! - **A leaked guard leaks the runtime.** With [`DowngradePolicy::OnDrain`](crate::DowngradePolicy)
//!   (the default) a request that never ends (a forgotten guard, an `Rc` cycle of guards) keeps
//!   the drain incomplete and the wrapper strong, so the runtime is never freed: a leak that the
//!   ledger reports, never an abort at teardown.
//! - **Do not store a server core inside its own runtime** (in a closure of a JS function or in
//!   a class instance of that runtime): the core keeps the runtime alive and the runtime keeps
//!   the core, a cycle that leaks both. Own the core from Rust.
//!
//! # Threads
//!
//! `Persistent`, `Ctx` and (without rquickjs' `parallel` feature) `Runtime` are `!Send`, like
//! every reqguard guard: a server core backed by QuickJS stays on the thread of its runtime.
//!
//! # Gotcha: collecting inside `with`
//!
//! `Runtime::run_gc` and `Runtime::execute_pending_job` take the runtime's lock, so calling them
//! inside `ctx.with(..)` panics. Inside `with`, use `ctx.run_gc()` and
//! `ctx.execute_pending_job()`.
//!
//! # Examples
//!
//! ```
//! use reqguard::{Config, DowngradePolicy, Refusal, ServerCore, engines::QuickJs};
//! use rquickjs::{Context, Object, Runtime};
//!
//! let rt = Runtime::new().unwrap();
//! let context = Context::full(&rt).unwrap();
//! let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
//! let core = context.with(|ctx| {
//!     let server: Object = ctx.eval("({ port: 8080 })").unwrap();
//!     ServerCore::quickjs(&context, server, config)
//! });
//!
//! // A request callback: upgrade in a scope, answer 503 if the wrapper is gone.
//! let on_request = |core: &ServerCore<QuickJs>| -> Result<i32, Refusal> {
//!     context.with(|ctx| {
//!         let live = core.upgrade_in(&mut ctx.clone()).ok_or(Refusal::WRAPPER_FINALIZED)?;
//!         let bundle = live.admit(|_| Ok(()))?;
//!         let port: i32 = live.object(&ctx).unwrap().get("port").unwrap();
//!         bundle.complete();
//!         Ok(port)
//!     })
//! };
//! assert_eq!(on_request(&core), Ok(8080));
//!
//! let drain = core.stop(); // OnStop: the last strong reference is dropped here
//! assert!(drain.is_complete());
//! // Acyclic, so QuickJS freed it by reference count already; no GC needed.
//! assert_eq!(on_request(&core).unwrap_err().status(), 503);
//! core.ledger().assert_quiescent();
//! drop(rt); // any order: the core keeps the runtime alive until it is dropped itself
//! ```

use std::fmt;

use rquickjs::function::{Constructor, This};
use rquickjs::{Context, Ctx, Error, Function, Object, Persistent, Runtime, Value};

use crate::pool::Recycle;
use crate::wrapper::{Engine, Live};
use crate::{Config, ServerCore};

/// The QuickJS engine (marker type): the wrapper is a JS object in an rquickjs runtime.
///
/// - `Strong` = [`JsStrong`]: a `Persistent` and its runtime; restore it in a `Ctx` of the same
///   runtime ([`Live::object`] does) to call the handler with it as `this`.
/// - `Weak` = [`JsWeakRef`]: a JS `WeakRef` held in a `Persistent`, and its runtime.
/// - `Scope<'s>` = [`Ctx<'s>`](rquickjs::Ctx): any context of the wrapper's runtime, so
///   upgrades happen inside `context.with(|ctx| ..)`.
///
/// See the [module docs](self) for the lifetime rules.
pub struct QuickJs(());

impl fmt::Debug for QuickJs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuickJs")
    }
}

impl Engine for QuickJs {
    type Strong = JsStrong;
    type Weak = JsWeakRef;
    type Scope<'s> = Ctx<'s>;

    /// A clone is `JS_DupValue` and a `Runtime` clone: no code of the embedder's runs.
    const STRONG_CLONE_MAY_REENTER: bool = false;

    /// Makes a JS `WeakRef` to the wrapper; it keeps the wrapper's runtime alive too.
    ///
    /// # Panics
    ///
    /// If the context's global `WeakRef` is not a constructor: it has no `WeakRef` intrinsic
    /// (`Context::full` has it; a `Context::custom` needs `intrinsic::WeakRef`), or a script
    /// deleted or replaced the global (QA embed28-2); or if `strong` belongs to another
    /// runtime.
    fn downgrade(ctx: &mut Ctx<'_>, strong: &JsStrong) -> JsWeakRef {
        let target = strong
            .restore(ctx)
            .expect("the wrapper belongs to the runtime of the scope it is downgraded in");
        JsWeakRef::in_runtime(strong.runtime.clone(), ctx, &target)
            .expect("the context has the WeakRef intrinsic")
    }

    /// `weakRef.deref()`: a new strong reference, or `None` once QuickJS has freed the wrapper.
    ///
    /// Fails closed: if the call fails (an engine error, such as out of memory), the pending
    /// exception is cleared and the upgrade returns `None`, so the request gets a 503.
    ///
    /// # Panics
    ///
    /// If `ctx` belongs to another runtime than the wrapper (a bug in the embedder).
    fn upgrade(ctx: &mut Ctx<'_>, weak: &JsWeakRef) -> Option<JsStrong> {
        match weak.upgrade(ctx) {
            Ok(object) => object.map(|object| JsStrong {
                object: Persistent::save(ctx, object),
                runtime: weak.runtime.clone(),
            }),
            Err(Error::UnrelatedRuntime) => {
                panic!("upgraded a QuickJS wrapper in a context of another runtime")
            }
            Err(_) => {
                drop(ctx.catch());
                None
            }
        }
    }
}

/// Whether `object` is a value of `context` (same QuickJS context, so the same runtime).
///
/// rquickjs 0.14 has no safe way to read a `Ctx`'s runtime, so the check is on the context.
fn belongs_to(context: &Context, object: &Object<'_>) -> bool {
    object.ctx().as_raw() == context.as_raw()
}

/// A strong handle to a QuickJS object: a [`Persistent`] and a clone of its [`Runtime`].
///
/// The `Persistent` is dropped first, then the runtime clone, so the object is always released
/// while its runtime is alive, whatever the embedder drops first: the runtime is freed by the
/// last of the embedder's `Runtime`, its contexts, and these handles. Cloning it roots the
/// object once more and keeps the runtime once more.
#[derive(Clone)]
pub struct JsStrong {
    // Field order is drop order: the `Persistent` before the runtime that frees it.
    object: Persistent<Object<'static>>,
    runtime: Runtime,
}

impl JsStrong {
    /// A strong handle to `object`, a value of `context`; it keeps `context`'s runtime alive.
    ///
    /// # Errors
    ///
    /// [`Error::UnrelatedRuntime`] if `object` is not a value of `context` (obtained inside
    /// `context.with`).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::JsStrong;
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// let strong = context.with(|ctx| {
    ///     let object: Object = ctx.eval("({ answer: 42 })").unwrap();
    ///     JsStrong::new(&context, object).unwrap()
    /// });
    /// drop((context, rt)); // the handle keeps the runtime alive
    /// let context = Context::full(strong.runtime()).unwrap();
    /// let answer: i32 = context.with(|ctx| strong.restore(&ctx).unwrap().get("answer").unwrap());
    /// assert_eq!(answer, 42);
    /// ```
    pub fn new(context: &Context, object: Object<'_>) -> rquickjs::Result<JsStrong> {
        if !belongs_to(context, &object) {
            return Err(Error::UnrelatedRuntime);
        }
        let ctx = object.ctx().clone();
        Ok(JsStrong {
            object: Persistent::save(&ctx, object),
            runtime: context.runtime().clone(),
        })
    }

    /// The object as a value of `ctx`.
    ///
    /// # Errors
    ///
    /// [`Error::UnrelatedRuntime`] if `ctx` belongs to another runtime.
    pub fn restore<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
        self.object.clone().restore(ctx)
    }

    /// The runtime this handle keeps alive.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl fmt::Debug for JsStrong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsStrong").finish_non_exhaustive()
    }
}

/// A weak handle to a QuickJS object: a JS `WeakRef` held in a [`Persistent`], and a clone of
/// its [`Runtime`].
///
/// The `WeakRef` itself is held strongly (it is small); the object it points at is not. The
/// `deref` method is captured when the handle is made, so a script that later replaces
/// `WeakRef.prototype.deref` cannot make upgrades lie. (A script that replaced the global
/// `WeakRef` before the handle was made can: a subclass whose `deref` returns another object
/// makes an upgrade after the wrapper was freed succeed, with that object as `this`; one
/// that deleted it makes the core's construction panic (QA embed28-2). Make the server core
/// before running user code.)
///
/// Like [`JsStrong`], it keeps its runtime alive and drops its `Persistent`s first, so any drop
/// order is safe. Cloning it clones the handle, not the `WeakRef`.
#[derive(Clone)]
pub struct JsWeakRef {
    // Field order is drop order: the `Persistent`s before the runtime that frees them.
    weak_ref: Persistent<Object<'static>>,
    deref: Persistent<Function<'static>>,
    runtime: Runtime,
}

impl JsWeakRef {
    /// `new WeakRef(target)`, using the context's `WeakRef` constructor; `target` is a value of
    /// `context`, whose runtime the handle keeps alive.
    ///
    /// # Errors
    ///
    /// [`Error::UnrelatedRuntime`] if `target` is not a value of `context`; an error if the
    /// context has no `WeakRef` global, or it is not a constructor.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::JsWeakRef;
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// context.with(|ctx| {
    ///     let target: Object = ctx.eval("({})").unwrap();
    ///     let weak = JsWeakRef::new(&context, &target).unwrap();
    ///     assert!(weak.upgrade(&ctx).unwrap().is_some());
    ///     drop(target); // the last reference: QuickJS frees it now
    ///     assert!(weak.upgrade(&ctx).unwrap().is_none());
    /// });
    /// ```
    pub fn new(context: &Context, target: &Object<'_>) -> rquickjs::Result<JsWeakRef> {
        if !belongs_to(context, target) {
            return Err(Error::UnrelatedRuntime);
        }
        JsWeakRef::in_runtime(context.runtime().clone(), target.ctx(), target)
    }

    /// As [`new`](JsWeakRef::new), with `runtime` already known to be `ctx`'s.
    fn in_runtime<'js>(
        runtime: Runtime,
        ctx: &Ctx<'js>,
        target: &Object<'js>,
    ) -> rquickjs::Result<JsWeakRef> {
        let ctor: Constructor<'js> = ctx.globals().get("WeakRef")?;
        let weak_ref: Object<'js> = ctor.construct((target.clone(),))?;
        let deref: Function<'js> = weak_ref.get("deref")?;
        Ok(JsWeakRef {
            weak_ref: Persistent::save(ctx, weak_ref),
            deref: Persistent::save(ctx, deref),
            runtime,
        })
    }

    /// `weakRef.deref()`: the object, or `None` once QuickJS has freed it.
    ///
    /// The returned object is a strong reference; the target stays alive while it does.
    ///
    /// # Errors
    ///
    /// [`Error::UnrelatedRuntime`] if `ctx` belongs to another runtime; a JS exception if the
    /// call throws.
    pub fn upgrade<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Option<Object<'js>>> {
        let weak_ref = self.weak_ref.clone().restore(ctx)?;
        let deref = self.deref.clone().restore(ctx)?;
        let target: Value<'js> = deref.call((This(weak_ref),))?;
        Ok(target.into_object())
    }

    /// The runtime this handle keeps alive.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl fmt::Debug for JsWeakRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsWeakRef").finish_non_exhaustive()
    }
}

impl ServerCore<QuickJs> {
    /// A server core whose wrapper is `wrapper`, a JS object of `context` (obtained inside
    /// `context.with`), with no per-request context.
    ///
    /// The core and everything minted from it keep `context`'s runtime alive (see the
    /// [module docs](crate::engines::quickjs)), so the embedder may drop its `Runtime` and
    /// `Context` in any order relative to the core.
    ///
    /// # Panics
    ///
    /// If `wrapper` is not a value of `context`, or the context has no `WeakRef` intrinsic.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// context.with(|ctx| {
    ///     let server: Object = ctx.eval("({})").unwrap();
    ///     let core = ServerCore::quickjs(&context, server, Config::default());
    ///     assert!(core.upgrade_in(&mut ctx.clone()).is_some());
    /// });
    /// ```
    pub fn quickjs(context: &Context, wrapper: Object<'_>, config: Config) -> Self {
        ServerCore::quickjs_with_context(context, wrapper, config)
    }

    /// As [`quickjs`](ServerCore::quickjs), pooling contexts of type `C`.
    ///
    /// # Panics
    ///
    /// As [`quickjs`](ServerCore::quickjs)'s: if `wrapper` is not a value of `context`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// context.with(|ctx| {
    ///     let server: Object = ctx.eval("({})").unwrap();
    ///     let core = ServerCore::quickjs_with_context::<Vec<u8>>(&context, server, Config::default());
    ///     let live = core.upgrade_in(&mut ctx.clone()).unwrap();
    ///     assert!(live.context(live.ticket().unwrap()).unwrap().is_empty());
    /// });
    /// ```
    pub fn quickjs_with_context<C: Recycle>(
        context: &Context,
        wrapper: Object<'_>,
        config: Config,
    ) -> ServerCore<QuickJs, C> {
        let mut ctx = wrapper.ctx().clone();
        let strong = JsStrong::new(context, wrapper)
            .expect("the wrapper is a value of the context given with it (made in its `with`)");
        ServerCore::new(&mut ctx, strong, config)
    }
}

impl<C: Recycle> Live<'_, QuickJs, C> {
    /// The wrapper as an object of `ctx`: the `this` to call the JS handler with.
    ///
    /// # Errors
    ///
    /// [`Error::UnrelatedRuntime`] if `ctx` belongs to another runtime than the wrapper.
    pub fn object<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
        self.wrapper().restore(ctx)
    }
}

/// The reference server's scope provider for a QuickJS-backed wrapper (features `quickjs` and
/// `server`): each admission enters the context (`Context::with`) and upgrades in its `Ctx`.
///
/// Because it enters the context, the server must not admit from inside a `with` on the same
/// runtime (rquickjs would panic on the nested lock); a runtime that is already inside its
/// engine implements [`ScopeProvider`](crate::http::ScopeProvider) on its own type and hands
/// over the `Ctx` it has.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Accounting, Guarded};
/// use reqguard::{Config, DowngradePolicy, ServerCore};
/// use rquickjs::{Context, Object, Runtime};
///
/// let rt = Runtime::new().unwrap();
/// let context = Context::full(&rt).unwrap();
/// let core = context.with(|ctx| {
///     let server: Object = ctx.eval("({})").unwrap();
///     let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
///     ServerCore::quickjs(&context, server, config)
/// });
/// let mut guarded = Guarded::new(core, context.clone());
/// drop(guarded.admit().unwrap());
/// guarded.stop(std::time::Instant::now()); // drops the last reference: QuickJS frees it
/// assert_eq!(guarded.admit().unwrap_err(), reqguard::Refusal::WRAPPER_FINALIZED);
/// assert_eq!(guarded.report().leaked, 0);
/// ```
#[cfg(feature = "server")]
impl crate::http::ScopeProvider<QuickJs> for rquickjs::Context {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        self.with(|ctx| {
            let mut ctx = ctx;
            f(&mut ctx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rquickjs::{Context, Runtime};

    static_assertions::assert_not_impl_any!(JsWeakRef: Send, Sync);

    #[test]
    fn replacing_deref_after_downgrade_does_not_fool_the_upgrade() {
        let rt = Runtime::new().unwrap();
        let context = Context::full(&rt).unwrap();
        context.with(|ctx| {
            let target: Object<'_> = ctx.eval("({})").unwrap();
            let weak = JsWeakRef::new(&context, &target).unwrap();
            let _: () = ctx
                .eval("WeakRef.prototype.deref = function () { return {}; }")
                .unwrap();
            drop(target);
            assert!(weak.upgrade(&ctx).unwrap().is_none());
            let fooled: bool = ctx.eval("new WeakRef({}).deref() !== undefined").unwrap();
            assert!(fooled, "the script did replace deref for new callers");
        });
    }

    #[test]
    #[should_panic(expected = "WeakRef intrinsic")]
    fn a_context_without_weak_ref_cannot_hold_a_wrapper() {
        let rt = Runtime::new().unwrap();
        let context = Context::base(&rt).unwrap();
        context.with(|ctx| {
            let server: Object<'_> = Object::new(ctx.clone()).unwrap();
            ServerCore::quickjs(&context, server, Config::default())
        });
    }

    #[test]
    fn once_collected_the_upgrade_keeps_failing() {
        let rt = Runtime::new().unwrap();
        let context = Context::full(&rt).unwrap();
        let core = context.with(|ctx| {
            let server: Object<'_> = Object::new(ctx.clone()).unwrap();
            ServerCore::quickjs(&context, server, Config::default())
        });
        let _drain = core.stop(); // OnDrain, nothing out: downgraded now, freed by refcount
        context.with(|ctx| {
            for _ in 0..3 {
                let _garbage: Object<'_> = ctx.eval("({ a: {}, b: [1, 2, 3] })").unwrap();
                assert!(core.upgrade_in(&mut ctx.clone()).is_none());
            }
        });
    }

    #[test]
    #[should_panic(expected = "another runtime")]
    fn upgrading_in_another_runtime_panics() {
        let rt = Runtime::new().unwrap();
        let context = Context::full(&rt).unwrap();
        let other_rt = Runtime::new().unwrap();
        let other = Context::full(&other_rt).unwrap();
        let weak = context.with(|ctx| {
            let target: Object<'_> = ctx.eval("globalThis.kept = {}").unwrap();
            JsWeakRef::new(&context, &target).unwrap()
        });
        other.with(|ctx| QuickJs::upgrade(&mut ctx.clone(), &weak));
    }

    #[test]
    fn a_wrapper_of_another_context_is_refused() {
        let rt = Runtime::new().unwrap();
        let context = Context::full(&rt).unwrap();
        let other = Context::full(&rt).unwrap();
        other.with(|ctx| {
            let object: Object<'_> = ctx.eval("({})").unwrap();
            assert!(matches!(
                JsStrong::new(&context, object.clone()),
                Err(Error::UnrelatedRuntime)
            ));
            assert!(matches!(
                JsWeakRef::new(&context, &object),
                Err(Error::UnrelatedRuntime)
            ));
            assert!(JsStrong::new(&other, object).is_ok());
        });
    }

    #[test]
    #[should_panic(expected = "a value of the context given with it")]
    fn a_core_of_a_wrapper_of_another_context_panics() {
        let rt = Runtime::new().unwrap();
        let context = Context::full(&rt).unwrap();
        let other_rt = Runtime::new().unwrap();
        let other = Context::full(&other_rt).unwrap();
        other.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").unwrap();
            ServerCore::quickjs(&context, server, Config::default())
        });
    }

    /// The handles keep the runtime: it is freed with the last of them, not before.
    #[test]
    fn the_runtime_lives_until_the_last_handle_and_no_longer() {
        let rt = Runtime::new().unwrap();
        let freed = rt.weak();
        let context = Context::full(&rt).unwrap();
        let core = context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({ port: 1 })").unwrap();
            ServerCore::quickjs(&context, server, Config::default())
        });
        drop((rt, context)); // the embedder's handles first: the core keeps the runtime
        let runtime = freed.try_ref().expect("the core keeps the runtime alive");
        let context = Context::full(&runtime).unwrap();
        let port: i32 = context.with(|ctx| {
            let live = core.upgrade_in(&mut ctx.clone()).unwrap();
            live.object(&ctx).unwrap().get("port").unwrap()
        });
        assert_eq!(port, 1);
        drop((runtime, context));
        assert!(freed.try_ref().is_some());
        drop(core); // OnDrain with nothing out: downgraded, then the weak handle goes
        assert!(freed.try_ref().is_none(), "freed with the last handle");
    }
}
