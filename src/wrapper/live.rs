//! The proof: the wrapper upgrade succeeded, so per-request resources may be taken.

use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;

use super::engine::Engine;
use crate::admit::{Admitted, Refusal, RefusalReason, RequestObject};
use crate::core::ServerCore;
use crate::pool::{Recycle, RequestContext};
use crate::signal::{AbortSignal, ActivityRef};
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
///     Config::default().downgrade(DowngradePolicy::OnStop),
/// );
///
/// let on_request = |core: &ServerCore<_>| -> Result<&'static str, Refusal> {
///     let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
///     let bundle = live.admit(|_ctx| Ok("GET /"))?;
///     Ok(*bundle.request)
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
    /// The context comes from this server's pool and is counted in the ledger of the server
    /// that minted `ticket` (the request's server), where its release is recorded too.
    ///
    /// # Errors
    ///
    /// [`RefusalReason::PoolExhausted`] when every pooled context is in use and the pool's
    /// policy is [`Exhaustion::Refuse`](crate::Exhaustion::Refuse); the ticket is released.
    #[track_caller]
    #[inline]
    pub fn context(&self, ticket: PendingTicket) -> Result<RequestContext<C>, Refusal> {
        RequestContext::checkout(self.core.pool(), ticket, Location::caller())
            .ok_or(Refusal::new(RefusalReason::PoolExhausted))
    }

    /// A new abort signal (reused from a finished request when one is spare).
    #[inline]
    pub fn signal(&self) -> AbortSignal {
        AbortSignal::mint(self.core.shared())
    }

    /// An activity ref keeping `signal` alive while native work on it is pending.
    #[track_caller]
    #[inline]
    pub fn activity_ref(&self, signal: &AbortSignal) -> ActivityRef {
        ActivityRef::mint(signal)
    }

    /// A request object for the engine, counted until [`RequestObject::hand_off`].
    #[track_caller]
    #[inline]
    pub fn request<R>(&self, payload: R) -> RequestObject<R> {
        RequestObject::mint(self.core.shared(), payload, Location::caller())
    }

    /// Takes the whole bundle for one request, all or nothing (G3).
    ///
    /// In order: a ticket, a pooled context holding it, a signal with an activity ref, then
    /// `build` fills the context and makes the request payload. If any step fails (the server
    /// is stopped, the pool refuses, `build` refuses: body too large, engine error), what was
    /// taken is released in reverse order and the refusal holds nothing.
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
    /// ```
    #[track_caller]
    #[inline]
    pub fn admit<R>(
        &self,
        build: impl FnOnce(&mut C) -> Result<R, Refusal>,
    ) -> Result<Admitted<C, R>, Refusal> {
        let site = Location::caller();
        if self.core.is_stopped() {
            return Err(Refusal::new(RefusalReason::Stopped));
        }
        let ticket = PendingTicket::mint(self.core.shared(), site);
        let mut context = RequestContext::checkout(self.core.pool(), ticket, site)
            .ok_or(Refusal::new(RefusalReason::PoolExhausted))?;
        let activity = ActivityRef::mint_owned(self.signal());
        let payload = build(&mut context)?;
        let request = RequestObject::mint(self.core.shared(), payload, site);
        Ok(Admitted {
            request,
            activity,
            context,
        })
    }
}

impl<E: Engine, C: Recycle> fmt::Debug for Live<'_, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}
