//! The reference HTTP/1.1 server on a mio event loop (feature `server`).
//!
//! Every request goes through the guards: the server upgrades the wrapper first, answers `503`
//! with `Connection: close` when that fails (having taken nothing), and otherwise takes the
//! bundle and calls the handler. See `docs/server.md` for how a runtime maps its own callbacks
//! onto these calls.
//!
//! | piece | what |
//! |---|---|
//! | [`Session`], [`Connection`], [`Dispatcher`] | the sans-IO core: bytes in, answers out (fuzzing, tests) |
//! | [`Server`], [`ServerBuilder`], [`Running`], [`StopHandle`] | the mio loop, on a thread or the current one; [`ServerSettings`] reads back what a builder was given |
//! | [`Accounting`]: [`Guarded`], [`Unaccounted`] | admission through reqguard, or (benchmark baseline only) none |
//! | [`Router`], [`Routes`], [`Handler`], [`Request`], [`Response`], [`Reply`] | routes and handlers; [`demo_routes`] |
//! | [`LoopGroup`], [`GroupHandle`], [`GroupStop`], [`Ladder`], [`GroupReport`] | one loop per core on one port, and the stop ladder (unready, drain, abort, force); [`GroupSettings`] reads back what a group was given |
//! | [`Limits`], [`ServerReport`], [`Stats`] | knobs and figures |
//! | [`ChunkedDecoder`] | incremental chunked body decoding, for a loop of your own |
//!
//! # Examples
//!
//! ```
//! use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
//! use reqguard::{Config, DowngradePolicy};
//!
//! let routes = Routes::new();
//! let mut router = Router::new(&routes);
//! demo_routes(&mut router);
//! let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
//! let mut session = Session::new(&router, Guarded::embedded("server", config), Limits::default());
//!
//! session.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
//! assert!(session.take_output().starts_with(b"HTTP/1.1 200 OK"));
//!
//! session.stop(); // downgrades the wrapper, and the heap collects it
//! session.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"); // the PR's late request on a kept-alive connection
//! assert!(session.take_output().starts_with(b"HTTP/1.1 503 Service Unavailable"));
//! assert_eq!(session.stats().refused_finalized, 1);
//! session.ledger().unwrap().assert_quiescent();
//! ```

mod accounting;
mod answers;
mod chunked;
mod connection;
mod date;
mod dispatch;
mod group;
mod group_report;
mod ladder;
mod limits;
mod listener;
mod parse;
mod report;
mod response;
mod router;
mod routes;
mod running;
mod scan;
mod server;
mod session;
mod settings;
mod signals;
mod timer;
mod uri;
mod waits;

pub use crate::admit::GuardedHeld;
pub use accounting::{
    Accounting, AccountingReport, Guarded, NoScope, ScopeProvider, StopStatus, Unaccounted,
};
pub use chunked::{ChunkedDecoder, ChunkedError};
pub use connection::Connection;
pub use dispatch::{Dispatcher, Stats};
pub use group::{GroupHandle, GroupStop, LoopGroup};
pub use group_report::GroupReport;
#[cfg(feature = "hyper")]
pub(crate) use group_report::{
    add_pool, json_with_loops, merge_leaks, sum_loops, write_group, LoopReport,
};
#[allow(deprecated)] // the 0.2 name, kept one release
pub use ladder::HandlerRequest;
#[cfg(feature = "hyper")]
pub(crate) use ladder::HandlerTally;
pub use ladder::{ConnState, HandlerRoute, Ladder, Outstanding, StateCount, Step, StepRecord};
pub use limits::{Limits, LimitsError, MAX_TIMEOUT, MIN_HEAD};
#[cfg(feature = "hyper")]
pub(crate) use listener::bind as bind_listeners;
pub use listener::ListenMode;
#[cfg(feature = "hyper")]
pub(crate) use report::steps_json;
pub use report::ServerReport;
pub use response::Response;
pub use router::{Handler, Reply, Request, Route, Router, Routes};
pub use routes::{demo_routes, MAX_DELAY_MS};
pub use running::{Running, ServerBuilder, StopHandle};
pub use server::Server;
pub use session::Session;
pub use settings::{GroupSettings, ServerSettings};
#[cfg(feature = "hyper")]
pub(crate) use waits::begin as begin_wait;
#[cfg(feature = "hyper")]
pub(crate) use waits::{awaited_by, Awaited};
