//! The proof: the wrapper upgrade succeeded, so per-request resources may be taken.

use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::rc::Rc;

use scopeguard::ScopeGuard;

use super::engine::Engine;
#[cfg(feature = "server")]
use crate::admit::GuardedHeld;
use crate::admit::{Admitted, Parts, Refusal, RefusalReason, RequestObject};
use crate::ledger::{BundleEntry, TraceMark};
use crate::pool::{ContextPool, Recycle, RequestContext, Slot};
use crate::server::ServerCore;
use crate::signal::AbortSignal;
use crate::ticket::PendingTicket;

/// Proof that the server's wrapper was upgraded from weak to strong: the only way to mint a
/// ticket, a request context, an activity ref or a request object.
///
/// Get one from [`ServerCore::upgrade`] (or the callback form [`ServerCore::with_live`]). It
/// cannot be forged (its fields are private and it has no constructor), cannot outlive the
/// borrow of the server core it came from, and cannot cross threads. It holds a strong handle
/// to the wrapper, so the wrapper stays alive while the proof does.
///
/// # Examples
///
/// Upgrade first; only then take resources. When the upgrade fails, answer 503 and allocate
/// nothing:
///
/// ```
/// use reqguard::{Config, DowngradePolicy, Refusal, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(
///     heap.alloc("server"),
///     Config::default().with_downgrade(DowngradePolicy::OnStop),
/// );
///
/// let on_request = |core: &ServerCore<_>| -> Result<&'static str, Refusal> {
///     let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
///     let bundle = live.admit(|_ctx| Ok("GET /"))?;
///     let line = *bundle.request().unwrap();
///     bundle.complete();
///     Ok(line)
/// };
///
/// assert_eq!(on_request(&core), Ok("GET /"));
/// let _drain = core.stop(); // downgrades the wrapper...
/// heap.collect(); // ...and the collector finalizes it
/// assert!(core.upgrade().is_none());
/// assert_eq!(on_request(&core), Err(Refusal::WRAPPER_FINALIZED));
/// core.ledger().assert_quiescent();
/// ```
pub struct Live<'a, E: Engine, C: Recycle = ()> {
    core: &'a ServerCore<E, C>,
    wrapper: E::Strong,
    _not_send: PhantomData<*const ()>,
}

impl<'a, E: Engine, C: Recycle> Live<'a, E, C> {
    #[inline]
    pub(crate) fn new(core: &'a ServerCore<E, C>, wrapper: E::Strong) -> Self {
        Live {
            core,
            wrapper,
            _not_send: PhantomData,
        }
    }

    /// The strong handle to the wrapper: the `this` to call the handler with.
    pub fn wrapper(&self) -> &E::Strong {
        &self.wrapper
    }

    /// The strong handle to the wrapper, ending the proof (no clone of the handle): the
    /// handler's `this` once the request is admitted.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// let bundle = live.admit(|_| Ok(())).unwrap();
    /// let this = live.into_wrapper(); // the bundle needs no proof once admitted
    /// assert_eq!(*this, "server");
    /// bundle.complete();
    /// ```
    pub fn into_wrapper(self) -> E::Strong {
        self.wrapper
    }

    /// The server core this proof came from.
    pub fn core(&self) -> &'a ServerCore<E, C> {
        self.core
    }

    /// A pending-request ticket, unless the server is stopped.
    ///
    /// # Errors
    ///
    /// [`RefusalReason::Stopped`] once [`ServerCore::stop`] has been called.
    #[track_caller]
    #[inline]
    pub fn ticket(&self) -> Result<PendingTicket, Refusal> {
        if self.core.is_stopped() {
            return Err(Refusal::new(RefusalReason::Stopped));
        }
        Ok(PendingTicket::mint(self.core.shared(), Location::caller()))
    }

    /// A pooled context for the request `ticket` admitted; the context holds the ticket.
    ///
    /// # Errors
    ///
    /// [`RefusalReason::OtherServer`] when `ticket` was minted by another server (the ticket is
    /// given back to its own server); [`RefusalReason::PoolExhausted`] when every pooled
    /// context is in use and the pool's policy is [`Exhaustion::Refuse`](crate::Exhaustion::Refuse)
    /// (the ticket is released).
    #[track_caller]
    #[inline]
    pub fn context(&self, ticket: PendingTicket) -> Result<RequestContext<C>, Refusal> {
        if !ticket.is_of(self.core.shared()) {
            return Err(Refusal::new(RefusalReason::OtherServer));
        }
        RequestContext::checkout(self.core.pool(), ticket, Location::caller())
            .ok_or(Refusal::new(RefusalReason::PoolExhausted))
    }

    /// A new abort signal (reused from a finished request when one is spare).
    ///
    /// A signal is not a guard: nothing counts it. Native work pending on an admitted request's
    /// signal takes an [`ActivityRef`](crate::ActivityRef) from the bundle,
    /// [`Admitted::activity_ref`].
    #[inline]
    pub fn signal(&self) -> AbortSignal {
        AbortSignal::mint(self.core.shared())
    }

    /// A request object for the engine, counted until [`RequestObject::hand_off`]
    /// (`Request.new(existing)` in `server.fetch()`).
    ///
    /// # Errors
    ///
    /// [`RefusalReason::Stopped`] once [`ServerCore::stop`] has been called: a proof kept past
    /// its callback mints nothing new after stop. A request of an admitted bundle comes with
    /// the bundle ([`Live::admit`]).
    #[track_caller]
    #[inline]
    pub fn request<R>(&self, payload: R) -> Result<RequestObject<R>, Refusal> {
        if self.core.is_stopped() {
            return Err(Refusal::new(RefusalReason::Stopped));
        }
        Ok(RequestObject::mint(
            self.core.shared(),
            payload,
            Location::caller(),
        ))
    }

    /// Takes the whole bundle for one request, all or nothing (G3).
    ///
    /// In order: a pooled context (a pool that refuses has taken nothing: no ticket is minted
    /// for it), then the ticket and the signal with its activity ref (one ledger entry for all
    /// three), then `build` fills the context and makes the request payload. While `build` runs the request is pending (a `stop()` from inside it waits
    /// for it, and the deadline may abort its signal). If any step fails (the server is
    /// stopped, the pool refuses, `build` refuses or panics: body too large, engine error),
    /// what was taken is released in reverse order and the refusal holds nothing. The bundle
    /// then ends with one [`Outcome`](crate::Outcome): see [`Admitted`].
    ///
    /// # Errors
    ///
    /// The first step's [`Refusal`].
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, Refusal, RefusalReason, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// let body = vec![0u8; 2048];
    /// let limit = 1024;
    /// let refused = live.admit(|ctx| {
    ///     if body.len() > limit {
    ///         return Err(Refusal::new(RefusalReason::PayloadTooLarge { limit }));
    ///     }
    ///     ctx.extend_from_slice(&body);
    ///     Ok(())
    /// });
    /// assert_eq!(refused.unwrap_err().status(), 413);
    /// core.ledger().assert_quiescent(); // the ticket, context and activity ref were released
    /// assert_eq!(core.ledger().outcomes().total(), 0); // a refusal is not an admitted request
    /// ```
    #[track_caller]
    #[inline]
    pub fn admit<R>(
        &self,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
    ) -> Result<Admitted<C, R>, Refusal> {
        self.admit_at(Location::caller(), build)
    }

    /// [`admit`](Live::admit), its bundle minted at `site`: an adapter that admits for the
    /// embedder names the embedder's code in leak reports, not its own (the hyper adapter:
    /// where its `HyperServer` was made).
    #[inline(always)]
    pub(crate) fn admit_at<R>(
        &self,
        site: &'static Location<'static>,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
    ) -> Result<Admitted<C, R>, Refusal> {
        Self::admit_held(self.core, site, build)
    }

    /// [`admit_at`](Live::admit_at) on `core`, for a caller that holds a strong handle of
    /// `core`'s wrapper where it keeps it, for the whole call: the proof in all but name
    /// (`Guarded`'s `this`), not moved into a `Live` and back, nor built in memory.
    #[inline(always)]
    pub(crate) fn admit_held<R>(
        core: &ServerCore<E, C>,
        site: &'static Location<'static>,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
    ) -> Result<Admitted<C, R>, Refusal> {
        Self::admit_into(core, site, build, Parts::admit)
    }

    /// [`admit_held`](Live::admit_held) for [`Guarded`](crate::http::Guarded): its bundle
    /// without a payload, and an empty context (`build` does nothing).
    #[cfg(feature = "server")]
    #[inline(always)]
    pub(crate) fn admit_guarded(
        core: &ServerCore<E, C>,
        site: &'static Location<'static>,
    ) -> Result<GuardedHeld<C>, Refusal> {
        Self::admit_into(core, site, |_ctx| Ok(()), |parts, ()| parts.admit_bare())
    }

    /// [`admit_held`](Live::admit_held), its bundle made by `admitted` from the parts and the
    /// payload `build` made.
    #[inline(always)]
    fn admit_into<R, T>(
        core: &ServerCore<E, C>,
        site: &'static Location<'static>,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
        admitted: impl FnOnce(Parts<C>, R) -> T,
    ) -> Result<T, Refusal> {
        let ledger = &core.shared().ledger;
        // One check for the rare cases: the server stopped, a trace recording. And a context
        // to make: `C::default` is user code, which may stop the server or start a trace.
        if ledger.is_plain() {
            // The context first: a refusing pool takes nothing (no ticket is minted for it).
            let pool = core.pool();
            if let Some(taken) = pool.pop() {
                let entry = ledger.mint_bundle_plain(site);
                return Self::build(core, pool, taken, entry, None, build, admitted);
            }
        }
        let noted = Self::take_noted(core, site).map_err(ColdRefusal::refusal)?;
        Self::build(
            core,
            core.pool(),
            noted.slot,
            noted.entry,
            noted.mark,
            build,
            admitted,
        )
    }

    /// [`admit`](Live::admit)'s first steps when the server is stopped, the ledger is
    /// tracing or the free list is empty: the stop's refusal, else the context (made if need
    /// be) and the mint, traced if a trace is on (and the trace's mark, for the request object).
    #[cold]
    #[inline(never)]
    fn take_noted(
        core: &ServerCore<E, C>,
        site: &'static Location<'static>,
    ) -> Result<Noted<C>, ColdRefusal> {
        if core.is_stopped() {
            return Err(ColdRefusal::Stopped);
        }
        let taken = match core.pool().pop() {
            Some(slot) => slot,
            None => Self::checkout_made(core)?,
        };
        let ledger = &core.shared().ledger;
        let entry = ledger.mint_bundle(site);
        Ok(Noted {
            slot: taken,
            entry,
            mark: ledger.trace_mark(),
        })
    }

    /// Takes the bundle for a request that already owns its `ticket` (a saved request coming
    /// back, Bun's `onSavedRequest`): context, signal, activity ref and request object, all or
    /// nothing, as [`admit`](Live::admit) does after its ticket. It works after
    /// [`ServerCore::stop`] too: the request was admitted before. Once the drain's deadline
    /// has escalated ([`Drain::poll_deadline`](crate::Drain::poll_deadline) past the deadline,
    /// or [`Drain::escalate`](crate::Drain::escalate)), the bundle comes with its signal
    /// already aborted ([`AbortReason::DrainDeadline`](crate::AbortReason::DrainDeadline), its
    /// outcome *deadline aborted*), as the escalation aborted every request out then: it runs
    /// once, and later polls abort nothing. A listener added to that signal is refused
    /// ([`on_abort`](crate::AbortSignal::on_abort) returns `false`), so a handler checks
    /// [`is_aborted`](crate::AbortSignal::is_aborted) first (JS: `if (signal.aborted)`).
    ///
    /// # Errors
    ///
    /// [`RefusalReason::OtherServer`] when `ticket` belongs to another server (it goes back to
    /// its own server); otherwise as [`admit`](Live::admit), with the ticket released.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let saved = core.upgrade().unwrap().ticket().unwrap(); // the request is saved for later
    /// let drain = core.stop();
    /// let bundle = core.upgrade().unwrap().admit_with(saved, |_| Ok("GET /")).unwrap();
    /// bundle.complete();
    /// assert!(drain.is_complete());
    /// assert_eq!(core.ledger().outcomes().completed, 1);
    /// ```
    #[track_caller]
    pub fn admit_with<R>(
        &self,
        ticket: PendingTicket,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
    ) -> Result<Admitted<C, R>, Refusal> {
        if !ticket.is_of(self.core.shared()) {
            return Err(Refusal::new(RefusalReason::OtherServer));
        }
        let taken = self.checkout()?; // refused: the ticket drops, the request ends
        let entry = ticket.into_bundle(Location::caller());
        let mark = self.core.shared().ledger.trace_mark();
        let bundle = Self::build(
            self.core,
            self.core.pool(),
            taken,
            entry,
            mark,
            build,
            Parts::admit,
        )?;
        if self.core.shared().drain.is_escalated() {
            past_the_deadline(&bundle);
        }
        Ok(bundle)
    }

    /// The free list was empty: a context is made (or spilled, or refused). Making it runs
    /// user code (`C::default`), which may stop the server: then the drain may have completed
    /// and nothing may be minted, so the context goes back and the request is refused.
    #[cold]
    #[inline(never)]
    fn checkout_made(core: &ServerCore<E, C>) -> Result<Box<Slot<C>>, ColdRefusal> {
        let pool = core.pool();
        let slot = pool.checkout_new().ok_or(ColdRefusal::PoolExhausted)?;
        if core.is_stopped() {
            pool.checkin(slot);
            return Err(ColdRefusal::Stopped);
        }
        Ok(slot)
    }

    #[inline]
    fn checkout(&self) -> Result<Box<Slot<C>>, Refusal> {
        self.core
            .pool()
            .checkout()
            .ok_or(Refusal::new(RefusalReason::PoolExhausted))
    }

    /// Mints the bundle's parts around `taken`, runs `build` on its context, and admits it
    /// (`admitted`); a refusal or a panic in `build` gives the parts back (the scope guard's
    /// `refuse`). `mark`: the trace that recorded the mint, if one did: the request object's
    /// mint is recorded in that trace only.
    #[inline(always)]
    fn build<R, T>(
        core: &ServerCore<E, C>,
        pool: &Rc<ContextPool<C>>,
        taken: Box<Slot<C>>,
        entry: BundleEntry,
        mark: Option<TraceMark>,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
        admitted: impl FnOnce(Parts<C>, R) -> T,
    ) -> Result<T, Refusal> {
        let parts = Parts::mint(pool, taken, entry);
        let mut parts = scopeguard::guard(parts, Parts::refuse);
        let payload = build(parts.context_mut())?;
        if let Some(mark) = mark {
            core.shared().ledger.bundle_built(mark);
        }
        Ok(admitted(ScopeGuard::into_inner(parts), payload))
    }
}

/// A saved request admitted after the drain's deadline escalated: its signal fires now, as the
/// escalation fired those of every request out then (before, nothing ever aborted it: later
/// polls of the deadline do not escalate again, and a handler that waits for its abort kept the
/// drain from completing for good).
#[cold]
#[inline(never)]
fn past_the_deadline<C: Recycle, R>(bundle: &Admitted<C, R>) {
    bundle.signal().abort(crate::AbortReason::DrainDeadline);
}

/// What the noted path of [`Live::admit`] took before `build` runs: the context's slot, the
/// bundle's ledger entry, and the trace that recorded the mint, if one did.
struct Noted<C> {
    slot: Box<Slot<C>>,
    entry: BundleEntry,
    mark: Option<TraceMark>,
}

/// The refusals of [`Live::admit`]'s cold first steps (`take_noted`): a fieldless enum, so
/// that the admission, which inlines the refusal's making, knows every value the cold path can
/// return. Returned as a [`Refusal`] (several words, read back from the cold call's memory),
/// the refusal's first word is also the niche of the admission's `Result` (its `Ok`): the
/// admission tested for an `Ok` that no refusal can be, and the bundle it took that way was
/// a pointer from memory, tested again at the release (`GuardedHeld`'s slot).
#[derive(Clone, Copy)]
enum ColdRefusal {
    Stopped,
    PoolExhausted,
}

impl ColdRefusal {
    #[inline(always)]
    fn refusal(self) -> Refusal {
        Refusal::new(match self {
            ColdRefusal::Stopped => RefusalReason::Stopped,
            ColdRefusal::PoolExhausted => RefusalReason::PoolExhausted,
        })
    }
}

impl<E: Engine, C: Recycle> fmt::Debug for Live<'_, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}
