//! The ledger's book: counts per kind and, in leak-check mode, mint sites.
//!
//! # Invariants
//!
//! 1. `outstanding[k]` equals the number of guards of kind `k` minted and not yet released
//!    (a guard passed to `mem::forget` or caught in an `Rc` cycle stays counted: that is the point).
//! 2. In leak-check mode, `sites` holds exactly one record per outstanding standalone guard,
//!    and each such guard's [`Entry`] is the key of its own record; no key is released twice.
//!    Bundles are counted per mint site instead (`bundle_sites`: bundles out, and those still
//!    holding their request object), and a bundle's [`BundleEntry`] is its site's row, shared:
//!    a bundle's mint and release are two counts, not a slab insert and remove.
//! 3. Minting and releasing never allocate once `sites` has grown to the high-water mark of
//!    outstanding guards (slab slots are reused) and `bundle_sites` has a row for every
//!    place in the program that admits (one per call site, never removed).
//! 4. An admitted bundle is one entry (one record, one count), not four: it holds a ticket, a
//!    context and an activity ref for its whole life, and a request object until hand-off, so
//!    `outstanding(kind)` adds the bundles out (or those still holding their request) to the
//!    standalone count.
//! 5. Every bundle minted ends once: refused while built (`bundles_refused`), or released with
//!    exactly one outcome. So the bundles out are `bundles_minted - bundles_refused -
//!    sum(outcomes)`. A bundle gets its request object when `build` succeeds, and the object
//!    goes once (handed off, or released with its bundle), so those still held are
//!    `bundles_minted - bundles_refused - requests gone`, where the requests gone are
//!    the hand-offs (`bundle_hand_offs`) and the bundles released still holding theirs (the
//!    outcomes' second column). Minting a bundle is one count; releasing it one, whether it
//!    still held its request or not (one cell of `outcomes`, by outcome and by that).
//! 6. `plain` is true exactly while the ledger is not tracing and the server has not stopped
//!    (`note_stopped`, called by the stop before anything else). The bundles' hot paths
//!    (admission, release) check it alone; when it is false they take the path that checks the
//!    stop (refusal, drain completion) and records the trace.
//! 7. A renewal (`bundles_renewed`) is a bundle released *completed* with its request object
//!    and a bundle minted, counted once: it adds one to `bundles_minted` and one to the
//!    completed cell of `outcomes`' second column for every reader (`minted`, `outcomes`), and
//!    cancels out of the bundles out (invariant 5), which do not read it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;
#[cfg(any(debug_assertions, feature = "leak-check"))]
use std::rc::Rc;

use super::kind::GuardKind;
use super::report::{LeakReport, LeakSite};
use crate::admit::{Outcome, OutcomeCounts};

/// One guard's place in the ledger, held by the guard and handed back on release.
///
/// In leak-check mode it is the key of the guard's mint-site record (a bundle's: its mint
/// site's row); otherwise it is empty.
#[derive(Debug)]
pub(crate) struct Entry {
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    key: usize,
}

/// An admitted bundle's place in the ledger, held in its lease and handed back on release.
///
/// In leak-check mode it is its mint site's row, shared: counting the bundle's hand-off and
/// release touches the row directly (no borrow of the ledger's rows, no index); otherwise it
/// is empty. The default is no bundle's (a pooled slot no bundle holds keeps one: without
/// leak-check, a mint and a release move nothing for it).
#[derive(Debug, Default)]
pub(crate) struct BundleEntry {
    /// `None` only in the default entry, which no bundle holds.
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    row: Option<Rc<BundleSite>>,
}

/// Which trace recorded a mint: the ledger's count of traces started then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceMark(u64);

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
    /// Standalone guards (not in a bundle), per kind.
    outstanding: [Cell<usize>; 4],
    minted: [Cell<u64>; 4],
    /// Bundles minted; of those, made from a standalone ticket, and refused while built.
    bundles_minted: Cell<u64>,
    bundles_from_tickets: Cell<u64>,
    bundles_refused: Cell<u64>,
    /// Requests answered at once whose bundle the next request of the same read took as it
    /// was (`renew_bundles`): each one more bundle minted and one more released *completed*
    /// with its request object (invariant 7).
    bundles_renewed: Cell<u64>,
    /// Bundles' request objects handed off (those released with their bundle are counted in
    /// `outcomes`' second column).
    bundle_hand_offs: Cell<u64>,
    /// Bundles ended, per outcome: released without their request object (handed off), and
    /// with it. One count per release, whichever it is (invariant 5).
    outcomes: [[Cell<u64>; 2]; 5],
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    sites: RefCell<slab::Slab<(GuardKind, &'static Location<'static>)>>,
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    bundle_sites: RefCell<Vec<Rc<BundleSite>>>,
    /// The row of the last bundle minted: the next one is most often minted at the same place.
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    last_bundle_site: Cell<Option<Rc<BundleSite>>>,
    trace: RefCell<Option<Vec<LedgerEvent>>>,
    tracing: Cell<bool>,
    /// Traces started so far: tells a trace from the one before it (`TraceMark`).
    trace_epoch: Cell<u64>,
    /// The server was stopped (`note_stopped`).
    stopped: Cell<bool>,
    /// Neither tracing nor stopped: the bundles' hot paths check this one flag, and take a
    /// slower path for either case (invariant 6).
    plain: Cell<bool>,
}

impl Ledger {
    pub(crate) fn new() -> Self {
        Ledger {
            outstanding: Default::default(),
            minted: Default::default(),
            bundles_minted: Cell::new(0),
            bundles_from_tickets: Cell::new(0),
            bundles_refused: Cell::new(0),
            bundles_renewed: Cell::new(0),
            bundle_hand_offs: Cell::new(0),
            outcomes: Default::default(),
            #[cfg(any(debug_assertions, feature = "leak-check"))]
            sites: RefCell::new(slab::Slab::new()),
            #[cfg(any(debug_assertions, feature = "leak-check"))]
            bundle_sites: RefCell::new(Vec::new()),
            #[cfg(any(debug_assertions, feature = "leak-check"))]
            last_bundle_site: Cell::new(None),
            trace: RefCell::new(None),
            tracing: Cell::new(false),
            trace_epoch: Cell::new(0),
            stopped: Cell::new(false),
            plain: Cell::new(true),
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

    /// Neither tracing nor stopped (invariant 6).
    #[inline(always)]
    pub(crate) fn is_plain(&self) -> bool {
        self.plain.get()
    }

    /// The server stopped: from now on the bundles' hot paths take the path that checks.
    pub(crate) fn note_stopped(&self) {
        self.stopped.set(true);
        self.plain.set(false);
    }

    fn set_tracing(&self, on: bool) {
        self.tracing.set(on);
        self.plain.set(!on && !self.stopped.get());
    }

    /// [`mint_bundle`](Ledger::mint_bundle) while [plain](Ledger::is_plain): nothing to trace.
    #[inline(always)]
    pub(crate) fn mint_bundle_plain(&self, site: &'static Location<'static>) -> BundleEntry {
        debug_assert!(self.is_plain());
        self.bundles_minted.set(self.bundles_minted.get() + 1);
        self.bundle_entry(site)
    }

    /// `renewed` requests answered at once ended *completed* with their request objects, and
    /// the next request of the same pass was minted into each one's bundle as it was: one
    /// count for both (invariant 7), counted by the keeper while the ledger was
    /// [plain](Ledger::is_plain) and put here before the ledger is read (invariant 5 of
    /// `KeptBundle`).
    #[inline]
    pub(crate) fn renew_bundles(&self, renewed: u64) {
        self.bundles_renewed
            .set(self.bundles_renewed.get() + renewed);
    }

    /// Mints one bundle, before `build` runs: a ticket, a context, an activity ref and the slot
    /// of its request object in one entry (the trace says the request is minted when `build`
    /// succeeds, [`bundle_built`](Ledger::bundle_built)).
    #[inline(always)]
    pub(crate) fn mint_bundle(&self, site: &'static Location<'static>) -> BundleEntry {
        self.bundles_minted.set(self.bundles_minted.get() + 1);
        if self.tracing.get() {
            self.record_all(&[
                LedgerEvent::Minted(GuardKind::Ticket),
                LedgerEvent::Minted(GuardKind::Context),
                LedgerEvent::Minted(GuardKind::ActivityRef),
            ]);
        }
        self.bundle_entry(site)
    }

    /// Mints a bundle for a request that already owns the standalone ticket `ticket`: the
    /// ticket becomes the bundle's (the pending-request count does not change, no outcome is
    /// recorded for it, and it is not minted twice).
    pub(crate) fn mint_bundle_from_ticket(
        &self,
        ticket: &Entry,
        site: &'static Location<'static>,
    ) -> BundleEntry {
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        self.sites.borrow_mut().remove(ticket.key);
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        let _ = ticket;
        let cell = &self.outstanding[GuardKind::Ticket.index()];
        cell.set(cell.get() - 1);
        self.bundles_minted.set(self.bundles_minted.get() + 1);
        self.bundles_from_tickets
            .set(self.bundles_from_tickets.get() + 1);
        if self.tracing.get() {
            self.record_all(&[
                LedgerEvent::Minted(GuardKind::Context),
                LedgerEvent::Minted(GuardKind::ActivityRef),
            ]);
        }
        self.bundle_entry(site)
    }

    #[inline]
    fn bundle_entry(&self, site: &'static Location<'static>) -> BundleEntry {
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        {
            // Most often minted where the last one was: that row, without a search.
            let row = match self.last_bundle_site.take() {
                Some(row) if std::ptr::eq(row.location, site) => row,
                other => self.find_bundle_site(other, site),
            };
            row.count_minted();
            let entry = BundleEntry {
                row: Some(Rc::clone(&row)),
            };
            // Taken above: nothing is left to drop (no user code runs in between).
            if let Some(stale) = self.last_bundle_site.replace(Some(row)) {
                crate::callback::drop_cold(stale);
            }
            entry
        }
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        {
            let _ = site;
            BundleEntry {}
        }
    }

    /// `build` succeeded: the bundle holds its request object. Nothing to count or record: a
    /// bundle is counted (and its record made) with its request slot from the start, so the
    /// counts and the report agree while `build` runs; a refused bundle gives it all back.
    /// `mark`: the trace that recorded the bundle's mint ([`trace_mark`](Ledger::trace_mark)):
    /// the request object's mint goes to that trace only (not to one started while `build`
    /// ran, which did not see the rest of the bundle minted).
    #[cold]
    pub(crate) fn bundle_built(&self, mark: TraceMark) {
        if self.tracing.get() && self.trace_epoch.get() == mark.0 {
            self.record_all(&[LedgerEvent::Minted(GuardKind::Request)]);
        }
    }

    /// The trace recording now, if one is.
    #[inline]
    pub(crate) fn trace_mark(&self) -> Option<TraceMark> {
        self.tracing
            .get()
            .then(|| TraceMark(self.trace_epoch.get()))
    }

    /// A bundle refused while it was built (`build` failed or panicked): its ticket, context
    /// and activity ref are released, without an outcome (it was never admitted). The trace is
    /// the caller's, as for [`release_bundle`](Ledger::release_bundle).
    #[cold]
    pub(crate) fn release_refused_bundle(&self, entry: &BundleEntry) {
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        self.unsite_bundle(entry, true);
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        let _ = entry;
        self.bundles_refused.set(self.bundles_refused.get() + 1);
    }

    /// The bundle's request object was handed off to the engine.
    #[inline]
    pub(crate) fn bundle_hand_off(&self, entry: &BundleEntry) {
        self.bundle_hand_offs.set(self.bundle_hand_offs.get() + 1);
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        if let Some(row) = &entry.row {
            row.with_request.set(row.with_request.get() - 1);
        }
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        let _ = entry;
        if self.tracing.get() {
            self.record_all(&[LedgerEvent::Released(GuardKind::Request)]);
        }
    }

    /// Releases a bundle (its request object first, if still held) with its outcome. The
    /// trace is the caller's: [`trace_released_bundle`](Ledger::trace_released_bundle) unless
    /// the ledger [is plain](Ledger::is_plain).
    #[inline(always)]
    pub(crate) fn release_bundle(&self, entry: &BundleEntry, had_request: bool, outcome: Outcome) {
        #[cfg(any(debug_assertions, feature = "leak-check"))]
        self.unsite_bundle(entry, had_request);
        #[cfg(not(any(debug_assertions, feature = "leak-check")))]
        let _ = entry;
        // One count, whether the request object went with the bundle or before it.
        let cell = &self.outcomes[outcome.index()][usize::from(had_request)];
        cell.set(cell.get() + 1);
    }

    /// Traces a bundle's release, if tracing.
    pub(crate) fn trace_released_bundle(&self, had_request: bool) {
        if self.tracing.get() {
            self.trace_bundle_release(had_request);
        }
    }

    /// The row of `site` in `bundle_sites`, made if it has none (invariant 2).
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    #[cold]
    #[inline(never)]
    fn find_bundle_site(
        &self,
        last: Option<Rc<BundleSite>>,
        site: &'static Location<'static>,
    ) -> Rc<BundleSite> {
        drop(last);
        let mut rows = self.bundle_sites.borrow_mut();
        if let Some(row) = rows.iter().find(|row| *row.location == *site) {
            return Rc::clone(row);
        }
        let row = Rc::new(BundleSite {
            location: site,
            out: Cell::new(0),
            with_request: Cell::new(0),
        });
        rows.push(Rc::clone(&row));
        row
    }

    /// A bundle of `entry`'s site is released (with its request object, if `with_request`).
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    #[inline(always)]
    fn unsite_bundle(&self, entry: &BundleEntry, with_request: bool) {
        let Some(row) = &entry.row else {
            return; // never: a bundle's entry has its row
        };
        row.out.set(row.out.get() - 1);
        if with_request {
            row.with_request.set(row.with_request.get() - 1);
        }
    }

    /// Admitted bundles out (invariant 5), and those still holding their request object.
    fn bundles_out(&self) -> (usize, usize) {
        let minted = self.bundles_minted.get() - self.bundles_refused.get();
        let [ended, released_with_request] = self.outcomes.iter().fold([0, 0], |[all, with], o| {
            [all + o[0].get() + o[1].get(), with + o[1].get()]
        });
        let requests_gone = self.bundle_hand_offs.get() + released_with_request;
        let with_request = minted - requests_gone;
        // Both fit: they count bundles alive at once, each holding a pooled or boxed context.
        ((minted - ended) as usize, with_request as usize)
    }

    #[cold]
    #[inline(never)]
    fn trace_bundle_release(&self, had_request: bool) {
        if had_request {
            self.record_all(&[LedgerEvent::Released(GuardKind::Request)]);
        }
        self.record_all(&[
            LedgerEvent::Released(GuardKind::ActivityRef),
            LedgerEvent::Released(GuardKind::Context),
            LedgerEvent::Released(GuardKind::Ticket),
        ]);
    }

    #[cold]
    #[inline(never)]
    fn record_all(&self, events: &[LedgerEvent]) {
        if let Some(trace) = self.trace.borrow_mut().as_mut() {
            trace.extend_from_slice(events);
        }
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

    /// Guards of `kind` minted and not yet released (an admitted bundle counts as the ticket,
    /// context and activity ref it holds, and as a request object until it is handed off).
    pub fn outstanding(&self, kind: GuardKind) -> usize {
        let (out, with_request) = self.bundles_out();
        let in_bundles = match kind {
            GuardKind::Request => with_request,
            _ => out,
        };
        self.outstanding[kind.index()].get() + in_bundles
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
        let get = |o: Outcome| {
            let [without, with] = &self.outcomes[o.index()];
            without.get() + with.get()
        };
        OutcomeCounts {
            completed: get(Outcome::Completed) + self.bundles_renewed.get(),
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
        let bundles = self.bundles_minted.get() + self.bundles_renewed.get();
        let in_bundles = match kind {
            // A bundle made from a saved request's ticket did not mint another ticket.
            GuardKind::Ticket => bundles - self.bundles_from_tickets.get(),
            // A bundle refused while it was built never got its request object.
            GuardKind::Request => bundles - self.bundles_refused.get(),
            _ => bundles,
        };
        self.minted[kind.index()].get() + in_bundles
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
        {
            for (_, &(kind, location)) in self.sites.borrow().iter() {
                add_leak(&mut sites, kind, location, 1);
            }
            for row in self.bundle_sites.borrow().iter() {
                let out = row.out.get();
                for kind in [
                    GuardKind::Ticket,
                    GuardKind::Context,
                    GuardKind::ActivityRef,
                ] {
                    add_leak(&mut sites, kind, row.location, out);
                }
                add_leak(
                    &mut sites,
                    GuardKind::Request,
                    row.location,
                    row.with_request.get(),
                );
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
    /// Recording allocates; leave it off outside tests. A guard minted before the trace starts
    /// records its release only (a bundle whose `build` is running counts as minted: its
    /// request object's mint is not recorded either).
    pub fn start_trace(&self) {
        *self.trace.borrow_mut() = Some(Vec::new());
        self.trace_epoch.set(self.trace_epoch.get() + 1);
        self.set_tracing(true);
    }

    /// Stops recording and returns what was recorded since [`start_trace`](Ledger::start_trace).
    pub fn take_trace(&self) -> Vec<LedgerEvent> {
        self.set_tracing(false);
        self.trace.borrow_mut().take().unwrap_or_default()
    }
}

/// Bundles minted at one place in the program (invariant 2).
#[cfg(any(debug_assertions, feature = "leak-check"))]
#[derive(Debug)]
struct BundleSite {
    location: &'static Location<'static>,
    /// Bundles minted here and not released yet.
    out: Cell<usize>,
    /// Of those, the ones still holding their request object.
    with_request: Cell<usize>,
}

#[cfg(any(debug_assertions, feature = "leak-check"))]
impl BundleSite {
    /// A bundle minted here: out, with its request slot (see `bundle_built`).
    #[inline(always)]
    fn count_minted(&self) {
        self.out.set(self.out.get() + 1);
        self.with_request.set(self.with_request.get() + 1);
    }
}

/// Adds `count` outstanding guards of `kind` minted at `location` to a report's rows.
#[cfg(any(debug_assertions, feature = "leak-check"))]
fn add_leak(
    sites: &mut Vec<LeakSite>,
    kind: GuardKind,
    location: &'static Location<'static>,
    count: usize,
) {
    if count == 0 {
        return;
    }
    match sites
        .iter_mut()
        .find(|s| s.kind == kind && s.location == Some(location))
    {
        Some(site) => site.count += count,
        None => sites.push(LeakSite {
            kind,
            location: Some(location),
            count,
        }),
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

#[cfg(test)]
mod tests {
    use super::Ledger;
    use crate::engines::Heap;
    use crate::{Config, GuardKind, Outcome, ServerCore};

    /// A release is one count whether its bundle still held its request object or had handed
    /// it off (invariant 5, round 23: a cell per outcome and per that): the figures derived from
    /// those cells stay exact for every outcome, either way. It fails when a release counts in
    /// the wrong column (the requests still held go wrong) or when a column is left out of the
    /// sums (the outcomes, or the bundles out, go wrong).
    #[test]
    fn a_release_counts_once_with_or_without_its_request() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let live = core.upgrade().unwrap();
        let ledger = core.ledger();
        let ends = [
            Outcome::Completed,
            Outcome::ClientGone,
            Outcome::DeadlineAborted,
            Outcome::ForceClosed,
            Outcome::Dropped,
        ];
        let mut out = Vec::new();
        for (i, outcome) in ends.into_iter().enumerate() {
            for hand_off in [false, true] {
                let mut bundle = live.admit(|_| Ok(i)).unwrap();
                if hand_off {
                    assert_eq!(bundle.hand_off(), Some(i));
                }
                out.push((bundle, outcome));
            }
        }
        // Ten out, five of them still holding their request.
        assert_eq!(ledger.outstanding(GuardKind::Ticket), 10);
        assert_eq!(ledger.outstanding(GuardKind::Request), 5);
        let mut held = 5;
        let mut left = 10;
        for (bundle, outcome) in out {
            let had_request = bundle.request().is_some();
            match outcome {
                Outcome::Completed => bundle.complete(),
                Outcome::Dropped => drop(bundle),
                // The drain deadline's outcome is named by the abort, which fires first.
                Outcome::DeadlineAborted => {
                    bundle.signal().abort(crate::AbortReason::DrainDeadline);
                    bundle.end(Outcome::ClientGone);
                }
                other => bundle.end(other),
            }
            left -= 1;
            held -= usize::from(had_request);
            assert_eq!(ledger.outstanding(GuardKind::Ticket), left);
            assert_eq!(ledger.outstanding(GuardKind::Context), left);
            assert_eq!(ledger.outstanding(GuardKind::Request), held);
        }
        let outcomes = ledger.outcomes();
        assert_eq!(
            (
                outcomes.completed,
                outcomes.client_gone,
                outcomes.deadline_aborted,
                outcomes.force_closed,
                outcomes.dropped
            ),
            (2, 2, 2, 2, 2)
        );
        assert_eq!(ledger.minted(GuardKind::Request), 10);
        ledger.assert_quiescent();
    }

    /// Invariant 6 through every order of stop and trace.
    #[test]
    fn plain_means_neither_tracing_nor_stopped() {
        let ledger = Ledger::new();
        assert!(ledger.is_plain());
        ledger.start_trace();
        assert!(!ledger.is_plain());
        ledger.take_trace();
        assert!(ledger.is_plain());
        ledger.start_trace();
        ledger.note_stopped();
        assert!(!ledger.is_plain());
        ledger.take_trace();
        assert!(
            !ledger.is_plain(),
            "a stopped server stays noted when the trace ends"
        );
        ledger.start_trace();
        ledger.take_trace();
        assert!(!ledger.is_plain());
    }
}
