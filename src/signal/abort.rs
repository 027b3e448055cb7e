//! The abort signal: a shared flag with listeners that fire at most once.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{self, Rc};

use super::reason::AbortReason;
use crate::callback::call_caught;
use crate::server::shared::Shared;

type Listener = Box<dyn FnOnce(AbortReason)>;

/// A listener's place in its signal's list, from [`AbortSignal::on_abort_keyed`]: valid until
/// the signal fires, or until [`AbortSignal::remove_listener`] takes it.
#[cfg(feature = "hyper")]
pub(crate) type ListenerKey = usize;

/// The state behind every handle to one signal.
///
/// # Invariants
///
/// 1. `reason` goes from `None` to `Some` at most once per use; listeners run at that moment only,
///    and only while the signal's admitted request (if any) has not ended: a request's listeners
///    live at most until its end. One that ended unaborted (*completed*) lets them go at its
///    release, unrun (`let_listeners_go`), none is added after the end (`takes_listeners`), and
///    an abort after it runs none (`fire_after_its_request`).
/// 2. `activity` counts the live `ActivityRef`s on this signal; its admitted request's own
///    activity is `request_out` (one more while the request is out).
/// 3. `request_out` is [`Request::Out`] while the admitted request this signal belongs to has not
///    ended: only then may a drain deadline abort it (an activity ref kept past the request's end
///    keeps the signal alive, not the request); [`Request::Ended`] once it has, until the signal is
///    reset, and [`Request::FiredAfter`] if a handle kept past the end (the embedder's: a signal
///    is not a guard) aborted it then, which does not make its request an aborted one (QA
///    embed23-2). A signal of no request (one from `Live::signal`) is [`Request::None`].
/// 4. `home` is the server that allocated the state, for its whole life (reuse keeps it): weak,
///    because that server's spare list owns states, and a signal is not a guard (it does not
///    keep the server alive). Hot paths reach the server through the guard that holds it.
/// 5. A listener's index in `listeners` is its key: a listener added with `on_abort` is
///    pushed, a removed one leaves `None` (popped when it is last), and the list is emptied
///    only by the abort or a reset (which needs the signal's last handle: a keyed listener's
///    owner holds one); a completed request's release takes its listeners out and leaves their
///    places. `free` (hyper) holds the places keyed listeners left, each `None` and within the
///    list, each once: a keyed listener (an `Aborted` future's waker, whose order among the
///    listeners does not matter) takes one before the list grows, so the list is no longer
///    than the most listeners held at once, however the futures are dropped (QA embed32-2).
/// 6. `touched` is false only while nothing but the handle it was minted into has held this
///    state since its last reset and it has not fired: no handle was cloned from it
///    (`AbortSignal::clone`), no listener was added, no escalation took it into its list
///    (`with_activity`), no abort. So an untouched state has no other handle, no listener and
///    no reason: it is as good as new without reading its handle count, listener list or
///    reason (an admitted bundle's release reads this one flag). Set on those paths, and at a
///    spilled slot's checkout (invariant 8 of the pool's slots: so an untouched release's slot
///    is a pooled one), cleared by a reset or when a release found it fresh by reading them.
pub(crate) struct SignalState {
    reason: Cell<Option<AbortReason>>,
    listeners: RefCell<Vec<Option<Listener>>>,
    /// Places of `listeners` that keyed listeners left (invariant 5).
    #[cfg(feature = "hyper")]
    free: RefCell<Vec<ListenerKey>>,
    activity: Cell<usize>,
    request_out: Cell<Request>,
    touched: Cell<bool>,
    home: rc::Weak<Shared>,
}

/// Where a signal's admitted request is (invariant 3 of [`SignalState`]): one byte, read and
/// written as the `bool` it replaced was (a compare with a constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// The signal belongs to no request (minted alone, or reset).
    None,
    /// Its request is out.
    Out,
    /// Its request has ended (its outcome decided).
    Ended,
    /// Its request had ended, unaborted (*completed*), when the signal fired: a handle kept
    /// past the end was aborted (the embedder's own `abort`). Its request's outcome, and the
    /// counts a stack makes from the signal, are those of a request that was not aborted.
    FiredAfter,
}

impl SignalState {
    pub(crate) fn new(home: rc::Weak<Shared>) -> Self {
        SignalState {
            reason: Cell::new(None),
            listeners: RefCell::new(Vec::new()),
            #[cfg(feature = "hyper")]
            free: RefCell::new(Vec::new()),
            activity: Cell::new(0),
            request_out: Cell::new(Request::None),
            touched: Cell::new(false),
            home,
        }
    }

    /// The server that allocated this signal, while it is alive.
    pub(crate) fn home(&self) -> Option<Rc<Shared>> {
        self.home.upgrade()
    }

    /// Forgets the last use; keeps the listener list's capacity.
    #[inline]
    pub(crate) fn reset(&self) {
        self.reason.set(None);
        // Most requests add no listener: the loop that drops them stays out of line.
        if !self.listeners.borrow().is_empty() {
            self.drop_listeners();
        }
        self.activity.set(0);
        self.request_out.set(Request::None);
        self.touched.set(false);
    }

    #[cold]
    #[inline(never)]
    fn drop_listeners(&self) {
        // Taken out first: a listener's `Drop` may reach this signal again. Each is dropped on
        // its own: its `Drop` is user code, and a panic there must not escape the request's
        // release (nor skip the other listeners).
        let mut listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        #[cfg(feature = "hyper")]
        self.free.borrow_mut().clear();
        for listener in listeners.drain(..).flatten() {
            call_caught(move || drop(listener));
        }
        let mut slot = self.listeners.borrow_mut();
        if slot.is_empty() {
            *slot = listeners; // keep the capacity for the next use
        }
    }

    /// Lets a completed request's listeners go, unrun (each dropped on its own, caught): its
    /// stack never fires its signal (G8), and a listener holding that signal (a JS listener
    /// that reads `request.signal`) would otherwise be a cycle nothing breaks. Their places
    /// stay, empty, so keys stay valid (invariant 5). No allocation.
    #[cold]
    #[inline(never)]
    pub(crate) fn let_listeners_go(&self) {
        let mut place = 0;
        loop {
            // Taken one at a time, unborrowed when dropped: a `Drop` may reach this signal.
            let listener = match self.listeners.borrow_mut().get_mut(place) {
                Some(listener) => listener.take(),
                None => break,
            };
            if let Some(listener) = listener {
                call_caught(move || drop(listener));
            }
            place += 1;
        }
    }

    /// As a reset signal is (its activity and request aside): it never fired, and no listener
    /// waits on it.
    #[inline]
    pub(crate) fn is_fresh(&self) -> bool {
        self.reason.get().is_none() && self.listeners.borrow().is_empty()
    }

    /// Whether anything but the handle it was minted into may have held this state or added a
    /// listener to it since its last reset (invariant 6).
    #[inline]
    pub(crate) fn is_touched(&self) -> bool {
        self.touched.get()
    }

    /// Something other than the handle it was minted into holds this state, or a listener was
    /// added (invariant 6).
    #[inline]
    pub(crate) fn touch(&self) {
        self.touched.set(true);
    }

    /// A release found the state fresh by reading its handle count and listener list
    /// (invariant 6): untouched again, as a reset leaves it.
    #[inline]
    pub(crate) fn untouch(&self) {
        self.touched.set(false);
    }

    /// The admitted request this signal belongs to is out (`true`) or has ended.
    #[inline]
    pub(crate) fn set_request_out(&self, out: bool) {
        self.request_out
            .set(if out { Request::Out } else { Request::Ended });
    }

    /// Whether a drain deadline may abort this signal: its request is still out.
    #[inline]
    pub(crate) fn is_request_out(&self) -> bool {
        self.request_out.get() == Request::Out
    }

    /// Whether the signal fired only after its admitted request had ended (invariant 3): its
    /// reason is no abort of that request's, which ended *completed*.
    #[cfg(feature = "hyper")]
    #[inline]
    pub(crate) fn fired_after_its_request(&self) -> bool {
        self.request_out.get() == Request::FiredAfter
    }

    /// Whether a listener added now may ever run: the signal has not fired, and its admitted
    /// request (if any) has not ended (invariant 1: a request's listeners live at most until
    /// its end).
    #[inline]
    pub(crate) fn takes_listeners(&self) -> bool {
        self.reason.get().is_none() && self.request_out.get() != Request::Ended
    }

    /// Whether the signal fired (`AbortSignal::is_aborted` without copying the reason out).
    #[inline]
    pub(crate) fn is_aborted(&self) -> bool {
        self.reason.get().is_some()
    }

    #[inline]
    pub(crate) fn add_activity(&self) {
        self.activity.set(self.activity.get() + 1);
    }

    /// Pending activity: an activity ref, or its request still out (invariant 2).
    #[inline]
    pub(crate) fn has_activity(&self) -> bool {
        self.activity.get() > 0 || self.request_out.get() == Request::Out
    }

    #[inline]
    pub(crate) fn remove_activity(&self) {
        self.activity.set(self.activity.get() - 1);
    }

    /// Aborts with `reason` and runs every listener, each on its own; `None` if the signal was
    /// already aborted, else how many listeners panicked (their panics are caught).
    pub(crate) fn abort(&self, reason: AbortReason) -> Option<usize> {
        if self.reason.get().is_some() {
            return None;
        }
        self.reason.set(Some(reason));
        // Fired: no longer as good as new (invariant 6).
        self.touched.set(true);
        if self.request_out.get() == Request::Ended {
            return Some(self.fire_after_its_request());
        }
        // Listeners may touch this signal again (add a listener, abort): run them unborrowed.
        let mut listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        #[cfg(feature = "hyper")]
        self.free.borrow_mut().clear();
        let mut panicked = 0;
        for listener in listeners.drain(..).flatten() {
            if call_caught(|| listener(reason)) {
                panicked += 1;
            }
        }
        let mut slot = self.listeners.borrow_mut();
        if slot.is_empty() {
            *slot = listeners; // give the capacity back for the next use
        }
        Some(panicked)
    }
}

impl SignalState {
    /// The abort of a handle kept past its request's end (invariant 3): no abort of that
    /// request's, which completed, so no listener runs (invariant 1). The release lets them go;
    /// any still in place (a request object's `Drop`, run before that, aborted it) are dropped
    /// unrun here. No listener panics: `Some(0)` for `abort`.
    #[cold]
    #[inline(never)]
    fn fire_after_its_request(&self) -> usize {
        self.request_out.set(Request::FiredAfter);
        self.let_listeners_go();
        0
    }
}

impl Drop for SignalState {
    /// Drops the listeners that never ran, each on its own: a listener's `Drop` is user code.
    fn drop(&mut self) {
        for listener in self.listeners.get_mut().drain(..).flatten() {
            call_caught(move || drop(listener));
        }
    }
}

/// An `AbortSignal`: the request's cancellation flag, shared by the server and the handler.
///
/// Mint one with [`Live::signal`](crate::Live::signal); the request bundle from
/// [`Live::admit`](crate::Live::admit) carries one. Listeners added with
/// [`on_abort`](AbortSignal::on_abort) run at most once, when the signal is first aborted, and
/// live at most until the end of the signal's request.
/// Cloning makes another handle to the same signal. A signal nobody holds any more is reset and
/// reused by its server, so a warm server mints signals without allocating.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use reqguard::{AbortReason, Config, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// let signal = live.signal();
/// let fired = Rc::new(Cell::new(0));
/// let f = fired.clone();
/// signal.on_abort(move |reason| {
///     assert_eq!(reason, AbortReason::ClientDisconnected);
///     f.set(f.get() + 1);
/// });
/// assert!(signal.abort(AbortReason::ClientDisconnected));
/// assert!(!signal.abort(AbortReason::DrainDeadline)); // already aborted: nothing runs twice
/// assert_eq!(fired.get(), 1);
/// assert_eq!(signal.reason(), Some(AbortReason::ClientDisconnected));
/// ```
pub struct AbortSignal {
    state: Rc<SignalState>,
}

impl Clone for AbortSignal {
    /// Another handle to the same signal (its state's `Rc` cloned). The state is marked
    /// touched: a release no longer takes it for unshared without counting its handles.
    #[inline]
    fn clone(&self) -> Self {
        self.state.touch();
        AbortSignal {
            state: Rc::clone(&self.state),
        }
    }
}

impl AbortSignal {
    /// A spare signal of `home`'s, or a new one.
    #[inline]
    pub(crate) fn mint(home: &Rc<Shared>) -> Self {
        let state = home
            .signals
            .take_spare()
            .unwrap_or_else(|| home.signals.allocate(Rc::downgrade(home)));
        AbortSignal { state }
    }

    #[inline]
    pub(crate) fn state(&self) -> &Rc<SignalState> {
        &self.state
    }

    /// Aborts the signal and runs its listeners; returns `false` if it was already aborted.
    ///
    /// Each listener runs on its own: one that panics is counted (see
    /// [`DrainReport::panicked_listeners`](crate::DrainReport::panicked_listeners)) and the
    /// others still run; the panic does not reach the caller.
    ///
    /// A handle kept past its request's end still works (a signal is not a guard): the signal
    /// is marked aborted and its reason readable, but the abort is not its request's and runs
    /// no listener (a request's listeners live at most until its end: see
    /// [`on_abort`](AbortSignal::on_abort)). A request that completed stays *completed* and is
    /// counted as one (the hyper adapter counted such a request in none of `served`,
    /// `rejected` and `aborted` when its handler never answered, or in `answered_after_abort`
    /// beside `served` when it did: QA embed23-2).
    pub fn abort(&self, reason: AbortReason) -> bool {
        match self.state.abort(reason) {
            None => false,
            Some(panicked) => {
                if panicked > 0 {
                    if let Some(home) = self.state.home() {
                        home.signals.count_listener_panics(panicked);
                    }
                }
                true
            }
        }
    }

    /// Whether the signal has been aborted.
    pub fn is_aborted(&self) -> bool {
        self.reason().is_some()
    }

    /// Why the signal was aborted, if it was.
    pub fn reason(&self) -> Option<AbortReason> {
        self.state().reason.get()
    }

    /// Adds a listener that runs once, when the signal is aborted.
    ///
    /// A request's listeners live at most until its end (G8). Those of a request that ends
    /// *completed* are dropped unrun at its release: its signal never fires for it, so nothing
    /// can need them, and a listener that holds its own signal (a JavaScript listener that
    /// reads `request.signal`) is not kept alive for good by that cycle. Those of any other
    /// outcome run once, at its end, with the outcome's reason.
    ///
    /// A listener that panics is caught and counted
    /// ([`DrainReport::panicked_listeners`](crate::DrainReport::panicked_listeners)); it is
    /// `FnOnce`, so it drops what it captured while its panic unwinds, and a capture whose `Drop`
    /// panics too aborts the process (Rust's rule, before any catch; docs/design.md, "Callbacks
    /// that own a panicking `Drop`").
    ///
    /// Returns `false`, and drops `listener` without running it, if the signal is already aborted
    /// (as the DOM's `addEventListener("abort")` does), or if its admitted request has ended,
    /// whatever its outcome.
    pub fn on_abort(&self, listener: impl FnOnce(AbortReason) + 'static) -> bool {
        if !self.state.takes_listeners() {
            return false;
        }
        self.state.touch();
        self.state()
            .listeners
            .borrow_mut()
            .push(Some(Box::new(listener)));
        true
    }

    /// As [`on_abort`](AbortSignal::on_abort), with the listener's key for
    /// [`remove_listener`](AbortSignal::remove_listener); `None` if the signal already fired.
    #[cfg(feature = "hyper")]
    pub(crate) fn on_abort_keyed(
        &self,
        listener: impl FnOnce(AbortReason) + 'static,
    ) -> Option<ListenerKey> {
        if !self.state.takes_listeners() {
            return None;
        }
        self.state.touch();
        let state = self.state();
        let mut listeners = state.listeners.borrow_mut();
        // A place a keyed listener left, if any (invariant 5): a future made and dropped per
        // turn while others are held does not grow the list.
        if let Some(key) = state.free.borrow_mut().pop() {
            debug_assert!(listeners[key].is_none(), "a free place is empty");
            listeners[key] = Some(Box::new(listener));
            return Some(key);
        }
        listeners.push(Some(Box::new(listener)));
        Some(listeners.len() - 1)
    }

    /// Takes back the listener `key` names before the signal fires (its owner no longer
    /// waits): the list does not grow with listeners nobody waits on. Call it once per key,
    /// holding this handle since `on_abort_keyed` (so the signal was not reset and reused).
    #[cfg(feature = "hyper")]
    pub(crate) fn remove_listener(&self, key: ListenerKey) {
        if self.is_aborted() {
            return; // the abort ran it, or a listener of it is dropping this one now
        }
        let removed = {
            let state = self.state();
            let mut listeners = state.listeners.borrow_mut();
            let removed = listeners.get_mut(key).and_then(Option::take);
            let mut free = state.free.borrow_mut();
            if removed.is_some() {
                free.push(key); // taken before the list grows again (invariant 5)
            }
            if matches!(listeners.last(), Some(None)) {
                while matches!(listeners.last(), Some(None)) {
                    listeners.pop();
                }
                // The places popped are no longer free (each place there once).
                let len = listeners.len();
                free.retain(|&place| place < len);
            }
            removed
        };
        // Its `Drop` is user code (a waker's): unborrowed, caught.
        call_caught(move || drop(removed));
    }

    /// How many [`ActivityRef`](crate::ActivityRef)s keep this signal alive, one of them its
    /// admitted request's own while that request is out (it ends with the request's outcome,
    /// before the request object is dropped).
    pub fn pending_activity(&self) -> usize {
        let state = self.state();
        state.activity.get() + usize::from(state.request_out.get() == Request::Out)
    }

    /// Whether native work is pending on this signal (`hasPendingActivity` in JavaScriptCore).
    pub fn has_pending_activity(&self) -> bool {
        self.pending_activity() > 0
    }

    /// Whether `self` and `other` are handles to the same signal.
    pub fn same_as(&self, other: &AbortSignal) -> bool {
        Rc::ptr_eq(self.state(), other.state())
    }
}

impl Drop for AbortSignal {
    /// Dropping the last handle gives the signal back to its server for reuse (an admitted
    /// bundle gives its own back itself, without this upgrade: see `Admitted`'s `Drop`).
    #[inline(always)]
    fn drop(&mut self) {
        if Rc::strong_count(&self.state) == 1 {
            recycle_orphan(&self.state);
        }
    }
}

/// The last handle outside a bundle dropped: back to the server's spare list, if the server
/// is still alive. The spare list takes a second `Rc` and the handle's own drops after `drop`
/// returns, so the state is never freed here.
#[cold]
#[inline(never)]
fn recycle_orphan(state: &Rc<SignalState>) {
    if let Some(home) = state.home() {
        home.signals.recycle(Rc::clone(state));
    }
}

impl fmt::Debug for AbortSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortSignal")
            .field("reason", &self.reason())
            .field("pending_activity", &self.pending_activity())
            .finish()
    }
}

#[cfg(all(test, feature = "hyper"))]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use crate::engines::Heap;
    use crate::{Config, Outcome, ServerCore};

    /// A keyed listener (the hyper adapter's) marks its signal touched; taken back before the
    /// request completes, the signal is fresh again: the release checks it in full and keeps it
    /// beside its context, untouched. One left in place sends the signal to the spare list,
    /// reset: it never runs for a later request (invariant 6).
    #[test]
    fn a_listener_added_then_removed_leaves_the_signal_reusable() {
        let heap = Heap::new();
        let config = Config::default().with_pool_capacity(1).unwrap();
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let ran = Rc::new(Cell::new(0u32));
        let bundle = live.admit(|_| Ok(())).unwrap();
        let state = Rc::as_ptr(bundle.signal().state());
        assert!(!bundle.signal().state().is_touched());
        let r = Rc::clone(&ran);
        let key = bundle.signal().on_abort_keyed(move |_| r.set(r.get() + 1));
        bundle.signal().remove_listener(key.unwrap());
        assert!(bundle.signal().state().is_touched());
        bundle.complete();
        let next = live.admit(|_| Ok(())).unwrap();
        assert_eq!(
            Rc::as_ptr(next.signal().state()),
            state,
            "kept beside its context"
        );
        assert!(!next.signal().state().is_touched());
        let r = Rc::clone(&ran);
        assert!(next
            .signal()
            .on_abort_keyed(move |_| r.set(r.get() + 1))
            .is_some());
        next.complete();
        let third = live.admit(|_| Ok(())).unwrap();
        assert!(!third.signal().state().is_touched());
        assert!(third.signal().state().is_fresh());
        third.end(Outcome::ClientGone);
        assert_eq!(ran.get(), 0, "a completed request's listener ran");
        assert_eq!(core.ledger().outcomes().completed, 2);
        core.ledger().assert_quiescent();
    }

    /// Keyed listeners taken back out of order (QA embed32-2): a new one takes a place one
    /// left, so the list stays as long as the most held at once; every listener still in
    /// place runs once at the abort, and taking one back never takes another's.
    #[test]
    fn keyed_listeners_reuse_the_places_others_left() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
        let signal = bundle.signal();
        let ran = Rc::new(Cell::new(0u32));
        let key = |signal: &super::AbortSignal, bit: u32| {
            let r = Rc::clone(&ran);
            signal
                .on_abort_keyed(move |_| r.set(r.get() | bit))
                .unwrap()
        };
        let held = key(signal, 1);
        let mut last = key(signal, 2);
        for _ in 0..1000 {
            let next = key(signal, 4);
            signal.remove_listener(last);
            last = next;
        }
        assert!(signal.state().listeners.borrow().len() <= 3);
        let unkeyed = Rc::clone(&ran);
        assert!(signal.on_abort(move |_| unkeyed.set(unkeyed.get() | 8)));
        let other = key(signal, 16);
        signal.remove_listener(held);
        let reused = key(signal, 32);
        assert_eq!(reused, held, "the place the held one left");
        signal.remove_listener(other);
        bundle.end(Outcome::ClientGone);
        assert_eq!(ran.get(), 4 | 8 | 32, "the listeners in place ran, once");
        core.ledger().assert_quiescent();
    }
}
