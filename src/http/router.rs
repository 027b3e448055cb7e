//! Routes and handlers: the server's side of a runtime's `fetch(request)` callback.
//!
//! The route table lives in a `typed_arena::Arena` owned by [`Routes`], which lives as long as
//! the server: every [`Route`] has a stable address, so the router and every deferred request
//! hold a plain `&'r Route` (no `Rc`, no index that could go stale).

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use typed_arena::Arena;

use super::accounting::ThisSource;
use super::parse::{FieldSlots, Framing, Head};
use super::response::Response;
use crate::callback::{call_caught, drop_caught};
use crate::signal::AbortSignal;

/// A parsed request as a handler sees it. Everything borrows the connection's buffers.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Limits, Reply, Request, Response, Router, Routes, Session, Unaccounted};
///
/// fn show(req: &Request<'_>, res: &mut Response<'_>) -> Reply {
///     res.write(req.path().as_bytes());
///     res.write(b" ");
///     res.write(req.header("x-name").unwrap_or(b"-")); // any case
///     res.write(b" ");
///     res.write(req.host().unwrap_or("-").as_bytes());
///     Reply::Now
/// }
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// router.route("GET", "/who", show);
/// let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
/// session.feed(b"GET /who?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Name: ada\r\n\r\n");
/// assert!(session.take_output().ends_with(b"\r\n\r\n/who ada example.com"));
/// // An absolute-form target (what a proxy client sends) is served like its path:
/// session.feed(b"GET http://a.example/who HTTP/1.1\r\nHost: a.example\r\n\r\n");
/// assert!(session.take_output().ends_with(b"\r\n\r\n/who - a.example"));
/// ```
///
/// Nothing is copied or converted up front: the accessors slice the head and read text when
/// asked (the router matches bytes), so a handler pays only for what it looks at.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The input from the head's first byte: head, body, and whatever follows them (the next
    /// requests of a pipeline).
    pub(crate) input: &'a [u8],
    /// Where the parts are in `input`.
    pub(crate) parsed: &'a Head,
    /// The slots the head's fields were parsed into: the first [`Head::fields`] are its own.
    pub(crate) fields: &'a FieldSlots,
    /// A chunked body, decoded (a `Content-Length` body is the input after the head).
    pub(crate) decoded: &'a [u8],
    /// The request's signal, or `None` where it is read from `this` when the handler asks
    /// (an accounting that keeps the request's bundle: `Accounting::signal_lent`).
    pub(crate) signal: Option<&'a AbortSignal>,
    /// Where `this` is read from when the handler asks (nothing is read for a handler that
    /// does not), and the signal if `signal` is `None`.
    pub(crate) this: Option<&'a dyn ThisSource>,
}

/// An origin's path and query (after `?`), without its fragment if it has one (a `#` and what
/// follows: not part of a request target).
#[inline]
fn split_origin(origin: &[u8]) -> (&[u8], Option<&[u8]>) {
    let origin = match memchr::memchr(b'#', origin) {
        Some(hash) => &origin[..hash],
        None => origin,
    };
    match origin.iter().position(|&b| b == b'?') {
        Some(q) => (&origin[..q], Some(&origin[q + 1..])),
        None => (origin, None),
    }
}

fn text(bytes: &[u8]) -> &str {
    // Method and target are ASCII once httparse accepted them; anything else reads as empty.
    std::str::from_utf8(bytes).unwrap_or("")
}

impl<'a> Request<'a> {
    /// The request parsed into `head` (`input` starts at the head's first byte) and `fields`,
    /// with its chunked body `decoded` (any bytes for another framing: unread).
    pub(crate) fn new(
        input: &'a [u8],
        head: &'a Head,
        fields: &'a FieldSlots,
        decoded: &'a [u8],
        signal: Option<&'a AbortSignal>,
        this: Option<&'a dyn ThisSource>,
    ) -> Self {
        Request {
            input,
            parsed: head,
            fields,
            decoded,
            signal,
            this,
        }
    }

    #[inline]
    pub(crate) fn method_bytes(&self) -> &'a [u8] {
        &self.input[self.parsed.method.range()]
    }

    /// The method's [`method_key`], from one 8-byte load where the head has 8 bytes from
    /// the method on (it always has: the request line goes on after the method), masked to
    /// its length by a table.
    #[inline]
    pub(crate) fn method_key(&self) -> u64 {
        /// The low `n` bytes of a word, for `n` up to 8 (0 bytes: key 0, the bytes decide).
        const MASKS: [u64; 9] = {
            let mut masks = [0; 9];
            let mut n = 1;
            while n < 9 {
                masks[n] = u64::MAX >> (64 - 8 * n);
                n += 1;
            }
            masks
        };
        let (start, len) = (self.parsed.method.start(), self.parsed.method.len());
        // `start` is a head's offset (a `u32`): `start + 8` cannot overflow.
        if let (Some(&mask), Some(word)) = (MASKS.get(len), self.input.get(start..start + 8)) {
            let word: [u8; 8] = word.try_into().unwrap_or_default();
            // A method is a token (checked by the parser): no zero byte.
            return u64::from_le_bytes(word) & mask;
        }
        method_key(self.method_bytes())
    }

    /// The origin (path and query) as bytes: the target, or the part of an absolute-form one
    /// after its authority.
    #[inline]
    pub(crate) fn origin_bytes(&self) -> &'a [u8] {
        &self.input[self.parsed.origin.range()]
    }

    /// The origin's first 8 bytes as a little-endian word, from one load where the input has
    /// 8 bytes from the origin on (a parsed head always has: its request line goes on after
    /// the target); bytes past the origin are whatever follows it (a route's match masks
    /// them off).
    #[inline]
    pub(crate) fn origin_word(&self) -> u64 {
        let start = self.parsed.origin.start();
        // `start` is a head's offset (a `u32`): `start + 8` cannot overflow.
        let word = match self.input.get(start..start + 8) {
            Some(word) => word.try_into().unwrap_or_default(),
            None => {
                let origin = self.origin_bytes();
                let mut word = [0; 8];
                let len = origin.len().min(8);
                word[..len].copy_from_slice(&origin[..len]);
                word
            }
        };
        u64::from_le_bytes(word)
    }

    /// The path and the query (after `?`) as bytes. `http://host` and `http://host?q` have the
    /// path `/` (RFC 9110 §4.2.3). A fragment (`#` and what follows) is no part of either: a
    /// request target has none (RFC 9112 §3.2), and it is dropped as hyper's URI parser drops
    /// it, so both stacks route `/#x` as `/`.
    #[inline]
    pub(crate) fn path_and_query(&self) -> (&'a [u8], Option<&'a [u8]>) {
        let (path, query) = split_origin(&self.input[self.parsed.origin.range()]);
        (if path.is_empty() { b"/" } else { path }, query)
    }

    /// The method, e.g. `"GET"` (`"HEAD"` when a `GET` route answers a `HEAD`).
    pub fn method(&self) -> &'a str {
        text(self.method_bytes())
    }

    /// The request target as sent, e.g. `"/delay?ms=5"` or `"http://host/delay?ms=5"`.
    pub fn target(&self) -> &'a str {
        text(&self.input[self.parsed.target.range()])
    }

    /// The path, e.g. `"/delay"`: the target up to `?`, from an absolute-form target its path.
    pub fn path(&self) -> &'a str {
        text(self.path_and_query().0)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.path_and_query().1.map(text)
    }

    /// The host the request is for: the authority of an absolute-form target, else the `Host`
    /// field (absent only in an HTTP/1.0 request without one).
    pub fn host(&self) -> Option<&'a str> {
        // Checked by the parser to be `host[:port]`, so ASCII.
        let host = self.parsed.host.get()?;
        Some(text(&self.input[host.range()]))
    }

    /// The value of the first header field called `name` (compared case-insensitively), as
    /// sent, without surrounding whitespace.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find_map(|(n, v)| n.eq_ignore_ascii_case(name).then_some(v))
    }

    /// Every header field in the order sent, repeated names included: `(name, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let (head, fields) = (self.input, self.fields);
        fields[..usize::from(self.parsed.fields)]
            .iter()
            .map(move |h| (text(&head[h.name.range()]), &head[h.value.range()]))
    }

    /// The wrapper the request was admitted with, the `this` a runtime calls its handler with
    /// (the strong handle [`Live::wrapper`](crate::Live::wrapper) gave), if it is a `T`.
    /// Under [`Guarded`](crate::http::Guarded) `T` is the engine's strong handle (for the
    /// embedded engine, [`Handle`](crate::engines::Handle)`<W>`); under
    /// [`Unaccounted`](crate::http::Unaccounted) there is none.
    pub fn this<T: Any>(&self) -> Option<&'a T> {
        self.this?.this_now()?.downcast_ref()
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
    /// session.feed(b"GET /q?a=1&ms=25 HTTP/1.1\r\nhost: x\r\n\r\n");
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
        self.parsed.http10
    }

    /// The body (chunked bodies arrive decoded).
    pub fn body(&self) -> &'a [u8] {
        match self.parsed.framing {
            Framing::Length(n) => self
                .input
                .get(self.parsed.len..)
                .and_then(|body| body.get(..n))
                .unwrap_or_default(),
            Framing::Chunked => self.decoded,
        }
    }

    /// The request's abort signal: aborted when the client disconnects or the drain deadline
    /// passes. `None` under [`Unaccounted`](crate::http::Unaccounted), which has no signals.
    pub fn signal(&self) -> Option<&'a AbortSignal> {
        match (self.signal, self.this) {
            (Some(signal), _) => Some(signal),
            // The accounting keeps the request's bundle (`Guarded`): lent from there when
            // asked, so a handler that does not ask pays nothing for it.
            (None, Some(this)) => lent_signal(this),
            (None, None) => None,
        }
    }
}

/// [`Request::signal`] read from its `this` source (`Accounting::signal_lent`): out of line.
#[inline(never)]
fn lent_signal(this: &dyn ThisSource) -> Option<&AbortSignal> {
    this.signal_now()
}

/// When the response is ready.
// Tagged by a whole word: a handler returns it through memory (it is 24 bytes or more), and
// whatever reads it (the server's `Call::call`, where the handler's `handle` is not inlined:
// round 26) reads its tag back with one 8-byte load right after the call. Left to the
// compiler, the tag was the niche in `delay`'s 4-byte nanoseconds: `Reply::Now` one 4-byte
// store, read back by an 8-byte load, which cannot be forwarded from a narrower store and
// waited for it to reach the cache (a quarter of the reading loop's samples on the floor
// bench; docs/benchmarks-history.md, round 24, HTTP path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
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
/// session.feed(b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n");
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

/// A deferred answer's [`Reply::After`] fields, as [`Call::call`] leaves them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct After {
    pub(crate) delay: Duration,
    pub(crate) token: u64,
}

/// A route's handler as the server calls it: [`Handler::handle`] with its `Reply` taken apart
/// where the handler's type is known (a closure's or a function's `handle` is inlined there),
/// so what comes back through the dynamic call is one `bool` in a register, and a deferral's
/// fields go to a slot the server passes. Called as `dyn Handler`, the 32-byte `Reply` came
/// back through memory: the server loaded its tag back, and its `After` fields with it,
/// spilled on the `Now` path too (docs/benchmarks-history.md, round 26, HTTP path).
pub(crate) trait Call {
    /// Calls [`Handler::handle`]: whether it deferred the answer, whose fields it then wrote
    /// to `after` (left as they were for `Reply::Now`).
    fn call(&self, request: &Request<'_>, response: &mut Response<'_>, after: &mut After) -> bool;

    /// Calls [`Handler::resume`].
    fn resume(&self, token: u64, response: &mut Response<'_>);
}

impl<T: Handler> Call for T {
    #[inline]
    fn call(&self, request: &Request<'_>, response: &mut Response<'_>, after: &mut After) -> bool {
        match self.handle(request, response) {
            Reply::Now => false,
            Reply::After { delay, token } => {
                *after = After { delay, token };
                true
            }
        }
    }

    #[inline]
    fn resume(&self, token: u64, response: &mut Response<'_>) {
        Handler::resume(self, token, response);
    }
}

/// One route: a method and an exact path to a handler.
pub struct Route {
    method: &'static str,
    path: Box<str>,
    handler: Box<dyn Call>,
}

/// The embedder's handler is dropped on its own, caught: the routes drop together (one arena),
/// and a second handler's `Drop` panicking while the first's unwinds would abort the process.
impl Drop for Route {
    fn drop(&mut self) {
        // A zero-sized stand-in: boxing it allocates nothing.
        let handler = std::mem::replace(&mut self.handler, Box::new(Gone));
        call_caught(move || drop(handler));
    }
}

/// What a dropped route holds instead of its handler (nothing calls it).
struct Gone;

impl Handler for Gone {
    fn handle(&self, _: &Request<'_>, response: &mut Response<'_>) -> Reply {
        response.fail(500);
        Reply::Now
    }
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

    pub(crate) fn handler(&self) -> &dyn Call {
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
/// assert!(std::ptr::eq(router.find("HEAD", "/").unwrap(), hello)); // GET answers HEAD
/// assert_eq!(router.find("POST", "/").unwrap_err(), 405);
/// assert_eq!(router.allow("/"), Some("GET, HEAD"));
/// assert_eq!(router.allow("*"), Some("GET, HEAD"));
/// assert_eq!(router.find("GET", "/nope").unwrap_err(), 404);
/// assert_eq!(router.find("BREW", "/").unwrap_err(), 501);
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

/// Fills a router with `routes` on this thread (the handlers need not be `Send`), runs `serve`
/// with it, then drops the router and the handlers, their `Drop` caught: the handlers are the
/// embedder's, and one whose `Drop` panics must not lose the report `serve` made. How a
/// spawned server's thread and each loop of a group serve.
pub(crate) fn serve_with_routes<T>(
    routes: impl FnOnce(&mut Router<'_>),
    serve: impl FnOnce(&Router<'_>) -> T,
) -> T {
    let store = Routes::new();
    let mut router = Router::new(&store);
    routes(&mut router);
    let served = serve(&router);
    drop(router);
    drop_caught(store);
    served
}

/// A method of 1 to 8 bytes as one word: its bytes, little-endian, zero-padded; 0 for any
/// other (longer, or with a zero byte, which no token has). Two methods with the same key
/// other than 0 are the same method: the padding cannot be mistaken for a byte.
pub(crate) fn method_key(method: &[u8]) -> u64 {
    if method.is_empty() || method.len() > 8 || method.contains(&0) {
        return 0;
    }
    let mut word = [0; 8];
    word[..method.len()].copy_from_slice(method);
    u64::from_le_bytes(word)
}

/// `a == b`, written as a loop: paths and methods are short, and a `memcmp` call costs more
/// than comparing them here.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `method` is a token (RFC 9110 §5.6.2): what a request's method always is.
fn is_token(method: &str) -> bool {
    !method.is_empty() && method.bytes().all(crate::codings::is_tchar)
}

/// The methods every HTTP server knows (RFC 9110 §9, RFC 5789), with or without a route for
/// them; any other method is known only if a route answers it. `CONNECT` is left out: this
/// server tunnels nothing, so it is not implemented (`501`).
const STANDARD_METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH",
];

/// A route as the lookup matches it, kept in the table itself: the lookup reads the entry and
/// goes to the route only once it matched (or for a path longer than a word). Read through the
/// route, a match was three dependent loads (the table's pointer to the route, the route's
/// pointer to its path, the path's bytes) and a loop over the path's bytes: with one
/// connection, the load of the route's path length was 4.5 % of the reading loop's samples
/// (`perf annotate`, round 24).
#[derive(Clone, Copy)]
struct Entry<'r> {
    /// The path's first bytes (up to 8), little-endian, zero-padded: see [`Entry::new`].
    prefix: u64,
    /// The bytes of a word that [`prefix`](Entry::prefix) holds.
    mask: u64,
    /// How long the path of an origin this route answers is: the route's path's length, or
    /// `usize::MAX` for a path with a `?` or a `#`, which no request's path has (no origin is
    /// that long).
    origin_len: usize,
    /// The method as a [`method_key`].
    method_key: u64,
    route: &'r Route,
}

impl<'r> Entry<'r> {
    fn new(route: &'r Route) -> Self {
        let path = route.path.as_bytes();
        let prefix_len = path.len().min(8);
        let mut prefix = [0; 8];
        prefix[..prefix_len].copy_from_slice(&path[..prefix_len]);
        Entry {
            prefix: u64::from_le_bytes(prefix),
            mask: u64::MAX
                .checked_shr(64 - 8 * prefix_len as u32)
                .unwrap_or(0),
            origin_len: if path.contains(&b'?') || path.contains(&b'#') {
                usize::MAX
            } else {
                path.len()
            },
            method_key: method_key(route.method.as_bytes()),
            route,
        }
    }

    /// Whether the route's path is the origin `origin` (path and query) without its query or
    /// fragment; `word` is the origin's first 8 bytes as [`Request::origin_word`] gives them.
    #[inline(always)]
    fn is_origin_path(&self, origin: &[u8], word: u64) -> bool {
        let len = self.origin_len;
        let ends_there = match origin.get(len) {
            None => origin.len() == len,
            // A query, or a fragment (dropped: see `Request::path_and_query`).
            Some(&next) => matches!(next, b'?' | b'#'),
        };
        // `origin` is at least `len` bytes long once `ends_there`: the word's first `len` (up
        // to 8) bytes are its own.
        ends_there
            && word & self.mask == self.prefix
            && (len <= 8 || same(&self.route.path.as_bytes()[8..], &origin[8..len]))
    }
}

/// The route table: method and exact path to a handler.
///
/// A `GET` route also answers `HEAD` (the server sends the head of its answer only). A path with
/// no route for the method is `405` with an `allow` field naming the path's methods; a method
/// the server does not know at all is `501`.
pub struct Router<'r> {
    routes: &'r Routes,
    table: Vec<Entry<'r>>,
    /// Each path's `allow` value (`GET, HEAD, POST`), kept up to date as routes are added: a
    /// route added touches its own path's value only, so a router of `n` routes is built in
    /// `O(n)` (recomputed from every route at each addition, 16,000 routes took a minute in a
    /// debug build: QA embed31-1).
    allow: HashMap<Box<str>, Allow>,
    /// Every route's methods: the `allow` of `OPTIONS *`.
    allow_all: Allow,
    /// Every method some route answers (a token: see [`route`](Router::route)): what [`knows`](Router::knows) asks
    /// beside the standard ones (it asked every route).
    methods: HashSet<&'static str>,
}

/// The methods of some routes, in the order added (`HEAD` after `GET`, which implies it), and
/// their `allow` value. A route whose method is not a token answers no request and is left
/// out (by [`Router::route`], and here again): written into the field, a CR or LF in it would
/// inject others.
#[derive(Default)]
struct Allow {
    methods: HashSet<&'static str>,
    value: String,
}

impl Allow {
    /// Adds a route's method (and `HEAD` after `GET`): appended to the value if it is new.
    fn add(&mut self, method: &'static str) {
        if !is_token(method) {
            return;
        }
        let implied: &[&'static str] = if method == "GET" {
            &["GET", "HEAD"]
        } else {
            std::slice::from_ref(&method)
        };
        for &method in implied {
            if !self.methods.insert(method) {
                continue;
            }
            if !self.value.is_empty() {
                self.value.push_str(", ");
            }
            self.value.push_str(method);
        }
    }
}

impl<'r> Router<'r> {
    /// An empty router storing its routes in `routes`.
    pub fn new(routes: &'r Routes) -> Self {
        Router {
            routes,
            table: Vec::new(),
            allow: HashMap::new(),
            allow_all: Allow::default(),
            methods: HashSet::new(),
        }
    }

    /// Adds a route and returns it (a reference that stays valid as long as `routes`).
    ///
    /// A `method` that is not a token (RFC 9110 §5.6.2: empty, or with a space, CR, LF...)
    /// answers no request, since a request's method always is one: the route is not put in the
    /// table, is left out of every `allow` value and of the methods the router
    /// [knows](Router::knows), so a path whose routes all have such a method is a path with no
    /// route (`404`, [`allow`](Router::allow) `None`; it was `405` with an empty `allow`).
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
        // Left out at build time, so the lookup never asks whether a method is a token.
        if is_token(method) {
            self.table.push(Entry::new(route));
            self.note_allowed(path, method);
        }
        route
    }

    /// The `allow` values of `path` and of `*`, and the methods known, with a route of
    /// `method` at `path` added: each in time independent of the routes already added.
    fn note_allowed(&mut self, path: &str, method: &'static str) {
        match self.allow.get_mut(path) {
            Some(allow) => allow.add(method),
            None => {
                let mut allow = Allow::default();
                allow.add(method);
                self.allow.insert(path.into(), allow);
            }
        }
        self.allow_all.add(method);
        self.methods.insert(method);
    }

    /// The routes that answer requests (every one but those whose method is not a token), in
    /// the order added.
    fn routes(&self) -> impl Iterator<Item = &'r Route> + '_ {
        self.table.iter().map(|entry| entry.route)
    }

    /// The route for `method` and `path`, or the status to answer with: `404` for an unknown
    /// path, `405` for a known path with another method (see [`allow`](Router::allow)), `501`
    /// for a method the server does not know. `HEAD` finds the `GET` route unless the path has
    /// a `HEAD` route of its own.
    ///
    /// # Errors
    ///
    /// The status to answer with when no route serves the request: `404`, `405` or `501`, as
    /// above.
    pub fn find(&self, method: &str, path: &str) -> Result<&'r Route, u16> {
        let method = method.as_bytes();
        self.find_bytes(method, method_key(method), path.as_bytes())
    }

    /// [`find`](Router::find) on the bytes of a request line; `key` is the method's
    /// [`method_key`].
    #[inline]
    pub(crate) fn find_bytes(
        &self,
        method: &[u8],
        key: u64,
        path: &[u8],
    ) -> Result<&'r Route, u16> {
        // Lengths first: most routes differ in length from the path asked for.
        self.find_where(
            || method,
            key,
            |entry| same(entry.route.path.as_bytes(), path),
        )
    }

    /// [`find_bytes`](Router::find_bytes) for the request whose origin-form target (path and
    /// query) is `origin`, its first 8 bytes `word` ([`Request::origin_word`]): a route's path
    /// matches when the origin is that path, or that path and a query. The path is never
    /// looked for (no search for its `?`).
    #[inline]
    pub(crate) fn find_origin<'m>(
        &self,
        method: impl Fn() -> &'m [u8],
        key: u64,
        origin: &[u8],
        word: u64,
    ) -> Result<&'r Route, u16> {
        // A route whose path has a `?` answers no request: a request's path never has one.
        self.find_where(method, key, |entry| entry.is_origin_path(origin, word))
    }

    /// The route [`find_origin`](Router::find_origin) finds when it is the first entry with
    /// the origin's path and the method whose short key is `key` (the common request), else
    /// `None` (the caller asks `find_origin`: a long method, whose key is 0, a `HEAD` served
    /// by `GET`, `404`, `405`, `501`). A loop that asks nothing else: no status, no `GET`
    /// fallback and no method bytes kept for the rarer answers.
    #[inline(always)]
    pub(crate) fn find_origin_common(
        &self,
        key: u64,
        origin: &[u8],
        word: u64,
    ) -> Option<&'r Route> {
        // Key 0: a method longer than 8 bytes (or with a zero byte), whose bytes decide; no
        // entry's key is 0 and equal to a request's nonzero key.
        if key == 0 {
            return None;
        }
        self.table
            .iter()
            .find(|entry| entry.method_key == key && entry.is_origin_path(origin, word))
            .map(|entry| entry.route)
    }

    /// The route for the method `method()` gives (with its `key`) whose path `is_path` says is
    /// the request's (see [`find`](Router::find)). The method's bytes are looked at only when
    /// its key cannot say: it is not sliced on the way to a route.
    #[inline(always)]
    fn find_where<'m>(
        &self,
        method: impl Fn() -> &'m [u8],
        key: u64,
        is_path: impl Fn(&Entry<'r>) -> bool,
    ) -> Result<&'r Route, u16> {
        let mut status = 404;
        let mut get = None;
        for entry in &self.table {
            if is_path(entry) {
                let route = entry.route;
                let same_method = match key {
                    0 => same(route.method.as_bytes(), method()),
                    // A short method: one compare (a route's long method has key 0).
                    key => entry.method_key == key,
                };
                if same_method {
                    return Ok(route);
                }
                if route.method == "GET" && method() == b"HEAD" {
                    get = Some(route);
                }
                status = 405;
            }
        }
        if let Some(get) = get {
            return Ok(get);
        }
        if !self.knows_bytes(method()) {
            return Err(501);
        }
        Err(status)
    }

    /// The methods `path` answers, as the value of an `allow` field (`None` for no route); for
    /// `*`, the methods of every route (the answer to `OPTIONS *`).
    pub fn allow(&self, path: &str) -> Option<&str> {
        self.allow_bytes(path.as_bytes())
    }

    pub(crate) fn allow_bytes(&self, path: &[u8]) -> Option<&str> {
        if path == b"*" {
            let all = self.allow_all.value.as_str();
            return (!all.is_empty()).then_some(all);
        }
        // A route's path is text: a path that is not has no route.
        let path = std::str::from_utf8(path).ok()?;
        self.allow.get(path).map(|allow| allow.value.as_str())
    }

    /// Whether the server knows `method`: a standard one, or one some route answers.
    pub fn knows(&self, method: &str) -> bool {
        self.knows_bytes(method.as_bytes())
    }

    pub(crate) fn knows_bytes(&self, method: &[u8]) -> bool {
        STANDARD_METHODS.iter().any(|m| m.as_bytes() == method)
            || std::str::from_utf8(method).is_ok_and(|method| self.methods.contains(method))
    }
}

impl fmt::Debug for Router<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.routes()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, Session, Unaccounted};

    /// A layout pin (round 24): `Reply` is tagged by a whole word (`#[repr(u64)]`), so the
    /// handler's `Reply::Now` is one 8-byte store and the dispatch's 8-byte load of the tag is
    /// forwarded from it (with the compiler's niche in `delay`'s nanoseconds, 24 bytes, the tag
    /// was a 4-byte store under that load: a store-forwarding stall on every request). Fails
    /// if the `repr` goes; the stall itself is measured by the floor bench, not by a test.
    #[test]
    fn a_reply_is_tagged_by_a_whole_word() {
        assert_eq!(std::mem::size_of::<Reply>(), 32);
        assert_eq!(std::mem::align_of::<Reply>(), 8);
        // The panic path's `None` takes a tag value of its own: no word more.
        assert_eq!(std::mem::size_of::<Option<Reply>>(), 32);
    }

    fn named(request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        response.write(request.method().as_bytes());
        Reply::Now
    }

    /// A short method is matched by its one-word key, a long one by its bytes: each finds its
    /// own route at every length, from the request line as from `find`, and a route method
    /// with a zero byte is not taken for the shorter method before it.
    #[test]
    fn methods_match_exactly_whatever_their_length() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        let methods = ["G", "GET", "PROPFIND", "PROPFINDX", "A-LONGER-METHOD"];
        for method in methods.into_iter().chain(["GE\0"]) {
            router.route(method, "/", named);
        }
        let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
        for method in methods {
            assert_eq!(router.find(method, "/").unwrap().method(), method);
            session.feed(format!("{method} / HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            let output = session.take_output();
            assert!(output.starts_with(b"HTTP/1.1 200 OK\r\n"), "{method}");
            assert!(output.ends_with(method.as_bytes()), "{method}");
        }
        assert_eq!(router.find("GE", "/").unwrap_err(), 501);
        assert_eq!(router.find("PROPFINDY", "/").unwrap_err(), 501);
        session.feed(b"GE / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(session.take_output().starts_with(b"HTTP/1.1 501 "));
    }

    /// A request's route is found by its path, whatever query follows it, without the path
    /// being looked for first; a route whose path has a `?` answers no request (a request's
    /// path never has one), even one whose target is that text.
    #[test]
    fn a_route_is_found_by_the_path_before_the_query() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        // Before `/a`: it would answer `GET /a?b` if its path matched.
        router.route(
            "GET",
            "/a?b",
            |_: &Request<'_>, response: &mut Response<'_>| {
                response.set_status(418);
                Reply::Now
            },
        );
        router.route("GET", "/a", named);
        router.route("GET", "/", named);
        let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
        for (target, status) in [
            ("/a", "200"),
            ("/a?", "200"),
            ("/a?b", "200"),
            ("/a?b?c", "200"),
            ("/?a", "200"),
            ("/ab", "404"),
            ("/a/", "404"),
            ("/a/?b", "404"),
            ("http://x/a?b", "200"),
            ("http://x?a", "200"),
        ] {
            session.feed(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            let output = session.take_output();
            let expected = format!("HTTP/1.1 {status} ");
            assert!(output.starts_with(expected.as_bytes()), "{target}");
        }
        assert_eq!(router.find("GET", "/a?b").unwrap().path(), "/a?b");
    }

    fn path(request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        response.write(request.path().as_bytes());
        Reply::Now
    }

    /// A route's path is matched by its first word (the table's entry) and, past 8 bytes, by
    /// the rest: at every length around one and two words, the path itself, with a query or a
    /// fragment, finds its route, and a target that differs from it in any one byte, or has a
    /// byte more, finds none.
    #[test]
    fn a_path_is_matched_whole_at_every_length_around_a_word() {
        const LONGEST: &str = "/abcdefghijklmnopq";
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        for len in 1..=LONGEST.len() {
            router.route("GET", &LONGEST[..len], path);
        }
        let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
        let mut answer = |target: &str| {
            session.feed(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            session.take_output()
        };
        for len in 1..=LONGEST.len() {
            let route = &LONGEST[..len];
            for target in [
                route.to_owned(),
                format!("{route}?q"),
                format!("{route}?"),
                format!("{route}#f"),
            ] {
                let output = answer(&target);
                assert!(output.starts_with(b"HTTP/1.1 200 "), "{target}");
                assert!(output.ends_with(route.as_bytes()), "{target}");
            }
            for at in 1..len {
                let mut target = route.as_bytes().to_vec();
                target[at] = b'Z';
                let target = String::from_utf8(target).unwrap();
                assert!(answer(&target).starts_with(b"HTTP/1.1 404 "), "{target}");
            }
        }
        assert!(answer(&format!("{LONGEST}r")).starts_with(b"HTTP/1.1 404 "));
    }

    /// The route a request finds is the first entry with its path and its method, whichever
    /// search finds it (round 30: the common one by a loop of its own, the rest out of line);
    /// else, for `HEAD`, the path's last `GET` route; else `501` for a method the server does not
    /// know, `405` for a known path, `404`. Each method and path against a model of
    /// the whole search, by `find` and by a request line (the server's origin-form search),
    /// over a table with the same path under several methods in both orders, routes added
    /// twice, and long methods. Fails when the common loop takes a route of the path with
    /// another method, or a later one than the first (checked).
    #[test]
    fn the_route_found_is_the_first_with_the_path_and_the_method() {
        const TABLE: [(&str, &str); 14] = [
            ("POST", "/a"),
            ("GET", "/a"),
            ("GET", "/a"),
            ("HEAD", "/b"),
            ("GET", "/b"),
            ("GET", "/c"),
            ("GET", "/c"),
            ("PROPFINDX", "/a"),
            ("PROPFINDX", "/a"),
            ("DELETE", "/abcdefghij"),
            ("GET", "/abcdefghij"),
            ("GET", "/abcdefghij"),
            ("PUT", "/d"),
            ("PUT", "/d"),
        ];
        const METHODS: [&str; 10] = [
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "PROPFINDX",
            "PROPFIND",
            "BREW",
            "G",
            "PATCH",
        ];
        const PATHS: [&str; 7] = ["/a", "/b", "/c", "/d", "/e", "/abcdefghij", "/abcdefghik"];
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        let mut added = Vec::new();
        for (at, (method, path)) in TABLE.into_iter().enumerate() {
            // The body's length names the route (a `HEAD` answer says it in its head).
            let body = "x".repeat(at + 1);
            let handler = move |_: &Request<'_>, response: &mut Response<'_>| {
                response.write(body.as_bytes());
                Reply::Now
            };
            added.push(router.route(method, path, handler) as *const Route);
        }
        let model = |method: &str, path: &str| -> Result<usize, u16> {
            let on_path = |at: &usize| TABLE[*at].1 == path;
            if let Some(at) = (0..TABLE.len()).find(|at| on_path(at) && TABLE[*at].0 == method) {
                return Ok(at);
            }
            if method == "HEAD" {
                if let Some(at) = (0..TABLE.len())
                    .rev()
                    .find(|at| on_path(at) && TABLE[*at].0 == "GET")
                {
                    return Ok(at);
                }
            }
            if !router.knows(method) {
                return Err(501);
            }
            Err(if (0..TABLE.len()).any(|at| on_path(&at)) {
                405
            } else {
                404
            })
        };
        let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
        for method in METHODS {
            for path in PATHS {
                let expected = model(method, path);
                let found = router.find(method, path).map(|r| r as *const Route);
                assert_eq!(found, expected.map(|at| added[at]), "find {method} {path}");
                session.feed(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
                let output = String::from_utf8(session.take_output()).unwrap();
                let status = match expected {
                    Ok(_) => 200,
                    Err(status) => status,
                };
                assert!(
                    output.starts_with(&format!("HTTP/1.1 {status} ")),
                    "{method} {path}: {output}"
                );
                if let Ok(at) = expected {
                    let length = format!("\r\ncontent-length: {}\r\n", at + 1);
                    assert!(output.contains(&length), "{method} {path}: {output}");
                }
            }
        }
    }
}
