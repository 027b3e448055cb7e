//! What the hyper adapter's lent-bundle probes share (rounds 20 to 24): a handler gives its
//! request's bundle away (`/lend`: a runtime whose `Response` for one request is made from
//! another `Request` object, QA embed16-3) and another request's handler answers with it
//! (`/swap`), while a third may keep its own and wait (`/hang`). Each probe's server keeps
//! its own routes; these are the pieces they had each written again.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use reqguard::tokio_hyper::{Bundle, Reply};
use reqguard::AbortReason;
use tokio::sync::mpsc::UnboundedSender;

use crate::util::bodies::Gated;
use crate::util::hyper_thread::send;
use crate::util::{hang_up, Gone};

/// How long a lending probe waits for what hangs on a broken build (each round's `HANG`).
pub(crate) const HANG: Duration = Duration::from_secs(20);

/// The slot a `/lend` handler leaves its bundle in, for another request's handler to answer
/// with; each handler's future holds a clone.
#[derive(Clone, Default)]
pub(crate) struct Lent(Rc<RefCell<Option<Bundle>>>);

impl Lent {
    /// Leaves `bundle` in the slot.
    pub(crate) fn lend(&self, bundle: Bundle) {
        *self.0.borrow_mut() = Some(bundle);
    }

    /// The lent bundle, taken out of the slot.
    ///
    /// # Panics
    ///
    /// If none was lent.
    pub(crate) fn take(&self) -> Bundle {
        self.0.borrow_mut().take().expect("lent first")
    }

    /// What `/swap` does: drops its `own` bundle, then answers with the lent one, a body
    /// that `body` makes.
    ///
    /// # Panics
    ///
    /// If none was lent.
    pub(crate) fn swap<B: hyper::body::Body>(
        &self,
        own: Bundle,
        body: impl FnOnce() -> B,
    ) -> Reply<B> {
        drop(own);
        let lent = self.take();
        lent.respond(hyper::Response::new(body()))
    }
}

/// `abc`, whole: the body `/swap` answers with when it need not be held back.
pub(crate) fn abc() -> Full<Bytes> {
    Full::new(Bytes::from_static(b"abc"))
}

/// A body of 4 bytes, `ab` at once and the rest when the test sends it, through the sender
/// given on `gate`.
pub(crate) fn gated_ab(gate: &mpsc::Sender<UnboundedSender<Bytes>>) -> Gated {
    let (body, rest) = Gated::new(b"ab", 4);
    gate.send(rest).unwrap();
    body
}

/// What a watching `/lend` does: its signal's reasons go on `fired`, its bundle to `lent`
/// (told on `told`), then it waits for ever, its future's drop told on `gone` (if given).
pub(crate) async fn lend_watched_and_wait<T>(
    bundle: Bundle,
    lent: &Lent,
    fired: mpsc::Sender<AbortReason>,
    told: &mpsc::Sender<()>,
    gone: Option<mpsc::Sender<()>>,
) -> T {
    bundle.signal().on_abort(move |reason| {
        let _ = fired.send(reason);
    });
    lent.lend(bundle);
    told.send(()).unwrap();
    // Told when hyper drops this future (its client went away).
    let _gone = gone.map(Gone);
    std::future::pending::<()>().await;
    unreachable!()
}

/// What `/hang` does: keeps its bundle (told on `told`, if given) and waits for ever, its
/// future's drop told on `gone`.
pub(crate) async fn hang<T>(
    bundle: Bundle,
    gone: mpsc::Sender<()>,
    told: Option<&mpsc::Sender<()>>,
) -> T {
    let _gone = Gone(gone);
    let _kept = bundle;
    if let Some(told) = told {
        told.send(()).unwrap();
    }
    std::future::pending::<()>().await;
    unreachable!()
}

/// A request on `/hang` (its handler told on `lent_rx`) whose client then goes: one *client
/// gone*, counted in `aborted`.
pub(crate) fn one_client_gone(
    addr: SocketAddr,
    lent_rx: &mpsc::Receiver<()>,
    gone_rx: &mpsc::Receiver<()>,
) {
    let hang = send(addr, "/hang");
    lent_rx.recv_timeout(HANG).unwrap();
    hang_up(hang);
    gone_rx.recv_timeout(HANG).expect("/hang's future dropped");
}
