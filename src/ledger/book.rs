//! The ledger's book: counts per kind and, in leak-check mode, mint sites.
//!
//! # Invariants
//!
//! 1. `outstanding[k]` equals the number of guards of kind `k` minted and not yet released
//!    (a guard passed to `mem::forget` or caught in an `Rc` cycle stays counted: that is the point).
//! 2. In leak-check mode, `sites` holds exactly one record per outstanding guard, and each guard's
//!    [`Entry`] is the key of its own record; no key is released twice.
//! 3. Minting and releasing never allocate once `sites` has grown to the high-water mark of
//!    outstanding guards (slab slots are reused).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;

use super::kind::GuardKind;
use super::report::{LeakReport, LeakSite};
use crate::admit::{Outcome, OutcomeCounts};

/// One guard's place in the ledger, held by the guard and handed back on release.
///
/// In leak-check mode it is the key of the guard's mint-site record; otherwise it is empty.
#[derive(Debug)]
pub(crate) struct Entry {
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    key: usize,
}

/// A mint or a release, recorded while [`Ledger::start_trace`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerEvent {
    /// A guard of this kind was minted.
    Minted(GuardKind),
    /// A guard of this kind was released.
    Released(GuardKind),
}

/// Counts of outstanding guards per [`GuardKind`], with their mint sites in leak-check mode.
///
/// Every [`ServerCore`](crate::ServerCore) owns one; reach it with
/// [`ServerCore::ledger`](crate::ServerCore::ledger). Leak-check mode (mint sites recorded with
/// `#[track_caller]`) is on in debug builds and with the `leak-check` feature.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, GuardKind, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().expect("wrapper is strong");
/// let ticket = live.ticket().unwrap();
/// assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
/// drop(ticket);
/// core.ledger().assert_quiescent();
/// ```
pub struct Ledger {
    outstanding: [Cell<usize>; 4],
    minted: [Cell<u64>; 4],
    outcomes: [Cell<u64>; 5],
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    sites: RefCell<slab::Slab<(GuardKind, &'static Location<'static>)>>,
    trace: RefCell<Option<Vec<LedgerEvent>>>,
    tracing: Cell<bool>,
}

impl Ledger {
    pub(crate) fn new() -> Self {
        Ledger {
            outstanding: Default::default(),
            minted: Default::default(),
            outcomes: Default::default(),
            #[cfg(any(debug_assertions, feature = "leak-check"))]
            sites: RefCell::new(slab::Slab::new()),
            trace: RefCell::new(None),
            tracing: Cell::new(false),
        }
    }

    /// Whether this build records mint sites (debug builds, or the `leak-check` feature).
    pub const fn tracks_sites() -> bool {
        cfg!(any(debug_assertions, feature = "leak-check"))
    }

    #[inline]
    pub(crate) fn mint(&self, kind: GuardKind, site: &'static Location<'static>) -> Entry {
        let i = kind.index();
        self.outstanding[i].set(self.outstanding[i].get() + 1);
        self.minted[i].set(self.minted[i].get() + 1);
        self.record(LedgerEvent::Minted(kind));
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        {
            Entry {
                key: self.sites.borrow_mut().insert((kind, site)),
            }
        }
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        {
            let _ = site;
            Entry {}
        }
    }

    /// Releases `entry`; returns how many guards of `kind` are still outstanding.
    ///
    /// Each guard calls it once, from its `Drop` (or `hand_off`), with its own entry: the
    /// entry is borrowed so a guard needs no `Option` around it (a ticket stays one pointer).
    #[inline]
    pub(crate) fn release(&self, kind: GuardKind, entry: &Entry) -> usize {
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        {
            let (recorded, _) = self.sites.borrow_mut().remove(entry.key);
            debug_assert_eq!(recorded, kind, "ledger entry released as the wrong kind");
        }
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        let _ = entry;
        self.record(LedgerEvent::Released(kind));
        let cell = &self.outstanding[kind.index()];
        let left = cell.get() - 1;
        cell.set(left);
        left
    }

    #[inline]
    fn record(&self, event: LedgerEvent) {
        if self.tracing.get() {
            self.record_traced(event);
        }
    }

    // Out of line: tracing is for tests, and its push would bloat every guard's mint and drop.
    #[cold]
    #[inline(never)]
    fn record_traced(&self, event: LedgerEvent) {
        if let Some(trace) = self.trace.borrow_mut().as_mut() {
            trace.push(event);
        }
    }

    /// Guards of `kind` minted and not yet released.
    pub fn outstanding(&self, kind: GuardKind) -> usize {
        self.outstanding[kind.index()].get()
    }

    #[inline]
    pub(crate) fn record_outcome(&self, outcome: Outcome) {
        let cell = &self.outcomes[outcome.index()];
        cell.set(cell.get() + 1);
    }

    /// How the admitted requests ([`Admitted`](crate::Admitted) bundles) ended so far, one
    /// outcome each (G8).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// live.admit(|_| Ok(())).unwrap().complete();
    /// drop(live.admit(|_| Ok(())).unwrap()); // dropped without completing
    /// let outcomes = core.ledger().outcomes();
    /// assert_eq!((outcomes.completed, outcomes.dropped), (1, 1));
    /// ```
    pub fn outcomes(&self) -> OutcomeCounts {
        let get = |o: Outcome| self.outcomes[o.index()].get();
        OutcomeCounts {
            completed: get(Outcome::Completed),
            client_gone: get(Outcome::ClientGone),
            deadline_aborted: get(Outcome::DeadlineAborted),
            force_closed: get(Outcome::ForceClosed),
            dropped: get(Outcome::Dropped),
        }
    }

    /// Guards of every kind minted and not yet released.
    pub fn total_outstanding(&self) -> usize {
        GuardKind::ALL.iter().map(|&k| self.outstanding(k)).sum()
    }

    /// Guards of `kind` minted since the server core was created.
    pub fn minted(&self, kind: GuardKind) -> u64 {
        self.minted[kind.index()].get()
    }

    /// Whether no guard of any kind is outstanding.
    pub fn is_quiescent(&self) -> bool {
        self.total_outstanding() == 0
    }

    /// What is still outstanding, grouped by kind and mint site.
    ///
    /// Its `Display` reads "1 pending-request ticket minted at src/x.rs:42 was never released".
    pub fn report(&self) -> LeakReport {
        let mut sites: Vec<LeakSite> = Vec::new();
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        for (_, &(kind, location)) in self.sites.borrow().iter() {
            match sites
                .iter_mut()
                .find(|s: &&mut LeakSite| s.kind == kind && s.location == Some(location))
            {
                Some(site) => site.count += 1,
                None => sites.push(LeakSite {
                    kind,
                    location: Some(location),
                    count: 1,
                }),
            }
        }
        for kind in GuardKind::ALL {
            let located: usize = sites
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.count)
                .sum();
            let unlocated = self.outstanding(kind) - located;
            if unlocated > 0 {
                sites.push(LeakSite {
                    kind,
                    location: None,
                    count: unlocated,
                });
            }
        }
        LeakReport::new(sites)
    }

    /// Panics with the [`report`](Ledger::report) unless every guard has been released.
    ///
    /// # Panics
    ///
    /// When any guard is outstanding; the message lists each one's kind and mint site.
    #[track_caller]
    pub fn assert_quiescent(&self) {
        if !self.is_quiescent() {
            panic!("ledger is not quiescent:\n{}", self.report());
        }
    }

    /// Starts recording every mint and release (for tests of release order).
    ///
    /// Recording allocates; leave it off outside tests.
    pub fn start_trace(&self) {
        *self.trace.borrow_mut() = Some(Vec::new());
        self.tracing.set(true);
    }

    /// Stops recording and returns what was recorded since [`start_trace`](Ledger::start_trace).
    pub fn take_trace(&self) -> Vec<LedgerEvent> {
        self.tracing.set(false);
        self.trace.borrow_mut().take().unwrap_or_default()
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Ledger");
        for kind in GuardKind::ALL {
            d.field(kind.noun(2), &self.outstanding(kind));
        }
        d.finish()
    }
}
