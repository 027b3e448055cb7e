//! The hyper adapter (feature `hyper`): reqguard for runtimes on tokio and hyper, where a request
//! lives as long as its response body.
//!
//! Named `tokio_hyper` rather than `hyper` so that `hyper::` in a path always means the hyper
//! crate. `docs/hyper.md` maps Deno's `ext/http` request path onto it step by step.
//!
//! A [`HyperServer`] runs on tokio's current-thread runtime inside a
//! [`LocalSet`](tokio::task::LocalSet), one local task per connection, like Deno: the server
//! core, the guards and the engine's handles are `!Send` and never leave the thread. Per
//! request, its `!Send` hyper service ([`RequestService`]):
//!
//! 1. **upgrades** the wrapper; if that fails, or admission is closed (stopped), answers `503`
//!    with `connection: close` having taken nothing;
//! 2. **admits** the bundle (ticket, pooled context, abort signal) and calls the embedder's
//!    async [`Handler`] with the wrapper (`this`), the request and the [`Bundle`];
//! 3. the handler gives the bundle back with [`Bundle::respond`]: the response body
//!    ([`GuardedBody`]) holds it, and the request **ends when the body's last frame is
//!    written** (*completed*), or when hyper drops the body or the handler's future first
//!    (*client gone*: the signal fires once, while the handler can still see it). A handler
//!    that fails or panics is answered `500` (*dropped*) and the connection keeps serving.
//!
//! The stop ([`HyperServer::serve`]'s `stop` future) closes the listener and admission, puts
//! `connection: close` on every answer, lets idle connections linger briefly (a late request
//! gets the `503`), then closes them with hyper's graceful shutdown. The drain completes
//! when the last ticket is released **and** the last connection is closed; past the deadline
//! it aborts what is out, force-closes the connections and reports what was out.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use reqguard::engines::Heap;
//! use reqguard::tokio_hyper::{demo_routes, HyperServer};
//! use reqguard::{Config, ServerCore};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let local = tokio::task::LocalSet::new();
//! let report = local.block_on(&runtime, async {
//!     let heap = Heap::new();
//!     let core = ServerCore::embedded(heap.alloc("server"), Config::default());
//!     let server = HyperServer::new(core, demo_routes());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     tokio::task::spawn_local(async move {
//!         let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
//!         client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
//!         let mut answer = String::new();
//!         client.read_to_string(&mut answer).await.unwrap();
//!         assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("hello"));
//!         stop.send(()).unwrap();
//!     });
//!     server.serve(listener, async { stopped.await.unwrap() }).await
//! });
//! assert_eq!((report.stats.served, report.outcomes.completed, report.leaked), (1, 1, 0));
//! ```

mod body;
mod bundle;
mod checks;
mod chunks;
mod connections;
mod demo;
mod gate;
#[cfg(feature = "server")]
mod group;
mod handler;
mod linger;
mod report;
mod room;
mod server;
mod service;
#[cfg(feature = "server")]
mod settings;
mod steps;
mod tally;

pub use body::{BoxError, GuardedBody};
pub use bundle::{Aborted, Bundle, Reply};
pub use demo::{demo_routes, demo_routes_with, ECHO_BODY_TIMEOUT, MAX_DELAY_MS, MAX_ECHO_BODY};
#[cfg(feature = "server")]
pub use group::{HyperGroup, HyperGroupHandle, HyperGroupStop};
pub use handler::{EnterScope, Handler, HandlerError, NoScope};
#[cfg(feature = "server")]
pub use report::HyperGroupReport;
pub use report::HyperReport;
pub use server::{run, HyperServer, Options, DEFAULT_BUFFER, MIN_BUFFER};
pub use service::{Dispatch, RequestService};
#[cfg(feature = "server")]
pub use settings::HyperGroupSettings;
pub use tally::HyperStats;
