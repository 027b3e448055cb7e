//! The request object: the `Request` a runtime builds for its handler, until the engine owns it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::rc::Rc;

use crate::ledger::{Entry, GuardKind};
use crate::server::shared::Shared;

/// The request a runtime is about to give its engine (`Request.new()` in Bun), counted until the
/// engine takes ownership with [`hand_off`](RequestObject::hand_off).
///
/// Minted only from the proof, with [`Live::request`](crate::Live::request) (and only while the
/// server admits requests), or inside a bundle, so it cannot exist before the liveness check: the `fetch()` path of the PR allocated it first and leaked it on
/// the 503 path. Dropping it without handing it off frees the payload and releases the count.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, GuardKind, RequestObject, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// let request = live.request(String::from("GET /")).unwrap();
/// assert_eq!(core.ledger().outstanding(GuardKind::Request), 1);
/// let owned_by_engine: String = RequestObject::hand_off(request);
/// assert_eq!(owned_by_engine, "GET /");
/// core.ledger().assert_quiescent();
/// ```
#[must_use = "dropping a request object frees it without giving it to the engine"]
#[clippy::has_significant_drop]
pub struct RequestObject<R> {
    payload: Option<R>,
    shared: Rc<Shared>,
    /// Released once: by `hand_off` (which takes the payload) or by `Drop` (payload still here).
    entry: Entry,
}

impl<R> RequestObject<R> {
    #[track_caller]
    #[inline]
    pub(crate) fn mint(shared: &Rc<Shared>, payload: R, site: &'static Location<'static>) -> Self {
        RequestObject {
            entry: shared.ledger.mint(GuardKind::Request, site),
            payload: Some(payload),
            shared: Rc::clone(shared),
        }
    }

    /// Passes ownership to the engine (`request.toJS()`): the ledger stops counting it.
    #[inline]
    pub fn hand_off(mut this: Self) -> R {
        this.take()
            .expect("a request object holds its payload until hand-off")
    }

    /// Takes the payload out (once) and releases the count.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<R> {
        let payload = self.payload.take()?;
        self.shared.ledger.release(GuardKind::Request, &self.entry);
        Some(payload)
    }

    /// Leaks the request object; the ledger keeps counting it.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, GuardKind, RequestObject, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// RequestObject::forget(core.upgrade().unwrap().request(()).unwrap());
    /// assert_eq!(core.ledger().outstanding(GuardKind::Request), 1);
    /// ```
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl<R> Deref for RequestObject<R> {
    type Target = R;

    fn deref(&self) -> &R {
        self.payload
            .as_ref()
            .expect("payload is present until hand-off")
    }
}

impl<R> DerefMut for RequestObject<R> {
    fn deref_mut(&mut self) -> &mut R {
        self.payload
            .as_mut()
            .expect("payload is present until hand-off")
    }
}

impl<R> Drop for RequestObject<R> {
    /// Frees a request that never reached the engine and releases its count.
    #[inline]
    fn drop(&mut self) {
        if self.payload.is_some() {
            self.shared.ledger.release(GuardKind::Request, &self.entry);
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for RequestObject<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestObject")
            .field("payload", &self.payload)
            .finish()
    }
}
