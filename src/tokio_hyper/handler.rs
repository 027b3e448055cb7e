//! The embedder's handler, and the engine scope an upgrade needs.

use std::future::Future;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::Request;

use super::body::BoxError;
use super::bundle::{Bundle, Reply};
use crate::pool::Recycle;
use crate::wrapper::Engine;

/// What a handler returns when it fails without a response: the adapter answers `500`, and the
/// bundle (dropped inside the handler) ends as *dropped*.
pub type HandlerError = Box<dyn std::error::Error>;

/// The embedder's async request handler: called with the wrapper (`this`), the request and the
/// [`Bundle`], after the upgrade and the admission succeeded.
///
/// Any `Fn(E::Strong, Request<Incoming>, Bundle<C>) -> impl Future<Output =
/// Result<Reply<B, C>, HandlerError>>` is a handler. Its future runs on the connection's local
/// task, so it may hold `!Send` state (`Rc`, engine handles) across `.await`s.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper::{body::Incoming, Request, Response};
/// use reqguard::engines::Handle;
/// use reqguard::tokio_hyper::{Bundle, HandlerError, Reply};
///
/// async fn hello(
///     _this: Handle<&'static str>,
///     _req: Request<Incoming>,
///     bundle: Bundle,
/// ) -> Result<Reply<Full<Bytes>>, HandlerError> {
///     Ok(bundle.respond(Response::new(Full::new(Bytes::from_static(b"hello")))))
/// }
/// ```
pub trait Handler<E: Engine, C: Recycle = ()>: 'static {
    /// The response body.
    type Body: Body<Data = Bytes, Error: Into<BoxError>> + 'static;
    /// The handler's future.
    type Future: Future<Output = Result<Reply<Self::Body, C>, HandlerError>> + 'static;

    /// Handles one admitted request.
    fn call(&self, this: E::Strong, request: Request<Incoming>, bundle: Bundle<C>) -> Self::Future;
}

impl<E, C, F, Fut, B> Handler<E, C> for F
where
    E: Engine,
    C: Recycle,
    F: Fn(E::Strong, Request<Incoming>, Bundle<C>) -> Fut + 'static,
    Fut: Future<Output = Result<Reply<B, C>, HandlerError>> + 'static,
    B: Body<Data = Bytes, Error: Into<BoxError>> + 'static,
{
    type Body = B;
    type Future = Fut;

    #[inline]
    fn call(&self, this: E::Strong, request: Request<Incoming>, bundle: Bundle<C>) -> Fut {
        self(this, request, bundle)
    }
}

/// Enters the engine for an upgrade ([`Engine::Scope`]), on the server's thread.
///
/// Engines whose scope is `()` (the embedded [`Heap`](crate::engines::Heap), `Rc`-based ones)
/// use [`NoScope`]. With the `quickjs` feature, an [`rquickjs::Context`] is a scope provider.
pub trait EnterScope<E: Engine>: 'static {
    /// Runs `f` inside the engine.
    fn enter<R>(&self, f: impl FnOnce(&mut E::Scope<'_>) -> R) -> R;
}

/// The scope provider of engines whose scope is `()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoScope;

impl<E> EnterScope<E> for NoScope
where
    E: for<'s> Engine<Scope<'s> = ()>,
{
    #[inline]
    fn enter<R>(&self, f: impl FnOnce(&mut ()) -> R) -> R {
        f(&mut ())
    }
}

#[cfg(feature = "quickjs")]
impl EnterScope<crate::engines::QuickJs> for rquickjs::Context {
    fn enter<R>(&self, f: impl FnOnce(&mut rquickjs::Ctx<'_>) -> R) -> R {
        self.with(|ctx| f(&mut ctx.clone()))
    }
}
