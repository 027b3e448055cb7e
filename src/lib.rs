//! Request-resource accounting that cannot be gotten wrong.
//!
//! A native server calls into a runtime for every request. After `server.stop()` the server's
//! JavaScript object (its *wrapper*) is held only weakly, and the collector may finalize it
//! while kept-alive connections still deliver requests. Every callback must therefore
//! **upgrade** the wrapper first, answer 503 if that fails, only **then** take the per-request
//! resources, and give each back **exactly once** on every path. Bun got this wrong twice in
//! one pull request (a null unwrap, then a check placed after the allocation). reqguard makes
//! the right order the only one that compiles.
//!
//! # The tutorial
//!
//! ## 1. A server core and its wrapper
//!
//! A runtime keeps one [`ServerCore`] per server. It holds the wrapper through an [`Engine`]
//! (here the embedded [`Heap`](engines::Heap); the `v8` feature holds a `v8::Global`):
//!
//! ```
//! use reqguard::{Config, ServerCore, engines::Heap};
//!
//! let heap = Heap::new();
//! let core = ServerCore::embedded(heap.alloc("my server"), Config::default());
//! # let _ = core;
//! ```
//!
//! ## 2. Upgrade first: the proof
//!
//! [`ServerCore::upgrade`] returns `Option<`[`Live`]`>`. The proof is the only way to mint a
//! guard, so "allocate, then check" does not compile:
//!
//! ```compile_fail
//! # use reqguard::{Config, ServerCore, PendingTicket, engines::Heap};
//! # let heap = Heap::new();
//! # let core = ServerCore::embedded(heap.alloc("s"), Config::default());
//! let ticket = PendingTicket::new(&core); // no such thing: tickets come from a `Live`
//! ```
//!
//! ## 3. Take the bundle, all or nothing
//!
//! [`Live::admit`] takes a [`PendingTicket`], a pooled [`RequestContext`], an [`AbortSignal`]
//! with its [`ActivityRef`], and a [`RequestObject`] in one step. If a step fails, what was taken
//! is released in reverse order and you get a [`Refusal`] that holds nothing:
//!
//! ```
//! use reqguard::{Config, Refusal, ServerCore, engines::Heap};
//!
//! # let heap = Heap::new();
//! # let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("s"), Config::default());
//! fn on_request(core: &ServerCore<reqguard::engines::Embedded<&'static str>, Vec<u8>>)
//!     -> Result<u16, Refusal>
//! {
//!     let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
//!     let bundle = live.admit(|ctx| {
//!         ctx.extend_from_slice(b"hello");
//!         Ok("GET /")
//!     })?;
//!     // ... call the handler with live.wrapper() as `this` and the bundle ...
//!     bundle.complete(); // answered: every guard is released (a drop on `?` or a panic
//!                        // releases them too, ends the request as `Dropped` and fires its signal)
//!     Ok(200)
//! }
//! assert_eq!(on_request(&core), Ok(200));
//! core.ledger().assert_quiescent();
//! ```
//!
//! ## 4. Stop and drain
//!
//! [`ServerCore::stop`] closes admission and returns a [`Drain`] that completes when the last
//! ticket drops. The [`DowngradePolicy`] says when the wrapper turns weak. After it is collected
//! the upgrade fails, and a late request on a kept-alive connection gets a 503 instead of a
//! crash:
//!
//! ```
//! use reqguard::{Config, DowngradePolicy, ServerCore, engines::Heap};
//!
//! let heap = Heap::new();
//! let core = ServerCore::embedded(
//!     heap.alloc("server"),
//!     Config::default().with_downgrade(DowngradePolicy::OnStop),
//! );
//! let drain = core.stop();
//! assert!(drain.is_complete()); // nothing was out
//! heap.collect(); // the collector finalizes the wrapper
//! assert!(core.upgrade().is_none()); // -> answer 503, take nothing
//! ```
//!
//! ## 5. The ledger catches what types cannot
//!
//! `mem::forget` and `Rc` cycles are safe Rust. The [`Ledger`] counts every guard and, in debug
//! builds or with the `leak-check` feature, records where it was minted:
//!
//! ```
//! use reqguard::{Config, PendingTicket, ServerCore, engines::Heap};
//!
//! let heap = Heap::new();
//! let core = ServerCore::embedded(heap.alloc("server"), Config::default());
//! PendingTicket::forget(core.upgrade().unwrap().ticket().unwrap());
//! let report = core.ledger().report().to_string();
//! assert!(report.starts_with("1 pending-request ticket"));
//! assert!(report.contains("was never released"));
//! // Where: "minted at src/main.rs:7" in debug builds and with `leak-check`; otherwise the
//! // report says how to see it.
//! assert_eq!(report.contains(" minted at "), reqguard::Ledger::tracks_sites());
//! ```
//!
//! ## 6. One outcome per request
//!
//! Call [`Admitted::complete`] when the answer is written, [`Admitted::end`] with an
//! [`Outcome`] when the stack gives up on the request (client gone, force-closed); a bundle
//! that is only dropped ends as [`Outcome::Dropped`] and fires its abort signal. Counts are in
//! [`Ledger::outcomes`] and [`DrainReport`].
//!
//! Recommended in a runtime built on reqguard: `#![deny(let_underscore_drop)]`. `let _ = guard;`
//! drops a guard at once and `#[must_use]` does not see it; that lint does
//! (`tests/ui/let_underscore_activity_ref.rs`).
//!
//! ## 7. Completing a deferred request
//!
//! A handler that returns a pending promise keeps its bundle: store it with the connection and
//! end it when the answer is written, or when the connection goes away. Its signal fires only
//! for the second:
//!
//! ```
//! use std::collections::HashMap;
//! use reqguard::{Admitted, Config, Outcome, ServerCore, engines::Heap};
//!
//! let heap = Heap::new();
//! let core = ServerCore::embedded(heap.alloc("server"), Config::default());
//! let mut pending: HashMap<u32, Admitted<(), &str>> = HashMap::new();
//!
//! // onRequest: admitted, then the handler's promise is still pending.
//! let live = core.upgrade().unwrap();
//! pending.insert(1, live.admit(|_| Ok("GET /slow"))?);
//! pending.insert(2, live.admit(|_| Ok("GET /slow"))?);
//! drop(live);
//!
//! // Promise 1 resolves: the answer is written.
//! pending.remove(&1).unwrap().complete();
//! // The client of request 2 closes its socket: its signal fires with ClientDisconnected.
//! let gone = pending.remove(&2).unwrap();
//! let signal = gone.signal().clone();
//! gone.end(Outcome::ClientGone);
//! assert!(signal.is_aborted());
//!
//! let outcomes = core.ledger().outcomes();
//! assert_eq!((outcomes.completed, outcomes.client_gone), (1, 1));
//! assert!(core.stop().is_complete());
//! # Ok::<(), reqguard::Refusal>(())
//! ```
//!
//! ## 8. Implementing an `Engine`
//!
//! An [`Engine`] names your runtime's strong and weak handles to the wrapper and how to turn
//! one into the other. `upgrade` must return `None` once the object is finalized; that `None`
//! is what becomes a 503. Here the "runtime" is `Rc`, so finalized means freed:
//!
//! ```
//! use std::rc::{Rc, Weak};
//! use reqguard::{Config, DowngradePolicy, Engine, Refusal, ServerCore};
//!
//! struct RcEngine;
//!
//! impl Engine for RcEngine {
//!     type Strong = Rc<String>;
//!     type Weak = Weak<String>;
//!     type Scope<'s> = (); // v8 needs its isolate here; QuickJS a `Ctx`
//!
//!     fn downgrade(_: &mut (), strong: &Rc<String>) -> Weak<String> {
//!         Rc::downgrade(strong)
//!     }
//!
//!     fn upgrade(_: &mut (), weak: &Weak<String>) -> Option<Rc<String>> {
//!         weak.upgrade()
//!     }
//! }
//!
//! let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
//! let core: ServerCore<RcEngine> = ServerCore::new(&mut (), Rc::new("server".into()), config);
//! let live = core.upgrade().unwrap();
//! assert_eq!(live.wrapper().as_str(), "server"); // the handler's `this`
//! live.admit(|_| Ok(()))?.complete();
//! drop(live);
//! let _drain = core.stop(); // downgrades: the last `Rc` is gone, the wrapper is "finalized"
//! assert!(core.upgrade().is_none()); // -> 503, nothing taken
//! # Ok::<(), Refusal>(())
//! ```
//!
//! `docs/engines.md` walks through the v8 and QuickJS adapters.
//!
//! # Guarantees
//!
//! | | guarantee | how |
//! |---|---|---|
//! | G1 | proof first | guards are minted only by [`Live`]; it is `!Send`, unforgeable, borrow-bound |
//! | G2 | release on drop | every guard releases in `Drop`; none is `Clone`; all are `#[must_use]` |
//! | G3 | all or nothing | [`Live::admit`] releases in reverse order on failure |
//! | G4 | refusal allocates nothing | [`Refusal`] is `Copy`; [`Refusal::consume`] takes guards |
//! | G5 | drain | [`Drain`]: a `Future` and a pollable handle with a deadline |
//! | G6 | ledger | [`Ledger`], [`LeakReport`] |
//! | G7 | zero cost | pooled contexts, recycled signals; see `docs/benchmarks.md` |
//! | G8 | one outcome | [`Admitted::complete`] / [`Admitted::end`] / drop; [`Ledger::outcomes`] |
//! | G9 | bounded | limits on every buffer, count and time (`http::Limits`, `tokio_hyper::Options`, [`Config::MAX_POOL_CAPACITY`]); embedders' callbacks run caught, panics counted |
//!
//! Guards are single-threaded: a server's event loop owns them, and the counters are plain
//! cells, not atomics. See [`features`] for the cargo features.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admit;
#[cfg(any(feature = "server", feature = "hyper"))]
mod authority;
mod callback;
#[cfg(any(feature = "server", feature = "hyper"))]
mod codings;

/// The longest timeout either server keeps: one year, effectively never. A longer one
/// (`Duration::MAX` for "no timeout") would overflow the `Instant` it is added to.
#[cfg(any(feature = "server", feature = "hyper"))]
pub(crate) const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

#[cfg(any(feature = "server", feature = "hyper"))]
mod delivery;
pub mod engines;
pub mod features;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod http;
#[cfg(any(feature = "server", feature = "hyper"))]
mod knobs;
mod ledger;
mod pool;
#[cfg(any(feature = "server", feature = "hyper"))]
mod report_json;
mod server;
mod signal;
mod ticket;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod tokio_hyper;
#[cfg(any(feature = "server", feature = "hyper"))]
mod unsent;
mod wrapper;

pub use crate::admit::{Admitted, Outcome, OutcomeCounts, Refusal, RefusalReason, RequestObject};
pub use crate::ledger::{GuardKind, LeakReport, LeakSite, Ledger, LedgerEvent};
pub use crate::pool::{Exhaustion, PoolMetrics, Recycle, RequestContext};
pub use crate::server::{Config, ConfigError, ServerCore};
pub use crate::signal::{AbortReason, AbortSignal, ActivityRef};
pub use crate::ticket::{Drain, DrainReport, DrainStatus, PendingTicket};
pub use crate::wrapper::{DowngradePolicy, Engine, Live, WrapperCell};

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctest;

/// docs/server.md's examples, compiled and run as doctests so they stay true.
#[cfg(all(doctest, feature = "server", feature = "quickjs"))]
#[doc = include_str!("../docs/server.md")]
pub struct ServerMdDoctest;

/// docs/hyper.md's examples, compiled and run as doctests so they stay true.
#[cfg(all(doctest, feature = "hyper"))]
#[doc = include_str!("../docs/hyper.md")]
pub struct HyperMdDoctest;

/// docs/engines.md's examples (the QuickJS adapter's; the v8 and Boa sketches are marked
/// `ignore`), compiled and run as doctests so they stay true.
#[cfg(all(doctest, feature = "quickjs"))]
#[doc = include_str!("../docs/engines.md")]
pub struct EnginesMdDoctest;

mod assertions {
    //! Auto-trait and size facts the guarantees rest on.
    use super::engines::Embedded;
    use super::*;
    use static_assertions::{assert_impl_all, assert_not_impl_any};

    // G1: the proof and the guards stay on the event loop's thread, and the proof cannot be
    // copied into a second request.
    assert_not_impl_any!(Live<'static, Embedded<()>>: Send, Sync, Clone);
    assert_not_impl_any!(PendingTicket: Send, Sync, Clone, Default);
    assert_not_impl_any!(RequestContext<()>: Send, Sync, Clone, Default);
    assert_not_impl_any!(ActivityRef: Send, Sync, Clone, Default);
    assert_not_impl_any!(RequestObject<()>: Send, Sync, Clone, Default);
    assert_not_impl_any!(Admitted<(), ()>: Send, Sync, Clone);
    assert_not_impl_any!(Drain: Send, Sync);
    // G4: a refusal holds nothing.
    assert_impl_all!(Refusal: Copy, Send, Sync, std::error::Error);

    // G7: a ticket is one pointer (plus its ledger key in leak-check builds).
    #[cfg(not(any(debug_assertions, feature = "leak-check")))]
    static_assertions::assert_eq_size!(PendingTicket, usize);
    static_assertions::assert_eq_size!(Refusal, [usize; 3]);
}
