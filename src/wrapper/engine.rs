//! The engine trait: what reqguard needs from a JavaScript engine (or any owner of the wrapper).

/// A JavaScript engine's strong and weak handles to the server's wrapper object.
///
/// Implement it for your engine's handles (the `v8` feature does it for `v8::Global` and
/// `v8::Weak`). `E` is a marker type; the trait has no state of its own.
///
/// # Contract
///
/// - [`upgrade`](Engine::upgrade) returns `Some` only if the object has not been finalized, and
///   the returned strong handle keeps it from being finalized until dropped.
/// - Dropping a `Strong` handle must not need a scope (v8's `Global` and rquickjs' `Persistent`
///   hold what they need to free themselves): reqguard drops it when the wrapper is downgraded,
///   which may happen inside a guard's `Drop`.
/// - Dropping a `Strong` handle must not panic. The reference server's `http::Guarded`
///   accounting (feature `server`) drops the handler's `this` (a clone) on every request once
///   the handler returns (`Accounting::handled`), uncaught: it says its per-request calls
///   cannot panic (`Accounting::MAY_PANIC` is `false`), so the guarded path pays for no catch.
///   A panic there unwinds as such an accounting's does: a mio loop survives it by closing
///   every connection open, a `Session`'s caller gets it. The downgrade's drop of the server's
///   own handle is caught (counted in
///   [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks)): the stop's, the
///   drain's, and one a clone put off (done inside that upgrade).
/// - Cloning a `Strong` handle (every upgrade while the server holds its wrapper does) may run
///   the embedder's code, and that code may stop the server: the downgrade the stop asks for is
///   done when the clone returns (the upgrade still yields the clone), or before the panic of
///   a clone that panics goes on to the upgrade's caller, unless the engine says its clone
///   cannot ([`STRONG_CLONE_MAY_REENTER`](Engine::STRONG_CLONE_MAY_REENTER)).
/// - Handles may be `!Send`; reqguard never moves them across threads.
///
/// See `docs/engines.md` for a worked adapter.
///
/// # Examples
///
/// An engine whose wrapper is an `Rc` (so "finalized" means "freed"):
///
/// ```
/// use std::rc::{Rc, Weak};
/// use reqguard::Engine;
///
/// struct RcEngine;
///
/// impl Engine for RcEngine {
///     type Strong = Rc<String>;
///     type Weak = Weak<String>;
///     type Scope<'s> = ();
///
///     fn downgrade(_: &mut (), strong: &Rc<String>) -> Weak<String> {
///         Rc::downgrade(strong)
///     }
///
///     fn upgrade(_: &mut (), weak: &Weak<String>) -> Option<Rc<String>> {
///         weak.upgrade()
///     }
/// }
/// ```
pub trait Engine: 'static {
    /// A handle that keeps the wrapper alive (`v8::Global<v8::Object>`).
    type Strong: Clone;
    /// A handle that does not (`v8::Weak<v8::Object>`).
    type Weak;
    /// What the engine needs to make or upgrade a weak handle (`v8::Isolate`; `()` for none).
    type Scope<'s>: ?Sized;

    /// Whether cloning a `Strong` handle may run code that reaches the server (stops it): then
    /// each upgrade checks, once the clone returns, for a downgrade the clone asked for (one
    /// flag read; QA embed25-1). `false` only for a clone that runs no code but the engine's
    /// own bookkeeping (the engines of this crate: a reference count, `JS_DupValue`, a V8
    /// handle): a stop from inside such a clone would keep the wrapper strong for good.
    const STRONG_CLONE_MAY_REENTER: bool = true;

    /// A weak handle to the object `strong` keeps alive.
    fn downgrade(scope: &mut Self::Scope<'_>, strong: &Self::Strong) -> Self::Weak;

    /// A strong handle to the object, or `None` if it has been finalized.
    fn upgrade(scope: &mut Self::Scope<'_>, weak: &Self::Weak) -> Option<Self::Strong>;
}
