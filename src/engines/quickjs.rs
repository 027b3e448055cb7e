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
//! **Every `Persistent` must be dropped before its [`Runtime`](rquickjs::Runtime).** A server
//! core holds two (the strong wrapper until it is downgraded, and the weak handle always), and
//! every [`Live`] proof and request guard that holds the core does too. Drop the
//! [`ServerCore`] and all its guards first, then the `Context`, then the `Runtime`: a
//! `Persistent` alive at `JS_FreeRuntime` aborts the process (an assertion in QuickJS), and one
//! dropped after it is a use after free. Declaring the runtime first in a scope does this
//! (locals drop in reverse order). With [`DowngradePolicy::OnDrain`](crate::DowngradePolicy)
//! a request that never ends (a forgotten guard) keeps the drain, and so the strong handle,
//! alive: check `drain.is_complete()` before dropping the runtime, and leak the runtime when it
//! is not (`docs/engines.md`).
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
//! let rt = Runtime::new().unwrap(); // declared first, so it drops last
//! let context = Context::full(&rt).unwrap();
//! let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
//! let core = context.with(|ctx| {
//!     let server: Object = ctx.eval("({ port: 8080 })").unwrap();
//!     ServerCore::quickjs(&ctx, server, config)
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
//! drop(core); // before the runtime
//! ```

use std::fmt;

use rquickjs::function::{Constructor, This};
use rquickjs::{Ctx, Error, Function, Object, Persistent, Value};

use crate::pool::Recycle;
use crate::wrapper::{Engine, Live};
use crate::{Config, ServerCore};

/// The QuickJS engine (marker type): the wrapper is a JS object in an rquickjs runtime.
///
/// - `Strong` = `Persistent<Object<'static>>`: restore it in a `Ctx` of the same runtime
///   ([`Live::object`] does) to call the handler with it as `this`.
/// - `Weak` = [`JsWeakRef`]: a JS `WeakRef` held in a `Persistent`.
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
    type Strong = Persistent<Object<'static>>;
    type Weak = JsWeakRef;
    type Scope<'s> = Ctx<'s>;

    /// Makes a JS `WeakRef` to the wrapper.
    ///
    /// # Panics
    ///
    /// If the context has no `WeakRef` intrinsic (`Context::full` has it; a `Context::custom`
    /// needs `intrinsic::WeakRef`), or if `strong` belongs to another runtime.
    fn downgrade(ctx: &mut Ctx<'_>, strong: &Self::Strong) -> JsWeakRef {
        let target = strong
            .clone()
            .restore(ctx)
            .expect("the wrapper belongs to the runtime of the scope it is downgraded in");
        JsWeakRef::new(ctx, &target).expect("the context has the WeakRef intrinsic")
    }

    /// `weakRef.deref()`: a new strong reference, or `None` once QuickJS has freed the wrapper.
    ///
    /// Fails closed: if the call fails (an engine error, such as out of memory), the pending
    /// exception is cleared and the upgrade returns `None`, so the request gets a 503.
    ///
    /// # Panics
    ///
    /// If `ctx` belongs to another runtime than the wrapper (a bug in the embedder).
    fn upgrade(ctx: &mut Ctx<'_>, weak: &JsWeakRef) -> Option<Self::Strong> {
        match weak.upgrade(ctx) {
            Ok(object) => object.map(|object| Persistent::save(ctx, object)),
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

/// A weak handle to a QuickJS object: a JS `WeakRef` held in a [`Persistent`].
///
/// The `WeakRef` itself is held strongly (it is small); the object it points at is not. The
/// `deref` method is captured when the handle is made, so a script that later replaces
/// `WeakRef.prototype.deref` cannot make upgrades lie. (A script that replaced the global
/// `WeakRef` before the handle was made could; make the server core before running user code.)
///
/// Like every `Persistent`, drop it before the runtime. Cloning it clones the handle, not the
/// `WeakRef`.
#[derive(Clone)]
pub struct JsWeakRef {
    weak_ref: Persistent<Object<'static>>,
    deref: Persistent<Function<'static>>,
}

impl JsWeakRef {
    /// `new WeakRef(target)`, using the context's `WeakRef` constructor.
    ///
    /// # Errors
    ///
    /// If the context has no `WeakRef` global, or it is not a constructor.
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
    ///     let weak = JsWeakRef::new(&ctx, &target).unwrap();
    ///     assert!(weak.upgrade(&ctx).unwrap().is_some());
    ///     drop(target); // the last reference: QuickJS frees it now
    ///     assert!(weak.upgrade(&ctx).unwrap().is_none());
    /// });
    /// ```
    pub fn new<'js>(ctx: &Ctx<'js>, target: &Object<'js>) -> rquickjs::Result<JsWeakRef> {
        let ctor: Constructor<'js> = ctx.globals().get("WeakRef")?;
        let weak_ref: Object<'js> = ctor.construct((target.clone(),))?;
        let deref: Function<'js> = weak_ref.get("deref")?;
        Ok(JsWeakRef {
            weak_ref: Persistent::save(ctx, weak_ref),
            deref: Persistent::save(ctx, deref),
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
}

impl fmt::Debug for JsWeakRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsWeakRef").finish_non_exhaustive()
    }
}

impl ServerCore<QuickJs> {
    /// A server core whose wrapper is `wrapper`, a JS object in `ctx`'s runtime, with no
    /// per-request context.
    ///
    /// # Panics
    ///
    /// If the context has no `WeakRef` intrinsic.
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
    ///     let core = ServerCore::quickjs(&ctx, server, Config::default());
    ///     assert!(core.upgrade_in(&mut ctx.clone()).is_some());
    /// });
    /// ```
    pub fn quickjs<'js>(ctx: &Ctx<'js>, wrapper: Object<'js>, config: Config) -> Self {
        ServerCore::quickjs_with_context(ctx, wrapper, config)
    }

    /// As [`quickjs`](ServerCore::quickjs), pooling contexts of type `C`.
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
    ///     let core = ServerCore::quickjs_with_context::<Vec<u8>>(&ctx, server, Config::default());
    ///     let live = core.upgrade_in(&mut ctx.clone()).unwrap();
    ///     assert!(live.context(live.ticket().unwrap()).unwrap().is_empty());
    /// });
    /// ```
    pub fn quickjs_with_context<'js, C: Recycle>(
        ctx: &Ctx<'js>,
        wrapper: Object<'js>,
        config: Config,
    ) -> ServerCore<QuickJs, C> {
        let strong = Persistent::save(ctx, wrapper);
        ServerCore::new(&mut ctx.clone(), strong, config)
    }
}

impl<C: Recycle> Live<'_, QuickJs, C> {
    /// The wrapper as an object of `ctx`: the `this` to call the JS handler with.
    ///
    /// # Errors
    ///
    /// [`Error::UnrelatedRuntime`] if `ctx` belongs to another runtime than the wrapper.
    pub fn object<'js>(&self, ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
        self.wrapper().clone().restore(ctx)
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
/// A [`Guarded`](crate::http::Guarded) drops its server core before its scope provider, so the
/// core's `Persistent`s go before this `Context`, which keeps the runtime alive.
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
///     ServerCore::quickjs(&ctx, server, Config::default().with_downgrade(DowngradePolicy::OnStop))
/// });
/// let mut guarded = Guarded::new(core, context.clone());
/// drop(guarded.admit().unwrap());
/// guarded.stop(std::time::Instant::now()); // drops the last reference: QuickJS frees it
/// assert_eq!(guarded.admit().unwrap_err(), reqguard::Refusal::WRAPPER_FINALIZED);
/// assert_eq!(guarded.report().leaked, 0);
/// drop(guarded); // before the runtime
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
            let weak = JsWeakRef::new(&ctx, &target).unwrap();
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
            ServerCore::quickjs(&ctx, server, Config::default())
        });
    }

    #[test]
    fn once_collected_the_upgrade_keeps_failing() {
        let rt = Runtime::new().unwrap();
        let context = Context::full(&rt).unwrap();
        let core = context.with(|ctx| {
            let server: Object<'_> = Object::new(ctx.clone()).unwrap();
            ServerCore::quickjs(&ctx, server, Config::default())
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
            JsWeakRef::new(&ctx, &target).unwrap()
        });
        other.with(|ctx| QuickJs::upgrade(&mut ctx.clone(), &weak));
    }
}
