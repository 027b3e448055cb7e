//! The QuickJS adapter (feature `quickjs`): the wrapper lives in a QuickJS runtime (rquickjs).
//!
//! rquickjs gives Rust no native weak reference, so the adapter holds a JS `WeakRef` to the
//! wrapper in a [`Persistent`], and upgrades by calling the intrinsic `WeakRef.prototype.deref`.
//!
//! # Preparing the runtime
//!
//! Call [`prepare`] once per [`Runtime`], outside `Context::with`, before making a server core
//! in it. It keeps the engine's own `WeakRef` constructor and `WeakRef.prototype.deref`, taken
//! from a context of the adapter's own in that runtime (a realm with its own globals, which no
//! script ever sees), so what scripts do to their globals (`delete globalThis.WeakRef`, a
//! subclass whose `deref` returns a decoy, a replaced `WeakRef.prototype.deref`, a getter or a
//! `Proxy` in its place) changes nothing: the wrapper's `WeakRef` is the engine's, and an
//! upgrade after the wrapper was freed fails. [`ServerCore::quickjs`] in a runtime not prepared
//! returns [`SetupError::Unprepared`]; it never takes `WeakRef` from the scripts' globals
//! (before round 29 it did: QA embed28-2). A context without the `WeakRef` intrinsic
//! (`Context::base`) can hold a wrapper too, since the adapter's own context has it.
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
//!   the core, a cycle that leaks both while the server holds its wrapper strongly (until it is
//!   stopped, and under `OnDrain` drained). Once it lets go, the wrapper, what it holds and the
//!   runtime are freed as usual, so such a core must be stopped before the runtime is torn
//!   down; a core never stopped keeps the runtime for good. Own the core from Rust.
//!
//! The weak handle holds the adapter's own context (its `WeakRef` and `deref` are that realm's),
//! never the context the core was made in: a wrapper kept in that context's globals goes with
//! it once the embedder drops it and the server lets go (before round 29 the weak handle kept
//! that realm alive, and with it everything its globals reach: QA embed29-1).
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
//! reqguard::engines::quickjs::prepare(&rt).unwrap(); // once per runtime, outside `with`
//! let context = Context::full(&rt).unwrap();
//! let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
//! let core = context.with(|ctx| {
//!     let server: Object = ctx.eval("({ port: 8080 })").unwrap();
//!     ServerCore::quickjs(&context, server, config)
//! })
//! .unwrap();
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
use std::ops::Range;

use rquickjs::context::intrinsic;
use rquickjs::function::{Constructor, This};
use rquickjs::{Context, Ctx, Error, Function, Object, Persistent, Runtime, Value};

use crate::pool::Recycle;
use crate::wrapper::{Engine, Live, WrapperCell};
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

    /// Makes a JS `WeakRef` to the wrapper with the engine's own `WeakRef` (kept by
    /// [`prepare`]); it keeps the wrapper's runtime alive too. Only [`ServerCore::new`] calls
    /// it; [`ServerCore::quickjs`] makes the `WeakRef` itself and returns an error instead.
    ///
    /// # Panics
    ///
    /// If the runtime was not [prepared](prepare), if `strong` belongs to another runtime, or
    /// if QuickJS fails making the `WeakRef` (out of memory).
    fn downgrade(ctx: &mut Ctx<'_>, strong: &JsStrong) -> JsWeakRef {
        let target = strong
            .restore(ctx)
            .expect("the wrapper belongs to the runtime of the scope it is downgraded in");
        match JsWeakRef::in_runtime(strong.runtime.clone(), strong.address, ctx, &target) {
            Ok(weak) => weak,
            Err(error) => panic!("downgrading a QuickJS wrapper: {error}"),
        }
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
                address: weak.address,
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

/// Prepares `runtime` for server cores: keeps the engine's own `WeakRef` constructor and
/// `WeakRef.prototype.deref` in the runtime, for every [`JsWeakRef`] made in it.
///
/// Both are taken from a context the adapter makes for this alone (`Context::custom` with the
/// `WeakRef` intrinsic), whose globals no script ever sees: so it may be called before or after
/// scripts ran in the runtime's other contexts, and nothing they did or do to `WeakRef` changes
/// what the adapter uses. That context lives as long as the runtime (a few hundred bytes:
/// base objects and `WeakRef`). Calling it again does nothing.
///
/// Call it once, after `Runtime::new` and outside any `Context::with` of this runtime (like
/// `Runtime::run_gc`, it takes the runtime's lock: rquickjs panics inside `with`).
///
/// The two functions are kept in the runtime's userdata, which rquickjs keys by type, as a
/// `std::ops::Range<rquickjs::Function>` (the only kind of type the crate can store there
/// without `unsafe`). Do not store nor remove a userdata of that type in a prepared runtime
/// yourself: `Ctx::store_userdata` replaces what is there without a word, and cores made
/// afterwards would take your functions for the engine's `WeakRef` and `deref` (one stored
/// before `prepare` is kept by it the same way). Cores made before keep their own.
///
/// # Errors
///
/// [`Error::Allocation`] if QuickJS cannot make the context (out of memory), or the error
/// reading the two functions from it.
///
/// # Examples
///
/// A script that replaced `WeakRef` does not fool the adapter: once the wrapper is freed, the
/// upgrade fails.
///
/// ```
/// use reqguard::{Config, DowngradePolicy, ServerCore};
/// use rquickjs::{Context, Object, Runtime};
///
/// let rt = Runtime::new().unwrap();
/// let context = Context::full(&rt).unwrap();
/// let _: () = context.with(|ctx| {
///     ctx.eval("const decoy = {}; globalThis.WeakRef = class extends WeakRef { deref() { return decoy } }")
/// }).unwrap();
/// reqguard::engines::quickjs::prepare(&rt).unwrap(); // after the script: still the engine's own
/// let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
/// let core = context.with(|ctx| {
///     let server: Object = ctx.eval("({})").unwrap();
///     ServerCore::quickjs(&context, server, config)
/// })
/// .unwrap();
/// drop(core.stop()); // the last reference goes: QuickJS frees the wrapper
/// context.with(|ctx| assert!(core.upgrade_in(&mut ctx.clone()).is_none()));
/// ```
pub fn prepare(runtime: &Runtime) -> rquickjs::Result<()> {
    let own = Context::custom::<intrinsic::WeakRef>(runtime)?;
    own.with(|ctx| {
        let kept = keep_intrinsics(&ctx);
        if kept.is_err() {
            drop(ctx.catch()); // out of memory: no exception left pending in the runtime
        }
        kept
    })
    // `own` goes, but its QuickJS context lives on: the kept functions hold it.
}

/// Reads `WeakRef` and its `deref` from `ctx`, the adapter's own context, into the runtime's
/// userdata, unless an earlier [`prepare`] did.
fn keep_intrinsics(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    if ctx.userdata::<Intrinsics<'_>>().is_some() {
        return Ok(());
    }
    let ctor: Function<'_> = ctx.globals().get("WeakRef")?;
    let prototype: Object<'_> = ctor.get("prototype")?;
    let deref: Function<'_> = prototype.get("deref")?;
    // Fails only while a guard of the userdata is held, which needs a `with`: not here.
    ctx.store_userdata::<Intrinsics<'_>>(ctor..deref)
        .map_err(|_| Error::Unknown)?;
    Ok(())
}

/// The engine's `WeakRef` constructor (`start`) and `WeakRef.prototype.deref` (`end`), kept in
/// the runtime's userdata by [`prepare`].
///
/// A `Range` because rquickjs keys userdata by type and implements its `JsLifetime` (an
/// `unsafe` trait) for its own and the standard types only: a type of this crate would need an
/// `unsafe impl`, which the crate does not allow. No other code plausibly keeps a
/// `Range<Function>` in a runtime.
type Intrinsics<'js> = Range<Function<'js>>;

/// The engine's `WeakRef` constructor and `deref`, if the runtime of `ctx` was prepared.
fn intrinsics<'js>(ctx: &Ctx<'js>) -> Option<(Constructor<'js>, Function<'js>)> {
    let kept = ctx.userdata::<Intrinsics<'js>>()?;
    let ctor = kept.start.clone().into_value().into_constructor()?;
    Some((ctor, kept.end.clone()))
}

/// Whether `object` is a value of `context` (same QuickJS context, so the same runtime).
///
/// rquickjs 0.14 has no safe way to read a `Ctx`'s runtime, so the check is on the context.
fn belongs_to(context: &Context, object: &Object<'_>) -> bool {
    object.ctx().as_raw() == context.as_raw()
}

/// The address of `context`'s QuickJS runtime: its identity for as long as a handle keeps that
/// runtime alive (every handle of the adapter does), so two contexts are of one runtime exactly
/// when their addresses are equal. rquickjs has no safe way to compare two `Runtime`s, and a
/// `Ctx` does not tell its runtime; a `Context` does (`get_runtime_ptr`, read, never followed).
fn runtime_address(context: &Context) -> usize {
    context.get_runtime_ptr().addr()
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
    /// The runtime's address ([`runtime_address`]), to tell a scope of another runtime.
    address: usize,
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
            address: runtime_address(context),
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
/// The `WeakRef` itself is held strongly (it is small); the object it points at is not. It is
/// made with the engine's own `WeakRef` constructor and upgraded with the engine's own
/// `WeakRef.prototype.deref`, both kept by [`prepare`] from the adapter's own context: no
/// script can reach either, so nothing a script does to its globals, before or after, makes an
/// upgrade lie (QA embed28-2).
///
/// Like [`JsStrong`], it keeps its runtime alive and drops its `Persistent`s first, so any drop
/// order is safe. Cloning it clones the handle, not the `WeakRef`.
#[derive(Clone)]
pub struct JsWeakRef {
    // Field order is drop order: the `Persistent`s before the runtime that frees them.
    weak_ref: Persistent<Object<'static>>,
    deref: Persistent<Function<'static>>,
    runtime: Runtime,
    /// The runtime's address ([`runtime_address`]), to tell a scope of another runtime.
    address: usize,
}

impl JsWeakRef {
    /// A `WeakRef` to `target`, made with the engine's own `WeakRef` (whatever scripts did to
    /// the global); `target` is a value of `context`, whose runtime the handle keeps alive.
    ///
    /// # Errors
    ///
    /// [`SetupError::UnrelatedContext`] if `target` is not a value of `context`;
    /// [`SetupError::Unprepared`] if its runtime was not [prepared](prepare);
    /// [`SetupError::Engine`] if QuickJS fails making it (out of memory).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::{prepare, JsWeakRef};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// prepare(&rt).unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// context.with(|ctx| {
    ///     let _: () = ctx.eval("delete globalThis.WeakRef").unwrap(); // changes nothing
    ///     let target: Object = ctx.eval("({})").unwrap();
    ///     let weak = JsWeakRef::new(&context, &target).unwrap();
    ///     assert!(weak.upgrade(&ctx).unwrap().is_some());
    ///     drop(target); // the last reference: QuickJS frees it now
    ///     assert!(weak.upgrade(&ctx).unwrap().is_none());
    /// });
    /// ```
    pub fn new(context: &Context, target: &Object<'_>) -> Result<JsWeakRef, SetupError> {
        if !belongs_to(context, target) {
            return Err(SetupError::UnrelatedContext);
        }
        let address = runtime_address(context);
        JsWeakRef::in_runtime(context.runtime().clone(), address, target.ctx(), target)
    }

    /// As [`new`](JsWeakRef::new), with `runtime` (at `address`) already known to be `ctx`'s.
    fn in_runtime<'js>(
        runtime: Runtime,
        address: usize,
        ctx: &Ctx<'js>,
        target: &Object<'js>,
    ) -> Result<JsWeakRef, SetupError> {
        let (ctor, deref) = intrinsics(ctx).ok_or(SetupError::Unprepared)?;
        let weak_ref: Object<'js> = match ctor.construct((target.clone(),)) {
            Ok(weak_ref) => weak_ref,
            Err(error) => {
                drop(ctx.catch()); // an exception, if any, is QuickJS's own (out of memory)
                return Err(SetupError::Engine(error));
            }
        };
        Ok(JsWeakRef {
            weak_ref: Persistent::save(ctx, weak_ref),
            deref: Persistent::save(ctx, deref),
            runtime,
            address,
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

    /// Whether `context` is a context of this handle's runtime: a scope it can be upgraded in
    /// (any context of the runtime is, the one it was made in or another).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::{prepare, JsWeakRef};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// prepare(&rt).unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// let weak = context.with(|ctx| {
    ///     let target: Object = ctx.eval("globalThis.kept = {}").unwrap();
    ///     JsWeakRef::new(&context, &target).unwrap()
    /// });
    /// assert!(weak.shares_runtime_with(&Context::full(&rt).unwrap()));
    /// let other = Runtime::new().unwrap();
    /// assert!(!weak.shares_runtime_with(&Context::full(&other).unwrap()));
    /// ```
    pub fn shares_runtime_with(&self, context: &Context) -> bool {
        self.address == runtime_address(context)
    }
}

/// Why [`ServerCore::quickjs`] or [`JsWeakRef::new`] made nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The runtime was not [prepared](prepare): the adapter has no `WeakRef` of the engine's
    /// own, and does not take the one scripts may have replaced.
    Unprepared,
    /// The object is not a value of the context given with it (obtained inside that context's
    /// `with`).
    UnrelatedContext,
    /// QuickJS failed making the `WeakRef` (out of memory).
    Engine(Error),
    /// The scope given to a server (`Guarded::quickjs`, `HyperServer::quickjs`) or to
    /// [`ServerCore::check_scope`] is a context of another runtime than the wrapper's: no
    /// upgrade could succeed in it (rquickjs refuses a handle of another runtime, and the
    /// upgrade panics: every request past the downgrade would be answered `500`).
    OtherRuntime,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Unprepared => f.write_str(
                "the QuickJS runtime was not prepared: call \
                 reqguard::engines::quickjs::prepare(&runtime) once, outside Context::with",
            ),
            SetupError::UnrelatedContext => {
                f.write_str("the object is not a value of the context given with it")
            }
            SetupError::Engine(error) => write!(f, "QuickJS failed making a WeakRef: {error}"),
            SetupError::OtherRuntime => f.write_str(
                "the scope is a context of another QuickJS runtime than the server's wrapper: \
                 give the server a context of the wrapper's runtime",
            ),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Engine(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Debug for JsWeakRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsWeakRef").finish_non_exhaustive()
    }
}

impl ServerCore<QuickJs> {
    /// A server core whose wrapper is `wrapper`, a JS object of `context` (obtained inside
    /// `context.with`), with no per-request context. The runtime must be [prepared](prepare).
    ///
    /// The core and everything minted from it keep `context`'s runtime alive (see the
    /// [module docs](crate::engines::quickjs)), so the embedder may drop its `Runtime` and
    /// `Context` in any order relative to the core. The wrapper's `WeakRef` is the engine's own
    /// whatever scripts did to the global `WeakRef` (see [`prepare`]).
    ///
    /// # Errors
    ///
    /// [`SetupError::Unprepared`] if the runtime was not prepared,
    /// [`SetupError::UnrelatedContext`] if `wrapper` is not a value of `context`,
    /// [`SetupError::Engine`] if QuickJS fails making the `WeakRef` (out of memory). Nothing
    /// panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::{prepare, SetupError};
    /// use reqguard::{Config, ServerCore};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// let make = || {
    ///     context.with(|ctx| {
    ///         let server: Object = ctx.eval("({})").unwrap();
    ///         let core = ServerCore::quickjs(&context, server, Config::default())?;
    ///         assert!(core.upgrade_in(&mut ctx.clone()).is_some());
    ///         Ok::<_, SetupError>(())
    ///     })
    /// };
    /// assert!(matches!(make(), Err(SetupError::Unprepared)));
    /// prepare(&rt).unwrap();
    /// make().unwrap();
    /// ```
    pub fn quickjs(
        context: &Context,
        wrapper: Object<'_>,
        config: Config,
    ) -> Result<Self, SetupError> {
        ServerCore::quickjs_with_context(context, wrapper, config)
    }

    /// As [`quickjs`](ServerCore::quickjs), pooling contexts of type `C`.
    ///
    /// # Errors
    ///
    /// As [`quickjs`](ServerCore::quickjs).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// reqguard::engines::quickjs::prepare(&rt).unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// context.with(|ctx| {
    ///     let server: Object = ctx.eval("({})").unwrap();
    ///     let config = Config::default();
    ///     let core = ServerCore::quickjs_with_context::<Vec<u8>>(&context, server, config).unwrap();
    ///     let live = core.upgrade_in(&mut ctx.clone()).unwrap();
    ///     assert!(live.context(live.ticket().unwrap()).unwrap().is_empty());
    /// });
    /// ```
    pub fn quickjs_with_context<C: Recycle>(
        context: &Context,
        wrapper: Object<'_>,
        config: Config,
    ) -> Result<ServerCore<QuickJs, C>, SetupError> {
        // The weak handle first: it is what can fail, and the cell takes it made.
        let weak = JsWeakRef::new(context, &wrapper)?;
        let strong = JsStrong::new(context, wrapper).map_err(|_| SetupError::UnrelatedContext)?;
        Ok(ServerCore::with_cell(
            WrapperCell::from_handles(strong, weak),
            config,
        ))
    }
}

impl<C: Recycle> ServerCore<QuickJs, C> {
    /// Whether `context` can be the scope this core upgrades in: a context of the wrapper's
    /// runtime (any of them: the one the core was made in, or another). The servers' QuickJS
    /// constructors (`Guarded::quickjs`, `HyperServer::quickjs`) ask it at setup.
    ///
    /// While the server holds its wrapper strongly an upgrade does not use its scope, so a
    /// context of another runtime shows only once the wrapper is downgraded: the upgrade then
    /// panics (a bug of the embedder's, [`QuickJs::upgrade`](crate::Engine::upgrade)), and a
    /// server answers every request `500`. This tells it before the first request.
    ///
    /// # Errors
    ///
    /// [`SetupError::OtherRuntime`] if `context` belongs to another runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::{prepare, SetupError};
    /// use reqguard::{Config, ServerCore};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// prepare(&rt).unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// let core = context.with(|ctx| {
    ///     let server: Object = ctx.eval("({})").unwrap();
    ///     ServerCore::quickjs(&context, server, Config::default())
    /// })
    /// .unwrap();
    /// core.check_scope(&Context::full(&rt).unwrap()).unwrap(); // another context, same runtime
    /// let elsewhere = Context::full(&Runtime::new().unwrap()).unwrap();
    /// assert!(matches!(core.check_scope(&elsewhere), Err(SetupError::OtherRuntime)));
    /// ```
    pub fn check_scope(&self, context: &Context) -> Result<(), SetupError> {
        if self.wrapper().weak().shares_runtime_with(context) {
            Ok(())
        } else {
            Err(SetupError::OtherRuntime)
        }
    }
}

#[cfg(feature = "server")]
impl<C: Recycle> crate::http::Guarded<QuickJs, Context, C> {
    /// As [`Guarded::new`](crate::http::Guarded::new), for a wrapper in QuickJS: admission
    /// through `core`, upgrading inside `context`, which must be a context of the wrapper's
    /// runtime ([`ServerCore::check_scope`]). `Guarded::new` takes any scope provider and
    /// cannot tell: with a context of another runtime it serves while the wrapper is strong
    /// and answers `500` to every request after the downgrade.
    ///
    /// # Errors
    ///
    /// [`SetupError::OtherRuntime`] if `context` belongs to another runtime (`core` is
    /// dropped: nothing was admitted through it here).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::quickjs::{prepare, SetupError};
    /// use reqguard::http::Guarded;
    /// use reqguard::{Config, ServerCore};
    /// use rquickjs::{Context, Object, Runtime};
    ///
    /// let rt = Runtime::new().unwrap();
    /// prepare(&rt).unwrap();
    /// let context = Context::full(&rt).unwrap();
    /// let make_core = || {
    ///     context.with(|ctx| {
    ///         let server: Object = ctx.eval("({})").unwrap();
    ///         ServerCore::quickjs(&context, server, Config::default()).unwrap()
    ///     })
    /// };
    /// let elsewhere = Context::full(&Runtime::new().unwrap()).unwrap();
    /// let refused = Guarded::quickjs(make_core(), elsewhere);
    /// assert!(matches!(refused, Err(SetupError::OtherRuntime)));
    /// let _guarded = Guarded::quickjs(make_core(), context.clone()).unwrap();
    /// ```
    pub fn quickjs(core: ServerCore<QuickJs, C>, context: Context) -> Result<Self, SetupError> {
        core.check_scope(&context)?;
        Ok(crate::http::Guarded::new(core, context))
    }
}

#[cfg(feature = "hyper")]
impl<C, H> crate::tokio_hyper::HyperServer<QuickJs, C, H, Context>
where
    C: Recycle,
    H: crate::tokio_hyper::Handler<QuickJs, C>,
{
    /// As [`HyperServer::with_scope`](crate::tokio_hyper::HyperServer::with_scope), for a
    /// wrapper in QuickJS: `context` must be a context of the wrapper's runtime
    /// ([`ServerCore::check_scope`]). `with_scope` takes any scope and cannot tell: with a
    /// context of another runtime it serves while the wrapper is strong and answers `500` to
    /// every request after the downgrade. Its requests' mint site is this call.
    ///
    /// # Errors
    ///
    /// [`SetupError::OtherRuntime`] if `context` belongs to another runtime (`core` and
    /// `handler` are dropped).
    #[track_caller]
    pub fn quickjs(
        core: ServerCore<QuickJs, C>,
        handler: H,
        context: Context,
    ) -> Result<Self, SetupError> {
        core.check_scope(&context)?;
        Ok(crate::tokio_hyper::HyperServer::with_scope(
            core, handler, context,
        ))
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
/// reqguard::engines::quickjs::prepare(&rt).unwrap();
/// let context = Context::full(&rt).unwrap();
/// let core = context.with(|ctx| {
///     let server: Object = ctx.eval("({})").unwrap();
///     let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
///     ServerCore::quickjs(&context, server, config)
/// })
/// .unwrap();
/// let mut guarded = Guarded::quickjs(core, context.clone()).unwrap(); // checks the runtime
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
        prepare(&rt).unwrap();
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
    fn a_context_without_weak_ref_holds_a_wrapper_once_the_runtime_is_prepared() {
        let rt = Runtime::new().unwrap();
        let context = Context::base(&rt).unwrap();
        let make = || {
            context.with(|ctx| {
                let server: Object<'_> = Object::new(ctx.clone()).unwrap();
                ServerCore::quickjs(&context, server, Config::default()).map(drop)
            })
        };
        assert!(matches!(make(), Err(SetupError::Unprepared)));
        prepare(&rt).unwrap();
        prepare(&rt).unwrap(); // again: nothing changes
        make().unwrap();
    }

    #[test]
    fn once_collected_the_upgrade_keeps_failing() {
        let rt = Runtime::new().unwrap();
        prepare(&rt).unwrap();
        let context = Context::full(&rt).unwrap();
        let core = context.with(|ctx| {
            let server: Object<'_> = Object::new(ctx.clone()).unwrap();
            ServerCore::quickjs(&context, server, Config::default()).unwrap()
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
        prepare(&rt).unwrap();
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
        prepare(&rt).unwrap();
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
                Err(SetupError::UnrelatedContext)
            ));
            assert!(JsStrong::new(&other, object).is_ok());
        });
    }

    #[test]
    fn a_core_of_a_wrapper_of_another_context_is_refused() {
        let rt = Runtime::new().unwrap();
        prepare(&rt).unwrap();
        let context = Context::full(&rt).unwrap();
        let other_rt = Runtime::new().unwrap();
        prepare(&other_rt).unwrap();
        let other = Context::full(&other_rt).unwrap();
        other.with(|ctx| {
            let server: Object<'_> = ctx.eval("({})").unwrap();
            let refused = ServerCore::quickjs(&context, server, Config::default());
            assert!(matches!(refused, Err(SetupError::UnrelatedContext)));
        });
    }

    /// The handles keep the runtime: it is freed with the last of them, not before.
    #[test]
    fn the_runtime_lives_until_the_last_handle_and_no_longer() {
        let rt = Runtime::new().unwrap();
        prepare(&rt).unwrap(); // what it keeps does not keep the runtime alive
        let freed = rt.weak();
        let context = Context::full(&rt).unwrap();
        let core = context.with(|ctx| {
            let server: Object<'_> = ctx.eval("({ port: 1 })").unwrap();
            ServerCore::quickjs(&context, server, Config::default()).unwrap()
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
