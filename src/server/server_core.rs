//! The server core: what a runtime keeps for each native server.

use std::fmt;
use std::rc::Rc;

use super::config::Config;
use super::shared::Shared;
use crate::admit::Refusal;
use crate::ledger::Ledger;
use crate::pool::{ContextPool, PoolMetrics, Recycle};
use crate::ticket::Drain;
use crate::wrapper::{DowngradePolicy, Engine, Live, WrapperCell};

/// The native half of a server: its wrapper cell, its context pool, its ledger and its drain.
///
/// A runtime makes one per `serve()` call and keeps it in its native server struct. Every
/// callback from the event loop starts with [`upgrade`](ServerCore::upgrade) (or
/// [`upgrade_in`](ServerCore::upgrade_in) when the engine needs a scope); only the resulting
/// [`Live`] proof can mint per-request guards. `E` is the engine holding the wrapper, `C` the
/// per-request context type the pool recycles.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
///
/// let live = core.upgrade().expect("a listening server's wrapper is strong");
/// let bundle = live.admit(|_ctx| Ok("GET /")).unwrap();
/// drop(live);
///
/// let drain = core.stop();
/// assert!(!drain.is_complete()); // one request is still out
/// bundle.complete();
/// assert!(drain.is_complete());
/// core.ledger().assert_quiescent();
/// ```
pub struct ServerCore<E: Engine, C: Recycle = ()> {
    wrapper: Rc<WrapperCell<E>>,
    shared: Rc<Shared>,
    pool: Rc<ContextPool<C>>,
    /// As given to the constructor, read back by [`config`](ServerCore::config).
    config: Config,
}

impl<E: Engine, C: Recycle> ServerCore<E, C> {
    /// A server core around the wrapper `strong` keeps alive; `scope` makes its weak handle.
    ///
    /// # Panics
    ///
    /// If the engine's [`downgrade`](Engine::downgrade) panics (see the engine's docs), or if
    /// `C::default` panics making the contexts [`Config::with_prewarm`] asks for: the panic is
    /// the caller's, and nothing is kept (`strong` goes with the unwinding). So do the other
    /// constructors (`embedded`, `quickjs`, ...) when `C::default` panics.
    pub fn new(scope: &mut E::Scope<'_>, strong: E::Strong, config: Config) -> Self {
        ServerCore::with_cell(WrapperCell::new(scope, strong), config)
    }

    /// A server core around a wrapper cell made by the caller (an adapter that made the weak
    /// handle itself: [`WrapperCell::from_handles`]).
    pub(crate) fn with_cell(cell: WrapperCell<E>, config: Config) -> Self {
        let shared = Rc::new(Shared::new(config.pool_capacity()));
        let pool = ContextPool::new(
            Rc::clone(&shared),
            config.pool_capacity(),
            config.exhaustion(),
        );
        pool.prewarm(config.prewarm());
        ServerCore {
            wrapper: Rc::new(cell),
            shared,
            pool: Rc::new(pool),
            config,
        }
    }

    /// Upgrades the wrapper: the proof that guards may be minted, or `None` if the wrapper has
    /// been finalized (answer 503 then, and take nothing).
    #[inline]
    pub fn upgrade_in(&self, scope: &mut E::Scope<'_>) -> Option<Live<'_, E, C>> {
        Some(Live::new(
            self,
            self.wrapper.upgrade(scope, &self.shared.drain)?,
        ))
    }

    /// Runs `callback` with the proof, or refuses if the wrapper has been finalized.
    ///
    /// The proof cannot leave the callback: `callback` must accept a `Live` of any lifetime.
    ///
    /// # Errors
    ///
    /// [`Refusal::WRAPPER_FINALIZED`] if the upgrade fails; `callback` does not run.
    pub fn with_live_in<R>(
        &self,
        scope: &mut E::Scope<'_>,
        callback: impl for<'l> FnOnce(Live<'l, E, C>) -> R,
    ) -> Result<R, Refusal> {
        let live = self.upgrade_in(scope).ok_or(Refusal::WRAPPER_FINALIZED)?;
        Ok(callback(live))
    }

    /// Stops admission and returns the drain, which completes when the last ticket drops.
    ///
    /// With [`DowngradePolicy::OnStop`] the wrapper is downgraded now, once admission is
    /// closed (what dropping its strong handle runs, the engine's code, cannot admit); with
    /// [`DowngradePolicy::OnDrain`] when the drain completes, and the drain itself keeps the
    /// strong handle until then: dropping this `ServerCore` while requests are out does not
    /// let the wrapper go. Calling it again returns another handle to the same drain.
    ///
    /// The downgrade may finalize the wrapper (the engine's finalizer runs): if that panics,
    /// the panic is caught and counted in [`DrainReport::panicked_hooks`](crate::DrainReport),
    /// and the stop goes on.
    pub fn stop(&self) -> Drain {
        if !self.shared.is_stopped() {
            match self.config.downgrade() {
                // Dropping the last strong handle may finalize the wrapper (an engine's
                // finalizer, user code): caught and counted, as the `OnDrain` hook's is, so
                // the stop always happens (and never aborts the process while unwinding).
                // Admission closes first, the downgrade comes after: what dropping the strong
                // handle runs may upgrade this server (the wrapper is not finalized yet) and
                // try to admit, refused as stopped (before, it was admitted inside `stop()`:
                // QA embed24-3).
                DowngradePolicy::OnStop => {
                    self.shared.stop();
                    let cell = &self.wrapper;
                    self.shared.drain.run_caught(|| cell.downgrade());
                    return Drain::new(Rc::clone(&self.shared));
                }
                DowngradePolicy::OnDrain => {
                    // Strong: the cell (and its strong handle) lives until the drain completes,
                    // whoever drops what first.
                    let cell = Rc::clone(&self.wrapper);
                    self.shared.drain.on_drained(Box::new(move || {
                        cell.downgrade();
                        0
                    }));
                }
            }
            self.shared.stop();
        }
        Drain::new(Rc::clone(&self.shared))
    }

    /// Whether [`stop`](ServerCore::stop) has been called.
    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }

    /// The drain, once [`stop`](ServerCore::stop) has been called.
    pub fn drain(&self) -> Option<Drain> {
        self.is_stopped()
            .then(|| Drain::new(Rc::clone(&self.shared)))
    }

    /// The ledger of outstanding guards.
    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// The context pool's figures.
    pub fn pool_metrics(&self) -> PoolMetrics {
        self.pool.metrics()
    }

    /// The wrapper cell.
    pub fn wrapper(&self) -> &WrapperCell<E> {
        &self.wrapper
    }

    /// The downgrade policy: [`config().downgrade()`](Config::downgrade).
    pub fn downgrade_policy(&self) -> DowngradePolicy {
        self.config.downgrade()
    }

    /// The [`Config`] this core was made with, read back (plain name, C-GETTER, as the
    /// builders' `settings()`): its capacity, exhaustion policy, downgrade policy and prewarm.
    /// What the pool holds now is [`pool_metrics`](ServerCore::pool_metrics).
    ///
    /// # Examples
    ///
    /// A core made elsewhere (by an adapter, a server builder's factory) says how it pools:
    ///
    /// ```
    /// use reqguard::{Config, DowngradePolicy, Exhaustion, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let config = Config::default()
    ///     .with_pool_capacity(8)?
    ///     .with_exhaustion(Exhaustion::Refuse)
    ///     .with_downgrade(DowngradePolicy::OnStop);
    /// let core = ServerCore::embedded(heap.alloc("server"), config);
    /// assert_eq!(core.config(), &config);
    /// assert_eq!(core.config().exhaustion(), Exhaustion::Refuse);
    /// # Ok::<(), reqguard::ConfigError>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn shared(&self) -> &Rc<Shared> {
        &self.shared
    }

    pub(crate) fn pool(&self) -> &Rc<ContextPool<C>> {
        &self.pool
    }
}

/// Engines that need no scope to upgrade (the embedded engine, `Rc`-based engines).
impl<E, C> ServerCore<E, C>
where
    E: for<'s> Engine<Scope<'s> = ()>,
    C: Recycle,
{
    /// Upgrades the wrapper: the proof that guards may be minted, or `None` if the wrapper has
    /// been finalized (answer 503 then, and take nothing).
    ///
    /// # Examples
    ///
    /// `Some` while the server holds its wrapper, `None` once it is stopped and collected:
    ///
    /// ```
    /// use reqguard::{Config, DowngradePolicy, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    /// let core = ServerCore::embedded(heap.alloc("server"), config);
    /// assert!(core.upgrade().is_some());
    /// let _drain = core.stop();
    /// assert!(core.upgrade().is_some()); // weak, but not collected yet
    /// heap.collect();
    /// assert!(core.upgrade().is_none());
    /// ```
    #[inline]
    pub fn upgrade(&self) -> Option<Live<'_, E, C>> {
        self.upgrade_in(&mut ())
    }

    /// Runs `callback` with the proof, or refuses if the wrapper has been finalized.
    ///
    /// # Errors
    ///
    /// [`Refusal::WRAPPER_FINALIZED`] if the upgrade fails; `callback` does not run.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let status = core.with_live(|live| {
    ///     let bundle = live.admit(|_ctx| Ok(()))?;
    ///     bundle.complete();
    ///     Ok::<_, reqguard::Refusal>(200)
    /// });
    /// assert_eq!(status, Ok(Ok(200)));
    /// ```
    pub fn with_live<R>(
        &self,
        callback: impl for<'l> FnOnce(Live<'l, E, C>) -> R,
    ) -> Result<R, Refusal> {
        self.with_live_in(&mut (), callback)
    }
}

impl<E: Engine, C: Recycle> Drop for ServerCore<E, C> {
    /// Stops the server if it was not stopped: nothing can be admitted through a dropped core,
    /// and with [`DowngradePolicy::OnDrain`] the wrapper stays strong until the requests still
    /// out have ended (their guards keep the server's shared state alive). The pool's slot
    /// given back last lets go of the pool's handle it kept (invariant 7 of the pool's slots):
    /// from here the pool lives as long as the bundles still out, not longer.
    fn drop(&mut self) {
        // First: nothing below gives a slot back through this core's accounting.
        self.pool.let_go_of_kept_handle();
        if !self.shared.is_stopped() {
            drop(self.stop());
        }
    }
}

impl<E: Engine, C: Recycle> fmt::Debug for ServerCore<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCore")
            .field("wrapper", &self.wrapper)
            .field("stopped", &self.is_stopped())
            .field("ledger", self.ledger())
            .field("pool", &self.pool_metrics())
            .finish()
    }
}
