//! Routes and handlers: the server's side of a runtime's `fetch(request)` callback.
//!
//! The route table lives in a `typed_arena::Arena` owned by [`Routes`], which lives as long as
//! the server: every [`Route`] has a stable address, so the router and every deferred request
//! hold a plain `&'r Route` (no `Rc`, no index that could go stale).

use std::fmt;
use std::time::Duration;

use typed_arena::Arena;

use super::response::Response;
use crate::signal::AbortSignal;

/// A parsed request as a handler sees it. Everything borrows the connection's buffers.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) http10: bool,
    pub(crate) body: &'a [u8],
    pub(crate) signal: Option<&'a AbortSignal>,
}

impl<'a> Request<'a> {
    /// The method, e.g. `"GET"`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent, e.g. `"/delay?ms=5"`.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path: the target up to `?`.
    pub fn path(&self) -> &'a str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The value of query parameter `name` (no percent-decoding).
    ///
    /// # Examples
    ///
    /// ```
    /// # use reqguard::http::{Limits, Reply, Router, Routes, Session, Unaccounted};
    /// let routes = Routes::new();
    /// let mut router = Router::new(&routes);
    /// router.route("GET", "/q", |req: &reqguard::http::Request<'_>, res: &mut reqguard::http::Response<'_>| {
    ///     res.write(req.query_param("ms").unwrap_or("none").as_bytes());
    ///     Reply::Now
    /// });
    /// let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
    /// session.feed(b"GET /q?a=1&ms=25 HTTP/1.1\r\n\r\n");
    /// assert!(session.take_output().ends_with(b"\r\n\r\n25"));
    /// ```
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query()?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// Whether the request was HTTP/1.0.
    pub fn is_http10(&self) -> bool {
        self.http10
    }

    /// The body (chunked bodies arrive decoded).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The request's abort signal: aborted when the client disconnects or the drain deadline
    /// passes. `None` under [`Unaccounted`](crate::http::Unaccounted), which has no signals.
    pub fn signal(&self) -> Option<&'a AbortSignal> {
        self.signal
    }
}

/// When the response is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The response is complete now.
    Now,
    /// The response completes on a later turn of the loop, after `delay`: the server keeps the
    /// request's guards meanwhile and then calls [`Handler::resume`] with `token`. This is how a
    /// JS promise returned by `fetch` resolves. If the client disconnects first, the request's
    /// signal is aborted and its guards are released without `resume` being called.
    After {
        /// How long until the response is ready.
        delay: Duration,
        /// Passed back to [`Handler::resume`].
        token: u64,
    },
}

/// A request handler: the runtime's `fetch` callback.
///
/// Closures and functions `Fn(&Request, &mut Response) -> Reply` are handlers. A handler that
/// panics gets a `500` and the server keeps serving (unwinding is caught around the call).
///
/// # Examples
///
/// A handler whose answer comes later, the way a JS promise resolves:
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::{Handler, Limits, Reply, Request, Response, Router, Routes, Session, Unaccounted};
///
/// struct Later;
/// impl Handler for Later {
///     fn handle(&self, _: &Request<'_>, _: &mut Response<'_>) -> Reply {
///         Reply::After { delay: Duration::from_secs(1), token: 7 }
///     }
///     fn resume(&self, token: u64, res: &mut Response<'_>) {
///         res.write(format!("resolved {token}").as_bytes());
///     }
/// }
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// router.route("GET", "/later", Later);
/// let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
/// session.feed(b"GET /later HTTP/1.1\r\n\r\n");
/// assert!(session.take_output().is_empty());
/// session.advance(Duration::from_secs(1));
/// assert!(session.take_output().ends_with(b"resolved 7"));
/// ```
pub trait Handler {
    /// Answers `request` now, or defers with [`Reply::After`].
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) -> Reply;

    /// Completes a deferred response. The default answers `500`.
    fn resume(&self, token: u64, response: &mut Response<'_>) {
        let _ = token;
        response.set_status(500);
    }
}

impl<F> Handler for F
where
    F: Fn(&Request<'_>, &mut Response<'_>) -> Reply,
{
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        self(request, response)
    }
}

/// One entry of the route table.
pub struct Route {
    method: &'static str,
    path: Box<str>,
    handler: Box<dyn Handler>,
}

impl Route {
    /// The method it answers.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The path it answers.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn handler(&self) -> &dyn Handler {
        &*self.handler
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route({} {})", self.method, self.path)
    }
}

/// The storage of a route table: an arena that lives as long as the server.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Reply, Request, Response, Router, Routes};
///
/// fn hello(_: &Request<'_>, res: &mut Response<'_>) -> Reply {
///     res.write(b"hello");
///     Reply::Now
/// }
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// let hello = router.route("GET", "/", hello);
/// assert_eq!(hello.path(), "/");
/// assert!(std::ptr::eq(router.find("GET", "/").unwrap(), hello)); // a stable reference
/// assert_eq!(router.find("POST", "/").unwrap_err(), 405);
/// assert_eq!(router.find("GET", "/nope").unwrap_err(), 404);
/// ```
#[derive(Default)]
pub struct Routes {
    arena: Arena<Route>,
}

impl Routes {
    /// An empty route store.
    pub fn new() -> Self {
        Routes::default()
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Routes({})", self.arena.len())
    }
}

/// The route table: method and exact path to a handler.
pub struct Router<'r> {
    routes: &'r Routes,
    table: Vec<&'r Route>,
}

impl<'r> Router<'r> {
    /// An empty router storing its routes in `routes`.
    pub fn new(routes: &'r Routes) -> Self {
        Router {
            routes,
            table: Vec::new(),
        }
    }

    /// Adds a route and returns it (a reference that stays valid as long as `routes`).
    pub fn route(
        &mut self,
        method: &'static str,
        path: &str,
        handler: impl Handler + 'static,
    ) -> &'r Route {
        let route = self.routes.arena.alloc(Route {
            method,
            path: path.into(),
            handler: Box::new(handler),
        });
        self.table.push(route);
        route
    }

    /// The route for `method` and `path`, or the status to answer with: `404` for an unknown
    /// path, `405` for a known path with another method.
    pub fn find(&self, method: &str, path: &str) -> Result<&'r Route, u16> {
        let mut status = 404;
        for route in &self.table {
            if &*route.path == path {
                if route.method == method {
                    return Ok(route);
                }
                status = 405;
            }
        }
        Err(status)
    }
}

impl fmt::Debug for Router<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.table).finish()
    }
}
